//! Steering clients to the leader. A partition this broker does not host is
//! NOT_LEADER_OR_FOLLOWER when the cluster has it (Kafka's `getPartitionOrError`), else
//! unknown; and a Produce or Fetch answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH
//! names the current leader and its endpoint (KIP-951: Produce v10+, Fetch v12+ with
//! endpoints from v16), so the client need not ask Metadata first.

use crate::broker::Broker;
use crate::error::{code, Code};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::{fetch_response, produce_response, BrokerId, FetchResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeSet;
use strom_meta::MetadataImage;
use uuid::Uuid;

/// The error for a partition not hosted here: named by `topic` (or by `topic_id` when not
/// nil).
pub fn not_hosted(broker: &Broker, topic: &str, topic_id: Uuid, partition: i32) -> Code {
    let image = broker.meta.image();
    let name = if topic_id.is_nil() {
        Some(topic)
    } else {
        image.topic_names.get(&topic_id).map(String::as_str)
    };
    let exists = name
        .and_then(|n| image.topics.get(n))
        .is_some_and(|t| t.partitions.contains_key(&partition));
    match (exists, topic_id.is_nil()) {
        (true, _) => code(ResponseError::NotLeaderOrFollower),
        (false, true) => code(ResponseError::UnknownTopicOrPartition),
        (false, false) => code(ResponseError::UnknownTopicId),
    }
}

fn steered(error_code: i16) -> bool {
    error_code == code(ResponseError::NotLeaderOrFollower)
        || error_code == code(ResponseError::FencedLeaderEpoch)
}

/// (leader, leader epoch) of a partition, by name or id.
fn leader_of(
    image: &MetadataImage,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
) -> Option<(i32, i32)> {
    let name = if topic_id.is_nil() {
        topic
    } else {
        image.topic_names.get(&topic_id)?.as_str()
    };
    let p = image.topics.get(name)?.partitions.get(&partition)?;
    Some((p.leader, p.leader_epoch))
}

/// The endpoints of `leaders` (unfenced brokers only), as KIP-951's `NodeEndpoints`.
fn endpoints(
    image: &MetadataImage,
    leaders: &BTreeSet<i32>,
) -> Vec<(i32, String, i32, Option<String>)> {
    leaders
        .iter()
        .filter_map(|id| image.brokers.get(id).filter(|b| !b.fenced))
        .map(|b| (b.node_id, b.host.clone(), i32::from(b.port), b.rack.clone()))
        .collect()
}

pub fn produce(broker: &Broker, version: i16, response: &mut ProduceResponse) {
    if version < 10 {
        return;
    }
    let image = broker.meta.image();
    let mut leaders = BTreeSet::new();
    for t in &mut response.responses {
        let id = if version >= 13 {
            t.topic_id
        } else {
            Uuid::nil()
        };
        for p in t
            .partition_responses
            .iter_mut()
            .filter(|p| steered(p.error_code))
        {
            if let Some((leader, epoch)) = leader_of(&image, t.name.0.as_str(), id, p.index) {
                p.current_leader.leader_id = BrokerId(leader);
                p.current_leader.leader_epoch = epoch;
                leaders.insert(leader);
            }
        }
    }
    for (id, host, port, rack) in endpoints(&image, &leaders) {
        let mut e = produce_response::NodeEndpoint::default();
        e.node_id = BrokerId(id);
        e.host = StrBytes::from_string(host);
        e.port = port;
        e.rack = rack.map(StrBytes::from_string);
        response.node_endpoints.push(e);
    }
}

pub fn fetch(broker: &Broker, version: i16, response: &mut FetchResponse) {
    if version < 12 {
        return;
    }
    let image = broker.meta.image();
    let mut leaders = BTreeSet::new();
    for t in &mut response.responses {
        let id = if version >= 13 {
            t.topic_id
        } else {
            Uuid::nil()
        };
        for p in t.partitions.iter_mut().filter(|p| steered(p.error_code)) {
            if let Some((leader, epoch)) =
                leader_of(&image, t.topic.0.as_str(), id, p.partition_index)
            {
                p.current_leader.leader_id = BrokerId(leader);
                p.current_leader.leader_epoch = epoch;
                leaders.insert(leader);
            }
        }
    }
    if version < 16 {
        return;
    }
    for (id, host, port, rack) in endpoints(&image, &leaders) {
        let mut e = fetch_response::NodeEndpoint::default();
        e.node_id = BrokerId(id);
        e.host = StrBytes::from_string(host);
        e.port = port;
        e.rack = rack.map(StrBytes::from_string);
        response.node_endpoints.push(e);
    }
}
