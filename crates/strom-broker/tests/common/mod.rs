//! What every broker test shares: in-process brokers on ephemeral ports, and the raw-frame
//! connection of `strom-testkit`.
#![allow(dead_code)]

use kafka_protocol::messages::*;
use std::collections::BTreeMap;
use strom_broker::{Broker, BrokerConfig, RunningBroker};
pub use strom_testkit::requests::topic_name;
pub use strom_testkit::Conn;

pub fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> BrokerConfig {
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    props.insert("log.dirs".into(), dir.join("data").display().to_string());
    props.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".into());
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    BrokerConfig::from_properties(&props).unwrap().0
}

pub fn start(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> RunningBroker {
    rt.block_on(Broker::start(config(dir, extra))).unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn create_topic(c: &mut Conn, name: &str, partitions: i32) -> i16 {
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = topic_name(name);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics.push(t);
    req.timeout_ms = 10_000;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    resp.topics[0].error_code
}
