//! Every bound of the broker crate in one place.

/// Requests of one connection decoded but not yet answered; the reader waits past this.
pub const INFLIGHT_PER_CONNECTION_MAX: usize = 32;
/// A Metadata response with more partitions than this is built and encoded on a blocking
/// thread: 100,000 partitions take a worker a tenth of a second, which produce and fetch
/// requests would wait behind.
pub const METADATA_OFF_WORKER_PARTITIONS: usize = 1000;

/// A connection's read buffer, taken when bytes arrive and dropped between requests (a
/// frame larger than this gets room for all of it).
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

const _: () = assert!(
    INFLIGHT_PER_CONNECTION_MAX >= 5,
    "librdkafka pipelines 5 produce requests"
);

/// How often changed group membership is written to `__consumer_offsets`. A crash loses at
/// most this much membership history; members then rejoin, their offsets are safe.
pub const GROUP_PERSIST_INTERVAL_MS: u64 = 250;

/// A runtime thread keeps its produce copy buffer up to this size between requests (larger
/// batches get a buffer of their own, freed after the append).
pub const PRODUCE_SCRATCH_KEEP_BYTES: usize = 8 << 20;

/// Records of one compressed produce batch the broker decompresses to check their timestamps
/// (only when the batch header cannot settle it); a batch that inflates past this is refused
/// as corrupt.
pub const PRODUCE_DECOMPRESSED_BYTES_MAX: usize = 128 << 20;
