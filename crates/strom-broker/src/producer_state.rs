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
