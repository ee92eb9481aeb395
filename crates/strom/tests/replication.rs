//! Replicated partitions on a process cluster: followers fetch from leaders, the ISR shrinks
//! and grows, leadership fails over, and every acknowledged acks=all record survives, once
//! and in order, with the replicas holding the same batches below the high watermark.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strom_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};

/// Short timeouts keep the failovers quick: fenced 3 s after its last heartbeat, out of
/// the ISR 4 s after it stopped keeping up.
const FAST: &str = "broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n\
                    replica.lag.time.max.ms=4000\nreplica.fetch.backoff.ms=200\n";

fn partition(addr: &str, topic: &str) -> Value {
    json(addr, &["topics", "describe", topic])[0]["partitions"][0].clone()
}

fn ids(v: &Value) -> Vec<i64> {
    let mut out: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    out.sort();
    out
}

/// Waits until a live node describes the partition as `want` says, within `within`.
#[track_caller]
fn wait_partition(
    nodes: &[Node],
    topic: &str,
    within: Duration,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    let mut seen = Value::Null;
    loop {
        for n in nodes.iter().filter(|n| n.child.is_some()) {
            let (ok, out) = tool(&n.addr, &["topics", "describe", topic, "--output", "json"]);
            if ok {
                let v: Value = serde_json::from_str(&out).unwrap();
                let p = v[0]["partitions"][0].clone();
                if want(&p) {
                    return p;
                }
                seen = p;
            } else {
                seen = Value::String(out);
            }
        }
        assert!(
            started.elapsed() < within,
            "partition of {topic} not as wanted within {within:?}: {seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An idempotent acks=all producer writing the numbers 0, 1, 2, ... as values to
/// partition 0, a few hundred a second, until stopped; what was acknowledged, in order.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    thread: std::thread::JoinHandle<u64>,
}

impl Load {
    fn start(bootstrap: String, topic: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
        let (s, a) = (Arc::clone(&stop), Arc::clone(&acked));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let client = Client::connect(ClientConfig::new(&bootstrap))
                    .await
                    .unwrap();
                let config = ProducerConfig {
                    delivery_timeout: Duration::from_secs(120),
                    ..ProducerConfig::default()
                };
                let producer = Producer::new(client, config);
                let mut sent = 0u64;
                let mut waits = Vec::new();
                while !s.load(Ordering::SeqCst) {
                    let value = sent.to_string();
                    let mut r = ProducerRecord::new(topic, None, Some(value.as_bytes()));
                    r.partition = Some(0);
                    let delivery = producer.send(r).await.unwrap();
                    let a = Arc::clone(&a);
                    let n = sent;
                    waits.push(tokio::spawn(async move {
                        match delivery.await {
                            Ok(_) => a.lock().unwrap().push(n),
                            Err(e) => eprintln!("value {n} not delivered: {e}"),
                        }
                    }));
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                producer.flush().await;
                for w in waits {
                    let _ = w.await;
                }
                producer.close().await;
                sent
            })
        });
        Load {
            stop,
            acked,
            thread,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops sending and waits for every answer: the values acknowledged.
    fn finish(self) -> (Vec<u64>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let sent = self.thread.join().unwrap();
        let mut acked = self.acked.lock().unwrap().clone();
        acked.sort();
        (acked, sent)
    }
}

/// Waits until at least `more` further records were acknowledged (writes go on).
#[track_caller]
fn acks_grow(load: &Load, more: usize, within: Duration) {
    let start = load.acked();
    let started = Instant::now();
    while load.acked() < start + more {
        assert!(
            started.elapsed() < within,
            "writes did not resume within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The partition's values as a consumer reads them from `addr`.
fn read_all(addr: &str, topic: &str) -> Vec<u64> {
    let (ok, out) = tool(
        addr,
        &[
            "consume",
            topic,
            "--partition",
            "0",
            "--from-beginning",
            "--timeout-ms",
            "5000",
        ],
    );
    assert!(ok, "consume failed: {out}");
    out.lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Every acknowledged value is there exactly once, and everything read is in order with no
/// value twice (unacknowledged ones may appear: their answer was lost).
fn check_once_in_order(read: &[u64], acked: &[u64]) {
    for w in read.windows(2) {
        assert!(
            w[0] < w[1],
            "out of order or duplicated: {} then {}",
            w[0],
            w[1]
        );
    }
    let have: std::collections::BTreeSet<u64> = read.iter().copied().collect();
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|v| !have.contains(v))
        .collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
}

/// The batches (base offset, bytes) of a log directory below `below`.
fn batches(dir: &Path, below: i64) -> Vec<(i64, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let mut at = 0usize;
        while let Ok(h) = strom_proto::BatchHeader::parse(&bytes[at..]) {
            if h.base_offset >= below || at + h.size() > bytes.len() {
                break;
            }
            out.push((h.base_offset, bytes[at..at + h.size()].to_vec()));
            at += h.size();
        }
    }
    out
}

/// A checkpoint file's offsets by `<topic>-<partition>`.
fn checkpoint(path: &Path) -> BTreeMap<String, i64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let mut p = l.split(' ');
            let (t, i, o) = (p.next()?, p.next()?, p.next()?);
            Some((format!("{t}-{i}"), o.parse().ok()?))
        })
        .collect()
}

