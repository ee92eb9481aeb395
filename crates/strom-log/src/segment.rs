//! One segment: a `.log` file of record batches named by its base offset, with its offset and
//! time indexes.
//!
//! Invariants: the file holds whole batches back to back up to `size` (the published length);
//! their offsets increase and are all at least `base_offset` and below `base_offset + 2^32`;
//! every index entry points at the start of one of those batches.

use crate::error::{io_err, LogError, Result};
use crate::handles::{open_or_create, transient, Handles, Slot};
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::limits::SCAN_BUFFER_BYTES;
use crate::txn_index::{AbortedTxn, ENTRY_BYTES};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use strom_proto::batch::{self, BatchHeader, HEADER_BYTES};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
pub(crate) const TXN_INDEX_SUFFIX: &str = "txnindex";

/// The files of a segment, the log file first (the aborted-transaction index exists only
/// once a transaction aborted in the segment).
pub(crate) const SUFFIXES: [&str; 4] = [
    LOG_SUFFIX,
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
];

/// Stages of a segment file during a clean (Kafka's names): being written, complete and
/// about to replace the segments it was cleaned from, and replaced (about to be removed).
pub(crate) const CLEANED: &str = "cleaned";
pub(crate) const SWAP: &str = "swap";
pub(crate) const DELETED: &str = "deleted";

/// `<dir>/<base offset, 20 digits>.<suffix>`, Kafka's segment file naming.
pub(crate) fn file_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// The file of the same segment and stage as the log file `log_path` with `suffix` in place
/// of `log`: `<base>.log[.<stage>]` gives `<base>.<suffix>[.<stage>]`. A segment keeps only
/// its log file's path (one allocation, not four per segment: 100,000 partitions).
pub(crate) fn sibling(log_path: &Path, suffix: &str) -> PathBuf {
    let name = log_path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (stem, rest) = name.split_once('.').unwrap_or((name, LOG_SUFFIX));
    let stage = rest.strip_prefix(LOG_SUFFIX).unwrap_or("");
    log_path.with_file_name(format!("{stem}.{suffix}{stage}"))
}

/// `<dir>/<base offset>.<suffix>[.<stage>]`: a segment file, or one staged by the cleaner.
pub(crate) fn staged_path(
    dir: &Path,
    base_offset: i64,
    suffix: &str,
    stage: Option<&str>,
) -> PathBuf {
    match stage {
        None => file_path(dir, base_offset, suffix),
        Some(stage) => dir.join(format!("{base_offset:020}.{suffix}.{stage}")),
    }
}

/// Renames the segment files at `base_offset` from one stage to another, index files first
/// and the log file last: the log file's name decides what recovery does, so it moves only
/// once its indexes are in place. A missing index file is skipped (recovery rebuilds the
/// offset and time indexes; a missing aborted-transaction index means none aborted).
pub(crate) fn rename_stage(
    dir: &Path,
    base_offset: i64,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<()> {
    for suffix in [
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
        LOG_SUFFIX,
    ] {
        let src = staged_path(dir, base_offset, suffix, from);
        let dst = staged_path(dir, base_offset, suffix, to);
        match std::fs::rename(&src, &dst) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && suffix != LOG_SUFFIX => {}
            Err(e) => return Err(io_err(src)(e)),
        }
    }
    Ok(())
}

/// Removes the segment files at `base_offset` in `stage`; missing ones are fine.
pub(crate) fn remove_stage(dir: &Path, base_offset: i64, stage: Option<&str>) -> Result<()> {
    for suffix in SUFFIXES {
        let p = staged_path(dir, base_offset, suffix, stage);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(p)(e)),
        }
    }
    Ok(())
}

/// A run of bytes in a segment file: what a fetch sends to the socket with sendfile.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

impl FileSlice {
    /// Copies the slice into memory; for tests and for paths that cannot use sendfile.
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; usize::try_from(self.len).unwrap_or(0)];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

