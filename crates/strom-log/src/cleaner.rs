//! Log compaction (`cleanup.policy=compact`): the closed segments of a log are rewritten so
//! that each key keeps only its latest record, as Kafka's `LogCleaner` does.
//!
//! One clean of a log:
//! 1. Measure: the log's closed segments split into the clean part (below the cleaner
//!    checkpoint, already deduplicated), the dirty part, and an uncleanable tail (the active
//!    segment, and everything from the first segment younger than `min.compaction.lag.ms`).
//! 2. Map: read the dirty part and record, per key hash, the offset of its latest record,
//!    up to `log.cleaner.dedupe.buffer.size`; the map covers `[first dirty, end)`.
//! 3. Rewrite every closed segment below `end`, in groups whose sum fits one segment (so
//!    segments that shrank get merged), keeping a record when it is the latest of its key,
//!    or at/after `end`; tombstones go once the delete horizon stamped on their batch by an
//!    earlier clean (`delete.retention.ms` later) has passed.
//! 4. Swap each group in with the crash-safe protocol of `Log::swap_in` (files `.cleaned`,
//!    then `.swap`, old ones `.deleted`; docs/log-format.md).
//!
//! Invariants: offsets never change (a rewritten batch keeps its base offset and last offset
//! delta, so the log's offsets and every consumer position stay valid); the active segment
//! is never touched; a batch the cleaner cannot decode is kept as it is (the cleaner may
//! leave a superseded record, never drop a latest one); control batches are kept as they
//! are; the last batch of each idempotent producer in the rewritten range and the last batch
//! of each group survive, emptied if need be, as Kafka keeps empty batches for producer state
//! (and so that a group's cleaned segment ends where the group ended: recovery relies on it).

use crate::config::LogConfig;
use crate::error::{io_err, LogError, Result};
use crate::limits::{
    CLEAN_BATCH_BYTES_MAX, CLEAN_DECOMPRESSED_BYTES_MAX, CLEAN_READ_BUFFER_BYTES,
    CLEAN_WRITE_BUFFER_BYTES, DEDUPE_ENTRY_BYTES, OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES,
};
use crate::log::{sync_dir, Log};
use crate::log_dir::DirShared;
use crate::segment::{self, Segment};
use crate::txn_index::AbortedTxn;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use strom_proto::batch::{self, BatchHeader, Compression, TimestampType, HEADER_BYTES};
use strom_proto::records::{self, Record};
use strom_proto::varint;

/// Attribute bit 6 of a v2 batch (KIP-534): the base timestamp holds the batch's delete
/// horizon, the time after which the cleaner may drop its tombstones.
pub const DELETE_HORIZON_BIT: i16 = 0x40;
const COMPRESSION_BITS: i16 = 0x07;

/// How a clean runs.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// `log.cleaner.dedupe.buffer.size`: memory for the key map of one clean.
    pub dedupe_buffer_bytes: u64,
    /// Tests only: stop right after this step of the swap, leaving the files as a crash
    /// there would.
    #[doc(hidden)]
    pub stop_after: Option<SwapStep>,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            dedupe_buffer_bytes: 128 << 20,
            stop_after: None,
        }
    }
}

/// The steps of replacing segments by their cleaned copy, in order.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapStep {
    /// `.cleaned` files written and synced.
    Cleaned,
    /// renamed to `.swap` and the directory synced: the commit point.
    Swap,
    /// the replaced segments renamed to `.deleted` and the directory synced.
    Deleted,
    /// `.swap` renamed to the final names and published; `.deleted` not yet removed.
    Renamed,
}

/// The cleaner thread's settings (Kafka's `log.cleaner.*`).
#[derive(Debug, Clone)]
pub struct CleanerOptions {
    /// `log.cleaner.backoff.ms`: the pause when no log needs cleaning.
    pub backoff_ms: u64,
    pub clean: CleanOptions,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            backoff_ms: 15_000,
            clean: CleanOptions::default(),
        }
    }
}

/// How dirty a log is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Where the not-yet-cleaned part starts (the cleaner checkpoint).
    pub first_dirty_offset: i64,
    /// Where cleaning must stop: the active segment, or the first segment younger than
    /// `min.compaction.lag.ms`.
    pub first_uncleanable_offset: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// A dirty record is older than `max.compaction.lag.ms`: clean whatever the ratio.
    pub overdue: bool,
}

impl Cleanable {
    /// Dirty bytes over cleanable bytes (Kafka's `cleanableRatio`).
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether the cleaner thread should take the log now.
    pub fn due(&self, config: &LogConfig) -> bool {
        self.dirty_bytes > 0 && (self.overdue || self.ratio() > config.min_cleanable_dirty_ratio)
    }
}

