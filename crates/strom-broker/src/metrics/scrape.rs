//! A scrape: every metric read into one exposition. Counters come from `metrics.rs`; the
//! rest is derived now from the state it describes (the hosted partitions, the groups, the
//! quorum), so nothing is kept up to date between scrapes. Runs on a blocking thread: at
//! 100,000 partitions it walks them all, and group lag reads a batch header per partition.

use crate::broker::Broker;
use crate::metrics::{Phase, Traffic};
use crate::partition::Partition;
use kafka_protocol::messages::ApiKey;
use std::sync::Arc;
use strom_metrics::{Exposition, Format, Kind};

/// The whole exposition for this broker.
pub fn render(broker: &Broker, format: Format) -> String {
    let mut e = Exposition::new(format);
    let topics = broker.replicas.by_topic();
    traffic(&mut e, broker, &topics);
    partitions(&mut e, broker, &topics);
    logs(&mut e, broker, &topics);
    requests(&mut e, broker);
    connections(&mut e, broker);
    super::groups::render(&mut e, broker);
    super::quorum::render(&mut e, broker);
    e.finish()
}

type Topics = [(Arc<str>, Vec<Arc<Partition>>)];

/// A family: its name (or the part after a prefix), help, and how to read it from `T`.
pub(super) type Family<T, V> = (&'static str, &'static str, fn(&T) -> V);

const TRAFFIC: [Family<Traffic, u64>; 4] = [
    (
        "in_bytes",
        "Bytes of record batches produced by clients (Kafka: BytesInPerSec)",
        |t| t.in_bytes.get(),
    ),
    (
        "in_records",
        "Records produced by clients (Kafka: MessagesInPerSec)",
        |t| t.in_records.get(),
    ),
    (
        "out_bytes",
        "Bytes of record batches fetched by consumers (Kafka: BytesOutPerSec)",
        |t| t.out_bytes.get(),
    ),
    (
        "out_records",
        "Records fetched by consumers, counted by the offsets they moved past",
        |t| t.out_records.get(),
    ),
];

/// Client traffic: the broker's, each topic's, and each partition's when kept.
fn traffic(e: &mut Exposition, broker: &Broker, topics: &Topics) {
    for (name, help, get) in TRAFFIC {
        e.family(&format!("strom_broker_{name}"), Kind::Counter, help);
        e.sample(&[], get(&broker.replicas.traffic));
    }
    let m = &broker.metrics;
    e.family(
        "strom_replication_in_bytes",
        Kind::Counter,
        "Bytes of record batches this broker's followers appended (Kafka: ReplicationBytesInPerSec)",
    );
    e.sample(&[], m.replication_in_bytes.get());
    e.family(
        "strom_replication_out_bytes",
        Kind::Counter,
        "Bytes of record batches sent to followers (Kafka: ReplicationBytesOutPerSec)",
    );
    e.sample(&[], m.replication_out_bytes.get());
    for (name, help, get) in TRAFFIC {
        e.family(&format!("strom_topic_{name}"), Kind::Counter, help);
        for (topic, parts) in topics {
            if let Some(p) = parts.first() {
                e.sample(&[("topic", topic)], get(&p.stats.topic.traffic));
            }
        }
    }
    if !broker.config.metrics_per_partition {
        return;
    }
    for (name, help, get) in TRAFFIC {
        e.family(&format!("strom_partition_{name}"), Kind::Counter, help);
        each_partition(topics, |topic, index, p| {
            if let Some(own) = &p.stats.own {
                e.sample(&[("topic", topic), ("partition", index)], get(own));
            }
        });
    }
}

fn each_partition(topics: &Topics, mut f: impl FnMut(&str, &str, &Arc<Partition>)) {
    for (topic, parts) in topics {
        for p in parts {
            f(topic, &p.index.to_string(), p);
        }
    }
}

