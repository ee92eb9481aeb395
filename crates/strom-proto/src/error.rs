//! Why a record batch was refused.

/// A batch that cannot be stored or served as it is. Every variant means the bytes are bad
/// (Kafka's CORRUPT_MESSAGE); none is retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: needs {needed} bytes, has {have}")]
    Truncated { needed: usize, have: usize },
    #[error("unsupported record batch magic {0} (only v2 is stored)")]
    UnsupportedMagic(i8),
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    #[error("{0} trailing bytes after the batch")]
    TrailingBytes(usize),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid batch: {0}")]
    InvalidField(&'static str),
    #[error("records are compressed")]
    Compressed,
    #[error("records cannot be decompressed: {0}")]
    Decompress(String),
}
