//! How fast `Log::clean` compacts: writes MIB MiB of 100-record batches (keys drawn at
//! random from KEYS distinct keys, 1000-byte values that compress about 4:1) into a
//! compacted partition with 128 MiB segments, rolls, then times one clean of everything.
//!
//! ```text
//! cargo run --release -p strom-log --example clean_throughput -- [MIB] [KEYS] [CODEC] [PATH]
//! ```
//!
//! - `MIB`: log size to write, default 1024. `KEYS`: distinct keys, default 100000.
//! - `CODEC`: none, gzip, snappy, lz4 or zstd, default none.
//! - `PATH`: the log dir, default `/tmp/strom-clean-bench`; removed first and at the end.
//!
//! The data is written just before the clean, so it is read from the page cache: this
//! measures the cleaner's CPU cost (decode, map, filter, re-encode, write, read back).

use std::error::Error;
use std::time::Instant;
use strom_log::{CleanOptions, LogConfig, LogDir, LogDirOptions};
use strom_proto::{BatchBuilder, Compression};

const RECORDS_PER_BATCH: usize = 100;
const VALUE_RANDOM_BYTES: usize = 250;
const VALUE_REPEATS: usize = 4;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: u64 = args.first().map_or(Ok(1024), |a| a.parse())?;
    let keys: u64 = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let codec = args
        .get(2)
        .map_or(Some(Compression::None), |a| Compression::from_name(a))
        .ok_or("unknown codec")?;
    let path = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "/tmp/strom-clean-bench".into());
    let _ = std::fs::remove_dir_all(&path);
    let config = LogConfig {
        segment_bytes: 128 << 20,
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        ..LogConfig::default()
    };
    let c = config.clone();
    let dir = LogDir::open(&path, LogDirOptions::default(), &move |_| c.clone())?;
    let log = dir.create("bench", 0, config)?;
    let mut x = 88_172_645_463_325_252u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let started = Instant::now();
    let mut records = 0u64;
    while log.size_bytes() < mib << 20 {
        let mut b = BatchBuilder::new(1);
        for _ in 0..RECORDS_PER_BATCH {
            let key = format!("key-{}", next() % keys);
            let mut value: Vec<u8> = (0..VALUE_RANDOM_BYTES / 8 + 1)
                .flat_map(|_| next().to_le_bytes())
                .collect();
            value.truncate(VALUE_RANDOM_BYTES);
            b.push(Some(key.as_bytes()), Some(&value.repeat(VALUE_REPEATS)), 1);
            records += 1;
        }
        log.append(&mut b.build_compressed(codec)?)?;
    }
    log.roll()?;
    eprintln!(
        "wrote {} MiB ({records} records) in {:.1} s",
        log.size_bytes() >> 20,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let r = log.clean(&CleanOptions::default())?;
    let secs = started.elapsed().as_secs_f64();
    let mib_in = r.bytes_before as f64 / 1_048_576.0;
    println!(
        "{codec:?}, {keys} keys: {mib_in:.0} MiB -> {:.0} MiB, {} -> {} segments, {} of {records} records removed, {secs:.2} s, {:.0} MiB/s, {:.2} M records/s",
        r.bytes_after as f64 / 1_048_576.0,
        r.segments_before,
        r.segments_after,
        r.records_removed,
        mib_in / secs,
        records as f64 / secs / 1e6,
    );
    dir.close()?;
    std::fs::remove_dir_all(&path)?;
    Ok(())
}