/// What one clean did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub first_dirty_offset: i64,
    /// The key map covered the dirty part up to here; the next clean starts here.
    pub end_offset: i64,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    /// The clean stopped early (shutdown, a concurrent truncation or deletion, a test's
    /// `stop_after`); what was swapped in before stays.
    pub interrupted: bool,
}

/// Measures a log's dirty part. `segments` is a snapshot, the active segment last.
pub(crate) fn measure(log: &Log, segments: &[Arc<Segment>], now_ms: i64) -> Result<Cleanable> {
    let config = log.config();
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    let (closed, active_base) = match segments.split_last() {
        Some((active, closed)) => (closed, active.base_offset),
        None => (&[][..], end),
    };
    let checkpoint = log.cleaner_checkpoint();
    let first_dirty = if checkpoint < start || checkpoint > end {
        start
    } else {
        checkpoint
    };
    let mut first_uncleanable = active_base;
    // An open transaction may still abort: its records, and all after, wait (a record of it
    // must not replace an older committed one of its key).
    let unstable = log.first_unstable_offset();
    if let Some(s) = closed.iter().find(|s| s.next_offset() > unstable) {
        first_uncleanable = first_uncleanable.min(s.base_offset);
    }
    // Only durable data is cleaned: a record may be dropped only for a newer one that a power
    // cut cannot take away (Kafka's bound is the high watermark; a single node's is what is
    // synced). A closed segment not wholly synced yet, and all after it, wait.
    let durable = log.durable_offset();
    if let Some(s) = closed
        .iter()
        .find(|s| s.next_offset() > first_dirty && s.next_offset() > durable)
    {
        first_uncleanable = first_uncleanable.min(s.base_offset);
    }
    if config.min_compaction_lag_ms > 0 {
        let young_after = now_ms.saturating_sub(config.min_compaction_lag_ms);
        if let Some(s) = closed
            .iter()
            .find(|s| s.next_offset() > first_dirty && s.max_timestamp() > young_after)
        {
            first_uncleanable = first_uncleanable.min(s.base_offset);
        }
    }
    let mut c = Cleanable {
        first_dirty_offset: first_dirty,
        first_uncleanable_offset: first_uncleanable,
        clean_bytes: 0,
        dirty_bytes: 0,
        overdue: false,
    };
    let mut earliest_dirty_ms = i64::MAX;
    for s in closed.iter().filter(|s| s.next_offset() > start) {
        if s.base_offset >= first_uncleanable {
            break;
        }
        if s.next_offset() <= first_dirty {
            c.clean_bytes += s.size();
        } else {
            c.dirty_bytes += s.size();
            if config.max_compaction_lag_ms < i64::MAX {
                // Kafka's basis too: the first batch's max timestamp of each dirty segment.
                if let Some(h) = s.header_at(0, s.size())? {
                    if h.max_timestamp >= 0 {
                        earliest_dirty_ms = earliest_dirty_ms.min(h.max_timestamp);
                    }
                }
            }
        }
    }
    c.overdue = earliest_dirty_ms < i64::MAX
        && now_ms.saturating_sub(earliest_dirty_ms) > config.max_compaction_lag_ms;
    Ok(c)
}

