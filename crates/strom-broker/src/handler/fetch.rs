//! Fetch: reads whole batches from each requested partition as file slices (sent with
//! sendfile), and parks the request on the partitions' notifiers until `min_bytes` arrive or
//! `max_wait_ms` passes. Incremental fetch sessions (v7+) remember a consumer's partitions;
//! their responses carry only partitions with news.

use crate::broker::Broker;
use crate::error::{self, code};
use crate::fetch_session::{Resolved, SessionPartition};
use crate::handler::{Pending, Reply};
use crate::partition::{Isolation, Partition};
use crate::response::new_marker;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

struct Wanted {
    at: SessionPartition,
    partition: Option<Arc<Partition>>,
}

pub fn handle(broker: &Arc<Broker>, version: i16, req: FetchRequest) -> Pending {
    let by_id = version >= 13;
    // A follower names itself (KIP-903 moved the id into `ReplicaState` at v15, with its
    // broker epoch).
    let (replica_id, epoch) = if version >= 15 {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    let follower = (replica_id >= 0).then(|| Follower::new(broker, replica_id, epoch));
    let (session_id, parts, incremental) = match resolve(broker, version, &req) {
        Ok(r) => r,
        Err(code) => {
            let mut response = FetchResponse::default();
            response.error_code = code;
            return Box::pin(std::future::ready(Reply::Fetch {
                response,
                slices: Vec::new(),
            }));
        }
    };
    let wanted: Vec<Wanted> = parts
        .into_iter()
        .map(|at| {
            let partition = if by_id {
                broker.replicas.get_by_id(&at.topic_id, at.partition)
            } else {
                broker.replicas.get(&at.topic, at.partition)
            };
            Wanted { at, partition }
        })
        .collect();
    // Kafka: the response limit is min(max_bytes, fetch.max.bytes) and min_bytes is capped
    // to it; the first batch still goes out whole, however large (KIP-74).
    let limit_bytes = req.max_bytes.min(broker.config.fetch_max_bytes);
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let answer = Answer {
        broker: Arc::clone(broker),
        version,
        session_id,
        min_bytes: i64::from(req.min_bytes.min(limit_bytes)),
        max_wait,
        // max_wait_ms counts from the request's arrival, not from when its turn to be
        // answered comes on a pipelined connection.
        deadline: tokio::time::Instant::now() + max_wait,
    };
    let read_committed = req.isolation_level == 1;
    // From v11 a consumer names its rack and may fetch from a follower (KIP-392).
    let rack = (version >= 11 && follower.is_none()).then(|| req.rack_id.to_string());
    Box::pin(async move {
        let reads = Reads {
            broker: &answer.broker,
            wanted: &wanted,
            max_bytes: i64::from(limit_bytes),
            read_committed,
            incremental,
            by_id,
            follower,
            rack,
        };
        answer.when_ready(&reads).await
    })
}

/// The request's partitions as its fetch session sees them: (session id, partitions,
/// incremental), or the session's error.
fn resolve(
    broker: &Broker,
    version: i16,
    req: &FetchRequest,
) -> Result<(i32, Vec<SessionPartition>, bool), i16> {
    let requested: Vec<SessionPartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| SessionPartition {
                topic: t.topic.0.as_str().to_string(),
                topic_id: t.topic_id,
                partition: p.partition,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                log_start_offset: p.log_start_offset,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                last_sent: None,
            })
        })
        .collect();
    if version < 7 {
        return Ok((0, requested, false));
    }
    let forgotten: Vec<(String, uuid::Uuid, i32)> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.0.as_str().to_string(), t.topic_id, *p))
        })
        .collect();
    let resolved = broker
        .fetch_sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .resolve(req.session_id, req.session_epoch, requested, &forgotten);
    match resolved {
        Resolved::Error(code) => Err(code),
        Resolved::Full {
            session_id,
            partitions,
        } => Ok((session_id, partitions, false)),
        Resolved::Incremental {
            session_id,
            partitions,
        } => Ok((session_id, partitions, true)),
    }
}

