//! Crash test of compaction: a child process appends keyed batches (hot and cold keys,
//! tombstones, every codec, some idempotent producers' batches) to a compacted log with tiny
//! segments, waits for durability and prints every record the log reported durable, while a
//! thread of it cleans the log again and again (`Log::clean`). The parent SIGKILLs it at
//! random moments — some while it opens (recovering the previous crash), some as soon as a
//! `.swap` or `.deleted` file shows a swap under way — and, a third of the time, also throws
//! away bytes of the active segment past the durable point as a power cut may. After every
//! kill the parent reopens the dir in-process and checks:
//! - no `.cleaned`, `.swap` or `.deleted` file is left (recovery finished or dropped them);
//! - the log end is past every durable offset, and the log start is still 0;
//! - segments do not overlap; batches and records are served in strictly increasing offset
//!   order, and every record served is the one appended at its offset;
//! - for every key, the latest record served is at or after its latest durable one (every
//!   offset below the highest reported durable is durable); a key may have nothing served
//!   only if that durable record is a tombstone written `delete.retention.ms` ago or more.
//!
//! The next round appends to the same dir; at the end a full clean must leave one record per
//! key, the same latest ones. Records are functions of their offsets (`expected`), so the
//! parent checks the records appended but never reported too (the kill came before the
//! report). The summary counts the kills that found a clean under way. Seeded
//! (`STROM_CLEAN_CRASH_SEED` replays the parent's choices; the child's timing is the OS's).
//! Not modelled: a power cut losing the cleaner's own unsynced writes or directory entries.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom_log::testing::{read_batches, value_for};
use strom_log::{CleanOptions, LogConfig, LogDir, LogDirOptions};
use strom_proto::batch::split;
use strom_proto::{records, BatchBuilder, BatchHeader, Compression};

const ROUNDS: u64 = 100;
const CHILD_ENV: &str = "STROM_CLEAN_CRASH_CHILD_DIR";
const SEED_ENV: &str = "STROM_CLEAN_CRASH_SEED";
const PARTITION: &str = "compacted-0";
/// Half the records update a few hot keys, so most records are superseded soon; the other
/// half spread over many cold keys, whose latest records stay in older segments, so that
/// every group a clean rewrites holds some record that must survive it.
const HOT_KEYS: u64 = 16;
const COLD_KEYS: u64 = 400;
const DELETE_RETENTION_MS: i64 = 300;
const PRODUCER_ID: i64 = 4242;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_index_bytes: 1024,
        index_interval_bytes: 128,
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..LogConfig::default()
    }
}