/// Where a scan stopped: the end of the last good batch, and why it stopped early if it did.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    pub end: u64,
    pub next_offset: Option<i64>,
    pub damage: Option<(u64, String)>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    /// The log file's path; the index files' are its siblings (`sibling`).
    path: Arc<Path>,
    /// The log file, open while in use: one of the process's bounded pool of descriptors
    /// (`Handles::files`), reopened on demand.
    file: Arc<Slot<File>>,
    /// The files were deleted or replaced: a closed descriptor cannot be reopened.
    gone: AtomicBool,
    /// Published length: readers never look past it.
    size: AtomicU64,
    /// The offset after the last batch (the base offset while empty).
    next_offset: AtomicI64,
    /// The largest batch max timestamp and the last offset of that batch; -1 while empty.
    max_timestamp: AtomicI64,
    offset_of_max_timestamp: AtomicI64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// The aborted-transaction index (`.txnindex`), in memory; its file is opened only to
    /// append (aborts are rare), so an idle segment holds no descriptor for it.
    aborted: Mutex<Vec<AbortedTxn>>,
    /// The segment's file and indexes are synced and it takes no more appends.
    pub synced: AtomicBool,
    /// The directory entry of the segment's files is synced.
    pub dir_synced: AtomicBool,
}

impl Segment {
    /// Opens the files of the segment at `base_offset`, creating missing ones. The indexes
    /// are trusted as found; `recover` or `check_indexes` decide whether to rebuild them.
    pub fn open(dir: &Path, base_offset: i64, index_bytes: u64, writable: bool) -> Result<Self> {
        Self::open_staged(dir, base_offset, index_bytes, writable, None)
    }

    /// `open` of the files of a stage of cleaning (`<base>.log.cleaned`, ...). The files
    /// stay open across renames, so the segment keeps working once they get their final
    /// names (`set_path` then fixes the name used in messages).
    pub fn open_staged(
        dir: &Path,
        base_offset: i64,
        index_bytes: u64,
        writable: bool,
        stage: Option<&str>,
    ) -> Result<Self> {
        let path: Arc<Path> = staged_path(dir, base_offset, LOG_SUFFIX, stage).into();
        let file = open_or_create(&path).map_err(io_err(&*path))?;
        let size = file.metadata().map_err(io_err(&*path))?.len();
        let offset_index = OffsetIndex::open(&path, index_bytes, writable)?;
        let time_index = TimeIndex::open(&path, index_bytes, writable)?;
        let txn_index_path = sibling(&path, TXN_INDEX_SUFFIX);
        let aborted = match std::fs::read(&txn_index_path) {
            Ok(bytes) => AbortedTxn::decode_all(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&txn_index_path)(e)),
        };
        Ok(Segment {
            base_offset,
            aborted: Mutex::new(aborted),
            path,
            file: Slot::with(&Handles::files(), file),
            gone: AtomicBool::new(false),
            size: AtomicU64::new(size),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(-1),
            offset_of_max_timestamp: AtomicI64::new(-1),
            offset_index,
            time_index,
            synced: AtomicBool::new(!writable),
            dir_synced: AtomicBool::new(true),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files got their final names (a cleaned segment swapped in).
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path.into();
        self.offset_index.set_path(&self.path);
        self.time_index.set_path(&self.path);
    }

    fn txn_index_path(&self) -> PathBuf {
        sibling(&self.path, TXN_INDEX_SUFFIX)
    }

    /// The log file's descriptor, opened again if it was closed. A segment deleted
    /// meanwhile is `SegmentGone`; running out of descriptors is `Exhausted`.
    pub fn file(&self) -> Result<Arc<File>> {
        // Never reopened once gone: a new segment may have the same name (a truncation to
        // its base offset). `gone` is set before the files go, so it is checked after the
        // open too.
        let gone = || {
            self.gone
                .load(Ordering::Acquire)
                .then(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        };
        let opened = self.file.get(|| {
            if let Some(e) = gone() {
                return Err(e);
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&*self.path)?;
            gone().map_or(Ok(file), Err)
        });
        opened.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound && self.gone.load(Ordering::Acquire) {
                LogError::SegmentGone {
                    path: self.path.to_path_buf(),
                }
            } else {
                io_err(&*self.path)(e)
            }
        })
    }

    /// Keeps the log file open whatever the pool's pressure (or lets it go again).
    pub fn set_pinned(&self, pinned: bool) {
        self.file.set_pinned(pinned);
    }

    /// Marks the files deleted or replaced, before they are.
    pub fn mark_gone(&self) {
        self.gone.store(true, Ordering::Release);
    }

