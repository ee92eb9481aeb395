//! strom-log against plain file I/O on the same disk: appends without fsync, appends made
//! durable by the group-commit flusher, and sequential reads from the page cache.
//!
//! Every group writes into one temporary directory that holds both the plain files and the
//! log dir, so both variants use the same file system. The directory is created under
//! `$STROM_BENCH_DIR` if set, else under Cargo's `target/tmp` (`CARGO_TARGET_TMPDIR`), and
//! removed at the end of the group.
//!
//! Besides criterion's report, each group prints one `ratio` line computed from the very
//! iterations criterion timed (warm-up included): the median time per iteration of each
//! variant, turned into MB/s (10^6 bytes/s), and log/plain. BENCHMARKS.md copies those lines.
//!
//! Run: `cargo bench -p strom-log --bench log` (a group alone: `... -- append_no_fsync`).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::fs::{self, File};
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};
use strom_log::{testing, LogConfig, LogDir, LogDirOptions};
use strom_proto::batch::BatchHeader;

/// 16 records with 1 KiB values: about 16.9 KiB, a typical producer batch.
const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;
const TIMESTAMP_MS: i64 = 1_700_000_000_000;

const NO_FSYNC_BYTES: usize = 64 << 20;
const FSYNC_BYTES: usize = 32 << 20;
const READ_BYTES: usize = 256 << 20;
const READ_CHUNK: usize = 1 << 20;
const SYNC_INTERVAL: Duration = Duration::from_millis(1);

fn bench_batch() -> Vec<u8> {
    testing::batch(1, RECORDS_PER_BATCH, VALUE_BYTES, TIMESTAMP_MS)
}

/// A fresh temporary directory on the benchmark disk.
fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("STROM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    fs::create_dir_all(&base).expect("create the benchmark base directory");
    tempfile::tempdir_in(&base).expect("create a temporary directory")
}

fn open_log_dir(parent: &Path) -> LogDir {
    LogDir::open(parent.join("logs"), LogDirOptions::default(), &|_| LogConfig::default())
        .expect("open the log dir")
}

/// Times of single iterations of one variant, as criterion ran them.
struct Samples {
    name: &'static str,
    bytes: u64,
    times: Vec<Duration>,
}

impl Samples {
    fn new(name: &'static str, bytes: u64) -> Samples {
        Samples {
            name,
            bytes,
            times: Vec::new(),
        }
    }

    /// MB/s (10^6 bytes per second) at the median iteration time.
    fn median_mbps(&self) -> Option<f64> {
        let mut t = self.times.clone();
        t.sort_unstable();
        let median = t.get(t.len() / 2)?;
        Some(self.bytes as f64 / median.as_secs_f64() / 1e6)
    }
}

/// Prints the group's ratio line: log variant over plain variant.
fn report(group: &str, plain: &Samples, log: &Samples, target: Option<f64>) {
    let (Some(p), Some(l)) = (plain.median_mbps(), log.median_mbps()) else {
        println!("ratio {group}: skipped (a variant was filtered out)");
        return;
    };
    let ratio = l / p;
    let verdict = match target {
        Some(t) if ratio >= t => format!(" (target >= {t}: met)"),
        Some(t) => format!(" (target >= {t}: MISSED)"),
        None => String::new(),
    };
    println!(
        "ratio {group}: {} {p:.0} MB/s (n={}), {} {l:.0} MB/s (n={}), {}/{} = {ratio:.3}{verdict}",
        plain.name,
        plain.times.len(),
        log.name,
        log.times.len(),
        log.name,
        plain.name,
    );
}

