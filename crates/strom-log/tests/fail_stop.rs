//! Fail-stop on disk errors: a write that fails (here: ENOSPC on a tiny tmpfs) takes the whole
//! log dir offline with a clear error; nothing is retried and every later call on any log of
//! that dir is refused, until a restart recovers what reached the disk.
//!
//! Needs root (it mounts a tmpfs), as the test machines and CI run.

use std::path::Path;
use std::process::Command;
use strom_log::testing::batch;
use strom_log::{LogConfig, LogDir, LogDirOptions, LogError};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(path: &Path, size: &str) -> Mount {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(path)
        .status()
        .expect("running mount");
    assert!(
        status.success(),
        "mounting a tmpfs failed: this test needs root"
    );
    Mount(path.to_path_buf())
}

#[test]
fn a_failed_write_takes_the_dir_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let _mount = mount_tmpfs(tmp.path(), "1m");
    let config = LogConfig {
        segment_index_bytes: 4096,
        ..LogConfig::default()
    };
    let dir = LogDir::open(tmp.path(), LogDirOptions::default(), &|_| config.clone()).unwrap();
    let log = dir.create("full", 0, config.clone()).unwrap();
    let other = dir.create("other", 0, config.clone()).unwrap();
    other.append(&mut batch(1, 1, 10, 0)).unwrap();

    let mut appended = 0;
    let err = loop {
        match log.append(&mut batch(appended, 4, 4000, 0)) {
            Ok(_) => appended += 1,
            Err(e) => break e,
        }
        assert!(appended < 1000, "a 1 MiB tmpfs never filled up");
    };
    assert!(
        matches!(err, LogError::Io { .. }),
        "first failure is the I/O error: {err}"
    );
    assert!(err.to_string().contains("full-0"), "names the file: {err}");
    assert!(dir.is_offline());
    let later = log.append(&mut batch(0, 1, 1, 0)).unwrap_err();
    assert!(matches!(later, LogError::Offline { .. }), "{later}");
    assert!(later.to_string().contains("offline"), "{later}");
    assert!(matches!(
        other.append(&mut batch(2, 1, 10, 0)),
        Err(LogError::Offline { .. })
    ));
    assert!(matches!(log.wait_durable(0), Err(LogError::Offline { .. })));
    assert!(matches!(
        dir.create("new", 0, config.clone()),
        Err(LogError::Offline { .. })
    ));
    // Reads of what is there still work: serving is not writing.
    assert!(log.read(0, 1 << 20, None).unwrap().slice.is_some());
    let end = log.log_end_offset();
    drop((log, other));
    drop(dir);

    // A restart recovers everything that was acknowledged as appended.
    let dir = LogDir::open(tmp.path(), LogDirOptions::default(), &|_| config.clone()).unwrap();
    let log = dir.get("full-0").unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(end, appended as i64 * 4);
}
