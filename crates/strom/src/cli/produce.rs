//! `strom produce`: the console producer. One record per stdin line; with
//! `--property parse.key=true` a line is KEY<key.separator>VALUE, with `parse.headers=true`
//! it starts with headers (`k1:v1,k2:v2` then `headers.delimiter`), as Kafka's console
//! producer reads them. Every record's failure is reported with its line number.

use super::{one_name, parse_acks, parse_compression, parse_pairs, print_json, Common, Output};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use std::io::BufRead;
use strom_client::{Producer, ProducerConfig, ProducerRecord};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    /// Send every record to this partition (default: by key, or sticky for key-less ones).
    #[arg(long)]
    partition: Option<i32>,
    /// all (-1), 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(
        long = "compression",
        visible_alias = "compression-codec",
        default_value = "none"
    )]
    compression: String,
    #[arg(long = "linger-ms", default_value_t = 5)]
    linger_ms: u64,
    #[arg(long = "batch-size", default_value_t = 16384)]
    batch_size: usize,
    /// Reader properties: parse.key, key.separator, parse.headers, headers.delimiter,
    /// headers.separator, headers.key.separator, null.marker.
    #[arg(long = "property")]
    properties: Vec<String>,
    /// A header added to every record, KEY=VALUE; may be repeated.
    #[arg(long = "header")]
    headers: Vec<String>,
}

struct LineFormat {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
}

impl LineFormat {
    fn from_properties(props: &[(String, String)]) -> anyhow::Result<LineFormat> {
        let mut f = LineFormat {
            parse_key: false,
            key_separator: "\t".into(),
            parse_headers: false,
            headers_delimiter: "\t".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            null_marker: None,
        };
        let bool_of = |k: &str, v: &str| -> anyhow::Result<bool> {
            v.parse()
                .with_context(|| format!("--property {k}={v}: expected true or false"))
        };
        for (k, v) in props {
            match k.as_str() {
                "parse.key" => f.parse_key = bool_of(k, v)?,
                "key.separator" => f.key_separator = v.clone(),
                "parse.headers" => f.parse_headers = bool_of(k, v)?,
                "headers.delimiter" => f.headers_delimiter = v.clone(),
                "headers.separator" => f.headers_separator = v.clone(),
                "headers.key.separator" => f.headers_key_separator = v.clone(),
                "null.marker" => f.null_marker = Some(v.clone()),
                "ignore.error" => {}
                _ => anyhow::bail!("--property {k}: unknown (known: parse.key, key.separator, parse.headers, headers.delimiter, headers.separator, headers.key.separator, null.marker)"),
            }
        }
        for (name, sep) in [
            ("key.separator", &f.key_separator),
            ("headers.delimiter", &f.headers_delimiter),
            ("headers.separator", &f.headers_separator),
            ("headers.key.separator", &f.headers_key_separator),
        ] {
            if sep.is_empty() {
                anyhow::bail!("--property {name} must not be empty");
            }
        }
        Ok(f)
    }

    /// (key, value, headers) of one line.
    #[allow(clippy::type_complexity)]
    fn parse(
        &self,
        line: &str,
    ) -> Result<(Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>), String> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            let (h, r) = rest
                .split_once(self.headers_delimiter.as_str())
                .ok_or_else(|| format!("no headers delimiter {:?}", self.headers_delimiter))?;
            rest = r;
            for pair in h
                .split(self.headers_separator.as_str())
                .filter(|p| !p.is_empty())
            {
                let (k, v) = pair
                    .split_once(self.headers_key_separator.as_str())
                    .unwrap_or((pair, ""));
                headers.push((k.to_string(), self.bytes(v)));
            }
        }
        let (key, value) = if self.parse_key {
            let (k, v) = rest
                .split_once(self.key_separator.as_str())
                .ok_or_else(|| format!("no key separator {:?}", self.key_separator))?;
            (self.bytes(k), self.bytes(v))
        } else {
            (None, self.bytes(rest))
        };
        Ok((key, value, headers))
    }

    fn bytes(&self, s: &str) -> Option<Bytes> {
        if self.null_marker.as_deref() == Some(s) {
            None
        } else {
            Some(Bytes::copy_from_slice(s.as_bytes()))
        }
    }
}

pub async fn run(args: ProduceArgs, common: &Common) -> anyhow::Result<()> {
    let topic = one_name(&args.topic, &args.name, "topic")?;
    let format = LineFormat::from_properties(&parse_pairs(&args.properties)?)?;
    let fixed_headers: Vec<(String, Option<Bytes>)> = parse_pairs(&args.headers)?
        .into_iter()
        .map(|(k, v)| (k, Some(Bytes::from(v))))
        .collect();
    let config = ProducerConfig {
        acks: parse_acks(&args.acks)?,
        compression: parse_compression(&args.compression)?,
        linger: std::time::Duration::from_millis(args.linger_ms),
        batch_bytes: args.batch_size.max(1),
        idempotence: parse_acks(&args.acks)? == -1,
        ..Default::default()
    };
    let client = common.client().await?;
    client.producer_topic(&topic).await?; // an unknown topic is one clear error, not one per line
    let producer = Producer::new(client, config);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(1024);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    let mut pending = Vec::new();
    let mut failed = 0usize;
    let mut sent = 0usize;
    let mut line_no = 0usize;
    while let Some(line) = rx.recv().await {
        let line = line.context("reading stdin")?;
        line_no += 1;
        let (key, value, mut headers) = match format.parse(&line) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: line {line_no}: {e}; skipped");
                failed += 1;
                continue;
            }
        };
        headers.extend(fixed_headers.iter().cloned());
        let record = ProducerRecord {
            topic: topic.clone(),
            partition: args.partition,
            key,
            value,
            headers,
            timestamp_ms: None,
        };
        match producer.send(record).await {
            Ok(ack) => pending.push((line_no, ack)),
            Err(e) => {
                eprintln!("error: line {line_no}: {e}");
                failed += 1;
            }
        }
        // Reap finished deliveries as we go, so memory stays bounded on long inputs.
        if pending.len() >= 10_000 {
            for (n, ack) in pending.drain(..) {
                match ack.await {
                    Ok(_) => sent += 1,
                    Err(e) => {
                        eprintln!("error: line {n}: {e}");
                        failed += 1;
                    }
                }
            }
        }
    }
    producer.flush().await;
    for (n, ack) in pending {
        match ack.await {
            Ok(_) => sent += 1,
            Err(e) => {
                eprintln!("error: line {n}: {e}");
                failed += 1;
            }
        }
    }
    if common.output == Output::Json {
        print_json(&json!({"topic": topic, "sent": sent, "failed": failed}));
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {line_no} records failed");
    }
    Ok(())
}
