//! Model test: random sequences of append / read / roll / truncate / delete-records /
//! retention / close-reopen (clean and crash) run against the real log and against a plain
//! in-memory list of batches; after every step both must agree.

use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;
use strom_log::testing::batch;
use strom_log::{Log, LogConfig, LogDir, LogDirOptions, LogError, ManualClock};
use strom_proto::batch::{set_base_offset, split};

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_bytes: usize,
        batches: usize,
    },
    Read {
        at: u16,
        max_bytes: u16,
    },
    Roll,
    Truncate {
        at: u16,
    },
    DeleteRecords {
        at: u16,
    },
    Retention {
        bytes: u16,
        age: bool,
    },
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..6usize, 0..700usize, 1..3usize)
            .prop_map(|(records, value_bytes, batches)| Op::Append { records, value_bytes, batches }),
        4 => (any::<u16>(), any::<u16>()).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(bytes, age)| Op::Retention { bytes, age }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// The model: batches as stored (offsets assigned) and the log start offset.
#[derive(Default)]
struct Model {
    batches: Vec<(i64, i64, Vec<u8>)>,
    start: i64,
    end: i64,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        segment_index_bytes: 96,
        index_interval_bytes: 256,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open(path: &Path, clock: &Arc<ManualClock>) -> (LogDir, Arc<Log>) {
    let options = LogDirOptions {
        clock: clock.clone(),
        ..LogDirOptions::default()
    };
    let dir = LogDir::open(path, options, &|_| config()).unwrap();
    let log = match dir.get("m-0") {
        Some(l) => l,
        None => dir.create("m", 0, config()).unwrap(),
    };
    (dir, log)
}

fn pick(at: u16, lo: i64, hi: i64) -> i64 {
    lo + (at as i64) % (hi - lo + 1).max(1)
}

fn check_all(log: &Log, model: &Model) {
    assert_eq!(log.log_start_offset(), model.start, "log start");
    assert_eq!(log.log_end_offset(), model.end, "log end");
    let mut offset = model.start;
    let mut got = Vec::new();
    while offset < model.end {
        let slice = log
            .read(offset, 1 << 20, None)
            .unwrap()
            .slice
            .expect("data below the end");
        let bytes = slice.read_to_vec().unwrap();
        for (h, b) in split(&bytes).unwrap() {
            got.push(b.to_vec());
            offset = h.next_offset();
        }
    }
    let want: Vec<Vec<u8>> = model
        .batches
        .iter()
        .filter(|(_, last, _)| *last >= model.start)
        .map(|(_, _, b)| b.clone())
        .collect();
    assert_eq!(got, want, "contents");
}

fn run(ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let (mut dir, mut log) = open(tmp.path(), &clock);
    let mut model = Model::default();
    let mut seed = 0u64;
    for op in ops {
        match op {
            Op::Append {
                records,
                value_bytes,
                batches,
            } => {
                let mut bytes = Vec::new();
                let mut stored = Vec::new();
                let mut next = model.end;
                for _ in 0..batches {
                    seed += 1;
                    clock.advance(10);
                    let mut b = batch(seed, records, value_bytes, clock_ms(&clock));
                    set_base_offset(&mut b, next);
                    stored.push((next, next + records as i64 - 1, b.clone()));
                    next += records as i64;
                    bytes.extend(b);
                }
                let info = log.append(&mut bytes).unwrap();
                assert_eq!(info.first_offset, model.end);
                assert_eq!(info.last_offset, next - 1);
                model.batches.extend(stored);
                model.end = next;
            }
            Op::Read { at, max_bytes } => {
                let offset = pick(at, model.start - 1, model.end + 1);
                let max_bytes = max_bytes as u64 % 20_000;
                match log.read(offset, max_bytes, None) {
                    Err(LogError::OffsetOutOfRange { .. }) => {
                        assert!(
                            offset < model.start || offset > model.end,
                            "{offset} is in range"
                        )
                    }
                    Err(e) => panic!("read {offset}: {e}"),
                    Ok(info) => {
                        assert!(offset >= model.start && offset <= model.end);
                        let Some(slice) = info.slice else {
                            assert_eq!(offset, model.end, "empty only at the end");
                            continue;
                        };
                        let bytes = slice.read_to_vec().unwrap();
                        let got: Vec<&[u8]> =
                            split(&bytes).unwrap().into_iter().map(|(_, b)| b).collect();
                        let first = model
                            .batches
                            .iter()
                            .position(|(_, last, _)| *last >= offset)
                            .unwrap();
                        for (i, b) in got.iter().enumerate() {
                            assert_eq!(
                                *b,
                                &model.batches[first + i].2[..],
                                "batch {i} of read at {offset}"
                            );
                        }
                        assert!(
                            got.len() == 1 || bytes.len() as u64 <= max_bytes,
                            "over max_bytes"
                        );
                    }
                }
            }
            Op::Roll => log.roll().unwrap(),
            Op::Truncate { at } => {
                let offset = pick(at, model.start.saturating_sub(2).max(0), model.end);
                let first_base = log.segment_base_offsets()[0];
                log.truncate_to(offset).unwrap();
                if offset < model.end {
                    if offset <= model.start {
                        model.batches.clear();
                        model.start = offset;
                        model.end = offset;
                    } else {
                        // Batches ending at or after the offset go. Those below the first
                        // segment were deleted with their segments, so an emptied log ends
                        // where that segment begins.
                        model.batches.retain(|(_, last, _)| *last < offset);
                        model.end = model
                            .batches
                            .iter()
                            .rev()
                            .find(|(base, _, _)| *base >= first_base)
                            .map_or(first_base, |(_, last, _)| last + 1);
                        model.start = model.start.min(model.end);
                    }
                }
            }
            Op::DeleteRecords { at } => {
                let offset = pick(at, model.start, model.end);
                assert_eq!(
                    log.delete_records_before(offset).unwrap(),
                    offset.max(model.start)
                );
                model.start = model.start.max(offset);
            }
            Op::Retention { bytes, age } => {
                let mut c = config();
                c.retention_bytes = i64::from(bytes) * 4;
                if age {
                    c.retention_ms = 50;
                }
                log.set_config(c).unwrap();
                log.apply_retention().unwrap();
                log.set_config(config()).unwrap();
                // Only whole segments below the new start went; the model follows the start.
                assert!(log.log_start_offset() >= model.start);
                assert!(log.log_start_offset() <= model.end);
                model.start = log.log_start_offset();
            }
            Op::Reopen { clean } => {
                drop(log);
                if clean {
                    dir.close().unwrap();
                } else {
                    drop(dir);
                }
                (dir, log) = open(tmp.path(), &clock);
                assert!(
                    log.recovery_report().damage.is_empty(),
                    "{:?}",
                    log.recovery_report()
                );
            }
        }
        check_all(&log, &model);
    }
}

fn clock_ms(clock: &ManualClock) -> i64 {
    use strom_log::Clock;
    clock.now_ms()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
