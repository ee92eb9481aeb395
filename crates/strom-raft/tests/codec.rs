//! Property tests of the encodings: entries and snapshots round-trip through Kafka batches,
//! and random bytes never make a decoder panic.

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use proptest::prelude::*;
use std::path::Path;
use strom_proto::batch;
use strom_raft::codec::{decode_entry, encode_entry};
use strom_raft::types::SnapshotMeta;
use strom_raft::{snapshot, Payload, TypeConfig};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn entry_round_trips(term in 0u64..i32::MAX as u64, index in 0u64..1 << 40, bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let e = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(term, 7), index),
            payload: EntryPayload::Normal(Payload(bytes)),
        };
        let b = encode_entry(&e).unwrap();
        let h = batch::validate(&b).unwrap();
        prop_assert_eq!(h.base_offset as u64, index);
        prop_assert_eq!(h.partition_leader_epoch as u64, term);
        let back = decode_entry(&h, &b, Path::new("x")).unwrap().unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&e).unwrap());
    }

    #[test]
    fn snapshot_round_trips(data in proptest::collection::vec(any::<u8>(), 0..300_000usize), index in 0u64..1000) {
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), index)),
            last_membership: Default::default(),
            snapshot_id: "s".into(),
        };
        let bytes = snapshot::encode(&meta, &data).unwrap();
        let (m, d) = snapshot::decode(&bytes, Path::new("x")).unwrap();
        prop_assert_eq!(m, meta);
        prop_assert_eq!(d, data);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = snapshot::decode(&bytes, Path::new("x"));
        if let Ok(h) = batch::validate(&bytes) {
            let _ = decode_entry(&h, &bytes, Path::new("x"));
        }
    }
}