/// Replication health over the hosted partitions (Kafka's ReplicaManager gauges), ISR
/// changes, parked requests.
fn partitions(e: &mut Exposition, broker: &Broker, topics: &Topics) {
    let (mut all, mut leaders, mut under, mut under_min) = (0usize, 0usize, 0usize, 0usize);
    for p in topics.iter().flat_map(|(_, parts)| parts) {
        let h = p.health();
        all += 1;
        if h.leader {
            leaders += 1;
            under += usize::from(h.isr < h.replicas);
            under_min += usize::from(h.under_min_isr);
        }
    }
    let gauges: [(&str, &str, usize); 5] = [
        ("strom_partitions", "Partitions with a replica on this broker (Kafka: PartitionCount)", all),
        ("strom_leader_partitions", "Partitions this broker leads (Kafka: LeaderCount)", leaders),
        (
            "strom_under_replicated_partitions",
            "Partitions led here whose ISR is smaller than their replicas (Kafka: UnderReplicatedPartitions)",
            under,
        ),
        (
            "strom_under_min_isr_partitions",
            "Partitions led here with fewer in-sync replicas than min.insync.replicas (Kafka: UnderMinIsrPartitionCount)",
            under_min,
        ),
        (
            "strom_offline_partitions",
            "Partitions without a leader, reported by the metadata quorum's leader only (Kafka: OfflinePartitionsCount)",
            offline(broker),
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        e.sample(&[], value);
    }
    let m = &broker.metrics;
    e.family(
        "strom_isr_shrinks",
        Kind::Counter,
        "ISR shrinks this broker made as a leader (Kafka: IsrShrinksPerSec)",
    );
    e.sample(&[], m.isr_shrinks.get());
    e.family(
        "strom_isr_expands",
        Kind::Counter,
        "ISR expansions this broker made as a leader (Kafka: IsrExpandsPerSec)",
    );
    e.sample(&[], m.isr_expands.get());
    e.family(
        "strom_parked_fetches",
        Kind::Gauge,
        "Fetches waiting for data (Kafka: NumDelayedOperations, Fetch)",
    );
    e.sample(&[], m.parked_fetches.get());
    e.family(
        "strom_produce_waits",
        Kind::Gauge,
        "Produces waiting for replication or the disk (Kafka: NumDelayedOperations, Produce)",
    );
    e.sample(&[], m.produce_waits.get());
}

/// Leaderless partitions in the image, on the quorum's leader (elsewhere 0, so that a sum
/// over brokers counts each once, as Kafka's active controller alone reports them).
fn offline(broker: &Broker) -> usize {
    let leads = broker.meta.quorum().is_some_and(|q| {
        let m = q.raft().metrics().borrow().clone();
        m.current_leader == Some(m.id)
    });
    if !leads {
        return 0;
    }
    let image = broker.meta.image();
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader < 0)
        .count()
}

/// Log sizes and segment counts per topic (and partition, when kept), and flush times.
fn logs(e: &mut Exposition, broker: &Broker, topics: &Topics) {
    e.family(
        "strom_topic_log_size_bytes",
        Kind::Gauge,
        "Bytes of the topic's logs on this broker (Kafka: Log Size, summed)",
    );
    for (topic, parts) in topics {
        let size: u64 = parts.iter().map(|p| p.size_bytes()).sum();
        e.sample(&[("topic", topic)], size);
    }
    e.family(
        "strom_topic_log_segments",
        Kind::Gauge,
        "Segments of the topic's logs on this broker (Kafka: NumLogSegments, summed)",
    );
    for (topic, parts) in topics {
        let n: usize = parts.iter().map(|p| p.segment_count()).sum();
        e.sample(&[("topic", topic)], n);
    }
    if broker.config.metrics_per_partition {
        partition_logs(e, topics);
    }
    e.family(
        "strom_log_flush_duration_seconds",
        Kind::Histogram,
        "Time to make a log durable: its fsyncs, or one syncfs for several (Kafka: LogFlushRateAndTimeMs)",
    );
    e.histogram(&[], &strom_log::flusher::FLUSH_TIME.snapshot());
}

