//! Log compaction on real files: what survives a clean, tombstones and their delete horizon,
//! compressed and idempotent batches, merging of small segments, the retention policy of
//! compacted logs, readers across a swap, a crash at every step of the swap, and the
//! cleaner thread.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use strom_log::cleaner::SwapStep;
use strom_log::testing::read_batches;
use strom_log::{CleanOptions, CleanerOptions, Log, LogConfig, LogDir, LogDirOptions, ManualClock};
use strom_proto::{records, BatchBuilder, Compression};

const NOW_MS: i64 = 1_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 4096,
        index_interval_bytes: 256,
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

fn open_with(path: &Path, clock: &Arc<ManualClock>, config: LogConfig) -> (LogDir, Arc<Log>) {
    let options = LogDirOptions {
        clock: clock.clone(),
        ..LogDirOptions::default()
    };
    let c = config.clone();
    let dir = LogDir::open(path, options, &move |_| c.clone()).unwrap();
    let log = match dir.get("t-0") {
        Some(l) => l,
        None => dir.create("t", 0, config).unwrap(),
    };
    (dir, log)
}

fn open(path: &Path, clock: &Arc<ManualClock>) -> (LogDir, Arc<Log>) {
    open_with(path, clock, config())
}

/// A record as read back: offset, timestamp, key, value, headers.
type Rec = (
    i64,
    i64,
    Vec<u8>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

fn append(log: &Log, records: &[(&str, Option<&str>)], codec: Compression) -> i64 {
    let mut b = BatchBuilder::new(NOW_MS);
    for (i, (k, v)) in records.iter().enumerate() {
        b.push_with_headers(
            Some(k.as_bytes()),
            v.map(str::as_bytes),
            &[(b"h", Some(k.as_bytes()))],
            NOW_MS + i as i64,
        );
    }
    let mut bytes = b.build_compressed(codec).unwrap();
    log.append(&mut bytes).unwrap().first_offset
}

fn all_records(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    for b in read_batches(log, log.log_start_offset()).unwrap() {
        let mut scratch = Vec::new();
        for r in records::decode_any(&b, &mut scratch, 1 << 24).unwrap() {
            out.push((
                r.offset,
                r.timestamp,
                r.key.unwrap_or_default().to_vec(),
                r.value.map(<[u8]>::to_vec),
                r.headers
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                    .collect(),
            ));
        }
    }
    out
}

/// The latest record of every key, from a list of records in offset order.
fn latest(records: &[Rec]) -> BTreeMap<Vec<u8>, Rec> {
    records.iter().map(|r| (r.2.clone(), r.clone())).collect()
}

fn values(log: &Log) -> BTreeMap<String, Option<String>> {
    all_records(log)
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.2).unwrap(),
                r.3.map(|v| String::from_utf8(v).unwrap()),
            )
        })
        .collect()
}

/// Appends rounds of updates to keys k0..k{keys}, rolling every `per_segment` rounds.
fn fill(log: &Log, rounds: usize, keys: usize, codec: Compression) {
    for round in 0..rounds {
        let recs: Vec<(String, String)> = (0..keys)
            .map(|k| (format!("k{k}"), format!("v{round}-{k}")))
            .collect();
        let refs: Vec<(&str, Option<&str>)> = recs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        append(log, &refs, codec);
        if round % 3 == 2 {
            log.roll().unwrap();
        }
    }
}

/// A record is dropped only for a newer one that is durable: cleaning first syncs what it
/// reads, so a power cut after the clean cannot take the newer record and leave the old one
/// gone. (Found by reading the code while writing clean_crash.rs; a SIGKILL cannot show it.)
#[test]
fn a_record_is_dropped_only_for_a_durable_newer_one() {
    for _ in 0..20 {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let (_dir, log) = open(tmp.path(), &clock);
        let old = append(&log, &[("k", Some("old"))], Compression::None);
        log.wait_durable(old).unwrap();
        log.roll().unwrap();
        let new = append(&log, &[("k", Some("new"))], Compression::None);
        log.roll().unwrap();
        log.clean(&CleanOptions::default()).unwrap();
        let kept: Vec<i64> = all_records(&log).iter().map(|r| r.0).collect();
        assert!(
            kept.contains(&old) || log.durable_offset() > new,
            "the old record was removed while the new one (offset {new}) is not durable \
             (durable offset {})",
            log.durable_offset()
        );
    }
}

