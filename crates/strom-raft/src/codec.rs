//! Raft entries as Kafka v2 record batches, as KRaft stores them: one batch per entry, the
//! batch's base offset is the entry's index and its partition leader epoch the entry's term.
//! The batch holds one record whose value is the entry's JSON (log id, payload or membership).
//!
//! A *filler* batch holds no record and spans a run of offsets (its last offset delta): it
//! moves the log end forward where openraft wants the next entry at a higher index than the
//! log end (after installing a snapshot; or a fresh store receiving a first entry past 0).
//! Kafka's compacted logs have the same kind of empty batch; readers skip it.

use crate::error::StoreError;
use crate::types::Entry;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use strom_proto::batch::{self, BatchHeader};
use strom_proto::{records, BatchBuilder};

/// Byte range of the CRC field in a v2 batch header.
const CRC_FIELD: std::ops::Range<usize> = 17..21;
/// Byte range of the last offset delta field.
const LAST_OFFSET_DELTA_FIELD: std::ops::Range<usize> = 23..27;
/// The widest offset span one filler batch covers.
pub const FILLER_MAX_SPAN: i64 = 1 << 30;

/// Milliseconds since the epoch, for batch timestamps (informational only).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The batch for one entry: base offset = index, partition leader epoch = term.
pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>, StoreError> {
    let term = entry.log_id.leader_id.get_term();
    let epoch = i32::try_from(term)
        .map_err(|_| StoreError::Invariant(format!("term {term} does not fit an epoch")))?;
    let index = i64::try_from(entry.log_id.index)
        .map_err(|_| StoreError::Invariant(format!("index {} too large", entry.log_id.index)))?;
    let json = serde_json::to_vec(entry).map_err(|e| StoreError::Encode(e.to_string()))?;
    let ts = now_ms();
    let mut b = BatchBuilder::new(ts);
    b.push(None, Some(&json), ts);
    let mut out = b.build();
    batch::set_base_offset(&mut out, index);
    batch::set_partition_leader_epoch(&mut out, epoch);
    Ok(out)
}

/// An empty batch spanning `span` offsets (1..=FILLER_MAX_SPAN).
pub fn filler_batch(span: i64) -> Vec<u8> {
    let delta = i32::try_from(span.clamp(1, FILLER_MAX_SPAN) - 1).unwrap_or(0);
    let mut out = BatchBuilder::new(now_ms()).build();
    if let Some(field) = out.get_mut(LAST_OFFSET_DELTA_FIELD) {
        field.copy_from_slice(&delta.to_be_bytes());
    }
    let crc = batch::crc(&out);
    if let Some(field) = out.get_mut(CRC_FIELD) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// Decodes the entry held by one validated batch; `None` for a filler batch. Checks that the
/// entry's index and term match the batch's base offset and epoch.
pub fn decode_entry(
    h: &BatchHeader,
    bytes: &[u8],
    dir: &Path,
) -> Result<Option<Entry>, StoreError> {
    if h.record_count == 0 {
        return Ok(None);
    }
    let corrupt = |reason: String| StoreError::Corrupt {
        path: dir.to_path_buf(),
        reason: format!("batch at offset {}: {reason}", h.base_offset),
    };
    let recs = records::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
    let [rec] = recs.as_slice() else {
        return Err(corrupt(format!("{} records, expected 1", recs.len())));
    };
    let value = rec
        .value
        .ok_or_else(|| corrupt("record has no value".into()))?;
    let entry: Entry = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    let term = entry.log_id.leader_id.get_term();
    if i64::try_from(entry.log_id.index).ok() != Some(h.base_offset)
        || i64::from(h.partition_leader_epoch) != i64::try_from(term).unwrap_or(-1)
    {
        return Err(corrupt(format!(
            "entry {} does not match base offset {} / epoch {}",
            entry.log_id, h.base_offset, h.partition_leader_epoch
        )));
    }
    Ok(Some(entry))
}

/// Splits and CRC-checks a run of batches read from the log.
pub fn split_checked<'a>(
    bytes: &'a [u8],
    dir: &Path,
) -> Result<Vec<(BatchHeader, &'a [u8])>, StoreError> {
    batch::split(bytes).map_err(|e| StoreError::Corrupt {
        path: dir.to_path_buf(),
        reason: format!("bad batch read back: {e}"),
    })
}
