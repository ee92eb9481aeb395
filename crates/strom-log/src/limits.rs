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

/// The cleaner reads segments in chunks of this size (Kafka's `log.cleaner.io.buffer.size`
/// is 512 KiB per buffer).
pub const CLEAN_READ_BUFFER_BYTES: usize = 1 << 20;
/// The cleaner writes a cleaned segment in chunks of this size.
pub const CLEAN_WRITE_BUFFER_BYTES: usize = 1 << 20;
/// The largest batch the cleaner reads into memory; a log holding a larger one is left
/// uncleaned (Kafka's cleaner likewise gives up on such a log) rather than buffered whole.
pub const CLEAN_BATCH_BYTES_MAX: usize = 64 << 20;
/// The most a compressed batch may decompress to in the cleaner; a batch that would pass it
/// is kept as it is (never loses data, only leaves superseded records in place).
pub const CLEAN_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;
/// Bytes the cleaner's key map counts per entry, as Kafka's `SkimpyOffsetMap` (a 16-byte
/// key hash and an 8-byte offset): `log.cleaner.dedupe.buffer.size` over this, at Kafka's
/// 0.9 load factor, bounds the keys one clean can deduplicate.
pub const DEDUPE_ENTRY_BYTES: u64 = 24;
/// Smallest `log.cleaner.dedupe.buffer.size` accepted: room for one large batch of keys.
pub const DEDUPE_BUFFER_BYTES_MIN: u64 = 1 << 20;

const _: () = assert!(FLUSH_BATCH_MAX <= FLUSH_QUEUE_MAX);
const _: () = assert!(CLEAN_READ_BUFFER_BYTES >= strom_proto::batch::HEADER_BYTES);
const _: () = assert!(CLEAN_BATCH_BYTES_MAX >= CLEAN_READ_BUFFER_BYTES);
const _: () = assert!(SCAN_BUFFER_BYTES >= strom_proto::batch::HEADER_BYTES);
