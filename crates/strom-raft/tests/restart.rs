//! Restart and damage tests: what the stores wrote comes back equal after reopening from
//! disk; damaged files give errors, never panics.

mod common;

use common::{open_storage, TestImage};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder,
};
use std::collections::{BTreeMap, BTreeSet};
use strom_raft::types::{LogId, Vote};
use strom_raft::{Payload, QuorumNode, TypeConfig};
use tempfile::TempDir;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// Entries 0..n: a membership first, then payloads (some not UTF-8), a blank every 7th.
fn entries(n: u64) -> Vec<Entry<TypeConfig>> {
    let nodes: BTreeMap<u64, QuorumNode> = (1..=3)
        .map(|i| (i, QuorumNode::new("127.0.0.1", 9090 + i as u16)))
        .collect();
    let voters: BTreeSet<u64> = nodes.keys().copied().collect();
    (0..n)
        .map(|i| {
            let payload = match i {
                0 => EntryPayload::Membership(Membership::new(vec![voters.clone()], nodes.clone())),
                i if i % 7 == 0 => EntryPayload::Blank,
                i if i % 2 == 0 => EntryPayload::Normal(Payload(vec![0xff, i as u8, 0, 0x80])),
                i => EntryPayload::Normal(Payload(format!("{{\"record\":{i}}}").into_bytes())),
            };
            Entry {
                log_id: log_id(1 + i / 10, i),
                payload,
            }
        })
        .collect()
}

fn json(e: &[Entry<TypeConfig>]) -> String {
    serde_json::to_string(e).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_log_vote_purge_and_snapshot() {
    let tmp = TempDir::new().unwrap();
    let all = entries(30);
    let (dir, mut store, mut sm) = open_storage(tmp.path());
    store.blocking_append(all.clone()).await.unwrap();
    let vote = Vote::new_committed(3, 2);
    store.save_vote(&vote).await.unwrap();
    sm.apply(all[..12].to_vec()).await.unwrap();
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    store.purge(log_id(1, 5)).await.unwrap();
    let state = store.get_log_state().await.unwrap();
    let image = sm.handle().with_applier(|a| a.clone());
    drop((store, sm));
    drop(dir);

    let (_dir, mut store, mut sm) = open_storage(tmp.path());
    assert_eq!(store.get_log_state().await.unwrap(), state);
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(3, 29)));
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    let back = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(
        json(&back),
        json(&all[6..]),
        "entries after the purge come back equal"
    );
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 11)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
    assert_eq!(sm.handle().with_applier(|a| a.clone()), image);
    let current = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("snapshot survives");
    assert_eq!(current.meta, snap.meta);
    assert_eq!(current.snapshot.into_inner(), snap.snapshot.into_inner());
    assert!(tmp
        .path()
        .join("__cluster_metadata-0/00000000000000000012-0000000002.checkpoint")
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_past_the_log_end_then_append() {
    let tmp = TempDir::new().unwrap();
    let (dir, mut store, _sm) = open_storage(tmp.path());
    store.blocking_append(entries(5)).await.unwrap();
    // As after installing a snapshot at 40 on a follower that had 0..4.
    store.purge(log_id(4, 40)).await.unwrap();
    let next = Entry::<TypeConfig> {
        log_id: log_id(5, 41),
        payload: EntryPayload::Normal(Payload(b"after".to_vec())),
    };
    store.blocking_append([next.clone()]).await.unwrap();
    drop(store);
    drop(dir);
    let (_dir, mut store, _sm) = open_storage(tmp.path());
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(4, 40)));
    assert_eq!(st.last_log_id, Some(log_id(5, 41)));
    let back = store.try_get_log_entries(0..).await.unwrap();
    assert_eq!(json(&back), json(&[next]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_then_reopen() {
    let tmp = TempDir::new().unwrap();
    let (dir, mut store, _sm) = open_storage(tmp.path());
    let all = entries(20);
    store.blocking_append(all.clone()).await.unwrap();
    store.truncate(log_id(1, 8)).await.unwrap();
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 7))
    );
    let mut newer = entries(12)[8..].to_vec();
    for e in &mut newer {
        e.log_id = log_id(9, e.log_id.index);
    }
    store.blocking_append(newer.clone()).await.unwrap();
    drop(store);
    drop(dir);
    let (_dir, mut store, _sm) = open_storage(tmp.path());
    let back = store.try_get_log_entries(0..).await.unwrap();
    let mut want = all[..8].to_vec();
    want.extend(newer);
    assert_eq!(json(&back), json(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_errors_not_panics() {
    let tmp = TempDir::new().unwrap();
    let part = tmp.path().join("__cluster_metadata-0");
    {
        let (dir, mut store, _sm) = open_storage(tmp.path());
        store.blocking_append(entries(10)).await.unwrap();
        dir.close().unwrap();
    }
    // Flip a byte inside a record value: the clean shutdown makes the log trust the file.
    let seg = part.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    {
        let (_dir, mut store, _sm) = open_storage(tmp.path());
        let read = store.try_get_log_entries(0..).await;
        assert!(read.is_err(), "a CRC failure is a StorageError");
    }
    // A damaged quorum-state is an error at open, not a silent reset of the vote.
    std::fs::write(part.join("quorum-state"), b"{\"vote\": [garbage").unwrap();
    let dir = strom_log::LogDir::open(tmp.path(), Default::default(), &|_| {
        strom_raft::metadata_log_config()
    })
    .unwrap();
    let log = strom_raft::open_metadata_log(&dir).unwrap();
    assert!(strom_raft::LogStore::open(log).is_err());
    // A damaged snapshot is set aside, not loaded.
    std::fs::write(
        part.join("00000000000000000009-0000000001.checkpoint"),
        b"junk",
    )
    .unwrap();
    let sm = strom_raft::StateMachineStore::open(&part, TestImage::default()).unwrap();
    assert!(sm.handle().current_snapshot().is_none());
    assert!(part
        .join("00000000000000000009-0000000001.checkpoint.damaged")
        .exists());
}