/// After a clean stop: the replicas hold the same batches, byte for byte, from the largest
/// log start to the smallest high watermark, and that high watermark covers `acked`.
fn replicas_agree(data: &[std::path::PathBuf], log: &str) {
    let hw = data
        .iter()
        .map(|d| checkpoint(&d.join("replication-offset-checkpoint"))[log])
        .min()
        .unwrap();
    let start = data
        .iter()
        .map(|d| {
            checkpoint(&d.join("log-start-offset-checkpoint"))
                .get(log)
                .copied()
                .unwrap_or(0)
        })
        .max()
        .unwrap();
    let first = batches(&data[0].join(log), hw);
    assert!(
        !first.is_empty(),
        "no batches below the high watermark {hw}"
    );
    for d in &data[1..] {
        let other = batches(&d.join(log), hw);
        let a: Vec<_> = first.iter().filter(|(o, _)| *o >= start).collect();
        let b: Vec<_> = other.iter().filter(|(o, _)| *o >= start).collect();
        assert_eq!(
            a.len(),
            b.len(),
            "{}: a different number of batches",
            d.display()
        );
        assert!(
            a == b,
            "{}: batches differ from {}",
            d.display(),
            data[0].display()
        );
    }
}

/// How every fault test ends: the values `addr` serves hold every acknowledged one exactly
/// once, in order; then, after a clean stop of every node, the replicas under `dir` of the
/// nodes `ids` hold the same batches of partition 0. The values read.
fn read_check_and_stop(
    nodes: &mut [Node],
    addr: &str,
    topic: &str,
    (acked, sent): (&[u64], u64),
    (dir, ids): (&Path, &[i32]),
) -> Vec<u64> {
    let read = read_all(addr, topic);
    check_once_in_order(&read, acked);
    eprintln!(
        "{sent} sent, {} acknowledged, {} read",
        acked.len(),
        read.len()
    );
    // The followers take the last high watermark before the checkpoints are written.
    std::thread::sleep(Duration::from_secs(2));
    nodes.iter_mut().for_each(stop_cleanly);
    let data: Vec<_> = ids.iter().map(|i| dir.join(format!("data{i}"))).collect();
    replicas_agree(&data, &format!("{topic}-0"));
    read
}

/// SIGTERM: a clean shutdown, which writes the checkpoints.
fn stop_cleanly(n: &mut Node) {
    if let Some(mut c) = n.child.take() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
}

/// `n` nodes with short timeouts and a one-partition topic of `rf` replicas with `configs`,
/// once every replica is in sync: the nodes' dir, the nodes and the partition.
fn cluster_with(
    n: i32,
    topic: &str,
    rf: usize,
    configs: &[&str],
) -> (tempfile::TempDir, Vec<Node>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_all(&write_configs_with(dir.path(), n, FAST));
    let rf_arg = rf.to_string();
    let mut args = vec!["topics", "create", topic, "--partitions", "1"];
    args.extend(["--replication-factor", rf_arg.as_str()]);
    for c in configs {
        args.extend(["--config", c]);
    }
    let (ok, out) = tool(&nodes[0].addr, &args);
    assert!(ok, "{out}");
    let p = wait_partition(&nodes, topic, Duration::from_secs(10), |p| {
        ids(&p["isr"]).len() == rf
    });
    (dir, nodes, p)
}

fn restart(n: &mut Node) {
    let mut child = spawn(&n.config);
    n.addr = ready(&mut child, &n.config);
    n.child = Some(child);
}

