//! The single-node release's metadata log: JSON record values in ordinary batches in
//! `__cluster_metadata-0`, with no `quorum-state` beside it. It is only read, once, when
//! such a data dir is upgraded to a one-voter quorum (`open::upgrade_single_node_log`).

use super::Applier;
use crate::error::BrokerError;
use strom_log::Log;
use strom_meta::MetadataRecord;
use strom_proto::records;

/// Replays the whole partition into the applier.
pub fn replay(log: &Log, applier: &Applier) -> Result<(), BrokerError> {
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let Some(slice) = log.read(offset, 1 << 20, None)?.slice else {
            break;
        };
        let bytes = slice.read_to_vec()?;
        let batches =
            strom_proto::batch::split(&bytes).map_err(|e| BrokerError::Metadata(e.to_string()))?;
        for (h, batch) in batches {
            let records = decode(batch)?;
            applier
                .apply(&records, h.next_offset())
                .map_err(|e| BrokerError::Metadata(format!("batch at {offset}: {e}")))?;
            offset = h.next_offset();
        }
    }
    Ok(())
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