/// Appends into the page cache only: `write_all` of the same batch vs `Log::append`.
fn append_no_fsync(c: &mut Criterion) {
    let tmp = bench_dir();
    let dir = open_log_dir(tmp.path());
    let mut batch = bench_batch();
    let n = NO_FSYNC_BYTES / batch.len();
    let bytes = (n * batch.len()) as u64;
    let mut plain = Samples::new("plain_write_loop", bytes);
    let mut logged = Samples::new("log_append", bytes);
    let mut seq = 0u32;

    let mut g = c.benchmark_group("append_no_fsync");
    g.throughput(Throughput::Bytes(bytes));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("plain_write_loop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let path = tmp.path().join("plain.bin");
                let mut f = File::create(&path).expect("create the plain file");
                let t = Instant::now();
                for _ in 0..n {
                    f.write_all(&batch).expect("write");
                }
                let d = t.elapsed();
                drop(f);
                // Removing the file drops its dirty pages: nothing of it reaches the disk.
                fs::remove_file(&path).expect("remove the plain file");
                plain.times.push(d);
                total += d;
            }
            total
        })
    });
    g.bench_function("log_append", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let topic = format!("append{seq}");
                let log = dir.create(&topic, 0, LogConfig::default()).expect("create the log");
                let t = Instant::now();
                for _ in 0..n {
                    log.append(&mut batch).expect("append");
                }
                let d = t.elapsed();
                assert_eq!(log.log_end_offset(), (n * RECORDS_PER_BATCH) as i64);
                drop(log);
                dir.delete(&format!("{topic}-0")).expect("delete the log");
                logged.times.push(d);
                total += d;
            }
            total
        })
    });
    g.finish();
    report("append_no_fsync", &plain, &logged, Some(0.9));
    dir.close().expect("close the log dir");
}

/// Counts durability callbacks and wakes the appending thread when the last one fires.
struct Durable {
    fired: AtomicUsize,
    failed: AtomicUsize,
    want: usize,
    waiter: Thread,
}

/// Appends made durable: a write loop with `fdatasync` at most every millisecond vs appends
/// that each register an `on_durable` callback served by the flusher's group commit.
fn append_group_commit_fsync(c: &mut Criterion) {
    let tmp = bench_dir();
    let dir = open_log_dir(tmp.path());
    let mut batch = bench_batch();
    let n = FSYNC_BYTES / batch.len();
    let bytes = (n * batch.len()) as u64;
    let mut plain = Samples::new("plain_write_loop_fdatasync_1ms", bytes);
    let mut logged = Samples::new("log_append_durable", bytes);
    let (mut plain_syncs, mut log_syncs) = (0u64, 0i64);
    let mut seq = 0u32;

    let mut g = c.benchmark_group("append_group_commit_fsync");
    g.throughput(Throughput::Bytes(bytes));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("plain_write_loop_fdatasync_1ms", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let path = tmp.path().join("plain.bin");
                let mut f = File::create(&path).expect("create the plain file");
                let t = Instant::now();
                let mut last_sync = t;
                for _ in 0..n {
                    f.write_all(&batch).expect("write");
                    // 1 ms from the end of the previous sync, so writes and syncs alternate.
                    if last_sync.elapsed() >= SYNC_INTERVAL {
                        f.sync_data().expect("fdatasync");
                        plain_syncs += 1;
                        last_sync = Instant::now();
                    }
                }
                f.sync_data().expect("fdatasync");
                plain_syncs += 1;
                let d = t.elapsed();
                drop(f);
                fs::remove_file(&path).expect("remove the plain file");
                plain.times.push(d);
                total += d;
            }
            total
        })
    });
    g.bench_function("log_append_durable", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let topic = format!("durable{seq}");
                let log = dir.create(&topic, 0, LogConfig::default()).expect("create the log");
                let state = Arc::new(Durable {
                    fired: AtomicUsize::new(0),
                    failed: AtomicUsize::new(0),
                    want: n,
                    waiter: thread::current(),
                });
                let t = Instant::now();
                for _ in 0..n {
                    let info = log.append(&mut batch).expect("append");
                    let s = Arc::clone(&state);
                    log.on_durable(
                        info.last_offset,
                        Box::new(move |r| {
                            if r.is_err() {
                                s.failed.fetch_add(1, Ordering::Relaxed);
                            }
                            if s.fired.fetch_add(1, Ordering::AcqRel) + 1 == s.want {
                                s.waiter.unpark();
                            }
                        }),
                    );
                }
                while state.fired.load(Ordering::Acquire) < n {
                    thread::park();
                }
                let d = t.elapsed();
                assert_eq!(state.failed.load(Ordering::Relaxed), 0, "a durability callback failed");
                log_syncs += log.flush_count();
                drop(log);
                dir.delete(&format!("{topic}-0")).expect("delete the log");
                logged.times.push(d);
                total += d;
            }
            total
        })
    });
    g.finish();
    report("append_group_commit_fsync", &plain, &logged, Some(0.7));
    let per = |syncs: f64, runs: usize| if runs == 0 { 0.0 } else { syncs / runs as f64 };
    println!(
        "fdatasyncs per {} MiB iteration: plain {:.1}, log {:.1} (appends per iteration: {n})",
        FSYNC_BYTES >> 20,
        per(plain_syncs as f64, plain.times.len()),
        per(log_syncs as f64, logged.times.len()),
    );
    dir.close().expect("close the log dir");
}

