//! Builds v2 record batches (uncompressed or compressed): what a producer sends. Used by Strom's own client
//! and by tests that need real batches.

use crate::batch::{self, Compression, HEADER_BYTES, MAGIC_V2};
use crate::compression::{self, CompressionError};
use crate::varint;

/// Accumulates records and encodes them as one v2 batch with base offset 0.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<u8>,
}

impl BatchBuilder {
    /// `base_timestamp` is the first record's timestamp; later ones are stored as deltas.
    pub fn new(base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            base_timestamp,
            max_timestamp: base_timestamp,
            count: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: Vec::new(),
        }
    }

    /// Marks the batch as an idempotent producer's.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) {
        self.push_with_headers(key, value, &[], timestamp);
    }

    pub fn push_with_headers(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
        timestamp: i64,
    ) {
        let mut body =
            Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.push(0); // record attributes: unused
        varint::put_varlong(&mut body, timestamp - self.base_timestamp);
        varint::put_varint(&mut body, self.count);
        put_bytes(&mut body, key);
        put_bytes(&mut body, value);
        varint::put_varint(&mut body, headers.len() as i32);
        for (k, v) in headers {
            put_bytes(&mut body, Some(k));
            put_bytes(&mut body, *v);
        }
        varint::put_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(&body);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch will have once built.
    pub fn size(&self) -> usize {
        HEADER_BYTES + self.records.len()
    }

    pub fn build(&self) -> Vec<u8> {
        self.encode(0, &self.records)
    }

    /// Builds the batch, uncompressed, with these attribute bits (transactional, control).
    pub fn build_with_attributes(&self, attributes: i16) -> Vec<u8> {
        self.encode(attributes, &self.records)
    }

    /// Builds the batch with its records section compressed by `codec`.
    pub fn build_compressed(&self, codec: Compression) -> Result<Vec<u8>, CompressionError> {
        if codec == Compression::None {
            return Ok(self.build());
        }
        let packed = compression::compress(codec, &self.records)?;
        Ok(self.encode(codec.attribute_bits(), &packed))
    }

    fn encode(&self, attributes: i16, records: &[u8]) -> Vec<u8> {
        let size = HEADER_BYTES + records.len();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((size - batch::LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, filled in below
        out.extend_from_slice(&attributes.to_be_bytes()); // compression; CreateTime
        out.extend_from_slice(&(self.count - 1).max(0).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(records);
        let crc = batch::crc(&out);
        if let Some(field) = out.get_mut(17..21) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        out
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => varint::put_varint(out, -1),
        Some(b) => {
            varint::put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}
