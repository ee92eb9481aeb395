//! `strom consume`: the console consumer. Prints each value on its own line, as Kafka's
//! console consumer does; `--print` (or Kafka's `--property print.key=true` and friends) adds
//! timestamp, partition, offset, headers and key in Kafka's `DefaultMessageFormatter` order;
//! `--output json` prints one JSON object per record.

use super::{one_name, parse_pairs, Common, Output};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    /// Consume as a member of this group (offsets are committed).
    #[arg(long)]
    group: Option<String>,
    /// Start at the earliest offset when there is no committed one (default: the latest).
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Consume only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Where to start in --partition: earliest, latest or an offset.
    #[arg(long)]
    offset: Option<String>,
    /// Exit after this many records.
    #[arg(long = "max-messages")]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// read_uncommitted or read_committed.
    #[arg(long = "isolation-level", default_value = "read_uncommitted")]
    isolation_level: String,
    /// Fields to print, comma-separated: timestamp, partition, offset, headers, key, value.
    #[arg(long, value_delimiter = ',')]
    print: Vec<String>,
    /// Formatter properties: print.key, print.value, print.timestamp, print.partition,
    /// print.offset, print.headers (true/false), key.separator, null.literal.
    #[arg(long = "property")]
    properties: Vec<String>,
}

#[derive(Default)]
struct Format {
    timestamp: bool,
    partition: bool,
    offset: bool,
    headers: bool,
    key: bool,
    value: bool,
    separator: String,
    null_literal: String,
}

impl Format {
    fn new(print: &[String], props: &[(String, String)]) -> anyhow::Result<Format> {
        let mut f = Format {
            value: true,
            separator: "\t".into(),
            null_literal: "null".into(),
            ..Default::default()
        };
        if !print.is_empty() {
            f.value = false;
            for field in print {
                *f.field(field.trim())
                    .with_context(|| format!("--print {field}: expected timestamp, partition, offset, headers, key or value"))? = true;
            }
        }
        for (k, v) in props {
            match k.as_str() {
                "key.separator" => f.separator = v.clone(),
                "null.literal" => f.null_literal = v.clone(),
                _ => {
                    let field = k
                        .strip_prefix("print.")
                        .and_then(|n| f.field(n))
                        .with_context(|| format!("--property {k}: unknown"))?;
                    *field = v
                        .parse()
                        .with_context(|| format!("--property {k}={v}: expected true or false"))?;
                }
            }
        }
        Ok(f)
    }

