//! Replication's side of the log: a follower's append (its leader's offsets kept), the
//! leader-epoch cache kept in step with appends and truncations, and the checkpointed high
//! watermark. The log knows nothing of leaders or followers beyond these offsets.

use super::{lock, Log, Origin};
use crate::epochs::EpochCache;
use crate::error::{LogError, Result};
use crate::log::AppendInfo;
use std::sync::atomic::Ordering;
use strom_proto::batch::BatchHeader;

/// A follower's batches must continue the log exactly: the first at the log end, each next
/// where the one before ended. The next offset and the record count.
pub(super) fn check_contiguous(headers: &[BatchHeader], log_end: i64) -> Result<(i64, i64)> {
    let mut next = log_end;
    let mut records = 0i64;
    for h in headers {
        if h.base_offset != next {
            return Err(LogError::NotContiguous {
                expected: next,
                got: h.base_offset,
            });
        }
        next = h.next_offset();
        records += i64::from(h.record_count);
    }
    Ok((next, records))
}

impl Log {
    /// Appends a leader's batches as they are, at the offsets the leader gave them (Kafka's
    /// `appendAsFollower`): the first must start at this log's end and the rest follow on;
    /// anything else is `NotContiguous`, a bug in the caller, and nothing is written.
    pub fn append_as_follower(&self, records: &mut [u8]) -> Result<AppendInfo> {
        self.append_from(records, Origin::Follower)
    }

    /// Records the leader epoch of each batch that starts a newer one, and writes the file
    /// if that or an earlier unsaved change (`EpochCache::unsaved`) changed it; called under
    /// the writer lock before the batches are written, so the file never lacks an epoch the
    /// log holds.
    pub(super) fn assign_epochs(&self, headers: &[BatchHeader]) -> Result<()> {
        let mut c = lock(&self.epochs);
        let mut changed = c.is_unsaved();
        for h in headers {
            changed |= c.assign(h.partition_leader_epoch, h.base_offset);
        }
        if changed {
            self.save_epochs(&mut c)?;
        }
        Ok(())
    }

    /// A new leader's epoch starts at the log end (Kafka assigns it when the replica becomes
    /// leader, before any batch of the epoch exists). The file gets it with the epoch's
    /// first batch: until then it names no batch (and an open would cut it, at the log end).
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<()> {
        let _w = lock(&self.writer);
        let end = self.log_end_offset();
        let mut c = lock(&self.epochs);
        if c.assign(epoch, end) {
            c.mark_unsaved();
        }
        Ok(())
    }

    /// Changes the epoch cache and, if it changed, writes it; a failed write takes the log
    /// dir offline like any failed write.
    pub(super) fn edit_epochs(&self, f: impl FnOnce(&mut EpochCache) -> bool) -> Result<()> {
        let mut c = lock(&self.epochs);
        if f(&mut c) {
            self.save_epochs(&mut c)?;
        }
        Ok(())
    }

    /// Writes the epoch file (unsynced: the next flush syncs it).
    fn save_epochs(&self, c: &mut EpochCache) -> Result<()> {
        c.save(&self.dir).map_err(|e| self.health.fail(e))?;
        self.epochs_saved.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// At open: the cache from its file, cut to the log's bounds; rebuilt from the batch
    /// headers when the file is missing (a log of a release before replication) or damaged.
    /// After a crash (`unflushed_from`: the recovery point) the batches past the recovery
    /// point assign their epochs again: the file's last write may have been lost with them.
    pub(super) fn load_epochs(&self, unflushed_from: Option<i64>) -> Result<()> {
        let loaded = EpochCache::load(&self.dir).unwrap_or_else(|e| {
            tracing::warn!(log = %self.name(), error = %e, "damaged leader-epoch-checkpoint; rebuilding it from the log");
            None
        });
        let existed = loaded.is_some();
        let mut reassigned = false;
        let mut cache = match loaded {
            Some(mut c) => {
                if let Some(from) = unflushed_from {
                    self.for_each_header(from, |h| {
                        reassigned |= c.assign(h.partition_leader_epoch, h.base_offset);
                    })?;
                }
                c
            }
            None => {
                let mut c = EpochCache::empty();
                self.for_each_header(self.log_start_offset(), |h| {
                    c.assign(h.partition_leader_epoch, h.base_offset);
                })?;
                c
            }
        };
        let cut = cache.truncate_from_end(self.log_end_offset())
            | cache.truncate_from_start(self.log_start_offset());
        if reassigned {
            self.save_epochs(&mut cache)?;
        } else if existed && cut {
            cache.mark_unsaved();
        }
        *lock(&self.epochs) = cache;
        Ok(())
    }

    /// The leader epoch of the record at `offset`, if this log knows it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        lock(&self.epochs).epoch_at(offset)
    }

