//! Damaged files: flipped bytes in a segment and in an index, torn tails, stray files. Opening
//! must report the damage, keep everything before it, serve nothing after it, and not panic.

use std::fs;
use std::path::{Path, PathBuf};
use strom_log::testing::{batch, small_config};
use strom_log::{Log, LogDir, LogDirOptions};
use strom_proto::batch::{split, validate};

fn open(path: &Path) -> LogDir {
    LogDir::open(path, LogDirOptions::default(), &|_| small_config()).unwrap()
}

/// Writes 120 batches of 4 records over several segments and closes cleanly.
fn write_log(path: &Path) -> Vec<Vec<u8>> {
    let dir = open(path);
    let log = dir.create("t", 0, small_config()).unwrap();
    let mut written = Vec::new();
    for i in 0..120 {
        let mut b = batch(i, 4, 400, i as i64);
        log.append(&mut b).unwrap();
        written.push(b);
    }
    drop(log);
    dir.close().unwrap();
    written
}

fn read_all(log: &Log) -> Vec<Vec<u8>> {
    strom_log::testing::read_batches(log, log.log_start_offset()).unwrap()
}

fn segment_files(path: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(path.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

/// Where the batch holding the byte at `at` starts, and its index among `written` batches
/// of that segment file.
fn batch_start(file: &Path, at: u64) -> (u64, i64) {
    let bytes = fs::read(file).unwrap();
    let mut pos = 0u64;
    for (h, b) in split(&bytes).unwrap() {
        if pos + b.len() as u64 > at {
            return (pos, h.base_offset);
        }
        pos += b.len() as u64;
    }
    unreachable!()
}

#[test]
fn a_flipped_byte_in_a_segment_cuts_the_log_there_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path());
    let logs = segment_files(tmp.path(), "log");
    assert!(logs.len() >= 3);
    // Damage the middle of the second segment, then make the next open a crash recovery
    // from the start (no marker, no recovery point).
    let victim = &logs[1];
    let at = fs::metadata(victim).unwrap().len() / 2;
    let (_, damaged_offset) = batch_start(victim, at);
    flip(victim, at);
    fs::remove_file(tmp.path().join(".clean-shutdown")).unwrap();
    fs::remove_file(tmp.path().join("recovery-point-offset-checkpoint")).unwrap();

    let dir = open(tmp.path());
    let log = dir.get("t-0").unwrap();
    let report = log.recovery_report();
    assert_eq!(report.damage.len(), 1, "{report:?}");
    assert!(
        report.damage[0].contains("00000000000000000"),
        "names the file: {}",
        report.damage[0]
    );
    assert!(report.bytes_truncated > 0);
    assert_eq!(log.log_end_offset(), damaged_offset);
    let kept = read_all(&log);
    assert_eq!(
        kept,
        written[..(damaged_offset / 4) as usize].to_vec(),
        "everything before the damage"
    );
    assert_eq!(
        segment_files(tmp.path(), "log").len(),
        2,
        "later segments removed"
    );
    // The log goes on from the cut.
    let mut b = batch(999, 4, 400, 0);
    assert_eq!(log.append(&mut b).unwrap().first_offset, damaged_offset);
}

#[test]
fn a_damaged_tail_of_the_active_segment_is_cut_even_after_a_clean_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path());
    let active = segment_files(tmp.path(), "log").pop().unwrap();
    let len = fs::metadata(&active).unwrap().len();
    // The header of the last batch: read only from its position after the last index entry.
    let (start, offset) = batch_start(&active, len - 1);
    flip(&active, start + 16); // magic byte
    let dir = open(tmp.path());
    let log = dir.get("t-0").unwrap();
    assert_eq!(
        log.recovery_report().damage.len(),
        1,
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.log_end_offset(), offset);
    assert_eq!(read_all(&log), written[..(offset / 4) as usize].to_vec());
}

#[test]
fn torn_and_garbage_tails_are_cut() {
    for tail in [&[][..], &[0u8; 100][..], &[0xab; 7][..]] {
        let tmp = tempfile::tempdir().unwrap();
        let written = write_log(tmp.path());
        let active = segment_files(tmp.path(), "log").pop().unwrap();
        let len = fs::metadata(&active).unwrap().len();
        let (start, offset) = batch_start(&active, len - 1);
        // A torn last batch (half written), then whatever junk followed it.
        let mut bytes = fs::read(&active).unwrap();
        bytes.truncate((start + (len - start) / 2) as usize);
        bytes.extend_from_slice(tail);
        fs::write(&active, bytes).unwrap();
        fs::remove_file(tmp.path().join(".clean-shutdown")).unwrap();
        let dir = open(tmp.path());
        let log = dir.get("t-0").unwrap();
        assert_eq!(log.log_end_offset(), offset);
        assert_eq!(read_all(&log), written[..(offset / 4) as usize].to_vec());
    }
}

#[test]
fn damaged_indexes_are_rebuilt_and_reads_stay_right() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path());
    let indexes = segment_files(tmp.path(), "index");
    // 1: garbage in the middle of a closed segment's offset index.
    let len = fs::metadata(&indexes[0]).unwrap().len();
    flip(&indexes[0], len / 2);
    flip(&indexes[0], len / 2 + 5);
    // 2: a position moved by one byte, keeping entries in order (not caught by the check;
    //    reads must notice that it does not lead to a batch).
    let mut bytes = fs::read(&indexes[1]).unwrap();
    let n = bytes.len();
    bytes[n - 9] = bytes[n - 9].wrapping_add(1);
    fs::write(&indexes[1], bytes).unwrap();
    // 3: a time index cut mid-entry, and an index whose log is gone.
    let times = segment_files(tmp.path(), "timeindex");
    let tlen = fs::metadata(&times[0]).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&times[0])
        .unwrap()
        .set_len(tlen - 5)
        .unwrap();
    fs::write(tmp.path().join("t-0/00000000000099999999.index"), [1u8; 16]).unwrap();

    let dir = open(tmp.path());
    let log = dir.get("t-0").unwrap();
    assert!(
        log.recovery_report().indexes_rebuilt >= 1,
        "{:?}",
        log.recovery_report()
    );
    assert!(log.recovery_report().damage.is_empty());
    assert_eq!(read_all(&log), written);
    for offset in 0..480 {
        let slice = log.read(offset, 1, None).unwrap().slice.unwrap();
        let h = validate(&slice.read_to_vec().unwrap()).unwrap();
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "offset {offset}"
        );
    }
    assert!(
        !tmp.path().join("t-0/00000000000099999999.index").exists(),
        "stray index removed"
    );
}

#[test]
fn missing_indexes_and_stray_entries_in_the_log_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path());
    for p in segment_files(tmp.path(), "index")
        .into_iter()
        .chain(segment_files(tmp.path(), "timeindex"))
    {
        fs::remove_file(p).unwrap();
    }
    fs::create_dir(tmp.path().join("not a partition")).unwrap();
    fs::write(tmp.path().join("meta.properties"), "node.id=1\n").unwrap();
    fs::write(
        tmp.path().join("recovery-point-offset-checkpoint"),
        "garbage",
    )
    .unwrap();
    let dir = open(tmp.path());
    let log = dir.get("t-0").unwrap();
    assert!(log.recovery_report().indexes_rebuilt >= 3);
    assert_eq!(read_all(&log), written);
    assert_eq!(dir.logs().len(), 1);
}
