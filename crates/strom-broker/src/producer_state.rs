//! Idempotent producers: per partition, each producer id's epoch and its last five batches,
//! as Kafka keeps them. A retried batch that matches one of them is answered with its
//! original offsets; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is fenced.
//!
//! Transactions too (Kafka's `ProducerStateManager`): a producer's transactional batch opens
//! its transaction in the partition at that batch's first offset, its marker (commit or
//! abort, written by the transaction coordinator) ends it. The last stable offset is the
//! first offset of the oldest transaction not yet decided below the high watermark: still
//! open, or ended by a marker the high watermark has not passed.

use crate::error::{code, Code};
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, VecDeque};
use strom_log::txn_index::AbortedTxn;
use strom_proto::control::EndTxnMarker;
use strom_proto::BatchHeader;

/// Batches remembered per producer for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Producers remembered per partition; the least recently written is forgotten first.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_write: u64,
    /// The max timestamp of its last batch or marker.
    last_timestamp: i64,
    /// The epoch of the coordinator that wrote its last marker (-1: none yet).
    coordinator_epoch: i32,
    /// The first offset of its open transaction here.
    txn_first_offset: Option<i64>,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_write: 0,
            last_timestamp: -1,
            coordinator_epoch: -1,
            txn_first_offset: None,
        }
    }
}

/// One producer as DescribeProducers lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// -1 when it has no open transaction here.
    pub txn_start_offset: i64,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not idempotent, or the next in sequence: append it.
    Append,
    /// Already appended: answer with these offsets, append nothing.
    Duplicate(BatchMeta),
    /// Refuse with this error code.
    Refuse(Code),
}

#[derive(Debug, Default)]
pub struct ProducerStates {
    /// A BTreeMap, not a HashMap: half the size inline, in every partition, most of them
    /// idle with no producer at all.
    producers: BTreeMap<i64, ProducerEntry>,
    writes: u64,
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Ended transactions whose marker the high watermark has not passed yet: first
    /// offset -> the marker's offset.
    unreplicated: BTreeMap<i64, i64>,
}

fn last_seq(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX, as in Kafka.
    ((i64::from(h.base_sequence) + i64::from(h.last_offset_delta)) % (i64::from(i32::MAX) + 1))
        as i32
}

