//! Helpers for tests of the log and of crates built on it: real batches and small configs.

use crate::config::LogConfig;
use strom_proto::BatchBuilder;

/// An uncompressed batch of `records` records whose values are `value_bytes` bytes derived
/// from `seed`, timestamps from `timestamp_ms` upward.
pub fn batch(seed: u64, records: usize, value_bytes: usize, timestamp_ms: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(timestamp_ms);
    for i in 0..records {
        let key = format!("key-{seed}-{i}");
        let value = value_for(
            seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
            value_bytes,
        );
        b.push(Some(key.as_bytes()), Some(&value), timestamp_ms + i as i64);
    }
    b.build()
}

/// Deterministic pseudo-random bytes (xorshift), so a test can regenerate what it wrote.
pub fn value_for(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A config with tiny segments and indexes, so tests roll and index often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        segment_index_bytes: 4096,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// Every batch from `offset` to the log end, read through `Log::read` as a consumer reads
/// them and checked (header and CRC); an error says what was wrong.
pub fn read_batches(log: &crate::Log, mut offset: i64) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let info = log.read(offset, 1 << 20, None).map_err(|e| e.to_string())?;
        let Some(slice) = info.slice else { break };
        let bytes = slice.read_to_vec().map_err(|e| e.to_string())?;
        for (h, b) in
            strom_proto::batch::split(&bytes).map_err(|e| format!("bad batch served: {e}"))?
        {
            offset = h.next_offset();
            out.push(b.to_vec());
        }
    }
    Ok(out)
}
