//! Per-log settings, named and defaulted as Kafka's topic configs are.

use crate::limits;
use strom_proto::TimestampType;

/// A partition log's configuration. Field names are Kafka's topic config names with dots
/// replaced by underscores; defaults are Kafka's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes appended between two offset index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: closed segments whose newest record is older are deleted; -1: never.
    pub retention_ms: i64,
    /// `retention.bytes`: oldest closed segments are deleted while the log is larger; -1: never.
    pub retention_bytes: i64,
    /// `flush.messages`: the flusher syncs after this many unflushed records.
    pub flush_messages: i64,
    /// `flush.ms`: the flusher syncs data older than this.
    pub flush_ms: i64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u64,
    /// `message.timestamp.type`: `LogAppendTime` stamps every batch with the broker's clock.
    pub message_timestamp_type: TimestampType,
    /// `cleanup.policy` contains `delete`: `retention.ms` and `retention.bytes` apply.
    pub cleanup_policy_delete: bool,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the latest record per key.
    pub cleanup_policy_compact: bool,
    /// `min.cleanable.dirty.ratio`: the cleaner takes a log once the not-yet-cleaned part of
    /// its closed segments is more than this fraction of them.
    pub min_cleanable_dirty_ratio: f64,
    /// `delete.retention.ms`: how long a tombstone stays readable after the cleaning that
    /// first saw it, so that a consumer reading the log from the start sees the delete.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a segment whose newest record is younger is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record older than this makes its log cleanable whatever
    /// the dirty ratio, and the active segment of a compacted log rolls by then.
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            cleanup_policy_delete: true,
            cleanup_policy_compact: false,
            min_cleanable_dirty_ratio: 0.5,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// Checks the ranges Kafka enforces; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let range = limits::SEGMENT_BYTES_MIN..=limits::SEGMENT_BYTES_MAX;
        if !range.contains(&self.segment_bytes) {
            return Err(format!("segment.bytes must be in {range:?}"));
        }
        if self.segment_ms < 1 {
            return Err("segment.ms must be at least 1".into());
        }
        if self.segment_index_bytes < limits::TIME_INDEX_ENTRY_BYTES as u64 {
            return Err("segment.index.bytes must hold at least one entry".into());
        }
        if self.segment_index_bytes > limits::SEGMENT_BYTES_MAX {
            return Err("segment.index.bytes must fit in an i32".into());
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return Err("retention.ms and retention.bytes must be -1 or more".into());
        }
        if self.flush_messages < 1 || self.flush_ms < 0 {
            return Err("flush.messages must be at least 1 and flush.ms at least 0".into());
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err("min.cleanable.dirty.ratio must be in [0, 1]".into());
        }
        if self.delete_retention_ms < 0 || self.min_compaction_lag_ms < 0 {
            return Err("delete.retention.ms and min.compaction.lag.ms must be 0 or more".into());
        }
        if self.max_compaction_lag_ms < 1 {
            return Err("max.compaction.lag.ms must be at least 1".into());
        }
        Ok(())
    }

    /// The age at which the active segment rolls: `segment.ms`, or sooner for a compacted
    /// log with a `max.compaction.lag.ms` (only closed segments are cleaned, so a record can
    /// only meet its deadline once its segment is closed), as Kafka's `maxSegmentMs`.
    pub fn roll_ms(&self) -> i64 {
        if self.cleanup_policy_compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}