#[test]
fn clean_keeps_the_latest_record_per_key_at_its_offset() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let (_dir, log) = open(tmp.path(), &clock);
        fill(&log, 12, 8, codec);
        log.roll().unwrap();
        let before = all_records(&log);
        let end = log.log_end_offset();
        let report = log.clean(&CleanOptions::default()).unwrap();
        assert!(report.records_removed > 0, "{codec:?}: {report:?}");
        let after = all_records(&log);
        assert_eq!(latest(&before), latest(&after), "{codec:?}");
        assert_eq!(after.len(), 8, "{codec:?}: one record per key");
        // Every survivor is a record of the input, unchanged, at its offset.
        for r in &after {
            assert!(before.contains(r), "{codec:?}: {r:?} was not in the input");
        }
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.log_start_offset(), 0);
        // Batches keep their codec.
        for b in read_batches(&log, 0).unwrap() {
            let h = strom_proto::batch::validate(&b).unwrap();
            if h.record_count > 0 {
                assert_eq!(h.compression(), codec);
            }
        }
    }
}

#[test]
fn the_active_segment_is_never_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (_dir, log) = open(tmp.path(), &clock);
    for i in 0..20 {
        append(&log, &[("k", Some(&format!("v{i}")))], Compression::None);
    }
    let report = log.clean(&CleanOptions::default()).unwrap();
    assert_eq!(report.segments_before, 0);
    assert_eq!(all_records(&log).len(), 20);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    assert_eq!(all_records(&log).len(), 1);
    assert_eq!(all_records(&log)[0].0, 19);
}

#[test]
fn small_cleaned_segments_are_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (_dir, log) = open(tmp.path(), &clock);
    fill(&log, 30, 4, Compression::None);
    log.roll().unwrap();
    let segments = log.segment_count();
    assert!(segments >= 10, "{segments}");
    let report = log.clean(&CleanOptions::default()).unwrap();
    assert!(report.segments_after < report.segments_before, "{report:?}");
    assert_eq!(
        log.segment_count(),
        2,
        "one cleaned segment and the active one"
    );
    assert_eq!(all_records(&log).len(), 4);
    // Offsets are still found through the rebuilt indexes, from any position.
    for offset in 0..log.log_end_offset() {
        let info = log.read(offset, 1, None).unwrap();
        let slice = info.slice.expect("a batch at or after any offset");
        let b = slice.read_to_vec().unwrap();
        let h = strom_proto::batch::validate(&b).unwrap();
        assert!(h.last_offset() >= offset);
    }
}

#[test]
fn tombstones_live_until_delete_retention_after_the_first_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (_dir, log) = open(tmp.path(), &clock);
    append(
        &log,
        &[("a", Some("1")), ("b", Some("1"))],
        Compression::None,
    );
    append(&log, &[("a", None)], Compression::None);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    let v = values(&log);
    assert_eq!(
        v.get("a"),
        Some(&None),
        "the tombstone stays after the first clean"
    );
    assert_eq!(v.get("b"), Some(&Some("1".into())));
    // New dirty data; the horizon (first clean + delete.retention.ms) has not passed.
    clock.advance(999);
    append(&log, &[("c", Some("1"))], Compression::None);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    assert_eq!(values(&log).get("a"), Some(&None));
    clock.advance(1);
    append(&log, &[("d", Some("1"))], Compression::None);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    let v = values(&log);
    assert_eq!(
        v.get("a"),
        None,
        "the tombstone is gone once its horizon passed"
    );
    assert_eq!(v.len(), 3);
}