impl ProducerStates {
    pub fn check(&self, h: &BatchHeader) -> SeqCheck {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return SeqCheck::Append;
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // A producer this partition has no state for starts wherever it is.
            return SeqCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SeqCheck::Refuse(code(ResponseError::InvalidProducerEpoch));
        }
        // A transaction of a newer epoch while the last one is still open here: its marker
        // (protocol v2 gives it the newer epoch) is on its way and would end this batch's
        // transaction too. The client retries once it has landed (Kafka's leader asks the
        // coordinator first and gets CONCURRENT_TRANSACTIONS until then).
        if h.is_transactional()
            && entry.txn_first_offset.is_some()
            && h.producer_epoch > entry.epoch
        {
            return SeqCheck::Refuse(code(ResponseError::NotEnoughReplicas));
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::Refuse(code(ResponseError::OutOfOrderSequenceNumber))
            };
        }
        let last = last_seq(h);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        {
            return SeqCheck::Duplicate(*dup);
        }
        let expected = entry.batches.back().map_or(0, |b| {
            if b.last_seq == i32::MAX {
                0
            } else {
                b.last_seq + 1
            }
        });
        if h.base_sequence != expected {
            return SeqCheck::Refuse(code(ResponseError::OutOfOrderSequenceNumber));
        }
        SeqCheck::Append
    }

    /// Records an appended batch (with its assigned offsets). A transactional batch
    /// without sequences (the group coordinator's offsets in a transaction) opens the
    /// producer's transaction all the same.
    pub fn record(&mut self, h: &BatchHeader) {
        let sequenced = h.base_sequence >= 0;
        if h.producer_id < 0 || !(sequenced || h.is_transactional()) {
            return;
        }
        self.writes += 1;
        if !self.producers.contains_key(&h.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            if let Some(oldest) = self
                .producers
                .iter()
                .filter(|(_, e)| e.txn_first_offset.is_none())
                .min_by_key(|(_, e)| e.last_write)
                .map(|(id, _)| *id)
            {
                self.producers.remove(&oldest);
            }
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if sequenced {
            entry.batches.push_back(BatchMeta {
                first_seq: h.base_sequence,
                last_seq: last_seq(h),
                first_offset: h.base_offset,
                last_offset: h.last_offset(),
            });
            while entry.batches.len() > BATCHES_PER_PRODUCER {
                entry.batches.pop_front();
            }
        }
        entry.last_write = self.writes;
        entry.last_timestamp = h.max_timestamp;
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
    }

    /// The first offset of `producer_id`'s open transaction here.
    pub fn open_txn_of(&self, producer_id: i64) -> Option<i64> {
        self.producers.get(&producer_id)?.txn_first_offset
    }

    /// The coordinator epoch of `producer_id`'s last marker here (-1: none).
    pub fn coordinator_epoch_of(&self, producer_id: i64) -> i32 {
        self.producers
            .get(&producer_id)
            .map_or(-1, |e| e.coordinator_epoch)
    }

    /// Forgets `producer_id`'s batches from `offset` on (appended, then aborted by the
    /// leader): their retry is appended again, not answered as a duplicate.
    pub fn forget_from(&mut self, producer_id: i64, offset: i64) {
        if let Some(e) = self.producers.get_mut(&producer_id) {
            e.batches.retain(|b| b.first_offset < offset);
        }
    }

    /// Whether a marker of `producer_id` at `epoch` from the coordinator of
    /// `coordinator_epoch` may be written (Kafka's checks: an older producer epoch is
    /// INVALID_PRODUCER_EPOCH, an older coordinator TRANSACTION_COORDINATOR_FENCED).
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Option<Code> {
        let entry = self.producers.get(&producer_id)?;
        if epoch < entry.epoch {
            return Some(code(ResponseError::InvalidProducerEpoch));
        }
        (coordinator_epoch < entry.coordinator_epoch)
            .then(|| code(ResponseError::TransactionCoordinatorFenced))
    }

    /// Records an appended marker (`h` its stored header): the producer's transaction here
    /// ends. An abort returns its entry for the aborted-transaction index.
    pub fn record_marker(&mut self, h: &BatchHeader, marker: EndTxnMarker) -> Option<AbortedTxn> {
        self.writes += 1;
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = h.max_timestamp;
        entry.last_write = self.writes;
        let first = entry.txn_first_offset.take()?;
        let marker_offset = h.base_offset;
        self.ongoing.remove(&first);
        self.unreplicated.insert(first, marker_offset);
        let last_stable_offset = self
            .ongoing
            .keys()
            .next()
            .copied()
            .unwrap_or(marker_offset + 1);
        (!marker.commit).then_some(AbortedTxn {
            producer_id: h.producer_id,
            first_offset: first,
            last_offset: marker_offset,
            last_stable_offset,
        })
    }

    /// The last stable offset under `high_watermark`: no read_committed consumer reads at
    /// or past a transaction that is not decided below the high watermark.
    pub fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        self.unreplicated
            .retain(|_, marker| *marker >= high_watermark);
        let ongoing = self.ongoing.keys().next().copied().unwrap_or(i64::MAX);
        let ended = self.unreplicated.keys().next().copied().unwrap_or(i64::MAX);
        high_watermark.min(ongoing).min(ended)
    }

    /// The first offset of a transaction open here (i64::MAX: none): the cleaner's bound.
    /// A transaction whose marker is written is decided (its coordinator prepared it
    /// durably and writes the same marker again if this one is lost).
    pub fn first_unstable(&self) -> i64 {
        self.ongoing.keys().next().copied().unwrap_or(i64::MAX)
    }

    /// Every producer known here, for DescribeProducers.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(id, e)| ActiveProducer {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }
}

/// The snapshot layout's version (Strom's own: Kafka's version 1 keeps one batch each);
/// 101 adds each producer's transaction, coordinator epoch and last timestamp.
const SNAPSHOT_VERSION: i16 = 101;
const SNAPSHOT_VERSION_100: i16 = 100;
/// Bytes of a snapshot before its first producer: version, CRC, producer count.
const SNAPSHOT_HEADER: usize = 2 + 4 + 4;

fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