/// Cleans `log` up to its first uncleanable offset, whatever its dirty ratio. `stop` ends
/// it early (between batches) at shutdown.
pub(crate) fn clean(log: &Log, options: &CleanOptions, stop: &AtomicBool) -> Result<CleanReport> {
    let _one_at_a_time = log.lock_clean();
    let now = log.now_ms();
    let config = log.config();
    // What is cleaned must be durable first (see `measure`): sync the closed segments now
    // rather than wait for the flusher.
    if let Some(active) = log.segment_list().last() {
        if log.durable_offset() < active.base_offset {
            log.flush()?;
        }
    }
    let segments = log.segment_list();
    let measured = measure(log, &segments, now)?;
    let mut report = CleanReport {
        first_dirty_offset: measured.first_dirty_offset,
        end_offset: measured.first_dirty_offset,
        ..CleanReport::default()
    };
    let closed: Vec<Arc<Segment>> = match segments.split_last() {
        Some((_, closed)) => closed
            .iter()
            .filter(|s| s.base_offset < measured.first_uncleanable_offset)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    if measured.dirty_bytes == 0 || closed.is_empty() {
        return Ok(report);
    }
    let Some(mapped) = build_map(log, &closed, &measured, options, stop)? else {
        report.interrupted = true;
        return Ok(report);
    };
    report.end_offset = mapped.end_offset;
    if mapped.end_offset <= measured.first_dirty_offset {
        tracing::warn!(
            log = log.name(),
            "log.cleaner.dedupe.buffer.size holds not even one batch of keys; nothing cleaned"
        );
        return Ok(report);
    }
    let to_clean: Vec<Arc<Segment>> = closed
        .into_iter()
        .filter(|s| s.base_offset < mapped.end_offset)
        .collect();
    let mut filter = Filter {
        map: &mapped.map,
        producer_last: &mapped.producer_last,
        aborted: &mapped.aborted,
        retained: HashMap::new(),
        end_offset: mapped.end_offset,
        now_ms: now,
        delete_retention_ms: config.delete_retention_ms,
        scratch: Vec::new(),
        records_removed: 0,
    };
    for group in group_segments(&to_clean, &config) {
        report.segments_before += group.len();
        report.bytes_before += group.iter().map(|s| s.size()).sum::<u64>();
        match clean_group(log, &config, &group, &mut filter, options, stop)? {
            GroupOutcome::Swapped(bytes) => {
                report.segments_after += 1;
                report.bytes_after += bytes;
            }
            GroupOutcome::Unchanged => {
                report.segments_after += group.len();
                report.bytes_after += group.iter().map(|s| s.size()).sum::<u64>();
            }
            GroupOutcome::Interrupted => {
                report.interrupted = true;
                report.records_removed = filter.records_removed;
                return Ok(report);
            }
        }
    }
    report.records_removed = filter.records_removed;
    log.set_cleaner_checkpoint(mapped.end_offset);
    Ok(report)
}

/// A key's hash: 128 bits from two SipHash-1-3 runs, as Kafka's map keeps a 16-byte MD5.
/// A collision would drop the older key's record; at 128 bits it is not a practical risk.
fn key_hash(key: &[u8]) -> u128 {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        h.write_u8(salt);
        h.write(key);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// The map's keys are already uniform hashes: its hasher passes them through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Key hash → offset of the latest record with that key, bounded by the dedupe buffer.
struct OffsetMap {
    map: HashMap<u128, i64, BuildHasherDefault<PassThrough>>,
    entries_max: usize,
}

impl OffsetMap {
    fn new(dedupe_buffer_bytes: u64) -> OffsetMap {
        let entries_max = (dedupe_buffer_bytes / DEDUPE_ENTRY_BYTES * 9 / 10).max(1);
        OffsetMap {
            map: HashMap::default(),
            entries_max: usize::try_from(entries_max).unwrap_or(usize::MAX),
        }
    }

    fn has_room(&self, keys: usize) -> bool {
        self.map.len().saturating_add(keys) <= self.entries_max
    }

    fn put(&mut self, key: &[u8], offset: i64) {
        self.map.insert(key_hash(key), offset);
    }

    fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&key_hash(key)).copied()
    }
}

struct Mapped {
    map: OffsetMap,
    end_offset: i64,
    /// Base offset of each producer id's last batch in the segments read.
    producer_last: HashMap<i64, i64>,
    aborted: Vec<AbortedTxn>,
}

/// Reads the closed segments below the first uncleanable offset: headers of the clean part
/// (for producers' last batches), records of the dirty part (into the key map) until the
/// map is full. None when stopped.
fn build_map(
    log: &Log,
    closed: &[Arc<Segment>],
    measured: &Cleanable,
    options: &CleanOptions,
    stop: &AtomicBool,
) -> Result<Option<Mapped>> {
    let mut map = OffsetMap::new(options.dedupe_buffer_bytes);
    let mut producer_last = HashMap::new();
    let aborted = log.aborted_txns(log.log_start_offset(), measured.first_uncleanable_offset);
    let mut end_offset = measured.first_uncleanable_offset;
    let mut full = false;
    let mut scratch = Vec::new();
    for seg in closed {
        if full {
            break;
        }
        let mut reader = BatchReader::new(seg);
        while let Some(h) = reader.next()? {
            if stop.load(Ordering::Acquire) || log.is_deleted() {
                return Ok(None);
            }
            if h.producer_id >= 0 {
                producer_last.insert(h.producer_id, h.base_offset);
            }
            if full
                || h.next_offset() <= measured.first_dirty_offset
                || h.is_control()
                || in_aborted(&aborted, &h)
            {
                continue;
            }
            let Ok(recs) =
                records::decode_any(reader.bytes(), &mut scratch, CLEAN_DECOMPRESSED_BYTES_MAX)
            else {
                // Unreadable records stay as they are (see the filter); their keys are not
                // mapped, so older records of those keys stay too.
                continue;
            };
            if !map.has_room(recs.len()) {
                full = true;
                end_offset = h.base_offset.max(measured.first_dirty_offset);
                continue;
            }
            for r in &recs {
                if let Some(k) = r.key {
                    map.put(k, r.offset);
                }
            }
        }
    }
    Ok(Some(Mapped {
        map,
        end_offset,
        producer_last,
        aborted,
    }))
}

