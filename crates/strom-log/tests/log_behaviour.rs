//! The log's behaviour through its public API, on real files in a temporary directory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use strom_log::testing::{batch, small_config};
use strom_log::{LogConfig, LogDir, LogDirOptions, LogError, ManualClock};
use strom_proto::batch::{split, validate};
use strom_proto::TimestampType;

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        }
    }

    fn open(&self, config: LogConfig) -> LogDir {
        let options = LogDirOptions {
            clock: self.clock.clone(),
            ..LogDirOptions::default()
        };
        LogDir::open(self.dir.path(), options, &move |_| config.clone()).unwrap()
    }
}

/// Reads every batch from `offset` to the end, one read call per step.
fn read_all(log: &strom_log::Log, offset: i64) -> Vec<Vec<u8>> {
    strom_log::testing::read_batches(log, offset).unwrap()
}

#[test]
fn append_assigns_offsets_and_reads_back_byte_identical() {
    let f = Fixture::new();
    let dir = f.open(LogConfig::default());
    let log = dir.create("orders", 0, LogConfig::default()).unwrap();
    let mut written = Vec::new();
    for i in 0..10 {
        let mut b = batch(i, 5, 100, 1_000 + i as i64);
        let info = log.append(&mut b).unwrap();
        assert_eq!(info.first_offset, i as i64 * 5);
        assert_eq!(info.last_offset, i as i64 * 5 + 4);
        assert_eq!(info.record_count, 5);
        written.push(b);
    }
    assert_eq!(log.log_end_offset(), 50);
    assert_eq!(read_all(&log, 0), written);
    // A fetch from inside a batch returns that whole batch first.
    let info = log.read(12, 1, None).unwrap();
    let bytes = info.slice.unwrap().read_to_vec().unwrap();
    assert_eq!(bytes, written[2], "offset 12 lives in the batch at 10");
    assert!(dir
        .path()
        .join("orders-0/00000000000000000000.log")
        .exists());
}

#[test]
fn a_read_says_where_its_reader_goes_on() {
    let f = Fixture::new();
    let small_index = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let dir = f.open(small_index.clone());
    let log = dir.create("t", 0, small_index).unwrap();
    let mut one = 0;
    for i in 0..20 {
        let mut b = batch(i, 2, 300, 0);
        one = b.len() as u64;
        log.append(&mut b).unwrap();
    }
    // Limited by max_bytes (the index walked), by the end, by a bound inside a batch, and
    // a batch larger than max_bytes.
    for (offset, max, bound, next) in [
        (0, 3 * one + 7, None, 6),
        (4, 1 << 20, None, 40),
        (4, 1 << 20, Some(9), 10),
        (4, 1 << 20, Some(8), 8),
        (6, 1, None, 8),
        (7, 1, None, 8),
    ] {
        let info = log.read(offset, max, bound).unwrap();
        assert_eq!(info.next_offset, next, "read({offset}, {max}, {bound:?})");
    }
    assert_eq!(log.read(40, 100, None).unwrap().next_offset, 40);
}

