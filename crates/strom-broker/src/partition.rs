//! `Partition`: one hosted partition, the only way to its log. A leader appends producers'
//! batches (idempotence checked, its leader epoch stamped), reads are bounded by the high
//! watermark (consumers) or the log end (followers, internal loading), and the high watermark
//! comes from `PartitionState`, fed by the log's durable offset (and, part 2, followers'
//! fetches). Parked fetches and acks=all produces wait for the high watermark to move.

pub mod replication;
pub mod state;
pub mod txn;

use crate::error::{self, BrokerError, Code};
use crate::producer_snapshot;
use crate::producer_state::{BatchMeta, ProducerStates, SeqCheck};
use kafka_protocol::error::ResponseError;
use state::{Assignment, PartitionState, Transition};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use strom_log::txn_index::AbortedTxn;
use strom_log::{FileSlice, Log, LogDir, LogError, TimestampOffset};
use strom_proto::BatchHeader;
use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

/// Parked fetches one partition wakes; older registrations are dropped past this.
pub const WAITERS_PER_PARTITION_MAX: usize = 10_000;

/// How far a read may go (Kafka's `FetchIsolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the log end: followers, and the broker loading its own internal partitions.
    LogEnd,
    /// Up to the high watermark: read_uncommitted consumers.
    HighWatermark,
    /// Up to the last stable offset, with the aborted transactions the read overlaps:
    /// read_committed consumers.
    Committed,
}

/// What a read found, with the partition's offsets at the time of the read.
#[derive(Debug, Clone)]
pub struct Read {
    pub slice: Option<FileSlice>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Read committed: the aborted transactions the read overlaps.
    pub aborted: Option<Vec<AbortedTxn>>,
    /// Where a reader goes on after the slice (`ReadInfo::next_offset`).
    pub next_offset: i64,
}

/// What a produce to one partition got.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    /// Nothing was written (an idempotent retry).
    pub duplicate: bool,
    /// The leadership that appended it: acks=all waits only within it.
    pub leader_epoch: i32,
}

/// A transactional append: what was appended, and the confirmation its answer waits for.
#[derive(Debug)]
pub struct TxnAppended {
    pub appended: Appended,
    pub check: txn::TxnCheck,
}

/// What a produce waits for before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// acks=1: the leader's own log holds the records durably.
    Local,
    /// acks=all: the high watermark passed them (durable on every in-sync replica).
    HighWatermark,
    /// DeleteRecords: every in-sync replica's log starts past them.
    LowWatermark,
}

/// (what, offset, the leader epoch it was registered in (Local: -1), answer).
type Waiter = (Wait, i64, i32, oneshot::Sender<Result<i64, Code>>);

/// The state and the produce waiters, under one lock so that a waiter is never registered
/// after the move it waits for, and every waiter is answered after the state moved (so a
/// producer that was answered finds its records visible).
#[derive(Debug)]
struct Shared {
    state: PartitionState,
    waiters: Vec<Waiter>,
}

impl Shared {
    /// The offset below which `wait` is satisfied (`log_start`: the leader's own).
    fn reached(&self, wait: Wait, log_start: i64) -> i64 {
        match wait {
            Wait::Local => self.state.local_offset(),
            Wait::HighWatermark => self.state.high_watermark(),
            Wait::LowWatermark => self.state.low_watermark(log_start),
        }
    }
}