#[test]
fn idempotent_producers_keep_their_last_batch_as_an_empty_header() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (_dir, log) = open(tmp.path(), &clock);
    let mut b = BatchBuilder::new(NOW_MS).producer(42, 3, 0);
    b.push(Some(b"k"), Some(b"old"), NOW_MS);
    b.push(Some(b"j"), Some(b"old"), NOW_MS);
    log.append(&mut b.build()).unwrap();
    let mut b = BatchBuilder::new(NOW_MS).producer(42, 3, 2);
    b.push(Some(b"k"), Some(b"mid"), NOW_MS);
    log.append(&mut b.build()).unwrap();
    // Another writer supersedes everything producer 42 wrote.
    append(
        &log,
        &[("k", Some("new")), ("j", Some("new"))],
        Compression::None,
    );
    append(&log, &[("z", Some("1"))], Compression::None);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    let batches = read_batches(&log, 0).unwrap();
    let headers: Vec<_> = batches
        .iter()
        .map(|b| strom_proto::batch::validate(b).unwrap())
        .collect();
    let p: Vec<_> = headers.iter().filter(|h| h.producer_id == 42).collect();
    assert_eq!(
        p.len(),
        1,
        "only the producer's last batch stays: {headers:?}"
    );
    assert_eq!(
        (
            p[0].base_offset,
            p[0].record_count,
            p[0].base_sequence,
            p[0].last_offset_delta
        ),
        (2, 0, 2, 0)
    );
    assert_eq!(values(&log).len(), 3);
}

#[test]
fn compacted_logs_lose_nothing_to_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let c = LogConfig {
        retention_ms: 10,
        retention_bytes: 1,
        ..config()
    };
    let (_dir, log) = open_with(tmp.path(), &clock, c.clone());
    fill(&log, 9, 4, Compression::None);
    clock.advance(1_000_000);
    assert_eq!(log.apply_retention().unwrap(), 0);
    // compact,delete: both apply.
    log.set_config(LogConfig {
        cleanup_policy_delete: true,
        ..c
    })
    .unwrap();
    assert!(log.apply_retention().unwrap() > 0);
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let c = LogConfig {
        min_compaction_lag_ms: 60_000,
        ..config()
    };
    let (_dir, log) = open_with(tmp.path(), &clock, c);
    fill(&log, 6, 4, Compression::None);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    assert_eq!(all_records(&log).len(), 24, "nothing is old enough");
    clock.advance(60_100);
    log.clean(&CleanOptions::default()).unwrap();
    assert_eq!(all_records(&log).len(), 4);
}

#[test]
fn readers_holding_a_replaced_segment_keep_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (_dir, log) = open(tmp.path(), &clock);
    fill(&log, 6, 4, Compression::None);
    log.roll().unwrap();
    let held = log.read(0, 1 << 20, None).unwrap().slice.unwrap();
    let before = held.read_to_vec().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    assert_eq!(
        held.read_to_vec().unwrap(),
        before,
        "the old file is still readable"
    );
    assert_ne!(
        log.read(0, 1 << 20, None)
            .unwrap()
            .slice
            .unwrap()
            .read_to_vec()
            .unwrap(),
        before
    );
}

#[test]
fn appends_and_reads_go_on_while_cleaning() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (_dir, log) = open(tmp.path(), &clock);
    fill(&log, 30, 16, Compression::Lz4);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cleaner = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..20 {
                log.clean(&CleanOptions::default()).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        })
    };
    let mut n = 0;
    while !done.load(std::sync::atomic::Ordering::Acquire) || n < 50 {
        append(&log, &[("k0", Some(&format!("x{n}")))], Compression::None);
        if n % 10 == 0 {
            log.roll().unwrap();
        }
        // Every read sees whole, valid batches and the newest value of k0.
        assert_eq!(values(&log).get("k0"), Some(&Some(format!("x{n}"))));
        n += 1;
    }
    cleaner.join().unwrap();
}

#[test]
fn the_cleaner_checkpoint_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let end = {
        let (dir, log) = open(tmp.path(), &clock);
        fill(&log, 9, 4, Compression::None);
        log.roll().unwrap();
        let r = log.clean(&CleanOptions::default()).unwrap();
        dir.close().unwrap();
        r.end_offset
    };
    let (_dir, log) = open(tmp.path(), &clock);
    assert_eq!(log.cleaner_checkpoint(), end);
    assert_eq!(log.cleanable().unwrap().dirty_bytes, 0);
}

