//! `__transaction_state` records in Kafka's format, so Kafka's tools read Strom's log: the key
//! is `TransactionLogKey` v0 (int16 version, string transactional id), the value
//! `TransactionLogValue` v1 (flexible; v0 is read too), a tombstone removes the id. Written
//! with every field Kafka 4.0 defines, the previous and next producer ids included (tags 0 and
//! 1, which Kafka 4.0 leaves out), so a coordinator that loads a prepared transaction whose
//! epoch ran out completes it with the right producer id.

use super::state::{TxnMetadata, TxnState};
use std::collections::BTreeSet;

/// A record that is not a transaction log record Strom can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable transaction log record: {0}")]
pub struct LogRecordError(pub String);

type Result<T> = std::result::Result<T, LogRecordError>;

pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_string(&mut out, transactional_id);
    out
}

/// The transactional id of a key (a key version other than 0 is an error: Kafka skips it).
pub fn decode_key(mut bytes: &[u8]) -> Result<String> {
    let version = get_i16(&mut bytes)?;
    if version != 0 {
        return Err(LogRecordError(format!("key version {version}")));
    }
    get_string(&mut bytes)
}

/// The value of `m` (version 1).
pub fn encode_value(m: &TxnMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&m.producer_id.to_be_bytes());
    out.extend_from_slice(&m.producer_epoch.to_be_bytes());
    out.extend_from_slice(&m.timeout_ms.to_be_bytes());
    out.push(m.state.id() as u8);
    if m.state == TxnState::Empty {
        put_uvarint(&mut out, 0); // null: Kafka writes no partitions for Empty
    } else {
        let topics = by_topic(&m.partitions);
        put_uvarint(&mut out, topics.len() as u64 + 1);
        for (topic, ids) in topics {
            put_compact_string(&mut out, &topic);
            put_uvarint(&mut out, ids.len() as u64 + 1);
            for id in ids {
                out.extend_from_slice(&id.to_be_bytes());
            }
            put_uvarint(&mut out, 0); // the struct's tagged fields
        }
    }
    out.extend_from_slice(&m.last_update_ms.to_be_bytes());
    out.extend_from_slice(&m.start_ms.to_be_bytes());
    let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
    if m.previous_producer_id != -1 {
        tags.push((0, m.previous_producer_id.to_be_bytes().to_vec()));
    }
    if m.next_producer_id != -1 {
        tags.push((1, m.next_producer_id.to_be_bytes().to_vec()));
    }
    if m.client_version != 0 {
        tags.push((2, m.client_version.to_be_bytes().to_vec()));
    }
    put_uvarint(&mut out, tags.len() as u64);
    for (tag, data) in tags {
        put_uvarint(&mut out, tag);
        put_uvarint(&mut out, data.len() as u64);
        out.extend_from_slice(&data);
    }
    out
}

/// A value of version 0 or 1.
pub fn decode_value(mut b: &[u8]) -> Result<TxnMetadata> {
    let version = get_i16(&mut b)?;
    if !(0..=1).contains(&version) {
        return Err(LogRecordError(format!("value version {version}")));
    }
    let flexible = version >= 1;
    let producer_id = get_i64(&mut b)?;
    let producer_epoch = get_i16(&mut b)?;
    let timeout_ms = get_i32(&mut b)?;
    let status = get_bytes(&mut b, 1)?[0] as i8;
    let state = TxnState::from_id(status)
        .ok_or_else(|| LogRecordError(format!("transaction status {status}")))?;
    let partitions = get_partitions(&mut b, flexible)?;
    let mut m = TxnMetadata::new(producer_id, timeout_ms, get_i64(&mut b)?);
    m.producer_epoch = producer_epoch;
    m.state = state;
    m.partitions = partitions;
    m.start_ms = get_i64(&mut b)?;
    if flexible {
        for _ in 0..get_uvarint(&mut b)? {
            let tag = get_uvarint(&mut b)?;
            let len = usize::try_from(get_uvarint(&mut b)?).unwrap_or(usize::MAX);
            let mut data = get_bytes(&mut b, len)?;
            match tag {
                0 => m.previous_producer_id = get_i64(&mut data)?,
                1 => m.next_producer_id = get_i64(&mut data)?,
                2 => m.client_version = get_i16(&mut data)?,
                _ => {} // a later field: skipped, as Kafka skips unknown tags
            }
        }
    }
    Ok(m)
}

/// The partitions array (null or not), compact in flexible versions.
fn get_partitions(b: &mut &[u8], flexible: bool) -> Result<BTreeSet<(String, i32)>> {
    let count = if flexible {
        get_uvarint(b)? as i64 - 1
    } else {
        i64::from(get_i32(b)?)
    };
    let mut out = BTreeSet::new();
    for _ in 0..count.max(0) {
        let topic = if flexible {
            get_compact_string(b)?
        } else {
            get_string(b)?
        };
        let ids = if flexible {
            get_uvarint(b)? as i64 - 1
        } else {
            i64::from(get_i32(b)?)
        };
        for _ in 0..ids.max(0) {
            out.insert((topic.clone(), get_i32(b)?));
        }
        if flexible {
            skip_tags(b)?;
        }
    }
    Ok(out)
}

fn by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    for (topic, id) in partitions {
        match out.last_mut() {
            Some((t, ids)) if t == topic => ids.push(*id),
            _ => out.push((topic.clone(), vec![*id])),
        }
    }
    out
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_compact_string(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64 + 1);
    out.extend_from_slice(s.as_bytes());
}