#[derive(Debug)]
pub struct Partition {
    /// Shared by the topic's partitions on this broker.
    pub topic: Arc<str>,
    pub index: i32,
    pub topic_id: Uuid,
    log: Arc<Log>,
    /// Held across the sequence check, the append and the state update, so they are atomic;
    /// a follower's appends and truncations and a change of role take it too (first).
    producers: Mutex<ProducerStates>,
    /// Parked consumer fetches: woken when the high watermark moves.
    waiters: Mutex<Vec<Weak<Notify>>>,
    /// Parked follower fetches: woken when the leader's log grows.
    follower_waiters: Mutex<Vec<Weak<Notify>>>,
    shared: Mutex<Shared>,
    /// Transactions opened here awaiting their coordinator's confirmation (`txn.rs`).
    confirmations: Mutex<txn::Confirmations>,
    /// Replication throttles on this replica (`replication_quota.rs`): bit 0 as a leader,
    /// bit 1 as a follower.
    throttled: std::sync::atomic::AtomicU8,
    /// The log's segment count when producers' state was last snapshotted or loaded: a
    /// change (a roll) calls for a new snapshot.
    segments_at_snapshot: std::sync::atomic::AtomicUsize,
    /// Client traffic counted for the topic (and the partition, when kept).
    pub stats: crate::metrics::PartitionStats,
    me: Weak<Partition>,
}

