//! The metadata log and the image built from it.
//!
//! Records are appended, as JSON record values in ordinary batches, to the partition
//! `__cluster_metadata-0` of the first log dir, synced, and only then applied to the image
//! every handler reads. On start-up the whole partition is replayed. A single node is its own
//! controller; the cluster issue puts this log under openraft without changing the records.

use crate::error::BrokerError;
use std::sync::{Arc, PoisonError, RwLock};
use strom_log::Log;
use strom_meta::{ApiError, MetadataImage, MetadataRecord};
use strom_proto::{records, BatchBuilder};

pub const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(Debug)]
pub struct MetadataStore {
    image: RwLock<Arc<MetadataImage>>,
    log: Arc<Log>,
    /// One writer at a time: a commit reads the image, appends, then publishes.
    write: tokio::sync::Mutex<()>,
}

impl MetadataStore {
    /// Replays the metadata partition into an image.
    pub fn open(log: Arc<Log>) -> Result<MetadataStore, BrokerError> {
        let mut image = MetadataImage::default();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let Some(slice) = log.read(offset, 1 << 20, None)?.slice else {
                break;
            };
            let bytes = slice.read_to_vec()?;
            for (h, batch) in strom_proto::batch::split(&bytes)
                .map_err(|e| BrokerError::Metadata(e.to_string()))?
            {
                for r in records::decode(batch).map_err(|e| BrokerError::Metadata(e.to_string()))? {
                    let record = MetadataRecord::decode(r.value.unwrap_or_default())
                        .map_err(|e| BrokerError::Metadata(format!("offset {}: {e}", r.offset)))?;
                    image
                        .apply(&record)
                        .map_err(|e| BrokerError::Metadata(format!("offset {}: {e}", r.offset)))?;
                }
                offset = h.next_offset();
            }
        }
        Ok(MetadataStore {
            image: RwLock::new(Arc::new(image)),
            log,
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// The end of the metadata log: every record in it is committed (one voter).
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs a controller decision against the current image and makes its records durable
    /// and visible. Returns the controller's refusal, or the new image.
    pub async fn commit(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
    ) -> Result<Result<Arc<MetadataImage>, ApiError>, BrokerError> {
        let _w = self.write.lock().await;
        let current = self.image();
        let records = match decide(&current) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if records.is_empty() {
            return Ok(Ok(current));
        }
        let mut next = (*current).clone();
        for r in &records {
            if let Err(e) = next.apply(r) {
                return Ok(Err(ApiError::InvalidRequest(e.to_string())));
            }
        }
        let now = now_ms();
        let mut batch = BatchBuilder::new(now);
        for r in &records {
            batch.push(None, Some(&r.encode()), now);
        }
        let mut bytes = batch.build();
        let info = self.log.append(&mut bytes)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.log.on_durable(
            info.last_offset,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.unwrap_or(Err(strom_log::LogError::Closed))?;
        let next = Arc::new(next);
        *self.image.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
        Ok(Ok(next))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