impl ProducerStates {
    /// The snapshot bytes (docs/log-format.md): version i16, CRC-32C u32 of what follows,
    /// producer count i32, then per producer, least recently written first: id i64, epoch
    /// i16, the open transaction's first offset i64 (-1: none), coordinator epoch i32, last
    /// timestamp i64, batch count i8, and per batch first sequence i32, last sequence i32,
    /// first offset i64, last offset i64. Big-endian, as Kafka's files.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut entries: Vec<(&i64, &ProducerEntry)> = self.producers.iter().collect();
        entries.sort_by_key(|(_, e)| e.last_write);
        let mut body = Vec::with_capacity(4 + entries.len() * 64);
        body.extend_from_slice(&(entries.len() as i32).to_be_bytes());
        for (id, e) in entries {
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The state a snapshot holds; None if it is damaged (CRC, version, length).
    pub fn from_snapshot(bytes: &[u8]) -> Option<ProducerStates> {
        if bytes.len() < SNAPSHOT_HEADER || bytes[2..6] != crc32c(&bytes[6..]).to_be_bytes() {
            return None;
        }
        let v100 = match i16::from_be_bytes([bytes[0], bytes[1]]) {
            SNAPSHOT_VERSION => false,
            SNAPSHOT_VERSION_100 => true,
            _ => return None,
        };
        let mut r = Reader(&bytes[6..]);
        let count = usize::try_from(r.i32()?).ok()?;
        let mut state = ProducerStates::default();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = i16::from_be_bytes(r.take()?);
            let (txn_first_offset, coordinator_epoch, last_timestamp) = if v100 {
                (-1, -1, -1)
            } else {
                (r.i64()?, r.i32()?, r.i64()?)
            };
            let n = r.take::<1>()?[0] as usize;
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            state.writes += 1;
            let last_write = state.writes;
            let txn_first_offset = (txn_first_offset >= 0).then_some(txn_first_offset);
            if let Some(first) = txn_first_offset {
                state.ongoing.insert(first, id);
            }
            state.producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_write,
                    last_timestamp,
                    coordinator_epoch,
                    txn_first_offset,
                },
            );
        }
        r.0.is_empty().then_some(state)
    }
}