/// Whether `h` is a batch of a transaction that aborted (its records are not to be read).
fn in_aborted(aborted: &[AbortedTxn], h: &BatchHeader) -> bool {
    h.is_transactional()
        && !h.is_control()
        && aborted.iter().any(|a| {
            a.producer_id == h.producer_id
                && a.first_offset <= h.base_offset
                && h.base_offset <= a.last_offset
        })
}

/// Kafka's `groupSegmentsBySize`: consecutive segments whose sizes sum to at most
/// `segment.bytes`, whose indexes fit `segment.index.bytes`, and whose offsets fit the
/// group's first base offset plus a u32, so each group becomes one segment.
fn group_segments(segments: &[Arc<Segment>], config: &LogConfig) -> Vec<Vec<Arc<Segment>>> {
    let index_bytes = |s: &Segment| (s.offset_index.len() * OFFSET_INDEX_ENTRY_BYTES) as u64;
    let time_bytes = |s: &Segment| (s.time_index.len() * TIME_INDEX_ENTRY_BYTES) as u64;
    let mut groups = Vec::new();
    let mut rest = segments.iter();
    let mut next = rest.next();
    while let Some(first) = next {
        let mut group = vec![Arc::clone(first)];
        let (mut bytes, mut ib, mut tb) = (first.size(), index_bytes(first), time_bytes(first));
        next = rest.next();
        while let Some(s) = next {
            let last_relative = s.next_offset() - 1 - first.base_offset;
            if bytes + s.size() > config.segment_bytes
                || ib + index_bytes(s) > config.segment_index_bytes
                || tb + time_bytes(s) > config.segment_index_bytes
                || last_relative > i64::from(u32::MAX)
            {
                break;
            }
            bytes += s.size();
            ib += index_bytes(s);
            tb += time_bytes(s);
            group.push(Arc::clone(s));
            next = rest.next();
        }
        groups.push(group);
    }
    groups
}

enum GroupOutcome {
    /// Replaced by one cleaned segment of this many bytes.
    Swapped(u64),
    /// One segment with nothing to remove: left as it is.
    Unchanged,
    Interrupted,
}

/// Writes the cleaned copy of `group` and swaps it in.
fn clean_group(
    log: &Log,
    config: &LogConfig,
    group: &[Arc<Segment>],
    filter: &mut Filter<'_>,
    options: &CleanOptions,
    stop: &AtomicBool,
) -> Result<GroupOutcome> {
    let Some(first) = group.first() else {
        return Ok(GroupOutcome::Unchanged);
    };
    let dir = log.dir();
    let base = first.base_offset;
    // A failure while the partition is being deleted is the deletion's doing, not the disk's;
    // a segment deleted meanwhile or a lack of descriptors ends this clean, not the next.
    let quiet = |e: LogError| -> Result<GroupOutcome> {
        if matches!(e, LogError::SegmentGone { .. } | LogError::Exhausted { .. }) {
            let _ = segment::remove_stage(dir, base, Some(segment::CLEANED));
            Ok(GroupOutcome::Interrupted)
        } else if log.is_deleted() {
            Ok(GroupOutcome::Interrupted)
        } else {
            Err(log.fail(e))
        }
    };
    let written = match write_cleaned(log, group, filter, stop) {
        Ok(w) => w,
        Err(e @ (LogError::Corrupt { .. } | LogError::Uncleanable { .. })) => {
            let _ = segment::remove_stage(dir, base, Some(segment::CLEANED));
            return Err(e);
        }
        Err(e) => return quiet(e),
    };
    let Some(changed) = written else {
        let _ = segment::remove_stage(dir, base, Some(segment::CLEANED));
        return Ok(GroupOutcome::Interrupted);
    };
    if !changed && group.len() == 1 {
        return match segment::remove_stage(dir, base, Some(segment::CLEANED)) {
            Ok(()) => Ok(GroupOutcome::Unchanged),
            Err(e) => quiet(e),
        };
    }
    let staged = (|| -> Result<Segment> {
        let seg = Segment::open_staged(
            dir,
            base,
            config.segment_index_bytes,
            true,
            Some(segment::CLEANED),
        )?;
        // The aborted transactions stay known: their records may still be there.
        let aborted: Vec<_> = group.iter().flat_map(|s| s.aborted()).collect();
        seg.append_aborted(&aborted)?;
        // Reading back what was written, CRCs included, pairs the writer's checks.
        if let Some((position, reason)) = seg.rebuild(true, config.index_interval_bytes)? {
            return Err(LogError::Corrupt {
                path: seg.path().to_path_buf(),
                position,
                reason: format!("the cleaner wrote a bad batch: {reason}"),
            });
        }
        seg.close()?;
        seg.sync_all()?;
        seg.synced.store(true, Ordering::Release);
        Ok(seg)
    })();
    let seg = match staged {
        Ok(seg) => seg,
        Err(e) => {
            let _ = segment::remove_stage(dir, base, Some(segment::CLEANED));
            return match e {
                LogError::Corrupt { .. } => Err(e),
                e => quiet(e),
            };
        }
    };
    let bytes = seg.size();
    if options.stop_after == Some(SwapStep::Cleaned) {
        return Ok(GroupOutcome::Interrupted);
    }
    let committed = segment::rename_stage(dir, base, Some(segment::CLEANED), Some(segment::SWAP))
        .and_then(|()| sync_dir(dir));
    if let Err(e) = committed {
        return quiet(e);
    }
    if options.stop_after == Some(SwapStep::Swap) {
        return Ok(GroupOutcome::Interrupted);
    }
    match log.swap_in(group, seg, options.stop_after) {
        Ok(true) => Ok(GroupOutcome::Swapped(bytes)),
        Ok(false) => Ok(GroupOutcome::Interrupted),
        Err(e) => quiet(e),
    }
}