/// A replica's view of its partition's replication (`Partition::health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub leader: bool,
    pub replicas: usize,
    pub isr: usize,
    pub under_min_isr: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Partition {
    /// A partition over an opened log: idempotent producers rebuilt from its tail, the high
    /// watermark at what the log holds durably (a flush is asked for the rest).
    pub(crate) fn open(
        topic: Arc<str>,
        index: i32,
        topic_id: Uuid,
        log: Arc<Log>,
        (node_id, stats): (i32, crate::metrics::PartitionStats),
    ) -> Result<Arc<Partition>, BrokerError> {
        let state = PartitionState::new(node_id, log.durable_offset(), log.high_watermark());
        let p = Arc::new_cyclic(|me| Partition {
            topic,
            index,
            topic_id,
            log,
            producers: Mutex::new(ProducerStates::default()),
            waiters: Mutex::new(Vec::new()),
            follower_waiters: Mutex::new(Vec::new()),
            confirmations: Mutex::default(),
            shared: Mutex::new(Shared {
                state,
                waiters: Vec::new(),
            }),
            throttled: std::sync::atomic::AtomicU8::new(0),
            segments_at_snapshot: std::sync::atomic::AtomicUsize::new(0),
            stats,
            me: me.clone(),
        });
        p.load_producers()?;
        Ok(p)
    }

    /// Takes the image's assignment of the partition; a replica that becomes leader counts
    /// what its log holds durably, and asks for the rest to be synced.
    pub(crate) fn apply(&self, a: &Assignment) -> Transition {
        // Serialised with a follower's appends: none lands after the role changed.
        let _producers = lock(&self.producers);
        let leading = a.leader == self.node_id();
        if leading && a.leader_epoch > self.leader_epoch() {
            // The epoch starts at the log end before any batch of it is appended.
            if let Err(e) = self.log.assign_leader_epoch(a.leader_epoch) {
                tracing::error!(partition = %self.log.name(), error = %e, "cannot record the leader epoch");
            }
        }
        let mut shared = lock(&self.shared);
        let before = shared.state.high_watermark();
        let transition = shared.state.apply(a, self.log.log_end_offset(), now_ms());
        shared.state.set_local_offset(self.log.durable_offset());
        let leader = shared.state.is_leader();
        let epoch = shared.state.leader_epoch();
        // acks=all and DeleteRecords wait within one leadership: once it ended, this replica
        // will not answer them (Kafka's answer). A wait for the local log goes on.
        let (stale, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut shared.waiters)
            .into_iter()
            .partition(|(w, _, e, _)| *w != Wait::Local && (!leader || *e != epoch));
        shared.waiters = keep;
        for (_, _, _, tx) in stale {
            let _ = tx.send(Err(error::code(ResponseError::NotLeaderOrFollower)));
        }
        self.settle(shared, before);
        if !leader {
            // Parked fetches learn of the move now, not at their max wait.
            self.wake_fetchers();
        }
        if leader {
            self.track_durable(self.log.log_end_offset() - 1);
        }
        transition
    }

    pub fn is_leader(&self) -> bool {
        lock(&self.shared).state.is_leader()
    }

    /// Its replication health, read under one lock.
    pub fn health(&self) -> Health {
        let shared = lock(&self.shared);
        let s = &shared.state;
        Health {
            leader: s.is_leader(),
            replicas: s.replicas().len(),
            isr: s.isr().len(),
            under_min_isr: s.under_min_isr(),
        }
    }

    fn node_id(&self) -> i32 {
        lock(&self.shared).state.node_id()
    }

    pub fn leader_epoch(&self) -> i32 {
        lock(&self.shared).state.leader_epoch()
    }

    pub fn high_watermark(&self) -> i64 {
        lock(&self.shared).state.high_watermark()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    pub fn segment_count(&self) -> usize {
        self.log.segment_count()
    }

    /// The timestamp of the record at `offset` (below the high watermark) as its batch's
    /// header tells it: the batch's max timestamp for its last record, its first timestamp
    /// for the others (exact for the first; the records' own are not decoded). None without
    /// such a batch, or when its header cannot be read. A `LogAppendTime` batch, or one the
    /// cleaner marked with a delete horizon (which its base timestamp then holds), gives its
    /// max timestamp.
    pub fn record_timestamp(&self, offset: i64) -> Option<i64> {
        use std::os::unix::fs::FileExt;
        let read = self.read(offset, 1, Isolation::HighWatermark).ok()?;
        let slice = read.slice?;
        let mut buf = [0u8; strom_proto::batch::HEADER_BYTES];
        slice.file.read_exact_at(&mut buf, slice.position).ok()?;
        let h = strom_proto::BatchHeader::parse(&buf).ok()?;
        const DELETE_HORIZON: i16 = 0x40;
        Some(match h.timestamp_type() {
            strom_proto::TimestampType::LogAppendTime => h.max_timestamp,
            _ if h.attributes & DELETE_HORIZON != 0 => h.max_timestamp,
            _ if offset >= h.last_offset() => h.max_timestamp,
            _ => h.base_timestamp,
        })
    }

    /// The log's directory name, `<topic>-<partition>`.
    pub fn log_name(&self) -> &str {
        self.log.name()
    }

    /// Whether `dir` holds this partition's log.
    pub fn is_in(&self, dir: &LogDir) -> bool {
        dir.get(self.log.name())
            .is_some_and(|l| Arc::ptr_eq(&l, &self.log))
    }

    pub(crate) fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// A request's `current_leader_epoch` against this replica's (Kafka's
    /// `Partition.checkCurrentLeaderEpoch`: -1 skips the check; older is fenced, newer is
    /// not known here yet), then that this replica leads; the leader epoch, under one lock.
    pub fn leader_epoch_checked(&self, current: i32) -> Result<i32, Code> {
        let shared = lock(&self.shared);
        let epoch = shared.state.leader_epoch();
        match current {
            c if c >= 0 && c < epoch => Err(error::code(ResponseError::FencedLeaderEpoch)),
            c if c > epoch => Err(error::code(ResponseError::UnknownLeaderEpoch)),
            _ if !shared.state.is_leader() => Err(error::code(ResponseError::NotLeaderOrFollower)),
            _ => Ok(epoch),
        }
    }

    /// Reads whole batches from `offset`, bounded by `isolation`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        isolation: Isolation,
    ) -> Result<Read, LogError> {
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset_at(high_watermark);
        let bound = match isolation {
            Isolation::LogEnd => None,
            Isolation::HighWatermark => Some(high_watermark),
            Isolation::Committed => Some(last_stable_offset),
        };
        let info = self.log.read(offset, max_bytes, bound)?;
        let aborted = (isolation == Isolation::Committed).then(|| match &info.slice {
            Some(_) => self.log.aborted_txns(offset, last_stable_offset),
            None => Vec::new(),
        });
        Ok(Read {
            slice: info.slice,
            high_watermark,
            last_stable_offset,
            log_start_offset: info.log_start_offset,
            log_end_offset: info.log_end_offset,
            aborted,
            next_offset: info.next_offset,
        })
    }

    /// A read that returns no records, only the partition's offsets.
    pub fn offsets_only(&self) -> Read {
        let high_watermark = self.high_watermark();
        Read {
            slice: None,
            high_watermark,
            last_stable_offset: self.last_stable_offset_at(high_watermark),
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
            aborted: None,
            next_offset: -1,
        }
    }

    /// The first record at or after `timestamp_ms` below the high watermark (Kafka does not
    /// answer consumers with offsets they cannot fetch yet).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        let hw = self.high_watermark();
        Ok(self
            .log
            .offset_for_timestamp(timestamp_ms)?
            .filter(|t| t.offset < hw))
    }

    /// The record with the largest timestamp below the high watermark.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        let hw = self.high_watermark();
        Ok(self.log.max_timestamp()?.filter(|t| t.offset < hw))
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark);
    /// beyond the high watermark is out of range, as in Kafka.
    pub fn delete_records(&self, offset: i64) -> Result<i64, Code> {
        self.leader_epoch_checked(-1)?;
        let hw = self.high_watermark();
        let offset = if offset == -1 { hw } else { offset };
        if offset < 0 || offset > hw {
            return Err(error::code(ResponseError::OffsetOutOfRange));
        }
        self.log
            .delete_records_before(offset)
            .map_err(|e| error::log_error(&e))
    }

    /// Appends a producer's record set as the leader: batch checks, the idempotence checks,
    /// the leader epoch stamped in each batch; then asks for it to be synced, which moves the
    /// high watermark.
    pub fn append_as_leader(&self, records: &mut [u8]) -> Result<Appended, (Code, String)> {
        self.append_leader(records, false).map(|a| a.appended)
    }

    /// `append_as_leader` for a transactional producer's request: a batch that opens its
    /// transaction here asks for the coordinator's confirmation (`txn.rs`).
    pub fn append_transactional(&self, records: &mut [u8]) -> Result<TxnAppended, (Code, String)> {
        self.append_leader(records, true)
    }

    fn append_leader(
        &self,
        records: &mut [u8],
        confirm: bool,
    ) -> Result<TxnAppended, (Code, String)> {
        let headers = check_batches(records)?;
        // Under `producers`, which a change of role takes too: the epoch checked is the one
        // the batches are appended and stamped in.
        let mut producers = lock(&self.producers);
        let epoch = self
            .leader_epoch_checked(-1)
            .map_err(|c| (c, "not the leader".to_string()))?;
        let opened_before = headers
            .iter()
            .find(|h| h.is_transactional())
            .and_then(|h| producers.open_txn_of(h.producer_id));
        if let Some(refused) = check_sequences(&mut producers, &headers) {
            let appended = refused?;
            // A retried batch waits for its transaction's confirmation like the first.
            let check = match confirm && opened_before.is_some() {
                true => self.txn_check(&headers, opened_before),
                false => txn::TxnCheck::None,
            };
            let appended = Appended {
                leader_epoch: epoch,
                ..appended
            };
            return Ok(TxnAppended { appended, check });
        }
        stamp_leader_epoch(records, &headers, epoch);
        let info = self
            .log
            .append(records)
            .map_err(|e| (error::log_error(&e), e.to_string()))?;
        // Offsets are assigned now: record the stored headers.
        let mut at = 0usize;
        let mut stored = Vec::with_capacity(headers.len());
        for h in &headers {
            if let Some(s) = records.get(at..).and_then(|b| BatchHeader::parse(b).ok()) {
                producers.record(&s);
                stored.push(s);
            }
            at += h.size();
        }
        let check = match confirm {
            true => self.txn_check(&stored, opened_before),
            false => txn::TxnCheck::None,
        };
        self.snapshot_on_roll(&producers);
        drop(producers);
        wake(&self.follower_waiters);
        self.track_durable(info.last_offset);
        let appended = Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
            duplicate: false,
            leader_epoch: epoch,
        };
        Ok(TxnAppended { appended, check })
    }

    /// Resolves once `wait` passes `offset` (with the offset reached), or with the error that
    /// stopped it; a wait other than `Local` only within the current leadership.
    pub fn wait_for(&self, wait: Wait, offset: i64) -> oneshot::Receiver<Result<i64, Code>> {
        let epoch = self.leader_epoch();
        self.wait_at(wait, offset, epoch)
    }

    /// `wait_for` within the leadership of `epoch` (the one that appended the records): if
    /// this replica no longer leads in it, NOT_LEADER_OR_FOLLOWER at once.
    pub fn wait_at(
        &self,
        wait: Wait,
        offset: i64,
        epoch: i32,
    ) -> oneshot::Receiver<Result<i64, Code>> {
        let (tx, rx) = oneshot::channel();
        let mut shared = lock(&self.shared);
        let leading = shared.state.is_leader() && shared.state.leader_epoch() == epoch;
        let reached = shared.reached(wait, self.log.log_start_offset());
        if wait != Wait::Local && !leading {
            let _ = tx.send(Err(error::code(ResponseError::NotLeaderOrFollower)));
        } else if reached > offset {
            let _ = tx.send(Ok(reached));
        } else {
            let epoch = if wait == Wait::Local { -1 } else { epoch };
            shared.waiters.push((wait, offset, epoch, tx));
        }
        drop(shared);
        // The flush that moves it may have been asked before a failure: make sure it runs.
        if offset < self.log.log_end_offset() {
            self.track_durable(offset);
        }
        rx
    }

    /// Asks the log to sync up to `offset`; when it has, the high watermark moves.
    fn track_durable(&self, offset: i64) {
        // Already durable (a flush without waiters, `flush.ms` or `flush.messages`, may have
        // got there first): `Log::on_durable` answers at once, and the state still moves.
        if offset < 0 {
            return;
        }
        let me = self.me.clone();
        self.log.on_durable(
            offset,
            Box::new(move |r| {
                if let Some(p) = me.upgrade() {
                    p.on_durable(r);
                }
            }),
        );
    }

    /// The log synced up to `durable` (or failed): the high watermark moves and the waiters
    /// it satisfies are answered.
    fn on_durable(&self, durable: Result<i64, LogError>) {
        let mut shared = lock(&self.shared);
        match durable {
            Ok(offset) => {
                // Never past the log end (a sync that raced a truncation).
                let offset = offset.min(self.log.log_end_offset());
                if offset <= shared.state.local_offset() {
                    return;
                }
                let before = shared.state.high_watermark();
                shared.state.set_local_offset(offset);
                self.settle(shared, before);
            }
            // A sync asked for offsets a truncation has since removed: nothing failed.
            Err(LogError::OffsetOutOfRange { .. }) => {}
            Err(e) => {
                let failed = std::mem::take(&mut shared.waiters);
                drop(shared);
                for (_, _, _, tx) in failed {
                    let _ = tx.send(Err(error::log_error(&e)));
                }
            }
        }
    }

    /// Answers the waiters the state now satisfies (after the lock is released), and wakes
    /// parked fetches if the high watermark moved past `before`.
    fn settle(&self, mut shared: MutexGuard<'_, Shared>, before: i64) {
        let start = self.log.log_start_offset();
        let (done, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut shared.waiters)
            .into_iter()
            .partition(|(w, o, _, _)| *o < shared.reached(*w, start));
        shared.waiters = keep;
        let answers: Vec<_> = done
            .into_iter()
            .map(|(w, _, _, tx)| (tx, shared.reached(w, start)))
            .collect();
        let hw = shared.state.high_watermark();
        let moved = hw > before;
        if moved {
            self.log.set_high_watermark(hw);
        }
        drop(shared);
        for (tx, reached) in answers {
            let _ = tx.send(Ok(reached));
        }
        if moved {
            self.wake_fetchers();
        }
    }

    /// Registers a parked fetch to be woken when the high watermark next moves.
    pub fn add_waiter(&self, waiter: &Arc<Notify>) {
        let mut w = lock(&self.waiters);
        w.retain(|x| x.strong_count() > 0);
        if w.len() >= WAITERS_PER_PARTITION_MAX {
            // The oldest is answered now (with what it has) rather than dropped unawoken.
            if let Some(oldest) = w.remove(0).upgrade() {
                oldest.notify_one();
            }
        }
        w.push(Arc::downgrade(waiter));
    }

    pub(crate) fn wake_fetchers(&self) {
        wake(&self.waiters);
        wake(&self.follower_waiters);
    }

    /// Registers a parked follower fetch, woken when this leader's log grows.
    pub fn add_follower_waiter(&self, waiter: &Arc<Notify>) {
        let mut w = lock(&self.follower_waiters);
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(waiter));
    }

    /// The partition is no longer hosted: its waiters are told.
    pub(crate) fn close(&self) {
        let waiters = std::mem::take(&mut lock(&self.shared).waiters);
        for (_, _, _, tx) in waiters {
            let _ = tx.send(Err(error::code(ResponseError::NotLeaderOrFollower)));
        }
        self.wake_fetchers();
    }

    /// Rebuilds idempotent producers' state: the newest snapshot within the log, then the
    /// batch headers after it (with no snapshot, those of the last two segments).
    fn load_producers(&self) -> Result<(), BrokerError> {
        let mut producers = lock(&self.producers);
        self.load_producers_into(&mut producers)
    }

    fn load_producers_into(&self, producers: &mut ProducerStates) -> Result<(), BrokerError> {
        let segments = self.log.segment_count();
        let end = self.log.log_end_offset();
        let from = match producer_snapshot::load_latest(self.log.dir(), end) {
            Some((offset, state)) => {
                *producers = state;
                offset
            }
            None => {
                *producers = ProducerStates::default();
                let bases = self.log.segment_base_offsets();
                let last_two = bases.len().checked_sub(2).and_then(|i| bases.get(i));
                last_two.copied().unwrap_or(0)
            }
        };
        // From the snapshot over every batch still on disk (below the log start too: a
        // DeleteRecords inside a segment leaves its producers' batches there).
        let first = self
            .log
            .segment_base_offsets()
            .first()
            .copied()
            .unwrap_or(0);
        let mut failed = None;
        self.log.for_each_header(from.max(first), |h| {
            if h.last_offset() < from || failed.is_some() {
                return;
            }
            // A marker's type is in its record: it is read (markers are small).
            let marker = match h.is_control() {
                true => self.marker_bytes(h.base_offset),
                false => Ok(None),
            };
            if let Err(e) =
                marker.and_then(|bytes| self.record_stored(producers, h, bytes.as_deref()))
            {
                failed = Some(e);
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        self.segments_at_snapshot.store(segments, Ordering::Relaxed);
        self.log
            .set_first_unstable_offset(producers.first_unstable());
        Ok(())
    }

    /// After an append: when the log rolled a segment since the last snapshot, producers'
    /// state is snapshotted as of the log end (under `producers`, so the two agree). A
    /// failed write is only logged: the state is then rebuilt from an older snapshot.
    fn snapshot_on_roll(&self, producers: &ProducerStates) {
        self.log
            .set_first_unstable_offset(producers.first_unstable());
        let segments = self.log.segment_count();
        if self.segments_at_snapshot.swap(segments, Ordering::Relaxed) == segments {
            return;
        }
        let at = self.log.log_end_offset();
        if let Err(e) = producer_snapshot::write(self.log.dir(), at, producers) {
            tracing::warn!(partition = %self.log_name(), error = %e, "writing a producer-state snapshot failed");
        }
    }
}

fn wake(waiters: &Mutex<Vec<Weak<Notify>>>) {
    let waiters = std::mem::take(&mut *lock(waiters));
    for w in waiters.iter().filter_map(Weak::upgrade) {
        w.notify_one();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The batch headers of a producer's record set, each batch's record count checked.
fn check_batches(records: &[u8]) -> Result<Vec<BatchHeader>, (Code, String)> {
    let headers: Vec<BatchHeader> = strom_proto::batch::split(records)
        .map_err(|e| (error::batch_error(&e), e.to_string()))?
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    for h in &headers {
        if h.is_control() {
            return Err((
                error::code(ResponseError::InvalidRecord),
                "clients may not write control batches".into(),
            ));
        }
        if h.record_count != h.last_offset_delta + 1 {
            return Err((
                error::code(ResponseError::CorruptMessage),
                format!(
                    "batch has {} records but a last offset delta of {}",
                    h.record_count, h.last_offset_delta
                ),
            ));
        }
    }
    Ok(headers)
}

/// The idempotence checks: None to append; else the answer (a duplicate's offsets, or the
/// refusal).
fn check_sequences(
    producers: &mut ProducerStates,
    headers: &[BatchHeader],
) -> Option<Result<Appended, (Code, String)>> {
    if let [h] = headers {
        return match producers.check(h) {
            SeqCheck::Append => None,
            SeqCheck::Duplicate(BatchMeta {
                first_offset,
                last_offset,
                ..
            }) => Some(Ok(Appended {
                base_offset: first_offset,
                last_offset,
                log_append_time_ms: -1,
                duplicate: true,
                leader_epoch: -1,
            })),
            SeqCheck::Refuse(code) => Some(Err((code, "sequence check failed".into()))),
        };
    }
    if headers
        .iter()
        .any(|h| h.producer_id >= 0 && h.base_sequence >= 0)
    {
        for h in headers {
            if let SeqCheck::Refuse(code) = producers.check(h) {
                return Some(Err((code, "sequence check failed".into())));
            }
        }
    }
    None
}

/// Kafka's leader writes its leader epoch into every batch it appends (outside the CRC).
fn stamp_leader_epoch(records: &mut [u8], headers: &[BatchHeader], epoch: i32) {
    let mut at = 0usize;
    for h in headers {
        if let Some(batch) = records.get_mut(at..at + h.size()) {
            strom_proto::batch::set_partition_leader_epoch(batch, epoch);
        }
        at += h.size();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_log::{LogConfig, LogDirOptions};

    /// Partition 0 of topic `t` over `log`, on node 1.
    fn open_test(log: Arc<Log>) -> Arc<Partition> {
        let stats = crate::metrics::PartitionStats {
            topic: Arc::new(crate::metrics::TopicStats::new(Arc::default())),
            own: None,
        };
        Partition::open("t".into(), 0, Uuid::nil(), log, (1, stats)).unwrap()
    }

    #[test]
    fn a_sync_the_partition_did_not_ask_for_still_moves_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path(), LogDirOptions::default(), &|_| {
            LogConfig::default()
        })
        .unwrap();
        let log = dir.create("t", 0, LogConfig::default()).unwrap();
        let p = open_test(Arc::clone(&log));
        p.apply(&Assignment {
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
        });
        // Appended and synced behind the partition's back (as `flush.messages` does).
        let mut b = strom_proto::BatchBuilder::new(1_000);
        b.push(None, Some(b"v"), 1_000);
        log.append(&mut b.build()).unwrap();
        log.wait_durable(0).unwrap();
        let mut rx = p.wait_for(Wait::HighWatermark, 0);
        assert_eq!(rx.try_recv().ok(), Some(Ok(1)));
        assert_eq!(p.high_watermark(), 1);
        dir.close().unwrap();
    }

    /// A producer's batches all in segments deleted since (DeleteRecords), the partition
    /// reopened: the snapshot written at a roll still knows them, so a retried batch is a
    /// duplicate answered with its offsets, and the next one is in sequence. The reopen
    /// replays only the batches after the newest snapshot.
    #[test]
    fn producers_survive_a_reopen_from_their_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let small = LogConfig {
            segment_bytes: 1024,
            ..LogConfig::default()
        };
        let open_dir = || LogDir::open(tmp.path(), LogDirOptions::default(), &|_| small.clone());
        let dir = open_dir().unwrap();
        let log = dir.create("t", 0, small.clone()).unwrap();
        let alone = Assignment {
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
        };
        let batch = |pid: i64, seq: i32| {
            let mut b = strom_proto::BatchBuilder::new(1_000).producer(pid, 0, seq);
            b.push(None, Some(&[b'v'; 300][..]), 1_000);
            b.build()
        };
        let p = open_test(Arc::clone(&log));
        p.apply(&alone);
        let first = p.append_as_leader(&mut batch(7, 0)).unwrap();
        for seq in 0..12 {
            p.append_as_leader(&mut batch(8, seq)).unwrap();
        }
        p.log().wait_durable(p.log_end_offset() - 1).unwrap();
        assert!(
            !producer_snapshot::list(log.dir()).is_empty(),
            "no snapshot at a roll"
        );
        // Producer 7's only batch is deleted with its segment.
        log.delete_records_before(6).unwrap();
        assert!(log.log_start_offset() > first.last_offset);
        p.close();
        drop(p);
        drop(log);
        dir.close().unwrap();

        let dir = open_dir().unwrap();
        let log = dir.get("t-0").unwrap();
        let p = open_test(log);
        p.apply(&alone);
        let retried = p.append_as_leader(&mut batch(7, 0)).unwrap();
        assert!(
            retried.duplicate,
            "a retried batch of a known producer appended again"
        );
        assert_eq!(retried.base_offset, first.base_offset);
        assert!(!p.append_as_leader(&mut batch(7, 1)).unwrap().duplicate);
        let gap = p.append_as_leader(&mut batch(8, 20)).unwrap_err();
        assert_eq!(gap.0, error::code(ResponseError::OutOfOrderSequenceNumber));
        dir.close().unwrap();
    }

    #[test]
    fn an_acks_all_wait_ends_with_the_leadership_that_appended() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path(), LogDirOptions::default(), &|_| {
            LogConfig::default()
        })
        .unwrap();
        let log = dir.create("t", 0, LogConfig::default()).unwrap();
        let p = open_test(log);
        let leader = |leader: i32, epoch: i32| Assignment {
            leader,
            leader_epoch: epoch,
            partition_epoch: epoch,
            replicas: vec![1, 2],
            isr: vec![1, 2],
        };
        p.apply(&leader(1, 0));
        let mut b = strom_proto::BatchBuilder::new(1_000);
        b.push(None, Some(b"v"), 1_000);
        let appended = p.append_as_leader(&mut b.build()).unwrap();
        assert_eq!(appended.leader_epoch, 0);
        // Follower 2 has not fetched: the high watermark waits for it.
        let mut waiting = p.wait_at(Wait::HighWatermark, appended.last_offset, 0);
        let mut local = p.wait_at(Wait::Local, appended.last_offset, 0);
        assert!(waiting.try_recv().is_err());
        // Replica 2 takes over: the wait ends with NOT_LEADER_OR_FOLLOWER, never a success
        // this replica's high watermark could later give it.
        p.apply(&leader(2, 1));
        let not_leader = error::code(ResponseError::NotLeaderOrFollower);
        assert_eq!(waiting.try_recv().ok(), Some(Err(not_leader)));
        // Back as leader in a later epoch: a wait of the old leadership is refused at once.
        p.apply(&leader(1, 2));
        let mut stale = p.wait_at(Wait::HighWatermark, appended.last_offset, 0);
        assert_eq!(stale.try_recv().ok(), Some(Err(not_leader)));
        // The local sync is not a leadership's: it completes.
        p.log().wait_durable(appended.last_offset).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(matches!(local.try_recv(), Ok(Ok(_))));
        dir.close().unwrap();
    }
}
