//! `LocalLog`: the metadata log of a single voter, kept in `__cluster_metadata-0` as JSON
//! record values in ordinary batches (the format of the single-node release). A batch is
//! committed once it is synced; then it is applied.

use super::{Applier, BoxFuture, MetadataLog, ProposeError};
use crate::error::BrokerError;
use std::sync::Arc;
use strom_log::Log;
use strom_meta::MetadataRecord;
use strom_proto::{records, BatchBuilder};

#[derive(Debug)]
pub struct LocalLog {
    log: Arc<Log>,
    applier: Arc<Applier>,
}

impl LocalLog {
    /// Replays the whole partition into the applier.
    pub fn open(log: Arc<Log>, applier: Arc<Applier>) -> Result<LocalLog, BrokerError> {
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let Some(slice) = log.read(offset, 1 << 20, None)?.slice else {
                break;
            };
            let bytes = slice.read_to_vec()?;
            let batches = strom_proto::batch::split(&bytes)
                .map_err(|e| BrokerError::Metadata(e.to_string()))?;
            for (h, batch) in batches {
                let records = decode(batch)?;
                applier
                    .apply(&records, h.next_offset())
                    .map_err(|e| BrokerError::Metadata(format!("batch at {offset}: {e}")))?;
                offset = h.next_offset();
            }
        }
        Ok(LocalLog { log, applier })
    }
}

/// The metadata records of one stored batch.
fn decode(batch: &[u8]) -> Result<Vec<MetadataRecord>, BrokerError> {
    records::decode(batch)
        .map_err(|e| BrokerError::Metadata(e.to_string()))?
        .into_iter()
        .map(|r| {
            MetadataRecord::decode(r.value.unwrap_or_default())
                .map_err(|e| BrokerError::Metadata(format!("offset {}: {e}", r.offset)))
        })
        .collect()
}

impl MetadataLog for LocalLog {
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
        _based_on: i64,
    ) -> BoxFuture<'_, Result<i64, ProposeError>> {
        Box::pin(async move { self.append(records).await.map_err(ProposeError::Storage) })
    }

    fn committed_end(&self) -> i64 {
        self.log.log_end_offset()
    }
}

impl LocalLog {
    /// Appends one batch, syncs it, applies it. (One writer: `MetadataStore::commit`.)
    async fn append(&self, records: Vec<MetadataRecord>) -> Result<i64, BrokerError> {
        {
            let now = super::now_ms();
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
            let end = info.last_offset + 1;
            self.applier
                .apply(&records, end)
                .map_err(|e| BrokerError::Metadata(e.to_string()))?;
            Ok(end)
        }
    }
}
