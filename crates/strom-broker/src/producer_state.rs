//! Idempotent producers: per partition, each producer id's epoch and its last five batches,
//! as Kafka keeps them. A retried batch that matches one of them is answered with its
//! original offsets; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is fenced.

use crate::error::{code, Code};
use kafka_protocol::error::ResponseError;
use std::collections::{HashMap, VecDeque};
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

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_write: u64,
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
    producers: HashMap<i64, ProducerEntry>,
    writes: u64,
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

    /// Records an appended batch (with its assigned offsets).
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        self.writes += 1;
        if !self.producers.contains_key(&h.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            if let Some(oldest) = self
                .producers
                .iter()
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
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while entry.batches.len() > BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.last_write = self.writes;
    }
}

/// The snapshot layout's version (Strom's own: Kafka's version 1 keeps one batch each).
const SNAPSHOT_VERSION: i16 = 100;
/// Bytes of a snapshot before its first producer: version, CRC, producer count.
const SNAPSHOT_HEADER: usize = 2 + 4 + 4;

fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

impl ProducerStates {
    /// The snapshot bytes (docs/log-format.md): version i16, CRC-32C u32 of what follows,
    /// producer count i32, then per producer, least recently written first: id i64, epoch
    /// i16, batch count i8, and per batch first sequence i32, last sequence i32, first
    /// offset i64, last offset i64. Big-endian, as Kafka's files.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut entries: Vec<(&i64, &ProducerEntry)> = self.producers.iter().collect();
        entries.sort_by_key(|(_, e)| e.last_write);
        let mut body = Vec::with_capacity(4 + entries.len() * 64);
        body.extend_from_slice(&(entries.len() as i32).to_be_bytes());
        for (id, e) in entries {
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
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
        if bytes.len() < SNAPSHOT_HEADER
            || bytes[..2] != SNAPSHOT_VERSION.to_be_bytes()
            || bytes[2..6] != crc32c(&bytes[6..]).to_be_bytes()
        {
            return None;
        }
        let mut r = Reader(&bytes[6..]);
        let count = usize::try_from(r.i32()?).ok()?;
        let mut state = ProducerStates::default();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = i16::from_be_bytes(r.take()?);
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
            state.producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_write,
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
}
