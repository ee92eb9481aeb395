//! Produce: validates and appends each partition's record set now (in request order), then
//! for acks=all waits until the appended offsets are durable (group-commit fsync).

use crate::broker::Broker;
use crate::error::{self, code};
use crate::handler::{ready, Pending, Reply};
use crate::metadata_store::now_ms;
use crate::partition::txn::TxnCheck;
use crate::partition::{Partition, Wait};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    self, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;
use strom_log::LogError;

/// (topic index, partition index, partition, (last offset appended, its leader epoch), the
/// transaction's confirmation the answer waits for).
type Waiting = (usize, usize, Arc<Partition>, (i64, i32), TxnCheck);

pub fn handle(broker: &Arc<Broker>, version: i16, req: ProduceRequest) -> Pending {
    let acks = req.acks;
    // A transactional producer's batches that open its transaction in a partition are
    // confirmed with the coordinator before the produce is answered (KIP-890).
    let txn = req
        .transactional_id
        .as_ref()
        .filter(|_| acks != 0)
        .map(|t| t.0.to_string());
    let mut response = ProduceResponse::default();
    let mut waits: Vec<Waiting> = Vec::new();
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let mut tr = TopicProduceResponse::default();
        // The topic's configs, read once for all its partitions.
        let mut rules: Option<Rules> = None;
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
                (None, _) => {
                    let id = if version >= 13 {
                        topic.topic_id
                    } else {
                        uuid::Uuid::nil()
                    };
                    pr.error_code =
                        super::steer::not_hosted(broker, topic.name.0.as_str(), id, data.index);
                }
                (Some(_), None) => pr.error_code = code(ResponseError::CorruptMessage),
                (Some(p), Some(records)) => {
                    let rules = rules.get_or_insert_with(|| Rules::of(broker, &p.topic));
                    let appended =
                        append(broker, &p, rules, (&records, txn.is_some()), acks, &mut pr);
                    if let Some((at, check)) = appended {
                        waits.push((ti, pi, Arc::clone(&p), at, check));
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
        super::steer::produce(broker, version, &mut response);
        return ready(ResponseKind::Produce(response));
    }
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let wait = if acks == -1 {
        Wait::HighWatermark
    } else {
        Wait::Local
    };
    durable(broker, (version, txn), response, waits, (wait, timeout))
}

/// One partition's records: the topic's rules checked (min ISR, timestamps, keys on compacted
/// topics), then appended. Fills in `pr`; the last offset appended when acks=all must wait
/// for it to be durable.
fn append(
    broker: &Broker,
    p: &Partition,
    rules: &Rules,
    (records, transactional): (&bytes::Bytes, bool),
    acks: i16,
    pr: &mut PartitionProduceResponse,
) -> Option<((i64, i32), TxnCheck)> {
    // Kafka checks the ISR before looking at the records.
    if acks == -1 && rules.not_enough_replicas(broker, &p.topic, p.index) {
        pr.error_code = code(ResponseError::NotEnoughReplicas);
        return None;
    }
    // Kafka refuses records without a key on compacted topics; only those topics pay for
    // looking inside the batches.
    let keyless = if rules.compacted {
        keyless_records(records)
    } else {
        Vec::new()
    };
    match rules.timestamps.check(records, now_ms(), &keyless) {
        Ok(errors) if errors.is_empty() => {}
        Ok(errors) => {
            pr.log_start_offset = p.log_start_offset();
            refuse_timestamps(pr, &p.topic, p.index, errors, keyless);
            return None;
        }
        Err((error_code, message)) => {
            pr.error_code = error_code;
            pr.error_message = Some(StrBytes::from_string(message));
            return None;
        }
    }
    if !keyless.is_empty() {
        refuse_keyless(pr, &p.topic, p.index, keyless);
        return None;
    }
    match append_copy(p, records, transactional) {
        Ok(crate::partition::TxnAppended { appended: a, check }) => {
            if !a.duplicate {
                p.stats
                    .produced(records.len(), a.last_offset - a.base_offset + 1);
            }
            pr.base_offset = a.base_offset;
            pr.log_append_time_ms = a.log_append_time_ms;
            pr.log_start_offset = p.log_start_offset();
            (acks != 0).then_some(((a.last_offset, a.leader_epoch), check))
        }
        Err((c, message)) => {
            pr.error_code = c;
            pr.error_message = Some(StrBytes::from_string(message));
            None
        }
    }
}

/// The answer once the high watermark passes every acks=all append (or the request's
/// timeout passed). On one node that is when the append is durable.
fn durable(
    broker: &Arc<Broker>,
    (version, txn): (i16, Option<String>),
    mut response: ProduceResponse,
    waits: Vec<Waiting>,
    (wait, timeout): (Wait, Duration),
) -> Pending {
    let broker = Arc::clone(broker);
    // The waits are registered now, not when the writer first polls the future; the append
    // already asked for the sync, so pipelined requests share one flush cycle.
    let mut checks = Vec::new();
    let pending: Vec<_> = waits
        .into_iter()
        .map(|(ti, pi, p, (last, epoch), check)| {
            let rx = p.wait_at(wait, last, epoch);
            checks.push((ti, pi, p, check));
            (ti, pi, rx)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + timeout;
    let waiting = crate::metrics::Held::new(&broker.metrics, |m| &m.produce_waits);
    Box::pin(async move {
        let _waiting = waiting;
        let mut failed = Vec::new();
        if let Some(id) = &txn {
            failed = confirm_txn(&broker, id, version, checks, deadline).await;
        }
        for (ti, pi, rx) in pending {
            let refused = failed.iter().find(|(t, p, _)| (*t, *p) == (ti, pi));
            let outcome = tokio::time::timeout_at(deadline, rx).await;
            let error_code = match outcome {
                _ if refused.is_some() => refused.map_or(0, |r| r.2),
                Ok(Ok(Ok(_))) => continue,
                Ok(Ok(Err(c))) => c,
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
        super::steer::produce(&broker, version, &mut response);
        Reply::Message(ResponseKind::Produce(response))
    })
}

/// The coordinator's confirmation of the transactions this produce opened (one call for
/// them all) and of those earlier produces opened and still wait for: the partitions
/// refused, with their error.
async fn confirm_txn(
    broker: &Arc<Broker>,
    id: &str,
    version: i16,
    checks: Vec<(usize, usize, Arc<Partition>, TxnCheck)>,
    deadline: tokio::time::Instant,
) -> Vec<(usize, usize, crate::error::Code)> {
    let mut opened = Vec::new();
    let mut waiting = Vec::new();
    for (ti, pi, p, check) in checks {
        match check {
            TxnCheck::None => {}
            TxnCheck::Opened {
                producer_id,
                epoch,
                first_offset,
            } => opened.push((ti, pi, p, (producer_id, epoch), first_offset)),
            TxnCheck::Pending(rx) => waiting.push((ti, pi, rx)),
        }
    }
    let mut failed = Vec::new();
    // One producer per request (Kafka refuses mixed ids with INVALID_PRODUCER_ID_MAPPING).
    if let Some(producer) = opened.first().map(|o| o.3) {
        let partitions: Vec<(String, i32)> = opened
            .iter()
            .map(|o| (o.2.topic.to_string(), o.2.index))
            .collect();
        let codes = broker.join_txn(id, producer, &partitions, version).await;
        for ((ti, pi, p, (pid, epoch), first), c) in opened.into_iter().zip(codes) {
            p.confirm_txn(pid, epoch, first, if c == 0 { Ok(()) } else { Err(c) });
            if c != 0 {
                failed.push((ti, pi, c));
            }
        }
    }
    for (ti, pi, mut rx) in waiting {
        let outcome = tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await;
        let c = match outcome {
            Ok(Ok(v)) => (*v).map_or(0, |r| r.err().unwrap_or(0)),
            Ok(Err(_)) => code(ResponseError::NotLeaderOrFollower),
            Err(_) => code(ResponseError::RequestTimedOut),
        };
        if c != 0 {
            failed.push((ti, pi, c));
        }
    }
    failed
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
    p: &Partition,
    records: &[u8],
    transactional: bool,
) -> Result<crate::partition::TxnAppended, (crate::error::Code, String)> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        buf.extend_from_slice(records);
        let result = match transactional {
            true => p.append_transactional(&mut buf),
            false => p
                .append_as_leader(&mut buf)
                .map(|appended| crate::partition::TxnAppended {
                    appended,
                    check: TxnCheck::None,
                }),
        };
        if buf.capacity() > crate::limits::PRODUCE_SCRATCH_KEEP_BYTES {
            *buf = Vec::new();
        }
        result
    })
}

/// What a produce to a topic is checked against, from its configs (the topic's own, else
/// the broker's, else Kafka's defaults).
struct Rules {
    /// `cleanup.policy` includes `compact`: records need keys.
    compacted: bool,
    /// `min.insync.replicas`.
    min_insync_replicas: i64,
    timestamps: TimestampRule,
}

impl Rules {
    fn of(broker: &Broker, topic: &str) -> Rules {
        let image = broker.meta.image();
        let dynamic = crate::config::Dynamic::of(&image, broker.node_id);
        let value = |key: &str| {
            broker
                .config
                .topic_value(key, image.topic_config(topic), &dynamic)
                .map(|(v, _)| v.trim().to_string())
                .unwrap_or_default()
        };
        let long = |key: &str, default: i64| value(key).parse::<i64>().unwrap_or(default);
        Rules {
            compacted: value("cleanup.policy")
                .split(',')
                .any(|p| p.trim() == "compact"),
            min_insync_replicas: long("min.insync.replicas", 1),
            timestamps: TimestampRule {
                create_time: value("message.timestamp.type") != "LogAppendTime",
                before_max_ms: long("message.timestamp.before.max.ms", i64::MAX),
                after_max_ms: long("message.timestamp.after.max.ms", 3_600_000),
            },
        }
    }

    /// Whether an acks=all write must be refused: Kafka's `Partition.appendRecordsToLeader`
    /// compares the ISR with `min.insync.replicas` capped at the replica count (KAFKA-15583,
    /// since 3.7: a value above the replication factor does not refuse every write).
    fn not_enough_replicas(&self, broker: &Broker, topic: &str, partition: i32) -> bool {
        let image = broker.meta.image();
        let Some(p) = image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(&partition))
        else {
            return false;
        };
        under_min_isr(p.isr.len(), p.replicas.len(), self.min_insync_replicas)
    }
}

/// `isr < min(min.insync.replicas, replicas)`.
fn under_min_isr(isr: usize, replicas: usize, min_insync_replicas: i64) -> bool {
    let effective = min_insync_replicas.min(i64::try_from(replicas).unwrap_or(i64::MAX));
    i64::try_from(isr).unwrap_or(i64::MAX) < effective
}

/// `message.timestamp.type`, `message.timestamp.before.max.ms` and
/// `message.timestamp.after.max.ms`: how far from the broker's clock a CreateTime record's
/// timestamp may be (KIP-937).
#[derive(Debug, Clone, Copy)]
struct TimestampRule {
    create_time: bool,
    before_max_ms: i64,
    after_max_ms: i64,
}

/// One refused record: its index in the record set and why.
type RecordError = (i32, String);

impl TimestampRule {
    /// Kafka's `LogValidator.recordHasInvalidTimestamp`, with Java's wrapping arithmetic.
    fn invalid(&self, timestamp: i64, now_ms: i64) -> bool {
        let diff = now_ms.wrapping_sub(timestamp);
        diff > self.before_max_ms || diff.wrapping_neg() > self.after_max_ms
    }

    /// Checks every record's timestamp as Kafka's `LogValidator.validateTimestamp` does.
    /// `keyless` are the indexes already refused for a missing key: Kafka reports one error
    /// per record, the key's first, and answers INVALID_TIMESTAMP if any timestamp is bad.
    ///
    /// Records are decoded only when the batch header cannot settle it: the header's
    /// `max_timestamp` bounds the records' timestamps from above (Kafka's clients write it
    /// so; Strom trusts it), but nothing in the header bounds them from below (a record's
    /// timestamp delta may be negative), so a finite `before` limit, or a `max_timestamp`
    /// past the `after` limit, means decoding. `Err`: a batch that could not be decoded.
    fn check(
        &self,
        records: &[u8],
        now_ms: i64,
        keyless: &[i32],
    ) -> Result<Vec<RecordError>, (i16, String)> {
        if !self.create_time {
            return Ok(Vec::new());
        }
        let batches = strom_proto::batch::split(records)
            .map_err(|e| (crate::error::batch_error(&e), e.to_string()))?;
        let mut errors = Vec::new();
        let mut index = 0i32;
        let mut scratch = Vec::new();
        for (h, batch) in batches {
            let settled = self.before_max_ms == i64::MAX
                && (h.max_timestamp == NO_TIMESTAMP || !self.invalid(h.max_timestamp, now_ms));
            if settled {
                index = index.saturating_add(h.record_count.max(0));
                continue;
            }
            let decoded = strom_proto::records::decode_any(
                batch,
                &mut scratch,
                crate::limits::PRODUCE_DECOMPRESSED_BYTES_MAX,
            )
            .map_err(|e| (code(ResponseError::CorruptMessage), e.to_string()))?;
            for r in decoded {
                if !keyless.contains(&index)
                    && r.timestamp != NO_TIMESTAMP
                    && self.invalid(r.timestamp, now_ms)
                {
                    errors.push((
                        index,
                        format!(
                            "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                            r.timestamp,
                            r.offset,
                            now_ms.wrapping_sub(self.before_max_ms),
                            now_ms.wrapping_add(self.after_max_ms)
                        ),
                    ));
                }
                index = index.saturating_add(1);
            }
        }
        Ok(errors)
    }
}

/// A record's timestamp when it has none (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

/// INVALID_TIMESTAMP with every refused record, as Kafka's `LogValidator.processRecordErrors`
/// answers: the timestamp errors and the key errors of the same record set, by index.
fn refuse_timestamps(
    pr: &mut PartitionProduceResponse,
    topic: &str,
    partition: i32,
    mut errors: Vec<RecordError>,
    keyless: Vec<i32>,
) {
    let message = keyless_message(topic, partition);
    errors.extend(keyless.into_iter().map(|i| (i, message.clone())));
    errors.sort_by_key(|(i, _)| *i);
    pr.record_errors = errors
        .into_iter()
        .map(|(index, message)| {
            let mut e = produce_response::BatchIndexAndErrorMessage::default();
            e.batch_index = index;
            e.batch_index_error_message = Some(StrBytes::from_string(message));
            e
        })
        .collect();
    pr.error_code = code(ResponseError::InvalidTimestamp);
    pr.error_message = Some(StrBytes::from_static_str(
        "One or more records have been rejected due to invalid timestamp",
    ));
}

/// INVALID_RECORD with the index of every key-less record, as Kafka answers (librdkafka fails
/// those records and the rest of the batch with _INVALID_DIFFERENT_RECORD).
fn refuse_keyless(
    pr: &mut PartitionProduceResponse,
    topic: &str,
    partition: i32,
    indexes: Vec<i32>,
) {
    let message = keyless_message(topic, partition);
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

fn keyless_message(topic: &str, partition: i32) -> String {
    format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use strom_proto::{BatchBuilder, Compression};

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn min_insync_replicas_is_capped_at_the_replica_count() {
        // (isr, replicas, min.insync.replicas, refused)
        for (isr, replicas, min, refused) in [
            (1, 1, 1, false),
            (1, 1, 2, false),
            (1, 3, 2, true),
            (2, 3, 2, false),
            (2, 3, 3, true),
            (3, 3, 3, false),
        ] {
            assert_eq!(
                under_min_isr(isr, replicas, min),
                refused,
                "isr {isr} replicas {replicas} min {min}"
            );
        }
    }

    fn rule(before: i64, after: i64) -> TimestampRule {
        TimestampRule {
            create_time: true,
            before_max_ms: before,
            after_max_ms: after,
        }
    }

    fn batch(timestamps: &[i64]) -> Vec<u8> {
        let mut b = BatchBuilder::new(timestamps[0]);
        for (i, ts) in timestamps.iter().enumerate() {
            b.push(Some(format!("k{i}").as_bytes()), Some(b"v"), *ts);
        }
        b.build()
    }

    #[test]
    fn record_timestamps_are_checked_against_the_broker_clock() {
        let kafka_default = rule(i64::MAX, 3_600_000);
        assert!(kafka_default
            .check(&batch(&[NOW, NOW + 3_600_000]), NOW, &[])
            .unwrap()
            .is_empty());
        assert!(kafka_default
            .check(&batch(&[1, 0]), NOW, &[])
            .unwrap()
            .is_empty());
        let errors = kafka_default
            .check(&batch(&[NOW, NOW + 3_600_001, NOW + 1]), NOW, &[])
            .unwrap();
        assert_eq!(
            errors,
            vec![(
                1,
                format!(
                    "Timestamp {} of message with offset 1 is out of range. The timestamp should be within [{}, {}]",
                    NOW + 3_600_001,
                    NOW.wrapping_sub(i64::MAX),
                    NOW + 3_600_000
                )
            )]
        );
        // Compressed batches are decoded too when their header is out of range.
        let mut b = BatchBuilder::new(NOW);
        b.push(None, Some(b"v"), NOW + 7_200_000);
        let zstd = b.build_compressed(Compression::Zstd).unwrap();
        assert_eq!(kafka_default.check(&zstd, NOW, &[]).unwrap().len(), 1);
        // LogAppendTime topics keep no producer timestamps: nothing to check.
        let log_append = TimestampRule {
            create_time: false,
            ..kafka_default
        };
        assert!(log_append.check(&zstd, NOW, &[]).unwrap().is_empty());
    }

    #[test]
    fn a_past_limit_finds_records_older_than_the_batch_header_says() {
        let one_day = rule(86_400_000, 3_600_000);
        // The first record (the header's base timestamp) is recent, the second is older than
        // a day: only its negative delta shows it.
        let errors = one_day
            .check(&batch(&[NOW, NOW - 86_400_001, -1]), NOW, &[])
            .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 1);
        assert!(errors[0]
            .1
            .ends_with(&format!("[{}, {}]", NOW - 86_400_000, NOW + 3_600_000)));
        // A record already refused for its missing key gets no second error.
        assert!(one_day
            .check(&batch(&[NOW, NOW - 86_400_001]), NOW, &[1])
            .unwrap()
            .is_empty());
    }
}
