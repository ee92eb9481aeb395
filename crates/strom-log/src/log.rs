//! A partition's log: an ordered list of segments, the last one active.
//!
//! Concurrency: one writer at a time (appends, rolls, truncation and retention take the
//! `writer` lock); readers take an `Arc` snapshot of the segment list under a read lock held
//! for a pointer copy, then read files with `pread`, so they never wait for an append.
//! Publication order: a batch is written, then its segment's `size`, then the log end offset,
//! each with `Release`; readers load the log end offset first. A reader therefore never sees
//! an offset whose bytes are not in the file.
//!
//! Invariants: `log_start_offset <= log_end_offset`; `durable_offset <= log_end_offset`;
//! `recovery_point <= log_end_offset`; segments are sorted by base offset and only the last
//! takes appends.

use crate::cleaner::{self, CleanOptions, CleanReport, Cleanable, SwapStep};
use crate::clock::Clock;
use crate::config::LogConfig;
use crate::epochs::EpochCache;
use crate::error::{io_err, LogError, Result};
use crate::flusher::{Request, Waiter};
use crate::log_dir::{DirHealth, DirShared};
use crate::segment::{self, FileSlice, Segment};
use crate::txn_index::AbortedTxn;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use strom_proto::batch::{self, BatchHeader};
use strom_proto::{records, Compression, TimestampType};

mod replica;

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batches, for `LogAppendTime` logs.
    pub log_append_time_ms: Option<i64>,
    pub record_count: i64,
}

/// What a read found: a run of whole batches in one segment file (empty at the end of the
/// log), with the log's bounds at the time of the read.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub slice: Option<FileSlice>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// The offset after the slice's last batch (the read's offset without a slice): what a
    /// reader's position moves to. Where a batch follows beyond the read's bound, the bound.
    pub next_offset: i64,
}

/// The first record at or after a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// What opening the log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments whose batches were read and CRC-checked.
    pub segments_recovered: usize,
    /// Segments whose indexes were rebuilt.
    pub indexes_rebuilt: usize,
    /// Damage found: file, byte position, reason. Everything from there on was removed.
    pub damage: Vec<String>,
    /// Bytes cut off at the damage, and whole segments removed after it.
    pub bytes_truncated: u64,
}

/// Writer-only state of the active segment, guarded by the append lock.
#[derive(Debug)]
struct Writer {
    bytes_since_index: u64,
    /// Max timestamp of the active segment's first batch: the basis of `segment.ms`.
    rolling_base_timestamp: Option<i64>,
    created_ms: i64,
}

#[derive(Debug)]
pub struct Log {
    /// `<log dir>/<topic>-<partition>`: its last part is the log's name.
    dir: PathBuf,
    config: RwLock<Arc<LogConfig>>,
    clock: Arc<dyn Clock>,
    health: Arc<DirHealth>,
    flush_tx: SyncSender<Request>,
    dir_shared: Weak<DirShared>,
    writer: Mutex<Writer>,
    /// Held by whatever removes or replaces closed segments (retention, DeleteRecords,
    /// truncation, the cleaner's swap, deletion), so they never race one another over segment
    /// files by name; taken before `writer`. Appends and reads never take it.
    segment_ops: Mutex<()>,
    /// One clean of this log at a time (the cleaner thread, or a direct `clean`): two would
    /// write the same `.cleaned` files.
    clean_lock: Mutex<()>,
    segments: RwLock<Segments>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    durable_offset: AtomicI64,
    recovery_point: AtomicI64,
    /// The cleaner checkpoint: where the not-yet-cleaned part starts; -1 before any clean.
    cleaner_checkpoint: AtomicI64,
    /// The first offset of a transaction not yet decided here (i64::MAX: none), set by
    /// the broker: the cleaner stays below it (Kafka's last stable offset bound).
    first_unstable: AtomicI64,
    /// The replication layer's high watermark, kept here so that the log dir checkpoints
    /// it (`replication-offset-checkpoint`); -1 until known.
    high_watermark: AtomicI64,
    /// Each leader epoch's start offset (`epochs.rs`); changed under `writer`.
    epochs: Mutex<EpochCache>,
    /// Writes of the epoch file so far, and how many of them a flush has synced.
    epochs_saved: AtomicU64,
    epochs_synced: AtomicU64,
    unflushed_records: AtomicI64,
    /// fsyncs of the active segment so far: shows how many waiters share one.
    flush_count: AtomicI64,
    last_flush_ms: AtomicI64,
    /// One flush of this log at a time.
    sync_lock: Mutex<()>,
    deleted: AtomicBool,
    /// The log's directory is new and its entry in the log dir not yet synced: the first
    /// flush syncs the log dir too, so creating a partition costs no fsync of its own.
    new_dir: AtomicBool,
    /// The active segment's file stays open (`pin_active`).
    pinned: AtomicBool,
    /// Listed in the log dir's logs with a finite `flush.ms` (`DirShared::add_timed`).
    pub(crate) timed: AtomicBool,
    /// None: the open found nothing to recover (most logs: kept out of every idle log).
    report: Option<Box<RecoveryReport>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A flush begun (`Log::begin_flush`) whose sync is still to come; holds the sync lock.
pub(crate) struct PendingFlush<'a> {
    _guard: MutexGuard<'a, ()>,
    end: i64,
    records_before: i64,
    /// Writes of the epoch file made before the sync began (`Log::epochs_saved`).
    epochs_saved: u64,
    segments: Segments,
}

/// The segment list as published to readers, the active segment last: one allocation.
pub(crate) type Segments = Arc<[Arc<Segment>]>;

/// Parameters of opening a log that come from its log dir.
pub(crate) struct OpenParams {
    pub dir: PathBuf,
    pub config: Arc<LogConfig>,
    pub clock: Arc<dyn Clock>,
    pub health: Arc<DirHealth>,
    pub flush_tx: SyncSender<Request>,
    pub dir_shared: Weak<DirShared>,
    /// The log dir was shut down cleanly: files are trusted as they are.
    pub clean: bool,
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub cleaner_checkpoint: i64,
    /// The checkpointed high watermark (-1: none).
    pub high_watermark: i64,
}

