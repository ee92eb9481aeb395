//! How long a log dir takes to reopen after a clean shutdown: writes GIB GiB of 16-record
//! batches with 1 KiB values (about 16.9 KiB each) into one partition with the default
//! config (1 GiB segments), closes the log dir cleanly, then times `LogDir::open` plus
//! reading the partition's `log_end_offset()`.
//!
//! ```text
//! cargo run --release -p strom-log --example reopen -- [GIB] [PATH] [--drop-caches] [--delete]
//! ```
//!
//! - `GIB`: how much to write, default 10. Writing is skipped (or only topped up) when the
//!   partition already holds that much, so the example can be rerun on the same data.
//! - `PATH`: the log dir, default `/tmp/strom-reopen`.
//! - `--drop-caches`: `sync` and `echo 3 > /proc/sys/vm/drop_caches` before the timed open,
//!   so it reads indexes and segment tails from the disk (needs root).
//! - `--delete`: removes `PATH` at the end.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use strom_log::{testing, LogConfig, LogDir, LogDirOptions};

const TOPIC: &str = "reopen";
const PARTITION_DIR: &str = "reopen-0";
const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;
const FIRST_TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// A new batch (new values, a later timestamp) every this many appends, so the time index
/// gets entries too; rebuilding every batch would make writing CPU-bound.
const BATCHES_PER_TIMESTAMP: u64 = 64;

fn open(path: &Path) -> strom_log::Result<LogDir> {
    LogDir::open(path, LogDirOptions::default(), &|_| LogConfig::default())
}

fn drop_caches() -> Result<(), Box<dyn Error>> {
    let status = Command::new("sync").status()?;
    if !status.success() {
        return Err("sync failed".into());
    }
    fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| format!("writing /proc/sys/vm/drop_caches (root needed): {e}"))?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut positional = Vec::new();
    let (mut drop_page_cache, mut delete) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--drop-caches" => drop_page_cache = true,
            "--delete" => delete = true,
            _ => positional.push(arg),
        }
    }
    let gib: u64 = match positional.first() {
        Some(s) => s.parse().map_err(|e| format!("GIB {s:?}: {e}"))?,
        None => 10,
    };
    let path = positional
        .get(1)
        .map_or_else(|| PathBuf::from("/tmp/strom-reopen"), PathBuf::from);
    let target = gib << 30;

    let t = Instant::now();
    let dir = open(&path)?;
    println!(
        "setup open of {}: {:.1} ms (previous shutdown clean: {})",
        path.display(),
        t.elapsed().as_secs_f64() * 1e3,
        dir.was_clean_shutdown()
    );
    let log = match dir.get(PARTITION_DIR) {
        Some(log) => log,
        None => dir.create(TOPIC, 0, LogConfig::default())?,
    };
    let mut written = log.size_bytes();
    if written >= target {
        println!("writing skipped: the partition holds {written} bytes already");
    } else {
        let t = Instant::now();
        let from = written;
        let mut n = u64::try_from(log.log_end_offset())? / RECORDS_PER_BATCH as u64;
        let mut batch = Vec::new();
        let mut reuses_left = 0;
        while written < target {
            if reuses_left == 0 {
                let ts = FIRST_TIMESTAMP_MS + i64::try_from(n)?;
                batch = testing::batch(n, RECORDS_PER_BATCH, VALUE_BYTES, ts);
                reuses_left = BATCHES_PER_TIMESTAMP;
            }
            reuses_left -= 1;
            log.append(&mut batch)?;
            written += batch.len() as u64;
            n += 1;
        }
        let appended = t.elapsed();
        dir.close()?;
        let total = t.elapsed();
        println!(
            "wrote {} bytes: appends {:.1} s, with the closing fsyncs {:.1} s ({:.0} MB/s)",
            written - from,
            appended.as_secs_f64(),
            total.as_secs_f64(),
            (written - from) as f64 / total.as_secs_f64() / 1e6
        );
        return reopen(&path, drop_page_cache, delete);
    }
    drop(log);
    dir.close()?;
    reopen(&path, drop_page_cache, delete)
}

/// The measurement: open the cleanly closed dir and read the partition's end offset.
fn reopen(path: &Path, drop_page_cache: bool, delete: bool) -> Result<(), Box<dyn Error>> {
    if drop_page_cache {
        drop_caches()?;
    }
    let t = Instant::now();
    let dir = open(path)?;
    let log = dir.get(PARTITION_DIR).ok_or("the partition is missing")?;
    let end = log.log_end_offset();
    let elapsed = t.elapsed();
    println!(
        "reopen: LogDir::open + log_end_offset() = {:.1} ms (page cache dropped: {drop_page_cache}; \
         previous shutdown clean: {}; {} segments, {} bytes, log end offset {end}; recovery: {:?})",
        elapsed.as_secs_f64() * 1e3,
        dir.was_clean_shutdown(),
        log.segment_count(),
        log.size_bytes(),
        log.recovery_report(),
    );
    drop(log);
    dir.close()?;
    if delete {
        fs::remove_dir_all(path)?;
        println!("deleted {}", path.display());
    }
    Ok(())
}
