//! `strom perf produce|consume|e2e`: load generators in the manner of Kafka's
//! `kafka-producer-perf-test.sh` / `kafka-consumer-perf-test.sh` and librdkafka's
//! `rdkafka_performance`: a progress line each second on stderr, then a report of records/s,
//! MB/s and latency percentiles (HdrHistogram, microsecond resolution); `--output json` prints
//! the report as one JSON object on the last line.

use super::{one_name, parse_acks, parse_compression, print_json, Common, Output};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use strom_client::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};

#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Produce records as fast as allowed; latency is send to acknowledgement.
    Produce(ProduceArgs),
    /// Consume records from the beginning of a topic.
    Consume(ConsumeArgs),
    /// Produce and consume at once; latency is send to receipt by the consumer.
    E2e(ProduceArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    #[arg(long = "num-records", default_value_t = 1_000_000)]
    num_records: u64,
    #[arg(long = "record-size", default_value_t = 100)]
    record_size: usize,
    /// Target records per second over all producers; -1 for as fast as possible.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    throughput: i64,
    #[arg(long, default_value = "all")]
    acks: String,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long = "compression", default_value = "none")]
    compression: String,
    #[arg(long = "linger-ms", default_value_t = 5)]
    linger_ms: u64,
    #[arg(long = "batch-size", default_value_t = 16_384)]
    batch_size: usize,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    /// Stop after this many records (default: everything up to the log end at start).
    #[arg(long = "num-records")]
    num_records: Option<u64>,
    /// Consumers sharing the topic's partitions.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Give up when no record arrives for this long.
    #[arg(long = "timeout-ms", default_value_t = 10_000)]
    timeout_ms: u64,
}

struct Stats {
    /// When the first record was sent (produce): rates count from here, as
    /// rdkafka_performance's do, not from connecting and loading metadata.
    started: OnceLock<Instant>,
    records: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Stats {
    fn new() -> Arc<Stats> {
        Arc::new(Stats {
            started: OnceLock::new(),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
        })
    }

    fn record(&self, bytes: u64, latency: Option<Duration>) {
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(l) = latency {
            let us = (l.as_micros() as u64).clamp(1, 3_600_000_000);
            let _ = self
                .latency_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(us);
        }
    }
}

/// Prints `N records, R records/s (M MB/s)[, latency]` every second until stopped.
fn progress(stats: Arc<Stats>, with_latency: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = (0u64, 0u64, Instant::now());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let r = stats.records.load(Ordering::Relaxed);
            let b = stats.bytes.load(Ordering::Relaxed);
            let secs = last.2.elapsed().as_secs_f64();
            let mut line = format!(
                "{} records, {:.0} records/s ({:.2} MB/s)",
                r,
                (r - last.0) as f64 / secs,
                (b - last.1) as f64 / secs / 1e6
            );
            if with_latency {
                let h = stats.latency_us.lock().unwrap_or_else(|e| e.into_inner());
                if !h.is_empty() {
                    line.push_str(&format!(
                        ", latency avg {:.2} ms, p99 {:.2} ms",
                        h.mean() / 1e3,
                        h.value_at_quantile(0.99) as f64 / 1e3
                    ));
                }
            }
            eprintln!("{line}");
            last = (r, b, Instant::now());
        }
    })
}

fn report(kind: &str, stats: &Stats, elapsed: Duration, with_latency: bool, output: Output) {
    let r = stats.records.load(Ordering::Relaxed);
    let b = stats.bytes.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let h = stats.latency_us.lock().unwrap_or_else(|e| e.into_inner());
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
    let latency = (with_latency && !h.is_empty()).then(|| {
        json!({
            "avg": h.mean() / 1e3, "p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99),
            "p99_9": ms(0.999), "max": h.max() as f64 / 1e3,
        })
    });
    let v = json!({
        "test": kind,
        "records": r,
        "errors": errors,
        "seconds": secs,
        "records_per_sec": r as f64 / secs,
        "mb_per_sec": b as f64 / secs / 1e6,
        "latency_ms": latency,
    });
    match output {
        Output::Json => print_json(&v),
        Output::Table => {
            let mut line = format!(
                "{kind}: {r} records in {secs:.2} s, {:.0} records/s ({:.2} MB/s)",
                r as f64 / secs,
                b as f64 / secs / 1e6
            );
            if errors > 0 {
                line.push_str(&format!(", {errors} errors"));
            }
            println!("{line}");
            if latency.is_some() {
                println!(
                    "latency ms: avg {:.2}, p50 {:.2}, p95 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
                    h.mean() / 1e3,
                    ms(0.50),
                    ms(0.95),
                    ms(0.99),
                    ms(0.999),
                    h.max() as f64 / 1e3
                );
            }
        }
    }
}

