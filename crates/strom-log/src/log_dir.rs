//! A log directory (`log.dirs` entry): its partitions, checkpoints, clean-shutdown marker,
//! flusher thread, and its health.
//!
//! Fail-stop: the first failed write, fsync or truncate takes the whole dir offline; every
//! later operation on any of its logs gets `LogError::Offline` until the process restarts,
//! because what reached the disk after a failed fsync is unknown.

use crate::checkpoint::{
    self, CLEANER_FILE, HIGH_WATERMARK_FILE, LOG_START_FILE, RECOVERY_POINT_FILE,
};
use crate::cleaner::{self, CleanerOptions};
use crate::clock::{Clock, SystemClock};
use crate::config::LogConfig;
use crate::error::{io_err, LogError, Result};
use crate::flusher::{self, Request, Schedule};
use crate::limits::FLUSH_QUEUE_MAX;
use crate::log::{sync_dir, Log, OpenParams};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

/// Marker file written last on a clean shutdown and removed first on open.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const DELETE_SUFFIX: &str = "-delete";

/// Whether the dir is usable; set offline by the first I/O failure.
#[derive(Debug)]
pub(crate) struct DirHealth {
    path: PathBuf,
    offline: AtomicBool,
    reason: Mutex<String>,
}

impl DirHealth {
    pub fn check(&self) -> Result<()> {
        if self.offline.load(Ordering::Acquire) {
            return Err(LogError::Offline {
                dir: self.path.clone(),
                reason: self
                    .reason
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            });
        }
        Ok(())
    }

    /// Takes the dir offline when `e` is an I/O failure; returns `e` for the caller.
    pub fn fail(&self, e: LogError) -> LogError {
        if matches!(e, LogError::Io { .. }) && !self.offline.swap(true, Ordering::AcqRel) {
            tracing::error!(dir = %self.path.display(), error = %e, "log dir offline after I/O failure");
            *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = e.to_string();
        }
        e
    }
}

/// What the dir's logs and its flusher thread share.
#[derive(Debug)]
pub(crate) struct DirShared {
    path: PathBuf,
    health: Arc<DirHealth>,
    clock: Arc<dyn Clock>,
    logs: RwLock<BTreeMap<String, Arc<Log>>>,
    /// The logs with a finite `flush.ms`, the only ones the flusher looks at every tick (not
    /// all 100,000); see `Log::note_timed`.
    timed: Mutex<Vec<Arc<Log>>>,
    checkpoint_lock: Mutex<()>,
}

impl DirShared {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    pub fn logs(&self) -> Vec<Arc<Log>> {
        self.logs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Lists `log` among those with a finite `flush.ms` (once: `Log::note_timed`).
    pub(crate) fn add_timed(&self, log: &Arc<Log>) {
        let mut timed = self.timed.lock().unwrap_or_else(PoisonError::into_inner);
        if !log.timed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            timed.push(Arc::clone(log));
        }
    }

    /// Calls `f` with every listed log that still has a finite `flush.ms`, dropping the rest
    /// (deleted, or `flush.ms` set back): under the list's lock, as `add_timed` runs, so a
    /// log whose config changes meanwhile is either kept or listed again.
    pub(crate) fn for_each_timed(&self, mut f: impl FnMut(&Arc<Log>)) {
        let mut timed = self.timed.lock().unwrap_or_else(PoisonError::into_inner);
        timed.retain(|log| {
            let keep = !log.is_deleted() && log.config().flush_ms < i64::MAX;
            if keep {
                f(log);
            } else {
                log.timed.store(false, std::sync::atomic::Ordering::Release);
            }
            keep
        });
    }