/// Writes the surviving batches of `group` to `<base>.log.cleaned` and syncs it. Returns
/// whether anything differs from the input (None: stopped).
fn write_cleaned(
    log: &Log,
    group: &[Arc<Segment>],
    filter: &mut Filter<'_>,
    stop: &AtomicBool,
) -> Result<Option<bool>> {
    let Some(first) = group.first() else {
        return Ok(Some(false));
    };
    let path = segment::staged_path(
        log.dir(),
        first.base_offset,
        segment::LOG_SUFFIX,
        Some(segment::CLEANED),
    );
    // Leftovers of an interrupted clean are stale: start from empty files.
    segment::remove_stage(log.dir(), first.base_offset, Some(segment::CLEANED))?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut out = Output {
        file,
        path,
        buf: Vec::with_capacity(CLEAN_WRITE_BUFFER_BYTES),
        position: 0,
    };
    let mut changed = group.len() > 1;
    for (i, seg) in group.iter().enumerate() {
        let last_segment = i + 1 == group.len();
        let mut reader = BatchReader::new(seg);
        while let Some(h) = reader.next()? {
            if stop.load(Ordering::Acquire) || log.is_deleted() {
                return Ok(None);
            }
            let last_of_group = last_segment && reader.at_end();
            match filter.batch(&h, reader.bytes(), last_of_group) {
                Verdict::Keep => out.write(reader.bytes())?,
                Verdict::Rewrite(bytes) => {
                    changed = true;
                    out.write(&bytes)?;
                }
                Verdict::Drop => changed = true,
            }
        }
    }
    out.finish()?;
    Ok(Some(changed))
}

struct Output {
    file: File,
    path: std::path::PathBuf,
    buf: Vec<u8>,
    position: u64,
}

impl Output {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > CLEAN_WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        if bytes.len() >= CLEAN_WRITE_BUFFER_BYTES {
            self.file
                .write_all_at(bytes, self.position)
                .map_err(io_err(&self.path))?;
            self.position += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all_at(&self.buf, self.position)
            .map_err(io_err(&self.path))?;
        self.position += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.file.sync_all().map_err(io_err(&self.path))
    }
}

/// Reads a closed segment's batches in large chunks, checking each batch's CRC: a damaged
/// batch must never be rewritten under a fresh, valid CRC.
struct BatchReader<'a> {
    seg: &'a Segment,
    end: u64,
    buf: Vec<u8>,
    buf_at: u64,
    position: u64,
    current: std::ops::Range<usize>,
}

