//! The raft log on a strom-log partition (`__cluster_metadata-0`): [`LogStore`] implements
//! openraft's `RaftLogStorage`, [`LogReader`] its `RaftLogReader` for replication tasks.
//!
//! Entry *i* of term *t* is the batch at offset *i* with partition leader epoch *t* (see
//! `codec`), so strom-log's CRC checks, torn-tail recovery and group-commit fsync protect the
//! raft log. Appends return once the batches are written (readable); openraft's callback runs
//! on the log dir's flusher thread once they are fsynced. The vote and the last purged log id
//! live in `quorum-state` (see `quorum_state`). Truncation uses `Log::truncate_to`, purging
//! `Log::delete_records_before`; a next entry past the log end (after a snapshot was
//! installed) is preceded by an empty filler batch so offsets keep equal to indexes.

use crate::codec::{self, FILLER_MAX_SPAN};
use crate::error::StoreError;
use crate::quorum_state::QuorumState;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::Arc;
use strom_log::{Log, LogConfig, LogDir};

/// The partition holding the quorum's log, as KRaft names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Bytes asked per `Log::read` when reading entries.
const READ_CHUNK: u64 = 1 << 20;

/// The largest batch (one entry) the metadata log takes: Kafka's KRaft bound on a batch.
/// The broker keeps what it proposes well below it.
pub const METADATA_BATCH_BYTES_MAX: u64 = 8 << 20;

/// The config the metadata log needs: no retention by time or size (only raft purges it),
/// batches up to `METADATA_BATCH_BYTES_MAX`.
pub fn metadata_log_config() -> LogConfig {
    LogConfig {
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: METADATA_BATCH_BYTES_MAX,
        ..LogConfig::default()
    }
}

/// Gets `__cluster_metadata-0` from `dir`, creating it with `metadata_log_config` if absent.
pub fn open_metadata_log(dir: &LogDir) -> Result<Arc<Log>, StoreError> {
    let name = format!("{METADATA_TOPIC}-0");
    match dir.get(&name) {
        Some(log) => Ok(log),
        None => Ok(dir.create(METADATA_TOPIC, 0, metadata_log_config())?),
    }
}

/// Reads entries from the log; cheap to clone, shared with openraft's replication tasks.
#[derive(Debug, Clone)]
pub struct LogReader {
    log: Arc<Log>,
}

/// The raft log store over one strom-log partition.
#[derive(Debug)]
pub struct LogStore {
    log: Arc<Log>,
    state: QuorumState,
    /// The last entry's id, or the last purged id when no entry is left.
    last_log_id: Option<LogId>,
}

impl LogStore {
    /// Opens the store over `log` (usually from `open_metadata_log`): loads `quorum-state`,
    /// finishes a purge a crash interrupted, and finds the last entry.
    pub fn open(log: Arc<Log>) -> Result<LogStore, StoreError> {
        let state = QuorumState::load(log.dir())?;
        let mut store = LogStore {
            log,
            state,
            last_log_id: None,
        };
        if let Some(purged) = store.state.last_purged {
            store.discard_through(purged.index)?;
        }
        let last = find_last_entry(&store.log, i64::MAX)?;
        store.last_log_id = last.max(store.state.last_purged);
        Ok(store)
    }

    /// The underlying partition log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The directory holding the log, `quorum-state` and the snapshots.
    pub fn dir(&self) -> PathBuf {
        self.log.dir().to_path_buf()
    }

    /// Appends filler batches until the log end offset is at least `target`.
    fn advance_to(&self, target: i64) -> Result<(), StoreError> {
        loop {
            let end = self.log.log_end_offset();
            if end >= target {
                return Ok(());
            }
            let mut filler = codec::filler_batch((target - end).min(FILLER_MAX_SPAN));
            self.log.append(&mut filler)?;
        }
    }

    /// Makes every offset up to `index` unreadable (moving the log end there if needed).
    fn discard_through(&self, index: u64) -> Result<(), StoreError> {
        let next = to_offset(index)?.saturating_add(1);
        self.advance_to(next)?;
        if self.log.log_start_offset() < next {
            self.log.delete_records_before(next)?;
        }
        Ok(())
    }

    /// Writes `entries` (consecutive indexes) as batches; returns the last one's id.
    fn write_entries(&mut self, entries: Vec<Entry>) -> Result<Option<LogId>, StoreError> {
        let mut last = None;
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_first: Option<i64> = None;
        let mut expect = -1i64;
        let purged = self.state.last_purged.map(|l| l.index);
        for entry in &entries {
            // An entry at or below the purge point is already covered by a snapshot.
            if purged.is_some_and(|p| entry.log_id.index <= p) {
                continue;
            }
            let index = to_offset(entry.log_id.index)?;
            if buf_first.is_some() && index != expect {
                self.flush_buf(&mut buf, &mut buf_first)?;
            }
            if buf_first.is_none() {
                buf_first = Some(index);
            }
            buf.extend_from_slice(&codec::encode_entry(entry)?);
            expect = index + 1;
            last = Some(entry.log_id);
        }
        self.flush_buf(&mut buf, &mut buf_first)?;
        Ok(last)
    }

