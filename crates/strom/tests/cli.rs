//! Every operator command against a real broker process on an ephemeral port: exit codes,
//! table output, and `--output json` parsed. Also the README's tour, run command by command,
//! so the documentation cannot drift from what the binary prints.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

const STROM: &str = env!("CARGO_BIN_EXE_strom");

struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn broker() -> Broker {
    broker_with(&[])
}

/// A broker with extra `key=value` overrides.
fn broker_with(overrides: &[&str]) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(STROM)
        .args(["broker", "--override"])
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .args([
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            "group.initial.rebalance.delay.ms=0",
        ])
        .args(overrides.iter().flat_map(|o| ["--override", o]))
        .env("STROM_LOG", "warn")
        .env("STROM_HTTP_LISTENER", "http://127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ', '\n']).next())
        .expect("a ready line")
        .to_string();
    assert!(line.starts_with("strom broker ready"), "{line}");
    Broker {
        child,
        addr,
        _dir: dir,
    }
}

impl Broker {
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, None)
    }

    fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new(STROM)
            .args(args)
            .env("STROM_BOOTSTRAP_SERVER", &self.addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        out
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, None)
    }

    fn ok_with_input(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.run_with_input(args, input);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap()
    }
}

#[test]
fn topics_lifecycle() {
    let b = broker();
    assert_eq!(
        b.ok(&[
            "topics",
            "create",
            "orders",
            "--partitions",
            "5",
            "--config",
            "retention.ms=3600000"
        ]),
        "Created topic orders.\n"
    );
    // The same topic again is Kafka's TOPIC_ALREADY_EXISTS, unless --if-not-exists.
    let again = b.run(&["topics", "create", "--topic", "orders"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("TOPIC_ALREADY_EXISTS"));
    b.ok(&["topics", "create", "orders", "--if-not-exists"]);

    assert_eq!(b.ok(&["topics", "list"]), "orders\n");
    assert_eq!(b.json(&["topics", "list"]), serde_json::json!(["orders"]));

    let d = b.json(&["topics", "describe", "orders"]);
    let t = &d[0];
    assert_eq!(t["partition_count"], 5);
    assert_eq!(t["replication_factor"], 1);
    assert_eq!(t["configs"]["retention.ms"], "3600000");
    for (i, p) in t["partitions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["leader"], 1);
        assert_eq!(p["isr"], serde_json::json!([1]));
        assert_eq!(p["log_start_offset"], 0);
        assert_eq!(p["log_end_offset"], 0);
    }
    let table = b.ok(&["topics", "describe", "orders"]);
    assert!(table.contains("PartitionCount: 5"), "{table}");
    assert!(table.contains("LOG-END-OFFSET"), "{table}");

    b.ok(&["topics", "alter", "orders", "--partitions", "7"]);
    b.ok(&[
        "topics",
        "alter",
        "orders",
        "--config",
        "retention.ms=60000",
    ]);
    let d = b.json(&["topics", "describe", "orders"]);
    assert_eq!(d[0]["partition_count"], 7);
    assert_eq!(d[0]["configs"]["retention.ms"], "60000");
    // Fewer partitions is refused (INVALID_PARTITIONS), exit 1.
    assert_eq!(
        b.run(&["topics", "alter", "orders", "--partitions", "3"])
            .status
            .code(),
        Some(1)
    );

    assert_eq!(
        b.ok(&["topics", "delete", "orders"]),
        "Deleted topic orders.\n"
    );
    assert_eq!(b.ok(&["topics", "list"]), "");
    let missing = b.run(&["topics", "describe", "orders"]);
    assert_eq!(missing.status.code(), Some(1));
    let missing = b.run(&["topics", "delete", "orders"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"));
    b.ok(&["topics", "delete", "orders", "--if-exists"]);
    // Bad names get the broker's INVALID_TOPIC_EXCEPTION in one line.
    let bad = b.run(&["topics", "create", "bad/name"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

#[test]
fn produce_and_consume_with_keys_headers_and_every_codec() {
    let b = broker();
    b.ok(&["topics", "create", "events", "--partitions", "5"]);
    let lines: String = (0..50).map(|i| format!("key-{i}:value-{i}\n")).collect();
    b.ok_with_input(
        &[
            "produce",
            "events",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--header",
            "src=test",
        ],
        Some(&lines),
    );
    let out = b.ok(&[
        "consume",
        "events",
        "--from-beginning",
        "--max-messages",
        "50",
        "--output",
        "json",
    ]);
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 50);
    for r in &records {
        let key = r["key"].as_str().unwrap();
        let i: usize = key.strip_prefix("key-").unwrap().parse().unwrap();
        assert_eq!(r["value"], format!("value-{i}"));
        assert_eq!(r["headers"], serde_json::json!([["src", "test"]]));
        // Keys land where the Java client's murmur2 partitioner puts them.
        assert_eq!(
            r["partition"],
            strom_proto::murmur2::partition_for_key(key.as_bytes(), 5)
        );
    }
    // Default output: the value alone on its own line; --print adds fields in Kafka's order.
    let plain = b.ok(&[
        "consume",
        "events",
        "--from-beginning",
        "--max-messages",
        "50",
    ]);
    assert_eq!(plain.lines().count(), 50);
    assert!(plain.lines().all(|l| l.starts_with("value-")));
    let p = records[0]["partition"].as_i64().unwrap().to_string();
    let one = b.ok(&[
        "consume",
        "events",
        "--partition",
        &p,
        "--offset",
        "0",
        "--max-messages",
        "1",
        "--print",
        "partition,offset,key,value",
    ]);
    assert_eq!(
        one.trim_end().split('\t').take(2).collect::<Vec<_>>(),
        [format!("Partition:{p}"), "Offset:0".to_string()]
    );

    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("c-{codec}");
        b.ok(&["topics", "create", &topic, "--partitions", "1"]);
        let body: String = (0..200).map(|i| format!("{codec} record {i}\n")).collect();
        b.ok_with_input(&["produce", &topic, "--compression", codec], Some(&body));
        let got = b.ok(&[
            "consume",
            &topic,
            "--from-beginning",
            "--max-messages",
            "200",
        ]);
        assert_eq!(got, body, "{codec}");
    }

    // --timeout-ms ends a consumer that sees nothing.
    let idle = b.run(&["consume", "events", "--timeout-ms", "300"]);
    assert!(idle.status.success());
    // Producing to a topic that does not exist creates it, as Kafka's producer does when
    // the broker allows auto-creation (num.partitions partitions)...
    b.ok_with_input(&["produce", "fresh"], Some("x\n"));
    let got = b.ok(&[
        "consume",
        "fresh",
        "--from-beginning",
        "--max-messages",
        "1",
    ]);
    assert_eq!(got, "x\n");
    let described = b.json(&["topics", "describe", "fresh"]);
    assert_eq!(
        described.to_string().matches("\"partition\"").count(),
        1,
        "{described}"
    );
    // ...and is one error line where the broker does not allow it.
    let strict = broker_with(&["auto.create.topics.enable=false"]);
    for args in [
        &["produce", "nope"][..],
        &["perf", "produce", "nope", "--num-records", "1"],
    ] {
        let unknown = strict.run_with_input(args, Some("x\n"));
        assert_eq!(unknown.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&unknown.stderr);
        assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    b.ok(&["perf", "produce", "made", "--num-records", "10"]);
}

#[test]
fn groups_describe_lag_reset_and_delete() {
    let b = broker();
    b.ok(&["topics", "create", "jobs", "--partitions", "2"]);
    let lines: String = (0..10).map(|i| format!("{i}\n")).collect();
    b.ok_with_input(&["produce", "jobs", "--partition", "0"], Some(&lines));
    b.ok_with_input(&["produce", "jobs", "--partition", "1"], Some(&lines));
    let got = b.ok(&[
        "consume",
        "jobs",
        "--group",
        "workers",
        "--from-beginning",
        "--max-messages",
        "15",
    ]);
    assert_eq!(got.lines().count(), 15);

    let list = b.json(&["groups", "list"]);
    assert_eq!(list[0]["group"], "workers");
    assert_eq!(list[0]["state"], "Empty");

    let d = b.json(&["groups", "describe", "workers"]);
    let parts = d["partitions"].as_array().unwrap();
    let committed: i64 = parts
        .iter()
        .map(|p| p["current_offset"].as_i64().unwrap())
        .sum();
    let lag: i64 = parts.iter().map(|p| p["lag"].as_i64().unwrap()).sum();
    assert_eq!(committed, 15, "what was printed is what is committed: {d}");
    assert_eq!(lag, 5);
    let table = b.ok(&["groups", "describe", "--group", "workers"]);
    assert!(
        table.contains("CURRENT-OFFSET  LOG-END-OFFSET  LAG"),
        "{table}"
    );

    // The rest of the records, from the committed offsets on.
    let rest = b.ok(&[
        "consume",
        "jobs",
        "--group",
        "workers",
        "--max-messages",
        "5",
    ]);
    assert_eq!(rest.lines().count(), 5);

    // Dry run (the default) commits nothing; --execute does.
    let dry = b.json(&["groups", "reset-offsets", "workers", "--to-earliest"]);
    assert_eq!(dry["executed"], false);
    let d = b.json(&["groups", "describe", "workers"]);
    assert!(d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["lag"] == 0));
    b.ok(&[
        "groups",
        "reset-offsets",
        "workers",
        "--topic",
        "jobs",
        "--to-offset",
        "4",
        "--execute",
    ]);
    b.ok(&[
        "groups",
        "reset-offsets",
        "workers",
        "--shift-by",
        "-2",
        "--execute",
    ]);
    let d = b.json(&["groups", "describe", "workers"]);
    assert!(d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["current_offset"] == 2));
    b.ok(&[
        "groups",
        "reset-offsets",
        "workers",
        "--to-latest",
        "--execute",
    ]);
    b.ok(&[
        "groups",
        "reset-offsets",
        "workers",
        "--to-datetime",
        "2000-01-01T00:00:00Z",
        "--execute",
    ]);
    let d = b.json(&["groups", "describe", "workers"]);
    assert!(d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["current_offset"] == 0));

    b.ok(&["groups", "delete", "workers"]);
    assert_eq!(b.json(&["groups", "list"]), serde_json::json!([]));
}

#[test]
fn configs_cluster_and_perf() {
    let b = broker();
    let c = b.json(&["cluster", "describe"]);
    assert_eq!(c["controller_id"], 1);
    assert_eq!(c["brokers"].as_array().unwrap().len(), 1);
    assert_eq!(c["quorum"]["leader_id"], 1);
    assert!(c["quorum"]["high_watermark"].as_i64().unwrap() > 0);
    assert_eq!(c["quorum"]["replicas"][0]["role"], "voter");
    let table = b.ok(&["cluster", "describe"]);
    assert!(table.contains("broker,controller"), "{table}");
    assert!(table.contains("Quorum:     leader 1, epoch 1"), "{table}");

    let broker_configs = b.json(&["configs", "describe", "--broker", "1"]);
    assert!(broker_configs
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "log.retention.hours"));
    b.ok(&["topics", "create", "perf", "--partitions", "3"]);
    b.ok(&[
        "configs",
        "alter",
        "--topic",
        "perf",
        "--add-config",
        "retention.ms=1000,segment.bytes=1048576",
    ]);
    let topic = b.json(&[
        "configs",
        "describe",
        "--entity-type",
        "topics",
        "--entity-name",
        "perf",
        "--dynamic-only",
    ]);
    assert_eq!(topic.as_array().unwrap().len(), 2, "{topic}");
    b.ok(&[
        "configs",
        "alter",
        "--topic",
        "perf",
        "--delete-config",
        "retention.ms",
    ]);
    let topic = b.json(&["configs", "describe", "--topic", "perf", "--dynamic-only"]);
    assert_eq!(topic.as_array().unwrap().len(), 1, "{topic}");

    let p = b.json(&[
        "perf",
        "produce",
        "perf",
        "--num-records",
        "20000",
        "--record-size",
        "100",
        "--producers",
        "2",
    ]);
    assert_eq!(p["records"], 20000);
    assert_eq!(p["errors"], 0);
    assert!(p["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let c = b.json(&["perf", "consume", "perf", "--consumers", "2"]);
    assert_eq!(c["records"], 20000);
    assert!(c["mb_per_sec"].as_f64().unwrap() > 0.0);
    let e = b.json(&[
        "perf",
        "e2e",
        "perf",
        "--num-records",
        "2000",
        "--throughput",
        "2000",
    ]);
    assert_eq!(e["records"], 2000);
    assert!(e["latency_ms"]["max"].as_f64().unwrap() >= e["latency_ms"]["p50"].as_f64().unwrap());
}

/// The broker's log written to a file (not a terminal) is plain text: no ANSI colour codes.
#[test]
fn broker_log_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("broker.log");
    let mut child = Command::new(STROM)
        .args(["broker", "--override"])
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0"])
        .env("STROM_LOG", "info")
        .env("STROM_HTTP_LISTENER", "http://127.0.0.1:0")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("strom broker ready"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log:?}");
}

#[test]
fn bad_input_is_one_line_and_a_nonzero_exit() {
    // Nothing listens on port 1: one line naming the address, exit 1.
    let out = Command::new(STROM)
        .args(["topics", "list", "--bootstrap-server", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    // Bad arguments get clap's usage and exit 2.
    for args in [
        &["topics", "bogus"][..],
        &["groups", "reset-offsets", "g"],
        &[
            "produce",
            "t",
            "--acks",
            "2",
            "--bootstrap-server",
            "127.0.0.1:1",
        ],
        &[
            "consume",
            "t",
            "--offset",
            "5",
            "--bootstrap-server",
            "127.0.0.1:1",
        ],
    ] {
        let out = Command::new(STROM).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The README's tour: each `$ strom ...` line inside the tour block is run in order and its
/// output compared with the lines that follow it (ids and timestamps masked).
#[test]
fn readme_tour() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let tour = readme
        .split("<!-- tour:start -->")
        .nth(1)
        .and_then(|s| s.split("<!-- tour:end -->").next())
        .expect("README.md has a tour block");
    let b = broker();
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_code = false;
    for line in tour.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            steps.push((cmd.to_string(), Vec::new()));
        } else if let Some((_, out)) = steps.last_mut() {
            out.push(line.to_string());
        }
    }
    assert!(steps.len() >= 8, "the tour has {} commands", steps.len());
    for (cmd, expected) in steps {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    std::path::Path::new(STROM).parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("STROM_BOOTSTRAP_SERVER", &b.addr)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "tour step failed: {cmd}");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(mask)
            .collect();
        let want: Vec<String> = expected.iter().map(|l| mask(l)).collect();
        assert_eq!(got, want, "tour step: {cmd}");
    }
}

/// Masks what differs between runs: topic ids, member ids, cluster ids, hosts.
fn mask(line: &str) -> String {
    line.split_whitespace()
        .map(|w| {
            let uuid_like = w.len() >= 20 && w.chars().filter(|c| *c == '-').count() >= 4;
            if uuid_like || w.starts_with("strom-") || w.starts_with("/127.0.0.1") {
                "<id>".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
