//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment.
//!
//! Both are arrays of fixed-size big-endian entries in a memory-mapped file, grown to
//! `segment.index.bytes` when the active segment's index is first mapped and trimmed to their
//! entries when it is closed, exactly as Kafka lays them out:
//!
//! - offset index: relative offset (u32) of a batch's last record, file position (u32) of the
//!   batch's first byte; both strictly increasing.
//! - time index: the segment's max timestamp so far (i64), relative offset (u32) of the record
//!   that carries it; timestamps strictly increasing, offsets non-decreasing.
//!
//! Concurrency: one writer appends (under the log's append lock); readers read entries below
//! the published length and never block it. An entry is written before the length that
//! covers it is stored with `Release`, and readers load the length with `Acquire`.

use crate::error::{io_err, Result};
use crate::handles::{open_or_create, transient, Handles, Slot};
use crate::limits::{OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};
use crate::segment::{sibling, INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use memmap2::{Advice, MmapOptions, MmapRaw};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// A memory-mapped array of `N`-byte entries. The file is not held open: it is mapped on
/// first use (Kafka's `LazyIndex`), the descriptor closed once mapped, and the mapping is
/// one of the process's bounded pool (`Handles::maps`), unmapped when idle and mapped
/// again on demand. Entries written through a mapping are in the page cache either way.
#[derive(Debug)]
struct MmapIndex<const N: usize> {
    /// The segment's log file: the index file is its sibling (`suffix`).
    log_path: Arc<Path>,
    /// Made with the first mapping: an index never mapped (an idle partition's) costs no
    /// allocation.
    map: OnceLock<Arc<Slot<MmapRaw>>>,
    /// Entries the file has room for; 0 once trimmed, so a closed index takes no appends.
    capacity: AtomicUsize,
    len: AtomicUsize,
    /// A mapping failed (out of maps): logged once.
    warned: AtomicBool,
}

impl<const N: usize> MmapIndex<N> {
    /// The index file's suffix: its entry size names it.
    const fn suffix() -> &'static str {
        if N == OFFSET_INDEX_ENTRY_BYTES {
            INDEX_SUFFIX
        } else {
            TIME_INDEX_SUFFIX
        }
    }

    /// Opens (or creates) the file. Its entries are taken to be every whole entry the file
    /// holds: callers check them with `check` and rebuild the index when in doubt. With
    /// `writable`, the index takes appends up to `max_bytes` (the file grows when mapped).
    fn open(log_path: &Arc<Path>, max_bytes: u64, writable: bool) -> Result<Self> {
        let path = &sibling(log_path, Self::suffix());
        let file_bytes = match std::fs::metadata(path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(path)(e)),
        };
        let found = file_bytes.unwrap_or(0);
        let len = usize::try_from(found).unwrap_or(usize::MAX) / N;
        let len_bytes = (len * N) as u64;
        let room = if writable {
            len_bytes.max(max_bytes / N as u64 * N as u64)
        } else {
            len_bytes
        };
        // A torn entry is cut; a writable index grows to `max_bytes` only when first mapped
        // (`mapping`), so opening and closing an idle partition leave its files alone.
        if file_bytes.is_none() || found != len_bytes {
            let file = open_or_create(path).map_err(io_err(path))?;
            file.set_len(len_bytes).map_err(io_err(path))?;
        }
        let capacity = if writable { room as usize / N } else { 0 };
        Ok(MmapIndex {
            log_path: Arc::clone(log_path),
            map: OnceLock::new(),
            capacity: AtomicUsize::new(capacity),
            len: AtomicUsize::new(len),
            warned: AtomicBool::new(false),
        })
    }

    fn set_path(&mut self, log_path: &Arc<Path>) {
        self.log_path = Arc::clone(log_path);
    }

    fn path(&self) -> PathBuf {
        sibling(&self.log_path, Self::suffix())
    }

    /// Bytes a mapping covers: the file's length (room for `capacity` entries while the
    /// index takes appends, its entries once trimmed).
    fn map_bytes(&self) -> usize {
        self.capacity.load(Ordering::Acquire).max(self.len()) * N
    }

    /// The mapping, made if there is none; None when the index is empty or the process is
    /// out of maps (then lookups find nothing and reads scan from the segment start, and
    /// appends skip the entry: slower, never wrong).
    fn mapping(&self) -> Option<Arc<MmapRaw>> {
        let bytes = self.map_bytes();
        if bytes == 0 {
            return None;
        }
        let slot = self.map.get_or_init(|| Slot::new(&Handles::maps()));
        let made = slot.get(|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path())?;
            if file.metadata()?.len() < bytes as u64 {
                file.set_len(bytes as u64)?;
            }
            let map = MmapOptions::new().len(bytes).map_raw(&file)?;
            // Lookups are binary searches: read-ahead would only fault in (and, for a fresh
            // sparse file, zero-fill) megabytes of index per segment for nothing.
            map.advise(Advice::Random)?;
            Ok(map)
        });
        match made {
            Ok(map) => Some(map),
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(index = %self.path().display(), error = %e, "cannot map index; reading without it");
                }
                None
            }
        }
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn is_full(&self) -> bool {
        self.len() >= self.capacity.load(Ordering::Acquire)
    }

    fn entry(&self, i: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if i < self.len() {
            if let Some(map) = self.mapping().filter(|m| (i + 1) * N <= m.len()) {
                // SAFETY: (i + 1) * N <= the mapping's length, so the N bytes are inside
                // it; `map` keeps it mapped while we copy; the file is at least as long
                // as the mapping's entries below len (it is trimmed only to len entries);
                // entries below len are never written while readers may look at them (only
                // the single writer truncates and rewrites, see the module doc).
                unsafe {
                    std::ptr::copy_nonoverlapping(map.as_ptr().add(i * N), out.as_mut_ptr(), N)
                };
            }
        }
        out
    }

    /// Appends an entry; false when the index is full (the caller rolls the segment) or
    /// cannot be mapped now (the entry is left out: lookups start earlier).
    fn push(&self, entry: [u8; N]) -> bool {
        let i = self.len.load(Ordering::Relaxed);
        if i >= self.capacity.load(Ordering::Relaxed) {
            return false;
        }
        let Some(map) = self.mapping().filter(|m| (i + 1) * N <= m.len()) else {
            return false;
        };
        // SAFETY: (i + 1) * N <= the mapping's length, within the file (grown to capacity);
        // only the single writer calls push.
        unsafe { std::ptr::copy_nonoverlapping(entry.as_ptr(), map.as_mut_ptr().add(i * N), N) };
        self.len.store(i + 1, Ordering::Release);
        true
    }

    fn truncate(&self, len: usize) {
        if len < self.len() {
            self.len.store(len, Ordering::Release);
        }
    }

    /// Shrinks the file to its entries and stops appends: the segment is closed. The
    /// mapping is dropped (a later one covers only the entries).
    fn trim(&self) -> Result<()> {
        self.capacity.store(0, Ordering::Release);
        let bytes = (self.len() * N) as u64;
        let path = &self.path();
        if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes) {
            self.unmap();
            return Ok(());
        }
        let file = transient(|| OpenOptions::new().write(true).open(path)).map_err(io_err(path))?;
        // Readers holding the old mapping only read entries below len, inside the file.
        self.unmap();
        file.set_len(bytes).map_err(io_err(path))
    }

    fn unmap(&self) {
        if let Some(slot) = self.map.get() {
            slot.close_now();
        }
    }

    fn sync(&self) -> Result<()> {
        let path = &self.path();
        if let Some(map) = self.map.get().and_then(|slot| slot.peek()) {
            let bytes = (self.len() * N).min(map.len());
            if bytes > 0 {
                map.flush_range(0, bytes).map_err(io_err(path))?;
            }
        }
        // fsync writes back the pages dirtied through any mapping, open or since unmapped.
        transient(|| OpenOptions::new().read(true).open(path))
            .and_then(|f| f.sync_all())
            .map_err(io_err(path))
    }

    /// Binary search for the last entry whose key is at most `target`.
    fn last_at_most(&self, target: i64, key: impl Fn(&[u8; N]) -> i64) -> Option<[u8; N]> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(&self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i))
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b.get(at..at + 4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(a)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(at..at + 8).unwrap_or(&[0; 8]));
    i64::from_be_bytes(a)
}