impl Log {
    /// Opens the log in `p.dir`, recovering whatever a crash left behind.
    pub(crate) fn open(p: OpenParams) -> Result<Arc<Log>> {
        let mut report = RecoveryReport::default();
        recover_swaps(&p.dir, &p.config, &mut report)?;
        let mut bases = list_segments(&p.dir)?;
        let fresh = bases.is_empty();
        if fresh {
            bases.push(p.log_start_offset.max(0));
        }
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
        let interval = p.config.index_interval_bytes;
        let index_bytes = p.config.segment_index_bytes;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let trusted = p.clean || next_base <= p.recovery_point;
            let indexes_exist = [segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX]
                .iter()
                .all(|s| segment::file_path(&p.dir, base, s).exists());
            let mut seg = Segment::open(&p.dir, base, index_bytes, last || !trusted)?;
            let mut rebuild = !trusted || !indexes_exist;
            if !rebuild {
                if let Err(reason) = check_trusted(&seg) {
                    tracing::warn!(segment = %seg.path().display(), %reason, "index check failed; rebuilding");
                    rebuild = true;
                    if !last {
                        seg = Segment::open(&p.dir, base, index_bytes, true)?;
                    }
                }
            }
            let mut damaged = false;
            if rebuild {
                if trusted {
                    report.indexes_rebuilt += 1;
                } else {
                    report.segments_recovered += 1;
                }
                let before = fs::metadata(seg.path()).map_err(io_err(seg.path()))?.len();
                if let Some((position, reason)) = seg.rebuild(true, interval)? {
                    let msg = format!("{} at byte {position}: {reason}", seg.path().display());
                    tracing::warn!(log = %p.dir.display(), damage = %msg, "truncating the log at damaged or torn data");
                    report.damage.push(msg);
                    report.bytes_truncated += before - seg.size();
                    damaged = true;
                }
                if !last && !damaged {
                    seg.close()?;
                }
            }
            segments.push(Arc::new(seg));
            if damaged {
                for &later in bases.get(i + 1..).unwrap_or(&[]) {
                    let later_seg = Segment::open(&p.dir, later, index_bytes, false)?;
                    report.bytes_truncated += later_seg.size();
                    later_seg.delete_files(&p.dir)?;
                }
                break;
            }
        }
        if fresh {
            // The first segment's files are new: their directory entries need a sync before
            // data in them counts as durable.
            if let Some(s) = segments.last() {
                s.dir_synced.store(false, Ordering::Release);
            }
        }
        let active = segments.last().cloned().ok_or_else(|| LogError::Corrupt {
            path: p.dir.clone(),
            position: 0,
            reason: "no segment".into(),
        })?;
        let log_end_offset = active.next_offset();
        // An abort whose marker recovery cut off did not happen.
        active.truncate_aborted(log_end_offset)?;
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        let log_start_offset = p.log_start_offset.max(first_base).min(log_end_offset);
        let recovery_point = if p.clean {
            log_end_offset
        } else {
            p.recovery_point.clamp(0, log_end_offset)
        };
        let rolling_base_timestamp = active
            .header_at(0, active.size())
            .ok()
            .flatten()
            .map(|h| h.max_timestamp);
        let now = p.clock.now_ms();
        let epochs = Mutex::new(EpochCache::empty());
        let log = Arc::new(Log {
            epochs,
            epochs_saved: AtomicU64::new(0),
            epochs_synced: AtomicU64::new(0),
            high_watermark: AtomicI64::new(p.high_watermark.min(log_end_offset)),
            dir: p.dir,
            config: RwLock::new(p.config),
            clock: p.clock,
            health: p.health,
            flush_tx: p.flush_tx,
            dir_shared: p.dir_shared,
            writer: Mutex::new(Writer {
                bytes_since_index: 0,
                rolling_base_timestamp,
                created_ms: now,
            }),
            segment_ops: Mutex::new(()),
            clean_lock: Mutex::new(()),
            segments: RwLock::new(segments.into()),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
            durable_offset: AtomicI64::new(recovery_point),
            recovery_point: AtomicI64::new(recovery_point),
            cleaner_checkpoint: AtomicI64::new(p.cleaner_checkpoint),
            first_unstable: AtomicI64::new(i64::MAX),
            unflushed_records: AtomicI64::new(0),
            flush_count: AtomicI64::new(0),
            last_flush_ms: AtomicI64::new(now),
            sync_lock: Mutex::new(()),
            deleted: AtomicBool::new(false),
            new_dir: AtomicBool::new(false),
            pinned: AtomicBool::new(false),
            timed: AtomicBool::new(false),
            report: (report != RecoveryReport::default()).then(|| Box::new(report)),
        });
        log.note_timed();
        log.load_epochs((!p.clean).then_some(recovery_point))?;
        Ok(log)
    }

    /// `<topic>-<partition>`, the directory name.
    pub fn name(&self) -> &str {
        // The log dir makes the directory from the name (UTF-8) and opens only such.
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> Arc<LogConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the configuration; it applies from the next append or retention pass.
    /// Partitions of a topic can share one (an `Arc`): 100,000 copies would cost megabytes.
    pub fn set_config(self: &Arc<Self>, config: impl Into<Arc<LogConfig>>) -> Result<()> {
        let config = config.into();
        config.validate().map_err(LogError::InvalidConfig)?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        self.note_timed();
        Ok(())
    }

    /// A log with a finite `flush.ms` is listed for the flusher's tick (set after the config
    /// is stored; the flusher drops it once `flush.ms` is infinite again).
    fn note_timed(self: &Arc<Self>) {
        if self.config().flush_ms < i64::MAX {
            if let Some(shared) = self.dir_shared.upgrade() {
                shared.add_timed(self);
            }
        }
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        static NOTHING: RecoveryReport = RecoveryReport {
            segments_recovered: 0,
            indexes_rebuilt: 0,
            damage: Vec::new(),
            bytes_truncated: 0,
        };
        self.report.as_deref().unwrap_or(&NOTHING)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Every offset below this is on disk (fsynced).
    pub fn durable_offset(&self) -> i64 {
        self.durable_offset.load(Ordering::Acquire)
    }

    /// Everything below this, indexes included, is on disk: recovery starts here.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// How many times the flusher has synced this log.
    pub fn flush_count(&self) -> i64 {
        self.flush_count.load(Ordering::Relaxed)
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments().iter().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments().iter().map(|s| s.base_offset).collect()
    }

    fn segments(&self) -> Segments {
        Arc::clone(&self.segments.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// A snapshot of the segment list, the active segment last.
    pub(crate) fn lock_clean(&self) -> MutexGuard<'_, ()> {
        lock(&self.clean_lock)
    }

    pub(crate) fn segment_list(&self) -> Segments {
        self.segments()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Keeps the active segment's file open, whatever the pressure on descriptors, from now
    /// on and across rolls: for a log whose appends must not fail for want of one (the
    /// metadata log).
    pub fn pin_active(&self) {
        let _w = lock(&self.writer);
        self.pinned.store(true, Ordering::Release);
        if let Some(active) = self.segments().last() {
            active.set_pinned(true);
        }
    }

    pub(crate) fn mark_new_dir(&self) {
        self.new_dir.store(true, Ordering::Release);
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Takes the dir offline if `e` is an I/O failure (fail-stop); returns `e`.
    pub(crate) fn fail(&self, e: LogError) -> LogError {
        self.health.fail(e)
    }

    /// Where the part of the log not yet cleaned starts (Kafka's cleaner checkpoint); -1
    /// before the first clean.
    /// Where the first undecided transaction starts (i64::MAX: none); the cleaner keeps
    /// out of the segments from the one holding it.
    pub fn set_first_unstable_offset(&self, offset: i64) {
        self.first_unstable.store(offset, Ordering::Release);
    }

    pub fn first_unstable_offset(&self) -> i64 {
        self.first_unstable.load(Ordering::Acquire)
    }

    pub fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner_checkpoint.load(Ordering::Acquire)
    }

    pub(crate) fn set_cleaner_checkpoint(&self, offset: i64) {
        self.cleaner_checkpoint.store(offset, Ordering::Release);
    }

    /// How dirty the log is now, as the cleaner thread measures it.
    pub fn cleanable(&self) -> Result<Cleanable> {
        cleaner::measure(self, &self.segments(), self.clock.now_ms())
    }

    /// Compacts the closed segments now, whatever the dirty ratio (the cleaner thread waits
    /// for `min.cleanable.dirty.ratio`): keeps the latest record per key, drops tombstones
    /// past their delete horizon. Reads and appends go on meanwhile. The checkpoint files are
    /// written afterwards, so the cleaner checkpoint survives a restart.
    pub fn clean(&self, options: &CleanOptions) -> Result<CleanReport> {
        self.check_writable()?;
        let report = cleaner::clean(self, options, &AtomicBool::new(false))?;
        self.after_clean(&report)?;
        Ok(report)
    }

    pub(crate) fn after_clean(&self, report: &CleanReport) -> Result<()> {
        if report.segments_before > 0 && !report.interrupted {
            if let Some(shared) = self.dir_shared.upgrade() {
                shared.write_checkpoints()?;
            }
        }
        Ok(())
    }

    /// Replaces `old` (consecutive closed segments) by `new`, whose files are `.swap` files
    /// already synced and committed by a directory sync. Returns false, undoing nothing that
    /// matters, when `old` is no longer in the log (truncated or deleted meanwhile).
    ///
    /// Order, so that a crash at any point leaves either the old segments or the new one
    /// (recovery, `recover_swaps`, finishes a swap whose `.log.swap` file exists):
    /// old files renamed to `.deleted`, directory synced; `.swap` renamed to the final names
    /// (log file last) and the list published; directory synced; `.deleted` files removed.
    /// Appends are held up only for the publication; readers keep the old files open (and
    /// readable, unlinked or not) for as long as they hold their slices.
    pub(crate) fn swap_in(
        &self,
        old: &[Arc<Segment>],
        mut new: Segment,
        stop_after: Option<SwapStep>,
    ) -> Result<bool> {
        let _ops = lock(&self.segment_ops);
        let base = new.base_offset;
        let current = self.segments();
        let intact = match old.first() {
            Some(first) => current
                .iter()
                .position(|s| Arc::ptr_eq(s, first))
                .is_some_and(|at| {
                    at + old.len() < current.len()
                        && old
                            .iter()
                            .zip(current.iter().skip(at))
                            .all(|(a, b)| Arc::ptr_eq(a, b))
                }),
            None => false,
        };
        if !intact || self.is_deleted() {
            drop(new);
            segment::remove_stage(&self.dir, base, Some(segment::SWAP))?;
            return Ok(false);
        }
        // Opened before anything changes: running out of descriptors half way through the
        // swap would leave it half done.
        let dir = match open_dir(&self.dir) {
            Ok(dir) => dir,
            Err(e) => {
                drop(new);
                segment::remove_stage(&self.dir, base, Some(segment::SWAP))?;
                return Err(e);
            }
        };
        let sync = || dir.sync_all().map_err(io_err(&self.dir));
        for s in old {
            s.mark_gone();
            segment::rename_stage(&self.dir, s.base_offset, None, Some(segment::DELETED))?;
        }
        sync()?;
        if stop_after == Some(SwapStep::Deleted) {
            return Ok(false);
        }
        segment::rename_stage(&self.dir, base, Some(segment::SWAP), None)?;
        new.set_path(segment::file_path(&self.dir, base, segment::LOG_SUFFIX));
        let new = Arc::new(new);
        {
            let _w = lock(&self.writer);
            let current = self.segments();
            let mut list: Vec<Arc<Segment>> = Vec::with_capacity(current.len());
            let mut placed = false;
            for s in current.iter() {
                if old.iter().any(|o| Arc::ptr_eq(o, s)) {
                    if !placed {
                        list.push(Arc::clone(&new));
                        placed = true;
                    }
                } else {
                    list.push(Arc::clone(s));
                }
            }
            self.publish_segments(list);
        }
        sync()?;
        if stop_after == Some(SwapStep::Renamed) {
            return Ok(false);
        }
        for s in old {
            segment::remove_stage(&self.dir, s.base_offset, Some(segment::DELETED))?;
        }
        Ok(true)
    }

    fn publish_segments(&self, segments: Vec<Arc<Segment>>) {
        *self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner) = segments.into();
    }

    fn check_writable(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(LogError::NotFound(self.name().to_string()));
        }
        self.health.check()
    }

    /// Appends one or more concatenated v2 batches. Every batch is checked first (magic,
    /// lengths, CRC-32C, `max.message.bytes`); if any fails nothing is written. Offsets are
    /// assigned by rewriting each batch's base offset in `records`, and `LogAppendTime` logs
    /// stamp the broker's time (which rewrites the CRC too).
    pub fn append(&self, records: &mut [u8]) -> Result<AppendInfo> {
        self.append_from(records, Origin::Leader)
    }

    fn append_from(&self, records: &mut [u8], origin: Origin) -> Result<AppendInfo> {
        self.check_writable()?;
        let config = self.config();
        let mut headers = Vec::new();
        for (h, _) in batch::split(records)? {
            // A follower stores what its leader accepted (Kafka's `ignoreRecordSize`).
            if origin == Origin::Leader && h.size() as u64 > config.max_message_bytes {
                return Err(LogError::BatchTooLarge {
                    size: h.size() as u64,
                    max: config.max_message_bytes,
                });
            }
            headers.push(h);
        }
        let total_bytes = records.len() as u64;
        if headers.is_empty() {
            return Err(LogError::InvalidBatch(strom_proto::BatchError::Truncated {
                needed: batch::HEADER_BYTES,
                have: 0,
            }));
        }
        let now = self.clock.now_ms();
        let append_time = (origin == Origin::Leader
            && config.message_timestamp_type == TimestampType::LogAppendTime)
            .then_some(now);

        let mut w = lock(&self.writer);
        self.check_writable()?;
        let first_offset = self.log_end_offset();
        let (next, record_count) = match origin {
            Origin::Leader => assign_offsets(records, &mut headers, first_offset, append_time)?,
            Origin::Follower => replica::check_contiguous(&headers, first_offset)?,
        };
        self.assign_epochs(&headers)?;
        let max_ts_incoming = headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1);
        let active =
            self.maybe_roll(&mut w, &config, total_bytes, next - 1, max_ts_incoming, now)?;
        active
            .append(
                records,
                &headers,
                config.index_interval_bytes,
                &mut w.bytes_since_index,
            )
            .map_err(|e| self.health.fail(e))?;
        if w.rolling_base_timestamp.is_none() {
            w.rolling_base_timestamp = headers.first().map(|h| h.max_timestamp);
        }
        self.log_end_offset.store(next, Ordering::Release);
        drop(w);

        let unflushed = self
            .unflushed_records
            .fetch_add(record_count, Ordering::AcqRel)
            + record_count;
        if unflushed >= config.flush_messages {
            self.request_flush();
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            log_append_time_ms: append_time,
            record_count,
        })
    }

    fn maybe_roll(
        &self,
        w: &mut Writer,
        config: &LogConfig,
        bytes: u64,
        last_offset: i64,
        max_ts_incoming: i64,
        now: i64,
    ) -> Result<Arc<Segment>> {
        let segments = self.segments();
        let Some(active) = segments.last().cloned() else {
            return Err(LogError::NotFound(self.name().to_string()));
        };
        let waited_ms = match w.rolling_base_timestamp {
            Some(ts) if ts >= 0 => max_ts_incoming - ts,
            _ => now - w.created_ms,
        };
        let roll = if active.is_empty() {
            !active.can_hold_offset(last_offset)
        } else {
            active.size() + bytes > config.segment_bytes
                || waited_ms > config.roll_ms()
                || active.offset_index.is_full()
                || active.time_index.is_full()
                || !active.can_hold_offset(last_offset)
        };
        if !roll {
            return Ok(active);
        }
        self.roll_locked(w, &segments, config)
    }

    /// Closes the active segment and starts a new one at the log end offset. The closed
    /// segment is synced in the background; until then the recovery point stays before it.
    pub fn roll(&self) -> Result<()> {
        self.check_writable()?;
        let mut w = lock(&self.writer);
        let segments = self.segments();
        let active = segments.last().map(|s| s.is_empty()).unwrap_or(true);
        if active {
            return Ok(());
        }
        let config = self.config();
        self.roll_locked(&mut w, &segments, &config).map(|_| ())
    }

    fn roll_locked(
        &self,
        w: &mut Writer,
        segments: &[Arc<Segment>],
        config: &LogConfig,
    ) -> Result<Arc<Segment>> {
        let new_base = self.log_end_offset();
        let mut list: Vec<Arc<Segment>> = segments.to_vec();
        if let Some(old) = list.last().cloned() {
            if old.is_empty() {
                // An empty active segment that cannot take the batch is replaced outright.
                list.pop();
                old.delete_files(&self.dir)
                    .map_err(|e| self.health.fail(e))?;
            } else {
                old.close().map_err(|e| self.health.fail(e))?;
            }
        }
        let seg = Segment::open(&self.dir, new_base, config.segment_index_bytes, true)
            .map_err(|e| self.health.fail(e))?;
        seg.dir_synced.store(false, Ordering::Release);
        if self.pinned.load(Ordering::Acquire) {
            seg.set_pinned(true);
            if let Some(old) = list.last() {
                old.set_pinned(false);
            }
        }
        let seg = Arc::new(seg);
        list.push(Arc::clone(&seg));
        self.publish_segments(list);
        *w = Writer {
            bytes_since_index: 0,
            rolling_base_timestamp: None,
            created_ms: self.clock.now_ms(),
        };
        self.request_flush();
        Ok(seg)
    }

    /// Asks the flusher to sync this log soon, without waiting.
    fn request_flush(&self) {
        if let Some(me) = self.dir_shared.upgrade().and_then(|d| d.get(self.name())) {
            let _ = self.flush_tx.try_send(Request::Flush {
                log: me,
                offset: -1,
                done: None,
            });
        }
    }

    /// Calls `done` once every offset up to `offset` is durable (or the log dir failed).
    /// Many callers waiting together are served by one fsync.
    pub fn on_durable(self: &Arc<Self>, offset: i64, done: Waiter) {
        if self.durable_offset() > offset {
            done(Ok(self.durable_offset()));
            return;
        }
        if let Err(e) = self.health.check() {
            done(Err(e));
            return;
        }
        if offset >= self.log_end_offset() {
            done(Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            }));
            return;
        }
        let request = Request::Flush {
            log: Arc::clone(self),
            offset,
            done: Some(done),
        };
        if let Err(std::sync::mpsc::SendError(Request::Flush {
            done: Some(done), ..
        })) = self.flush_tx.send(request)
        {
            done(Err(LogError::Closed));
        }
    }

    /// Blocks until every offset up to `offset` is durable; returns the durable offset.
    pub fn wait_durable(self: &Arc<Self>, offset: i64) -> Result<i64> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.on_durable(
            offset,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(LogError::Closed))
    }

    /// Syncs everything appended so far: closed segments fully (so the recovery point can
    /// pass them), then the active segment's data. Returns the new durable offset. Called by
    /// the flusher; a failure takes the log dir offline.
    pub(crate) fn flush(&self) -> Result<i64> {
        let pending = self.begin_flush()?;
        let result = self.sync_own(&pending);
        self.finish_flush(pending, result, false)
    }

    /// The first half of a flush: takes the sync lock and notes what the sync will cover.
    /// Every offset below `end` lives in a segment of the list (see the module doc), because
    /// the end offset is read first.
    pub(crate) fn begin_flush(&self) -> Result<PendingFlush<'_>> {
        let guard = lock(&self.sync_lock);
        self.health.check()?;
        let end = self.log_end_offset();
        let records_before = self.unflushed_records.load(Ordering::Acquire);
        Ok(PendingFlush {
            _guard: guard,
            end,
            records_before,
            epochs_saved: self.epochs_saved.load(Ordering::Acquire),
            segments: self.segments(),
        })
    }

    /// This log's own sync: closed segments not synced yet (with their indexes), the epoch
    /// file if written since the last sync, the directory entries of a new active segment
    /// (and of a new log's directory) or of the epoch file, and the active segment's data.
    fn sync_own(&self, pending: &PendingFlush<'_>) -> Result<()> {
        let dir = &self.dir;
        let Some((active, closed)) = pending.segments.split_last() else {
            return Ok(());
        };
        let epochs_written = pending.epochs_saved != self.epochs_synced.load(Ordering::Acquire);
        if epochs_written {
            EpochCache::sync_file(dir)?;
            active.dir_synced.store(false, Ordering::Release);
        }
        if self.new_dir.load(Ordering::Acquire) {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            self.new_dir.store(false, Ordering::Release);
        }
        for seg in closed.iter().filter(|s| !s.synced.load(Ordering::Acquire)) {
            seg.sync_all()?;
            seg.synced.store(true, Ordering::Release);
        }
        if !active.dir_synced.load(Ordering::Acquire) {
            sync_dir(dir)?;
            active.dir_synced.store(true, Ordering::Release);
        }
        active.sync_data()
    }

    /// The second half: `result` is the sync's outcome; `whole_fs` says it was a sync of the
    /// whole file system (`syncfs`), which covered closed segments and directory entries too.
    pub(crate) fn finish_flush(
        &self,
        pending: PendingFlush<'_>,
        result: Result<()>,
        whole_fs: bool,
    ) -> Result<i64> {
        result.map_err(|e| self.health.fail(e))?;
        self.epochs_synced
            .fetch_max(pending.epochs_saved, Ordering::AcqRel);
        let Some((active, closed)) = pending.segments.split_last() else {
            return Ok(pending.end);
        };
        if whole_fs {
            for seg in closed {
                seg.synced.store(true, Ordering::Release);
            }
            active.dir_synced.store(true, Ordering::Release);
            self.new_dir.store(false, Ordering::Release);
        }
        let end = pending.end;
        self.flush_count.fetch_add(1, Ordering::Relaxed);
        self.durable_offset.fetch_max(end, Ordering::AcqRel);
        self.recovery_point
            .fetch_max(active.base_offset.min(end), Ordering::AcqRel);
        self.unflushed_records
            .fetch_sub(pending.records_before, Ordering::AcqRel);
        self.last_flush_ms
            .store(self.clock.now_ms(), Ordering::Release);
        Ok(self.durable_offset())
    }

    /// Whether `flush.ms` has passed with data still unflushed.
    /// Two atomics for a log with nothing unflushed (the flusher asks every log each tick).
    pub(crate) fn flush_due(&self, now_ms: i64) -> bool {
        self.durable_offset() < self.log_end_offset()
            && now_ms.saturating_sub(self.last_flush_ms.load(Ordering::Acquire))
                >= self.config().flush_ms
    }

    /// Closes the active segment's indexes (trimmed to their entries): a step of a clean
    /// shutdown, whose one `syncfs` then makes everything durable (`LogDir::close`). The log
    /// takes no appends afterwards.
    pub(crate) fn close(&self) -> Result<()> {
        let _w = lock(&self.writer);
        self.health.check()?;
        let segments = self.segments();
        if let Some(active) = segments.last() {
            active.close().map_err(|e| self.health.fail(e))?;
        }
        self.recovery_point
            .store(self.log_end_offset(), Ordering::Release);
        self.deleted.store(true, Ordering::Release);
        Ok(())
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Reads whole batches starting with the one that holds `offset`, up to `max_bytes` (but
    /// always at least one whole batch) and never past `upper_bound` (exclusive, e.g. the high
    /// watermark; the log end offset when None). Returns a slice of one segment file.
    pub fn read(&self, offset: i64, max_bytes: u64, upper_bound: Option<i64>) -> Result<ReadInfo> {
        self.again_if_gone(|| self.read_once(offset, max_bytes, upper_bound))
    }

    /// Runs a read over the log's segments again if one of them was deleted or replaced
    /// (retention, truncation, the cleaner) after it was picked and before its file,
    /// closed meanwhile, could be opened again: the next try sees the current segments.
    fn again_if_gone<T>(&self, read: impl Fn() -> Result<T>) -> Result<T> {
        let mut tries = 0;
        loop {
            match read() {
                Err(LogError::SegmentGone { .. }) if tries < 8 => tries += 1,
                other => return other,
            }
        }
    }

    fn read_once(&self, offset: i64, max_bytes: u64, upper_bound: Option<i64>) -> Result<ReadInfo> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        let info = |slice, next_offset| ReadInfo {
            slice,
            log_start_offset,
            log_end_offset,
            next_offset,
        };
        if offset < log_start_offset || offset > log_end_offset {
            return Err(self.out_of_range(offset));
        }
        let bound = upper_bound.unwrap_or(log_end_offset).min(log_end_offset);
        if offset >= bound {
            return Ok(info(None, offset));
        }
        let segments = self.segments();
        let first = segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for seg in segments.get(first..).unwrap_or(&[]) {
            // `size` before `next_offset`: the writer stores them in the other order.
            let size = seg.size();
            let next = seg.next_offset();
            let Some((start, h)) = seg.locate(offset, size)? else {
                continue;
            };
            if h.base_offset >= bound {
                return Ok(info(None, offset));
            }
            let (bound_position, bound_next) = if next <= bound {
                (size, next)
            } else {
                match seg.locate(bound, size)? {
                    Some((p, hb)) if hb.base_offset >= bound => (p, bound),
                    Some((p, hb)) => (p + hb.size() as u64, hb.next_offset()),
                    // An append after `size` was read may be in `next` already.
                    None => (size, next.min(bound)),
                }
            };
            let limit = bound_position.min(start.saturating_add(max_bytes));
            let (mut end, walked) = seg.boundary_at_or_before(start, limit, size)?;
            let mut next_offset = match walked {
                Some(n) => n,
                None if end == bound_position => bound_next,
                None => next,
            };
            if end <= start {
                end = start + h.size() as u64;
                next_offset = h.next_offset();
            }
            return Ok(info(Some(seg.slice(start, end - start)?), next_offset));
        }
        Ok(info(None, offset))
    }

    /// The first record whose timestamp is at least `timestamp_ms`, as ListOffsets asks.
    /// Records inside uncompressed batches are looked at one by one; for a compressed batch
    /// the answer is its first offset and its max timestamp.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimestampOffset>> {
        self.again_if_gone(|| self.offset_for_timestamp_once(timestamp_ms))
    }

    fn offset_for_timestamp_once(&self, timestamp_ms: i64) -> Result<Option<TimestampOffset>> {
        let log_start_offset = self.log_start_offset();
        let segments = self.segments();
        for seg in segments.iter() {
            if seg.max_timestamp() < timestamp_ms || seg.next_offset() <= log_start_offset {
                continue;
            }
            let size = seg.size();
            let from = seg
                .time_index
                .lookup(timestamp_ms)
                .map_or(seg.base_offset, |e| {
                    seg.base_offset + i64::from(e.relative_offset)
                })
                .max(log_start_offset);
            let Some((mut position, _)) = seg.locate(from, size)? else {
                continue;
            };
            while let Some(h) = seg.header_at(position, size)? {
                if h.max_timestamp >= timestamp_ms && h.last_offset() >= log_start_offset {
                    return self.first_record_at_or_after(
                        seg,
                        position,
                        &h,
                        timestamp_ms,
                        log_start_offset,
                    );
                }
                position += h.size() as u64;
            }
        }
        Ok(None)
    }

    fn first_record_at_or_after(
        &self,
        seg: &Segment,
        position: u64,
        h: &BatchHeader,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<TimestampOffset>> {
        let whole_batch = TimestampOffset {
            offset: h.base_offset.max(min_offset),
            timestamp: h.max_timestamp,
        };
        if h.compression() != Compression::None
            || h.timestamp_type() == TimestampType::LogAppendTime
        {
            return Ok(Some(whole_batch));
        }
        let bytes = seg
            .slice(position, h.size() as u64)?
            .read_to_vec()
            .map_err(io_err(seg.path()))?;
        let found = records::decode(&bytes)
            .ok()
            .and_then(|recs| {
                recs.iter()
                    .find(|r| r.timestamp >= timestamp_ms && r.offset >= min_offset)
                    .map(|r| TimestampOffset {
                        offset: r.offset,
                        timestamp: r.timestamp,
                    })
            })
            .unwrap_or(whole_batch);
        Ok(Some(found))
    }

    /// Calls `each` with the header of every batch from the one holding `from_offset` to the
    /// log end, reading headers only (one `pread` each): for rebuilding state kept beside the
    /// log, such as idempotent producers' sequences.
    pub fn for_each_header(
        &self,
        from_offset: i64,
        mut each: impl FnMut(&BatchHeader),
    ) -> Result<()> {
        let end = self.log_end_offset();
        let segments = self.segments();
        let first = segments
            .partition_point(|s| s.base_offset <= from_offset)
            .saturating_sub(1);
        for seg in segments.get(first..).unwrap_or(&[]) {
            let size = seg.size();
            let Some((mut position, _)) = seg.locate(from_offset.max(seg.base_offset), size)?
            else {
                continue;
            };
            while let Some(h) = seg.header_at(position, size)? {
                if h.base_offset >= end {
                    return Ok(());
                }
                each(&h);
                position += h.size() as u64;
            }
        }
        Ok(())
    }

    /// Records a transaction aborted by a marker this log holds, in the aborted-transaction
    /// index of the segment holding the marker (synced when this returns).
    pub fn append_aborted(&self, entry: AbortedTxn) -> Result<()> {
        let segments = self.segments();
        let at = segments
            .partition_point(|s| s.base_offset <= entry.last_offset)
            .saturating_sub(1);
        match segments.get(at) {
            Some(seg) => seg.append_aborted(&[entry]).map_err(|e| self.fail(e)),
            None => Ok(()),
        }
    }

    /// The aborted transactions a read_committed fetch of `[fetch_offset, upper_bound)`
    /// must name (Kafka's `collectAbortedTransactions`), from the segment holding
    /// `fetch_offset` on.
    pub fn aborted_txns(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let segments = self.segments();
        let first = segments
            .partition_point(|s| s.base_offset <= fetch_offset)
            .saturating_sub(1);
        let mut found = Vec::new();
        for seg in segments.get(first..).unwrap_or(&[]) {
            if seg.base_offset >= upper_bound
                || crate::txn_index::overlapping(
                    &seg.aborted(),
                    fetch_offset,
                    upper_bound,
                    &mut found,
                )
            {
                break;
            }
        }
        found
    }

    /// The largest timestamp in the log and the offset of the first record carrying it (as
    /// Kafka 3.8+ answers ListOffsets MAX_TIMESTAMP). Inside a compressed batch the answer is
    /// the batch's first offset.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>> {
        let start = self.log_start_offset();
        let segments = self.segments();
        let best = segments
            .iter()
            .filter(|s| s.max_timestamp() >= 0 && s.next_offset() > start)
            .fold(None::<&Arc<Segment>>, |best, s| match best {
                Some(b) if b.max_timestamp() >= s.max_timestamp() => Some(b),
                _ => Some(s),
            });
        let Some(seg) = best else { return Ok(None) };
        let (ts, batch_last) = (seg.max_timestamp(), seg.offset_of_max_timestamp());
        let size = seg.size();
        match seg.locate(batch_last.max(start), size)? {
            Some((position, h)) if h.max_timestamp == ts => {
                self.first_record_at_or_after(seg, position, &h, ts, start)
            }
            _ => Ok(Some(TimestampOffset {
                offset: batch_last,
                timestamp: ts,
            })),
        }
    }

    /// Removes every batch that ends at or after `offset` (replication's truncation). Below
    /// the log start offset, the log is emptied and restarts at `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        self.truncate(offset, false)
    }

    /// Empties the log and restarts it at `offset` (a follower behind its leader's log
    /// start, Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        self.truncate(offset, true)
    }

    fn truncate(&self, offset: i64, full: bool) -> Result<()> {
        self.check_writable()?;
        let _ops = lock(&self.segment_ops);
        let mut w = lock(&self.writer);
        // No flush in progress: one begun before the cut would publish a durable offset
        // past the new log end when it finishes (the flusher never takes `writer`).
        let _sync = lock(&self.sync_lock);
        if !full && offset >= self.log_end_offset() {
            // Nothing to cut, but an epoch this replica assigned as leader and never wrote
            // a batch of goes (Kafka's `truncateTo` does the same): else a follower would
            // keep reporting it and never stop diverging.
            let end = self.log_end_offset();
            return self.edit_epochs(|c| c.truncate_from_end(end));
        }
        let config = self.config();
        let segments = self.segments();
        let mut keep: Vec<Arc<Segment>> = Vec::new();
        let mut remove: Vec<Arc<Segment>> = Vec::new();
        for seg in segments.iter() {
            if full || seg.base_offset >= offset || offset <= self.log_start_offset() {
                remove.push(Arc::clone(seg));
            } else {
                keep.push(Arc::clone(seg));
            }
        }
        let mut start_moved = false;
        let result = (|| -> Result<()> {
            for seg in &remove {
                seg.delete_files(&self.dir)?;
            }
            let new_active = match keep.pop() {
                Some(last) => {
                    // Reopened writable: it may have been a closed segment with trimmed indexes.
                    let base = last.base_offset;
                    drop(last);
                    let s = Segment::open(&self.dir, base, config.segment_index_bytes, true)?;
                    s.summarize_tail().map_err(|reason| LogError::Corrupt {
                        path: s.path().to_path_buf(),
                        position: 0,
                        reason,
                    })?;
                    s.truncate_to(offset)?;
                    s
                }
                None => Segment::open(&self.dir, offset, config.segment_index_bytes, true)?,
            };
            new_active.dir_synced.store(false, Ordering::Release);
            new_active.set_pinned(self.pinned.load(Ordering::Acquire));
            let new_active = Arc::new(new_active);
            let end = new_active.next_offset();
            w.rolling_base_timestamp = new_active
                .header_at(0, new_active.size())?
                .map(|h| h.max_timestamp);
            w.bytes_since_index = 0;
            keep.push(new_active);
            self.publish_segments(keep);
            // Cutting into the batch that holds the log start moves the start back to the end.
            let start = self.log_start_offset();
            let new_start = if full || offset <= start {
                offset
            } else {
                start.min(end)
            };
            self.log_start_offset.store(new_start, Ordering::Release);
            start_moved = new_start != start;
            self.log_end_offset.store(end, Ordering::Release);
            self.durable_offset.fetch_min(end, Ordering::AcqRel);
            self.recovery_point.fetch_min(end, Ordering::AcqRel);
            self.high_watermark.fetch_min(end, Ordering::AcqRel);
            if full || offset <= start {
                self.edit_epochs(EpochCache::clear)
            } else {
                self.edit_epochs(|c| c.truncate_from_end(end))
            }
        })();
        result.map_err(|e| self.health.fail(e))?;
        drop(w);
        // A log start moved back must be persisted now: a stale, higher checkpoint would hide
        // records after a restart.
        if start_moved {
            if let Some(shared) = self.dir_shared.upgrade() {
                shared.write_checkpoints()?;
            }
        }
        Ok(())
    }

    /// Moves the log start offset forward (DeleteRecords) and persists it. Whole segments
    /// below it are deleted now; the rest become unreadable below the new start.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.check_writable()?;
        if offset > self.log_end_offset() || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        let start = self
            .log_start_offset
            .fetch_max(offset, Ordering::AcqRel)
            .max(offset);
        self.delete_segments(|_, next_base| next_base <= start)?;
        self.edit_epochs(|c| c.truncate_from_start(start))?;
        if let Some(shared) = self.dir_shared.upgrade() {
            shared.write_checkpoints()?;
        }
        Ok(start)
    }

    /// Applies `retention.ms` and `retention.bytes` to closed segments, oldest first; the
    /// active segment is never deleted. Only a log whose `cleanup.policy` includes `delete`
    /// loses data this way; any log drops the closed segments wholly below its log start
    /// offset (DeleteRecords), as Kafka does for compacted logs too. Returns how many
    /// segments went.
    pub fn apply_retention(&self) -> Result<usize> {
        let config = self.config();
        let now = self.clock.now_ms();
        let start = self.log_start_offset();
        // Only what replication committed goes (Kafka's rule): a segment with records above
        // the high watermark stays (no high watermark given: no bound).
        let hw = self.high_watermark();
        let delete = config.cleanup_policy_delete;
        let mut excess = if delete && config.retention_bytes >= 0 {
            self.size_bytes() as i64 - config.retention_bytes
        } else {
            i64::MIN
        };
        self.delete_segments(|seg, next_base| {
            let expired = delete
                && config.retention_ms >= 0
                && seg.max_timestamp() >= 0
                && now - seg.max_timestamp() > config.retention_ms;
            let over_size = excess >= seg.size() as i64;
            let below_start = next_base <= start;
            let committed = hw < 0 || next_base <= hw;
            if ((expired || over_size) && committed) || below_start {
                excess = excess.saturating_sub(seg.size() as i64);
                true
            } else {
                false
            }
        })
    }

    /// Deletes closed segments from the oldest while `doomed(segment, next base)` holds.
    fn delete_segments(&self, mut doomed: impl FnMut(&Segment, i64) -> bool) -> Result<usize> {
        let _ops = lock(&self.segment_ops);
        let gone = {
            let _w = lock(&self.writer);
            let segments = self.segments();
            let mut n = 0;
            while let (Some(seg), Some(next)) = (segments.get(n), segments.get(n + 1)) {
                if !doomed(seg, next.base_offset) {
                    break;
                }
                n += 1;
            }
            if n == 0 {
                return Ok(0);
            }
            let (gone, kept) = segments.split_at(n);
            if let Some(first) = kept.first() {
                let start = self
                    .log_start_offset
                    .fetch_max(first.base_offset, Ordering::AcqRel)
                    .max(first.base_offset);
                self.edit_epochs(|c| c.truncate_from_start(start))?;
            }
            self.publish_segments(kept.to_vec());
            gone.to_vec()
        };
        for seg in &gone {
            seg.delete_files(&self.dir)
                .map_err(|e| self.health.fail(e))?;
        }
        Ok(gone.len())
    }

    /// Marks the log deleted: later appends fail with `NotFound`.
    pub(crate) fn mark_deleted(&self) {
        let _ops = lock(&self.segment_ops);
        let _w = lock(&self.writer);
        self.deleted.store(true, Ordering::Release);
    }
}

