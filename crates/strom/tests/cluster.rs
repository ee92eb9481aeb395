//! Process clusters on 127.0.0.1: three `strom broker` processes with a static quorum
//! (`controller.quorum.voters`) form one cluster with one command each and no format step;
//! every broker answers the same metadata; SIGKILL of the quorum leader elects another and
//! admin calls succeed again within 10 s; the killed node catches up when restarted; a
//! restart of every node loses nothing; a node whose log dir belongs to another cluster
//! refuses to start with one line.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;
/// DescribeGroups of `group` sent to the broker at `addr` itself: its error code.
fn describe_group(addr: &str, group: &str) -> i16 {
    use kafka_protocol::messages::{DescribeGroupsRequest, GroupId};
    use kafka_protocol::protocol::StrBytes;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = strom_client::conn::Connection::connect(addr, "test", Duration::from_secs(10))
            .await
            .unwrap();
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(StrBytes::from_string(group.to_string()))];
        conn.call(&req).await.unwrap().groups[0].error_code
    })
}

/// A consumer group works whichever broker its members bootstrap from: FindCoordinator names
/// the leader of the group's `__consumer_offsets` partition, where its offsets are kept.
fn group_across_brokers(nodes: &[Node]) {
    let (ok, out) = tool(
        &nodes[0].addr,
        &["topics", "create", "g", "--partitions", "3"],
    );
    assert!(ok, "{out}");
    let mut p = Command::new(STROM)
        .args(["produce", "g", "--bootstrap-server", &nodes[0].addr])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = (0..30).map(|i| format!("record {i}\n")).collect();
    std::io::Write::write_all(p.stdin.as_mut().unwrap(), lines.as_bytes()).unwrap();
    drop(p.stdin.take());
    assert!(p.wait().unwrap().success());
    let consume = [
        "consume",
        "g",
        "--group",
        "grp",
        "--from-beginning",
        "--max-messages",
        "30",
    ];
    let (ok, out) = tool(&nodes[2].addr, &consume);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 30);
    // Only the coordinator answers for the group; the others send the client to look it up.
    let answers: Vec<i16> = nodes
        .iter()
        .map(|n| describe_group(&n.addr, "grp"))
        .collect();
    assert_eq!(
        answers.iter().filter(|c| **c == 0).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|c| **c == 16).count(),
        2,
        "{answers:?}"
    );
    for n in nodes {
        let d = json(&n.addr, &["groups", "describe", "grp"]);
        let committed: i64 = d["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["current_offset"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(committed, 30, "node {}: {d}", n.id);
    }
}

#[test]
fn three_nodes_form_agree_fail_over_and_restart() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let configs = write_configs(tmp.path(), 3);
    let mut nodes = start_all(&configs);
    let (brokers, leader, voters) = cluster(&nodes[1].addr);
    assert_eq!((brokers, voters), (vec![1, 2, 3], 3));
    for n in &nodes {
        assert_eq!(
            cluster(&n.addr).1,
            leader,
            "node {} names another leader",
            n.id
        );
    }
    let (ok, out) = tool(
        &nodes[2].addr,
        &[
            "topics",
            "create",
            "t",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
    );
    assert!(ok, "{out}");
    let t = agree(&nodes, "t");
    assert_eq!(t[0]["partitions"].as_array().unwrap().len(), 3);
    let (ok, _) = tool(
        &nodes[0].addr,
        &["topics", "create", "big", "--replication-factor", "4"],
    );
    assert!(
        !ok,
        "a replication factor above the broker count is refused"
    );
    group_across_brokers(&nodes);

    // SIGKILL the quorum leader: another is elected and admin calls work again within 10 s.
    let dead = nodes
        .iter()
        .position(|n| i64::from(n.id) == leader)
        .unwrap();
    kill(&mut nodes[dead]);
    let survivor = nodes[(dead + 1) % 3].addr.clone();
    let took = create_within(&survivor, "after-failover", Duration::from_secs(10));
    eprintln!("admin call succeeded {took:?} after the leader was killed");
    let (_, new_leader, _) = cluster(&survivor);
    assert!(new_leader != leader && new_leader > 0, "{new_leader}");

    // The killed node comes back and catches up.
    let mut child = spawn(&nodes[dead].config);
    nodes[dead].addr = ready(&mut child, &nodes[dead].config);
    nodes[dead].child = Some(child);
    agree(&nodes, "after-failover");

    // Every node restarted: nothing of the metadata is lost.
    for n in nodes.iter_mut() {
        kill(n);
    }
    let nodes = start_all(&configs);
    agree(&nodes, "t");
    agree(&nodes, "after-failover");
    assert_eq!(cluster(&nodes[0].addr).0, vec![1, 2, 3]);
}

