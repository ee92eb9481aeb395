//! A partition's append-only log on disk, stored the way Kafka stores it: segment files of v2
//! record batches named by base offset, sparse offset and time indexes, checkpoints, and a
//! group-commit flusher. See `docs/log-format.md` for the bytes.
//!
//! Architecture invariants: no networking, no async runtime, no knowledge of topics as a
//! cluster or of Raft; the only Strom crate it uses is the leaf `strom-proto`. Batches are
//! stored byte-for-byte as appended, except the base offset (and for `LogAppendTime` logs
//! the timestamp and CRC) rewritten in place.

pub mod checkpoint;
pub mod cleaner;
pub mod clock;
pub mod config;
pub mod epochs;
pub mod error;
pub mod flusher;
pub mod handles;
pub mod index;
pub mod limits;
pub mod log;
pub mod log_dir;
pub mod segment;
pub mod sync_trace;
pub mod testing;
pub mod txn_index;

pub use cleaner::{CleanOptions, CleanReport, Cleanable, CleanerOptions};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::LogConfig;
pub use epochs::{EpochCache, EpochEntry};
pub use error::{LogError, Result};
pub use flusher::Waiter;
pub use handles::Handles;
pub use log::{AppendInfo, Log, ReadInfo, RecoveryReport, TimestampOffset};
pub use log_dir::{parse_partition_dir, LogDir, LogDirOptions, CLEAN_SHUTDOWN_FILE};
pub use segment::FileSlice;