#[test]
fn acknowledged_writes_survive_killing_the_leader_then_a_follower() {
    let _one = one_cluster();
    let (dir, mut nodes, p) = cluster_with(3, "r", 3, &["min.insync.replicas=2"]);
    let addr = nodes[0].addr.clone();
    assert_eq!(ids(&p["replicas"]), vec![1, 2, 3]);
    let bootstrap = nodes
        .iter()
        .map(|n| n.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let load = Load::start(bootstrap, "r");
    acks_grow(&load, 300, Duration::from_secs(30));

    // The leader dies: another in-sync replica leads within the session timeout plus 5 s.
    let leader = partition(&addr, "r")["leader"].as_i64().unwrap();
    kill(&mut nodes[leader as usize - 1]);
    let killed_at = Instant::now();
    let live = |nodes: &[Node]| {
        nodes
            .iter()
            .find(|n| n.child.is_some())
            .unwrap()
            .addr
            .clone()
    };
    wait_partition(&nodes, "r", Duration::from_secs(8), |p| {
        p["leader"].as_i64() != Some(leader) && p["leader"].as_i64() != Some(-1)
    });
    acks_grow(&load, 200, Duration::from_secs(30));
    eprintln!(
        "writable again {:?} after the leader was killed",
        killed_at.elapsed()
    );
    let p = partition(&live(&nodes), "r");
    assert_eq!(ids(&p["isr"]).len(), 2, "the dead leader left the ISR: {p}");

    // Back, it catches up and rejoins the ISR within 90 s.
    restart(&mut nodes[leader as usize - 1]);
    wait_partition(&nodes, "r", Duration::from_secs(90), |p| {
        ids(&p["isr"]).len() == 3
    });
    acks_grow(&load, 200, Duration::from_secs(30));

    // A follower dies: writes go on with two in sync (min.insync.replicas=2).
    let p = partition(&live(&nodes), "r");
    let leader = p["leader"].as_i64().unwrap();
    let follower = ids(&p["replicas"])
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    kill(&mut nodes[follower as usize - 1]);
    wait_partition(&nodes, "r", Duration::from_secs(15), |p| {
        ids(&p["isr"]).len() == 2
    });
    acks_grow(&load, 200, Duration::from_secs(30));
    restart(&mut nodes[follower as usize - 1]);
    wait_partition(&nodes, "r", Duration::from_secs(90), |p| {
        ids(&p["isr"]).len() == 3
    });
    acks_grow(&load, 100, Duration::from_secs(30));

    let (acked, sent) = load.finish();
    assert!(
        acked.len() > 1000,
        "only {} of {sent} acknowledged",
        acked.len()
    );
    // Every replica caught up, then a clean stop: same batches below the high watermark.
    wait_partition(&nodes, "r", Duration::from_secs(30), |p| {
        ids(&p["isr"]).len() == 3
    });
    let addr = live(&nodes);
    let all = (dir.path(), &[1, 2, 3][..]);
    read_check_and_stop(&mut nodes, &addr, "r", (&acked, sent), all);
}

/// Hot expansion and reassignment under load: a fourth broker joins the running cluster,
/// the partition moves onto it and off its leader (`strom topics reassign`, throttled), the
/// broker that left deletes its replica and is stopped; writes go on throughout, and every
/// acknowledged record is there once, in order, on replicas that agree byte for byte.
#[test]
fn a_partition_moves_to_a_new_broker_under_load() {
    let _one = one_cluster();
    let (dir, mut nodes, p) = cluster_with(3, "m", 3, &["min.insync.replicas=2"]);
    let bootstrap = nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>();
    let load = Load::start(bootstrap.join(","), "m");
    acks_grow(&load, 300, Duration::from_secs(30));

    let config = write_broker_config(dir.path(), &nodes[0].config, 4, FAST);
    let mut child = spawn(&config);
    let addr = ready(&mut child, &config);
    nodes.push(Node {
        id: 4,
        config,
        child: Some(child),
        addr,
    });
    // A generated plan spreads the partition over the brokers given.
    let plan = json(
        &nodes[0].addr,
        &[
            "topics",
            "reassign",
            "--generate",
            "--topic",
            "m",
            "--brokers",
            "2,3,4",
        ],
    );
    assert_eq!(
        ids(&plan["partitions"][0]["replicas"]),
        vec![2, 3, 4],
        "{plan}"
    );
    let leader = p["leader"].as_i64().unwrap() as i32;
    let mut target = vec![4];
    target.extend((1..=3).filter(|id| *id != leader));
    let plan = dir.path().join("plan.json");
    let entry = serde_json::json!({"topic": "m", "partition": 0, "replicas": target});
    std::fs::write(
        &plan,
        serde_json::json!({"version": 1, "partitions": [entry]}).to_string(),
    )
    .unwrap();
    let plan_arg = plan.to_str().unwrap();
    let (ok, out) = tool(
        &nodes[0].addr,
        &[
            "topics",
            "reassign",
            "--execute",
            "--plan",
            plan_arg,
            "--throttle",
            "50000000",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully started partition reassignments for m-0"),
        "{out}"
    );
    let want: Vec<i64> = target.iter().map(|id| i64::from(*id)).collect();
    let mut sorted = want.clone();
    sorted.sort();
    let p = wait_partition(&nodes, "m", Duration::from_secs(60), |p| {
        ids(&p["replicas"]) == sorted && ids(&p["isr"]) == sorted
    });
    assert_eq!(
        p["leader"].as_i64(),
        Some(want[0]),
        "the target's first leads: {p}"
    );
    let (ok, out) = tool(
        &nodes[0].addr,
        &["topics", "reassign", "--verify", "--plan", plan_arg],
    );
    assert!(
        ok && out.contains("Reassignment of partition m-0 is completed."),
        "{out}"
    );
    assert!(
        out.contains("Clearing topic-level throttles on topic m"),
        "{out}"
    );
    acks_grow(&load, 200, Duration::from_secs(30));

    // The broker that left deletes its replica; then it is stopped: writes go on.
    let gone = dir.path().join(format!("data{leader}/m-0"));
    let started = Instant::now();
    while gone.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} kept",
            gone.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_cleanly(&mut nodes[leader as usize - 1]);
    acks_grow(&load, 200, Duration::from_secs(30));

    let (acked, sent) = load.finish();
    let live = nodes
        .iter()
        .find(|n| n.child.is_some())
        .unwrap()
        .addr
        .clone();
    let on = (dir.path(), &target[..]);
    read_check_and_stop(&mut nodes, &live, "m", (&acked, sent), on);
}

/// Writes `count` records of `size` bytes to partition 0 of `topic`, acks=all.
fn produce_bulk(bootstrap: &str, topic: &str, count: usize, size: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(ClientConfig::new(bootstrap)).await.unwrap();
        let producer = Producer::new(client, ProducerConfig::default());
        let value = vec![b'x'; size];
        let mut waits = Vec::new();
        for _ in 0..count {
            let mut r = ProducerRecord::new(topic, None, Some(&value[..]));
            r.partition = Some(0);
            waits.push(producer.send(r).await.unwrap());
        }
        for w in waits {
            w.await.unwrap();
        }
        producer.close().await;
    });
}