/// Who appends: the leader assigns offsets; a follower keeps its leader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Leader,
    Follower,
}

/// Rewrites each batch's base offset from `first` on (and stamps `append_time`): the next
/// offset and the record count.
fn assign_offsets(
    records: &mut [u8],
    headers: &mut [BatchHeader],
    first: i64,
    append_time: Option<i64>,
) -> Result<(i64, i64)> {
    let mut next = first;
    let mut at = 0usize;
    let mut record_count = 0i64;
    for h in headers.iter_mut() {
        let size = h.size();
        let Some(chunk) = records.get_mut(at..at + size) else {
            break;
        };
        batch::set_base_offset(chunk, next);
        if let Some(ts) = append_time {
            batch::set_log_append_time(chunk, ts);
        }
        *h = BatchHeader::parse(chunk)?;
        next = h.next_offset();
        record_count += i64::from(h.record_count);
        at += size;
    }
    Ok((next, record_count))
}

/// Checks a segment whose files are trusted: its indexes are ordered and in bounds and its
/// batches after the last index entry read back to the end of the file.
fn check_trusted(seg: &Segment) -> Result<(), String> {
    seg.offset_index.check(seg.size())?;
    seg.summarize_tail()?;
    seg.time_index.check(seg.next_offset() - seg.base_offset)
}

