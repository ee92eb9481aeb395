//! Every bound the client keeps, in one place.

/// Requests one connection may have outstanding (Kafka's `max.in.flight.requests.per.connection`
/// caps produce requests at 5; this caps everything, including fetches and heartbeats).
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 32;
/// Produce batches in flight per partition for an idempotent producer (Kafka's bound on
/// `max.in.flight.requests.per.connection` with idempotence: the broker remembers the last
/// five batches of each producer and partition for duplicate detection).
pub const IDEMPOTENT_IN_FLIGHT_MAX: usize = 5;
/// The most an open producer batch reserves up front (a larger `batch.size` grows as records
/// come). Reserved, not touched: pages are used only as records fill them.
pub const OPEN_BATCH_RESERVE_MAX: usize = 4 << 20;
/// Byte fields of a request (a producer's batches) at least this long are written from their
/// own buffers instead of being copied into the frame (shorter ones cost more as an iovec).
pub const SPLICE_BYTES_MIN: usize = 4096;
/// Frame parts one vectored write gathers (Linux's IOV_MAX is 1024).
pub const WRITE_PARTS_MAX: usize = 64;
/// The largest response frame accepted (a fetch answer is capped by `fetch.max.bytes`, 50 MiB
/// by default; this leaves room for a larger `--max-bytes`).
pub const RESPONSE_BYTES_MAX: i32 = 256 << 20;
/// The most a compressed batch may decompress to, for a consumer (bounds memory on hostile
/// or corrupt input).
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 256 << 20;
/// Attempts of one operation against retriable errors before giving up.
pub const RETRIES_MAX: u32 = 20;
/// Backoff between retries, doubled each time up to the maximum.
pub const RETRY_BACKOFF_MS: u64 = 100;
pub const RETRY_BACKOFF_MS_MAX: u64 = 1_000;
/// Records a consumer decodes from one fetch response before it stops and lets `poll`
/// return them (the rest is fetched again from the new position).
pub const CONSUMER_BUFFERED_RECORDS_MAX: usize = 65_536;

const _: () = assert!(RETRY_BACKOFF_MS <= RETRY_BACKOFF_MS_MAX);
const _: () = assert!(IN_FLIGHT_PER_CONNECTION_MAX >= IDEMPOTENT_IN_FLIGHT_MAX);