/// When a fetch is answered: once `min_bytes` are there, an error, or its deadline.
struct Answer {
    broker: Arc<Broker>,
    version: i16,
    session_id: i32,
    min_bytes: i64,
    max_wait: Duration,
    deadline: tokio::time::Instant,
}

impl Answer {
    /// Reads, parks on the partitions' notifiers (followers': their log growing; consumers':
    /// the high watermark moving) and reads again, until the answer is due.
    async fn when_ready(&self, reads: &Reads<'_>) -> Reply {
        loop {
            let notify = Arc::new(Notify::new());
            // Registered before reading, so an append after the read wakes this fetch.
            if !self.max_wait.is_zero() {
                for p in reads.wanted.iter().filter_map(|w| w.partition.as_ref()) {
                    match reads.follower {
                        Some(_) => p.add_follower_waiter(&notify),
                        None => p.add_waiter(&notify),
                    }
                }
            }
            let read = reads.read();
            for (p, id) in &read.may_join {
                let join = crate::isr::IsrChangeKind::Join(*id);
                crate::isr::request_change(&self.broker, p, join);
            }
            let timed_out = tokio::time::Instant::now() >= self.deadline;
            if read.bytes >= self.min_bytes.max(1) || read.answer_now || timed_out {
                return finish(&self.broker, self.version, self.session_id, read);
            }
            let parked = self.broker.metrics.parked_fetches.hold();
            let woken = tokio::time::timeout_at(self.deadline, notify.notified()).await;
            drop(parked);
            if woken.is_err() {
                return finish(&self.broker, self.version, self.session_id, reads.read());
            }
        }
    }
}

fn finish(broker: &Broker, version: i16, session_id: i32, read: Read) -> Reply {
    for (p, bytes, records) in &read.counted {
        match p {
            Some(p) => p.stats.fetched(*bytes, *records),
            None => broker.metrics.replication_out_bytes.add(*bytes),
        }
    }
    let mut response = read.response;
    response.session_id = session_id;
    super::steer::fetch(broker, version, &mut response);
    if session_id != 0 {
        broker
            .fetch_sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sent(session_id, &read.sent);
    }
    Reply::Fetch {
        response,
        slices: read.slices,
    }
}

struct Reads<'a> {
    broker: &'a Broker,
    wanted: &'a [Wanted],
    max_bytes: i64,
    read_committed: bool,
    incremental: bool,
    by_id: bool,
    /// A follower's fetch: read to the log end, and its fetch state recorded.
    follower: Option<Follower>,
    /// A consumer's rack (Fetch v11+, maybe empty): it may read from a follower.
    rack: Option<String>,
}

/// A fetching follower: its id, the broker epoch its fetch carries, and the epoch of its
/// live registration in this broker's metadata (None: fenced or unknown).
#[derive(Clone, Copy)]
struct Follower {
    id: i32,
    epoch: i64,
    registered: Option<i64>,
}

impl Follower {
    fn new(broker: &Broker, id: i32, epoch: i64) -> Follower {
        let image = broker.meta.image();
        let registered = image
            .brokers
            .get(&id)
            .filter(|b| !b.fenced)
            .map(|b| b.epoch);
        Follower {
            id,
            epoch,
            registered,
        }
    }

    /// An older incarnation than the registered one (Kafka's stale replica epoch check).
    fn stale(&self) -> bool {
        self.epoch != -1 && self.registered.is_some_and(|r| r > self.epoch)
    }

    /// Whether its fetches may bring it into the ISR: live, in the epoch it is registered
    /// with, or not naming one (Kafka's `isBrokerEpochIsrEligible`).
    fn isr_eligible(&self) -> bool {
        self.registered
            .is_some_and(|r| self.epoch == -1 || self.epoch == r)
    }
}

struct Read {
    response: FetchResponse,
    slices: Vec<(Bytes, crate::response::Records)>,
    bytes: i64,
    /// An error, a diverging follower or a preferred read replica: answered at once.
    answer_now: bool,
    /// (topic, topic id, partition, high watermark, log start) of every partition answered.
    sent: Vec<(String, uuid::Uuid, i32, i64, i64)>,
    /// Partitions whose fetching follower may join the ISR.
    may_join: Vec<(Arc<Partition>, i32)>,
    /// Bytes and records of each partition's slice, counted once the answer goes: for a
    /// consumer with its partition, for a follower as replication.
    counted: Vec<(Option<Arc<Partition>>, u64, i64)>,
}

