//! strom-difftest: the same Kafka-protocol scenarios against any broker, printing what a
//! client sees (error codes and messages, offsets, watermarks, configs, group states) as
//! normalized lines, one list per scenario, in one JSON object. `tests/compat/
//! test_differential.py` runs it against Strom and against Apache Kafka and compares.
//!
//!     strom-difftest 127.0.0.1:9092 [scenario ...]     (default: every scenario)
//!     strom-difftest --list

mod cluster;
mod configs;
mod groups;
mod kit;
mod records;
mod topics;
mod wire;

use kit::Obs;
use std::collections::BTreeMap;
use strom_testkit::Conn;

type Scenario = fn(&mut Obs, &mut Conn);

const SCENARIOS: &[(&str, Scenario)] = &[
    ("api_versions", wire::api_versions),
    ("raw_frames", wire::raw_frames),
    ("create_topics", topics::create_topics),
    ("create_topics_configs", topics::create_topics_configs),
    ("metadata", topics::metadata),
    ("create_partitions", topics::create_partitions),
    ("delete_topics", topics::delete_topics),
    ("produce", records::produce),
    ("produce_bad", records::produce_bad),
    ("idempotence", records::idempotence),
    ("fetch", records::fetch),
    ("fetch_sessions", records::fetch_sessions),
    ("list_offsets", records::list_offsets),
    ("log_append_time", records::log_append_time),
    ("delete_records", records::delete_records),
    ("describe_topic_configs", configs::describe_topic),
    ("describe_broker_configs", configs::describe_broker),
    ("alter_topic_configs", configs::alter_topic),
    ("alter_broker_configs", configs::alter_broker),
    ("classic_group", groups::classic_group),
    ("group_errors", groups::group_errors),
    ("offsets", groups::offsets),
    ("consumer_group_heartbeat", groups::consumer_group_heartbeat),
    ("describe_cluster", cluster::describe_cluster),
    ("describe_log_dirs", cluster::describe_log_dirs),
    (
        "describe_topic_partitions",
        cluster::describe_topic_partitions,
    ),
    ("list_groups", cluster::list_groups),
    (
        "client_quotas_and_config_resources",
        cluster::client_quotas_and_config_resources,
    ),
    ("features", cluster::features),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for (name, _) in SCENARIOS {
            println!("{name}");
        }
        return;
    }
    let Some(bootstrap) = args.first() else {
        eprintln!("usage: strom-difftest HOST:PORT [scenario ...] | --list");
        std::process::exit(2);
    };
    let wanted = &args[1..];
    // A scenario's panic is reported as an observation; keep stderr quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = BTreeMap::new();
    for (name, scenario) in SCENARIOS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let mut conn = match Conn::connect(bootstrap.as_str()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("strom-difftest: connecting to {bootstrap}: {e}");
                std::process::exit(1);
            }
        };
        let mut obs = Obs::new(name);
        // A scenario that panics (a response that did not decode, a closed connection
        // where one was not expected) is itself an observation.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scenario(&mut obs, &mut conn);
        }));
        if let Err(p) = run {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            obs.see(format!("PANIC {why}"));
        }
        out.insert(name.to_string(), obs.lines);
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}
