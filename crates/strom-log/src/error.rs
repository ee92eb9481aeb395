//! The log's errors, split by what a caller can do about them.

use std::io;
use std::path::PathBuf;
use strom_proto::BatchError;

/// Errors of log operations.
///
/// `InvalidBatch` and `BatchTooLarge` are the caller's fault and change nothing;
/// `OffsetOutOfRange` asks the caller to reset its position; `Io` means the log dir just went
/// offline (what reached the disk is unknown, so nothing is retried) and every later call on
/// that dir gets `Offline`; `Exhausted` fails only the call (the process is short of
/// descriptors or maps), to be retried.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { size: u64, max: u64 },
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("log dir {} is offline after an I/O failure: {reason}", dir.display())]
    Offline { dir: PathBuf, reason: String },
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The process ran out of file descriptors or memory maps (EMFILE, ENFILE, ENOMEM):
    /// the one operation failed and may be retried; the disk is fine.
    #[error("out of resources opening {}: {source}", path.display())]
    Exhausted {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A segment that was deleted or replaced (retention, truncation, the cleaner) while a
    /// reader held it; the reader starts again from the log's current segments.
    #[error("segment {} is gone", path.display())]
    SegmentGone { path: PathBuf },
    #[error("{} is damaged at byte {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The cleaner cannot clean this log (a batch too large to buffer); the log itself is
    /// fine and stays as it is.
    #[error("{} cannot be cleaned: {reason}", path.display())]
    Uncleanable { path: PathBuf, reason: String },
    #[error("the log dir is closed")]
    Closed,
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid partition directory name {0:?}")]
    InvalidName(String),
    #[error("partition {0} already exists")]
    AlreadyExists(String),
    #[error("partition {0} does not exist here")]
    NotFound(String),
    /// A follower's append that does not start at the log end or skips offsets: a bug in
    /// the replication that called it, never retried.
    #[error("follower append at offset {got} does not continue the log at {expected}")]
    NotContiguous { expected: i64, got: i64 },
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

impl LogError {
    /// The same error once more, for a second caller (I/O errors are not `Clone`): the
    /// kind of failure and its message are kept.
    pub fn again(&self) -> LogError {
        let copy = |path: &PathBuf, source: &io::Error| {
            let source = match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            };
            (path.clone(), source)
        };
        match self {
            LogError::Io { path, source } => {
                let (path, source) = copy(path, source);
                LogError::Io { path, source }
            }
            LogError::Exhausted { path, source } => {
                let (path, source) = copy(path, source);
                LogError::Exhausted { path, source }
            }
            other => LogError::Offline {
                dir: PathBuf::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// Attaches a path to an I/O error; running out of descriptors is `Exhausted` (an ENOMEM
/// of a write or sync is not: it may have lost data).
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
    let path = path.into();
    move |source| {
        if crate::handles::is_out_of_descriptors(&source) {
            LogError::Exhausted { path, source }
        } else {
            LogError::Io { path, source }
        }
    }
}