impl Reads<'_> {
    fn read(&self) -> Read {
        let mut out = Read {
            response: FetchResponse::default(),
            slices: Vec::new(),
            bytes: 0,
            answer_now: false,
            sent: Vec::new(),
            may_join: Vec::new(),
            counted: Vec::new(),
        };
        for w in self.wanted {
            let at = &w.at;
            let (pd, has_records) = self.read_partition(w, &mut out);
            let news = pd.error_code != 0
                || has_records
                || at.last_sent != Some((pd.high_watermark, pd.log_start_offset));
            if self.incremental && !news {
                continue;
            }
            out.sent.push((
                at.topic.clone(),
                at.topic_id,
                at.partition,
                pd.high_watermark,
                pd.log_start_offset,
            ));
            self.place(&mut out.response, at, pd);
        }
        out
    }

    /// A consumer's read, up to the high watermark: from the leader, or from a follower
    /// (Fetch v11+); a leader that prefers another replica for the consumer's rack names
    /// it instead, answered at once (KIP-392).
    fn consumer_read(
        &self,
        p: &Arc<Partition>,
        at: &SessionPartition,
        limit: u64,
        pd: &mut PartitionData,
        out: &mut Read,
    ) -> Result<crate::partition::Read, error::Code> {
        let isolation = match self.read_committed {
            true => Isolation::Committed,
            false => Isolation::HighWatermark,
        };
        let read = |p: &Partition| {
            p.read(at.fetch_offset, limit.max(1), isolation)
                .map_err(|e| error::log_error(&e))
        };
        let Some(rack) = &self.rack else {
            p.leader_epoch_checked(at.current_leader_epoch)?;
            return read(p);
        };
        p.replica_epoch_checked(at.current_leader_epoch)?;
        let Some(id) = super::read_replica::preferred(self.broker, p, rack, at.fetch_offset) else {
            return read(p);
        };
        pd.preferred_read_replica = BrokerId(id);
        out.answer_now = true;
        Ok(p.offsets_only())
    }

    /// One partition's answer (and whether it carries records); its slice, bytes, errors
    /// and a follower that may join the ISR go into `out`.
    fn read_partition(&self, w: &Wanted, out: &mut Read) -> (PartitionData, bool) {
        let at = &w.at;
        let mut pd = PartitionData::default();
        pd.partition_index = at.partition;
        pd.high_watermark = -1;
        pd.last_stable_offset = -1;
        pd.log_start_offset = -1;
        pd.preferred_read_replica = BrokerId(-1);
        pd.aborted_transactions = self.read_committed.then(Vec::new);
        pd.records = Some(Bytes::new());
        let Some(p) = &w.partition else {
            let id = if self.by_id {
                at.topic_id
            } else {
                uuid::Uuid::nil()
            };
            pd.error_code = super::steer::not_hosted(self.broker, &at.topic, id, at.partition);
            out.answer_now = true;
            return (pd, false);
        };
        let limit = i64::from(at.max_bytes.max(0))
            .min(self.max_bytes - out.bytes)
            .max(0) as u64;
        let read = match self.follower {
            None => self.consumer_read(p, at, limit, &mut pd, out),
            Some(f) => follower_read(p, f, at, limit, &mut pd, &mut out.may_join),
        };
        // A diverging follower is answered at once (Kafka's rule), not at its max wait.
        if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
            out.answer_now = true;
        }
        let info = match read {
            Ok(info) => info,
            Err(c) => {
                // Kafka answers an error with -1 watermarks, OFFSET_OUT_OF_RANGE included:
                // the client asks ListOffsets where to go.
                pd.error_code = c;
                out.answer_now = true;
                return (pd, false);
            }
        };
        pd.high_watermark = info.high_watermark;
        pd.last_stable_offset = info.last_stable_offset;
        pd.log_start_offset = info.log_start_offset;
        if let Some(aborted) = &info.aborted {
            pd.aborted_transactions = Some(aborted.iter().map(aborted_transaction).collect());
        }
        // A batch larger than the limits is still sent when it is the first data of the
        // response, so a consumer always makes progress (KIP-74).
        let Some(slice) = info.slice.filter(|s| out.bytes == 0 || s.len <= limit) else {
            return (pd, false);
        };
        // A throttled moving replica gets no records while the leader's rate is used up.
        if self.follower.is_some_and(|f| p.leader_throttled(f.id)) {
            let quota = &self.broker.replicas.quotas.leader;
            if quota.exceeded() {
                return (pd, false);
            }
            quota.record(slice.len);
        }
        out.bytes += slice.len as i64;
        let counted = self.follower.is_none().then(|| Arc::clone(p));
        let counts = (slice.len, info.next_offset - at.fetch_offset);
        let records = match crate::response::Records::hold(slice) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(topic = %at.topic, partition = at.partition, error = %e, "reading records failed");
                pd.error_code = crate::error::code(ResponseError::KafkaStorageError);
                out.answer_now = true;
                return (pd, false);
            }
        };
        out.counted.push((counted, counts.0, counts.1));
        let marker = new_marker();
        pd.records = Some(marker.clone());
        out.slices.push((marker, records));
        (pd, true)
    }

    /// Adds a partition's answer under its topic (the last of that topic: the request's
    /// order is kept).
    fn place(&self, response: &mut FetchResponse, at: &SessionPartition, pd: PartitionData) {
        let same_topic = |t: &&mut FetchableTopicResponse| {
            if self.by_id {
                t.topic_id == at.topic_id
            } else {
                t.topic.0.as_str() == at.topic
            }
        };
        match response.responses.iter_mut().rev().find(same_topic) {
            Some(t) => t.partitions.push(pd),
            None => {
                let mut t = FetchableTopicResponse::default();
                if self.by_id {
                    t.topic_id = at.topic_id;
                } else {
                    t.topic = TopicName(StrBytes::from_string(at.topic.clone()));
                }
                t.partitions.push(pd);
                response.responses.push(t);
            }
        }
    }
}

