//! The process-cluster harness shared by the cluster tests: nodes as `strom broker`
//! processes on 127.0.0.1, their ready lines, the CLI as a client, and agreement checks.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const STROM: &str = env!("CARGO_BIN_EXE_strom");

pub struct Node {
    pub id: i32,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGKILL.
pub fn kill(n: &mut Node) {
    if let Some(mut c) = n.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

/// Cluster tests run one at a time: their controller ports are chosen before the nodes
/// start, so no other test's nodes may be starting meanwhile.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

pub fn one_cluster() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port free now for a controller listener (which every node must know before any
/// starts). Chosen below the kernel's ephemeral range (32768 and up), from a per-process
/// random start, and checked by binding it: a just-released ephemeral port could be taken
/// by any outgoing connection (a node dialling another) before its node binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 8_000) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (port - 20_000) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts a node; its log (warnings and errors) goes to `<config>.log`, shown if it fails.
pub fn spawn(config: &Path) -> Child {
    spawn_env(config, &[])
}

/// `spawn` with environment variables for the node.
pub fn spawn_env(config: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(config.with_extension("log")).unwrap();
    Command::new(STROM)
        .env("STROM_HTTP_LISTENER", "http://127.0.0.1:0")
        .envs(env.iter().copied())
        .args(["broker", "--config"])
        .arg(config)
        .env(
            "STROM_LOG",
            std::env::var("NODE_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The client address from the ready line (nodes wait for each other to form the quorum);
/// a node not ready within a minute fails the test instead of hanging it.
pub fn ready(child: &mut Child, config: &Path) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    if !line.starts_with("strom broker ready") {
        let _ = child.kill();
        let status = child.wait();
        let log = std::fs::read_to_string(config.with_extension("log")).unwrap_or_default();
        panic!("a node not ready within 60 s ({status:?}): {line:?}\n{log}");
    }
    listening_on(&line)
}

/// The first client address of a ready line (`...[, http on URL,] listening on ADDR[,ADDR...]`).
pub fn listening_on(line: &str) -> String {
    let rest = line.split("listening on ").nth(1).expect("a ready line");
    rest.split([',', ' ', '\n'])
        .next()
        .unwrap_or_default()
        .to_string()
}

pub fn start_all(configs: &[PathBuf]) -> Vec<Node> {
    start_all_env(configs, &[])
}

/// `start_all` with environment variables for every node.
pub fn start_all_env(configs: &[PathBuf], env: &[(&str, &str)]) -> Vec<Node> {
    let mut children: Vec<Child> = configs.iter().map(|c| spawn_env(c, env)).collect();
    let addrs: Vec<String> = children
        .iter_mut()
        .zip(configs)
        .map(|(c, config)| ready(c, config))
        .collect();
    children
        .into_iter()
        .zip(addrs)
        .zip(configs)
        .enumerate()
        .map(|(i, ((child, addr), config))| Node {
            id: i as i32 + 1,
            config: config.clone(),
            child: Some(child),
            addr,
        })
        .collect()
}

/// Runs a tool against `addr`: (success, stdout).
pub fn tool(addr: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(STROM)
        .args(args)
        .args(["--bootstrap-server", addr])
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), text)
}

pub fn json(addr: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let (ok, out) = tool(addr, &all);
    assert!(ok, "{args:?} on {addr}: {out}");
    serde_json::from_str(&out).unwrap()
}

/// What a broker says of the cluster: brokers, quorum leader, voters.
pub fn cluster(addr: &str) -> (Vec<i64>, i64, usize) {
    let c = json(addr, &["cluster", "describe"]);
    let mut brokers: Vec<i64> = c["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["node_id"].as_i64().unwrap())
        .collect();
    brokers.sort();
    let q = &c["quorum"];
    let voters = q["replicas"].as_array().map_or(0, |r| r.len());
    (brokers, q["leader_id"].as_i64().unwrap_or(-1), voters)
}

/// Every live node describes `topic` the same way, once each has applied it (followers
/// learn a commit with the leader's next heartbeat).
pub fn agree(nodes: &[Node], topic: &str) -> Value {
    let started = Instant::now();
    loop {
        match try_agree(nodes, topic) {
            Ok(v) => return v,
            Err(e) if started.elapsed() > Duration::from_secs(10) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

pub fn try_agree(nodes: &[Node], topic: &str) -> Result<Value, String> {
    let describe = |n: &Node| -> Result<Value, String> {
        let (ok, out) = tool(&n.addr, &["topics", "describe", topic, "--output", "json"]);
        if !ok {
            return Err(format!("node {}: {out}", n.id));
        }
        let mut v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        // Log offsets are each broker's own; the assignment must agree.
        strip_offsets(&mut v);
        Ok(v)
    };
    let first = describe(&nodes[0])?;
    for n in &nodes[1..] {
        if describe(n)? != first {
            return Err(format!("node {} disagrees on {topic}", n.id));
        }
    }
    Ok(first)
}

pub fn strip_offsets(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.contains("offset"));
            m.values_mut().for_each(strip_offsets);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_offsets),
        _ => {}
    }
}

/// Retries `create` on `addr` until it succeeds or `within` passes; the time it took.
pub fn create_within(addr: &str, topic: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (ok, out) = tool(
            addr,
            &[
                "topics",
                "create",
                topic,
                "--partitions",
                "2",
                "--replication-factor",
                "2",
            ],
        );
        if ok {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{topic} not created in {within:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn write_configs(dir: &Path, n: i32) -> Vec<PathBuf> {
    write_configs_with(dir, n, "")
}

/// Combined-role node configs with `extra` properties appended to each.
pub fn write_configs_with(dir: &Path, n: i32, extra: &str) -> Vec<PathBuf> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    write_configs_via(dir, &ports, |_, to| ports[to], extra)
}

/// Node configs where node `i` (0-based) reaches node `j`'s controller listener at port
/// `via(i, j)`: each node's view of the others may differ (proxies, NAT), its own binds
/// `ports[i]`.
pub fn write_configs_via(
    dir: &Path,
    ports: &[u16],
    via: impl Fn(usize, usize) -> u16,
    extra: &str,
) -> Vec<PathBuf> {
    let n = ports.len();
    (0..n)
        .map(|i| {
            let voters: Vec<String> = (0..n)
                .map(|j| {
                    let port = if i == j { ports[i] } else { via(i, j) };
                    format!("{}@127.0.0.1:{port}", j + 1)
                })
                .collect();
            let path = dir.join(format!("node{}.properties", i + 1));
            let text = format!(
                "node.id={}\nprocess.roles=broker,controller\n\
                 listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}\n\
                 controller.listener.names=CONTROLLER\ncontroller.quorum.voters={}\n\
                 log.dirs={}\ngroup.initial.rebalance.delay.ms=0\n{extra}",
                i + 1,
                ports[i],
                voters.join(","),
                dir.join(format!("data{}", i + 1)).display()
            );
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// A broker-only node `id` joining the cluster whose first node's config is `first` (the
/// same voters), with `extra` properties: its config path.
pub fn write_broker_config(dir: &Path, first: &Path, id: i32, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(first).unwrap();
    let voters = text
        .lines()
        .find_map(|l| l.strip_prefix("controller.quorum.voters="))
        .unwrap();
    let path = dir.join(format!("node{id}.properties"));
    let text = format!(
        "node.id={id}\nprocess.roles=broker\nlisteners=PLAINTEXT://127.0.0.1:0\n\
         controller.listener.names=CONTROLLER\ncontroller.quorum.voters={voters}\n\
         log.dirs={}\ngroup.initial.rebalance.delay.ms=0\n{extra}",
        dir.join(format!("data{id}")).display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One direction of one link between two nodes: a TCP proxy that, cut, drops its
/// connections and refuses new ones.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, k) = (Arc::clone(&cut), Arc::clone(&conns));
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                pump(&inbound, &outbound, &k);
            }
        });
        Proxy { port, cut, conns }
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            for s in self.conns.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies both ways between two streams until either side closes.
fn pump(a: &TcpStream, b: &TcpStream, conns: &Mutex<Vec<TcpStream>>) {
    for (from, to) in [(a, b), (b, a)] {
        let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
        conns.lock().unwrap().push(from.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}

/// Gives each node a fixed client port instead of an ephemeral one, so its address stays
/// the same across restarts (a client's bootstrap list keeps working).
pub fn fix_client_ports(configs: &[PathBuf]) {
    for c in configs {
        let text = std::fs::read_to_string(c).unwrap();
        let fixed = format!("PLAINTEXT://127.0.0.1:{}", free_port());
        std::fs::write(c, text.replacen("PLAINTEXT://127.0.0.1:0", &fixed, 1)).unwrap();
    }
}