#[test]
fn read_returns_whole_batches_within_max_bytes_and_bound() {
    let f = Fixture::new();
    let dir = f.open(LogConfig::default());
    let log = dir.create("t", 0, LogConfig::default()).unwrap();
    let mut sizes = Vec::new();
    for i in 10..30 {
        let mut b = batch(i, 2, 300, 0);
        sizes.push(b.len() as u64);
        log.append(&mut b).unwrap();
    }
    let one = sizes[0];
    for max in [1, one - 1, one, one + 1, 3 * one + 7, 1 << 20] {
        let slice = log.read(0, max, None).unwrap().slice.unwrap();
        let want = (max / one).clamp(1, 20) * one;
        assert_eq!(slice.len, want, "max_bytes {max}");
        validate_all(&slice.read_to_vec().unwrap());
    }
    let slice = log.read(4, 1 << 20, Some(9)).unwrap().slice.unwrap();
    let bytes = slice.read_to_vec().unwrap();
    let batches = split(&bytes).unwrap();
    assert_eq!(batches.first().unwrap().0.base_offset, 4);
    assert_eq!(
        batches.last().unwrap().0.base_offset,
        8,
        "the batch holding 9 is past the bound"
    );
    assert!(log.read(10, 100, Some(10)).unwrap().slice.is_none());
    assert!(
        log.read(40, 100, None).unwrap().slice.is_none(),
        "log end: empty"
    );
    assert!(matches!(
        log.read(41, 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

fn validate_all(bytes: &[u8]) {
    for (_, b) in split(bytes).unwrap() {
        validate(b).unwrap();
    }
}

#[test]
fn corrupt_truncated_or_oversized_batches_leave_the_log_untouched() {
    let f = Fixture::new();
    let dir = f.open(LogConfig::default());
    let config = LogConfig {
        max_message_bytes: 2_000,
        ..LogConfig::default()
    };
    let log = dir.create("t", 0, config).unwrap();
    log.append(&mut batch(1, 1, 10, 0)).unwrap();
    let size = log.size_bytes();

    let mut bad = batch(2, 3, 10, 0);
    let n = bad.len();
    bad[n - 3] ^= 1;
    assert!(matches!(
        log.append(&mut bad),
        Err(LogError::InvalidBatch(_))
    ));

    let mut two = batch(3, 1, 10, 0);
    let good_len = two.len();
    two.extend(batch(4, 1, 10, 0));
    two.truncate(good_len + 30);
    assert!(
        matches!(log.append(&mut two), Err(LogError::InvalidBatch(_))),
        "one bad batch refuses the set"
    );

    assert!(matches!(
        log.append(&mut batch(5, 1, 3_000, 0)),
        Err(LogError::BatchTooLarge { .. })
    ));
    assert!(matches!(
        log.append(&mut []),
        Err(LogError::InvalidBatch(_))
    ));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn segments_roll_on_size_and_indexes_are_preallocated_then_trimmed() {
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("t", 3, small_config()).unwrap();
    for i in 0..100 {
        log.append(&mut batch(i, 4, 400, 0)).unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    let pdir = dir.path().join("t-3");
    for (i, base) in bases.iter().enumerate() {
        let log_file = pdir.join(format!("{base:020}.log"));
        assert!(std::fs::metadata(&log_file).unwrap().len() <= 64 * 1024);
        let index_len = std::fs::metadata(pdir.join(format!("{base:020}.index")))
            .unwrap()
            .len();
        let time_len = std::fs::metadata(pdir.join(format!("{base:020}.timeindex")))
            .unwrap()
            .len();
        if i + 1 == bases.len() {
            assert_eq!(index_len, 4096, "active index preallocated");
            assert_eq!(time_len, 4092, "rounded down to whole 12-byte entries");
        } else {
            assert!(
                index_len > 0 && index_len < 4096 && index_len.is_multiple_of(8),
                "closed index trimmed: {index_len}"
            );
            assert!(time_len > 0 && time_len.is_multiple_of(12));
        }
    }
    assert_eq!(read_all(&log, 0).len(), 100);
    // Every offset can be found, across segment boundaries.
    for offset in (0..400).step_by(7) {
        let slice = log.read(offset, 1, None).unwrap().slice.unwrap();
        let h = validate(&slice.read_to_vec().unwrap()).unwrap();
        assert!(h.base_offset <= offset && offset <= h.last_offset());
    }
}

#[test]
fn segments_roll_on_segment_ms() {
    let f = Fixture::new();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let dir = f.open(config.clone());
    let log = dir.create("t", 0, config).unwrap();
    log.append(&mut batch(1, 1, 10, 10_000)).unwrap();
    log.append(&mut batch(2, 1, 10, 10_500)).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut batch(3, 1, 10, 11_001)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn retention_by_time_and_size_deletes_closed_segments_only() {
    let f = Fixture::new();
    let now = 1_700_000_000_000i64;
    let config = LogConfig {
        retention_ms: 60_000,
        ..small_config()
    };
    let dir = f.open(config.clone());
    let log = dir.create("t", 0, config.clone()).unwrap();
    // Old data, then fresh data.
    for i in 0..40 {
        log.append(&mut batch(i, 4, 400, now - 120_000)).unwrap();
    }
    log.roll().unwrap();
    for i in 0..40 {
        log.append(&mut batch(i, 4, 400, now)).unwrap();
    }
    let before = log.segment_count();
    let deleted = log.apply_retention().unwrap();
    assert!(deleted >= 2, "old segments deleted: {deleted}");
    assert_eq!(log.log_start_offset(), 160);
    assert_eq!(log.segment_count(), before - deleted);
    assert!(matches!(
        log.read(0, 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, 160).len(), 40);

    // retention.bytes: keep at most ~one segment, the active one is never deleted.
    log.set_config(LogConfig {
        retention_bytes: 1,
        ..config
    })
    .unwrap();
    log.apply_retention().unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 320);
    f.clock.advance(1_000_000_000);
    log.apply_retention().unwrap();
    assert_eq!(log.segment_count(), 1, "the active segment stays");
}

#[test]
fn delete_records_moves_the_start_and_survives_reopen() {
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("t", 0, small_config()).unwrap();
    for i in 0..60 {
        log.append(&mut batch(i, 4, 400, 0)).unwrap();
    }
    let segments = log.segment_count();
    let second = log.segment_base_offsets()[1];
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    assert_eq!(
        log.segment_count(),
        segments,
        "a segment with live records stays"
    );
    assert!(matches!(
        log.read(4, 1, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let first = log
        .read(5, 1, None)
        .unwrap()
        .slice
        .unwrap()
        .read_to_vec()
        .unwrap();
    assert_eq!(
        validate(&first).unwrap().base_offset,
        4,
        "the batch holding 5 is served whole"
    );
    assert_eq!(log.delete_records_before(second + 1).unwrap(), second + 1);
    assert_eq!(
        log.segment_count(),
        segments - 1,
        "whole segments below the start are gone"
    );
    assert!(matches!(
        log.delete_records_before(241),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.delete_records_before(50).unwrap(),
        second + 1,
        "never moves back"
    );
    drop(log);
    drop(dir); // unclean: the checkpoint written by delete_records_before is what counts
    let dir = f.open(small_config());
    let log = dir.get("t-0").unwrap();
    assert_eq!(log.log_start_offset(), second + 1);
    assert_eq!(log.log_end_offset(), 240);
}

#[test]
fn truncate_to_removes_batches_across_segments() {
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("t", 0, small_config()).unwrap();
    let mut written = Vec::new();
    for i in 0..80 {
        let mut b = batch(i, 4, 400, i as i64);
        log.append(&mut b).unwrap();
        written.push(b);
    }
    log.truncate_to(130).unwrap(); // inside the batch 128..=131: that batch goes too
    assert_eq!(log.log_end_offset(), 128);
    assert_eq!(read_all(&log, 0), written[..32].to_vec());
    let mut b = batch(99, 4, 400, 0);
    assert_eq!(log.append(&mut b).unwrap().first_offset, 128);
    log.truncate_to(0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.append(&mut batch(1, 1, 1, 0)).unwrap().first_offset, 0);
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("t", 0, small_config()).unwrap();
    // Batch i holds records at timestamps 1000*i + 0..4.
    for i in 0..50 {
        log.append(&mut batch(i, 4, 300, 1_000 * i as i64)).unwrap();
    }
    let at = |ts| {
        log.offset_for_timestamp(ts)
            .unwrap()
            .map(|t| (t.offset, t.timestamp))
    };
    assert_eq!(at(0), Some((0, 0)));
    assert_eq!(at(-5), Some((0, 0)));
    assert_eq!(at(7_002), Some((30, 7_002)), "a record inside the batch");
    assert_eq!(at(7_004), Some((32, 8_000)), "next batch");
    assert_eq!(at(49_003), Some((199, 49_003)));
    assert_eq!(at(49_004), None);
    let max = log.max_timestamp().unwrap().unwrap();
    assert_eq!((max.timestamp, max.offset), (49_003, 199));
    // The record carrying the max, not the end of its batch (KAFKA-16310).
    let mut b = strom_proto::BatchBuilder::new(100_000);
    for ts in [100_100, 100_400, 100_250] {
        b.push(None, Some(b"v"), ts);
    }
    log.append(&mut b.build()).unwrap();
    let max = log.max_timestamp().unwrap().unwrap();
    assert_eq!((max.timestamp, max.offset), (100_400, 201));
}

#[test]
fn log_append_time_stamps_batches_with_the_broker_clock() {
    let f = Fixture::new();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let dir = f.open(config.clone());
    let log = dir.create("t", 0, config).unwrap();
    let mut b = batch(1, 3, 10, 5);
    let info = log.append(&mut b).unwrap();
    assert_eq!(info.log_append_time_ms, Some(1_700_000_000_000));
    let stored = read_all(&log, 0).remove(0);
    let h = validate(&stored).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, 1_700_000_000_000);
    assert_eq!(stored, b, "the caller's buffer holds what was stored");
}

#[test]
fn waiters_for_durability_share_fsyncs() {
    let f = Fixture::new();
    let dir = f.open(LogConfig::default());
    let log = dir.create("t", 0, LogConfig::default()).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let n = 2_000;
    for i in 0..n {
        let info = log.append(&mut batch(i, 1, 100, 0)).unwrap();
        let done = done.clone();
        log.on_durable(
            info.last_offset,
            Box::new(move |r| {
                assert!(r.unwrap() > info.last_offset);
                done.fetch_add(1, Ordering::SeqCst);
            }),
        );
    }
    assert_eq!(log.wait_durable(n as i64 - 1).unwrap(), n as i64);
    while done.load(Ordering::SeqCst) < n as usize {
        std::thread::yield_now();
    }
    assert!(log.durable_offset() >= n as i64);
    assert!(
        log.flush_count() < n as i64 / 4,
        "{n} waiters took {} fsyncs",
        log.flush_count()
    );
    assert!(matches!(
        log.wait_durable(n as i64 + 5),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

/// Many partitions waiting at once: with `syncfs` (`strom.log.flush.syncfs`) a cycle syncs the file system
/// once for all of them, without it each log's files; either way every waiter learns the
/// offset it waited for is durable, and closed segments count as synced.
#[test]
fn many_logs_waiting_together_are_made_durable_with_or_without_syncfs() {
    for syncfs in [true, false] {
        let f = Fixture::new();
        let options = LogDirOptions {
            clock: f.clock.clone(),
            syncfs,
            ..LogDirOptions::default()
        };
        let config = small_config();
        let cfg = config.clone();
        let dir = LogDir::open(f.dir.path(), options, &move |_| cfg.clone()).unwrap();
        let logs: Vec<_> = (0..6)
            .map(|p| dir.create("many", p, config.clone()).unwrap())
            .collect();
        let done = Arc::new(AtomicUsize::new(0));
        let per_log = 300u64;
        for i in 0..per_log {
            for log in &logs {
                let info = log.append(&mut batch(i, 2, 200, 0)).unwrap();
                let done = done.clone();
                log.on_durable(
                    info.last_offset,
                    Box::new(move |r| {
                        assert!(r.unwrap() > info.last_offset);
                        done.fetch_add(1, Ordering::SeqCst);
                    }),
                );
            }
        }
        for log in &logs {
            let end = log.log_end_offset();
            assert_eq!(log.wait_durable(end - 1).unwrap(), end, "syncfs {syncfs}");
        }
        while done.load(Ordering::SeqCst) < 6 * per_log as usize {
            std::thread::yield_now();
        }
        drop(logs);
        dir.close().unwrap();
        // A clean reopen needs no recovery: everything was synced.
        let cfg = config.clone();
        let dir = LogDir::open(f.dir.path(), LogDirOptions::default(), &move |_| {
            cfg.clone()
        })
        .unwrap();
        assert!(dir.was_clean_shutdown());
        assert_eq!(
            dir.get("many-5").unwrap().log_end_offset(),
            2 * per_log as i64
        );
    }
}

#[test]
fn flush_messages_and_flush_ms_make_data_durable_without_waiters() {
    let f = Fixture::new();
    let config = LogConfig {
        flush_messages: 10,
        ..LogConfig::default()
    };
    let dir = f.open(config.clone());
    let log = dir.create("t", 0, config).unwrap();
    for i in 0..10 {
        log.append(&mut batch(i, 1, 10, 0)).unwrap();
    }
    wait_until(|| log.durable_offset() == 10);

    let config = LogConfig {
        flush_ms: 50,
        ..LogConfig::default()
    };
    let log2 = dir.create("t", 1, config.clone()).unwrap();
    log2.append(&mut batch(1, 1, 10, 0)).unwrap();
    f.clock.advance(10);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(log2.durable_offset(), 0, "flush.ms not reached yet");
    f.clock.advance(100);
    wait_until(|| log2.durable_offset() == 1);

    // A log given a finite flush.ms later is flushed by it too, and no more once it is
    // infinite again.
    let log3 = dir.create("t", 2, LogConfig::default()).unwrap();
    log3.set_config(config.clone()).unwrap();
    log3.append(&mut batch(1, 1, 10, 0)).unwrap();
    f.clock.advance(100);
    wait_until(|| log3.durable_offset() == 1);
    log3.set_config(LogConfig::default()).unwrap();
    log3.append(&mut batch(2, 1, 10, 0)).unwrap();
    f.clock.advance(100);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(log3.durable_offset(), 1, "flush.ms is infinite again");
}

fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("condition not reached in 5 s");
}

#[test]
fn clean_reopen_scans_nothing_and_unclean_reopen_recovers() {
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("t", 0, small_config()).unwrap();
    let mut written = Vec::new();
    for i in 0..60 {
        let mut b = batch(i, 4, 400, i as i64);
        log.append(&mut b).unwrap();
        written.push(b);
    }
    drop(log);
    dir.close().unwrap();
    assert!(f.dir.path().join(".clean-shutdown").exists());

    let dir = f.open(small_config());
    assert!(dir.was_clean_shutdown());
    assert!(
        !f.dir.path().join(".clean-shutdown").exists(),
        "removed on open"
    );
    let log = dir.get("t-0").unwrap();
    assert_eq!(log.recovery_report(), &Default::default());
    assert_eq!(log.log_end_offset(), 240);
    assert_eq!(read_all(&log, 0), written);
    let mut b = batch(60, 4, 400, 60);
    log.append(&mut b).unwrap();
    written.push(b);
    drop(log);
    drop(dir); // crash: no marker

    let dir = f.open(small_config());
    assert!(!dir.was_clean_shutdown());
    let log = dir.get("t-0").unwrap();
    assert!(log.recovery_report().segments_recovered >= 1);
    assert!(
        log.recovery_report().damage.is_empty(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(read_all(&log, 0), written);
}

#[test]
fn log_files_alone_reopen_with_rebuilt_indexes() {
    // What an operator gets by copying a Kafka partition's .log files: no indexes, no
    // checkpoints, no marker.
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("copied", 0, small_config()).unwrap();
    let mut written = Vec::new();
    for i in 0..40 {
        let mut b = batch(i, 4, 400, i as i64);
        log.append(&mut b).unwrap();
        written.push(b);
    }
    drop(log);
    dir.close().unwrap();
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::remove_file(p).unwrap();
        }
    }
    for entry in std::fs::read_dir(f.dir.path().join("copied-0")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e != "log") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let dir = f.open(small_config());
    let log = dir.get("copied-0").unwrap();
    assert_eq!(read_all(&log, 0), written);
    for offset in (0..160).step_by(5) {
        let slice = log.read(offset, 1, None).unwrap().slice.unwrap();
        let h = validate(&slice.read_to_vec().unwrap()).unwrap();
        assert!(h.base_offset <= offset && offset <= h.last_offset());
    }
}

#[test]
fn deleting_a_partition_removes_its_directory() {
    let f = Fixture::new();
    let dir = f.open(LogConfig::default());
    let log = dir.create("gone", 2, LogConfig::default()).unwrap();
    log.append(&mut batch(1, 1, 10, 0)).unwrap();
    assert!(matches!(
        dir.create("gone", 2, LogConfig::default()),
        Err(LogError::AlreadyExists(_))
    ));
    dir.delete("gone-2").unwrap();
    assert!(!f.dir.path().join("gone-2").exists());
    assert!(std::fs::read_dir(f.dir.path())
        .unwrap()
        .all(|e| !e.unwrap().path().is_dir()));
    assert!(matches!(
        log.append(&mut batch(1, 1, 10, 0)),
        Err(LogError::NotFound(_))
    ));
    assert!(dir.get("gone-2").is_none());
    assert!(matches!(dir.delete("gone-2"), Err(LogError::NotFound(_))));
}

#[test]
fn readers_run_beside_the_writer() {
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("t", 0, small_config()).unwrap();
    let n = 400i64;
    std::thread::scope(|s| {
        for _ in 0..3 {
            let log = &log;
            s.spawn(move || {
                let mut offset = 0;
                while offset < n * 2 {
                    let info = log.read(offset, 4096, None).unwrap();
                    let Some(slice) = info.slice else { continue };
                    let bytes = slice.read_to_vec().unwrap();
                    for (h, b) in split(&bytes).unwrap() {
                        validate(b).unwrap();
                        assert!(h.base_offset <= offset.max(h.base_offset));
                        offset = h.next_offset();
                    }
                }
            });
        }
        for i in 0..n as u64 {
            log.append(&mut batch(i, 2, 200, 0)).unwrap();
        }
    });
}

#[test]
fn aborted_transactions_are_indexed_per_segment_truncated_and_reopened() {
    use strom_log::txn_index::AbortedTxn;
    let txn = |pid: i64, first: i64, last: i64| AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: first,
    };
    let f = Fixture::new();
    let dir = f.open(small_config());
    let log = dir.create("t", 0, small_config()).unwrap();
    let mut aborts = Vec::new();
    for i in 0..60 {
        let info = log.append(&mut batch(i, 4, 400, 0)).unwrap();
        if i % 10 == 9 {
            let a = txn(i as i64, info.first_offset - 8, info.last_offset);
            log.append_aborted(a).unwrap();
            aborts.push(a);
        }
    }
    assert!(log.segment_count() > 1, "the aborts span segments");
    assert_eq!(log.aborted_txns(0, i64::MAX), aborts);
    assert_eq!(
        log.aborted_txns(80, 120),
        vec![aborts[2]],
        "only the overlapping"
    );
    log.truncate_to(aborts[3].last_offset).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), aborts[..3].to_vec());
    drop(log);
    drop(dir); // unclean: the entries were synced as they were appended
    let dir = f.open(small_config());
    let log = dir.get("t-0").unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), aborts[..3].to_vec());
    log.truncate_to(0).unwrap();
    assert!(log.aborted_txns(0, i64::MAX).is_empty());
}

/// Reopened, the partitions of a topic share one configuration (one allocation, not one
/// each), each log is named after its directory, and a clean open keeps no report.
#[test]
fn a_reopened_dir_shares_configs_and_names_logs_by_directory() {
    let f = Fixture::new();
    let dir = f.open(small_config());
    for p in 0..3 {
        dir.create("orders", p, small_config()).unwrap();
    }
    dir.close().unwrap();
    let dir = f.open(small_config());
    let logs: Vec<_> = (0..3)
        .map(|p| dir.get(&format!("orders-{p}")).unwrap())
        .collect();
    for (p, log) in logs.iter().enumerate() {
        assert_eq!(log.name(), format!("orders-{p}"));
        assert_eq!(log.recovery_report(), &Default::default());
        assert!(
            Arc::ptr_eq(&log.config(), &logs[0].config()),
            "partition {p}"
        );
    }
}