impl<'a> BatchReader<'a> {
    fn new(seg: &'a Segment) -> BatchReader<'a> {
        BatchReader {
            seg,
            end: seg.size(),
            buf: Vec::new(),
            buf_at: 0,
            position: 0,
            current: 0..0,
        }
    }

    fn at_end(&self) -> bool {
        self.position >= self.end
    }

    /// The batch `next` returned last.
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.current.clone()).unwrap_or(&[])
    }

    fn corrupt(&self, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.seg.path().to_path_buf(),
            position: self.position,
            reason,
        }
    }

    fn next(&mut self) -> Result<Option<BatchHeader>> {
        if self.position >= self.end {
            return Ok(None);
        }
        self.fill(HEADER_BYTES)?;
        let at = (self.position - self.buf_at) as usize;
        let h = BatchHeader::parse(self.buf.get(at..).unwrap_or(&[]))
            .map_err(|e| self.corrupt(e.to_string()))?;
        let size = h.size();
        if size > CLEAN_BATCH_BYTES_MAX {
            return Err(LogError::Uncleanable {
                path: self.seg.path().to_path_buf(),
                reason: format!(
                    "batch at byte {} has {size} bytes, more than the cleaner buffers ({CLEAN_BATCH_BYTES_MAX})",
                    self.position
                ),
            });
        }
        self.fill(size)?;
        let at = (self.position - self.buf_at) as usize;
        self.current = at..at + size;
        batch::validate(self.bytes()).map_err(|e| self.corrupt(e.to_string()))?;
        self.position += size as u64;
        Ok(Some(h))
    }

    /// Makes the buffer cover `len` bytes from the current position.
    fn fill(&mut self, len: usize) -> Result<()> {
        if self.position + len as u64 > self.end {
            return Err(self.corrupt("batch runs past the segment end".into()));
        }
        let have_end = self.buf_at + self.buf.len() as u64;
        if self.position >= self.buf_at && self.position + len as u64 <= have_end {
            return Ok(());
        }
        let read = (len.max(CLEAN_READ_BUFFER_BYTES) as u64).min(self.end - self.position);
        self.buf.resize(read as usize, 0);
        self.seg.read_at(&mut self.buf, self.position)?;
        self.buf_at = self.position;
        Ok(())
    }
}

enum Verdict {
    Keep,
    Rewrite(Vec<u8>),
    Drop,
}

/// Decides, batch by batch, what survives (Kafka's `shouldRetainRecord` and batch retention).
struct Filter<'a> {
    map: &'a OffsetMap,
    producer_last: &'a HashMap<i64, i64>,
    /// Aborted transactions: their records go.
    aborted: &'a [AbortedTxn],
    /// Producers with records of their current transaction kept since their last marker:
    /// that marker must stay (Kafka's `CleanedTransactionMetadata`).
    retained: HashMap<i64, bool>,
    end_offset: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    scratch: Vec<u8>,
    records_removed: u64,
}