fn get_bytes<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if b.len() < n {
        return Err(LogRecordError("truncated".into()));
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Ok(head)
}

fn get_i16(b: &mut &[u8]) -> Result<i16> {
    Ok(i16::from_be_bytes(
        get_bytes(b, 2)?.try_into().unwrap_or_default(),
    ))
}

fn get_i32(b: &mut &[u8]) -> Result<i32> {
    Ok(i32::from_be_bytes(
        get_bytes(b, 4)?.try_into().unwrap_or_default(),
    ))
}

fn get_i64(b: &mut &[u8]) -> Result<i64> {
    Ok(i64::from_be_bytes(
        get_bytes(b, 8)?.try_into().unwrap_or_default(),
    ))
}

fn get_uvarint(b: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = get_bytes(b, 1)?[0];
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(LogRecordError("varint too long".into()))
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| LogRecordError("not UTF-8".into()))
}

fn get_string(b: &mut &[u8]) -> Result<String> {
    let len = get_i16(b)?;
    let len = usize::try_from(len).map_err(|_| LogRecordError("null string".into()))?;
    utf8(get_bytes(b, len)?)
}

fn get_compact_string(b: &mut &[u8]) -> Result<String> {
    let len = get_uvarint(b)?;
    let len = usize::try_from(
        len.checked_sub(1)
            .ok_or_else(|| LogRecordError("null string".into()))?,
    )
    .unwrap_or(usize::MAX);
    utf8(get_bytes(b, len)?)
}

fn skip_tags(b: &mut &[u8]) -> Result<()> {
    for _ in 0..get_uvarint(b)? {
        get_uvarint(b)?;
        let len = usize::try_from(get_uvarint(b)?).unwrap_or(usize::MAX);
        get_bytes(b, len)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        let mut m = TxnMetadata::new(4001, 60_000, 1_700_000_000_123);
        m.producer_epoch = 7;
        m.state = TxnState::Ongoing;
        m.partitions = [
            ("a".to_string(), 1),
            ("a".to_string(), 0),
            ("b".to_string(), 3),
        ]
        .into_iter()
        .collect();
        m.start_ms = 1_700_000_000_000;
        m.previous_producer_id = 4000;
        m.client_version = 2;
        m
    }

    #[test]
    fn keys_and_values_round_trip() {
        assert_eq!(decode_key(&encode_key("tx-1")), Ok("tx-1".to_string()));
        let mut m = ongoing();
        m.last_producer_epoch = -1;
        assert_eq!(decode_value(&encode_value(&m)), Ok(m.clone()));
        let empty = TxnMetadata::new(5, 1000, 9);
        assert_eq!(decode_value(&encode_value(&empty)), Ok(empty));
        m.state = TxnState::PrepareAbort;
        m.next_producer_id = 4002;
        assert_eq!(decode_value(&encode_value(&m)), Ok(m));
    }

    /// The bytes Kafka's generated `TransactionLogValue` v1 writes for `ongoing()`, laid
    /// out field by field from its schema.
    #[test]
    fn a_value_is_laid_out_as_kafkas_schema() {
        let mut want = vec![0, 1];
        want.extend(4001i64.to_be_bytes());
        want.extend(7i16.to_be_bytes());
        want.extend(60_000i32.to_be_bytes());
        want.push(1); // Ongoing
        want.push(3); // two topics
        want.extend([2, b'a', 3]); // "a", two ids
        want.extend(0i32.to_be_bytes());
        want.extend(1i32.to_be_bytes());
        want.push(0);
        want.extend([2, b'b', 2]);
        want.extend(3i32.to_be_bytes());
        want.push(0);
        want.extend(1_700_000_000_123i64.to_be_bytes());
        want.extend(1_700_000_000_000i64.to_be_bytes());
        want.extend([2, 0, 8]); // two tags: PreviousProducerId
        want.extend(4000i64.to_be_bytes());
        want.extend([2, 2]); // ClientTransactionVersion
        want.extend(2i16.to_be_bytes());
        assert_eq!(encode_value(&ongoing()), want);
        // What Kafka 4.1.2's generated classes write for the same (`MessageUtil.
        // toVersionPrefixedBytes` of `TransactionLogValue` v1 and `TransactionLogKey` v0).
        let kafka: &[u8] = &[
            0, 1, 0, 0, 0, 0, 0, 0, 15, 161, 0, 7, 0, 0, 234, 96, 1, 3, 2, 97, 3, 0, 0, 0, 0, 0, 0,
            0, 1, 0, 2, 98, 2, 0, 0, 0, 3, 0, 0, 0, 1, 139, 207, 229, 104, 123, 0, 0, 1, 139, 207,
            229, 104, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 15, 160, 2, 2, 0, 2,
        ];
        assert_eq!(encode_value(&ongoing()), kafka);
        assert_eq!(encode_key("tx-1"), [0, 0, 0, 4, b't', b'x', b'-', b'1']);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let value = encode_value(&ongoing());
        for n in 0..value.len() {
            assert!(decode_value(&value[..n]).is_err(), "{n} bytes");
        }
        assert!(decode_key(&[0, 1, 0, 1, b'x']).is_err(), "key version 1");
        assert!(decode_value(&[0, 9]).is_err());
    }
}
