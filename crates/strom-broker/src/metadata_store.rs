//! The metadata path: propose, commit, apply, reconcile.
//!
//! A controller decision (`commit`) is taken against the newest image and its records are
//! proposed to the metadata log (`MetadataLog`: today `LocalLog`, one voter on strom-log; the
//! Raft quorum behind the same trait next). Committed records reach the `Applier`, the one
//! place that applies them to the image: it publishes each new image on a `watch` channel
//! (what handlers read) and hands the image with its `MetadataDelta` to the reconciler
//! (`reconciler.rs`), which changes the hosted partitions on its own thread.

pub mod applier;
pub mod local;

pub use applier::{Applier, Published};
pub use local::LocalLog;

use crate::error::BrokerError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use strom_meta::{ApiError, MetadataImage, MetadataRecord};

pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A replicated (or, on one voter, local) log of metadata records.
pub trait MetadataLog: Send + Sync + std::fmt::Debug {
    /// Appends `records` as one batch; resolves once they are committed and applied (the
    /// applier has published the image holding them), with the offset after them.
    fn propose(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, Result<i64, BrokerError>>;

    /// The offset after the last committed record.
    fn committed_end(&self) -> i64;
}

#[derive(Debug)]
pub struct MetadataStore {
    log: Box<dyn MetadataLog>,
    applier: Arc<Applier>,
    /// One decision at a time: each is taken against the image holding every earlier one.
    write: tokio::sync::Mutex<()>,
}

impl MetadataStore {
    pub fn new(log: Box<dyn MetadataLog>, applier: Arc<Applier>) -> MetadataStore {
        MetadataStore {
            log,
            applier,
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// The end of the committed metadata log.
    pub fn log_end_offset(&self) -> i64 {
        self.log.committed_end()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.applier.image()
    }

    pub fn applier(&self) -> &Arc<Applier> {
        &self.applier
    }

    /// Runs a controller decision against the current image, commits its records and
    /// returns the image holding them (and the offset after them), or the controller's
    /// refusal.
    pub async fn commit(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
    ) -> Result<Result<Published, ApiError>, BrokerError> {
        let _w = self.write.lock().await;
        let current = self.applier.published();
        let records = match decide(&current.image) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if records.is_empty() {
            return Ok(Ok(current));
        }
        // The records must fit the image: checked before they are proposed.
        let mut trial = (*current.image).clone();
        for r in &records {
            if let Err(e) = trial.apply(r) {
                return Ok(Err(ApiError::InvalidRequest(e.to_string())));
            }
        }
        let end = self.log.propose(records).await?;
        Ok(Ok(self.applier.wait_applied(end).await))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