impl Filter<'_> {
    fn batch(&mut self, h: &BatchHeader, bytes: &[u8], last_of_group: bool) -> Verdict {
        if h.base_offset >= self.end_offset {
            return Verdict::Keep;
        }
        let horizon_ms = (h.attributes & DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp);
        let mut scratch = std::mem::take(&mut self.scratch);
        let verdict = match records::decode_any(bytes, &mut scratch, CLEAN_DECOMPRESSED_BYTES_MAX) {
            Ok(recs) if h.is_control() => self.marker(h, &recs, horizon_ms, last_of_group),
            Ok(recs) if in_aborted(self.aborted, h) => {
                self.records(h, &recs[..0], horizon_ms, last_of_group)
            }
            Ok(recs) => {
                let verdict = self.records(h, &recs, horizon_ms, last_of_group);
                let kept_any = match &verdict {
                    Verdict::Keep => !recs.is_empty(),
                    Verdict::Rewrite(b) => BatchHeader::parse(b).is_ok_and(|x| x.record_count > 0),
                    Verdict::Drop => false,
                };
                if h.is_transactional() && kept_any {
                    self.retained.insert(h.producer_id, true);
                }
                verdict
            }
            Err(e) => {
                tracing::warn!(offset = h.base_offset, error = %e, "cleaner keeps a batch it cannot decode as it is");
                Verdict::Keep
            }
        };
        self.scratch = scratch;
        verdict
    }

    /// A transaction marker stays while records of its transaction do; then it gets a
    /// delete horizon (`delete.retention.ms`, so consumers reading past the data still
    /// see it for a while) and goes at the first clean after the horizon (Kafka's rule).
    /// A producer's last batch stays for its idempotence state.
    fn marker(
        &mut self,
        h: &BatchHeader,
        recs: &[Record<'_>],
        horizon_ms: Option<i64>,
        last_of_group: bool,
    ) -> Verdict {
        let has_data = self.retained.remove(&h.producer_id).unwrap_or(false);
        let producer_last = self.producer_last.get(&h.producer_id) == Some(&h.base_offset);
        if has_data || !h.is_transactional() || producer_last {
            return Verdict::Keep;
        }
        match horizon_ms {
            Some(t) if self.now_ms >= t && !last_of_group => Verdict::Drop,
            Some(_) => Verdict::Keep,
            None => {
                let horizon = self.now_ms.saturating_add(self.delete_retention_ms);
                let kept: Vec<&Record<'_>> = recs.iter().collect();
                encode_batch(h, &kept, Some(horizon)).map_or(Verdict::Keep, Verdict::Rewrite)
            }
        }
    }

    fn records(
        &mut self,
        h: &BatchHeader,
        recs: &[Record<'_>],
        horizon_ms: Option<i64>,
        last_of_group: bool,
    ) -> Verdict {
        let mut kept: Vec<&Record<'_>> = Vec::with_capacity(recs.len());
        for r in recs {
            let keep = r.offset >= self.end_offset
                || r.key.is_some_and(|k| {
                    let latest = self.map.get(k).is_none_or(|o| r.offset >= o);
                    latest && (r.value.is_some() || horizon_ms.is_none_or(|t| self.now_ms < t))
                });
            if keep {
                kept.push(r);
            }
        }
        self.records_removed += (recs.len() - kept.len()) as u64;
        let tombstones = kept.iter().any(|r| r.value.is_none());
        if kept.is_empty() {
            let producer_last = h.producer_id >= 0
                && self.producer_last.get(&h.producer_id) == Some(&h.base_offset);
            if !(last_of_group || producer_last) {
                return Verdict::Drop;
            }
            if recs.is_empty() {
                return Verdict::Keep;
            }
        } else if kept.len() == recs.len() && (!tombstones || horizon_ms.is_some()) {
            return Verdict::Keep;
        }
        let horizon_ms = if tombstones {
            horizon_ms.or(Some(self.now_ms.saturating_add(self.delete_retention_ms)))
        } else {
            None
        };
        match encode_batch(h, &kept, horizon_ms) {
            Some(bytes) => Verdict::Rewrite(bytes),
            None => Verdict::Keep,
        }
    }
}

/// Encodes `kept` as a batch in place of `h`: same base offset, last offset delta, producer
/// fields, leader epoch and codec (an empty batch is stored uncompressed); the base timestamp
/// holds `horizon_ms` when set. None when re-compressing fails.
fn encode_batch(h: &BatchHeader, kept: &[&Record<'_>], horizon_ms: Option<i64>) -> Option<Vec<u8>> {
    let had_horizon = h.attributes & DELETE_HORIZON_BIT != 0;
    let base_timestamp = match (horizon_ms, had_horizon) {
        (Some(t), _) => t,
        // The old base was a horizon: a record's own time is a natural base again.
        (None, true) => kept.first().map_or(h.max_timestamp, |r| r.timestamp),
        (None, false) => h.base_timestamp,
    };
    let mut section = Vec::new();
    let mut body = Vec::new();
    for r in kept {
        body.clear();
        body.push(0); // record attributes: unused in v2
        varint::put_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
        varint::put_varint(&mut body, i32::try_from(r.offset - h.base_offset).ok()?);
        put_bytes(&mut body, r.key);
        put_bytes(&mut body, r.value);
        varint::put_varint(&mut body, i32::try_from(r.headers.len()).ok()?);
        for (k, v) in &r.headers {
            put_bytes(&mut body, Some(k));
            put_bytes(&mut body, *v);
        }
        varint::put_varint(&mut section, i32::try_from(body.len()).ok()?);
        section.extend_from_slice(&body);
    }
    let mut attributes = h.attributes & !DELETE_HORIZON_BIT;
    if horizon_ms.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let codec = h.compression();
    if kept.is_empty() {
        attributes &= !COMPRESSION_BITS;
    } else if codec != Compression::None {
        section = strom_proto::compression::compress(codec, &section).ok()?;
    }
    let max_timestamp = match h.timestamp_type() {
        TimestampType::LogAppendTime => h.max_timestamp,
        TimestampType::CreateTime => kept
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(h.max_timestamp),
    };
    let size = HEADER_BYTES + section.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&h.base_offset.to_be_bytes());
    out.extend_from_slice(
        &i32::try_from(size - batch::LOG_OVERHEAD_BYTES)
            .ok()?
            .to_be_bytes(),
    );
    out.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    out.push(batch::MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&h.producer_id.to_be_bytes());
    out.extend_from_slice(&h.producer_epoch.to_be_bytes());
    out.extend_from_slice(&h.base_sequence.to_be_bytes());
    out.extend_from_slice(&i32::try_from(kept.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&section);
    let crc = batch::crc(&out);
    out.get_mut(17..21)?.copy_from_slice(&crc.to_be_bytes());
    Some(out)
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => varint::put_varint(out, -1),
        Some(b) => {
            varint::put_varint(out, i32::try_from(b.len()).unwrap_or(i32::MAX));
            out.extend_from_slice(b);
        }
    }
}

/// The cleaner thread of a log dir: cleans the dirtiest due log, again and again, and waits
/// `log.cleaner.backoff.ms` when none is due. A log it cannot clean (damage, a batch too
/// large) is left alone until the next start, as Kafka marks such partitions uncleanable.
pub(crate) fn run(
    shared: Arc<DirShared>,
    options: CleanerOptions,
    stop: Arc<AtomicBool>,
    wake: Receiver<()>,
) {
    let clock = shared.clock();
    let mut uncleanable: HashSet<String> = HashSet::new();
    while !stop.load(Ordering::Acquire) {
        let now = clock.now_ms();
        let mut dirtiest: Option<(Arc<Log>, f64)> = None;
        for log in shared.logs() {
            let config = log.config();
            if !config.cleanup_policy_compact || uncleanable.contains(log.name()) {
                continue;
            }
            match measure(&log, &log.segment_list(), now) {
                Ok(c) if c.due(&config) => {
                    let ratio = if c.overdue { f64::INFINITY } else { c.ratio() };
                    if dirtiest.as_ref().is_none_or(|(_, r)| ratio > *r) {
                        dirtiest = Some((log, ratio));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(log = log.name(), error = %e, "measuring a log for cleaning failed")
                }
            }
        }
        let mut progressed = false;
        if let Some((log, _)) = dirtiest {
            match clean(&log, &options.clean, &stop) {
                Ok(r) => {
                    progressed = r.end_offset > r.first_dirty_offset && !r.interrupted;
                    if let Err(e) = log.after_clean(&r) {
                        tracing::error!(log = log.name(), error = %e, "writing checkpoints failed");
                    }
                    tracing::info!(
                        log = log.name(),
                        from = r.first_dirty_offset,
                        to = r.end_offset,
                        segments_before = r.segments_before,
                        segments_after = r.segments_after,
                        bytes_before = r.bytes_before,
                        bytes_after = r.bytes_after,
                        records_removed = r.records_removed,
                        "log cleaned"
                    );
                }
                Err(e) => {
                    tracing::error!(log = log.name(), error = %e, "cleaning failed; the log is left uncleaned until restart");
                    uncleanable.insert(log.name().to_string());
                }
            }
        }
        if !progressed {
            match wake.recv_timeout(Duration::from_millis(options.backoff_ms)) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_proto::BatchBuilder;

    fn check_encode(codec: Compression) {
        let mut b = BatchBuilder::new(1_000).producer(7, 1, 40);
        b.push(Some(b"a"), Some(b"1"), 1_000);
        b.push(Some(b"b"), None, 1_005);
        b.push_with_headers(Some(b"c"), Some(b"3"), &[(b"h", Some(b"v"))], 990);
        let mut bytes = b.build_compressed(codec).unwrap();
        batch::set_base_offset(&mut bytes, 100);
        let h = BatchHeader::parse(&bytes).unwrap();
        let mut scratch = Vec::new();
        let recs = records::decode_any(&bytes, &mut scratch, 1 << 20).unwrap();
        let kept: Vec<&Record<'_>> = vec![&recs[1], &recs[2]];
        let out = encode_batch(&h, &kept, Some(5_000)).unwrap();
        let oh = batch::validate(&out).unwrap();
        assert_eq!(oh.base_offset, 100);
        assert_eq!(oh.last_offset_delta, 2);
        assert_eq!(oh.record_count, 2);
        assert_eq!(
            (oh.producer_id, oh.producer_epoch, oh.base_sequence),
            (7, 1, 40)
        );
        assert_eq!(oh.compression(), codec);
        assert_eq!(oh.attributes & DELETE_HORIZON_BIT, DELETE_HORIZON_BIT);
        assert_eq!(oh.base_timestamp, 5_000);
        assert_eq!(oh.max_timestamp, 1_005);
        let mut scratch2 = Vec::new();
        let again = records::decode_any(&out, &mut scratch2, 1 << 20).unwrap();
        assert_eq!(again, vec![recs[1].clone(), recs[2].clone()]);
        // Emptied: the header alone, uncompressed, offsets and sequence kept.
        let empty = encode_batch(&h, &[], None).unwrap();
        let eh = batch::validate(&empty).unwrap();
        assert_eq!((eh.record_count, eh.last_offset_delta), (0, 2));
        assert_eq!(eh.compression(), Compression::None);
        assert_eq!(eh.base_sequence, 40);
    }

    #[test]
    fn rewritten_batches_keep_offsets_records_and_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            check_encode(codec);
        }
    }

    #[test]
    fn key_hashes_differ_and_repeat() {
        assert_eq!(key_hash(b"k"), key_hash(b"k"));
        assert_ne!(key_hash(b"k"), key_hash(b"k2"));
        assert_ne!(key_hash(b""), key_hash(b"\0"));
    }

    #[test]
    fn offset_map_is_bounded_by_the_dedupe_buffer() {
        let m = OffsetMap::new(240);
        assert_eq!(m.entries_max, 9);
        assert!(m.has_room(9));
        assert!(!m.has_room(10));
    }
}
