//! Every bound of the log crate in one place.

/// Flush requests queued for a log dir's flusher before appenders wait (back-pressure).
pub const FLUSH_QUEUE_MAX: usize = 65_536;
/// Flush requests one flusher cycle takes off the queue; the rest wait for the next cycle.
pub const FLUSH_BATCH_MAX: usize = 4_096;
/// How often the flusher wakes without requests, to apply `flush.ms` and write checkpoints.
pub const FLUSHER_TICK_MS: u64 = 100;
/// Read size used when scanning a segment during recovery.
pub const SCAN_BUFFER_BYTES: usize = 1 << 20;
/// Bytes of an offset index entry: relative offset (u32) and file position (u32).
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Bytes of a time index entry: timestamp (i64) and relative offset (u32).
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;
/// A segment's file positions are u32 in the offset index, as in Kafka.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest `segment.bytes` Kafka accepts (LegacyRecord.RECORD_OVERHEAD_V0 + 1 batch header).
pub const SEGMENT_BYTES_MIN: u64 = 14;

const _: () = assert!(FLUSH_BATCH_MAX <= FLUSH_QUEUE_MAX);
const _: () = assert!(SCAN_BUFFER_BYTES >= strom_proto::batch::HEADER_BYTES);