/// Reads a 256 MiB log front to back from the page cache: `Log::read` of 1 MiB and a `pread`
/// of the slice it returns, vs `pread` of the same segment file in 1 MiB chunks.
fn sequential_read(c: &mut Criterion) {
    let tmp = bench_dir();
    let dir = open_log_dir(tmp.path());
    let log = dir.create("read", 0, LogConfig::default()).expect("create the log");
    let mut batch = bench_batch();
    for _ in 0..READ_BYTES / batch.len() {
        log.append(&mut batch).expect("append");
    }
    let end = log.log_end_offset();
    assert_eq!(log.segment_count(), 1);
    let segment = File::open(log.dir().join(format!("{:020}.log", 0))).expect("open the segment");
    let file_len = segment.metadata().expect("segment size").len();
    assert_eq!(file_len, log.size_bytes());
    let bytes = file_len;
    let mut buf = vec![0u8; READ_CHUNK];

    let read_plain = |buf: &mut [u8]| {
        let mut pos = 0u64;
        while pos < file_len {
            let k = READ_CHUNK.min((file_len - pos) as usize);
            let chunk = buf.get_mut(..k).expect("chunk fits the buffer");
            segment.read_exact_at(chunk, pos).expect("pread");
            black_box(&chunk);
            pos += k as u64;
        }
        pos
    };
    let read_log = |buf: &mut Vec<u8>| {
        let (mut offset, mut total) = (0i64, 0u64);
        while let Some(slice) = log.read(offset, READ_CHUNK as u64, None).expect("read").slice {
            let len = slice.len as usize;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let chunk = buf.get_mut(..len).expect("slice fits the buffer");
            slice.file.read_exact_at(chunk, slice.position).expect("pread");
            // The next fetch starts after the last batch: walk the headers (no CRC check).
            let mut at = 0;
            while let Some(rest) = chunk.get(at..).filter(|r| !r.is_empty()) {
                let h = BatchHeader::parse(rest).expect("batch header");
                offset = h.next_offset();
                at += h.size();
            }
            black_box(&chunk);
            total += len as u64;
        }
        assert_eq!(offset, end);
        total
    };
    // Warm the page cache, and check both read everything.
    assert_eq!(read_plain(&mut buf), bytes);
    assert_eq!(read_log(&mut buf), bytes);

    let mut plain = Samples::new("plain_pread_1MiB", bytes);
    let mut logged = Samples::new("log_read_pread", bytes);
    let mut g = c.benchmark_group("sequential_read");
    g.throughput(Throughput::Bytes(bytes));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("plain_pread_1MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                read_plain(&mut buf);
                let d = t.elapsed();
                plain.times.push(d);
                total += d;
            }
            total
        })
    });
    g.bench_function("log_read_pread", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                read_log(&mut buf);
                let d = t.elapsed();
                logged.times.push(d);
                total += d;
            }
            total
        })
    });
    g.finish();
    report("sequential_read", &plain, &logged, None);
    drop(log);
    dir.close().expect("close the log dir");
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = append_no_fsync, append_group_commit_fsync, sequential_read
}
criterion_main!(benches);