/// A crash at each step of the swap (the files left as the step left them, then an open
/// without a clean shutdown) must come back with either the old segments or the cleaned
/// one: the same latest value per key, offsets unchanged, no stage files left over.
#[test]
fn a_crash_at_every_step_of_the_swap_recovers() {
    for step in [
        SwapStep::Cleaned,
        SwapStep::Swap,
        SwapStep::Deleted,
        SwapStep::Renamed,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let (before, end) = {
            let (dir, log) = open(tmp.path(), &clock);
            fill(&log, 15, 6, Compression::Gzip);
            append(&log, &[("k1", None)], Compression::None);
            log.roll().unwrap();
            append(&log, &[("tail", Some("t"))], Compression::None);
            let before = all_records(&log);
            let options = CleanOptions {
                stop_after: Some(step),
                ..CleanOptions::default()
            };
            let r = log.clean(&options).unwrap();
            assert!(r.interrupted, "{step:?}");
            let end = log.log_end_offset();
            std::mem::forget(log);
            drop(dir);
            (before, end)
        };
        let (_dir, log) = open(tmp.path(), &clock);
        let after = all_records(&log);
        assert_eq!(latest(&before), latest(&after), "{step:?}");
        assert_eq!(log.log_end_offset(), end, "{step:?}");
        for r in &after {
            assert!(before.contains(r), "{step:?}: {r:?}");
        }
        match step {
            SwapStep::Cleaned => assert_eq!(after.len(), before.len(), "rolled back"),
            _ => assert!(after.len() < before.len(), "{step:?}: rolled forward"),
        }
        let names: Vec<String> = std::fs::read_dir(tmp.path().join("t-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| n.split('.').count() == 2),
            "{step:?}: stage files left: {names:?}"
        );
        // And the log cleans normally from there.
        log.clean(&CleanOptions::default()).unwrap();
        assert_eq!(latest(&before), latest(&all_records(&log)), "{step:?}");
    }
}

/// A committed `.swap` file that turns out damaged (bit rot between the commit and the
/// crash) while the segments it replaces are all still there: the clean is rolled back
/// rather than finished with a cut-short copy.
#[test]
fn a_damaged_swap_with_its_originals_present_is_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let before = {
        let (dir, log) = open(tmp.path(), &clock);
        fill(&log, 9, 6, Compression::None);
        log.roll().unwrap();
        let before = all_records(&log);
        let options = CleanOptions {
            stop_after: Some(SwapStep::Swap),
            ..CleanOptions::default()
        };
        assert!(log.clean(&options).unwrap().interrupted);
        std::mem::forget(log);
        drop(dir);
        before
    };
    let swap = tmp.path().join("t-0/00000000000000000000.log.swap");
    let mut bytes = std::fs::read(&swap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&swap, bytes).unwrap();
    let (_dir, log) = open(tmp.path(), &clock);
    assert_eq!(all_records(&log), before);
    assert!(!swap.exists());
    assert!(!log.recovery_report().damage.is_empty());
}

#[test]
fn the_cleaner_thread_cleans_dirty_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let c = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..config()
    };
    let (dir, log) = open_with(tmp.path(), &clock, c);
    fill(&log, 12, 8, Compression::None);
    log.roll().unwrap();
    dir.start_cleaner(CleanerOptions {
        backoff_ms: 10,
        ..CleanerOptions::default()
    })
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The cleaned segment is published before the cleaner checkpoint moves past it: wait
    // for both (checking the second right after the first raced the cleaner thread).
    while all_records(&log).len() > 8 || log.cleanable().unwrap().dirty_bytes != 0 {
        assert!(std::time::Instant::now() < deadline, "not cleaned in time");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    dir.close().unwrap();
}