pub async fn run(cmd: PerfCommand, common: &Common) -> anyhow::Result<()> {
    match cmd {
        PerfCommand::Produce(args) => {
            let topic = one_name(&args.topic, &args.name, "topic")?;
            let stats = Stats::new();
            let ticker = progress(Arc::clone(&stats), true);
            let start = Instant::now();
            produce_load_at(&args, &topic, common, Arc::clone(&stats), None).await?;
            // From the first send to the last acknowledgement (the producers are flushed).
            let elapsed = stats.started.get().copied().unwrap_or(start).elapsed();
            ticker.abort();
            report("produce", &stats, elapsed, true, common.output);
            fail_on_errors(&stats)
        }
        PerfCommand::Consume(args) => {
            let topic = one_name(&args.topic, &args.name, "topic")?;
            let stats = Stats::new();
            let client = common.client().await?;
            let admin = strom_client::Admin::new(client.clone());
            let info = client.topic(&topic).await?;
            let tps: Vec<(String, i32)> = info
                .partitions
                .iter()
                .map(|p| (topic.clone(), p.partition))
                .collect();
            let ends = admin
                .list_offsets(&tps, strom_client::OffsetSpec::Latest)
                .await?;
            let starts = admin
                .list_offsets(&tps, strom_client::OffsetSpec::Earliest)
                .await?;
            let available: i64 = tps
                .iter()
                .map(|tp| {
                    ends.get(tp).copied().flatten().unwrap_or(0)
                        - starts.get(tp).copied().flatten().unwrap_or(0)
                })
                .sum();
            let target = args.num_records.unwrap_or(available.max(0) as u64);
            let ticker = progress(Arc::clone(&stats), false);
            let start = Instant::now();
            let n = args.consumers.clamp(1, tps.len().max(1));
            let mut tasks = Vec::new();
            for i in 0..n {
                let mine: Vec<(String, i32)> = tps.iter().skip(i).step_by(n).cloned().collect();
                let client = client.clone();
                let stats = Arc::clone(&stats);
                let timeout = Duration::from_millis(args.timeout_ms);
                tasks.push(tokio::spawn(async move {
                    let mut c = Consumer::new(
                        client,
                        ConsumerConfig {
                            auto_offset_reset: OffsetReset::Earliest,
                            enable_auto_commit: false,
                            ..Default::default()
                        },
                    );
                    c.assign(&mine);
                    let mut last = Instant::now();
                    while stats.records.load(Ordering::Relaxed) < target && last.elapsed() < timeout
                    {
                        let recs = c.poll(Duration::from_millis(100)).await?;
                        if !recs.is_empty() {
                            last = Instant::now();
                        }
                        for r in recs {
                            let size = r.value.as_ref().map_or(0, Bytes::len)
                                + r.key.as_ref().map_or(0, Bytes::len);
                            stats.record(size as u64, None);
                        }
                    }
                    Ok::<_, strom_client::Error>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            ticker.abort();
            report("consume", &stats, start.elapsed(), false, common.output);
            let got = stats.records.load(Ordering::Relaxed);
            if got < target {
                anyhow::bail!("consumed {got} of {target} records before --timeout-ms");
            }
            Ok(())
        }
        PerfCommand::E2e(args) => {
            let topic = one_name(&args.topic, &args.name, "topic")?;
            if args.record_size < 8 {
                anyhow::bail!(
                    "--record-size must be at least 8 for e2e (the send time rides in the value)"
                );
            }
            let client = common.client().await?;
            let info = client.topic(&topic).await?;
            let tps: Vec<(String, i32)> = info
                .partitions
                .iter()
                .map(|p| (topic.clone(), p.partition))
                .collect();
            let mut consumer = Consumer::new(
                client,
                ConsumerConfig {
                    auto_offset_reset: OffsetReset::Latest,
                    enable_auto_commit: false,
                    fetch_max_wait: Duration::from_millis(100),
                    ..Default::default()
                },
            );
            consumer.assign(&tps);
            consumer.poll(Duration::from_millis(10)).await?; // positions at the log end
            let epoch = Instant::now();
            let produced = Stats::new();
            let received = Stats::new();
            let ticker = progress(Arc::clone(&received), true);
            let load = {
                let args = args.clone();
                let common = common.clone();
                let topic = topic.clone();
                let produced = Arc::clone(&produced);
                tokio::spawn(async move {
                    produce_load_at(&args, &topic, &common, produced, Some(epoch)).await
                })
            };
            let start = Instant::now();
            let mut last = Instant::now();
            while received.records.load(Ordering::Relaxed) < args.num_records
                && last.elapsed() < Duration::from_secs(30)
            {
                for r in consumer.poll(Duration::from_millis(100)).await? {
                    last = Instant::now();
                    let sent_us = r
                        .value
                        .as_ref()
                        .and_then(|v| v.get(..8))
                        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
                    let now_us = epoch.elapsed().as_micros() as u64;
                    received.record(
                        r.value.as_ref().map_or(0, Bytes::len) as u64,
                        Some(Duration::from_micros(now_us.saturating_sub(sent_us))),
                    );
                }
            }
            load.await??;
            ticker.abort();
            received
                .errors
                .store(produced.errors.load(Ordering::Relaxed), Ordering::Relaxed);
            report("e2e", &received, start.elapsed(), true, common.output);
            let got = received.records.load(Ordering::Relaxed);
            if got < args.num_records {
                anyhow::bail!("received {got} of {} records", args.num_records);
            }
            fail_on_errors(&received)
        }
    }
}

fn fail_on_errors(stats: &Stats) -> anyhow::Result<()> {
    let errors = stats.errors.load(Ordering::Relaxed);
    if errors > 0 {
        anyhow::bail!("{errors} records failed");
    }
    Ok(())
}

/// Runs `--producers` producers, each sending its share of `--num-records` at its share of
/// `--throughput`. With `stamp`, each value starts with the send time (µs since `stamp`).
async fn produce_load_at(
    args: &ProduceArgs,
    topic: &str,
    common: &Common,
    stats: Arc<Stats>,
    stamp: Option<Instant>,
) -> anyhow::Result<()> {
    let config = ProducerConfig {
        acks: parse_acks(&args.acks)?,
        compression: parse_compression(&args.compression)?,
        linger: Duration::from_millis(args.linger_ms),
        batch_bytes: args.batch_size.max(1),
        idempotence: false,
        ..Default::default()
    };
    let n = args.producers.max(1) as u64;
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = common.client().await?;
        client.producer_topic(topic).await?;
        let producer = Producer::new(client, config.clone());
        let count = args.num_records / n + u64::from(i < args.num_records % n);
        let rate = (args.throughput > 0).then(|| args.throughput as f64 / n as f64);
        let size = args.record_size;
        let topic = topic.to_string();
        let stats = Arc::clone(&stats);
        tasks.push(tokio::spawn(async move {
            // Incompressible payload, as the perf tools use random bytes.
            let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ i;
            let payload: Vec<u8> = (0..size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let payload = Bytes::from(payload);
            let start = Instant::now();
            stats.started.get_or_init(Instant::now);
            for sent in 0..count {
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(sent as f64 / rate);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
                let value = match stamp {
                    Some(epoch) => {
                        let mut v = payload.to_vec();
                        v[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
                        Bytes::from(v)
                    }
                    None => payload.clone(),
                };
                let t0 = Instant::now();
                let stats2 = Arc::clone(&stats);
                let bytes = value.len() as u64;
                producer
                    .send_with(
                        ProducerRecord {
                            topic: topic.clone(),
                            value: Some(value),
                            ..Default::default()
                        },
                        move |r| match r {
                            Ok(_) => stats2.record(bytes, Some(t0.elapsed())),
                            Err(_) => {
                                stats2.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                    )
                    .await?;
            }
            producer.close().await;
            Ok::<_, strom_client::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