    fn field(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "timestamp" => &mut self.timestamp,
            "partition" => &mut self.partition,
            "offset" => &mut self.offset,
            "headers" => &mut self.headers,
            "key" => &mut self.key,
            "value" => &mut self.value,
            _ => return None,
        })
    }

    fn text(&self, b: &Option<Bytes>) -> String {
        b.as_ref().map_or(self.null_literal.clone(), |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    }

    fn line(&self, r: &ConsumerRecord) -> String {
        let mut parts = Vec::new();
        if self.timestamp {
            parts.push(format!("{}:{}", r.timestamp_type, r.timestamp_ms));
        }
        if self.partition {
            parts.push(format!("Partition:{}", r.partition));
        }
        if self.offset {
            parts.push(format!("Offset:{}", r.offset));
        }
        if self.headers {
            parts.push(if r.headers.is_empty() {
                "NO_HEADERS".into()
            } else {
                r.headers
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", self.text(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        }
        if self.key {
            parts.push(self.text(&r.key));
        }
        if self.value {
            parts.push(self.text(&r.value));
        }
        parts.join(&self.separator)
    }
}

fn json_of(r: &ConsumerRecord) -> serde_json::Value {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms,
        "timestamp_type": r.timestamp_type,
        "key": text(&r.key),
        "value": text(&r.value),
        "headers": r.headers.iter().map(|(k, v)| json!([k, text(v)])).collect::<Vec<_>>(),
    })
}

pub async fn run(args: ConsumeArgs, common: &Common) -> anyhow::Result<()> {
    let topic = one_name(&args.topic, &args.name, "topic")?;
    let format = Format::new(&args.print, &parse_pairs(&args.properties)?)?;
    let isolation_level = match args.isolation_level.as_str() {
        "read_uncommitted" => 0,
        "read_committed" => 1,
        other => {
            anyhow::bail!("--isolation-level {other}: expected read_uncommitted or read_committed")
        }
    };
    if args.offset.is_some() && args.partition.is_none() {
        anyhow::bail!("--offset needs --partition");
    }
    if args.offset.is_some() && args.from_beginning {
        anyhow::bail!("--offset and --from-beginning cannot be used together");
    }
    let client = common.client().await?;
    let info = client.topic(&topic).await?;
    let mut consumer = Consumer::new(
        client,
        ConsumerConfig {
            group_id: args.group.clone(),
            auto_offset_reset: if args.from_beginning {
                OffsetReset::Earliest
            } else {
                OffsetReset::Latest
            },
            isolation_level,
            ..Default::default()
        },
    );
    match (args.partition, &args.group) {
        (None, Some(_)) => consumer.subscribe(std::slice::from_ref(&topic))?,
        (None, None) => {
            let all: Vec<(String, i32)> = info
                .partitions
                .iter()
                .map(|p| (topic.clone(), p.partition))
                .collect();
            consumer.assign(&all);
        }
        (Some(p), _) => {
            if !info.partitions.iter().any(|x| x.partition == p) {
                anyhow::bail!(
                    "partition {p} does not exist in topic {topic} ({} partitions)",
                    info.partitions.len()
                );
            }
            consumer.assign(&[(topic.clone(), p)]);
            match args.offset.as_deref() {
                None => {}
                Some("earliest") => consumer.seek(
                    &topic,
                    p,
                    earliest_or_latest(&topic, p, common, true).await?,
                ),
                Some("latest") => consumer.seek(
                    &topic,
                    p,
                    earliest_or_latest(&topic, p, common, false).await?,
                ),
                Some(n) => {
                    let o: i64 = n.parse().ok().filter(|o| *o >= 0).with_context(|| {
                        format!("--offset {n}: expected earliest, latest or a non-negative offset")
                    })?;
                    consumer.seek(&topic, p, o);
                }
            }
        }
    }
    let mut count = 0u64;
    let mut last = Instant::now();
    let stdout = std::io::stdout();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // Records returned by a poll but not printed (cut by --max-messages or a closed stdout):
    // the group's commit must not pass them.
    let mut rewind: std::collections::BTreeMap<(String, i32), i64> = Default::default();
    'outer: loop {
        if args.max_messages.is_some_and(|m| count >= m) {
            break;
        }
        if args
            .timeout_ms
            .is_some_and(|t| last.elapsed() >= Duration::from_millis(t))
        {
            break;
        }
        let records = tokio::select! {
            r = consumer.poll(Duration::from_millis(200)) => r?,
            _ = &mut interrupted => break,
        };
        if !records.is_empty() {
            last = Instant::now();
        }
        let mut out = stdout.lock();
        for (i, r) in records.iter().enumerate() {
            let line = match common.output {
                Output::Json => json_of(r).to_string(),
                Output::Table => format.line(r),
            };
            if args.max_messages.is_some_and(|m| count >= m) || writeln!(out, "{line}").is_err() {
                for rest in &records[i..] {
                    rewind
                        .entry((rest.topic.clone(), rest.partition))
                        .or_insert(rest.offset);
                }
                break 'outer;
            }
            count += 1;
        }
        let _ = out.flush();
    }
    for ((t, p), o) in rewind {
        consumer.seek(&t, p, o);
    }
    consumer.close().await.ok();
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

async fn earliest_or_latest(
    topic: &str,
    p: i32,
    common: &Common,
    earliest: bool,
) -> anyhow::Result<i64> {
    let spec = if earliest {
        strom_client::OffsetSpec::Earliest
    } else {
        strom_client::OffsetSpec::Latest
    };
    let admin = common.admin().await?;
    let m = admin.list_offsets(&[(topic.to_string(), p)], spec).await?;
    Ok(m.values().next().copied().flatten().unwrap_or(0))
}
