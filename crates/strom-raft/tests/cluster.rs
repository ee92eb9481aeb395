//! A 3-node in-process quorum over the real stores and an in-memory network: initialize,
//! elect, replicate writes, fail over, then snapshot + purge and a lagging node catching up
//! through install_snapshot after a restart from its own disk.

mod common;

use common::{open_storage, Router, TestImage};
use openraft::{Config, ServerState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use strom_log::LogDir;
use strom_raft::types::Raft;
use strom_raft::{Payload, QuorumNode, SmHandle};
use tempfile::TempDir;

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

struct Node {
    raft: Raft,
    image: SmHandle<TestImage>,
    _dir: LogDir,
}

fn config() -> Arc<Config> {
    let c = Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(c.validate().expect("config"))
}

async fn start(id: u64, path: &Path, router: &Router) -> Node {
    let (dir, store, sm) = open_storage(path);
    let image = sm.handle();
    let raft = Raft::new(id, config(), router.clone(), store, sm)
        .await
        .expect("raft");
    router.add(id, raft.clone());
    Node {
        raft,
        image,
        _dir: dir,
    }
}

async fn leader_of(nodes: &BTreeMap<u64, Node>) -> u64 {
    let any = nodes.values().next().expect("a node");
    let m = any
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.current_leader.is_some_and(|l| nodes.contains_key(&l)),
            "leader",
        )
        .await
        .expect("a leader among the running nodes");
    m.current_leader.expect("leader")
}

async fn write(raft: &Raft, from: u64, n: u64) -> u64 {
    let mut last = 0;
    for i in from..from + n {
        let resp = raft
            .client_write(Payload(format!("{{\"record\":{i}}}").into_bytes()))
            .await
            .expect("client_write");
        last = resp.log_id.index;
    }
    last
}

async fn all_applied(nodes: &BTreeMap<u64, Node>, index: u64) {
    for (id, n) in nodes {
        n.raft
            .wait(WAIT)
            .applied_index_at_least(Some(index), format!("node {id} applied {index}"))
            .await
            .expect("applied");
    }
    let images: Vec<TestImage> = nodes
        .values()
        .map(|n| n.image.with_applier(|a| a.clone()))
        .collect();
    for img in &images {
        assert_eq!(img, &images[0], "all state machines equal");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_fail_over_and_catch_up() {
    let tmp = TempDir::new().unwrap();
    let path = |id: u64| -> PathBuf { tmp.path().join(format!("node-{id}")) };
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(id, &path(id), &router).await);
    }
    // All voters in one initialize call, on one node only.
    let members: BTreeMap<u64, QuorumNode> = (1..=3)
        .map(|i| (i, QuorumNode::new("127.0.0.1", 9000 + i as u16)))
        .collect();
    nodes[&1]
        .raft
        .initialize(members)
        .await
        .expect("initialize");

    let leader = leader_of(&nodes).await;
    let last = write(&nodes[&leader].raft, 0, 20).await;
    all_applied(&nodes, last).await;
    assert_eq!(nodes[&1].image.with_applier(|a| a.applied.len()), 20);

    // Per-follower matched log ids, from the leader's metrics.
    let m = nodes[&leader].raft.metrics().borrow().clone();
    let repl = m.replication.expect("leader has replication metrics");
    for (id, matched) in &repl {
        if *id != leader {
            assert_eq!(
                matched.map(|l| l.index),
                Some(last),
                "follower {id} matched"
            );
        }
    }

    // Fail over: stop the leader; the other two elect a new one and keep writing.
    let old = leader;
    router.remove(old);
    let stopped = nodes.remove(&old).expect("old leader");
    stopped.raft.shutdown().await.expect("shutdown");
    drop(stopped);
    let leader = leader_of(&nodes).await;
    assert_ne!(leader, old);
    let last = write(&nodes[&leader].raft, 20, 30).await;
    all_applied(&nodes, last).await;

    // Snapshot and purge on both running nodes, while the old leader lags behind.
    for n in nodes.values() {
        n.raft.trigger().snapshot().await.unwrap();
        n.raft
            .wait(WAIT)
            .snapshot(last_log_id_of(&n.raft), "snapshot built")
            .await
            .expect("snapshot");
        n.raft
            .wait(WAIT)
            .metrics(|m| m.purged.map(|p| p.index) == Some(last), "purged")
            .await
            .expect("purged");
    }

    // Restart the old leader from its own disk: its log ends far before the purge point,
    // so the leader must send the snapshot.
    let node = start(old, &path(old), &router).await;
    nodes.insert(old, node);
    all_applied(&nodes, last).await;
    let m = nodes[&old].raft.metrics().borrow().clone();
    assert_eq!(
        m.snapshot.map(|s| s.index),
        Some(last),
        "caught up by install_snapshot"
    );
    assert!(nodes[&old].image.current_snapshot().is_some());

    // And it keeps following: new writes reach all three.
    let leader = leader_of(&nodes).await;
    let last = write(&nodes[&leader].raft, 50, 5).await;
    all_applied(&nodes, last).await;
    assert_eq!(nodes[&old].image.with_applier(|a| a.applied.len()), 55);
    let states: Vec<ServerState> = nodes
        .values()
        .map(|n| n.raft.metrics().borrow().state)
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == ServerState::Leader).count(),
        1
    );
    for n in nodes.values() {
        n.raft.shutdown().await.unwrap();
    }
}

fn last_log_id_of(raft: &Raft) -> openraft::LogId<u64> {
    raft.metrics().borrow().last_applied.expect("applied")
}
