//! The `quorum-state` file beside the raft log: the vote and the last purged log id, as JSON.
//!
//! Written whole as `quorum-state.tmp`, fsynced, renamed over `quorum-state`, then the
//! directory fsynced: after a crash the file is either the old or the new state, never a mix.
//! A file that does not parse is an error (never a silent reset: a lost vote could let this
//! node vote twice in one term).

use crate::error::{io_error, StoreError};
use crate::types::{LogId, Vote};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name, in the log's directory.
pub const QUORUM_STATE_FILE: &str = "quorum-state";

/// What `quorum-state` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    /// Format version, 1.
    #[serde(default = "version_one")]
    pub version: u32,
    /// The last vote saved by `save_vote`.
    pub vote: Option<Vote>,
    /// The last log id removed by `purge` (entries up to it are gone from the log).
    pub last_purged: Option<LogId>,
    /// This log directory's id (KIP-853), chosen when the quorum state was first written: a
    /// wiped directory gets a new one, so the quorum can tell the new incarnation apart.
    #[serde(default)]
    pub directory_id: Option<String>,
}

fn version_one() -> u32 {
    1
}

impl QuorumState {
    /// The path of the state file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(QUORUM_STATE_FILE)
    }

    /// Reads the state in `dir`; a missing file is the empty state.
    pub fn load(dir: &Path) -> Result<QuorumState, StoreError> {
        let path = Self::path(dir);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(QuorumState {
                    version: 1,
                    ..QuorumState::default()
                })
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        let state: QuorumState =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if state.version != 1 {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("unknown version {}", state.version),
            });
        }
        Ok(state)
    }

    /// Writes the state durably (tmp file, fsync, rename, fsync of the directory).
    pub fn store(&self, dir: &Path) -> Result<(), StoreError> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{QUORUM_STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(|e| StoreError::Encode(e.to_string()))?;
        write_durably(dir, &tmp, &path, &bytes)
    }
}

/// Writes `bytes` to `tmp`, syncs it, renames it to `path` and syncs `dir`.
pub(crate) fn write_durably(
    dir: &Path,
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut f = File::create(tmp).map_err(|e| io_error(tmp, e))?;
    f.write_all(bytes).map_err(|e| io_error(tmp, e))?;
    f.sync_all().map_err(|e| io_error(tmp, e))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| io_error(path, e))?;
    sync_dir(dir)
}

/// fsyncs a directory, making renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}