/// `--throttle` limits how fast a moving replica copies: 3 MB at 1 MB/s (a second's worth
/// at once, then the rate) cannot be in sync in under two seconds; unthrottled it copies in
/// a fraction of one. The throttle configs are cleared by --verify.
#[test]
fn a_throttled_move_copies_at_the_throttled_rate() {
    let _one = one_cluster();
    let (dir, nodes, p) = cluster_with(3, "th", 1, &[]);
    let from = p["leader"].as_i64().unwrap() as i32;
    let to = from % 3 + 1;
    produce_bulk(&nodes[0].addr, "th", 3000, 1000);
    let plan = dir.path().join("plan.json");
    let entry = serde_json::json!({"topic": "th", "partition": 0, "replicas": [from, to]});
    std::fs::write(
        &plan,
        serde_json::json!({"version": 1, "partitions": [entry]}).to_string(),
    )
    .unwrap();
    let plan_arg = plan.to_str().unwrap();
    let started = Instant::now();
    let (ok, out) = tool(
        &nodes[0].addr,
        &[
            "topics",
            "reassign",
            "--execute",
            "--plan",
            plan_arg,
            "--throttle",
            "1000000",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = tool(&nodes[0].addr, &["topics", "reassign", "--list"]);
    assert!(ok && out.contains("th-0: replicas"), "running: {out}");
    wait_partition(&nodes, "th", Duration::from_secs(60), |p| {
        ids(&p["isr"]).len() == 2
    });
    let took = started.elapsed();
    eprintln!("3 MB moved in {took:?} at 1 MB/s");
    assert!(
        took >= Duration::from_millis(1800),
        "the throttle did not hold: {took:?}"
    );
    let (ok, out) = tool(
        &nodes[0].addr,
        &["topics", "reassign", "--verify", "--plan", plan_arg],
    );
    assert!(ok && out.contains("is completed"), "{out}");
    let configs = json(
        &nodes[0].addr,
        &["configs", "describe", "--topic", "th", "--dynamic-only"],
    );
    assert!(
        !configs.to_string().contains("throttled.replicas"),
        "{configs}"
    );
}

#[test]
fn an_unclean_election_recovers_a_partition_whose_in_sync_replicas_are_gone() {
    let _one = one_cluster();
    let (_dir, mut nodes, p) = cluster_with(3, "u", 2, &[]);
    let addr = nodes[0].addr.clone();
    let leader = p["leader"].as_i64().unwrap();
    let follower = ids(&p["replicas"])
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    produce_lines(&addr, "u", "a\nb\nc\n");
    // The follower dies and leaves the ISR; then the leader, the last in-sync replica.
    kill(&mut nodes[follower as usize - 1]);
    wait_partition(&nodes, "u", Duration::from_secs(15), |p| {
        ids(&p["isr"]) == vec![leader]
    });
    kill(&mut nodes[leader as usize - 1]);
    // The follower is back (and with it the quorum): not in sync, it is not elected.
    restart(&mut nodes[follower as usize - 1]);
    wait_partition(&nodes, "u", Duration::from_secs(30), |p| {
        p["leader"].as_i64() == Some(-1)
    });
    std::thread::sleep(Duration::from_secs(2));
    let live = nodes[follower as usize - 1].addr.clone();
    assert_eq!(
        partition(&live, "u")["leader"].as_i64(),
        Some(-1),
        "no unclean election by default"
    );
    // The operator's recovery: the out-of-sync replica leads, alone in the ISR.
    let (ok, out) = tool(
        &live,
        &[
            "topics",
            "elect-leaders",
            "--topic",
            "u",
            "--election-type",
            "unclean",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully completed leader election"),
        "{out}"
    );
    let p = partition(&live, "u");
    assert_eq!(p["leader"].as_i64(), Some(follower));
    assert_eq!(ids(&p["isr"]), vec![follower]);
    // Writable again; the old leader, back, truncates to the new leader's log and rejoins.
    produce_lines(&live, "u", "d\n");
    restart(&mut nodes[leader as usize - 1]);
    wait_partition(&nodes, "u", Duration::from_secs(60), |p| {
        ids(&p["isr"]).len() == 2
    });
    // Preferred election: the first replica takes its leadership back.
    let (ok, out) = tool(&live, &["topics", "elect-leaders", "--topic", "u"]);
    assert!(ok, "{out}");
    let p = partition(&live, "u");
    assert_eq!(
        p["leader"].as_i64(),
        ids_in_order(&p["replicas"]).first().copied()
    );
}

/// `strom produce` with `lines` on its stdin; it must succeed.
fn produce_lines(addr: &str, topic: &str, lines: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(STROM)
        .args(["produce", topic, "--bootstrap-server", addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ids_in_order(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// One acks=`acks` record to partition 0 of `topic`, sent to `addr` as Produce v12: the
/// partition's error code.
fn produce_code(addr: &str, topic: &str, acks: i16) -> i16 {
    produce_value(addr, topic, acks, b"x")
}

/// One Produce of `value` to partition 0 of `topic` on the broker at `addr` itself: its
/// error code, -1 if no answer came within 15 s.
fn produce_value(addr: &str, topic: &str, acks: i16, value: &[u8]) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = strom_client::conn::Connection::connect(addr, "test", Duration::from_secs(10))
            .await
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut b = strom_proto::BatchBuilder::new(now);
        b.push(None, Some(value), now);
        let mut p = PartitionProduceData::default();
        p.index = 0;
        p.records = Some(b.build().into());
        let mut t = TopicProduceData::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partition_data.push(p);
        let mut req = ProduceRequest::default();
        req.acks = acks;
        req.timeout_ms = 5_000;
        req.topic_data.push(t);
        let call = conn.call_at(&req, 12);
        match tokio::time::timeout(Duration::from_secs(15), call).await {
            Ok(Ok(resp)) => resp.responses[0].partition_responses[0].error_code,
            _ => -1,
        }
    })
}

#[test]
fn acks_all_is_refused_once_too_few_replicas_are_in_sync() {
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    let _one = one_cluster();
    // Five voters: the quorum survives two dead brokers.
    let (_dir, mut nodes, p) = cluster_with(5, "m", 3, &["min.insync.replicas=2"]);
    let leader = p["leader"].as_i64().unwrap();
    let leader_addr = nodes[leader as usize - 1].addr.clone();
    assert_eq!(produce_code(&leader_addr, "m", -1), 0);
    let followers: Vec<i64> = ids(&p["replicas"])
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    kill(&mut nodes[followers[0] as usize - 1]);
    wait_partition(&nodes, "m", Duration::from_secs(15), |p| {
        ids(&p["isr"]).len() == 2
    });
    assert_eq!(
        produce_code(&leader_addr, "m", -1),
        0,
        "two in sync are enough"
    );
    kill(&mut nodes[followers[1] as usize - 1]);
    wait_partition(&nodes, "m", Duration::from_secs(15), |p| {
        ids(&p["isr"]) == vec![leader]
    });
    assert_eq!(produce_code(&leader_addr, "m", -1), NOT_ENOUGH_REPLICAS);
    assert_eq!(
        produce_code(&leader_addr, "m", 1),
        0,
        "acks=1 is not refused"
    );
    // One back: acks=all is accepted again once it rejoined the ISR.
    restart(&mut nodes[followers[0] as usize - 1]);
    wait_partition(&nodes, "m", Duration::from_secs(60), |p| {
        ids(&p["isr"]).len() == 2
    });
    assert_eq!(produce_code(&leader_addr, "m", -1), 0);
}

/// A network cut: the partition leader loses every link (the quorum's both ways, and its
/// client listener, through which the followers fetch). The majority fences it and elects
/// another leader; writes go on there. A client still reaching the isolated leader directly
/// gets none of its acks=all writes acknowledged. Healed, it learns the new epoch,
/// truncates what only it appended, catches up and rejoins the ISR; every acknowledged
/// record is there once, in order, the late ones nowhere, and the replicas agree.
#[test]
fn an_isolated_leader_is_replaced_and_its_late_writes_never_acknowledged() {
    let _one = one_cluster();
    let dir = tempfile::tempdir().unwrap();
    let ctrl: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // Node i reaches node j's controller listener through links[i][j]; everyone reaches
    // node j's client listener through inbound[j].
    let links: Vec<Vec<Option<Proxy>>> = (0..3)
        .map(|i| {
            (0..3)
                .map(|j| (i != j).then(|| Proxy::start(ctrl[j])))
                .collect()
        })
        .collect();
    let inbound: Vec<Proxy> = client.iter().map(|c| Proxy::start(*c)).collect();
    let port_of = |i: usize, j: usize| links[i][j].as_ref().map_or(ctrl[j], |p| p.port);
    let configs = write_configs_via(dir.path(), &ctrl, port_of, FAST);
    for (i, c) in configs.iter().enumerate() {
        let mut text = std::fs::read_to_string(c).unwrap();
        text.push_str(&format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{}\n",
            client[i], ctrl[i], inbound[i].port
        ));
        std::fs::write(c, text).unwrap();
    }
    let mut nodes = start_all(&configs);
    let (ok, out) = tool(
        &nodes[0].addr,
        &[
            "topics",
            "create",
            "n",
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    assert!(ok, "{out}");
    let p = wait_partition(&nodes, "n", Duration::from_secs(10), |p| {
        ids(&p["isr"]).len() == 3
    });
    let bootstrap: Vec<String> = inbound
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.port))
        .collect();
    let load = Load::start(bootstrap.join(","), "n");
    acks_grow(&load, 300, Duration::from_secs(30));

    let leader = p["leader"].as_i64().unwrap() as usize;
    let cut = |yes: bool| {
        for (i, row) in links.iter().enumerate() {
            for (j, link) in row.iter().enumerate() {
                if let Some(link) = link.as_ref().filter(|_| i == leader - 1 || j == leader - 1) {
                    link.set_cut(yes);
                }
            }
        }
        inbound[leader - 1].set_cut(yes);
    };
    cut(true);
    // A client on the isolated side writes to the old leader directly, acks=all.
    let direct = format!("127.0.0.1:{}", client[leader - 1]);
    let stop = Arc::new(AtomicBool::new(false));
    let late = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut codes = Vec::new();
            let mut k = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let value = (900_000_000 + k).to_string();
                codes.push(produce_value(&direct, "n", -1, value.as_bytes()));
                k += 1;
            }
            codes
        })
    };
    wait_partition(&nodes, "n", Duration::from_secs(8), |p| {
        let l = p["leader"].as_i64().unwrap_or(-1);
        l > 0 && l != leader as i64
    });
    acks_grow(&load, 200, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let codes = late.join().unwrap();
    assert!(
        !codes.is_empty() && !codes.contains(&0),
        "late writes acknowledged: {codes:?}"
    );
    eprintln!("late writes to the isolated leader answered {codes:?}");

    cut(false);
    wait_partition(&nodes, "n", Duration::from_secs(90), |p| {
        ids(&p["isr"]).len() == 3
    });
    acks_grow(&load, 100, Duration::from_secs(30));
    let (acked, sent) = load.finish();
    let all = (dir.path(), &[1, 2, 3][..]);
    let read = read_check_and_stop(&mut nodes, &bootstrap[0], "n", (&acked, sent), all);
    assert!(
        read.iter().all(|v| *v < 900_000_000),
        "a late write is readable"
    );
}

