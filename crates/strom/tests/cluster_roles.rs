//! Process clusters whose nodes have one role, and dynamic quorums (KIP-853): three
//! controller-only nodes with two broker-only nodes that follow the log as observers
//! (through their client listeners: they have no controller listener); a quorum started by
//! its first bootstrap server alone that gains voters and loses its leader as a voter, with
//! `strom cluster add-voter | remove-voter`, and keeps that voter set across restarts.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The quorum as `addr` describes it: (voters, observers), each sorted.
fn roles(addr: &str) -> (Vec<i64>, Vec<i64>) {
    let c = json(addr, &["cluster", "describe"]);
    let ids = |role: &str| {
        let mut v: Vec<i64> = c["quorum"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["role"] == role)
            .map(|r| r["node_id"].as_i64().unwrap())
            .collect();
        v.sort();
        v
    };
    (ids("voter"), ids("observer"))
}

/// Waits up to 10 s for `addr` to describe the quorum as `want`.
fn await_roles(addr: &str, want: (Vec<i64>, Vec<i64>)) {
    let started = Instant::now();
    loop {
        let got = roles(addr);
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "quorum roles {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write(dir: &Path, id: i32, text: String) -> PathBuf {
    let path = dir.join(format!("node{id}.properties"));
    let data = dir.join(format!("data{id}"));
    let text = format!(
        "node.id={id}\n{text}log.dirs={}\ngroup.initial.rebalance.delay.ms=0\n",
        data.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Nodes 1-3 controllers only, 4 and 5 brokers only, on a static quorum.
fn write_dedicated(dir: &Path) -> Vec<PathBuf> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters: Vec<String> = (0..3)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[i]))
        .collect();
    let quorum = format!(
        "controller.listener.names=CONTROLLER\ncontroller.quorum.voters={}\n\
         broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n",
        voters.join(",")
    );
    let controllers = (0..3).map(|i| {
        let listeners = format!("listeners=CONTROLLER://127.0.0.1:{}\n", ports[i]);
        write(
            dir,
            i as i32 + 1,
            format!("process.roles=controller\n{listeners}{quorum}"),
        )
    });
    let brokers = (4..=5).map(|id| {
        let listeners = "listeners=PLAINTEXT://127.0.0.1:0\n";
        write(
            dir,
            id,
            format!("process.roles=broker\n{listeners}{quorum}"),
        )
    });
    controllers.chain(brokers).collect()
}

fn produce(addr: &str, topic: &str, n: usize) {
    let mut p = std::process::Command::new(STROM)
        .args(["produce", topic, "--bootstrap-server", addr])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = (0..n).map(|i| format!("record {i}\n")).collect();
    std::io::Write::write_all(p.stdin.as_mut().unwrap(), lines.as_bytes()).unwrap();
    drop(p.stdin.take());
    assert!(p.wait().unwrap().success());
}

fn restart(n: &mut Node) {
    let mut child = spawn(&n.config);
    n.addr = ready(&mut child, &n.config);
    n.child = Some(child);
}

