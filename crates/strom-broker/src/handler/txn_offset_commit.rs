//! TxnOffsetCommit (KIP-447): offsets committed inside a transaction. The group checks the
//! committer (generation and member, when given: a zombie of an older generation is
//! fenced), the offsets are written to the group's `__consumer_offsets` partition in the
//! producer's transaction, and they take effect when its commit marker arrives there
//! (`txn::markers`); until then OffsetFetch with `require_stable` answers
//! UNSTABLE_OFFSET_COMMIT for them.

use crate::broker::Broker;
use crate::error::code;
use crate::group::offsets::{metadata_too_large, Committed, OffsetRecord, OFFSETS_TOPIC};
use crate::handler::{Pending, Reply};
use crate::txn::state;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, version: i16, req: TxnOffsetCommitRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let group = req.group_id.0.to_string();
        let mut check = group_check(&broker, &req);
        let image = broker.meta.image();
        let now = crate::metadata_store::now_ms();
        let metadata_max = broker.config.offset_metadata_max_bytes;
        // Per partition: its error before the write (unknown, metadata too long), if any.
        let mut refused = Vec::new();
        let mut records = Vec::new();
        for t in &req.topics {
            let topic = t.name.0.to_string();
            for p in &t.partitions {
                let exists = image
                    .topics
                    .get(&topic)
                    .is_some_and(|x| x.partitions.contains_key(&p.partition_index));
                let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
                if !exists {
                    refused.push((
                        (topic.clone(), p.partition_index),
                        code(ResponseError::UnknownTopicOrPartition),
                    ));
                } else if metadata_too_large(metadata.as_deref(), metadata_max) {
                    refused.push((
                        (topic.clone(), p.partition_index),
                        code(ResponseError::OffsetMetadataTooLarge),
                    ));
                } else {
                    records.push(OffsetRecord::Commit {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: p.partition_index,
                        committed: Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata,
                            commit_ms: now,
                        },
                    });
                }
            }
        }
        let producer = (req.producer_id.0, req.producer_epoch);
        if check == 0 && !records.is_empty() {
            // The group's partition must be in the transaction: protocol v2 (v5) adds it,
            // v1 added it with AddOffsetsToTxn and it is verified (KIP-890).
            let partition = (OFFSETS_TOPIC.to_string(), broker.offsets_partition(&group));
            let id = req.transactional_id.0.to_string();
            let joined = broker
                .ask_txn(&id, producer, &[partition], version >= 5)
                .await;
            check = joined.first().map_or(0, |c| joined_error(*c, version));
        }
        if check == 0 && !records.is_empty() {
            if let Err(c) = broker.persist_txn_offsets(&group, &records, producer).await {
                check = c;
            }
        }
        // Kafka answers COORDINATOR_NOT_AVAILABLE where v0-1 do not know LOAD_IN_PROGRESS.
        if version < 2 && check == code(ResponseError::CoordinatorLoadInProgress) {
            check = code(ResponseError::CoordinatorNotAvailable);
        }
        let mut r = TxnOffsetCommitResponse::default();
        for t in req.topics {
            let mut tr = TxnOffsetCommitResponseTopic::default();
            tr.name = t.name.clone();
            for p in t.partitions {
                let mut pr = TxnOffsetCommitResponsePartition::default();
                pr.partition_index = p.partition_index;
                let at = (t.name.0.to_string(), p.partition_index);
                pr.error_code = refused
                    .iter()
                    .find(|(k, _)| *k == at)
                    .map_or(check, |(_, c)| *c);
                tr.partitions.push(pr);
            }
            r.topics.push(tr);
        }
        Reply::Message(ResponseKind::TxnOffsetCommit(r))
    })
}

/// The group's word on the committer: with no generation, member or instance given (a
/// producer outside the group protocol) any group accepts; otherwise they must be current.
fn group_check(broker: &Broker, req: &TxnOffsetCommitRequest) -> i16 {
    let group = req.group_id.0.as_str();
    if group.is_empty() {
        return code(ResponseError::InvalidGroupId);
    }
    if let Err(c) = broker.check_coordinator(group) {
        return c;
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.as_str());
    if req.generation_id < 0 && req.member_id.is_empty() && instance.is_none() {
        return 0;
    }
    if broker
        .groups
        .fenced(group, req.member_id.as_str(), instance)
    {
        return crate::group::state::FENCED_INSTANCE_ID;
    }
    broker
        .groups
        .check_commit(group, req.generation_id, req.member_id.as_str())
}

/// The coordinator's answer about the group's partition as TxnOffsetCommit's error.
fn joined_error(c: i16, version: i16) -> i16 {
    use ResponseError::*;
    let is = |e: ResponseError| c == code(e);
    if c == state::PRODUCER_FENCED {
        code(InvalidProducerEpoch)
    } else if c == state::TRANSACTION_ABORTABLE && version < 5 {
        state::INVALID_TXN_STATE
    } else if is(NetworkException) || is(CoordinatorLoadInProgress) || is(NotCoordinator) {
        code(CoordinatorNotAvailable)
    } else {
        c
    }
}
