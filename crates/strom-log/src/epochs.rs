//! The leader-epoch cache of one log (Kafka's `LeaderEpochFileCache`): for every leader epoch
//! that appended to the log, the offset of its first record, kept in the log's
//! `leader-epoch-checkpoint` file in Kafka's format (a version line `0`, a count line, then
//! `epoch start-offset` lines). Replication uses it to find where a follower's log diverges
//! from its leader's (`end_offset_for`).
//!
//! Invariants: epochs and start offsets both strictly increase along the list; the file is
//! written (renamed into place, not synced) before the log holds a batch of an epoch it
//! names, and synced by the log's next flush before that flush declares any data durable
//! (`Log::flush`), so durable data never has an epoch the durable file lacks. After a crash
//! the log reassigns the epochs of the batches past its recovery point from their headers
//! (what a lost write of the file lacked) and cuts entries past its end (written, then lost
//! with unsynced data); a file a crash damaged is rebuilt from the batches. Kafka also
//! writes the file without an fsync when an epoch is assigned (KAFKA-15046): an fsync per
//! partition per leader change made creating and restarting many partitions slow.

use crate::error::{io_err, LogError, Result};
use std::fs;
use std::io::Write;
use std::path::Path;

pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// Kafka's `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED: i32 = -1;
pub const UNDEFINED_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
    /// The entries changed since the last `save` in a way the file may lag: a new leader's
    /// epoch at the log end, entries cut at open. Such a change names no batch yet, and an
    /// open would make it again, so it is written with the next batch (`Log::assign_epochs`)
    /// instead of at once: a restart or a creation of many partitions writes no file.
    unsaved: bool,
}

impl EpochCache {
    /// Reads the cache of the log in `dir`; None when the file does not exist.
    pub fn load(dir: &Path) -> Result<Option<EpochCache>> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let entries = parse(&text).map_err(|reason| LogError::Corrupt {
            path,
            position: 0,
            reason,
        })?;
        Ok(Some(EpochCache {
            entries,
            unsaved: false,
        }))
    }

    /// An empty cache (nothing written yet).
    pub fn empty() -> EpochCache {
        EpochCache {
            entries: Vec::new(),
            unsaved: false,
        }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Notes a change that the next `save` writes (see `unsaved`).
    pub fn mark_unsaved(&mut self) {
        self.unsaved = true;
    }

    pub fn is_unsaved(&self) -> bool {
        self.unsaved
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`, in memory only; true if it changed
    /// anything. An epoch older than the latest is ignored; the same epoch at a later offset
    /// keeps its first start; a newer epoch at an offset not past the latest start replaces
    /// the entries it overtakes (Kafka's rule: start offsets keep increasing).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if epoch <= last.epoch {
                return false;
            }
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        // Epochs change rarely and most logs hold one or two: no room for more kept
        // (the default growth keeps four in every idle partition).
        self.entries.reserve_exact(1);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops every epoch that starts at or after `end` (the log was truncated to `end`).
    pub fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// The log now starts at `start`: epochs wholly before it are dropped, and the one
    /// holding it starts there.
    pub fn truncate_from_start(&mut self, start: i64) -> bool {
        let holding = self.entries.iter().rposition(|e| e.start_offset <= start);
        let Some(i) = holding else {
            return false;
        };
        let changed = i > 0 || self.entries.get(i).is_some_and(|e| e.start_offset < start);
        self.entries.drain(..i);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = start;
        }
        changed
    }

    /// Everything after the log was emptied and restarted at `start`.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// The epoch (the largest known at or below `requested`) and the offset where the
    /// requested epoch ended in this log (Kafka's `endOffsetFor`): the log end for the
    /// latest epoch, else the start of the next larger epoch; UNDEFINED for an epoch newer
    /// than every known one or an empty cache.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested < 0 {
            return (UNDEFINED, UNDEFINED_OFFSET);
        }
        if self.latest().is_some_and(|e| e.epoch == requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED, UNDEFINED_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The epoch of the record at `offset`, if known.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Writes the cache: a temporary file renamed over the old one, neither synced (see the
    /// module doc: the log's flush syncs them).
    /// The file is the log's, in `dir` (not kept here: one path fewer per partition).
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let tmp = path.with_extension("tmp");
        let mut f = crate::handles::transient(|| fs::File::create(&tmp)).map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.unsaved = false;
        Ok(())
    }

    /// Syncs the file written by `save` (its directory entry is the caller's to sync). A
    /// file not there is nothing to sync: its log was deleted.
    pub fn sync_file(dir: &Path) -> Result<()> {
        let path = dir.join(LEADER_EPOCH_FILE);
        match crate::handles::transient(|| fs::File::open(&path)) {
            Ok(f) => f.sync_all().map_err(io_err(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

fn parse(text: &str) -> std::result::Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err("unknown leader-epoch-checkpoint version".into());
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("bad entry count")?;
    let mut out: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let line = lines.next().ok_or(format!("missing entry {}", i + 1))?;
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(start), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {}: expected `epoch offset`", i + 3));
        };
        let entry = EpochEntry {
            epoch: epoch
                .parse()
                .map_err(|_| format!("line {}: bad epoch", i + 3))?,
            start_offset: start
                .parse()
                .map_err(|_| format!("line {}: bad offset", i + 3))?,
        };
        if out
            .last()
            .is_some_and(|l| l.epoch >= entry.epoch || l.start_offset > entry.start_offset)
        {
            return Err(format!("line {}: entries out of order", i + 3));
        }
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::empty();
        for (e, o) in entries {
            assert!(c.assign(*e, *o));
        }
        c
    }

    #[test]
    fn end_offsets_as_kafka_answers_them() {
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(c.end_offset_for(4, 40), (4, 40), "the latest: the log end");
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(
            c.end_offset_for(2, 40),
            (1, 10),
            "unknown: the floor's epoch"
        );
        assert_eq!(c.end_offset_for(0, 40), (0, 0), "below every epoch");
        assert_eq!(c.end_offset_for(5, 40), (UNDEFINED, UNDEFINED_OFFSET));
        assert_eq!(c.end_offset_for(-1, 40), (UNDEFINED, UNDEFINED_OFFSET));
        assert_eq!(
            cache(&[]).end_offset_for(0, 4),
            (UNDEFINED, UNDEFINED_OFFSET)
        );
        assert_eq!(c.epoch_at(24), Some(3));
        assert_eq!(c.epoch_at(25), Some(4));
    }

    #[test]
    fn assignments_keep_both_orders_and_truncations_cut() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(2, 20), "older epoch");
        assert!(!c.assign(3, 15), "same epoch keeps its start");
        assert!(
            c.assign(5, 10),
            "a newer epoch at the same start replaces it"
        );
        assert_eq!(c.entries().len(), 2);
        assert!(c.truncate_from_end(10));
        assert_eq!(c.latest().map(|e| e.epoch), Some(1));
        let mut c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 3,
                    start_offset: 12
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: 25
                }
            ]
        );
        assert!(!c.truncate_from_start(5), "before the first: nothing");
    }

    #[test]
    fn the_file_round_trips_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(EpochCache::load(dir.path()).unwrap().is_none());
        let mut c = EpochCache::empty();
        c.assign(0, 0);
        c.assign(2, 7);
        c.save(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n2 7\n");
        let back = EpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.entries(), c.entries());
        fs::write(dir.path().join(LEADER_EPOCH_FILE), "0\n2\n3 0\n2 7\n").unwrap();
        assert!(EpochCache::load(dir.path()).is_err());
    }
}
