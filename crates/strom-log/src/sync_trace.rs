//! A fault-test aid: with `STROM_SYNC_TRACE` naming a file, every fsync of a segment's log
//! file appends `S <length>\t<path>` to it once the sync succeeded, the length taken before
//! the sync (so at most what it made durable); a truncation appends `T <length>\t<path>`
//! (what stays synced is at most that), a deletion `D 0\t<path>`. A whole-cluster power-loss test SIGKILLs
//! the brokers and cuts every segment back to its last traced length, dropping segments
//! never synced: what a power cut may leave. Unset (always, outside tests), it costs one
//! check per sync. Syncs of a whole file system (`strom.log.flush.syncfs`) are not traced.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

pub const ENV: &str = "STROM_SYNC_TRACE";

fn trace() -> Option<&'static Mutex<File>> {
    static TRACE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    TRACE
        .get_or_init(|| {
            let path = std::env::var_os(ENV)?;
            let file = OpenOptions::new().create(true).append(true).open(path);
            file.ok().map(Mutex::new)
        })
        .as_ref()
}

/// The length of `file` now, if syncs are traced.
pub(crate) fn length_before(file: &File) -> Option<u64> {
    trace()?;
    file.metadata().ok().map(|m| m.len())
}

/// `path` was synced up to at least `len` bytes.
pub(crate) fn synced(path: &Path, len: Option<u64>) {
    if let Some(len) = len {
        note('S', path, len);
    }
}

/// `path` was cut to `len` bytes.
pub(crate) fn truncated(path: &Path, len: u64) {
    note('T', path, len);
}

/// `path` was deleted.
pub(crate) fn deleted(path: &Path) {
    note('D', path, 0);
}

/// One line, one append write.
fn note(kind: char, path: &Path, len: u64) {
    let Some(t) = trace() else {
        return;
    };
    let line = format!("{kind} {len}\t{}\n", path.display());
    let mut f = t.lock().unwrap_or_else(|e| e.into_inner());
    let _ = f.write_all(line.as_bytes());
}