    pub fn get(&self, name: &str) -> Option<Arc<Log>> {
        self.logs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Writes the recovery-point and log-start checkpoints of every log.
    pub fn write_checkpoints(&self) -> Result<()> {
        self.health.check()?;
        let _g = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let logs = self.logs();
        let recovery: BTreeMap<String, i64> = logs
            .iter()
            .map(|l| (l.name().to_string(), l.recovery_point()))
            .collect();
        let starts: BTreeMap<String, i64> = logs
            .iter()
            .map(|l| (l.name().to_string(), l.log_start_offset()))
            .collect();
        let cleaned: BTreeMap<String, i64> = logs
            .iter()
            .filter(|l| l.cleaner_checkpoint() >= 0)
            .map(|l| (l.name().to_string(), l.cleaner_checkpoint()))
            .collect();
        let high_watermarks: BTreeMap<String, i64> = logs
            .iter()
            .filter(|l| l.high_watermark() >= 0)
            .map(|l| (l.name().to_string(), l.high_watermark()))
            .collect();
        checkpoint::write(&self.path.join(RECOVERY_POINT_FILE), &recovery)
            .and_then(|()| checkpoint::write(&self.path.join(LOG_START_FILE), &starts))
            .and_then(|()| checkpoint::write(&self.path.join(CLEANER_FILE), &cleaned))
            .and_then(|()| {
                checkpoint::write(&self.path.join(HIGH_WATERMARK_FILE), &high_watermarks)
            })
            .map_err(|e| self.health.fail(e))
    }
}

/// Settings of a log dir that are not per-log.
#[derive(Debug, Clone)]
pub struct LogDirOptions {
    /// `log.flush.offset.checkpoint.interval.ms`
    pub checkpoint_interval_ms: i64,
    /// `log.retention.check.interval.ms`
    pub retention_check_interval_ms: i64,
    /// `strom.log.flush.syncfs`: a flush cycle of several logs syncs the dir's file system
    /// once (`syncfs`) instead of each log's files. Off by default: on a file system shared
    /// with other writers it also waits for their data (BENCHMARKS.md: worse p99 here).
    pub syncfs: bool,
    pub clock: Arc<dyn Clock>,
}

impl Default for LogDirOptions {
    fn default() -> Self {
        LogDirOptions {
            checkpoint_interval_ms: 60_000,
            retention_check_interval_ms: 300_000,
            syncfs: false,
            clock: Arc::new(SystemClock),
        }
    }
}

/// An open log directory.
#[derive(Debug)]
pub struct LogDir {
    shared: Arc<DirShared>,
    flush_tx: SyncSender<Request>,
    thread: Mutex<Option<JoinHandle<()>>>,
    cleaner: Mutex<Option<CleanerThread>>,
    /// Whether the previous run ended with a clean shutdown.
    was_clean: bool,
}

/// The running cleaner thread and how to stop it.
#[derive(Debug)]
struct CleanerThread {
    stop: Arc<AtomicBool>,
    wake: SyncSender<()>,
    handle: JoinHandle<()>,
}

/// `config` as an `Arc`: the last one made when equal, so that a topic's partitions share it.
fn shared_config(last: &mut Option<Arc<LogConfig>>, config: LogConfig) -> Arc<LogConfig> {
    match last {
        Some(l) if **l == config => Arc::clone(l),
        _ => Arc::clone(last.insert(Arc::new(config))),
    }
}

/// Splits `<topic>-<partition>`; the topic may itself contain dashes.
pub fn parse_partition_dir(name: &str) -> Option<(&str, u32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, partition.parse().ok()?))
}

