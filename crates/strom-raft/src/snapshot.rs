//! Snapshot files: `<20-digit end offset>-<10-digit epoch>.checkpoint` in the log's
//! directory, named as KRaft names its snapshots (end offset = last included index + 1,
//! epoch = that entry's term).
//!
//! A file is a run of Kafka v2 record batches, each with its CRC-32C: first a header batch
//! whose one record (key `snapshot-meta`) holds the openraft `SnapshotMeta` as JSON (last log
//! id, membership, snapshot id); then data batches of up to `CHUNK` bytes of the
//! application's snapshot each; last a footer batch (key `snapshot-end`) with the number of
//! chunks and bytes. A file missing its footer, or with any bad CRC, is not a snapshot.
//! These exact bytes are also what openraft streams to a lagging follower.

use crate::codec::{now_ms, split_checked};
use crate::error::{io_error, StoreError};
use crate::quorum_state::{sync_dir, write_durably};
use crate::types::SnapshotMeta;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use strom_proto::batch;
use strom_proto::{records, BatchBuilder};

/// The file suffix of snapshots.
pub const SUFFIX: &str = ".checkpoint";
/// Bytes of application snapshot per data batch.
const CHUNK: usize = 256 * 1024;
const META_KEY: &[u8] = b"snapshot-meta";
const END_KEY: &[u8] = b"snapshot-end";

/// What the footer record says.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Footer {
    chunks: u64,
    bytes: u64,
}

/// A snapshot file on disk and its metadata.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// Where the file is.
    pub path: PathBuf,
    /// The metadata stored in it.
    pub meta: SnapshotMeta,
}

/// `(end offset, epoch)` of a snapshot: the order of snapshot files.
pub fn snapshot_key(meta: &SnapshotMeta) -> (u64, u64) {
    meta.last_log_id
        .map_or((0, 0), |l| (l.index + 1, l.leader_id.get_term()))
}

/// The file name of a snapshot with `meta`.
pub fn file_name(meta: &SnapshotMeta) -> String {
    let (end, epoch) = snapshot_key(meta);
    format!("{end:020}-{epoch:010}{SUFFIX}")
}

/// Parses a snapshot file name into `(end offset, epoch)`.
pub fn parse_file_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (end, epoch) = stem.split_once('-')?;
    if end.len() != 20 || epoch.len() != 10 {
        return None;
    }
    Some((end.parse().ok()?, epoch.parse().ok()?))
}

/// One batch holding one record, at `offset`.
fn one_record_batch(key: Option<&[u8]>, value: &[u8], offset: i64, epoch: i32) -> Vec<u8> {
    let ts = now_ms();
    let mut b = BatchBuilder::new(ts);
    b.push(key, Some(value), ts);
    let mut out = b.build();
    batch::set_base_offset(&mut out, offset);
    batch::set_partition_leader_epoch(&mut out, epoch);
    out
}

/// Encodes a snapshot: header, data chunks, footer.
pub fn encode(meta: &SnapshotMeta, data: &[u8]) -> Result<Vec<u8>, StoreError> {
    let epoch = i32::try_from(snapshot_key(meta).1).unwrap_or(i32::MAX);
    let meta_json = serde_json::to_vec(meta).map_err(|e| StoreError::Encode(e.to_string()))?;
    let mut out = one_record_batch(Some(META_KEY), &meta_json, 0, epoch);
    let mut offset = 1i64;
    for chunk in data.chunks(CHUNK) {
        out.extend_from_slice(&one_record_batch(None, chunk, offset, epoch));
        offset += 1;
    }
    let footer = Footer {
        chunks: (offset - 1) as u64,
        bytes: data.len() as u64,
    };
    let footer_json = serde_json::to_vec(&footer).map_err(|e| StoreError::Encode(e.to_string()))?;
    out.extend_from_slice(&one_record_batch(
        Some(END_KEY),
        &footer_json,
        offset,
        epoch,
    ));
    Ok(out)
}

/// Decodes and checks a snapshot file's bytes: its metadata and the application's data.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(SnapshotMeta, Vec<u8>), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut meta: Option<SnapshotMeta> = None;
    let mut data = Vec::new();
    let mut chunks = 0u64;
    for (_, b) in split_checked(bytes, path)? {
        let recs = records::decode(b).map_err(|e| corrupt(e.to_string()))?;
        let [rec] = recs.as_slice() else {
            return Err(corrupt(format!("batch with {} records", recs.len())));
        };
        let value = rec.value.unwrap_or(&[]);
        match (rec.key, meta.is_some()) {
            (Some(META_KEY), false) => {
                meta = Some(serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?);
            }
            (None, true) => {
                data.extend_from_slice(value);
                chunks += 1;
            }
            (Some(END_KEY), true) => {
                let footer: Footer =
                    serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
                let want = Footer {
                    chunks,
                    bytes: data.len() as u64,
                };
                if footer != want {
                    return Err(corrupt(format!("footer {footer:?}, found {want:?}")));
                }
                let meta = meta.ok_or_else(|| corrupt("no header".into()))?;
                return Ok((meta, data));
            }
            _ => return Err(corrupt("batches out of order".into())),
        }
    }
    Err(corrupt("no footer: the snapshot is incomplete".into()))
}

/// Writes an encoded snapshot durably (tmp file, fsync, rename, directory fsync).
pub fn write(dir: &Path, meta: &SnapshotMeta, bytes: &[u8]) -> Result<SnapshotFile, StoreError> {
    let name = file_name(meta);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    write_durably(dir, &tmp, &path, bytes)?;
    Ok(SnapshotFile {
        path,
        meta: meta.clone(),
    })
}

/// A snapshot file's `(end offset, epoch)` and path.
pub type Listed = ((u64, u64), PathBuf);

/// Every snapshot file in `dir`, newest (highest end offset, then epoch) first.
pub fn list(dir: &Path) -> Result<Vec<Listed>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        if let Some(key) = name.to_str().and_then(parse_file_name) {
            out.push((key, entry.path()));
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(out)
}

/// Loads the newest valid snapshot in `dir`; damaged newer files are renamed `*.damaged`
/// (kept for inspection, never loaded again) and leftover `*.checkpoint.tmp` files removed.
pub fn load_newest(dir: &Path) -> Result<Option<(SnapshotFile, Vec<u8>)>, StoreError> {
    remove_tmp_files(dir)?;
    for (_, path) in list(dir)? {
        let bytes = fs::read(&path).map_err(|e| io_error(&path, e))?;
        match decode(&bytes, &path) {
            Ok((meta, data)) if file_name(&meta) == file_name_of(&path) => {
                return Ok(Some((SnapshotFile { path, meta }, data)));
            }
            Ok(_) => quarantine(&path, "name does not match its metadata")?,
            Err(e) => quarantine(&path, &e.to_string())?,
        }
    }
    Ok(None)
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Renames a damaged snapshot out of the way.
fn quarantine(path: &Path, reason: &str) -> Result<(), StoreError> {
    tracing::warn!(path = %path.display(), reason, "damaged snapshot set aside");
    let mut target = path.as_os_str().to_owned();
    target.push(".damaged");
    fs::rename(path, &target).map_err(|e| io_error(path, e))
}

fn remove_tmp_files(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = file_name_of(&entry.path());
        if name.ends_with(".checkpoint.tmp") {
            fs::remove_file(entry.path()).map_err(|e| io_error(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Deletes every snapshot file in `dir` other than `keep` (called once `keep` is durable).
pub fn remove_others(dir: &Path, keep: &Path) -> Result<(), StoreError> {
    let mut removed = false;
    for (_, path) in list(dir)? {
        if path != keep {
            fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}