const PARTITION_GAUGES: [Family<Partition, i64>; 5] = [
    (
        "strom_partition_log_size_bytes",
        "Bytes of the partition's log (Kafka: Log Size)",
        |p| p.size_bytes() as i64,
    ),
    (
        "strom_partition_log_segments",
        "Segments of the partition's log (Kafka: NumLogSegments)",
        |p| p.segment_count() as i64,
    ),
    (
        "strom_partition_log_start_offset",
        "The log start offset (Kafka: LogStartOffset)",
        |p| p.log_start_offset(),
    ),
    (
        "strom_partition_log_end_offset",
        "The log end offset (Kafka: LogEndOffset)",
        |p| p.log_end_offset(),
    ),
    (
        "strom_partition_under_replicated",
        "1 when led here with an ISR smaller than the replicas (Kafka: Partition UnderReplicated)",
        |p| {
            let h = p.health();
            i64::from(h.leader && h.isr < h.replicas)
        },
    ),
];

fn partition_logs(e: &mut Exposition, topics: &Topics) {
    for (name, help, get) in PARTITION_GAUGES {
        e.family(name, Kind::Gauge, help);
        each_partition(topics, |topic, index, p| {
            e.sample(&[("topic", topic), ("partition", index)], get(p));
        });
    }
}

/// Requests per API (those seen since start-up): count, total time, time by phase.
fn requests(e: &mut Exposition, broker: &Broker) {
    let m = &broker.metrics;
    let seen: Vec<(String, &crate::metrics::ApiStats)> = m
        .apis()
        .filter(|(_, s)| s.requests.get() > 0)
        .map(|(k, s)| (api_name(k), s))
        .collect();
    e.family(
        "strom_requests",
        Kind::Counter,
        "Requests answered, by API (Kafka: RequestsPerSec)",
    );
    for (api, s) in &seen {
        e.sample(&[("api", api)], s.requests.get());
    }
    e.family(
        "strom_request_duration_seconds",
        Kind::Histogram,
        "Time from a request read to its response written, by API (Kafka: TotalTimeMs)",
    );
    for (api, s) in &seen {
        e.histogram(&[("api", api)], &s.total.snapshot());
    }
    e.family(
        "strom_request_phase_duration_seconds",
        Kind::Histogram,
        "A request's time by phase: request_queue, local, remote, response_queue, response_send (Kafka: RequestQueueTimeMs, LocalTimeMs, RemoteTimeMs, ResponseQueueTimeMs, ResponseSendTimeMs)",
    );
    for (api, s) in &seen {
        for (phase, h) in Phase::ALL.iter().zip(&s.phases) {
            e.histogram(&[("api", api), ("phase", phase.label())], &h.snapshot());
        }
    }
}

/// Kafka's name of an API (`ApiKeys.name`).
pub(crate) fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => key.to_string(),
    }
}

/// Connections by listener (Kafka's socket-server-metrics).
fn connections(e: &mut Exposition, broker: &Broker) {
    let listeners = broker.metrics.listeners();
    e.family(
        "strom_connections",
        Kind::Gauge,
        "Open client connections (Kafka: connection-count)",
    );
    for l in &listeners {
        e.sample(&[("listener", &l.name)], l.open.get());
    }
    e.family(
        "strom_connections_created",
        Kind::Counter,
        "Client connections accepted (Kafka: connection-creation-total)",
    );
    for l in &listeners {
        e.sample(&[("listener", &l.name)], l.created.get());
    }
    e.family(
        "strom_connections_closed",
        Kind::Counter,
        "Client connections closed (Kafka: connection-close-total)",
    );
    for l in &listeners {
        e.sample(&[("listener", &l.name)], l.closed.get());
    }
}