impl LogDir {
    /// Opens (creating if needed) the log dir at `path` and every partition in it,
    /// recovering what a crash left. `config_for` gives each partition's configuration.
    pub fn open(
        path: impl AsRef<Path>,
        options: LogDirOptions,
        config_for: &dyn Fn(&str) -> LogConfig,
    ) -> Result<LogDir> {
        let path = path.as_ref().to_path_buf();
        fs::create_dir_all(&path).map_err(io_err(&path))?;
        let marker = path.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if clean {
            // Removed before anything is written, so a crash from here on is seen as one.
            fs::remove_file(&marker).map_err(io_err(&marker))?;
            sync_dir(&path)?;
        }
        // A damaged checkpoint costs a full recovery, never the data: it is read as empty.
        let read_checkpoint = |file: &str| {
            checkpoint::read(&path.join(file)).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "damaged checkpoint ignored; recovering from the start");
                BTreeMap::new()
            })
        };
        let recovery_points = read_checkpoint(RECOVERY_POINT_FILE);
        let log_starts = read_checkpoint(LOG_START_FILE);
        let cleaned = read_checkpoint(CLEANER_FILE);
        let high_watermarks = read_checkpoint(HIGH_WATERMARK_FILE);
        let health = Arc::new(DirHealth {
            path: path.clone(),
            offline: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
        });
        let shared = Arc::new(DirShared {
            path: path.clone(),
            health,
            clock: Arc::clone(&options.clock),
            logs: RwLock::new(BTreeMap::new()),
            timed: Mutex::new(Vec::new()),
            checkpoint_lock: Mutex::new(()),
        });
        let (flush_tx, flush_rx) = sync_channel(FLUSH_QUEUE_MAX);
        let dir = LogDir {
            shared: Arc::clone(&shared),
            flush_tx,
            thread: Mutex::new(None),
            cleaner: Mutex::new(None),
            was_clean: clean,
        };
        let mut entries: Vec<PathBuf> = Vec::new();
        for entry in fs::read_dir(&path).map_err(io_err(&path))? {
            let entry = entry.map_err(io_err(&path))?;
            if entry.file_type().map_err(io_err(entry.path()))?.is_dir() {
                entries.push(entry.path());
            }
        }
        entries.sort();
        // A topic's partitions are neighbours in sorted order, and most share one config.
        let mut last_config = None;
        for sub in entries {
            let Some(name) = sub.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if name.ends_with(DELETE_SUFFIX) {
                fs::remove_dir_all(&sub).map_err(io_err(&sub))?;
                continue;
            }
            if parse_partition_dir(&name).is_none() {
                tracing::warn!(dir = %sub.display(), "not a partition directory (<topic>-<partition>); ignored");
                continue;
            }
            let config = config_for(&name);
            config.validate().map_err(LogError::InvalidConfig)?;
            let log = Log::open(OpenParams {
                dir: sub,
                config: shared_config(&mut last_config, config),
                clock: Arc::clone(&options.clock),
                health: Arc::clone(&shared.health),
                flush_tx: dir.flush_tx.clone(),
                dir_shared: Arc::downgrade(&shared),
                clean,
                recovery_point: recovery_points.get(&name).copied().unwrap_or(0),
                log_start_offset: log_starts.get(&name).copied().unwrap_or(0),
                cleaner_checkpoint: cleaned.get(&name).copied().unwrap_or(-1),
                high_watermark: high_watermarks.get(&name).copied().unwrap_or(-1),
            })?;
            shared
                .logs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name, log);
        }
        let schedule = Schedule {
            checkpoint_interval_ms: options.checkpoint_interval_ms,
            retention_check_interval_ms: options.retention_check_interval_ms,
            syncfs: options.syncfs,
        };
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("strom-flusher".into())
            .spawn(move || flusher::run(thread_shared, flush_rx, schedule))
            .map_err(io_err(&path))?;
        *dir.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Whether the previous run of this dir ended with a clean shutdown.
    pub fn was_clean_shutdown(&self) -> bool {
        self.was_clean
    }

    /// Whether an I/O failure has taken the dir offline.
    pub fn is_offline(&self) -> bool {
        self.shared.health.check().is_err()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Log>> {
        self.shared.get(name)
    }

    /// Every open log, by name.
    pub fn logs(&self) -> Vec<Arc<Log>> {
        self.shared.logs()
    }

    /// Creates the partition `<topic>-<partition>` with an empty log. The files are made
    /// outside the dir's lock, so creating many partitions holds up no reader; a directory
    /// left by a create that failed half way (out of descriptors) is taken over.
    pub fn create(
        &self,
        topic: &str,
        partition: u32,
        config: impl Into<Arc<LogConfig>>,
    ) -> Result<Arc<Log>> {
        let config = config.into();
        self.shared.health.check()?;
        config.validate().map_err(LogError::InvalidConfig)?;
        let name = format!("{topic}-{partition}");
        if topic.is_empty() || topic.contains('/') || topic == "." || topic == ".." {
            return Err(LogError::InvalidName(name));
        }
        if self.shared.get(&name).is_some() {
            return Err(LogError::AlreadyExists(name));
        }
        let dir = self.shared.path.join(&name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.shared.health.fail(io_err(&dir)(e))),
        }
        let log = Log::open(OpenParams {
            dir,
            config,
            clock: Arc::clone(&self.shared.clock),
            health: Arc::clone(&self.shared.health),
            flush_tx: self.flush_tx.clone(),
            dir_shared: Arc::downgrade(&self.shared),
            clean: true,
            recovery_point: 0,
            log_start_offset: 0,
            cleaner_checkpoint: -1,
            high_watermark: -1,
        })
        .map_err(|e| self.shared.health.fail(e))?;
        // The partition directory's own entry is synced with the log's first flush.
        log.mark_new_dir();
        let mut logs = self
            .shared
            .logs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if logs.contains_key(&name) {
            // Another create won: this copy is dropped (the flusher's list lets it go too).
            log.mark_deleted();
            return Err(LogError::AlreadyExists(name));
        }
        logs.insert(name, Arc::clone(&log));
        Ok(log)
    }

    /// Deletes a partition: its directory is renamed aside (so a crash mid-way cannot bring
    /// it back) and then removed. Readers holding open files finish undisturbed.
    pub fn delete(&self, name: &str) -> Result<()> {
        self.delete_many(&[name])
    }

    /// Deletes partitions as `delete` does, then writes the checkpoints once (without the
    /// deleted ones, so a partition made again under a name starts from nothing).
    pub fn delete_many(&self, names: &[&str]) -> Result<()> {
        for name in names {
            self.delete_one(name)?;
        }
        self.shared.write_checkpoints()
    }

    /// How many partitions the dir holds.
    pub fn log_count(&self) -> usize {
        self.shared
            .logs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn delete_one(&self, name: &str) -> Result<()> {
        self.shared.health.check()?;
        let log = self
            .shared
            .logs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .ok_or_else(|| LogError::NotFound(name.to_string()))?;
        log.mark_deleted();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let aside = self
            .shared
            .path
            .join(format!("{name}.{nanos:x}{DELETE_SUFFIX}"));
        let result = fs::rename(log.dir(), &aside)
            .map_err(io_err(log.dir()))
            .and_then(|()| sync_dir(&self.shared.path))
            .and_then(|()| fs::remove_dir_all(&aside).map_err(io_err(&aside)));
        result.map_err(|e| self.shared.health.fail(e))
    }

    /// Writes the recovery-point and log-start checkpoints now.
    pub fn write_checkpoints(&self) -> Result<()> {
        self.shared.write_checkpoints()
    }

    /// Runs retention over every log now (the flusher also does every
    /// `log.retention.check.interval.ms`).
    pub fn apply_retention(&self) -> Result<usize> {
        let mut n = 0;
        for log in self.logs() {
            n += log.apply_retention()?;
        }
        Ok(n)
    }

    /// Starts the cleaner thread (`log.cleaner.enable`): it compacts the logs whose
    /// `cleanup.policy` includes `compact` once they are dirty enough. Started by the caller
    /// once the logs have their topic configs, so no log is cleaned under a default config.
    pub fn start_cleaner(&self, options: CleanerOptions) -> Result<()> {
        let mut slot = self.cleaner.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, rx) = sync_channel(1);
        let shared = Arc::clone(&self.shared);
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("strom-cleaner".into())
            .spawn(move || cleaner::run(shared, options, thread_stop, rx))
            .map_err(io_err(&self.shared.path))?;
        *slot = Some(CleanerThread { stop, wake, handle });
        Ok(())
    }

    /// Stops the cleaner thread, interrupting a clean in progress (what was already
    /// swapped in stays; the rest is cleaned again later).
    pub fn stop_cleaner(&self) {
        let thread = self
            .cleaner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            t.stop.store(true, Ordering::Release);
            let _ = t.wake.try_send(());
            let _ = t.handle.join();
        }
    }

    fn stop_flusher(&self) {
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = self.flush_tx.send(Request::Stop);
            let _ = handle.join();
        }
    }

    /// Clean shutdown: closes every log, syncs the file system once (a `syncfs`, not an
    /// fsync per file: 100,000 idle partitions would take minutes), writes the checkpoints,
    /// then the clean-shutdown marker, so the next open trusts the files without scanning.
    pub fn close(&self) -> Result<()> {
        self.stop_cleaner();
        self.stop_flusher();
        self.shared.health.check()?;
        for log in self.logs() {
            log.close()?;
        }
        flusher::syncfs(&self.shared.path).map_err(|e| self.shared.health.fail(e))?;
        self.shared.write_checkpoints()?;
        let marker = self.shared.path.join(CLEAN_SHUTDOWN_FILE);
        fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&marker))?;
        sync_dir(&self.shared.path)
    }
}

impl Drop for LogDir {
    /// Without `close`, a drop stops the flusher but writes no marker: the next open recovers
    /// as after a crash.
    fn drop(&mut self) {
        self.stop_cleaner();
        self.stop_flusher();
        self.shared
            .logs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
