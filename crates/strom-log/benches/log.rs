//! strom-log against plain file I/O on the same disk: appends without fsync, appends made
//! durable by the group-commit flusher, and sequential reads from the page cache.
//!
//! Each group writes into one temporary directory that holds both the plain files and the
//! log dir, so both variants use the same file system. The directory is created under
//! `$STROM_BENCH_DIR` if set, else under Cargo's `target/tmp` (`CARGO_TARGET_TMPDIR`), on
//! first use (a run filtered to other groups creates nothing), and removed afterwards.
//!
//! After criterion's report each group prints two `ratio` lines for BENCHMARKS.md, in MB/s
//! (10^6 bytes/s) at the median time of one iteration:
//! - `criterion`: over the very iterations criterion timed (warm-up included);
//! - `interleaved`: over a further 20 iterations of each variant in ABBA order, which a
//!   drifting background load (a shared machine) skews much less. Targets are judged on it.
//!
//! Run: `cargo bench -p strom-log --bench log` (one group: `... -- append_no_fsync`).

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
use strom_log::{testing, Log, LogConfig, LogDir, LogDirOptions};
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
const INTERLEAVED_ROUNDS: usize = 20;

fn bench_batch() -> Vec<u8> {
    testing::batch(1, RECORDS_PER_BATCH, VALUE_BYTES, TIMESTAMP_MS)
}

/// `total` rounded down to whole batches: what one iteration writes or reads.
fn whole_batches(total: usize) -> usize {
    let len = bench_batch().len();
    total / len * len
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
    LogDir::open(parent.join("logs"), LogDirOptions::default(), &|_| {
        LogConfig::default()
    })
    .expect("open the log dir")
}

/// One variant of a group: its name and one timed iteration (setup and teardown untimed).
struct Variant<F> {
    name: &'static str,
    run: fn(&mut F) -> Duration,
}

/// Times of single iterations of one variant.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn median(&self) -> Option<Duration> {
        let mut t = self.0.clone();
        t.sort_unstable();
        t.get(t.len() / 2).copied()
    }
}

fn mbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e6
}

/// Runs a group of two variants, plain first, then prints the ratio lines (log / plain).
/// The fixture is built on first use, so a filtered-out group costs nothing.
fn compare<F>(
    c: &mut Criterion,
    group: &str,
    bytes: u64,
    make: fn() -> F,
    plain: Variant<F>,
    log: Variant<F>,
    target: Option<f64>,
) -> Option<F> {
    let mut fixture: Option<F> = None;
    let mut samples = [Samples::default(), Samples::default()];
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(bytes));
    g.sampling_mode(SamplingMode::Flat);
    for (v, s) in [&plain, &log].into_iter().zip(samples.iter_mut()) {
        g.bench_function(v.name, |b| {
            let f = fixture.get_or_insert_with(make);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let d = (v.run)(f);
                    s.0.push(d);
                    total += d;
                }
                total
            })
        });
    }
    g.finish();
    let (Some(f), Some(p), Some(l)) = (fixture.as_mut(), samples[0].median(), samples[1].median())
    else {
        println!("ratio {group}: skipped (a variant was filtered out)");
        return fixture;
    };
    println!(
        "ratio {group} (criterion): {} {:.0} MB/s (n={}), {} {:.0} MB/s (n={}), log/plain = {:.3}",
        plain.name,
        mbps(bytes, p),
        samples[0].0.len(),
        log.name,
        mbps(bytes, l),
        samples[1].0.len(),
        p.as_secs_f64() / l.as_secs_f64(),
    );
    let mut alt = [Samples::default(), Samples::default()];
    // ABBA order, so neither variant always runs right after the other.
    let mut plain_first = true;
    for _ in 0..INTERLEAVED_ROUNDS {
        if plain_first {
            alt[0].0.push((plain.run)(f));
            alt[1].0.push((log.run)(f));
        } else {
            alt[1].0.push((log.run)(f));
            alt[0].0.push((plain.run)(f));
        }
        plain_first = !plain_first;
    }
    let (Some(p), Some(l)) = (alt[0].median(), alt[1].median()) else {
        return fixture;
    };
    let ratio = p.as_secs_f64() / l.as_secs_f64();
    let verdict = match target {
        Some(t) if ratio >= t => format!(" (target >= {t}: met)"),
        Some(t) => format!(" (target >= {t}: MISSED)"),
        None => String::new(),
    };
    println!(
        "ratio {group} (interleaved x{INTERLEAVED_ROUNDS}): {} {:.0} MB/s, {} {:.0} MB/s, log/plain = {ratio:.3}{verdict}",
        plain.name,
        mbps(bytes, p),
        log.name,
        mbps(bytes, l),
    );
    fixture
}