/// What a power cut may leave of `data`, per the brokers' sync trace
/// (`strom_log::sync_trace`): every segment cut back to the length its last fsync made
/// durable, and segments never synced gone with their indexes. Returns (segments cut,
/// segments dropped, bytes thrown away).
fn lose_unsynced(data: &[std::path::PathBuf], trace: &Path) -> (usize, usize, u64) {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut synced: BTreeMap<std::path::PathBuf, u64> = BTreeMap::new();
    for line in text.lines() {
        let Some((event, path)) = line.split_once('\t') else {
            continue;
        };
        let (kind, len) = event.split_once(' ').unwrap();
        let len: u64 = len.parse().unwrap();
        let path = std::path::PathBuf::from(path);
        match kind {
            "S" => {
                synced.insert(path, len);
            }
            "T" => {
                let was = synced.get(&path).copied().unwrap_or(0);
                synced.insert(path, was.min(len));
            }
            _ => {
                synced.remove(&path);
            }
        }
    }
    let (mut cut, mut dropped, mut lost) = (0, 0, 0);
    for dir in data {
        for log in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if !log.is_dir() {
                continue;
            }
            for seg in std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().path()) {
                if seg.extension().is_none_or(|x| x != "log") {
                    continue;
                }
                let len = std::fs::metadata(&seg).unwrap().len();
                match synced.get(&seg) {
                    Some(&s) if s < len => {
                        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
                        f.set_len(s).unwrap();
                        (cut, lost) = (cut + 1, lost + len - s);
                    }
                    Some(_) => {}
                    None => {
                        for ext in ["log", "index", "timeindex"] {
                            let _ = std::fs::remove_file(seg.with_extension(ext));
                        }
                        (dropped, lost) = (dropped + 1, lost + len);
                    }
                }
            }
        }
    }
    (cut, dropped, lost)
}

