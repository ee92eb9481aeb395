//! Producer-state snapshots (Kafka's `<offset>.snapshot` files in a partition's directory):
//! the idempotent producers' state as of an offset, written when the log rolls a segment,
//! so that opening a partition reads the newest snapshot and replays only the batches after
//! it, and a producer whose batches were all deleted by retention is still known (a retry
//! reaching a new leader or a restarted one is answered with its original offsets).
//!
//! Strom's snapshot holds each producer's last five batches (Kafka's holds the last one);
//! its layout is in docs/log-format.md. A snapshot is written to a temporary file, synced
//! and renamed; a damaged one is skipped (an older one, or the last two segments, is read
//! instead). The two newest are kept; a truncation deletes those past its offset, and one
//! past the log end (the log lost its tail in a crash) is ignored and deleted. Renames and
//! deletions are made durable (the directory synced).

use crate::producer_state::ProducerStates;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".snapshot";
/// Snapshots kept per partition.
const KEPT: usize = 2;

/// `<dir>/<offset, 20 digits>.snapshot`.
pub fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

/// The snapshots in `dir`, oldest first.
pub fn list(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let offset = name.strip_suffix(SUFFIX)?.parse().ok()?;
            Some((offset, path))
        })
        .collect();
    out.sort();
    out
}

/// Writes the snapshot of `state` as of `offset` and drops all but the newest ones.
pub fn write(dir: &Path, offset: i64, state: &ProducerStates) -> std::io::Result<()> {
    let tmp = dir.join(format!("{offset:020}{SUFFIX}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&state.to_snapshot())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(dir, offset))?;
    let all = list(dir);
    for (_, old) in all.iter().take(all.len().saturating_sub(KEPT)) {
        let _ = std::fs::remove_file(old);
    }
    sync_dir(dir)
}

/// Deletes the snapshots past `offset` (the log is cut there), durably.
pub fn delete_above(dir: &Path, offset: i64) -> std::io::Result<()> {
    let above: Vec<PathBuf> = list(dir)
        .into_iter()
        .filter(|(o, _)| *o > offset)
        .map(|(_, p)| p)
        .collect();
    if above.is_empty() {
        return Ok(());
    }
    for p in above {
        std::fs::remove_file(p)?;
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The newest readable snapshot at or below `log_end`: (its offset, the state). Snapshots
/// past the log end are deleted; damaged ones are skipped.
pub fn load_latest(dir: &Path, log_end: i64) -> Option<(i64, ProducerStates)> {
    if let Err(e) = delete_above(dir, log_end) {
        tracing::warn!(dir = %dir.display(), error = %e, "deleting producer-state snapshots past the log end failed");
        return None;
    }
    list(dir).into_iter().rev().find_map(|(offset, p)| {
        let bytes = std::fs::read(&p).ok()?;
        match ProducerStates::from_snapshot(&bytes) {
            Some(state) => Some((offset, state)),
            None => {
                tracing::warn!(snapshot = %p.display(), "a damaged producer-state snapshot is skipped");
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_snapshot_within_the_log_is_loaded_and_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = ProducerStates::default();
        for offset in [10, 20, 30] {
            write(dir.path(), offset, &state).unwrap();
        }
        let offsets: Vec<i64> = list(dir.path()).iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, vec![20, 30]);
        assert_eq!(load_latest(dir.path(), 40).map(|(o, _)| o), Some(30));
        // The log lost its tail: the snapshot past it goes.
        assert_eq!(load_latest(dir.path(), 25).map(|(o, _)| o), Some(20));
        assert_eq!(list(dir.path()).len(), 1);
        // A damaged snapshot is skipped.
        std::fs::write(path(dir.path(), 22), b"junk").unwrap();
        assert_eq!(load_latest(dir.path(), 25).map(|(o, _)| o), Some(20));
        assert!(load_latest(dir.path(), 5).is_none());
    }
}