/// Counts durability callbacks and wakes the appending thread when the last one fires.
struct Durable {
    fired: AtomicUsize,
    failed: AtomicUsize,
    want: usize,
    waiter: Thread,
}

/// A directory for plain files and a log dir in it; each iteration writes a fresh file or a
/// fresh log of `n` copies of one batch and removes it afterwards (untimed).
struct AppendFixture {
    tmp: tempfile::TempDir,
    dir: Option<LogDir>,
    batch: Vec<u8>,
    n: usize,
    seq: u32,
    plain_syncs: u64,
    log_syncs: i64,
    iterations: [u64; 2],
}

impl AppendFixture {
    fn new(total_bytes: usize) -> AppendFixture {
        let tmp = bench_dir();
        let dir = open_log_dir(tmp.path());
        let batch = bench_batch();
        AppendFixture {
            n: total_bytes / batch.len(),
            tmp,
            dir: Some(dir),
            batch,
            seq: 0,
            plain_syncs: 0,
            log_syncs: 0,
            iterations: [0; 2],
        }
    }

    fn no_fsync() -> AppendFixture {
        AppendFixture::new(NO_FSYNC_BYTES)
    }

    fn fsync() -> AppendFixture {
        AppendFixture::new(FSYNC_BYTES)
    }

    fn log_dir(&self) -> &LogDir {
        self.dir.as_ref().expect("the log dir is open")
    }

    /// `write_all` of the batch `n` times into a new file; with `sync_every`, `fdatasync`
    /// once that long has passed since the previous sync ended, and once at the end.
    fn plain(&mut self, sync_every: Option<Duration>) -> Duration {
        let path = self.tmp.path().join("plain.bin");
        let mut f = File::create(&path).expect("create the plain file");
        let t = Instant::now();
        let mut last_sync = t;
        for _ in 0..self.n {
            f.write_all(&self.batch).expect("write");
            if sync_every.is_some_and(|every| last_sync.elapsed() >= every) {
                f.sync_data().expect("fdatasync");
                self.plain_syncs += 1;
                last_sync = Instant::now();
            }
        }
        if sync_every.is_some() {
            f.sync_data().expect("fdatasync");
            self.plain_syncs += 1;
        }
        let d = t.elapsed();
        drop(f);
        // Without fsync, removing the file drops its dirty pages before they reach the disk.
        fs::remove_file(&path).expect("remove the plain file");
        self.iterations[0] += 1;
        d
    }

    /// `Log::append` of the batch `n` times into a new log; with `durable`, every append
    /// registers an `on_durable` callback and the time runs until the last one fired.
    fn log(&mut self, durable: bool) -> Duration {
        self.seq += 1;
        let topic = format!("bench{}", self.seq);
        let log = self
            .log_dir()
            .create(&topic, 0, LogConfig::default())
            .expect("create the log");
        let state = Arc::new(Durable {
            fired: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            want: self.n,
            waiter: thread::current(),
        });
        let t = Instant::now();
        for _ in 0..self.n {
            let info = log.append(&mut self.batch).expect("append");
            if durable {
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
        }
        while durable && state.fired.load(Ordering::Acquire) < self.n {
            thread::park();
        }
        let d = t.elapsed();
        assert_eq!(
            state.failed.load(Ordering::Relaxed),
            0,
            "an on_durable failed"
        );
        assert_eq!(log.log_end_offset(), (self.n * RECORDS_PER_BATCH) as i64);
        self.log_syncs += log.flush_count();
        drop(log);
        self.log_dir()
            .delete(&format!("{topic}-0"))
            .expect("delete the log");
        self.iterations[1] += 1;
        d
    }
}

impl Drop for AppendFixture {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            dir.close().expect("close the log dir");
        }
    }
}

/// Appends into the page cache only: `write_all` of the same batch vs `Log::append`.
fn append_no_fsync(c: &mut Criterion) {
    compare(
        c,
        "append_no_fsync",
        whole_batches(NO_FSYNC_BYTES) as u64,
        AppendFixture::no_fsync,
        Variant {
            name: "plain_write_loop",
            run: |f| f.plain(None),
        },
        Variant {
            name: "log_append",
            run: |f| f.log(false),
        },
        Some(0.9),
    );
}

