//! The process's descriptors, shared by client connections and open segment files: both
//! come out of `RLIMIT_NOFILE` (raised to its hard limit at start-up). Segment files are a
//! cache (`strom_log::Handles`), closed least recently used first, so connections come
//! first: every connection admitted lowers the files' share, and `max.connections` (capped
//! by the limit, less a reserve) refuses connections before descriptors run out.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use strom_log::Handles;

/// Descriptors kept back for short-lived files (checkpoints, directory syncs, index
/// trims), listeners, the metadata quorum's and the replicas' own connections.
pub const RESERVED: usize = 256;
/// Segment files the cache may always hold, however many connections there are.
pub const FILES_MIN: usize = 64;

#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    /// Connections admitted at most.
    max: usize,
    /// The open-file limit.
    nofile: usize,
    /// `strom.log.open.files.max`, or half the limit.
    files_max: usize,
    refused: AtomicU64,
}

impl Connections {
    pub fn new(max_connections: usize, log_open_files_max: usize) -> Arc<Connections> {
        let nofile = strom_log::handles::open_files_limit();
        let files_max = match log_open_files_max {
            0 => nofile / 2,
            n => n,
        };
        let max = max_connections
            .min(nofile.saturating_sub(RESERVED + FILES_MIN))
            .max(1);
        let c = Arc::new(Connections {
            open: AtomicUsize::new(0),
            max,
            nofile,
            files_max,
            refused: AtomicU64::new(0),
        });
        c.share_files(0);
        c
    }

    /// Connections admitted at most (`max.connections`, capped by the limit).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Admits one more connection, or None (the caller closes it) at `max`.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if n > self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            let refused = self.refused.fetch_add(1, Ordering::Relaxed);
            // The first refusal and then one in a thousand: a flood must not flood the log.
            if refused.is_multiple_of(1000) {
                tracing::warn!(
                    max = self.max,
                    refused = refused + 1,
                    "max.connections reached: closing new connections"
                );
            }
            return None;
        }
        self.share_files(n);
        Some(Admitted(Arc::clone(self)))
    }

    /// The segment files' share with `connections` connections open.
    fn share_files(&self, connections: usize) {
        let left = self.nofile.saturating_sub(RESERVED + connections);
        Handles::files().set_limit(self.files_max.min(left).max(FILES_MIN));
    }
}

/// A connection counted until dropped.
#[derive(Debug)]
pub struct Admitted(Arc<Connections>);

impl Drop for Admitted {
    fn drop(&mut self) {
        let n = self.0.open.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.share_files(n);
    }
}
