//! A partition's side of transactions: the last stable offset, the markers that end a
//! producer's transaction here (written as the leader, or replayed and replicated), and the
//! coordinator's confirmation of a transaction a produce opened here.
//!
//! A transactional batch that opens its producer's transaction in this partition is
//! appended at once (keeping pipelined produces in order), and the produce is answered only
//! once the coordinator confirmed the partition is in the transaction (KIP-890: protocol v2
//! adds it, v1 only verifies). Until then later batches of that producer here wait on the
//! same confirmation (`TxnCheck::Pending`). If the coordinator refuses, the leader aborts
//! what was opened with a marker of its own (no read_committed consumer ever sees it) and
//! forgets those batches' sequences, so a retry is appended again rather than taken for a
//! duplicate. Kafka checks before it appends instead (its verification guard); either way
//! no transaction is left open in a partition its coordinator does not know of.

use super::{lock, now_ms, wake, Appended, Partition};
use crate::error::{self, Code};
use crate::producer_state::ProducerStates;
use kafka_protocol::error::ResponseError;
use strom_log::LogError;
use strom_proto::control::EndTxnMarker;
use strom_proto::BatchHeader;
use tokio::sync::watch;

/// What a transactional append asks of its produce before it is answered.
#[derive(Debug)]
pub enum TxnCheck {
    /// Nothing: not transactional, or the transaction is confirmed here.
    None,
    /// The append opened this producer's transaction here: ask the coordinator, then
    /// report with `Partition::confirm_txn`.
    Opened {
        producer_id: i64,
        epoch: i16,
        first_offset: i64,
    },
    /// An earlier append opened it and its confirmation is pending: wait for it.
    Pending(watch::Receiver<Option<Result<(), Code>>>),
}

/// Confirmations in flight: producer id -> (first offset of the transaction, the outcome).
pub(super) type Confirmations =
    std::collections::BTreeMap<i64, (i64, watch::Sender<Option<Result<(), Code>>>)>;

