//! OffsetCommit: checks the member's generation, writes the offsets to the group's
//! `__consumer_offsets` partition, and answers once they are durable.

use crate::broker::Broker;
use crate::error::code;
use crate::group::offsets::{metadata_too_large, Committed, OffsetRecord};
use crate::handler::{Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, version: i16, req: OffsetCommitRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let group = req.group_id.0.as_str().to_string();
        let mut check = group_check(&broker, version, &req);
        let mut records = records_of(&broker, version, &req);
        // Partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION and are not stored.
        let image = broker.meta.image();
        let exists = |topic: &str, partition: i32| {
            image
                .topics
                .get(topic)
                .is_some_and(|t| t.partitions.contains_key(&partition))
        };
        let mut unknown = Vec::new();
        let mut too_large = Vec::new();
        let metadata_max = broker.config.offset_metadata_max_bytes;
        records.retain(|rec| match rec {
            OffsetRecord::Commit {
                topic, partition, ..
            } if !exists(topic, *partition) => {
                unknown.push((topic.clone(), *partition));
                false
            }
            OffsetRecord::Commit {
                topic,
                partition,
                committed,
                ..
            } if metadata_too_large(committed.metadata.as_deref(), metadata_max) => {
                too_large.push((topic.clone(), *partition));
                false
            }
            _ => true,
        });
        if check == 0 && !records.is_empty() {
            if let Err(c) = broker.persist_offsets(&group, &records).await {
                check = c;
            } else {
                broker.groups.touch(&group);
            }
        }
        let r = answer(req, check, &unknown, &too_large);
        Reply::Message(ResponseKind::OffsetCommit(r))
    })
}

/// What the group says of the committer: its generation (or member epoch) and member id.
fn group_check(broker: &Broker, version: i16, req: &OffsetCommitRequest) -> i16 {
    let group = req.group_id.0.as_str();
    if group.is_empty() {
        return code(ResponseError::InvalidGroupId);
    }
    if let Err(c) = broker.check_coordinator(group) {
        return c;
    }
    let generation = if version >= 1 {
        req.generation_id_or_member_epoch
    } else {
        -1
    };
    let instance = req.group_instance_id.as_ref().map(|s| s.as_str());
    if broker
        .groups
        .fenced(group, req.member_id.as_str(), instance)
    {
        return crate::group::state::FENCED_INSTANCE_ID;
    }
    broker
        .groups
        .check_commit(group, generation, req.member_id.as_str())
}

/// One commit record per partition of the request.
fn records_of(broker: &Broker, version: i16, req: &OffsetCommitRequest) -> Vec<OffsetRecord> {
    let group = req.group_id.0.as_str();
    let now = crate::metadata_store::now_ms();
    let mut records = Vec::new();
    for t in &req.topics {
        let topic = if version >= 10 {
            broker
                .meta
                .image()
                .topic_by_id(&t.topic_id)
                .map(|x| x.name.clone())
                .unwrap_or_default()
        } else {
            t.name.0.as_str().to_string()
        };
        for p in &t.partitions {
            records.push(OffsetRecord::Commit {
                group: group.to_string(),
                topic: topic.clone(),
                partition: p.partition_index,
                committed: Committed {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.as_str().to_string()),
                    commit_ms: now,
                },
            });
        }
    }
    records
}

/// Each partition's error, in Kafka's order: an unknown partition, then the group's check,
/// then the metadata's length (OffsetMetadataManager, per partition).
fn answer(
    req: OffsetCommitRequest,
    check: i16,
    unknown: &[(String, i32)],
    too_large: &[(String, i32)],
) -> OffsetCommitResponse {
    let mut r = OffsetCommitResponse::default();
    for t in req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        tr.topic_id = t.topic_id;
        for p in t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            let at = (t.name.0.as_str().to_string(), p.partition_index);
            pr.error_code = if unknown.contains(&at) {
                code(ResponseError::UnknownTopicOrPartition)
            } else if check == 0 && too_large.contains(&at) {
                code(ResponseError::OffsetMetadataTooLarge)
            } else {
                check
            };
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}