/// Big-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_proto::batch::set_base_offset;
    use strom_proto::BatchBuilder;

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, offset: i64) -> BatchHeader {
        let mut b = BatchBuilder::new(0).producer(pid, epoch, seq);
        for _ in 0..records {
            b.push(None, Some(b"v"), 0);
        }
        let mut bytes = b.build();
        set_base_offset(&mut bytes, offset);
        BatchHeader::parse(&bytes).unwrap()
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        let first = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&first), SeqCheck::Append);
        s.record(&first);
        let second = header(7, 0, 3, 2, 3);
        assert_eq!(s.check(&second), SeqCheck::Append);
        s.record(&second);
        assert_eq!(
            s.check(&header(7, 0, 0, 3, 99)),
            SeqCheck::Duplicate(BatchMeta {
                first_seq: 0,
                last_seq: 2,
                first_offset: 0,
                last_offset: 2
            })
        );
        assert_eq!(
            s.check(&header(7, 0, 6, 1, 99)),
            SeqCheck::Refuse(code(ResponseError::OutOfOrderSequenceNumber))
        );
        assert_eq!(s.check(&header(7, 0, 5, 1, 99)), SeqCheck::Append);
        assert_eq!(
            s.check(&header(7, 1, 3, 1, 99)),
            SeqCheck::Refuse(code(ResponseError::OutOfOrderSequenceNumber))
        );
        assert_eq!(s.check(&header(7, 1, 0, 1, 99)), SeqCheck::Append);
        s.record(&header(7, 1, 0, 1, 5));
        assert_eq!(
            s.check(&header(7, 0, 5, 1, 99)),
            SeqCheck::Refuse(code(ResponseError::InvalidProducerEpoch))
        );
        assert_eq!(s.check(&header(-1, -1, -1, 1, 99)), SeqCheck::Append);
    }

    #[test]
    fn a_snapshot_restores_every_producer_and_refuses_damage() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1, i64::from(i)));
        }
        s.record(&header(2, 3, 0, 4, 7));
        let bytes = s.to_snapshot();
        let back = ProducerStates::from_snapshot(&bytes).unwrap();
        for h in [
            header(1, 0, 6, 1, 99),
            header(1, 0, 2, 1, 99),
            header(2, 3, 0, 4, 99),
        ] {
            assert_eq!(back.check(&h), s.check(&h));
            assert!(matches!(back.check(&h), SeqCheck::Duplicate(_)));
        }
        assert_eq!(back.check(&header(1, 0, 7, 1, 99)), SeqCheck::Append);
        assert_eq!(
            back.check(&header(2, 2, 4, 1, 99)),
            s.check(&header(2, 2, 4, 1, 99))
        );
        for cut in [0, 5, bytes.len() - 1] {
            assert!(
                ProducerStates::from_snapshot(&bytes[..cut]).is_none(),
                "{cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(ProducerStates::from_snapshot(&flipped).is_none());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1, i64::from(i)));
        }
        assert!(matches!(
            s.check(&header(1, 0, 6, 1, 0)),
            SeqCheck::Duplicate(_)
        ));
        assert!(matches!(
            s.check(&header(1, 0, 2, 1, 0)),
            SeqCheck::Duplicate(_)
        ));
        assert!(matches!(
            s.check(&header(1, 0, 1, 1, 0)),
            SeqCheck::Refuse(_)
        ));
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, records: usize, offset: i64) -> BatchHeader {
        let mut b = BatchBuilder::new(0).producer(pid, epoch, seq);
        for _ in 0..records {
            b.push(None, Some(b"v"), 0);
        }
        let mut bytes = b.build_with_attributes(strom_proto::batch::TRANSACTIONAL_BIT);
        set_base_offset(&mut bytes, offset);
        BatchHeader::parse(&bytes).unwrap()
    }

    fn marker(pid: i64, epoch: i16, commit: bool, offset: i64) -> (BatchHeader, EndTxnMarker) {
        let m = EndTxnMarker {
            commit,
            coordinator_epoch: 3,
        };
        let mut bytes = m.batch(pid, epoch, 0);
        set_base_offset(&mut bytes, offset);
        (BatchHeader::parse(&bytes).unwrap(), m)
    }

    #[test]
    fn transactions_hold_the_last_stable_offset_until_their_marker_is_replicated() {
        let mut s = ProducerStates::default();
        s.record(&header(9, 0, 0, 2, 0)); // not transactional
        s.record(&txn_header(1, 0, 0, 3, 2));
        s.record(&txn_header(2, 0, 0, 1, 5));
        s.record(&txn_header(1, 0, 3, 1, 6));
        assert_eq!(s.last_stable_offset(7), 2);
        let (h, m) = marker(1, 0, false, 7);
        assert_eq!(
            s.record_marker(&h, m),
            Some(AbortedTxn {
                producer_id: 1,
                first_offset: 2,
                last_offset: 7,
                last_stable_offset: 5,
            })
        );
        assert_eq!(
            s.last_stable_offset(7),
            2,
            "the marker is not replicated yet"
        );
        assert_eq!(
            s.last_stable_offset(8),
            5,
            "producer 2's transaction is open"
        );
        let (h, m) = marker(2, 0, true, 8);
        assert_eq!(s.record_marker(&h, m), None, "a commit is not indexed");
        assert_eq!(s.last_stable_offset(9), 9);
        assert_eq!(
            s.check_marker(1, 0, 2),
            Some(code(ResponseError::TransactionCoordinatorFenced))
        );
        assert_eq!(s.check_marker(1, 0, 3), None);
        // A bumped epoch (protocol v2) ends the transaction and starts sequences again.
        s.record(&txn_header(2, 0, 1, 1, 9));
        let (h, m) = marker(2, 1, false, 10);
        assert!(s.record_marker(&h, m).is_some());
        assert_eq!(
            s.check_marker(2, 0, 3),
            Some(code(ResponseError::InvalidProducerEpoch))
        );
        assert_eq!(s.check(&txn_header(2, 1, 0, 1, 11)), SeqCheck::Append);
    }

    #[test]
    fn a_newer_epochs_transaction_waits_for_the_open_ones_marker() {
        let mut s = ProducerStates::default();
        s.record(&txn_header(3, 4, 0, 2, 0));
        assert_eq!(
            s.check(&txn_header(3, 5, 0, 1, 2)),
            SeqCheck::Refuse(code(ResponseError::NotEnoughReplicas)),
            "the marker of epoch 5 is still to come"
        );
        let (h, m) = marker(3, 5, true, 2);
        s.record_marker(&h, m);
        assert_eq!(s.check(&txn_header(3, 5, 0, 1, 3)), SeqCheck::Append);
    }

    #[test]
    fn an_open_transaction_survives_a_snapshot() {
        let mut s = ProducerStates::default();
        s.record(&txn_header(4, 2, 0, 3, 10));
        let mut back = ProducerStates::from_snapshot(&s.to_snapshot()).unwrap();
        assert_eq!(back.last_stable_offset(20), 10);
        assert_eq!(back.active(), s.active());
        assert_eq!(back.active()[0].txn_start_offset, 10);
        let (h, m) = marker(4, 2, true, 13);
        back.record_marker(&h, m);
        assert_eq!(back.last_stable_offset(20), 20);
    }
}
