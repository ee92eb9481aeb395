//! Consumer groups in a scrape: how many in each state, each group's state and members,
//! rebalances, and lag — in records (the high watermark less the committed offset) and in
//! seconds (the newest record's timestamp less that of the last record consumed: how far
//! behind the head the group's position is, in the records' own time).
//! Lag is reported by the group's coordinator, for the partitions it holds a replica of.

use crate::broker::Broker;
use std::collections::BTreeMap;
use strom_metrics::{Exposition, Kind};

/// One group's lag on one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub high_watermark: i64,
    pub records: i64,
    /// None when a timestamp could not be read (the batch gone meanwhile).
    pub seconds: Option<f64>,
}

/// Which lags `lags` computes: every group's or one's, and whether in seconds too (two
/// batch-header reads a partition) or in records only (no I/O).
#[derive(Debug, Clone, Copy)]
pub struct Which<'a> {
    pub group: Option<&'a str>,
    pub seconds: bool,
}

/// The lag of every committed offset of the groups coordinated here (or of one), on
/// partitions hosted here.
pub fn lags(broker: &Broker, which: Which<'_>) -> Vec<Lag> {
    let mut out = Vec::new();
    let groups = match which.group {
        Some(g) => vec![g.to_string()],
        None => broker.offsets.groups(),
    };
    for group in groups {
        for ((topic, partition), c) in broker.offsets.all(&group) {
            if c.offset < 0 {
                continue;
            }
            let Some(p) = broker.replicas.get(&topic, partition) else {
                continue;
            };
            let hw = p.high_watermark();
            let records = (hw - c.offset).max(0);
            let seconds = if records == 0 {
                Some(0.0)
            } else if !which.seconds {
                None
            } else {
                // Nothing consumed is left (retention took it): the oldest record left.
                let consumed = (c.offset - 1).max(p.log_start_offset());
                let committed_ts = p.record_timestamp(consumed);
                let newest_ts = p.record_timestamp(hw - 1);
                committed_ts
                    .zip(newest_ts)
                    .map(|(c, n)| (n - c).max(0) as f64 / 1000.0)
            };
            out.push(Lag {
                group: group.clone(),
                topic,
                partition,
                committed: c.offset,
                high_watermark: hw,
                records,
                seconds,
            });
        }
    }
    out
}

pub fn render(e: &mut Exposition, broker: &Broker) {
    let groups = broker.groups.list();
    let mut by_state: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (_, state, _, kind) in &groups {
        *by_state.entry((kind, state)).or_default() += 1;
    }
    e.family(
        "strom_consumer_groups",
        Kind::Gauge,
        "Groups coordinated here, by protocol and state (Kafka: group-count, consumer-group-count)",
    );
    for ((kind, state), n) in &by_state {
        e.sample(&[("protocol", kind), ("state", state)], *n);
    }
    e.family(
        "strom_consumer_group_state",
        Kind::Gauge,
        "1 for each group coordinated here, in its state",
    );
    for (id, state, _, _) in &groups {
        e.sample(&[("group", id), ("state", state)], 1u64);
    }
    e.family(
        "strom_consumer_group_members",
        Kind::Gauge,
        "Members of each group coordinated here",
    );
    let image = broker.meta.image();
    let names = |t: &uuid::Uuid| image.topic_names.get(t).cloned();
    for (id, _, _, _) in &groups {
        let members = broker
            .groups
            .describe(id, &names)
            .map_or(0, |d| d.members.len());
        e.sample(&[("group", id)], members);
    }
    e.family(
        "strom_consumer_group_rebalances",
        Kind::Counter,
        "Rebalances completed: classic generations, consumer-group target assignments (Kafka: group-completed-rebalance-count, consumer-group-rebalance-count)",
    );
    e.sample(&[], crate::group::state::REBALANCES.get());
    let all = Which {
        group: None,
        seconds: true,
    };
    render_lag(e, broker, &lags(broker, all));
}

/// Lag per group and topic (records summed, seconds the largest), and per partition when
/// per-partition series are on.
fn render_lag(e: &mut Exposition, broker: &Broker, lags: &[Lag]) {
    let mut by_topic: BTreeMap<(&str, &str), (i64, f64)> = BTreeMap::new();
    for l in lags {
        let t = by_topic.entry((&l.group, &l.topic)).or_default();
        t.0 += l.records;
        // A timestamp that could not be read leaves the largest as it is.
        t.1 = t.1.max(l.seconds.unwrap_or(0.0));
    }
    e.family(
        "strom_consumer_group_lag_records",
        Kind::Gauge,
        "Records behind the high watermark, summed over the topic's partitions",
    );
    for ((group, topic), (records, _)) in &by_topic {
        e.sample(&[("group", group), ("topic", topic)], *records);
    }
    e.family(
        "strom_consumer_group_lag_seconds",
        Kind::Gauge,
        "The newest record's timestamp less the last consumed one's, in seconds; the largest over the topic's partitions",
    );
    for ((group, topic), (_, seconds)) in &by_topic {
        e.sample(&[("group", group), ("topic", topic)], *seconds);
    }
    if !broker.config.metrics_per_partition {
        return;
    }
    let per_partition: [super::scrape::Family<Lag, f64>; 2] = [
        (
            "strom_consumer_group_partition_lag_records",
            "Records behind the high watermark on one partition",
            |l| l.records as f64,
        ),
        (
            "strom_consumer_group_partition_lag_seconds",
            "The newest record's timestamp less the last consumed one's on one partition, in seconds",
            |l| l.seconds.unwrap_or(f64::NAN),
        ),
    ];
    for (name, help, get) in per_partition {
        e.family(name, Kind::Gauge, help);
        for l in lags {
            let partition = l.partition.to_string();
            let labels = [
                ("group", l.group.as_str()),
                ("topic", &l.topic),
                ("partition", &partition),
            ];
            e.sample(&labels, get(l));
        }
    }
}