    /// Reads file bytes at `position`; the cleaner's bulk reads.
    pub fn read_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.file()?
            .read_exact_at(buf, position)
            .map_err(io_err(&*self.path))
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    pub fn relative(&self, offset: i64) -> i64 {
        offset - self.base_offset
    }

    /// Whether a batch ending at `last_offset` still fits the u32 relative offsets.
    pub fn can_hold_offset(&self, last_offset: i64) -> bool {
        (0..=i64::from(u32::MAX)).contains(&self.relative(last_offset))
    }

    pub fn slice(&self, position: u64, len: u64) -> Result<FileSlice> {
        Ok(FileSlice {
            file: self.file()?,
            position,
            len,
        })
    }

    /// Writes batches whose offsets are already assigned and indexes them. Writer only.
    /// `bytes_since_index` carries Kafka's index-interval accounting across appends.
    pub fn append(
        &self,
        bytes: &[u8],
        headers: &[BatchHeader],
        index_interval_bytes: u64,
        bytes_since_index: &mut u64,
    ) -> Result<()> {
        let start = self.size.load(Ordering::Relaxed);
        self.file()?
            .write_all_at(bytes, start)
            .map_err(io_err(&*self.path))?;
        let mut position = start;
        let mut max_ts = self.max_timestamp.load(Ordering::Relaxed);
        let mut max_ts_offset = self.offset_of_max_timestamp.load(Ordering::Relaxed);
        for h in headers {
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_ts_offset = h.last_offset();
            }
            if *bytes_since_index > index_interval_bytes {
                self.index_batch(position, h, max_ts, max_ts_offset);
                *bytes_since_index = 0;
            }
            *bytes_since_index += h.size() as u64;
            position += h.size() as u64;
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.offset_of_max_timestamp
            .store(max_ts_offset, Ordering::Release);
        if let Some(last) = headers.last() {
            self.next_offset
                .store(last.next_offset(), Ordering::Release);
        }
        self.size.store(position, Ordering::Release);
        Ok(())
    }

    fn index_batch(&self, position: u64, h: &BatchHeader, max_ts: i64, max_ts_offset: i64) {
        // A full index only makes lookups start earlier; the log rolls before that happens.
        let _ = self.offset_index.push(OffsetEntry {
            relative_offset: self.relative(h.last_offset()) as u32,
            position: position as u32,
        });
        let _ = self.time_index.maybe_push(TimeEntry {
            timestamp: max_ts,
            relative_offset: self.relative(max_ts_offset) as u32,
        });
    }

    /// Reads the header of the batch at `position`; None at the end of the segment.
    pub fn header_at(&self, position: u64, size: u64) -> Result<Option<BatchHeader>> {
        if position >= size {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_BYTES];
        if position + HEADER_BYTES as u64 > size {
            return Err(self.corrupt(position, "batch header runs past the segment end"));
        }
        self.file()?
            .read_exact_at(&mut buf, position)
            .map_err(io_err(&*self.path))?;
        let h = BatchHeader::parse(&buf).map_err(|e| self.corrupt(position, &e.to_string()))?;
        if position + h.size() as u64 > size {
            return Err(self.corrupt(position, "batch runs past the segment end"));
        }
        Ok(Some(h))
    }

    fn corrupt(&self, position: u64, reason: &str) -> LogError {
        LogError::Corrupt {
            path: self.path.to_path_buf(),
            position,
            reason: reason.to_string(),
        }
    }

    /// The first batch at or after `position` whose last offset is at least `offset`.
    fn find_from(
        &self,
        offset: i64,
        mut position: u64,
        size: u64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        while let Some(h) = self.header_at(position, size)? {
            if h.last_offset() >= offset {
                return Ok(Some((position, h)));
            }
            position += h.size() as u64;
        }
        Ok(None)
    }

    /// The batch that holds `offset`, or the first one after it, through the offset index.
    /// An index entry that does not lead to a batch boundary (a damaged index, or a reader
    /// racing a truncation) falls back to a scan from the start of the segment.
    pub fn locate(&self, offset: i64, size: u64) -> Result<Option<(u64, BatchHeader)>> {
        let from = self
            .offset_index
            .lookup(self.relative(offset))
            .map_or(0, |e| u64::from(e.position));
        match self.find_from(offset, from, size) {
            Err(e) if from > 0 => {
                tracing::warn!(segment = %self.path.display(), error = %e, "offset index entry is wrong; scanning the segment");
                self.find_from(offset, 0, size)
            }
            other => other,
        }
    }