/// Whole-cluster power loss: every broker SIGKILLed at once while an idempotent acks=all
/// producer writes, then each loses what it had not fsynced (segments cut back to their
/// last sync, unsynced segments gone; the metadata log's included). Restarted, the cluster
/// serves again and every acknowledged record is there, once and in order.
#[test]
fn a_whole_cluster_power_loss_keeps_every_acknowledged_record() {
    let _one = one_cluster();
    let dir = tempfile::tempdir().unwrap();
    let configs = write_configs_with(dir.path(), 3, FAST);
    fix_client_ports(&configs);
    let trace = dir.path().join("sync-trace");
    // strom_log::sync_trace::ENV: every broker notes what each fsync made durable.
    let env = [("STROM_SYNC_TRACE", trace.to_str().unwrap())];
    let mut nodes = start_all_env(&configs, &env);
    let (ok, out) = tool(
        &nodes[0].addr,
        &[
            "topics",
            "create",
            "pl",
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    assert!(ok, "{out}");
    wait_partition(&nodes, "pl", Duration::from_secs(10), |p| {
        ids(&p["isr"]).len() == 3
    });
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let load = Load::start(bootstrap.join(","), "pl");
    acks_grow(&load, 500, Duration::from_secs(30));

    nodes.iter_mut().for_each(kill);
    let acked_before = load.acked();
    let data: Vec<_> = (1..=3)
        .map(|i| dir.path().join(format!("data{i}")))
        .collect();
    let (cut, dropped, lost) = lose_unsynced(&data, &trace);
    eprintln!("power loss: {cut} segments cut, {dropped} dropped, {lost} bytes lost");
    // The same ports: the producer's bootstrap addresses stay valid.
    let mut nodes = start_all_env(&configs, &env);
    assert_eq!(
        nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>(),
        bootstrap
    );
    wait_partition(&nodes, "pl", Duration::from_secs(90), |p| {
        ids(&p["isr"]).len() == 3
    });
    acks_grow(&load, 200, Duration::from_secs(60));
    let (acked, sent) = load.finish();
    eprintln!("{acked_before} acknowledged before the cut");
    let addr = nodes[0].addr.clone();
    let all = (dir.path(), &[1, 2, 3][..]);
    read_check_and_stop(&mut nodes, &addr, "pl", (&acked, sent), all);
}

/// Two of three combined nodes die at once: the metadata quorum is lost with them, so the
/// ISR cannot shrink and no acks=all write is acknowledged (the producer's writes time
/// out, none lost); when one comes back the quorum fences the other, the ISR shrinks to the
/// two live replicas and writes resume; the last one back catches up and rejoins.
#[test]
fn writes_stop_while_two_of_three_are_down_and_resume_when_one_returns() {
    let _one = one_cluster();
    let (dir, mut nodes, p) = cluster_with(3, "q", 3, &["min.insync.replicas=2"]);
    let bootstrap = nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>();
    let load = Load::start(bootstrap.join(","), "q");
    acks_grow(&load, 300, Duration::from_secs(30));
    // The leader survives; both followers die.
    let leader = p["leader"].as_i64().unwrap() as usize;
    let followers: Vec<usize> = (1..=3).filter(|id| *id != leader).collect();
    for f in &followers {
        kill(&mut nodes[f - 1]);
    }
    std::thread::sleep(Duration::from_secs(2));
    let stalled = load.acked();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        load.acked(),
        stalled,
        "a write was acknowledged with two of three down"
    );
    restart(&mut nodes[followers[0] - 1]);
    acks_grow(&load, 200, Duration::from_secs(60));
    let p = wait_partition(&nodes, "q", Duration::from_secs(30), |p| {
        ids(&p["isr"]).len() == 2
    });
    assert!(!ids(&p["isr"]).contains(&(followers[1] as i64)), "{p}");
    restart(&mut nodes[followers[1] - 1]);
    wait_partition(&nodes, "q", Duration::from_secs(90), |p| {
        ids(&p["isr"]).len() == 3
    });
    acks_grow(&load, 100, Duration::from_secs(30));
    let (acked, sent) = load.finish();
    let addr = nodes[leader - 1].addr.clone();
    let all = (dir.path(), &[1, 2, 3][..]);
    read_check_and_stop(&mut nodes, &addr, "q", (&acked, sent), all);
}

/// Eligible leader replicas (KIP-966), with three controller-only nodes (the quorum lives
/// through every broker's death) and brokers 4, 5, 6: a partition of three replicas with
/// `min.insync.replicas=2` loses one follower, then the other, which leaves an ISR below its
/// minimum and so stays eligible (the high watermark has not moved since), then its
/// leader. The eligible replica comes back first and leads at once (Kafka 4.1 does the
/// same; before ELR the partition waited for its last in-sync replica). Every acknowledged
/// record is on it, and the others rejoin behind it.
#[test]
fn an_eligible_replica_leads_once_every_in_sync_one_is_gone() {
    let _one = one_cluster();
    let dir = tempfile::tempdir().unwrap();
    let mut configs = write_configs_with(dir.path(), 3, FAST);
    for c in &configs {
        let text = std::fs::read_to_string(c).unwrap();
        let text = text
            .replace(
                "process.roles=broker,controller",
                "process.roles=controller",
            )
            .replace(
                "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://",
                "listeners=CONTROLLER://",
            );
        std::fs::write(c, text).unwrap();
    }
    let brokers: Vec<_> = (4..=6)
        .map(|id| write_broker_config(dir.path(), &configs[0], id, FAST))
        .collect();
    fix_client_ports(&brokers);
    configs.extend(brokers);
    let mut all = start_all(&configs);
    let mut nodes = all.split_off(3);
    let args = ["topics", "create", "e", "--replication-factor", "3"];
    let (ok, out) = tool(
        &nodes[0].addr,
        &[&args[..], &["--config", "min.insync.replicas=2"]].concat(),
    );
    assert!(ok, "{out}");
    let p = wait_partition(&nodes, "e", Duration::from_secs(10), |p| {
        ids(&p["isr"]).len() == 3
    });
    let bootstrap = nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>();
    let load = Load::start(bootstrap.join(","), "e");
    acks_grow(&load, 300, Duration::from_secs(30));
    // Broker id n is nodes[n - 4].
    let leader = p["leader"].as_i64().unwrap() as usize;
    let others: Vec<usize> = (4..=6).filter(|id| *id != leader).collect();
    let (a, b) = (others[0], others[1]);
    kill(&mut nodes[a - 4]);
    wait_partition(&nodes, "e", Duration::from_secs(20), |p| {
        ids(&p["isr"]).len() == 2
    });
    acks_grow(&load, 100, Duration::from_secs(30));
    kill(&mut nodes[b - 4]);
    wait_partition(&nodes, "e", Duration::from_secs(20), |p| {
        ids(&p["isr"]).len() == 1
    });
    kill(&mut nodes[leader - 4]);
    std::thread::sleep(Duration::from_secs(5));
    // Only b, eligible, comes back: it leads, alone in the ISR (acks=all refused until
    // another replica is back in sync).
    restart(&mut nodes[b - 4]);
    let p = wait_partition(&nodes, "e", Duration::from_secs(20), |p| {
        p["leader"].as_i64() == Some(b as i64)
    });
    assert_eq!(ids(&p["isr"]), vec![b as i64], "{p}");
    let refused = produce_value(&nodes[b - 4].addr, "e", -1, b"999999998");
    assert_eq!(refused, 19, "NOT_ENOUGH_REPLICAS");
    restart(&mut nodes[leader - 4]);
    restart(&mut nodes[a - 4]);
    wait_partition(&nodes, "e", Duration::from_secs(90), |p| {
        ids(&p["isr"]).len() == 3
    });
    // The producer, sending all along, gets its writes through again.
    acks_grow(&load, 100, Duration::from_secs(30));
    let (acked, sent) = load.finish();
    let resumed = produce_value(&nodes[b - 4].addr, "e", -1, b"999999999");
    assert_eq!(resumed, 0, "writes resume");
    let addr = nodes[b - 4].addr.clone();
    let brokers = (dir.path(), &[4, 5, 6][..]);
    let read = read_check_and_stop(&mut nodes, &addr, "e", (&acked, sent), brokers);
    assert_eq!(read.last(), Some(&999_999_999));
    drop(all);
}
