//! Crash test: a child process appends and waits for durability in a loop, printing each
//! offset the log reported durable; the parent kills it with SIGKILL at random moments and,
//! half the time, also throws away bytes past the durable point the way a power cut may
//! (cut at a random byte, sometimes followed by junk). After every reopen, every batch
//! reported durable must be present and byte-identical, and only whole, valid batches are
//! served. The seed is printed; `STROM_CRASH_SEED` replays a run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strom_log::testing::{batch, value_for};
use strom_log::{LogConfig, LogDir, LogDirOptions};
use strom_proto::batch::{set_base_offset, split};

const RECORDS_PER_BATCH: i64 = 4;
const ROUNDS: u64 = 30;
const CHILD_ENV: &str = "STROM_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024,
        segment_index_bytes: 8 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// The batch with sequence number `seq`, as stored at offset `seq * RECORDS_PER_BATCH`.
fn expected_batch(seq: u64) -> Vec<u8> {
    let size = 50 + (value_for(seq, 1)[0] as usize) * 8;
    let mut b = batch(seq, RECORDS_PER_BATCH as usize, size, seq as i64);
    set_base_offset(&mut b, seq as i64 * RECORDS_PER_BATCH);
    b
}

/// With `syncfs` on, so that cycles of two logs take that path (one log alone: fsync).
fn open(path: &Path) -> LogDir {
    let options = LogDirOptions {
        syncfs: true,
        ..LogDirOptions::default()
    };
    LogDir::open(path, options, &|_| config()).unwrap()
}

/// The child's loop; a no-op unless the parent started this test binary as the child.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = open(Path::new(&path));
    let log = match dir.get("crash-0") {
        Some(log) => log,
        None => dir.create("crash", 0, config()).unwrap(),
    };
    // A second partition written at the same time, so that flush cycles often hold two
    // logs and take the one-`syncfs` path (its data is not checked; crash-0's is).
    let side = match dir.get("side-0") {
        Some(log) => log,
        None => dir.create("side", 0, config()).unwrap(),
    };
    std::thread::spawn(move || {
        let mut i = 0u64;
        loop {
            let info = side.append(&mut batch(i, 2, 300, 0)).unwrap();
            side.wait_durable(info.last_offset).unwrap();
            i += 1;
        }
    });
    let mut seq = (log.log_end_offset() / RECORDS_PER_BATCH) as u64;
    loop {
        // A few appends per durability wait, so waiters share fsyncs as producers' do.
        let mut last = 0;
        for _ in 0..1 + seq % 4 {
            let mut b = expected_batch(seq);
            let info = log.append(&mut b).unwrap();
            assert_eq!(info.first_offset, seq as i64 * RECORDS_PER_BATCH);
            last = info.last_offset;
            seq += 1;
        }
        let durable = log.wait_durable(last).unwrap();
        println!("{durable}");
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_durable() {
    let seed = std::env::var("STROM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 ^ 0x5eed);
    println!("crash test seed {seed} (STROM_CRASH_SEED={seed} replays it)");
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut max_durable = 0i64;
    let mut torn_rounds = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reported = Arc::new(Mutex::new(0i64));
        let stdout = child.stdout.take().unwrap();
        let sink = reported.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(d) = line.trim().parse::<i64>() {
                    let mut r = sink.lock().unwrap();
                    *r = (*r).max(d);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(30 + next(200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let durable = *reported.lock().unwrap();
        max_durable = max_durable.max(durable);

        if next(2) == 0 {
            torn_rounds += 1;
            lose_unsynced_bytes(tmp.path(), max_durable, &mut next);
        }

        let dir = open(tmp.path());
        let log = dir.get("crash-0").expect("the partition survives");
        assert!(
            log.log_end_offset() >= max_durable,
            "round {round}: log end {} < durable {max_durable} (seed {seed})",
            log.log_end_offset()
        );
        let mut offset = 0i64;
        while offset < log.log_end_offset() {
            let slice = log.read(offset, 256 * 1024, None).unwrap().slice.unwrap();
            let bytes = slice.read_to_vec().unwrap();
            for (h, b) in split(&bytes)
                .unwrap_or_else(|e| panic!("round {round}: bad batch served: {e} (seed {seed})"))
            {
                assert_eq!(h.base_offset, offset, "round {round}: gap (seed {seed})");
                let seq = (offset / RECORDS_PER_BATCH) as u64;
                assert_eq!(
                    b,
                    expected_batch(seq),
                    "round {round}: batch {seq} differs (seed {seed})"
                );
                offset = h.next_offset();
            }
        }
        // Alternate clean and unclean closes between rounds.
        if next(2) == 0 {
            drop(log);
            dir.close().unwrap();
        }
    }
    assert!(max_durable > 0, "the child never reported durable data");
    println!("{ROUNDS} rounds, {torn_rounds} with bytes past the durable point destroyed, {max_durable} offsets durable");
}

/// Models a power cut: the active segment keeps its durable batches, but everything after
/// them is cut at a random byte, and sometimes junk follows.
fn lose_unsynced_bytes(path: &Path, durable: i64, next: &mut impl FnMut(u64) -> u64) {
    let pdir = path.join("crash-0");
    let mut logs: Vec<_> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let Some(active) = logs.pop() else { return };
    let mut bytes = std::fs::read(&active).unwrap();
    let mut durable_end = 0usize;
    let mut pos = 0usize;
    while let Ok(h) = strom_proto::BatchHeader::parse(&bytes[pos..]) {
        if pos + h.size() > bytes.len() {
            break;
        }
        pos += h.size();
        if h.last_offset() < durable {
            durable_end = pos;
        }
    }
    let cut = durable_end + next((bytes.len() - durable_end) as u64 + 1) as usize;
    bytes.truncate(cut);
    if next(2) == 0 {
        bytes.extend((0..next(300)).map(|i| (i * 37) as u8));
    }
    std::fs::write(&active, bytes).unwrap();
}
