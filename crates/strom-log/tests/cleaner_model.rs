//! Model test of compaction: random appends of keyed records (few keys, so many repeats;
//! tombstones; every codec), rolls, cleans, clock moves and reopens (clean and crash) run
//! against the real log, checked after every step against the list of every record ever
//! appended:
//! - every record read back is one that was appended, identical in offset, timestamp, key,
//!   value and headers, and the log end offset never moves back;
//! - the latest record of every key is readable, except a tombstone, which may go only once
//!   `delete.retention.ms` has passed since the first clean that found it in a closed segment;
//! - right after a clean, the closed segments hold each key at most once.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use strom_log::testing::read_batches;
use strom_log::{CleanOptions, Clock, Log, LogConfig, LogDir, LogDirOptions, ManualClock};
use strom_proto::{records, BatchBuilder, Compression};

const DELETE_RETENTION_MS: i64 = 100;

#[derive(Debug, Clone)]
enum Op {
    /// Records as (key index, value length or tombstone, with a header), in one batch.
    Append {
        records: Vec<(u8, Option<u8>, bool)>,
        codec: u8,
    },
    Roll,
    Clean,
    Advance(u16),
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (proptest::collection::vec((0..8u8, proptest::option::weighted(0.8, 0..64u8), any::<bool>()), 1..6), 0..5u8)
            .prop_map(|(records, codec)| Op::Append { records, codec }),
        2 => Just(Op::Roll),
        2 => Just(Op::Clean),
        2 => (0..150u16).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

type Rec = (
    i64,
    i64,
    Vec<u8>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_index_bytes: 1024,
        index_interval_bytes: 128,
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..LogConfig::default()
    }
}

fn open(path: &Path, clock: &Arc<ManualClock>) -> (LogDir, Arc<Log>) {
    let options = LogDirOptions {
        clock: clock.clone(),
        ..LogDirOptions::default()
    };
    let dir = LogDir::open(path, options, &|_| config()).unwrap();
    let log = match dir.get("c-0") {
        Some(l) => l,
        None => dir.create("c", 0, config()).unwrap(),
    };
    (dir, log)
}

fn read_all(log: &Log) -> Vec<Rec> {
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

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn run(ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let (mut dir, mut log) = open(tmp.path(), &clock);
    // Every record appended, in offset order, with the time of the first clean after it.
    let mut appended: Vec<(Rec, Option<i64>)> = Vec::new();
    let mut end = 0i64;
    for op in ops {
        let mut cleaned = false;
        match op {
            Op::Append { records, codec } => {
                let now = clock.now_ms();
                let mut b = BatchBuilder::new(now);
                for (i, (k, v, with_header)) in records.iter().enumerate() {
                    let key = format!("k{k}").into_bytes();
                    let value = v.map(|n| vec![b'a' + (i as u8 % 26); n as usize]);
                    let headers: Vec<(&[u8], Option<&[u8]>)> = if *with_header {
                        vec![(b"h", Some(b"x"))]
                    } else {
                        Vec::new()
                    };
                    b.push_with_headers(Some(&key), value.as_deref(), &headers, now + i as i64);
                }
                let codec = CODECS[codec as usize % CODECS.len()];
                let mut bytes = b.build_compressed(codec).unwrap();
                let first = log.append(&mut bytes).unwrap().first_offset;
                assert_eq!(first, end);
                for (i, (k, v, with_header)) in records.iter().enumerate() {
                    let headers = if *with_header {
                        vec![(b"h".to_vec(), Some(b"x".to_vec()))]
                    } else {
                        Vec::new()
                    };
                    let rec = (
                        first + i as i64,
                        now + i as i64,
                        format!("k{k}").into_bytes(),
                        v.map(|n| vec![b'a' + (i as u8 % 26); n as usize]),
                        headers,
                    );
                    appended.push((rec, None));
                }
                end = first + records.len() as i64;
            }
            Op::Roll => log.roll().unwrap(),
            Op::Clean => {
                // Only closed segments are cleaned: the records below the active segment.
                let active_base = *log.segment_base_offsets().last().unwrap();
                log.clean(&CleanOptions::default()).unwrap();
                let now = clock.now_ms();
                for (rec, first_clean) in appended.iter_mut() {
                    if rec.0 < active_base {
                        first_clean.get_or_insert(now);
                    }
                }
                cleaned = true;
            }
            Op::Advance(ms) => clock.advance(i64::from(ms)),
            Op::Reopen { clean } => {
                if clean {
                    dir.close().unwrap();
                }
                drop(log);
                drop(dir);
                (dir, log) = open(tmp.path(), &clock);
            }
        }
        check(&log, &appended, end, clock.now_ms(), cleaned);
    }
}

fn check(log: &Log, appended: &[(Rec, Option<i64>)], end: i64, now: i64, just_cleaned: bool) {
    assert_eq!(log.log_end_offset(), end);
    let got = read_all(log);
    let by_offset: BTreeMap<i64, &Rec> = appended.iter().map(|(r, _)| (r.0, r)).collect();
    for r in &got {
        assert_eq!(
            by_offset.get(&r.0),
            Some(&r),
            "a record read back differs or was never appended"
        );
    }
    let mut latest: BTreeMap<&[u8], &(Rec, Option<i64>)> = BTreeMap::new();
    for a in appended {
        latest.insert(&a.0 .2, a);
    }
    for (rec, first_clean) in latest.values() {
        if got.contains(rec) {
            continue;
        }
        let may_go = rec.3.is_none() && first_clean.is_some_and(|t| now >= t + DELETE_RETENTION_MS);
        assert!(may_go, "the latest record of a key is missing: {rec:?} (now {now}, first clean {first_clean:?})");
    }
    if just_cleaned {
        let active_base = *log.segment_base_offsets().last().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for r in got.iter().filter(|r| r.0 < active_base) {
            assert!(
                seen.insert(r.2.clone()),
                "key {:?} twice in cleaned segments",
                r.2
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