fn open(path: &Path) -> LogDir {
    LogDir::open(path, LogDirOptions::default(), &|_| config())
        .unwrap_or_else(|e| panic!("opening {} failed: {e}", path.display()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The record appended at `offset`: key, value (None: a tombstone), and one header naming
/// the offset. Appends re-done after a torn tail write the same records again.
fn expected(offset: i64) -> (Vec<u8>, Option<Vec<u8>>, Vec<u8>) {
    let h = mix(offset as u64);
    let key = if h.is_multiple_of(2) {
        format!("hot-{}", (h >> 1) % HOT_KEYS)
    } else {
        format!("cold-{}", (h >> 1) % COLD_KEYS)
    }
    .into_bytes();
    let value = (!(h >> 20).is_multiple_of(6)).then(|| value_for(h, 4 + ((h >> 32) % 60) as usize));
    (key, value, format!("o{offset}").into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The batch holding offsets `[first, first + n)`, its codec and producer chosen by `first`.
fn build_batch(first: i64, n: usize, timestamp: i64) -> Vec<u8> {
    let h = mix(first as u64 ^ 0xba7c);
    let mut b = BatchBuilder::new(timestamp);
    if h.is_multiple_of(4) {
        b = b.producer(PRODUCER_ID, 0, (first % i64::from(i32::MAX)) as i32);
    }
    for o in first..first + n as i64 {
        let (key, value, header) = expected(o);
        b.push_with_headers(
            Some(&key),
            value.as_deref(),
            &[(b"o".as_slice(), Some(header.as_slice()))],
            timestamp,
        );
    }
    let codec = [
        Compression::None,
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ][((h >> 8) % 6) as usize];
    b.build_compressed(codec).unwrap()
}

/// The child: recovers the dir, says `ready`, then appends and cleans until killed. Each
/// record the log reports durable is printed as `d <offset> <key hex> <value hex|-> <ts> .`.
/// A no-op unless the parent started this test binary as the child.
#[test]
fn clean_crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = open(Path::new(&path));
    let log = match dir.get(PARTITION) {
        Some(log) => log,
        None => dir.create("compacted", 0, config()).unwrap(),
    };
    println!("ready {}", log.log_end_offset());
    let cleaner = log.clone();
    std::thread::spawn(move || loop {
        match cleaner.clean(&CleanOptions::default()) {
            Ok(r) if r.segments_before == 0 => std::thread::sleep(Duration::from_millis(1)),
            Ok(_) => {}
            Err(e) => {
                eprintln!("clean failed: {e}");
                std::process::exit(3);
            }
        }
    });
    let mut stdout = std::io::stdout();
    loop {
        let mut end = log.log_end_offset();
        let mut written = Vec::new();
        // A few batches per durability wait.
        for _ in 0..1 + mix(end as u64 ^ 0xd0) % 3 {
            let n = 1 + (mix(end as u64 ^ 0x5e) % 6) as usize;
            let ts = now_ms();
            let mut b = build_batch(end, n, ts);
            let info = log.append(&mut b).unwrap();
            assert_eq!(info.first_offset, end, "the child is the only writer");
            written.extend((end..end + n as i64).map(|o| (o, ts)));
            end += n as i64;
        }
        let durable = log.wait_durable(end - 1).unwrap();
        let mut out = String::new();
        for &(o, ts) in written.iter().filter(|(o, _)| *o < durable) {
            let (key, value, _) = expected(o);
            let value = value.map_or_else(|| "-".to_string(), |v| hex(&v));
            out.push_str(&format!("d {o} {} {value} {ts} .\n", hex(&key)));
        }
        stdout.write_all(out.as_bytes()).unwrap();
        stdout.flush().unwrap();
        // Paced, so that cleans finish between kills and the log stays small.
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A record the child reported durable.
#[derive(Debug, Clone)]
struct Durable {
    offset: i64,
    tombstone: bool,
    timestamp: i64,
}

/// What the parent saw of one child.
#[derive(Default)]
struct Seen {
    ready: bool,
    records: Vec<Durable>,
}

fn parse_line(line: &str) -> Option<Durable> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let [tag, offset, key, value, ts, end] = t.as_slice() else {
        return None;
    };
    if *tag != "d" || *end != "." {
        return None;
    }
    let offset: i64 = offset.parse().ok()?;
    let key = unhex(key)?;
    let value = if *value == "-" {
        None
    } else {
        Some(unhex(value)?)
    };
    let (ekey, evalue, _) = expected(offset);
    assert_eq!(
        (&key, &value),
        (&ekey, &evalue),
        "the child reported a record other than the one appended at {offset}"
    );
    Some(Durable {
        offset,
        tombstone: value.is_none(),
        timestamp: ts.parse().ok()?,
    })
}

/// How a round picks its moment.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Moment {
    /// A random time after the start: sometimes while the child recovers the dir.
    FromStart,
    /// A random time after the child is ready.
    AfterReady,
    /// As soon as a file with this stage suffix shows up (or after a while).
    OnSight(&'static str),
}

fn stage_files(pdir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(pdir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.split('.').count() > 2)
        .collect()
}

fn child_failed(child: &mut Child, stderr: &Path, round: u64, seed: u64) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!(
            "round {round}: the child died on its own ({status}) (seed {seed}):\n{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
    }
}

#[test]
fn sigkill_while_cleaning_loses_nothing_durable() {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 ^ 0xc1ea);
    println!("clean crash test seed {seed} ({SEED_ENV}={seed} replays it)");
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pdir = data.join(PARTITION);
    let exe = std::env::current_exe().unwrap();
    // Durable offsets are a prefix: every offset below the highest one reported durable is
    // durable too, reported or not (the child may die between the wait and the report), and
    // holds `expected(offset)`. Per key, the latest durable record: offset, tombstone.
    let mut latest_durable: BTreeMap<Vec<u8>, (i64, bool)> = BTreeMap::new();
    let mut durable_end = 0i64;
    let mut modeled_end = 0i64;
    // Write times of the tombstones reported; for the others, the start of the first round
    // whose log end passed them is a lower bound.
    let mut tombstone_ms: BTreeMap<i64, i64> = BTreeMap::new();
    let mut round_ends: Vec<(i64, i64)> = Vec::new();
    let mut at_kill: BTreeMap<&str, u32> = BTreeMap::new();
    let mut torn_rounds = 0;
    for round in 0..ROUNDS {
        let stderr_path = tmp.path().join(format!("child-{round}.stderr"));
        let spawn_ms = now_ms();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "clean_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &data)
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let ready = Arc::new(AtomicBool::new(false));
        let reader = {
            let stdout = child.stdout.take().unwrap();
            let (seen, ready) = (seen.clone(), ready.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // The harness's "test clean_crash_child ... " precedes it on its line.
                    if line.contains("ready ") {
                        seen.lock().unwrap().ready = true;
                        ready.store(true, Ordering::Release);
                    } else if let Some(r) = parse_line(&line) {
                        seen.lock().unwrap().records.push(r);
                    }
                }
            })
        };
        let moment = match next(10) {
            0..=2 => Moment::FromStart,
            3..=5 => Moment::AfterReady,
            6..=7 => Moment::OnSight("swap"),
            _ => Moment::OnSight("deleted"),
        };
        if moment != Moment::FromStart {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !ready.load(Ordering::Acquire) {
                child_failed(&mut child, &stderr_path, round, seed);
                assert!(Instant::now() < deadline, "round {round}: child not ready");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        match moment {
            // Half the time early, while the child may still be recovering the last crash.
            Moment::FromStart if next(2) == 0 => {
                std::thread::sleep(Duration::from_millis(next(30)))
            }
            Moment::FromStart => std::thread::sleep(Duration::from_millis(next(300))),
            Moment::AfterReady => std::thread::sleep(Duration::from_millis(20 + next(300))),
            Moment::OnSight(stage) => {
                // Let some closed segments pile up first.
                std::thread::sleep(Duration::from_millis(30 + next(100)));
                let deadline = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < deadline
                    && !stage_files(&pdir)
                        .iter()
                        .any(|n| n.ends_with(&format!(".{stage}")))
                {
                    // Not a spin: the child needs the CPU to get there.
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
        child_failed(&mut child, &stderr_path, round, seed);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();

        let left = stage_files(&pdir);
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        let mut kinds: Vec<&str> = ["cleaned", "swap", "deleted"]
            .into_iter()
            .filter(|s| left.iter().any(|n| n.ends_with(&format!(".{s}"))))
            .collect();
        if !seen.ready {
            kinds.push("before ready");
        }
        if kinds.iter().any(|k| *k != "before ready") {
            kinds.push("mid-clean");
        }
        for k in &kinds {
            *at_kill.entry(k).or_default() += 1;
        }
        for d in seen.records {
            durable_end = durable_end.max(d.offset + 1);
            if d.tombstone {
                tombstone_ms.insert(d.offset, d.timestamp);
            }
        }
        for offset in modeled_end..durable_end {
            let (key, value, _) = expected(offset);
            latest_durable.insert(key, (offset, value.is_none()));
        }
        modeled_end = durable_end;
        let torn = next(3) == 0;
        if torn {
            torn_rounds += 1;
            lose_unsynced_bytes(&pdir, durable_end, &mut next);
        }
        println!(
            "round {round}: {moment:?}, at kill {kinds:?} {left:?}, durable end {durable_end}{}",
            if torn { ", tail torn" } else { "" }
        );

        let check_ms = now_ms();
        let dir = open(&data);
        let ctx = format!("round {round} (seed {seed})");
        let Some(log) = dir.get(PARTITION) else {
            // Killed before it created the partition.
            assert_eq!(durable_end, 0, "{ctx}: the partition is gone");
            continue;
        };
        let left = stage_files(&pdir);
        assert!(
            left.is_empty(),
            "{ctx}: stage files left after open: {left:?}"
        );
        let end = log.log_end_offset();
        assert!(
            end >= durable_end,
            "{ctx}: log end {end} < durable end {durable_end}"
        );
        // What the open found, for the messages below.
        let state = format!(
            "after open: log start {}, end {end}, {:?}, segments {:?}",
            log.log_start_offset(),
            log.recovery_report(),
            log.segment_base_offsets()
        );
        check_segments(&log, &ctx);
        let (served, _) = check_served(&log, &ctx);
        for (key, &(durable, tombstone)) in &latest_durable {
            let name = String::from_utf8_lossy(key);
            match served.get(key) {
                Some(&(offset, _)) => assert!(
                    offset >= durable,
                    "{ctx}: {name}: the latest record served is at {offset}, but {durable} was \
                     durable\n{state}"
                ),
                None => {
                    assert!(
                        tombstone,
                        "{ctx}: {name}: nothing served; its value at {durable} was durable\n{state}"
                    );
                    let written_ms = round_ends
                        .iter()
                        .find(|(end, _)| *end > durable)
                        .map_or(spawn_ms, |(_, ms)| *ms)
                        .max(tombstone_ms.get(&durable).copied().unwrap_or(0));
                    assert!(
                        check_ms >= written_ms + DELETE_RETENTION_MS,
                        "{ctx}: {name}: its tombstone at {durable} (written at {written_ms} or \
                         later) is gone before delete.retention.ms passed ({check_ms})\n{state}"
                    );
                }
            }
        }
        round_ends.push((end, spawn_ms));
        assert_eq!(
            log.log_start_offset(),
            0,
            "{ctx}: cleaning moved the log start\n{state}"
        );
        // Alternate clean and unclean closes between rounds.
        if next(2) == 0 {
            drop(log);
            dir.close().unwrap();
        }
    }
    assert!(durable_end > 0, "the child never reported durable data");

    // And the log still cleans to one record per key, the same latest ones.
    let dir = open(&data);
    let log = dir.get(PARTITION).unwrap();
    check_segments(&log, "before the final clean");
    let (before, _) = check_served(&log, "before the final clean");
    log.clean(&CleanOptions::default()).unwrap();
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    check_segments(&log, "after the final clean");
    let (after, count) = check_served(&log, "after the final clean");
    assert_eq!(
        count,
        after.len(),
        "one record per key after a clean of everything"
    );
    for (key, (offset, tombstone)) in &before {
        match after.get(key) {
            Some(a) => assert_eq!(a, &(*offset, *tombstone)),
            None => assert!(
                *tombstone,
                "final clean lost {}",
                String::from_utf8_lossy(key)
            ),
        }
    }
    drop(log);
    dir.close().unwrap();
    println!(
        "{ROUNDS} rounds in {:.1} s, {torn_rounds} with the tail torn, durable end {durable_end}; \
         state at kill: {at_kill:?}",
        started.elapsed().as_secs_f64()
    );
}

/// Each segment holds only offsets from its base to the next segment's: a clean (or its
/// recovery) that left a replaced segment beside the copy replacing it would overlap them.
fn check_segments(log: &strom_log::Log, ctx: &str) {
    let bases = log.segment_base_offsets();
    for (i, &base) in bases.iter().enumerate() {
        let next = bases.get(i + 1).copied().unwrap_or(i64::MAX);
        assert!(base < next, "{ctx}: segment bases {bases:?}");
        let info = log.read(base, 1 << 30, None).unwrap();
        let Some(slice) = info.slice else { continue };
        let bytes = slice.read_to_vec().unwrap();
        let mut prev = base - 1;
        for (h, _) in split(&bytes).unwrap_or_else(|e| panic!("{ctx}: segment {base}: {e}")) {
            assert!(
                h.base_offset > prev && h.last_offset() < next,
                "{ctx}: segment {base} (next {next}) holds a batch {}..={} after offset {prev}: \
                 segments overlap (bases {bases:?})",
                h.base_offset,
                h.last_offset()
            );
            prev = h.last_offset();
        }
    }
}

/// Reads the whole log as a consumer does and checks it: whole valid batches, offsets
/// strictly increasing, every record the one appended at its offset. Returns, per key, the
/// offset of its latest record and whether that is a tombstone, and the number of records.
fn check_served(log: &strom_log::Log, ctx: &str) -> (BTreeMap<Vec<u8>, (i64, bool)>, usize) {
    let batches =
        read_batches(log, log.log_start_offset()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let mut latest = BTreeMap::new();
    let mut count = 0;
    let mut next_offset = 0i64;
    let mut scratch = Vec::new();
    for b in &batches {
        let h = BatchHeader::parse(b).unwrap();
        assert!(
            h.base_offset >= next_offset,
            "{ctx}: batch at {} overlaps the one before (ending at {next_offset})",
            h.base_offset
        );
        let recs = records::decode_any(b, &mut scratch, 1 << 24)
            .unwrap_or_else(|e| panic!("{ctx}: batch at {}: {e}", h.base_offset));
        let mut prev = h.base_offset - 1;
        for r in &recs {
            assert!(
                r.offset > prev && r.offset <= h.last_offset(),
                "{ctx}: record offset {} out of order in batch {}..={}",
                r.offset,
                h.base_offset,
                h.last_offset()
            );
            prev = r.offset;
            let (key, value, header) = expected(r.offset);
            assert_eq!(r.key, Some(key.as_slice()), "{ctx}: key at {}", r.offset);
            assert_eq!(r.value, value.as_deref(), "{ctx}: value at {}", r.offset);
            assert_eq!(
                r.headers,
                vec![(b"o".as_slice(), Some(header.as_slice()))],
                "{ctx}: headers at {}",
                r.offset
            );
            latest.insert(key, (r.offset, value.is_none()));
            count += 1;
        }
        next_offset = h.next_offset();
    }
    assert!(
        next_offset <= log.log_end_offset(),
        "{ctx}: records served past the log end"
    );
    (latest, count)
}

/// Models a power cut: the active segment keeps its durable batches, but everything after
/// them is cut at a random byte (as `tests/crash.rs` does).
fn lose_unsynced_bytes(pdir: &Path, durable_end: i64, next: &mut impl FnMut(u64) -> u64) {
    let Ok(entries) = std::fs::read_dir(pdir) else {
        return; // not created yet
    };
    let mut logs: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let Some(active) = logs.pop() else { return };
    let mut bytes = std::fs::read(&active).unwrap();
    let mut keep = 0usize;
    let mut pos = 0usize;
    while let Ok(h) = BatchHeader::parse(bytes.get(pos..).unwrap_or(&[])) {
        if pos + h.size() > bytes.len() {
            break;
        }
        pos += h.size();
        if h.last_offset() < durable_end {
            keep = pos;
        }
    }
    let cut = keep + next((bytes.len() - keep) as u64 + 1) as usize;
    bytes.truncate(cut);
    std::fs::write(&active, bytes).unwrap();
}