/// A transactional batch of producer `pid` (epoch 0, sequence `seq`).
fn append_txn(log: &Log, pid: i64, seq: i32, records: &[(&str, &str)]) -> i64 {
    let mut b = BatchBuilder::new(NOW_MS).producer(pid, 0, seq);
    for (k, v) in records {
        b.push(Some(k.as_bytes()), Some(v.as_bytes()), NOW_MS);
    }
    let mut bytes = b.build_with_attributes(strom_proto::batch::TRANSACTIONAL_BIT);
    log.append(&mut bytes).unwrap().first_offset
}

fn append_marker(log: &Log, pid: i64, commit: bool) -> i64 {
    let m = strom_proto::control::EndTxnMarker {
        commit,
        coordinator_epoch: 0,
    };
    log.append(&mut m.batch(pid, 0, NOW_MS))
        .unwrap()
        .first_offset
}

fn markers(log: &Log) -> Vec<(i64, i64)> {
    read_batches(log, log.log_start_offset())
        .unwrap()
        .iter()
        .map(|b| strom_proto::batch::validate(b).unwrap())
        .filter(|h| h.is_control())
        .map(|h| (h.producer_id, h.base_offset))
        .collect()
}

#[test]
fn aborted_records_go_and_never_replace_committed_ones_and_old_markers_go_after_a_horizon() {
    use strom_log::txn_index::AbortedTxn;
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (_dir, log) = open(tmp.path(), &clock);
    // Producer 1 commits k=committed; producer 2 writes k=aborted and aborts; producer 1
    // later writes j in a transaction still open.
    append_txn(&log, 1, 0, &[("k", "committed"), ("x", "1")]);
    let commit = append_marker(&log, 1, true);
    let first = append_txn(&log, 2, 0, &[("k", "aborted")]);
    let abort = append_marker(&log, 2, false);
    log.append_aborted(AbortedTxn {
        producer_id: 2,
        first_offset: first,
        last_offset: abort,
        last_stable_offset: abort + 1,
    })
    .unwrap();
    append(&log, &[("x", Some("2"))], Compression::None);
    log.roll().unwrap();
    let open = append_txn(&log, 1, 1, &[("j", "open"), ("x", "open")]);
    append(&log, &[("y", Some("1"))], Compression::None);
    log.roll().unwrap();
    // The open transaction bounds the cleaner: nothing from its segment on is cleaned.
    log.set_first_unstable_offset(open);
    log.clean(&CleanOptions::default()).unwrap();
    let all = all_records(&log);
    let value_of = |key: &str| {
        all.iter()
            .filter(|r| r.2 == key.as_bytes())
            .map(|r| String::from_utf8(r.3.clone().unwrap()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        value_of("k"),
        vec!["committed"],
        "the aborted record went, not the committed one"
    );
    assert_eq!(
        value_of("x"),
        vec!["2", "open"],
        "x=1 went for x=2; the open one is above the bound"
    );
    // Producer 1's commit marker still has data (k); producer 2's abort marker has none
    // left but is its producer's last batch, so it stays for the producer's state.
    assert_eq!(markers(&log), vec![(1, commit), (2, abort)]);

    // Producer 2 writes again (committed): its old abort marker may go after a horizon.
    // (Producer 1's open transaction is left above the cleaned segments.)
    log.set_first_unstable_offset(i64::MAX);
    append_txn(&log, 2, 1, &[("z", "1")]);
    append_marker(&log, 2, true);
    append(&log, &[("k", Some("plain"))], Compression::None);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    assert!(
        markers(&log).contains(&(2, abort)),
        "first clean: a horizon is set"
    );
    clock.advance(1_000);
    append(&log, &[("w", Some("1"))], Compression::None);
    log.roll().unwrap();
    log.clean(&CleanOptions::default()).unwrap();
    let after = markers(&log);
    assert!(
        !after.contains(&(2, abort)),
        "gone after the horizon: {after:?}"
    );
    assert!(
        !after.contains(&(1, commit)),
        "its transaction's records are all superseded: producer 1's commit marker goes too: {after:?}"
    );
    assert_eq!(after.len(), 1, "producer 2's last marker stays: {after:?}");
}
