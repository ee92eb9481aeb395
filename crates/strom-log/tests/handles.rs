//! Bounded descriptors and maps: many logs, each with several segments, under a pool of a
//! few descriptors and maps keep working (appends, reads, retention, the cleaner's swaps,
//! a reopen), the process never holds more than the pool allows, and running out of
//! descriptors fails the one call with `Exhausted` and never takes the dir offline.
//!
//! One test per binary: the pools and the open-file limit are the process's.

use std::sync::Arc;
use strom_log::testing::{batch, read_batches, small_config};
use strom_log::{Handles, LogDir, LogDirOptions, LogError, ManualClock};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn set_nofile(limit: u64) {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut old);
        let lim = libc::rlimit {
            rlim_max: old.rlim_max,
            ..lim
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

#[test]
fn many_logs_under_a_small_pool_and_out_of_descriptors() {
    const LOGS: u32 = 60;
    const POOL: usize = 6;
    let files = Handles::files();
    let maps = Handles::maps();
    files.set_limit(POOL);
    maps.set_limit(POOL);
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let options = || LogDirOptions {
        clock: clock.clone(),
        ..LogDirOptions::default()
    };
    let config = small_config();
    let baseline = open_fds();
    let dir = LogDir::open(tmp.path(), options(), &|_| config.clone()).unwrap();
    let logs: Vec<_> = (0..LOGS)
        .map(|p| dir.create("t", p, config.clone()).unwrap())
        .collect();
    let mut written: Vec<Vec<Vec<u8>>> = vec![Vec::new(); LOGS as usize];
    let mut most = 0;
    for round in 0..12u64 {
        for (p, log) in logs.iter().enumerate() {
            // 10 KiB batches into 64 KiB segments: several segments per log.
            let mut b = batch(round * 1000 + p as u64, 10, 1000, 1_000 + round as i64);
            log.append(&mut b).unwrap();
            written[p].push(b);
            most = most.max(open_fds());
        }
    }
    for log in &logs {
        log.wait_durable(log.log_end_offset() - 1).unwrap();
        assert!(log.segment_count() > 1, "{} rolled", log.name());
    }
    for (p, log) in logs.iter().enumerate() {
        assert_eq!(read_batches(log, 0).unwrap(), written[p], "log {p}");
        most = most.max(open_fds());
    }
    assert!(
        files.open_count() <= POOL,
        "{} files open",
        files.open_count()
    );
    assert!(maps.open_count() <= POOL, "{} maps", maps.open_count());
    // The pool, a flusher's directory or checkpoint file, a few test-harness descriptors.
    assert!(
        most <= baseline + POOL + 8,
        "{most} descriptors open (baseline {baseline})"
    );

    // Out of descriptors: the call fails with Exhausted, the dir stays online, and the
    // same call succeeds once descriptors are free again.
    let victim = &logs[0];
    set_nofile(open_fds() as u64 + 4);
    let mut hoard = Vec::new();
    let mut failed = None;
    for i in 0..50 {
        while let Ok(f) = std::fs::File::open("/dev/null") {
            hoard.push(f);
        }
        if let Err(e) = dir.create("new", i, config.clone()) {
            failed = Some((i, e));
            break;
        }
    }
    let (at, err) = failed.expect("creating logs with no descriptors left kept succeeding");
    assert!(matches!(err, LogError::Exhausted { .. }), "{err}");
    assert!(!dir.is_offline());
    // Appending to a log whose active file was closed needs a descriptor too.
    let mut b = batch(7, 1, 10, 5_000);
    match victim.append(&mut b) {
        Ok(_) => written[0].push(b),
        Err(e) => assert!(matches!(e, LogError::Exhausted { .. }), "{e}"),
    }
    assert!(!dir.is_offline());
    drop(hoard);
    set_nofile(4096);
    // The half-made partition of the failed create is taken over.
    dir.create("new", at, config.clone()).unwrap();
    let mut b = batch(8, 1, 10, 6_000);
    victim.append(&mut b).unwrap();
    written[0].push(b);
    assert_eq!(read_batches(victim, 0).unwrap(), written[0]);

    // Retention removes segments while others stay readable; a reopen finds everything.
    for log in &logs[1..] {
        log.delete_records_before(log.log_end_offset() / 2).unwrap();
        log.apply_retention().unwrap();
    }
    drop(logs);
    dir.close().unwrap();
    let dir = LogDir::open(tmp.path(), options(), &|_| config.clone()).unwrap();
    for (p, want) in written.iter().enumerate().skip(1) {
        let log = dir.get(&format!("t-{p}")).unwrap();
        let got = read_batches(&log, log.log_start_offset()).unwrap();
        assert!(
            !got.is_empty() && want.ends_with(&got),
            "log {p} after reopen"
        );
    }
    assert_eq!(
        read_batches(&dir.get("t-0").unwrap(), 0).unwrap(),
        written[0]
    );
    assert!(files.open_count() <= POOL);
}
