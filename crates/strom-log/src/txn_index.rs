//! The aborted-transaction index of a segment (Kafka's `.txnindex`, `TransactionIndex`): one
//! fixed 34-byte big-endian entry per transaction aborted by a marker in the segment,
//! `int16 version (0) | int64 producer id | int64 first offset | int64 last offset (the
//! abort marker's) | int64 last stable offset (when the marker was written)`, in the order of
//! their markers. A read_committed fetch collects the aborted transactions that overlap what
//! it returns (`overlapping`), so the consumer can drop their records. This part is the
//! format and the lookup; the file per segment builds on it.

/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 34;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        let fields = [
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        ];
        for (chunk, v) in out[2..].chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// The entries of an index file's bytes; a torn last entry (a crash mid-write) is left
    /// out, and so is anything from an entry of an unknown version on.
    pub fn decode_all(bytes: &[u8]) -> Vec<AbortedTxn> {
        let mut out = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
        for entry in bytes.chunks_exact(ENTRY_BYTES) {
            if entry[..2] != [0, 0] {
                break;
            }
            let field = |i: usize| {
                let at = 2 + 8 * i;
                i64::from_be_bytes(entry[at..at + 8].try_into().unwrap_or_default())
            };
            out.push(AbortedTxn {
                producer_id: field(0),
                first_offset: field(1),
                last_offset: field(2),
                last_stable_offset: field(3),
            });
        }
        out
    }
}

/// What a read_committed fetch of `[fetch_offset, upper_bound)` must tell the consumer, from
/// the entries of the segments from the one it reads on, in order (Kafka's
/// `collectAbortedTxns`): every transaction that ends at or after the fetch offset and starts
/// before the bound; done at the first entry whose last stable offset reaches the bound (no
/// later abort can start before it). Whether it is done is returned too, so the caller
/// stops reading further segments' indexes.
pub fn overlapping(
    entries: &[AbortedTxn],
    fetch_offset: i64,
    upper_bound: i64,
    found: &mut Vec<AbortedTxn>,
) -> bool {
    for e in entries {
        if e.last_offset >= fetch_offset && e.first_offset < upper_bound {
            found.push(*e);
        }
        if e.last_stable_offset >= upper_bound {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_are_34_bytes_and_a_torn_one_is_left_out() {
        let a = txn(7, 100, 150, 100);
        let bytes = a.encode();
        assert_eq!(&bytes[..10], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        let mut file = bytes.to_vec();
        file.extend(txn(8, 160, 170, 151).encode());
        file.extend(&txn(9, 1, 2, 3).encode()[..20]);
        assert_eq!(
            AbortedTxn::decode_all(&file),
            vec![a, txn(8, 160, 170, 151)]
        );
        let mut unknown = txn(1, 1, 1, 1).encode();
        unknown[1] = 1;
        assert!(AbortedTxn::decode_all(&unknown).is_empty());
    }

    #[test]
    fn a_fetch_is_told_the_aborts_it_overlaps() {
        let entries = [
            txn(1, 0, 10, 0),
            txn(2, 5, 30, 11),
            txn(3, 40, 50, 31),
            txn(4, 60, 70, 100),
            txn(5, 80, 90, 101),
        ];
        let mut found = Vec::new();
        assert!(!overlapping(&entries[..3], 20, 45, &mut found));
        assert_eq!(
            found,
            vec![entries[1], entries[2]],
            "ended before 20: left out"
        );
        let mut found = Vec::new();
        assert!(
            overlapping(&entries, 20, 65, &mut found),
            "done at the entry whose lso reaches 65"
        );
        assert_eq!(found, vec![entries[1], entries[2], entries[3]]);
    }
}
