//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs of topics and brokers: names,
//! values, sources, synonyms, flags, and the errors for bad names and values.

use crate::kit::{self, msg, s, Obs};
use kafka_protocol::messages::*;
use strom_testkit::Conn;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn describe(c: &mut Conn, kind: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResponse {
    let mut res = describe_configs_request::DescribeConfigsResource::default();
    res.resource_type = kind;
    res.resource_name = s(name);
    res.configuration_keys = keys.map(|ks| ks.iter().map(|k| s(k)).collect());
    let mut req = DescribeConfigsRequest::default();
    req.resources.push(res);
    req.include_synonyms = true;
    c.call(ApiKey::DescribeConfigs, 4, &req)
}

fn see_configs(o: &mut Obs, label: &str, r: &DescribeConfigsResponse) {
    for res in &r.results {
        o.see(format!(
            "{label}: error={} message={} configs={}",
            res.error_code,
            msg(&res.error_message),
            if res.configs.is_empty() {
                "none"
            } else {
                "some"
            }
        ));
        let mut configs: Vec<_> = res.configs.iter().collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        for c in configs {
            let synonyms: Vec<String> = c
                .synonyms
                .iter()
                .map(|y| {
                    format!(
                        "{}={}@{}",
                        y.name.as_str(),
                        y.value.as_ref().map(|v| v.as_str()).unwrap_or("null"),
                        y.source
                    )
                })
                .collect();
            o.see(format!(
                "{label} {}={} source={} read_only={} sensitive={} type={} synonyms={synonyms:?}",
                c.name.as_str(),
                c.value.as_ref().map(|v| v.as_str()).unwrap_or("null"),
                c.config_source,
                c.read_only,
                c.is_sensitive,
                c.config_type
            ));
        }
    }
}

pub fn describe_topic(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(
        c,
        &t,
        1,
        &[
            ("retention.ms", "3600000"),
            ("cleanup.policy", "compact,delete"),
        ],
    );
    let r = describe(c, TOPIC, &t, None);
    see_configs(o, "all", &r);
    let r = describe(c, TOPIC, &t, Some(&["retention.ms", "no.such.key"]));
    see_configs(o, "two keys", &r);
    let r = describe(c, TOPIC, "no-such-topic", None);
    see_configs(o, "unknown topic", &r);
    let r = describe(c, TOPIC, "bad/name", None);
    see_configs(o, "invalid name", &r);
}

/// Broker keys Strom honours (the rest of Kafka's broker configs are compared by name
/// only, in `api`-style lines).
const BROKER_KEYS: &[&str] = &[
    "log.retention.hours",
    "log.retention.ms",
    "log.segment.bytes",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "message.max.bytes",
    "log.cleanup.policy",
    "min.insync.replicas",
    "offsets.retention.minutes",
    "group.initial.rebalance.delay.ms",
    "log.message.timestamp.type",
    "compression.type",
    "log.cleaner.enable",
];

pub fn describe_broker(o: &mut Obs, c: &mut Conn) {
    let r = describe(c, BROKER, "1", Some(BROKER_KEYS));
    see_configs(o, "broker", &r);
    let r = describe(c, BROKER, "1", None);
    let mut names: Vec<String> = r.results[0]
        .configs
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    names.sort();
    o.see(format!(
        "broker all: error={} count>100={}",
        r.results[0].error_code,
        names.len() > 100
    ));
    for n in names {
        o.see(format!("broker key {n}"));
    }
    let r = describe(c, BROKER, "", Some(&["log.retention.ms"]));
    see_configs(o, "cluster default", &r);
    let r = describe(c, BROKER, "7", None);
    see_configs(o, "other broker", &r);
    let r = describe(c, BROKER, "x", None);
    see_configs(o, "bad broker id", &r);
}

fn incremental(
    c: &mut Conn,
    kind: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> String {
    let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
    res.resource_type = kind;
    res.resource_name = s(name);
    for (k, op, v) in ops {
        let mut a = incremental_alter_configs_request::AlterableConfig::default();
        a.name = s(k);
        a.config_operation = *op;
        a.value = v.map(s);
        res.configs.push(a);
    }
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources.push(res);
    req.validate_only = validate_only;
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    let x = &r.responses[0];
    format!("error={} message={}", x.error_code, msg(&x.error_message))
}

fn legacy(c: &mut Conn, kind: i8, name: &str, sets: &[(&str, &str)]) -> String {
    let mut res = alter_configs_request::AlterConfigsResource::default();
    res.resource_type = kind;
    res.resource_name = s(name);
    for (k, v) in sets {
        let mut a = alter_configs_request::AlterableConfig::default();
        a.name = s(k);
        a.value = Some(s(v));
        res.configs.push(a);
    }
    let mut req = AlterConfigsRequest::default();
    req.resources.push(res);
    let r: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, 2, &req);
    let x = &r.responses[0];
    format!("error={} message={}", x.error_code, msg(&x.error_message))
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub fn alter_topic(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[]);
    let keys: &[&str] = &["retention.ms", "cleanup.policy", "segment.bytes"];
    for (label, ops) in [
        ("set retention", vec![("retention.ms", SET, Some("5000"))]),
        (
            "append policy",
            vec![("cleanup.policy", APPEND, Some("compact"))],
        ),
        (
            "subtract policy",
            vec![("cleanup.policy", SUBTRACT, Some("delete"))],
        ),
        ("delete retention", vec![("retention.ms", DELETE, None)]),
        ("unknown key", vec![("no.such.key", SET, Some("1"))]),
        ("bad value", vec![("retention.ms", SET, Some("later"))]),
        ("too small segment", vec![("segment.bytes", SET, Some("1"))]),
        (
            "append to non-list",
            vec![("retention.ms", APPEND, Some("1"))],
        ),
        ("bad op", vec![("retention.ms", 9, Some("1"))]),
        (
            "same key twice",
            vec![
                ("retention.ms", SET, Some("1")),
                ("retention.ms", SET, Some("2")),
            ],
        ),
    ] {
        o.see(format!(
            "{label}: {}",
            incremental(c, TOPIC, &t, &ops, false)
        ));
    }
    o.see(format!(
        "validate only: {}",
        incremental(
            c,
            TOPIC,
            &t,
            &[("segment.bytes", SET, Some("1048576"))],
            true
        )
    ));
    o.see(format!(
        "unknown topic: {}",
        incremental(
            c,
            TOPIC,
            "no-such-topic",
            &[("retention.ms", SET, Some("1"))],
            false
        )
    ));
    let r = describe(c, TOPIC, &t, Some(keys));
    see_configs(o, "after incremental", &r);
    o.see(format!(
        "legacy set: {}",
        legacy(c, TOPIC, &t, &[("segment.bytes", "2097152")])
    ));
    o.see(format!(
        "legacy bad: {}",
        legacy(c, TOPIC, &t, &[("no.such.key", "1")])
    ));
    let r = describe(c, TOPIC, &t, Some(keys));
    see_configs(o, "after legacy (replaces all)", &r);
}

pub fn alter_broker(o: &mut Obs, c: &mut Conn) {
    let keys: &[&str] = &["log.retention.ms", "log.cleaner.backoff.ms"];
    for (label, name, ops) in [
        (
            "dynamic per broker",
            "1",
            vec![("log.retention.ms", SET, Some("7200000"))],
        ),
        (
            "cluster default",
            "",
            vec![("log.cleaner.backoff.ms", SET, Some("20000"))],
        ),
        (
            "read-only key",
            "1",
            vec![("log.dirs", SET, Some("/tmp/x"))],
        ),
        ("unknown key", "1", vec![("no.such.key", SET, Some("1"))]),
        ("bad value", "1", vec![("log.retention.ms", SET, Some("x"))]),
        (
            "other broker",
            "7",
            vec![("log.retention.ms", SET, Some("1"))],
        ),
    ] {
        o.see(format!(
            "{label}: {}",
            incremental(c, BROKER, name, &ops, false)
        ));
    }
    let r = describe(c, BROKER, "1", Some(keys));
    see_configs(o, "after", &r);
    // Back to the defaults for other scenarios.
    incremental(c, BROKER, "1", &[("log.retention.ms", DELETE, None)], false);
    incremental(
        c,
        BROKER,
        "",
        &[("log.cleaner.backoff.ms", DELETE, None)],
        false,
    );
}
