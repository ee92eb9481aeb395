//! What every broker test shares: in-process brokers on ephemeral ports, and the raw-frame
//! connection of `strom-testkit`.
#![allow(dead_code)]

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use strom_broker::{Broker, BrokerConfig, RunningBroker};
use strom_proto::BatchBuilder;
pub use strom_testkit::requests::{produce, topic_name};
pub use strom_testkit::Conn;

pub fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> BrokerConfig {
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    props.insert("log.dirs".into(), dir.join("data").display().to_string());
    props.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".into());
    props.insert("strom.http.listener".into(), "http://127.0.0.1:0".into());
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

/// A compacted topic (1 KiB segments, cleanable at once, tombstones kept for 0 ms) holding
/// 40 rounds of keys k0..k4 (values v0..v39, offsets 0..199) and a tombstone for k4 at 200.
pub fn compacted_table(c: &mut Conn, name: &str) {
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = topic_name(name);
    t.num_partitions = 1;
    t.replication_factor = 1;
    for (k, v) in [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "1024"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "0"),
    ] {
        let mut cfg = create_topics_request::CreatableTopicConfig::default();
        cfg.name = StrBytes::from_string(k.into());
        cfg.value = Some(StrBytes::from_string(v.into()));
        t.configs.push(cfg);
    }
    let mut req = CreateTopicsRequest::default();
    req.topics.push(t);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(r.topics[0].error_code, 0);
    for round in 0..40 {
        let mut b = BatchBuilder::new(1_000);
        for i in 0..5 {
            let key = format!("k{i}");
            let value = format!("v{round}");
            b.push(Some(key.as_bytes()), Some(value.as_bytes()), 1_000 + i);
        }
        assert_eq!(
            produce(c, name, 0, Bytes::from(b.build()), -1).error_code,
            0
        );
    }
    let mut tomb = BatchBuilder::new(1_000);
    tomb.push(Some(b"k4"), None, 1_000);
    assert_eq!(
        produce(c, name, 0, Bytes::from(tomb.build()), -1).base_offset,
        200
    );
}

/// Whether `compacted_table`'s topic has been cleaned: outside the active segment every key
/// once, every record one that was produced at its offset, each key's latest value kept.
pub fn cleaned(c: &mut Conn, name: &str) -> bool {
    let now = fetch_all(c, name);
    let done = now.iter().all(|r| r.2.as_deref() != Some(b"v0")) && now.len() < 40;
    if done {
        for r in &now {
            let produced = if r.0 == 200 {
                (b"k4".to_vec(), None)
            } else {
                (
                    format!("k{}", r.0 % 5).into_bytes(),
                    Some(format!("v{}", r.0 / 5).into_bytes()),
                )
            };
            assert_eq!((r.1.clone(), r.2.clone()), produced, "offset {}", r.0);
        }
        for k in 0..4 {
            let key = format!("k{k}").into_bytes();
            let latest = now.iter().rev().find(|r| r.1 == key).expect("a key kept");
            assert_eq!(latest.2.as_deref(), Some(&b"v39"[..]), "k{k}");
            assert_eq!(latest.0, 195 + k as i64, "offsets are preserved");
        }
    }
    done
}

pub fn fetch_all(c: &mut Conn, topic: &str) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut offset = 0i64;
    loop {
        let mut fp = fetch_request::FetchPartition::default();
        fp.fetch_offset = offset;
        fp.partition_max_bytes = 1 << 20;
        let mut ft = fetch_request::FetchTopic::default();
        ft.topic = topic_name(topic);
        ft.partitions.push(fp);
        let mut req = FetchRequest::default();
        req.max_wait_ms = 0;
        req.max_bytes = 1 << 20;
        req.topics.push(ft);
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
        let pd = &r.responses[0].partitions[0];
        assert_eq!(pd.error_code, 0);
        let bytes = pd.records.as_ref().map(|b| b.to_vec()).unwrap_or_default();
        if bytes.is_empty() {
            return out;
        }
        for (h, b) in strom_proto::batch::split(&bytes).unwrap() {
            for rec in strom_proto::records::decode(b).unwrap() {
                out.push((
                    rec.offset,
                    rec.key.unwrap_or_default().to_vec(),
                    rec.value.map(<[u8]>::to_vec),
                ));
            }
            offset = h.next_offset();
        }
    }
}

/// One batch of records with these timestamps, each value `value_bytes` long.
pub fn batch_at(timestamps: &[i64], value_bytes: usize) -> Bytes {
    let mut b = BatchBuilder::new(timestamps[0]);
    let value = vec![b'v'; value_bytes];
    for (i, ts) in timestamps.iter().enumerate() {
        b.push(Some(format!("k{i}").as_bytes()), Some(&value), *ts);
    }
    Bytes::from(b.build())
}

/// A Fetch (v12 fields) of partition 0 of `topic` from offset 0.
pub fn fetch_request(
    topic: &str,
    max_bytes: i32,
    min_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    let mut fp = fetch_request::FetchPartition::default();
    fp.partition_max_bytes = 1 << 20;
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = topic_name(topic);
    ft.partitions.push(fp);
    let mut req = FetchRequest::default();
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = min_bytes;
    req.max_bytes = max_bytes;
    req.session_epoch = -1;
    req.topics.push(ft);
    req
}

/// The offsets of the batches a fetch from offset 0 returns.
pub fn fetched_batches(r: &FetchResponse) -> Vec<i64> {
    let records = r.responses[0].partitions[0].records.clone().unwrap();
    strom_proto::batch::split(&records)
        .unwrap()
        .into_iter()
        .map(|(h, _)| h.base_offset)
        .collect()
}

/// A topic config's value as DescribeConfigs (v4) gives it.
pub fn topic_config(c: &mut Conn, topic: &str, key: &str) -> Option<String> {
    let mut req = DescribeConfigsRequest::default();
    let mut res = describe_configs_request::DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = topic_name(topic).0;
    req.resources.push(res);
    let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req);
    r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .and_then(|c| c.value.as_ref().map(|v| v.as_str().to_string()))
}
