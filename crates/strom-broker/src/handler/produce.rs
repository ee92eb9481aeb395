//! Produce: validates and appends each partition's record set now (in request order), then
//! for acks=all waits until the appended offsets are durable (group-commit fsync).

use crate::broker::Broker;
use crate::error::{self, code};
use crate::handler::{ready, Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    self, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;
use strom_log::{Log, LogError};

pub fn handle(broker: &Arc<Broker>, version: i16, req: ProduceRequest) -> Pending {
    let acks = req.acks;
    let mut response = ProduceResponse::default();
    let mut waits: Vec<(usize, usize, Arc<Log>, i64)> = Vec::new();
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let mut tr = TopicProduceResponse::default();
        tr.name = topic.name.clone();
        tr.topic_id = topic.topic_id;
        for (pi, data) in topic.partition_data.into_iter().enumerate() {
            let mut pr = PartitionProduceResponse::default();
            pr.index = data.index;
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = -1;
            let partition = if version >= 13 {
                broker.replicas.get_by_id(&topic.topic_id, data.index)
            } else {
                broker.replicas.get(topic.name.0.as_str(), data.index)
            };
            match (partition, data.records) {
                _ if !matches!(acks, -1..=1) => {
                    pr.error_code = code(ResponseError::InvalidRequiredAcks)
                }
                _ if req.transactional_id.is_some() => {
                    pr.error_code = code(ResponseError::TransactionalIdAuthorizationFailed);
                    pr.error_message = Some(StrBytes::from_static_str(
                        "transactions are not supported yet",
                    ));
                }
                (None, _) if version >= 13 => pr.error_code = code(ResponseError::UnknownTopicId),
                (None, _) => pr.error_code = code(ResponseError::UnknownTopicOrPartition),
                (Some(_), None) => pr.error_code = code(ResponseError::CorruptMessage),
                (Some(p), Some(records)) => {
                    // Kafka refuses records without a key on compacted topics; only those
                    // topics pay for looking inside the batches.
                    let keyless = if compacted(broker, &p.topic) {
                        keyless_records(&records)
                    } else {
                        Vec::new()
                    };
                    if !keyless.is_empty() {
                        refuse_keyless(&mut pr, &p.topic, p.index, keyless);
                        tr.partition_responses.push(pr);
                        continue;
                    }
                    match append_copy(&p, &records) {
                        Ok(a) => {
                            pr.base_offset = a.base_offset;
                            pr.log_append_time_ms = a.log_append_time_ms;
                            pr.log_start_offset = p.log.log_start_offset();
                            if acks == -1 {
                                waits.push((ti, pi, Arc::clone(&p.log), a.last_offset));
                            }
                        }
                        Err((c, message)) => {
                            pr.error_code = c;
                            pr.error_message = Some(StrBytes::from_string(message));
                        }
                    }
                }
            }
            tr.partition_responses.push(pr);
        }
        response.responses.push(tr);
    }
    if acks == 0 {
        return Box::pin(std::future::ready(Reply::None));
    }
    if waits.is_empty() {
        return ready(ResponseKind::Produce(response));
    }
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    // Durability is requested now, not when the writer first polls the future: the writer
    // polls responses one by one, so waiting until then would give each pipelined request
    // a flush cycle of its own instead of sharing one.
    let mut pending = Vec::with_capacity(waits.len());
    for (ti, pi, log, last_offset) in waits {
        let (tx, rx) = tokio::sync::oneshot::channel();
        log.on_durable(
            last_offset,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        pending.push((ti, pi, rx));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    Box::pin(async move {
        for (ti, pi, rx) in pending {
            let outcome = tokio::time::timeout_at(deadline, rx).await;
            let error_code = match outcome {
                Ok(Ok(Ok(_))) => continue,
                Ok(Ok(Err(e))) => error::log_error(&e),
                Ok(Err(_)) => error::log_error(&LogError::Closed),
                Err(_) => code(ResponseError::RequestTimedOut),
            };
            if let Some(pr) = response
                .responses
                .get_mut(ti)
                .and_then(|t| t.partition_responses.get_mut(pi))
            {
                pr.error_code = error_code;
            }
        }
        Reply::Message(ResponseKind::Produce(response))
    })
}

thread_local! {
    /// The copy of a batch the log rewrites in place (offsets, LogAppendTime): one buffer
    /// per runtime thread, reused, so that a produce does not allocate (and fault in) fresh
    /// memory for every batch; measured, that was a third of the broker's CPU under
    /// librdkafka's 1 MB batches.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends a copy of `records` (the request's bytes are shared and immutable).
fn append_copy(
    p: &crate::replica_manager::Partition,
    records: &[u8],
) -> Result<crate::replica_manager::Appended, (crate::error::Code, String)> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        buf.extend_from_slice(records);
        let result = p.append(&mut buf);
        if buf.capacity() > crate::limits::PRODUCE_SCRATCH_KEEP_BYTES {
            *buf = Vec::new();
        }
        result
    })
}

/// Whether the topic's `cleanup.policy` includes `compact`.
fn compacted(broker: &Broker, topic: &str) -> bool {
    let image = broker.meta.image();
    broker
        .config
        .topic_value(
            "cleanup.policy",
            image.topic_config(topic),
            &crate::config::Dynamic::of(&image, broker.node_id),
        )
        .is_some_and(|(v, _)| v.split(',').any(|p| p.trim() == "compact"))
}

/// INVALID_RECORD with the index of every key-less record, as Kafka answers (librdkafka fails
/// those records and the rest of the batch with _INVALID_DIFFERENT_RECORD).
fn refuse_keyless(
    pr: &mut PartitionProduceResponse,
    topic: &str,
    partition: i32,
    indexes: Vec<i32>,
) {
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    );
    pr.record_errors = indexes
        .into_iter()
        .map(|index| {
            let mut e = produce_response::BatchIndexAndErrorMessage::default();
            e.batch_index = index;
            e.batch_index_error_message = Some(StrBytes::from_string(message.clone()));
            e
        })
        .collect();
    pr.error_code = code(ResponseError::InvalidRecord);
    pr.error_message = Some(StrBytes::from_string(message));
}

/// The indexes (within the record set) of the records without a key, as Kafka refuses them
/// on compacted topics. Records inside compressed batches are not looked at: Strom stores
/// compressed batches without decompressing them.
fn keyless_records(records: &[u8]) -> Vec<i32> {
    let mut out = Vec::new();
    let mut index = 0i32;
    for (_, batch) in strom_proto::batch::split(records).unwrap_or_default() {
        let Ok(decoded) = strom_proto::records::decode(batch) else {
            continue;
        };
        for r in decoded {
            if r.key.is_none() {
                out.push(index);
            }
            index += 1;
        }
    }
    out
}