    /// Appends the buffered batches at `first`, filling a gap before it first.
    fn flush_buf(&mut self, buf: &mut Vec<u8>, first: &mut Option<i64>) -> Result<(), StoreError> {
        let Some(index) = first.take() else {
            return Ok(());
        };
        let end = self.log.log_end_offset();
        if index < end {
            return Err(StoreError::Invariant(format!(
                "append at index {index} below the log end {end} without a truncate"
            )));
        }
        self.advance_to(index)?;
        let info = self.log.append(buf)?;
        buf.clear();
        if info.first_offset != index {
            return Err(StoreError::Invariant(format!(
                "entry {index} was stored at offset {}",
                info.first_offset
            )));
        }
        Ok(())
    }
}

/// An index as a log offset.
fn to_offset(index: u64) -> Result<i64, StoreError> {
    i64::try_from(index).map_err(|_| StoreError::Invariant(format!("index {index} too large")))
}

/// The id of the last entry (not filler) whose index is below `below`.
fn find_last_entry(log: &Log, below: i64) -> Result<Option<LogId>, StoreError> {
    let mut last_real: Option<i64> = None;
    log.for_each_header(log.log_start_offset(), |h| {
        if h.record_count > 0 && h.base_offset < below && h.base_offset >= 0 {
            last_real = Some(h.base_offset);
        }
    })?;
    let Some(offset) = last_real else {
        return Ok(None);
    };
    let found = read_entries(log, offset, offset + 1)?;
    match found.last() {
        Some(e) => Ok(Some(e.log_id)),
        None => Err(StoreError::Invariant(format!(
            "no entry at offset {offset}"
        ))),
    }
}

/// Every entry with index in `[start, end)` still in the log, CRC-checked and decoded.
pub(crate) fn read_entries(log: &Log, start: i64, end: i64) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    let end = end.min(log.log_end_offset());
    let mut offset = start.max(log.log_start_offset());
    while offset < end {
        let info = log.read(offset, READ_CHUNK, Some(end))?;
        let Some(slice) = info.slice else { break };
        let bytes = slice
            .read_to_vec()
            .map_err(|e| crate::error::io_error(log.dir(), e))?;
        let batches = codec::split_checked(&bytes, log.dir())?;
        let mut next = offset;
        for (h, b) in batches {
            next = h.next_offset();
            if let Some(e) = codec::decode_entry(&h, b, log.dir())? {
                if h.base_offset >= start && h.base_offset < end {
                    out.push(e);
                }
            }
        }
        if next <= offset {
            return Err(StoreError::Invariant(format!(
                "read made no progress at {offset}"
            )));
        }
        offset = next;
    }
    Ok(out)
}

/// `[start, end)` as log offsets from any range of indexes.
fn offsets_of<RB: RangeBounds<u64>>(range: &RB) -> (i64, i64) {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let start = match range.start_bound() {
        Bound::Included(&s) => clamp(s),
        Bound::Excluded(&s) => clamp(s).saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => clamp(e).saturating_add(1),
        Bound::Excluded(&e) => clamp(e),
        Bound::Unbounded => i64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = offsets_of(&range);
        read_entries(&self.log, start, end).map_err(StoreError::read_logs)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = offsets_of(&range);
        read_entries(&self.log, start, end).map_err(StoreError::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(LogState {
            last_purged_log_id: self.state.last_purged,
            last_log_id: self.last_log_id.max(self.state.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            log: Arc::clone(&self.log),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut next = self.state.clone();
        next.vote = Some(*vote);
        let dir = self.dir();
        let to_store = next.clone();
        tokio::task::spawn_blocking(move || to_store.store(&dir))
            .await
            .map_err(|e| StoreError::Invariant(e.to_string()).write_vote())?
            .map_err(StoreError::write_vote)?;
        self.state = next;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.state.vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let last = self
            .write_entries(entries)
            .map_err(StoreError::write_logs)?;
        let Some(last) = last else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        self.last_log_id = Some(last);
        let offset = to_offset(last.index).map_err(StoreError::write_logs)?;
        self.log.on_durable(
            offset,
            Box::new(move |r| {
                callback.log_io_completed(r.map(|_| ()).map_err(std::io::Error::other));
            }),
        );
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let offset = to_offset(log_id.index).map_err(StoreError::write_logs)?;
        self.log
            .truncate_to(offset)
            .map_err(|e| StoreError::from(e).write_logs())?;
        let last = find_last_entry(&self.log, offset).map_err(StoreError::write_logs)?;
        self.last_log_id = last.max(self.state.last_purged);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if self.state.last_purged >= Some(log_id) {
            return Ok(());
        }
        // The purge point is durable before any entry goes: a crash in between leaves entries
        // that `open` removes, never a hole below entries openraft believes present.
        let mut next = self.state.clone();
        next.last_purged = Some(log_id);
        next.store(&self.dir()).map_err(StoreError::write_logs)?;
        self.state = next;
        self.discard_through(log_id.index)
            .map_err(StoreError::write_logs)?;
        self.last_log_id = self.last_log_id.max(Some(log_id));
        Ok(())
    }
}
