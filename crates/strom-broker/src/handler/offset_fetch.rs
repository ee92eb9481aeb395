//! OffsetFetch: committed offsets of one group (v0–7) or several (v8+); -1 where nothing was
//! committed.

use crate::broker::Broker;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// (topic, partition) → (offset, leader epoch, metadata) for the wanted partitions, or all.
/// With `require_stable`, a partition an open transaction holds an offset for is -2
/// (UNSTABLE_OFFSET_COMMIT in the answer).
fn lookup(
    broker: &Broker,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> BTreeMap<String, Vec<(i32, i64, i32, String)>> {
    let mut out: BTreeMap<String, Vec<(i32, i64, i32, String)>> = BTreeMap::new();
    match wanted {
        None => {
            for ((t, p), c) in broker.offsets.all(group) {
                out.entry(t).or_default().push((
                    p,
                    c.offset,
                    c.leader_epoch,
                    c.metadata.unwrap_or_default(),
                ));
            }
        }
        Some(topics) => {
            for (t, parts) in topics {
                for p in parts {
                    let unstable = require_stable && broker.offsets.unstable(group, &t, p);
                    let entry = match broker.offsets.get(group, &t, p) {
                        _ if unstable => (p, UNSTABLE, -1, String::new()),
                        Some(c) => (p, c.offset, c.leader_epoch, c.metadata.unwrap_or_default()),
                        None => (p, -1, -1, String::new()),
                    };
                    out.entry(t.clone()).or_default().push(entry);
                }
            }
        }
    }
    out
}

/// The offset `lookup` gives a partition with offsets in an open transaction.
const UNSTABLE: i64 = -2;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

pub fn handle(broker: &Arc<Broker>, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default();
    if version >= 8 {
        for g in req.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = g.group_id.clone();
            if let Err(c) = broker.check_coordinator(g.group_id.0.as_str()) {
                out.error_code = c;
                r.groups.push(out);
                continue;
            }
            // v9+: a consumer-protocol member fetches at its member epoch (KIP-848).
            if let Some(member) = g.member_id.as_ref().filter(|m| !m.is_empty()) {
                let code = broker.groups.check_offset_fetch(
                    g.group_id.0.as_str(),
                    member.as_str(),
                    g.member_epoch,
                );
                if code != 0 {
                    out.error_code = code;
                    r.groups.push(out);
                    continue;
                }
            }
            for (topic, parts) in lookup(broker, g.group_id.0.as_str(), wanted, req.require_stable)
            {
                let mut t = OffsetFetchResponseTopics::default();
                t.name = TopicName(StrBytes::from_string(topic.clone()));
                t.topic_id = broker
                    .meta
                    .image()
                    .topics
                    .get(&topic)
                    .map(|x| x.topic_id)
                    .unwrap_or_default();
                for (p, offset, epoch, meta) in parts {
                    let mut pr = OffsetFetchResponsePartitions::default();
                    pr.partition_index = p;
                    pr.committed_offset = offset;
                    if offset == UNSTABLE {
                        pr.committed_offset = -1;
                        pr.error_code = UNSTABLE_OFFSET_COMMIT;
                    }
                    pr.committed_leader_epoch = epoch;
                    pr.metadata = Some(StrBytes::from_string(meta));
                    t.partitions.push(pr);
                }
                out.topics.push(t);
            }
            r.groups.push(out);
        }
        return r;
    }
    if let Err(c) = broker.check_coordinator(req.group_id.0.as_str()) {
        if version >= 2 {
            r.error_code = c;
            return r;
        }
        // v0-1 have no top-level error: every partition asked for carries it, as in Kafka.
        for t in req.topics.iter().flatten() {
            let mut out = OffsetFetchResponseTopic::default();
            out.name = t.name.clone();
            for p in &t.partition_indexes {
                let mut pr = OffsetFetchResponsePartition::default();
                pr.partition_index = *p;
                pr.committed_offset = -1;
                pr.metadata = Some(StrBytes::from_static_str(""));
                pr.error_code = c;
                out.partitions.push(pr);
            }
            r.topics.push(out);
        }
        return r;
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
            .collect()
    });
    let stable = version >= 7 && req.require_stable;
    for (topic, parts) in lookup(broker, req.group_id.0.as_str(), wanted, stable) {
        let mut t = OffsetFetchResponseTopic::default();
        t.name = TopicName(StrBytes::from_string(topic));
        for (p, offset, epoch, meta) in parts {
            let mut pr = OffsetFetchResponsePartition::default();
            pr.partition_index = p;
            pr.committed_offset = offset;
            if offset == UNSTABLE {
                pr.committed_offset = -1;
                pr.error_code = UNSTABLE_OFFSET_COMMIT;
            }
            if version >= 5 {
                pr.committed_leader_epoch = epoch;
            }
            pr.metadata = Some(StrBytes::from_string(meta));
            t.partitions.push(pr);
        }
        r.topics.push(t);
    }
    r
}