/// A follower's read (Kafka's `Partition.fetchRecords` for a replica): this broker must lead
/// and the follower be a replica; a log that diverged from this one at the follower's last
/// fetched epoch is told where (`DivergingEpoch`, no records, its fetch state left alone);
/// otherwise its fetch offset is recorded (moving the high watermark) and it reads to the
/// log end.
fn follower_read(
    p: &Arc<Partition>,
    f: Follower,
    at: &SessionPartition,
    limit: u64,
    pd: &mut PartitionData,
    may_join: &mut Vec<(Arc<Partition>, i32)>,
) -> Result<crate::partition::Read, error::Code> {
    p.leader_epoch_checked(at.current_leader_epoch)?;
    if !p.is_replica(f.id) || f.stale() {
        return Err(code(ResponseError::NotLeaderOrFollower));
    }
    if at.last_fetched_epoch >= 0 {
        let (epoch, end) = p.end_offset_for_epoch(at.last_fetched_epoch);
        if epoch < 0 || end < 0 {
            return Err(code(ResponseError::OffsetOutOfRange));
        }
        if epoch < at.last_fetched_epoch || end < at.fetch_offset {
            pd.diverging_epoch.epoch = epoch;
            pd.diverging_epoch.end_offset = end;
            return Ok(p.offsets_only());
        }
    }
    let read = p
        .read(at.fetch_offset, limit.max(1), Isolation::LogEnd)
        .map_err(|e| error::log_error(&e))?;
    if p.follower_fetched((f.id, f.epoch), at.fetch_offset, at.log_start_offset) && f.isr_eligible()
    {
        may_join.push((Arc::clone(p), f.id));
    }
    Ok(read)
}

fn aborted_transaction(a: &strom_log::txn_index::AbortedTxn) -> AbortedTransaction {
    let mut t = AbortedTransaction::default();
    t.producer_id = kafka_protocol::messages::ProducerId(a.producer_id);
    t.first_offset = a.first_offset;
    t
}
