//! The transactional producer's requests to its coordinator: AddPartitionsToTxn (v0-3 from
//! clients; v4+ from brokers, batched, with VerifyOnly), AddOffsetsToTxn and EndTxn (v5:
//! transaction protocol v2, the new producer id and epoch in the answer). Each is decided by
//! `txn::state` against the transactional id's state and made durable by
//! `Broker::txn_transition`. Older versions get INVALID_PRODUCER_EPOCH where Kafka 2.7+
//! says PRODUCER_FENCED.

use crate::broker::Broker;
use crate::error::{code, Code};
use crate::group::offsets::OFFSETS_TOPIC;
use crate::handler::{Pending, Reply};
use crate::txn::state::{self, TxnPartition, INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind,
    TransactionalId,
};
use std::sync::Arc;

/// PRODUCER_FENCED for clients that know it, INVALID_PRODUCER_EPOCH for older ones.
pub fn fenced_as(c: Code, knows_fenced: bool) -> Code {
    if c == PRODUCER_FENCED && !knows_fenced {
        code(ResponseError::InvalidProducerEpoch)
    } else {
        c
    }
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<TxnPartition> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

fn topic_results(
    partitions: &[TxnPartition],
    codes: &[Code],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), c) in partitions.iter().zip(codes) {
        let mut pr = AddPartitionsToTxnPartitionResult::default();
        pr.partition_index = *p;
        pr.partition_error_code = *c;
        match out.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(pr),
            None => {
                let mut t = AddPartitionsToTxnTopicResult::default();
                t.name = kafka_protocol::messages::TopicName(topic.clone().into());
                t.results_by_partition.push(pr);
                out.push(t);
            }
        }
    }
    out
}

pub fn add_partitions(
    broker: &Arc<Broker>,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut r = AddPartitionsToTxnResponse::default();
        if version <= 3 {
            let partitions = partitions_of(&req.v3_and_below_topics);
            let producer = (
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
            );
            let id = req.v3_and_below_transactional_id.0.to_string();
            let codes = broker
                .add_or_verify(&id, producer, &partitions, (false, 0))
                .await;
            let codes: Vec<Code> = codes
                .into_iter()
                .map(|c| fenced_as(c, version >= 2))
                .collect();
            r.results_by_topic_v3_and_below = topic_results(&partitions, &codes);
            return Reply::Message(ResponseKind::AddPartitionsToTxn(r));
        }
        for t in req.transactions {
            let partitions = partitions_of(&t.topics);
            let producer = (t.producer_id.0, t.producer_epoch);
            let id = t.transactional_id.0.to_string();
            let codes = broker
                .add_or_verify(&id, producer, &partitions, (t.verify_only, 2))
                .await;
            // v4 knows no TRANSACTION_ABORTABLE: Kafka answers INVALID_TXN_STATE there.
            let codes: Vec<Code> = codes
                .into_iter()
                .map(|c| match c {
                    state::TRANSACTION_ABORTABLE if version < 5 => state::INVALID_TXN_STATE,
                    c => c,
                })
                .collect();
            let mut tr = AddPartitionsToTxnResult::default();
            tr.transactional_id = TransactionalId(id.into());
            tr.topic_results = topic_results(&partitions, &codes);
            r.results_by_transaction.push(tr);
        }
        Reply::Message(ResponseKind::AddPartitionsToTxn(r))
    })
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction, so
/// its offsets commit or abort with it.
pub fn add_offsets(broker: &Arc<Broker>, version: i16, req: AddOffsetsToTxnRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut r = AddOffsetsToTxnResponse::default();
        let c = match broker.ensure_offsets_topic().await {
            Err(c) => c,
            Ok(()) => {
                let partition = (
                    OFFSETS_TOPIC.to_string(),
                    broker.offsets_partition(req.group_id.0.as_str()),
                );
                let id = req.transactional_id.0.to_string();
                let producer = (req.producer_id.0, req.producer_epoch);
                let codes = broker
                    .add_or_verify(&id, producer, &[partition], (false, 0))
                    .await;
                codes.first().copied().unwrap_or(0)
            }
        };
        r.error_code = fenced_as(c, version >= 2);
        Reply::Message(ResponseKind::AddOffsetsToTxn(r))
    })
}

/// How long EndTxn waits for the markers of the transaction it ended (past it, the answer
/// goes anyway: the outcome is durable, the markers follow; a batch of the next
/// transaction that comes first is refused until they are in).
const END_TXN_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// EndTxn: the commit or abort is prepared (durable), its markers written, then answered.
pub fn end(broker: &Arc<Broker>, version: i16, req: EndTxnRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut r = EndTxnResponse::default();
        r.producer_id = ProducerId(-1);
        r.producer_epoch = -1;
        let id = req.transactional_id.0.to_string();
        let producer = (req.producer_id.0, req.producer_epoch);
        let v2 = version >= 5;
        let now = crate::metadata_store::now_ms();
        let ended = broker
            .txn_transition_patient(&id, |m, new_pid| {
                let m = m.ok_or(INVALID_PRODUCER_ID_MAPPING)?;
                match v2 {
                    true => state::end_txn_v2(m, producer, req.committed, new_pid, now),
                    false => state::end_txn_v1(m, producer, req.committed, now),
                }
            })
            .await;
        // Answered once the markers are written, not only once the outcome is durable: a
        // protocol v2 producer starts its next transaction (a new epoch) on the answer, and
        // its first batch must not reach a partition ahead of this transaction's marker.
        if let Ok(d) = &ended {
            if d.wrote && d.meta.state.preparing() {
                broker.txn_completed(&id, &d.meta, END_TXN_WAIT).await;
            }
        }
        match ended {
            Ok(d) if v2 => {
                let (pid, epoch) = d.meta.completion_ids();
                r.producer_id = ProducerId(pid);
                r.producer_epoch = epoch;
            }
            Ok(_) => {}
            Err(c) => r.error_code = fenced_as(c, version >= 2),
        }
        Reply::Message(ResponseKind::EndTxn(r))
    })
}
