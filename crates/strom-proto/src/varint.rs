//! Zig-zag variable-length integers as Kafka's record format uses them.

use crate::error::BatchError;

pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_unsigned(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut u: u64) {
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Reads a varint from the front of `buf`, advancing it.
pub fn get_varint(buf: &mut &[u8]) -> Result<i32, BatchError> {
    let u = get_unsigned(buf, 5)?;
    let v = ((u >> 1) as i64) ^ -((u & 1) as i64);
    i32::try_from(v).map_err(|_| BatchError::InvalidField("varint out of range"))
}

/// Reads a varlong from the front of `buf`, advancing it.
pub fn get_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let u = get_unsigned(buf, 10)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

fn get_unsigned(buf: &mut &[u8], max_bytes: usize) -> Result<u64, BatchError> {
    let mut u = 0u64;
    for i in 0..max_bytes {
        let (&b, rest) = buf
            .split_first()
            .ok_or(BatchError::InvalidField("truncated varint"))?;
        *buf = rest;
        u |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(u);
        }
    }
    Err(BatchError::InvalidField("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn round_trip(a in proptest::num::i32::ANY, b in proptest::num::i64::ANY) {
            let mut out = Vec::new();
            put_varint(&mut out, a);
            put_varlong(&mut out, b);
            let mut buf = &out[..];
            proptest::prop_assert_eq!(get_varint(&mut buf).unwrap(), a);
            proptest::prop_assert_eq!(get_varlong(&mut buf).unwrap(), b);
            proptest::prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn known_encodings() {
        let mut out = Vec::new();
        put_varint(&mut out, -1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 300);
        assert_eq!(out, [0x01, 0x02, 0xd8, 0x04]);
    }
}