impl Partition {
    /// The last stable offset: below it every transaction is decided (its marker below the
    /// high watermark); never past the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset_at(self.high_watermark())
    }

    pub(super) fn last_stable_offset_at(&self, high_watermark: i64) -> i64 {
        lock(&self.producers).last_stable_offset(high_watermark)
    }

    /// The producers this partition knows (DescribeProducers).
    pub fn active_producers(&self) -> Vec<crate::producer_state::ActiveProducer> {
        lock(&self.producers).active()
    }

    /// Writes the marker that ends `producer_id`'s transaction here (WriteTxnMarkers), as
    /// the leader: an abort is added to the aborted-transaction index. Refused for an older
    /// producer epoch or coordinator epoch than the partition has seen.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
    ) -> Result<Appended, Code> {
        let mut producers = lock(&self.producers);
        let epoch = self.leader_epoch_checked(-1)?;
        if let Some(refused) =
            producers.check_marker(producer_id, producer_epoch, marker.coordinator_epoch)
        {
            return Err(refused);
        }
        let mut batch = marker.batch(producer_id, producer_epoch, now_ms());
        strom_proto::batch::set_partition_leader_epoch(&mut batch, epoch);
        let info = self
            .log
            .append(&mut batch)
            .map_err(|e| error::log_error(&e))?;
        let stored = BatchHeader::parse(&batch)
            .map_err(|_| error::code(ResponseError::UnknownServerError))?;
        if let Some(aborted) = producers.record_marker(&stored, marker) {
            self.log
                .append_aborted(aborted)
                .map_err(|e| error::log_error(&e))?;
        }
        self.snapshot_on_roll(&producers);
        drop(producers);
        wake(&self.follower_waiters);
        self.track_durable(info.last_offset);
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time_ms: -1,
            duplicate: false,
            leader_epoch: epoch,
        })
    }

    pub(super) fn marker_bytes(&self, offset: i64) -> Result<Option<Vec<u8>>, LogError> {
        let Some(slice) = self.log.read(offset, 1, None)?.slice else {
            return Ok(None);
        };
        let io = |e: std::io::Error| LogError::Io {
            path: self.log.dir().to_path_buf(),
            source: e,
        };
        slice.read_to_vec().map(Some).map_err(io)
    }

    /// Records a batch the log holds (`bytes` its stored bytes, needed for a marker): a
    /// replayed or replicated marker adds its abort to the index unless it is there.
    pub(super) fn record_stored(
        &self,
        producers: &mut ProducerStates,
        h: &BatchHeader,
        bytes: Option<&[u8]>,
    ) -> Result<(), LogError> {
        if !(h.is_control() && h.is_transactional()) {
            producers.record(h);
            return Ok(());
        }
        let Some(marker) = bytes.and_then(EndTxnMarker::from_batch) else {
            return Ok(());
        };
        let Some(aborted) = producers.record_marker(h, marker) else {
            return Ok(());
        };
        let indexed = self
            .log
            .aborted_txns(aborted.last_offset, i64::MAX)
            .iter()
            .any(|a| a.last_offset == aborted.last_offset);
        match indexed {
            true => Ok(()),
            false => self.log.append_aborted(aborted),
        }
    }

    /// The confirmation a transactional append (its stored headers) asks for: `None` for
    /// others. Under the producers lock, called before (`opened_before`) and after.
    pub(super) fn txn_check(&self, stored: &[BatchHeader], opened_before: Option<i64>) -> TxnCheck {
        let Some(h) = stored
            .iter()
            .find(|h| h.is_transactional() && !h.is_control())
        else {
            return TxnCheck::None;
        };
        let mut pending = lock(&self.confirmations);
        match opened_before {
            None => {
                let (tx, _) = watch::channel(None);
                pending.insert(h.producer_id, (h.base_offset, tx));
                TxnCheck::Opened {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    first_offset: h.base_offset,
                }
            }
            Some(first) => match pending.get(&h.producer_id) {
                Some((f, tx)) if *f == first => TxnCheck::Pending(tx.subscribe()),
                _ => TxnCheck::None,
            },
        }
    }

    /// The coordinator's answer for a transaction `TxnCheck::Opened` here: on a refusal the
    /// transaction is aborted here (see the module comment). Waiting appends get it too.
    pub fn confirm_txn(
        &self,
        producer_id: i64,
        epoch: i16,
        first_offset: i64,
        outcome: Result<(), Code>,
    ) {
        if outcome.is_err() {
            self.abort_opened(producer_id, epoch, first_offset);
        }
        let mut pending = lock(&self.confirmations);
        if pending
            .get(&producer_id)
            .is_some_and(|(f, _)| *f == first_offset)
        {
            if let Some((_, tx)) = pending.remove(&producer_id) {
                let _ = tx.send(Some(outcome));
            }
        }
    }

    /// Ends a transaction the coordinator does not know here with an abort marker, and
    /// forgets the sequences of its batches.
    fn abort_opened(&self, producer_id: i64, epoch: i16, first_offset: i64) {
        let mut producers = lock(&self.producers);
        if producers.open_txn_of(producer_id) != Some(first_offset) || !self.is_leader() {
            return;
        }
        let coordinator_epoch = producers.coordinator_epoch_of(producer_id);
        let marker = EndTxnMarker {
            commit: false,
            coordinator_epoch,
        };
        let mut batch = marker.batch(producer_id, epoch, now_ms());
        strom_proto::batch::set_partition_leader_epoch(&mut batch, self.leader_epoch());
        let appended = self
            .log
            .append(&mut batch)
            .map_err(|e| e.to_string())
            .and_then(|info| {
                let stored = BatchHeader::parse(&batch).map_err(|e| e.to_string())?;
                if let Some(aborted) = producers.record_marker(&stored, marker) {
                    self.log
                        .append_aborted(aborted)
                        .map_err(|e| e.to_string())?;
                }
                Ok(info)
            });
        producers.forget_from(producer_id, first_offset);
        self.log
            .set_first_unstable_offset(producers.first_unstable());
        drop(producers);
        match appended {
            Ok(info) => {
                wake(&self.follower_waiters);
                self.track_durable(info.last_offset);
            }
            Err(e) => {
                tracing::warn!(partition = %self.log_name(), producer_id, error = %e, "aborting an unconfirmed transaction failed")
            }
        }
    }
}
