//! Fetch: reads whole batches from each requested partition as file slices (sent with
//! sendfile), and parks the request on the partitions' notifiers until `min_bytes` arrive
//! or `max_wait_ms` passes. Sessionless: every response carries session id 0, which tells
//! clients to send full fetch requests (Kafka does the same when its session cache is full).

use crate::broker::Broker;
use crate::error::{self, code};
use crate::handler::{Pending, Reply};
use crate::replica_manager::Partition;
use crate::response::new_marker;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use std::sync::Arc;
use std::time::Duration;
use strom_log::{FileSlice, LogError};
use tokio::sync::Notify;

struct Wanted {
    topic: usize,
    partition: Option<Arc<Partition>>,
    index: i32,
    fetch_offset: i64,
    partition_max_bytes: i64,
    missing_code: i16,
}

pub fn handle(broker: &Arc<Broker>, version: i16, req: FetchRequest) -> Pending {
    let mut topics = Vec::new();
    let mut wanted = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut tr = FetchableTopicResponse::default();
        tr.topic = t.topic.clone();
        tr.topic_id = t.topic_id;
        topics.push(tr);
        for p in &t.partitions {
            let partition = if version >= 13 {
                broker.replicas.get_by_id(&t.topic_id, p.partition)
            } else {
                broker.replicas.get(t.topic.0.as_str(), p.partition)
            };
            wanted.push(Wanted {
                topic: ti,
                partition,
                index: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: i64::from(p.partition_max_bytes.max(0)),
                missing_code: if version >= 13 {
                    code(ResponseError::UnknownTopicId)
                } else {
                    code(ResponseError::UnknownTopicOrPartition)
                },
            });
        }
    }
    let max_bytes = if req.max_bytes > 0 {
        i64::from(req.max_bytes)
    } else {
        i64::from(i32::MAX)
    };
    let min_bytes = i64::from(req.min_bytes.max(0));
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let read_committed = req.isolation_level == 1;
    Box::pin(async move {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let notify = Arc::new(Notify::new());
            // Registered before reading, so an append after the read wakes this fetch.
            if !max_wait.is_zero() {
                for w in &wanted {
                    if let Some(p) = &w.partition {
                        p.add_waiter(&notify);
                    }
                }
            }
            let (response, slices, bytes, errors) =
                read_all(&topics, &wanted, max_bytes, read_committed);
            if bytes >= min_bytes.max(1) || errors || tokio::time::Instant::now() >= deadline {
                return Reply::Fetch { response, slices };
            }
            if tokio::time::timeout_at(deadline, notify.notified())
                .await
                .is_err()
            {
                let (response, slices, _, _) =
                    read_all(&topics, &wanted, max_bytes, read_committed);
                return Reply::Fetch { response, slices };
            }
        }
    })
}

type Read = (FetchResponse, Vec<(Bytes, FileSlice)>, i64, bool);

fn read_all(
    topics: &[FetchableTopicResponse],
    wanted: &[Wanted],
    max_bytes: i64,
    read_committed: bool,
) -> Read {
    let mut response = FetchResponse::default();
    response.responses = topics.to_vec();
    let mut slices = Vec::new();
    let mut total = 0i64;
    let mut errors = false;
    for w in wanted {
        let mut pd = PartitionData::default();
        pd.partition_index = w.index;
        pd.high_watermark = -1;
        pd.last_stable_offset = -1;
        pd.log_start_offset = -1;
        pd.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
        pd.aborted_transactions = read_committed.then(Vec::new);
        pd.records = Some(Bytes::new());
        match &w.partition {
            None => {
                pd.error_code = w.missing_code;
                errors = true;
            }
            Some(p) => {
                let remaining = max_bytes - total;
                let limit = w.partition_max_bytes.min(remaining).max(0) as u64;
                match p.log.read(w.fetch_offset, limit.max(1), None) {
                    Ok(info) => {
                        pd.high_watermark = info.log_end_offset;
                        pd.last_stable_offset = info.log_end_offset;
                        pd.log_start_offset = info.log_start_offset;
                        // A batch larger than the limits is still sent when it is the first
                        // data of the response, so a consumer always makes progress (KIP-74).
                        if let Some(slice) = info.slice.filter(|s| total == 0 || s.len <= limit) {
                            total += slice.len as i64;
                            let marker = new_marker();
                            pd.records = Some(marker.clone());
                            slices.push((marker, slice));
                        }
                    }
                    Err(e) => {
                        if let LogError::OffsetOutOfRange {
                            log_start_offset,
                            log_end_offset,
                            ..
                        } = &e
                        {
                            pd.high_watermark = *log_end_offset;
                            pd.last_stable_offset = *log_end_offset;
                            pd.log_start_offset = *log_start_offset;
                        }
                        pd.error_code = error::log_error(&e);
                        errors = true;
                    }
                }
            }
        }
        if let Some(t) = response.responses.get_mut(w.topic) {
            t.partitions.push(pd);
        }
    }
    (response, slices, total, errors)
}