/// An offset index entry: a batch's last relative offset and its starting file position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug)]
pub(crate) struct OffsetIndex(MmapIndex<OFFSET_INDEX_ENTRY_BYTES>);

impl OffsetIndex {
    /// The index of the segment whose log file is `log_path`.
    pub fn open(log_path: &Arc<Path>, max_bytes: u64, writable: bool) -> Result<Self> {
        MmapIndex::open(log_path, max_bytes, writable).map(OffsetIndex)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    pub fn get(&self, i: usize) -> OffsetEntry {
        let e = self.0.entry(i);
        OffsetEntry {
            relative_offset: u32_at(&e, 0),
            position: u32_at(&e, 4),
        }
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    pub fn push(&self, e: OffsetEntry) -> bool {
        let mut b = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        b[..4].copy_from_slice(&e.relative_offset.to_be_bytes());
        b[4..].copy_from_slice(&e.position.to_be_bytes());
        self.0.push(b)
    }

    /// The last entry with a relative offset at most `relative_offset`.
    pub fn lookup(&self, relative_offset: i64) -> Option<OffsetEntry> {
        self.0
            .last_at_most(relative_offset, |e| i64::from(u32_at(e, 0)))
            .map(|e| OffsetEntry {
                relative_offset: u32_at(&e, 0),
                position: u32_at(&e, 4),
            })
    }

    /// The last entry with a position at most `position`.
    pub fn lookup_position(&self, position: u64) -> Option<OffsetEntry> {
        let target = i64::try_from(position).unwrap_or(i64::MAX);
        self.0
            .last_at_most(target, |e| i64::from(u32_at(e, 4)))
            .map(|e| OffsetEntry {
                relative_offset: u32_at(&e, 0),
                position: u32_at(&e, 4),
            })
    }

    /// Drops the entries of batches at or after `position`.
    pub fn truncate_to_position(&self, position: u64) {
        let keep = (0..self.len())
            .rev()
            .find(|&i| u64::from(self.get(i).position) < position)
            .map_or(0, |i| i + 1);
        self.0.truncate(keep);
    }

    pub fn clear(&self) {
        self.0.truncate(0);
    }

    /// Entries must be strictly increasing in both fields and point inside the segment.
    pub fn check(&self, segment_bytes: u64) -> Result<(), String> {
        let mut prev: Option<OffsetEntry> = None;
        for i in 0..self.len() {
            let e = self.get(i);
            if u64::from(e.position) >= segment_bytes {
                return Err(format!("entry {i} points past the end of the segment"));
            }
            if let Some(p) = prev {
                if e.relative_offset <= p.relative_offset || e.position <= p.position {
                    return Err(format!("entry {i} is not after entry {}", i - 1));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }

    pub fn trim(&self) -> Result<()> {
        self.0.trim()
    }

    pub fn set_path(&mut self, log_path: &Arc<Path>) {
        self.0.set_path(log_path);
    }

    pub fn sync(&self) -> Result<()> {
        self.0.sync()
    }
}

/// A time index entry: the max timestamp so far and the relative offset carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug)]
pub(crate) struct TimeIndex(MmapIndex<TIME_INDEX_ENTRY_BYTES>);

impl TimeIndex {
    /// The index of the segment whose log file is `log_path`.
    pub fn open(log_path: &Arc<Path>, max_bytes: u64, writable: bool) -> Result<Self> {
        MmapIndex::open(log_path, max_bytes, writable).map(TimeIndex)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    pub fn get(&self, i: usize) -> TimeEntry {
        let e = self.0.entry(i);
        TimeEntry {
            timestamp: i64_at(&e, 0),
            relative_offset: u32_at(&e, 8),
        }
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Appends when `e` is newer than the last entry, as Kafka's `maybeAppend` does.
    pub fn maybe_push(&self, e: TimeEntry) -> bool {
        if self.last().is_some_and(|l| e.timestamp <= l.timestamp) {
            return true;
        }
        let mut b = [0u8; TIME_INDEX_ENTRY_BYTES];
        b[..8].copy_from_slice(&e.timestamp.to_be_bytes());
        b[8..].copy_from_slice(&e.relative_offset.to_be_bytes());
        self.0.push(b)
    }

    /// The last entry with a timestamp at most `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        self.0
            .last_at_most(timestamp, |e| i64_at(e, 0))
            .map(|e| TimeEntry {
                timestamp: i64_at(&e, 0),
                relative_offset: u32_at(&e, 8),
            })
    }

    /// Drops the entries for relative offsets at or after `relative_offset`.
    pub fn truncate_to_offset(&self, relative_offset: i64) {
        let keep = (0..self.len())
            .rev()
            .find(|&i| i64::from(self.get(i).relative_offset) < relative_offset)
            .map_or(0, |i| i + 1);
        self.0.truncate(keep);
    }

    pub fn clear(&self) {
        self.0.truncate(0);
    }

    /// Timestamps strictly increasing, offsets non-decreasing and below `next_relative`.
    pub fn check(&self, next_relative: i64) -> Result<(), String> {
        let mut prev: Option<TimeEntry> = None;
        for i in 0..self.len() {
            let e = self.get(i);
            if i64::from(e.relative_offset) >= next_relative.max(1) {
                return Err(format!("entry {i} names an offset past the segment"));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.relative_offset < p.relative_offset {
                    return Err(format!("entry {i} is not after entry {}", i - 1));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }

    pub fn trim(&self) -> Result<()> {
        self.0.trim()
    }

    pub fn set_path(&mut self, log_path: &Arc<Path>) {
        self.0.set_path(log_path);
    }

    pub fn sync(&self) -> Result<()> {
        self.0.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment's log file path, and its offset index's.
    fn paths(dir: &Path) -> (Arc<Path>, PathBuf) {
        (dir.join("0.log").into(), dir.join("0.index"))
    }

    #[test]
    fn offset_index_lookup_and_trim() {
        let dir = tempfile::tempdir().unwrap();
        let (log, path) = paths(dir.path());
        let idx = OffsetIndex::open(&log, 80, true).unwrap();
        let file_len = || std::fs::metadata(&path).unwrap().len();
        assert_eq!(file_len(), 0, "grown only when mapped");
        for (o, p) in [(3, 100), (7, 200), (12, 300)] {
            assert!(idx.push(OffsetEntry {
                relative_offset: o,
                position: p
            }));
            assert_eq!(file_len(), 80, "grown to the room allowed");
        }
        assert_eq!(idx.lookup(2), None);
        assert_eq!(idx.lookup(7).map(|e| e.position), Some(200));
        assert_eq!(idx.lookup(11).map(|e| e.position), Some(200));
        assert_eq!(idx.lookup(1000).map(|e| e.position), Some(300));
        assert_eq!(idx.lookup_position(250).map(|e| e.relative_offset), Some(7));
        assert!(idx.check(301).is_ok());
        assert!(idx.check(300).is_err());
        idx.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24, "trimmed");
        assert!(!idx.push(OffsetEntry {
            relative_offset: 20,
            position: 400
        }));
        drop(idx);
        let idx = OffsetIndex::open(&log, 80, false).unwrap();
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.last().map(|e| e.relative_offset), Some(12));
    }

    #[test]
    fn preallocated_zeros_fail_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = paths(dir.path());
        let idx = OffsetIndex::open(&log, 80, true).unwrap();
        idx.push(OffsetEntry {
            relative_offset: 5,
            position: 10,
        });
        drop(idx);
        // As after a crash: the file still has its preallocated size, full of zeros.
        let idx = OffsetIndex::open(&log, 80, true).unwrap();
        assert_eq!(idx.len(), 10);
        assert!(idx.check(1 << 20).is_err());
    }

    #[test]
    fn time_index_keeps_only_newer_entries() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TimeIndex::open(&paths(dir.path()).0, 120, true).unwrap();
        assert!(idx.maybe_push(TimeEntry {
            timestamp: 10,
            relative_offset: 0
        }));
        assert!(idx.maybe_push(TimeEntry {
            timestamp: 9,
            relative_offset: 1
        }));
        assert!(idx.maybe_push(TimeEntry {
            timestamp: 20,
            relative_offset: 5
        }));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(15).map(|e| e.relative_offset), Some(0));
        assert_eq!(idx.lookup(5), None);
        idx.truncate_to_offset(5);
        assert_eq!(idx.len(), 1);
        assert!(idx.check(6).is_ok());
    }
}