    /// The newest leader epoch of the log (-1: none).
    pub fn latest_epoch(&self) -> i32 {
        lock(&self.epochs).latest().map_or(-1, |e| e.epoch)
    }

    /// Where `epoch` ended in this log, with the epoch answered (Kafka's `endOffsetFor`,
    /// for OffsetForLeaderEpoch and a follower's divergence).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let c = lock(&self.epochs);
        c.end_offset_for(epoch, self.log_end_offset())
    }

    /// The high watermark last given (-1: never), checkpointed by the log dir.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn set_high_watermark(&self, offset: i64) {
        self.high_watermark.store(offset, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use crate::{LogConfig, LogDir, LogDirOptions, LogError};

    fn open(dir: &std::path::Path) -> LogDir {
        LogDir::open(dir, LogDirOptions::default(), &|_| LogConfig::default()).unwrap()
    }

    fn batch(base: i64, n: usize, epoch: i32) -> Vec<u8> {
        let mut b = crate::testing::batch(base as u64, n, 10, 1_000);
        strom_proto::batch::set_base_offset(&mut b, base);
        strom_proto::batch::set_partition_leader_epoch(&mut b, epoch);
        b
    }

    #[test]
    fn a_follower_keeps_its_leaders_offsets_and_epochs_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open(tmp.path());
        let log = dir.create("t", 0, LogConfig::default()).unwrap();
        let info = log.append_as_follower(&mut batch(0, 3, 1)).unwrap();
        assert_eq!((info.first_offset, info.last_offset), (0, 2));
        let gap = log.append_as_follower(&mut batch(5, 1, 1));
        assert!(matches!(
            gap,
            Err(LogError::NotContiguous {
                expected: 3,
                got: 5
            })
        ));
        log.append_as_follower(&mut batch(3, 2, 4)).unwrap();
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(log.end_offset_for_epoch(1), (1, 3));
        assert_eq!(log.end_offset_for_epoch(4), (4, 5));
        log.set_high_watermark(4);
        dir.close().unwrap();

        let dir = open(tmp.path());
        let log = dir.get("t-0").unwrap();
        assert_eq!(log.latest_epoch(), 4);
        assert_eq!(log.high_watermark(), 4);
        log.truncate_to(3).unwrap();
        assert_eq!(log.latest_epoch(), 1, "the truncated epoch is gone");
        assert_eq!(log.high_watermark(), 3, "the high watermark is capped too");
        log.truncate_fully_and_start_at(10).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
        assert_eq!(log.latest_epoch(), -1);
        log.append_as_follower(&mut batch(10, 1, 6)).unwrap();
        assert_eq!(log.end_offset_for_epoch(6), (6, 11));
        dir.close().unwrap();
    }

    #[test]
    fn a_flush_syncs_the_epoch_file_and_a_crash_that_lost_its_last_write_is_made_good() {
        use std::sync::atomic::Ordering::Acquire;
        let tmp = tempfile::tempdir().unwrap();
        let dir = open(tmp.path());
        let log = dir.create("t", 0, LogConfig::default()).unwrap();
        log.append(&mut batch(0, 2, 1)).unwrap();
        log.flush().unwrap();
        dir.write_checkpoints().unwrap();
        let synced = |log: &crate::Log| log.epochs_synced.load(Acquire);
        assert_eq!(
            synced(&log),
            log.epochs_saved.load(Acquire),
            "synced by the flush"
        );
        let file = tmp
            .path()
            .join("t-0")
            .join(crate::epochs::LEADER_EPOCH_FILE);
        let durable = std::fs::read(&file).unwrap();
        log.append(&mut batch(0, 2, 3)).unwrap();
        assert!(
            synced(&log) < log.epochs_saved.load(Acquire),
            "not synced before a flush"
        );
        // A crash: the file's last write is lost, the unflushed batches survive.
        std::fs::write(&file, durable).unwrap();
        drop(log);
        drop(dir);
        let dir = open(tmp.path());
        let log = dir.get("t-0").unwrap();
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(
            log.latest_epoch(),
            3,
            "reassigned from the batches past the recovery point"
        );
        assert_eq!(log.end_offset_for_epoch(1), (1, 2));
        dir.close().unwrap();
    }

    #[test]
    fn a_leaders_epoch_is_written_with_its_first_batch_and_a_cut_at_open_with_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp
            .path()
            .join("t-0")
            .join(crate::epochs::LEADER_EPOCH_FILE);
        let read = || std::fs::read_to_string(&file).unwrap_or_default();
        let dir = open(tmp.path());
        let log = dir.create("t", 0, LogConfig::default()).unwrap();
        log.append(&mut batch(0, 2, 1)).unwrap();
        assert_eq!(read(), "0\n1\n1 0\n");
        log.assign_leader_epoch(2).unwrap();
        assert_eq!(log.end_offset_for_epoch(1), (1, 2));
        assert_eq!(
            read(),
            "0\n1\n1 0\n",
            "no batch of epoch 2 yet: not written"
        );
        log.append(&mut batch(0, 1, 2)).unwrap();
        assert_eq!(read(), "0\n2\n1 0\n2 2\n");
        log.assign_leader_epoch(5).unwrap();
        log.append(&mut batch(0, 1, 5)).unwrap();
        log.assign_leader_epoch(7).unwrap();
        // The file gets epoch 7 at the log end (as a write before a crash could leave it);
        // the open cuts it, and the next batch, though of an older epoch, writes the cut.
        std::fs::write(&file, "0\n4\n1 0\n2 2\n5 3\n7 4\n").unwrap();
        dir.close().unwrap();
        let dir = open(tmp.path());
        let log = dir.get("t-0").unwrap();
        assert_eq!(log.latest_epoch(), 5);
        assert_eq!(
            read(),
            "0\n4\n1 0\n2 2\n5 3\n7 4\n",
            "the open writes nothing"
        );
        log.append_as_follower(&mut batch(4, 1, 5)).unwrap();
        assert_eq!(read(), "0\n3\n1 0\n2 2\n5 3\n");
        dir.close().unwrap();
    }

    #[test]
    fn a_log_without_an_epoch_file_rebuilds_it_from_its_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open(tmp.path());
        let log = dir.create("t", 0, LogConfig::default()).unwrap();
        log.append(&mut batch(0, 2, 2)).unwrap();
        log.append(&mut batch(0, 2, 3)).unwrap();
        dir.close().unwrap();
        std::fs::remove_file(
            tmp.path()
                .join("t-0")
                .join(crate::epochs::LEADER_EPOCH_FILE),
        )
        .unwrap();
        let dir = open(tmp.path());
        let log = dir.get("t-0").unwrap();
        assert_eq!(log.end_offset_for_epoch(2), (2, 2));
        assert_eq!(log.latest_epoch(), 3);
        dir.close().unwrap();
    }
}