#[test]
fn a_node_of_another_cluster_refuses_to_start() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let configs = write_configs(tmp.path(), 3);
    let nodes = start_all(&configs);
    // Node 3's log dir now says it belongs to another cluster.
    drop(nodes);
    let meta = tmp.path().join("data3/meta.properties");
    let text = std::fs::read_to_string(&meta).unwrap();
    let other: String = text
        .lines()
        .map(|l| {
            if l.starts_with("cluster.id=") {
                "cluster.id=AAAAAAAAAAAAAAAAAAAAAA".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&meta, other).unwrap();
    let mut others: Vec<Child> = configs[..2].iter().map(|c| spawn(c)).collect();
    let out = Command::new(STROM)
        .args(["broker", "--config"])
        .arg(&configs[2])
        .env("STROM_LOG", "off")
        .output()
        .unwrap();
    for c in others.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cluster AAAAAAAAAAAAAAAAAAAAAA"), "{err}");
}

#[test]
fn five_nodes_survive_the_loss_of_two() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let configs = write_configs(tmp.path(), 5);
    let mut nodes = start_all(&configs);
    let (brokers, leader, voters) = cluster(&nodes[4].addr);
    assert_eq!((brokers.len(), voters), (5, 5));
    // The leader and one more: three of five still commit.
    let dead = nodes
        .iter()
        .position(|n| i64::from(n.id) == leader)
        .unwrap();
    kill(&mut nodes[dead]);
    kill(&mut nodes[(dead + 1) % 5]);
    let survivor = nodes[(dead + 2) % 5].addr.clone();
    create_within(&survivor, "two-down", Duration::from_secs(10));
    // Every live node lists it. (Describing it would ask the dead brokers for offsets:
    // they stay registered until brokers are fenced, issue 10's membership part.)
    for n in nodes.iter().filter(|n| n.child.is_some()) {
        let started = Instant::now();
        while !tool(&n.addr, &["topics", "list"])
            .1
            .lines()
            .any(|l| l.trim() == "two-down")
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "node {} lacks it",
                n.id
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The index of a node that does not lead the quorum.
fn not_leading(nodes: &[Node], leader: i64) -> usize {
    nodes
        .iter()
        .position(|n| i64::from(n.id) != leader)
        .unwrap()
}

/// Whether node `id` is among the brokers `addr` lists (`cluster describe`).
fn lists(addr: &str, id: i64) -> bool {
    cluster(addr).0.contains(&id)
}

#[test]
fn a_dead_broker_is_fenced_and_back_after_a_restart() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let configs = write_configs(tmp.path(), 3);
    for c in &configs {
        let mut text = std::fs::read_to_string(c).unwrap();
        text.push_str("broker.session.timeout.ms=2000\nbroker.heartbeat.interval.ms=300\n");
        std::fs::write(c, text).unwrap();
    }
    let mut nodes = start_all(&configs);
    let (_, leader, _) = cluster(&nodes[0].addr);
    // A broker that is not the quorum leader: its partition (RF 1) loses its leader.
    let victim = not_leading(&nodes, leader);
    let victim_id = i64::from(nodes[victim].id);
    let other = nodes[(victim + 1) % 3].addr.clone();
    let (ok, out) = tool(&other, &["topics", "create", "f", "--partitions", "3"]);
    assert!(ok, "{out}");
    kill(&mut nodes[victim]);
    let started = Instant::now();
    while lists(&other, victim_id) {
        assert!(started.elapsed() < Duration::from_secs(20), "never fenced");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The partition it led has no leader now, and a describe says so.
    let t = json(&other, &["topics", "describe", "f"]);
    let leaders: Vec<i64> = t[0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leader"].as_i64().unwrap())
        .collect();
    assert!(
        leaders.contains(&-1) && !leaders.contains(&victim_id),
        "{t}"
    );
    let mut child = spawn(&nodes[victim].config);
    nodes[victim].addr = ready(&mut child, &nodes[victim].config);
    nodes[victim].child = Some(child);
    assert!(
        lists(&other, victim_id),
        "unfenced once it registered again"
    );
    agree(&nodes, "f");
}

#[test]
fn a_voter_whose_disk_was_wiped_comes_back_as_a_new_incarnation() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let configs = write_configs(tmp.path(), 3);
    let mut nodes = start_all(&configs);
    let (_, leader, _) = cluster(&nodes[0].addr);
    let (ok, out) = tool(
        &nodes[0].addr,
        &["topics", "create", "before", "--partitions", "3"],
    );
    assert!(ok, "{out}");
    agree(&nodes, "before");
    // A follower's disk is wiped while it is down.
    let victim = not_leading(&nodes, leader);
    kill(&mut nodes[victim]);
    std::fs::remove_dir_all(tmp.path().join(format!("data{}", nodes[victim].id))).unwrap();
    let other = nodes[(victim + 1) % 3].addr.clone();
    let (ok, out) = tool(
        &other,
        &["topics", "create", "while-away", "--partitions", "1"],
    );
    assert!(ok, "{out}");
    // It starts (the others readmit it once it has caught up) and knows everything.
    let mut child = spawn(&nodes[victim].config);
    nodes[victim].addr = ready(&mut child, &nodes[victim].config);
    nodes[victim].child = Some(child);
    agree(&nodes, "before");
    agree(&nodes, "while-away");
    let (_, _, voters) = cluster(&nodes[victim].addr);
    assert_eq!(voters, 3);
}

/// A voter the quorum formed without (it started after the other two) gets its directory
/// recorded, so a wipe of its disk is noticed; restarts of the whole cluster never readmit
/// a voter whose log is intact (once a leader readmitted itself, and openraft panicked).
#[test]
fn a_voter_that_starts_late_is_recorded_and_restarts_cleanly() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let configs = write_configs(tmp.path(), 3);
    let mut nodes = start_all(&configs[..2]);
    let mut child = spawn(&configs[2]);
    let addr = ready(&mut child, &configs[2]);
    nodes.push(Node {
        id: 3,
        config: configs[2].clone(),
        child: Some(child),
        addr,
    });
    let meta = std::fs::read_to_string(tmp.path().join("data3/meta.properties")).unwrap();
    let dir = meta
        .lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .unwrap();
    let dir = strom_broker::meta_properties::parse_directory_id(dir)
        .unwrap()
        .to_string();
    let started = Instant::now();
    loop {
        let c = json(&nodes[0].addr, &["cluster", "describe"]);
        let listed = c["quorum"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["node_id"] == 3)
            .map(|r| r["directory_id"].as_str().unwrap_or("").to_string());
        if listed.as_deref() == Some(dir.as_str()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node 3 listed with {listed:?}, not {dir}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let never_readmitted = |nodes: &[Node]| {
        for n in nodes {
            let log = std::fs::read_to_string(n.config.with_extension("log")).unwrap();
            assert!(!log.contains("readmitting"), "node {}: {log}", n.id);
        }
    };
    never_readmitted(&nodes);
    for round in 0..3 {
        for n in nodes.iter_mut() {
            kill(n);
        }
        nodes = start_all(&configs);
        let (_, leader, voters) = cluster(&nodes[round % 3].addr);
        assert_eq!(voters, 3);
        assert!(leader > 0, "round {round}: no leader");
        never_readmitted(&nodes);
    }
}

#[test]
fn a_minority_cut_off_cannot_commit_and_catches_up_when_healed() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // A proxy for each direction of each link: node i reaches node j through proxies[i][j].
    let proxies: Vec<Vec<Option<Proxy>>> = (0..3)
        .map(|i| {
            (0..3)
                .map(|j| (i != j).then(|| Proxy::start(ports[j])))
                .collect()
        })
        .collect();
    let port_of = |i: usize, j: usize| proxies[i][j].as_ref().map_or(ports[j], |p| p.port);
    let configs = write_configs_via(tmp.path(), &ports, port_of, "");
    let mut nodes = start_all(&configs);
    let (_, leader, _) = cluster(&nodes[0].addr);
    let victim = not_leading(&nodes, leader);
    let cut = |yes: bool| {
        for (i, row) in proxies.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                if let Some(p) = p.as_ref().filter(|_| i == victim || j == victim) {
                    p.set_cut(yes);
                }
            }
        }
    };
    cut(true);
    // The minority cannot commit: its create (sent to it: it names itself the controller,
    // as Kafka's brokers name a live broker) is still not done after 5 s, and the majority
    // never sees it.
    let mut minority = Command::new(STROM)
        .args([
            "topics",
            "create",
            "minority",
            "--bootstrap-server",
            &nodes[victim].addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let majority = nodes[(victim + 1) % 3].addr.clone();
    create_within(&majority, "majority", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(5));
    let finished_ok = matches!(minority.try_wait(), Ok(Some(s)) if s.success());
    assert!(!finished_ok, "a node cut off from the quorum committed");
    let _ = minority.kill();
    let _ = minority.wait();
    assert!(!tool(&majority, &["topics", "list"]).1.contains("minority"));
    // Healed: it catches up with what the majority committed.
    cut(false);
    agree(&nodes, "majority");
    nodes.iter_mut().for_each(kill);
}