/// Appends made durable: a write loop with `fdatasync` at most every millisecond vs appends
/// that each register an `on_durable` callback served by the flusher's group commit.
fn append_group_commit_fsync(c: &mut Criterion) {
    let fixture = compare(
        c,
        "append_group_commit_fsync",
        whole_batches(FSYNC_BYTES) as u64,
        AppendFixture::fsync,
        Variant {
            name: "plain_write_loop_fdatasync_1ms",
            run: |f| f.plain(Some(SYNC_INTERVAL)),
        },
        Variant {
            name: "log_append_durable",
            run: |f| f.log(true),
        },
        Some(0.7),
    );
    if let Some(f) = fixture.filter(|f| f.iterations.iter().all(|&i| i > 0)) {
        println!(
            "fdatasyncs per {} MiB iteration: plain {:.1}, log {:.1} ({} appends per iteration)",
            FSYNC_BYTES >> 20,
            f.plain_syncs as f64 / f.iterations[0] as f64,
            f.log_syncs as f64 / f.iterations[1] as f64,
            f.n,
        );
    }
}

/// A 256 MiB log in one segment, and that segment file opened for plain reads.
struct ReadFixture {
    _tmp: tempfile::TempDir,
    dir: Option<LogDir>,
    log: Arc<Log>,
    segment: File,
    end: i64,
    file_len: u64,
    buf: Vec<u8>,
}

impl ReadFixture {
    fn new() -> ReadFixture {
        let tmp = bench_dir();
        let dir = open_log_dir(tmp.path());
        let log = dir
            .create("read", 0, LogConfig::default())
            .expect("create the log");
        let mut batch = bench_batch();
        for _ in 0..READ_BYTES / batch.len() {
            log.append(&mut batch).expect("append");
        }
        assert_eq!(log.segment_count(), 1);
        let segment =
            File::open(log.dir().join(format!("{:020}.log", 0))).expect("open the segment");
        let file_len = segment.metadata().expect("segment size").len();
        assert_eq!(file_len, log.size_bytes());
        assert_eq!(file_len, whole_batches(READ_BYTES) as u64);
        let mut f = ReadFixture {
            _tmp: tmp,
            dir: Some(dir),
            end: log.log_end_offset(),
            log,
            segment,
            file_len,
            buf: vec![0u8; READ_CHUNK],
        };
        // Warm the page cache, and check that both variants read everything.
        f.read_plain();
        f.read_log();
        f
    }

    /// The segment file in 1 MiB `pread`s.
    fn read_plain(&mut self) -> Duration {
        let t = Instant::now();
        let mut pos = 0u64;
        while pos < self.file_len {
            let k = READ_CHUNK.min((self.file_len - pos) as usize);
            let chunk = self.buf.get_mut(..k).expect("chunk fits the buffer");
            self.segment.read_exact_at(chunk, pos).expect("pread");
            black_box(&chunk);
            pos += k as u64;
        }
        let d = t.elapsed();
        assert_eq!(pos, self.file_len);
        d
    }

    /// `Log::read` of up to 1 MiB from the next offset, then a `pread` of the slice.
    fn read_log(&mut self) -> Duration {
        let t = Instant::now();
        let (mut offset, mut total) = (0i64, 0u64);
        while let Some(slice) = self
            .log
            .read(offset, READ_CHUNK as u64, None)
            .expect("read")
            .slice
        {
            let len = slice.len as usize;
            if self.buf.len() < len {
                self.buf.resize(len, 0);
            }
            let chunk = self.buf.get_mut(..len).expect("slice fits the buffer");
            slice
                .file
                .read_exact_at(chunk, slice.position)
                .expect("pread");
            // The next read starts after the last batch: walk the headers (no CRC check).
            let mut at = 0;
            while let Some(rest) = chunk.get(at..).filter(|r| !r.is_empty()) {
                let h = BatchHeader::parse(rest).expect("batch header");
                offset = h.next_offset();
                at += h.size();
            }
            black_box(&chunk);
            total += len as u64;
        }
        let d = t.elapsed();
        assert_eq!((offset, total), (self.end, self.file_len));
        d
    }
}

impl Drop for ReadFixture {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            dir.close().expect("close the log dir");
        }
    }
}

/// Reads a 256 MiB log front to back from the page cache: `Log::read` of 1 MiB and a `pread`
/// of the slice it returns, vs `pread` of the same segment file in 1 MiB chunks.
fn sequential_read(c: &mut Criterion) {
    compare(
        c,
        "sequential_read",
        whole_batches(READ_BYTES) as u64,
        ReadFixture::new,
        Variant {
            name: "plain_pread_1MiB",
            run: ReadFixture::read_plain,
        },
        Variant {
            name: "log_read_pread",
            run: ReadFixture::read_log,
        },
        None,
    );
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