/// Finishes or rolls back what a crash left of a cleaner's swap (see `Log::swap_in`), before
/// the segments are listed:
/// - `.cleaned` files are an unfinished clean: removed.
/// - `<B>.log.swap` is a committed clean of the segments in `[B, its end)`: those still
///   under their names are renamed to `.deleted`, then the `.swap` files take the final
///   names (indexes rebuilt). A `.swap` log found damaged while `<B>.log` is still there
///   is rolled back instead (removed).
/// - `.deleted` files are the replaced segments of a finished swap: removed; so are `.swap`
///   index files without their log file.
fn recover_swaps(dir: &Path, config: &LogConfig, report: &mut RecoveryReport) -> Result<()> {
    let mut swaps: Vec<i64> = Vec::new();
    let mut logs: Vec<i64> = Vec::new();
    let mut removals: Vec<PathBuf> = Vec::new();
    let mut stray_swaps: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let mut parts = name.splitn(3, '.');
        let (Some(stem), Some(suffix), stage) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        if stem.len() != 20 || !segment::SUFFIXES.contains(&suffix) {
            continue;
        }
        match (suffix, stage) {
            (segment::LOG_SUFFIX, None) => logs.push(base),
            (segment::LOG_SUFFIX, Some(segment::SWAP)) => swaps.push(base),
            (_, Some(segment::SWAP)) => stray_swaps.push(entry.path()),
            (_, Some(segment::CLEANED | segment::DELETED)) => removals.push(entry.path()),
            _ => {}
        }
    }
    if swaps.is_empty() && removals.is_empty() && stray_swaps.is_empty() {
        return Ok(());
    }
    swaps.sort_unstable();
    logs.sort_unstable();
    for &base in &swaps {
        let seg = Segment::open_staged(
            dir,
            base,
            config.segment_index_bytes,
            true,
            Some(segment::SWAP),
        )?;
        let damage = seg.rebuild(true, config.index_interval_bytes)?;
        let end = seg.next_offset();
        if damage.is_some() && logs.binary_search(&base).is_ok() {
            report.damage.push(format!(
                "{}: damaged; the clean it came from was rolled back",
                seg.path().display()
            ));
            drop(seg);
            segment::remove_stage(dir, base, Some(segment::SWAP))?;
            continue;
        }
        seg.close()?;
        seg.sync_all()?;
        drop(seg);
        for &old in logs.iter().filter(|&&o| o >= base && o < end.max(base + 1)) {
            segment::rename_stage(dir, old, None, Some(segment::DELETED))?;
            removals.extend(
                segment::SUFFIXES
                    .iter()
                    .map(|s| segment::staged_path(dir, old, s, Some(segment::DELETED))),
            );
        }
        sync_dir(dir)?;
        segment::rename_stage(dir, base, Some(segment::SWAP), None)?;
        stray_swaps.retain(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{base:020}.")))
        });
        tracing::warn!(dir = %dir.display(), base, "finished a cleaner swap interrupted by a crash");
    }
    for p in removals.iter().chain(stray_swaps.iter()) {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(p)(e)),
        }
    }
    sync_dir(dir)
}

/// Base offsets of the segments in `dir`, sorted; stray index files are removed.
fn list_segments(dir: &Path) -> Result<Vec<i64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, suffix)) = name.split_once('.') else {
            continue;
        };
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        if stem.len() != 20 {
            continue;
        }
        match suffix {
            segment::LOG_SUFFIX => logs.push(base),
            segment::INDEX_SUFFIX | segment::TIME_INDEX_SUFFIX | segment::TXN_INDEX_SUFFIX => {
                indexes.push((base, entry.path()))
            }
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(logs)
}

/// fsync of a directory, so that files created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    open_dir(dir)?.sync_all().map_err(io_err(dir))
}

/// The directory opened, to sync it later without opening anything then.
pub(crate) fn open_dir(dir: &Path) -> Result<fs::File> {
    crate::handles::transient(|| fs::File::open(dir)).map_err(io_err(dir))
}
