//! Decoding the records inside an uncompressed batch. The hot paths never do this; it is for
//! the places that must look inside (timestamp lookups, compaction, tests).

use crate::batch::{BatchHeader, Compression, HEADER_BYTES};
use crate::compression;
use crate::error::BatchError;
use crate::varint;

/// One record of a batch, borrowing from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Decodes every record of a validated, uncompressed batch.
pub fn decode(batch: &[u8]) -> Result<Vec<Record<'_>>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() != Compression::None {
        return Err(BatchError::Compressed);
    }
    decode_section(&header, body(&header, batch)?)
}

/// Decodes every record of a validated batch, compressed or not; a compressed batch's records
/// are decompressed into `scratch` (at most `max_bytes` of them) and borrow from it.
pub fn decode_any<'a>(
    batch: &'a [u8],
    scratch: &'a mut Vec<u8>,
    max_bytes: usize,
) -> Result<Vec<Record<'a>>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let section = body(&header, batch)?;
    if header.compression() == Compression::None {
        return decode_section(&header, section);
    }
    *scratch = compression::decompress(header.compression(), section, max_bytes)
        .map_err(|e| BatchError::Decompress(e.to_string()))?;
    decode_section(&header, scratch)
}

fn body<'a>(header: &BatchHeader, batch: &'a [u8]) -> Result<&'a [u8], BatchError> {
    batch
        .get(HEADER_BYTES..header.size())
        .ok_or(BatchError::Truncated {
            needed: header.size(),
            have: batch.len(),
        })
}

fn decode_section<'a>(
    header: &BatchHeader,
    mut buf: &'a [u8],
) -> Result<Vec<Record<'a>>, BatchError> {
    let mut out = Vec::with_capacity(header.record_count.clamp(0, 1 << 16) as usize);
    for _ in 0..header.record_count {
        let len = usize::try_from(varint::get_varint(&mut buf)?)
            .map_err(|_| BatchError::InvalidField("negative record length"))?;
        let (mut rec, rest) = buf
            .split_at_checked(len)
            .ok_or(BatchError::InvalidField("record overruns batch"))?;
        buf = rest;
        rec = rec
            .get(1..)
            .ok_or(BatchError::InvalidField("empty record"))?;
        let timestamp_delta = varint::get_varlong(&mut rec)?;
        let offset_delta = varint::get_varint(&mut rec)?;
        let key = get_bytes(&mut rec)?;
        let value = get_bytes(&mut rec)?;
        let header_count = varint::get_varint(&mut rec)?;
        let mut headers = Vec::new();
        for _ in 0..header_count.max(0) {
            let k = get_bytes(&mut rec)?.ok_or(BatchError::InvalidField("null header key"))?;
            headers.push((k, get_bytes(&mut rec)?));
        }
        out.push(Record {
            offset: header.base_offset + i64::from(offset_delta),
            timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

fn get_bytes<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, BatchError> {
    let len = varint::get_varint(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let (bytes, rest) = buf
        .split_at_checked(len as usize)
        .ok_or(BatchError::InvalidField("field overruns record"))?;
    *buf = rest;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BatchBuilder;

    #[test]
    fn builder_round_trip() {
        let mut b = BatchBuilder::new(500);
        b.push(Some(b"a"), Some(b"1"), 500);
        b.push(None, None, 490);
        b.push_with_headers(
            Some(b"c"),
            Some(b"3"),
            &[(b"h", Some(b"v")), (b"n", None)],
            510,
        );
        let batch = b.build();
        let recs = decode(&batch).expect("decodes");
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].key, Some(&b"a"[..]));
        assert_eq!(recs[1].key, None);
        assert_eq!(recs[1].timestamp, 490);
        assert_eq!(recs[2].offset, 2);
        assert_eq!(
            recs[2].headers,
            vec![(&b"h"[..], Some(&b"v"[..])), (&b"n"[..], None)]
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 61..300)) {
            // Make the header plausible so the fuzzing reaches the record decoder.
            let len = (bytes.len() - 12) as i32;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            bytes[16] = 2;
            bytes[21] = 0;
            bytes[22] &= 0xf8;
            let _ = decode(&bytes);
        }
    }
}
