//! Transaction markers: the control batches that end a transaction in a partition (Kafka's
//! `EndTransactionMarker`). A marker is a transactional control batch of the producer's id and
//! epoch, no sequence, holding one record: key `int16 version (0), int16 type` (ABORT 0,
//! COMMIT 1), value `int16 version (0), int32 coordinator epoch`.

use crate::batch::{CONTROL_BIT, TRANSACTIONAL_BIT};
use crate::records::Record;

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// The marker batch (base offset 0) for `producer_id`/`producer_epoch`.
    pub fn batch(&self, producer_id: i64, producer_epoch: i16, timestamp: i64) -> Vec<u8> {
        let mut key = vec![0, 0];
        key.extend_from_slice(&i16::from(self.commit).to_be_bytes());
        let mut value = vec![0, 0];
        value.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        let mut b = crate::BatchBuilder::new(timestamp).producer(producer_id, producer_epoch, -1);
        b.push(Some(&key), Some(&value), timestamp);
        b.build_with_attributes(TRANSACTIONAL_BIT | CONTROL_BIT)
    }

    /// The marker a control batch holds (its first record); None if it holds none.
    pub fn from_batch(batch: &[u8]) -> Option<EndTxnMarker> {
        let records = crate::records::decode(batch).ok()?;
        records.first().and_then(EndTxnMarker::from_record)
    }

    /// The marker a control record holds; None for another control record (KRaft's, say)
    /// or one that is not well formed.
    pub fn from_record(r: &Record<'_>) -> Option<EndTxnMarker> {
        let kind: [u8; 2] = r.key?.get(2..4)?.try_into().ok()?;
        let epoch: [u8; 4] = r.value?.get(2..6)?.try_into().ok()?;
        let commit = match i16::from_be_bytes(kind) {
            0 => false,
            1 => true,
            _ => return None,
        };
        Some(EndTxnMarker {
            commit,
            coordinator_epoch: i32::from_be_bytes(epoch),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{split, BatchHeader};

    #[test]
    fn a_marker_is_a_transactional_control_batch_with_one_record() {
        let m = EndTxnMarker {
            commit: true,
            coordinator_epoch: 7,
        };
        let bytes = m.batch(42, 3, 1_000);
        let batches = split(&bytes).unwrap();
        assert_eq!(batches.len(), 1);
        let h: &BatchHeader = &batches[0].0;
        assert_eq!(EndTxnMarker::from_batch(&bytes), Some(m));
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, -1)
        );
        crate::batch::validate(&bytes).unwrap();
        let records = crate::records::decode(&bytes).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key, Some(&[0, 0, 0, 1][..]));
        assert_eq!(records[0].value, Some(&[0, 0, 0, 0, 0, 7][..]));
        assert_eq!(EndTxnMarker::from_record(&records[0]), Some(m));
        let abort = EndTxnMarker {
            commit: false,
            coordinator_epoch: 0,
        };
        let records =
            crate::records::decode(&abort.batch(1, 0, 5)).map(|r| EndTxnMarker::from_record(&r[0]));
        assert_eq!(records.unwrap(), Some(abort));
    }
}