    /// The end of the last whole batch that starts at or after `start` and ends at or before
    /// `limit`, found from the nearest index entry, with the offset where reading goes on
    /// from there when a header told it (the next batch's first offset, else the offset after
    /// the last batch walked; None: the end is the file's). `start` must be a batch boundary.
    pub fn boundary_at_or_before(
        &self,
        start: u64,
        limit: u64,
        size: u64,
    ) -> Result<(u64, Option<i64>)> {
        if limit >= size {
            return Ok((size, None));
        }
        let from = self
            .offset_index
            .lookup_position(limit)
            .map_or(start, |e| u64::from(e.position).max(start));
        match self.last_end_within(from, limit, size) {
            Err(e) if from > start => {
                tracing::warn!(segment = %self.path.display(), error = %e, "offset index entry is wrong; scanning from the read start");
                self.last_end_within(start, limit, size)
            }
            other => other,
        }
    }

    /// Walks batches from `position` while they end at or before `limit`.
    fn last_end_within(
        &self,
        mut position: u64,
        limit: u64,
        size: u64,
    ) -> Result<(u64, Option<i64>)> {
        let mut next_offset = None;
        while let Some(h) = self.header_at(position, size)? {
            let end = position + h.size() as u64;
            if end > limit {
                return Ok((position, Some(h.base_offset)));
            }
            position = end;
            next_offset = Some(h.next_offset());
        }
        Ok((position, next_offset))
    }

    /// Walks the batches from `from` to the end of the file, checking each header (and with
    /// `verify_crc`, each CRC) and that offsets increase, calling `each` per good batch. Stops
    /// at the first bad one. Reads the file directly: this is recovery, not the read path.
    pub fn scan(
        &self,
        from: u64,
        verify_crc: bool,
        mut each: impl FnMut(u64, &BatchHeader),
    ) -> Result<ScanEnd> {
        let file = self.file()?;
        let file_len = file.metadata().map_err(io_err(&*self.path))?.len();
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_at = from;
        let mut position = from;
        let mut expected = self.base_offset;
        let mut next_offset = None;
        let damage = |position: u64, reason: String| Some((position, reason));
        loop {
            if position >= file_len {
                return Ok(ScanEnd {
                    end: position,
                    next_offset,
                    damage: None,
                });
            }
            let want = HEADER_BYTES as u64;
            if position + want > file_len {
                return Ok(ScanEnd {
                    end: position,
                    next_offset,
                    damage: damage(position, "torn batch header at the end of the file".into()),
                });
            }
            self.fill(&file, &mut buf, &mut buf_at, position, want, file_len)?;
            let at = (position - buf_at) as usize;
            let h = match BatchHeader::parse(buf.get(at..).unwrap_or(&[])) {
                Ok(h) => h,
                Err(e) => {
                    return Ok(ScanEnd {
                        end: position,
                        next_offset,
                        damage: damage(position, e.to_string()),
                    })
                }
            };
            let batch_bytes = h.size() as u64;
            if position + batch_bytes > file_len {
                return Ok(ScanEnd {
                    end: position,
                    next_offset,
                    damage: damage(position, "torn batch at the end of the file".into()),
                });
            }
            if verify_crc {
                self.fill(
                    &file,
                    &mut buf,
                    &mut buf_at,
                    position,
                    batch_bytes,
                    file_len,
                )?;
                let at = (position - buf_at) as usize;
                let one = buf.get(at..at + batch_bytes as usize).unwrap_or(&[]);
                if let Err(e) = batch::validate(one) {
                    return Ok(ScanEnd {
                        end: position,
                        next_offset,
                        damage: damage(position, e.to_string()),
                    });
                }
            }
            if h.base_offset < expected || !self.can_hold_offset(h.last_offset()) {
                let reason = format!(
                    "batch offset {} is out of order (expected at least {expected})",
                    h.base_offset
                );
                return Ok(ScanEnd {
                    end: position,
                    next_offset,
                    damage: damage(position, reason),
                });
            }
            each(position, &h);
            expected = h.next_offset();
            next_offset = Some(expected);
            position += batch_bytes;
        }
    }

