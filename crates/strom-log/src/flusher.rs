//! The group-commit flusher: one thread per log dir that makes appended data durable.
//!
//! Appenders that need durability queue a request ("tell me when offset N is on disk") and
//! go on. Each cycle the thread takes every queued request, syncs each log named once, and
//! completes all of that log's waiters: while one fsync runs, the next cycle's waiters gather,
//! so many waiters share one fsync. Between requests it applies `flush.ms`, writes the
//! checkpoints and runs retention on their intervals.

use crate::error::LogError;
use crate::limits::{FLUSHER_TICK_MS, FLUSH_BATCH_MAX};
use crate::log::Log;
use crate::log_dir::DirShared;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// Called once with the durable offset reached, or the error that stopped it.
pub type Waiter = Box<dyn FnOnce(Result<i64, LogError>) + Send>;

/// How long each flush took, in every log dir of the process: one log's fsyncs, or one
/// `syncfs` for a cycle of several (Kafka's `LogFlushRateAndTimeMs`).
pub static FLUSH_TIME: strom_metrics::DurationHistogram = strom_metrics::DurationHistogram::new();

/// Runs `flush` and records how long it took.
fn timed<T>(flush: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = flush();
    FLUSH_TIME.observe(start.elapsed());
    out
}

/// The waiters of one log in one cycle, with the offset each waits for.
type Waiters = Vec<(i64, Waiter)>;

pub(crate) enum Request {
    /// Sync `log`; complete `done` once `offset` is durable. `offset` -1: no waiter.
    Flush {
        log: Arc<Log>,
        offset: i64,
        done: Option<Waiter>,
    },
    Stop,
}

/// Background duties' intervals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub checkpoint_interval_ms: i64,
    pub retention_check_interval_ms: i64,
    /// Sync a cycle of several logs with one `syncfs` of the dir's file system.
    pub syncfs: bool,
}

pub(crate) fn run(shared: Arc<DirShared>, rx: Receiver<Request>, schedule: Schedule) {
    let clock = shared.clock();
    let mut last_checkpoint = clock.now_ms();
    let mut last_retention = clock.now_ms();
    let mut stop = false;
    while !stop {
        let mut cycle: Vec<(Arc<Log>, Waiters)> = Vec::new();
        let mut take = |r: Request, stop: &mut bool| match r {
            Request::Stop => *stop = true,
            Request::Flush { log, offset, done } => {
                let i = match cycle.iter().position(|(l, _)| Arc::ptr_eq(l, &log)) {
                    Some(i) => i,
                    None => {
                        cycle.push((log, Vec::new()));
                        cycle.len() - 1
                    }
                };
                if let (Some(done), Some((_, waiters))) = (done, cycle.get_mut(i)) {
                    waiters.push((offset, done));
                }
            }
        };
        match rx.recv_timeout(Duration::from_millis(FLUSHER_TICK_MS)) {
            Ok(r) => {
                take(r, &mut stop);
                for _ in 1..FLUSH_BATCH_MAX {
                    match rx.try_recv() {
                        Ok(r) => take(r, &mut stop),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => stop = true,
        }
        let now = clock.now_ms();
        shared.for_each_timed(|log| {
            if log.flush_due(now) && !cycle.iter().any(|(l, _)| Arc::ptr_eq(l, log)) {
                cycle.push((Arc::clone(log), Vec::new()));
            }
        });
        if schedule.syncfs && cycle.len() >= SYNCFS_LOGS_MIN {
            flush_together(&shared, cycle);
        } else {
            for (log, waiters) in cycle {
                complete(&log, waiters, timed(|| log.flush()));
            }
        }
        if !stop && now - last_checkpoint >= schedule.checkpoint_interval_ms {
            last_checkpoint = now;
            if let Err(e) = shared.write_checkpoints() {
                tracing::error!(error = %e, "writing checkpoints failed");
            }
        }
        if !stop && now - last_retention >= schedule.retention_check_interval_ms {
            last_retention = now;
            for log in shared.logs() {
                if let Err(e) = log.apply_retention() {
                    tracing::error!(log = log.name(), error = %e, "retention failed");
                }
            }
        }
    }
}

/// From this many logs in one cycle on, one `syncfs` replaces their fsyncs: on ext4 and xfs
/// every fsync of a file whose size changed is a journal commit of its own, and the commits
/// of one file system run one after another, so N fsyncs cost N commits while one syncfs
/// costs one (BENCHMARKS.md, "acks=all latency").
const SYNCFS_LOGS_MIN: usize = 2;

/// Flushes a cycle's logs with one `syncfs`: each log notes what the sync covers, the file
/// system is synced once, then every log's waiters are answered.
fn flush_together(shared: &DirShared, cycle: Vec<(Arc<Log>, Waiters)>) {
    let (logs, waiters): (Vec<Arc<Log>>, Vec<Waiters>) = cycle.into_iter().unzip();
    let pending: Vec<_> = logs.iter().map(|log| log.begin_flush()).collect();
    let synced = timed(|| syncfs(shared.path()));
    for ((log, waiters), pending) in logs.iter().zip(waiters).zip(pending) {
        let result = pending.and_then(|p| {
            let sync = synced.as_ref().map(|_| ()).map_err(LogError::again);
            log.finish_flush(p, sync, true)
        });
        complete(log, waiters, result);
    }
}

/// `syncfs(2)` of the file system holding `dir`: every file's data and metadata, directory
/// entries included. Since Linux 5.8 it reports writeback errors of that file system.
pub(crate) fn syncfs(dir: &std::path::Path) -> Result<(), LogError> {
    use std::os::fd::AsRawFd;
    let f = crate::log::open_dir(dir)?;
    // SAFETY: syncfs only reads the descriptor, which `f` keeps open for the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(LogError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn complete(log: &Log, waiters: Waiters, result: Result<i64, LogError>) {
    match result {
        Ok(durable) => {
            for (offset, done) in waiters {
                if offset < durable {
                    done(Ok(durable));
                } else {
                    // Only an offset that was never appended (or was truncated away) gets here.
                    done(Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start_offset: log.log_start_offset(),
                        log_end_offset: log.log_end_offset(),
                    }));
                }
            }
        }
        Err(e) => {
            tracing::error!(log = log.name(), error = %e, "flush failed");
            for (_, done) in waiters {
                done(Err(match &e {
                    LogError::Exhausted { .. } => LogError::again(&e),
                    _ => LogError::Offline {
                        dir: log.dir().to_path_buf(),
                        reason: e.to_string(),
                    },
                }));
            }
        }
    }
}