#[test]
fn dedicated_controllers_lead_brokers_that_observe() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = start_all(&write_dedicated(tmp.path()));
    let (brokers, leader, _) = cluster(&nodes[3].addr);
    assert_eq!(brokers, vec![4, 5], "controllers are not brokers");
    assert!((1..=3).contains(&leader), "a controller leads: {leader}");
    await_roles(&nodes[4].addr, (vec![1, 2, 3], vec![4, 5]));
    // A controller-only node learns the cluster id from the log.
    let id = json(&nodes[3].addr, &["cluster", "describe"])["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    let props = tmp.path().join("data1").join("meta.properties");
    let started = Instant::now();
    while !std::fs::read_to_string(&props).is_ok_and(|t| t.contains(&id)) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no cluster id in {props:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let topic = ["topics", "create", "t", "--partitions", "4"];
    let (ok, out) = tool(&nodes[3].addr, &topic);
    assert!(ok, "{out}");
    produce(&nodes[3].addr, "t", 20);
    let consume = ["consume", "t", "--from-beginning", "--max-messages", "20"];
    let (ok, out) = tool(&nodes[4].addr, &consume);
    assert!(ok && out.lines().count() == 20, "{out}");
    agree(&nodes[3..], "t");

    // SIGKILL the leading controller: the brokers' admin calls work again within 10 s.
    kill(&mut nodes[leader as usize - 1]);
    create_within(&nodes[4].addr, "after-failover", Duration::from_secs(10));
    let (_, new_leader, _) = cluster(&nodes[4].addr);
    assert!(new_leader != leader && (1..=3).contains(&new_leader));

    // A broker killed is fenced by the controller-only leader; restarted (on a new port) it
    // follows the log again and catches up.
    kill(&mut nodes[3]);
    let started = Instant::now();
    while cluster(&nodes[4].addr).0 != vec![5] {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "broker 4 not fenced"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // (One live broker: a replication factor of 1.)
    let (ok, out) = tool(&nodes[4].addr, &["topics", "create", "while-away"]);
    assert!(ok, "{out}");
    restart(&mut nodes[3]);
    agree(&nodes[3..], "while-away");
    restart(&mut nodes[leader as usize - 1]);
    await_roles(&nodes[3].addr, (vec![1, 2, 3], vec![4, 5]));
}

/// Three combined nodes of a dynamic quorum: each names all three as bootstrap servers.
fn write_dynamic(dir: &Path) -> Vec<PathBuf> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let servers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    (0..3)
        .map(|i| {
            let text = format!(
                "process.roles=broker,controller\n\
                 listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}\n\
                 controller.listener.names=CONTROLLER\n\
                 controller.quorum.bootstrap.servers={}\n",
                ports[i],
                servers.join(",")
            );
            write(dir, i as i32 + 1, text)
        })
        .collect()
}

#[test]
fn a_dynamic_quorum_gains_and_loses_voters() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let configs = write_dynamic(tmp.path());
    let mut nodes = start_all(&configs);
    // The first bootstrap server started the quorum alone; the others observe.
    await_roles(&nodes[2].addr, (vec![1], vec![2, 3]));
    for id in ["2", "3"] {
        let (ok, out) = tool(&nodes[2].addr, &["cluster", "add-voter", "--node-id", id]);
        assert!(ok, "{out}");
    }
    await_roles(&nodes[0].addr, (vec![1, 2, 3], vec![]));
    let (ok, _) = tool(&nodes[2].addr, &["cluster", "add-voter", "--node-id", "3"]);
    assert!(!ok, "a voter is not added twice");

    // The leader removed as a voter steps down and observes; the others elect a leader.
    let (_, leader, _) = cluster(&nodes[1].addr);
    let (ok, out) = tool(
        &nodes[1].addr,
        &["cluster", "remove-voter", "--node-id", &leader.to_string()],
    );
    assert!(ok, "{out}");
    let mut voters = vec![1, 2, 3];
    voters.retain(|v| *v != leader);
    await_roles(&nodes[0].addr, (voters.clone(), vec![leader]));
    let observer = &nodes[leader as usize - 1].addr;
    create_within(observer, "t", Duration::from_secs(10));
    agree(&nodes, "t");

    // The voter set is in the log: every node restarted keeps it.
    for n in &mut nodes {
        kill(n);
    }
    let mut nodes = start_all(&configs);
    await_roles(&nodes[0].addr, (voters.clone(), vec![leader]));
    agree(&nodes, "t");

    // A voter back on another controller port: the quorum records where it is now and it
    // follows the log again.
    let moved = (voters[0] - 1) as usize;
    kill(&mut nodes[moved]);
    let text = std::fs::read_to_string(&configs[moved]).unwrap();
    let listeners = text.lines().find(|l| l.starts_with("listeners=")).unwrap();
    let port = format!("CONTROLLER://127.0.0.1:{}", free_port());
    let moved_listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,{port}");
    std::fs::write(&configs[moved], text.replace(listeners, &moved_listeners)).unwrap();
    restart(&mut nodes[moved]);
    create_within(
        &nodes[leader as usize - 1].addr,
        "moved",
        Duration::from_secs(10),
    );
    agree(&nodes, "moved");
    await_roles(&nodes[moved].addr, (voters, vec![leader]));
}