    /// Makes `buf` (holding file bytes from `buf_at`) cover `len` bytes from `position`.
    fn fill(
        &self,
        file: &File,
        buf: &mut Vec<u8>,
        buf_at: &mut u64,
        position: u64,
        len: u64,
        file_len: u64,
    ) -> Result<()> {
        let have_end = *buf_at + buf.len() as u64;
        if position >= *buf_at && position + len <= have_end {
            return Ok(());
        }
        let read = len.max(SCAN_BUFFER_BYTES as u64).min(file_len - position);
        buf.resize(read as usize, 0);
        file.read_exact_at(buf, position)
            .map_err(io_err(&*self.path))?;
        *buf_at = position;
        Ok(())
    }

    /// Rebuilds both indexes and the in-memory summary from the batches in the file, cutting
    /// the file at the first bad batch. Returns the damage found, if any.
    pub fn rebuild(
        &self,
        verify_crc: bool,
        index_interval_bytes: u64,
    ) -> Result<Option<(u64, String)>> {
        self.offset_index.clear();
        self.time_index.clear();
        self.max_timestamp.store(-1, Ordering::Release);
        self.offset_of_max_timestamp.store(-1, Ordering::Release);
        let mut since = 0u64;
        let mut max_ts = -1i64;
        let mut max_ts_offset = -1i64;
        let end = self.scan(0, verify_crc, |position, h| {
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_ts_offset = h.last_offset();
            }
            if since > index_interval_bytes {
                self.index_batch(position, h, max_ts, max_ts_offset);
                since = 0;
            }
            since += h.size() as u64;
        })?;
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.offset_of_max_timestamp
            .store(max_ts_offset, Ordering::Release);
        self.next_offset.store(
            end.next_offset.unwrap_or(self.base_offset),
            Ordering::Release,
        );
        if end.damage.is_some() {
            self.file()?.set_len(end.end).map_err(io_err(&*self.path))?;
        }
        self.size.store(end.end, Ordering::Release);
        Ok(end.damage)
    }

    /// Cuts the segment to the batches that end below `offset`. Writer only.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let size = self.size();
        let cut = match self.locate(offset, size)? {
            Some((position, _)) => position,
            None => return Ok(()),
        };
        self.file()?.set_len(cut).map_err(io_err(&*self.path))?;
        crate::sync_trace::truncated(&self.path, cut);
        self.size.store(cut, Ordering::Release);
        self.offset_index.truncate_to_position(cut);
        self.time_index.truncate_to_offset(self.relative(offset));
        self.truncate_aborted(offset)?;
        self.summarize_tail()
            .map_err(|reason| self.corrupt(cut, &reason))?;
        Ok(())
    }

    /// Recomputes the end offset and max timestamp from the last index entries and the
    /// batches after them.
    pub fn summarize_tail(&self) -> Result<(), String> {
        let size = self.size();
        let from = self
            .offset_index
            .last()
            .map_or(0, |e| u64::from(e.position));
        let (mut max_ts, mut max_ts_offset) = self.time_index.last().map_or((-1, -1), |e| {
            (e.timestamp, self.base_offset + i64::from(e.relative_offset))
        });
        let mut next = self.base_offset;
        let mut position = from;
        loop {
            match self.header_at(position, size) {
                Ok(None) => break,
                Ok(Some(h)) => {
                    if h.max_timestamp > max_ts {
                        max_ts = h.max_timestamp;
                        max_ts_offset = h.last_offset();
                    }
                    next = h.next_offset();
                    position += h.size() as u64;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        if position != size {
            return Err("batches do not end at the end of the file".into());
        }
        self.next_offset.store(next, Ordering::Release);
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.offset_of_max_timestamp
            .store(max_ts_offset, Ordering::Release);
        Ok(())
    }

    /// Adds the final time index entry and trims both indexes: the segment takes no more
    /// appends. Kafka does the same when a segment becomes inactive.
    pub fn close(&self) -> Result<()> {
        if self.max_timestamp() >= 0 {
            let _ = self.time_index.maybe_push(TimeEntry {
                timestamp: self.max_timestamp(),
                relative_offset: self.relative(self.offset_of_max_timestamp()) as u32,
            });
        }
        self.unless_gone(
            self.offset_index
                .trim()
                .and_then(|()| self.time_index.trim()),
        )
    }

    /// `r`, or Ok if it failed because the segment's files were deleted meanwhile
    /// (retention, truncation, a clean): nothing of a deleted segment needs syncing or
    /// trimming, and its files can no longer be opened by name.
    fn unless_gone(&self, r: Result<()>) -> Result<()> {
        match r {
            Err(LogError::SegmentGone { .. }) => Ok(()),
            Err(LogError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && self.gone.load(Ordering::Acquire) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// fdatasync of the log file: what durability of appended batches needs.
    pub fn sync_data(&self) -> Result<()> {
        let file = match self.file() {
            Err(LogError::SegmentGone { .. }) => return Ok(()),
            other => other?,
        };
        let len = crate::sync_trace::length_before(&file);
        file.sync_data().map_err(io_err(&*self.path))?;
        crate::sync_trace::synced(&self.path, len);
        Ok(())
    }

    /// Everything: the log file with its metadata and both indexes.
    pub fn sync_all(&self) -> Result<()> {
        let file = match self.file() {
            Err(LogError::SegmentGone { .. }) => return Ok(()),
            other => other?,
        };
        let len = crate::sync_trace::length_before(&file);
        file.sync_all().map_err(io_err(&*self.path))?;
        crate::sync_trace::synced(&self.path, len);
        self.unless_gone(
            self.offset_index
                .sync()
                .and_then(|()| self.time_index.sync()),
        )
    }

    /// The transactions aborted by markers in this segment, in marker order.
    pub fn aborted(&self) -> Vec<AbortedTxn> {
        self.aborted_lock().clone()
    }

    fn aborted_lock(&self) -> std::sync::MutexGuard<'_, Vec<AbortedTxn>> {
        self.aborted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the entries of transactions aborted in this segment (their markers appended),
    /// synced before it returns: the index is not rebuilt from the log, so an entry whose
    /// marker is durable must be too.
    pub fn append_aborted(&self, entries: &[AbortedTxn]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut aborted = self.aborted_lock();
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        let path = &self.txn_index_path();
        let created = !path.exists();
        let mut file = transient(|| OpenOptions::new().create(true).append(true).open(path))
            .map_err(io_err(path))?;
        // A torn earlier append left a partial entry: cut it so this one lines up.
        let len = file.metadata().map_err(io_err(path))?.len();
        let whole = (aborted.len() * ENTRY_BYTES) as u64;
        if len != whole {
            file.set_len(whole).map_err(io_err(path))?;
        }
        std::io::Write::write_all(&mut file, &bytes).map_err(io_err(path))?;
        file.sync_data().map_err(io_err(path))?;
        if created {
            if let Some(dir) = path.parent() {
                crate::log::sync_dir(dir)?;
            }
        }
        aborted.extend_from_slice(entries);
        Ok(())
    }

    /// Drops the entries of transactions whose abort marker is at or after `offset`.
    pub(crate) fn truncate_aborted(&self, offset: i64) -> Result<()> {
        let mut aborted = self.aborted_lock();
        let keep = aborted.partition_point(|e| e.last_offset < offset);
        if keep == aborted.len() {
            return Ok(());
        }
        aborted.truncate(keep);
        let path = &self.txn_index_path();
        let file = transient(|| OpenOptions::new().write(true).open(path)).map_err(io_err(path))?;
        file.set_len((keep * ENTRY_BYTES) as u64)
            .and_then(|()| file.sync_data())
            .map_err(io_err(path))
    }

    /// Removes the segment's files. Readers holding its file keep reading until they drop it.
    pub fn delete_files(&self, dir: &Path) -> Result<()> {
        self.mark_gone();
        crate::sync_trace::deleted(&self.path);
        remove_stage(dir, self.base_offset, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segments_files_are_siblings_of_its_log_file_in_every_stage() {
        let dir = Path::new("/d/t-0");
        for stage in [None, Some(CLEANED), Some(SWAP), Some(DELETED)] {
            let log = staged_path(dir, 42, LOG_SUFFIX, stage);
            for suffix in SUFFIXES {
                assert_eq!(sibling(&log, suffix), staged_path(dir, 42, suffix, stage));
            }
        }
    }
}
