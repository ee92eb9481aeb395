//! Offset checkpoint files (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`)
//! in Kafka's text format: a version line (0), a count line, then `topic partition offset`
//! lines. Written to a temporary file, synced, and renamed over the old one.

use crate::error::{io_err, LogError, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub(crate) const LOG_START_FILE: &str = "log-start-offset-checkpoint";
/// Per compacted partition: where its not-yet-cleaned part starts (Kafka's name).
pub(crate) const CLEANER_FILE: &str = "cleaner-offset-checkpoint";
/// Per partition: the high watermark replication last reached (Kafka's name).
pub(crate) const HIGH_WATERMARK_FILE: &str = "replication-offset-checkpoint";

/// Reads a checkpoint into `<topic>-<partition>` → offset. A missing file is empty; a
/// malformed one is an error naming the line.
pub(crate) fn read(path: &Path) -> Result<BTreeMap<String, i64>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let bad = |line: usize, why: &str| LogError::Corrupt {
        path: path.to_path_buf(),
        position: line as u64,
        reason: format!("line {}: {why}", line + 1),
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad(0, "unknown checkpoint version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| bad(1, "bad entry count"))?;
    let mut out = BTreeMap::new();
    for i in 0..count {
        let line = lines.next().ok_or_else(|| bad(i + 2, "missing entry"))?;
        let mut parts = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(i + 2, "expected `topic partition offset`"));
        };
        let partition: u32 = partition.parse().map_err(|_| bad(i + 2, "bad partition"))?;
        let offset: i64 = offset.parse().map_err(|_| bad(i + 2, "bad offset"))?;
        out.insert(format!("{topic}-{partition}"), offset);
    }
    Ok(out)
}

/// Atomically replaces the checkpoint at `path` with `entries`.
pub(crate) fn write(path: &Path, entries: &BTreeMap<String, i64>) -> Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for (name, offset) in entries {
        if let Some((topic, partition)) = name.rsplit_once('-') {
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }
    }
    let tmp = path.with_extension("tmp");
    let mut f = crate::handles::transient(|| fs::File::create(&tmp)).map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        crate::log::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_FILE);
        let mut m = BTreeMap::new();
        m.insert("orders-0".to_string(), 42);
        m.insert("my-topic-12".to_string(), 7);
        write(&path, &m).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "0\n2\nmy-topic 12 7\norders 0 42\n"
        );
        assert_eq!(read(&path).unwrap(), m);
    }

    #[test]
    fn malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        for text in [
            "",
            "1\n0\n",
            "0\nx\n",
            "0\n1\n",
            "0\n1\na b\n",
            "0\n1\na 0 x\n",
        ] {
            fs::write(&path, text).unwrap();
            assert!(read(&path).is_err(), "{text:?}");
        }
        assert!(read(&dir.path().join("missing")).unwrap().is_empty());
    }
}
