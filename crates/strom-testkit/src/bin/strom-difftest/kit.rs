//! What the scenarios share: the observation list, request builders, waiting for a new
//! topic's leader, and record batches.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::time::{Duration, Instant};
use strom_proto::BatchBuilder;
use strom_testkit::Conn;

/// The lines a scenario saw. Values that differ between any two brokers by nature (topic
/// ids, cluster ids, hosts and ports, wall-clock times) are masked by the scenarios.
pub struct Obs {
    pub name: String,
    pub lines: Vec<String>,
}

impl Obs {
    pub fn new(name: &str) -> Obs {
        Obs {
            name: name.to_string(),
            lines: Vec::new(),
        }
    }

    pub fn see(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// A topic name unique to this scenario (the same on every broker).
    pub fn topic(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name.replace('_', "-"))
    }
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub use strom_testkit::requests::{now_ms, produce_request as produce_req, topic_name as name};

/// An optional message as a client prints it.
pub fn msg(m: &Option<StrBytes>) -> String {
    match m {
        Some(m) => format!("{:?}", m.as_str()),
        None => "null".into(),
    }
}

/// Text with every run of 12 or more digits (a wall-clock time in ms) replaced by "T".
pub fn mask_times(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    for ch in text.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        if digits.len() >= 12 {
            out.push('T');
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        out.push(ch);
    }
    out.pop();
    out
}

/// A timestamp: -1 stays, anything else is "t" (wall clocks differ).
pub fn ts(t: i64) -> String {
    if t < 0 {
        t.to_string()
    } else {
        "t".into()
    }
}

pub fn new_topic(
    topic: &str,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
) -> create_topics_request::CreatableTopic {
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = partitions;
    t.replication_factor = rf;
    for (k, v) in configs {
        let mut c = create_topics_request::CreatableTopicConfig::default();
        c.name = s(k);
        c.value = Some(s(v));
        t.configs.push(c);
    }
    t
}

pub fn create_topics(
    c: &mut Conn,
    topics: Vec<create_topics_request::CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    let mut req = CreateTopicsRequest::default();
    req.topics = topics;
    req.timeout_ms = 15_000;
    req.validate_only = validate_only;
    c.call(ApiKey::CreateTopics, 7, &req)
}

/// Creates a topic and waits until every partition has a leader; panics if it fails.
pub fn topic(c: &mut Conn, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let r = create_topics(c, vec![new_topic(topic, partitions, 1, configs)], false);
    let t = &r.topics[0];
    assert_eq!(t.error_code, 0, "creating {topic}: {:?}", t.error_message);
    wait_for_leaders(c, topic, partitions);
    // Leaders in the metadata may not serve yet (Kafka's become leader a moment later):
    // wait until each partition answers ListOffsets, as a client's retries would.
    for p in 0..partitions {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !list_offset(c, topic, p, -1, 9).starts_with("error=0 ") {
            assert!(
                Instant::now() < deadline,
                "{topic}-{p} does not serve after 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn metadata(c: &mut Conn, topics: Option<&[&str]>, auto_create: bool) -> MetadataResponse {
    let mut req = MetadataRequest::default();
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|t| {
                let mut mt = metadata_request::MetadataRequestTopic::default();
                mt.name = Some(name(t));
                mt
            })
            .collect()
    });
    req.allow_auto_topic_creation = auto_create;
    c.call(ApiKey::Metadata, 12, &req)
}

pub fn wait_for_leaders(c: &mut Conn, topic: &str, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let md = metadata(c, Some(&[topic]), false);
        let ready = md.topics.first().is_some_and(|t| {
            t.error_code == 0
                && t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} has no leaders after 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A batch of `n` keyed records, timestamps `t0`, `t0 + 1`, ...
pub fn batch(n: usize, t0: i64) -> Bytes {
    let mut b = BatchBuilder::new(t0);
    for i in 0..n {
        b.push(
            Some(format!("k{i}").as_bytes()),
            Some(format!("v{i}").as_bytes()),
            t0 + i as i64,
        );
    }
    Bytes::from(b.build())
}

/// One partition's produce answer, as a line.
pub fn produce_line(
    c: &mut Conn,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> String {
    let r: Result<ProduceResponse, String> = c.try_call(
        ApiKey::Produce,
        11,
        &produce_req(topic, partition, records, acks),
    );
    match r {
        Err(e) => e,
        Ok(r) => {
            let p = &r.responses[0].partition_responses[0];
            let errors: Vec<String> = p
                .record_errors
                .iter()
                .map(|e| {
                    let m = msg(&e.batch_index_error_message);
                    format!("{}:{}", e.batch_index, mask_times(&m))
                })
                .collect();
            format!(
                "error={} base_offset={} log_append_time={} log_start={} message={} record_errors={errors:?}",
                p.error_code,
                p.base_offset,
                ts(p.log_append_time_ms),
                p.log_start_offset,
                msg(&p.error_message)
            )
        }
    }
}

pub fn list_offset(
    c: &mut Conn,
    topic: &str,
    partition: i32,
    timestamp: i64,
    version: i16,
) -> String {
    let mut p = list_offsets_request::ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = timestamp;
    p.current_leader_epoch = -1;
    let mut t = list_offsets_request::ListOffsetsTopic::default();
    t.name = name(topic);
    t.partitions.push(p);
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics.push(t);
    let r: Result<ListOffsetsResponse, String> = c.try_call(ApiKey::ListOffsets, version, &req);
    match r {
        Err(e) => e,
        Ok(r) => {
            let p = &r.topics[0].partitions[0];
            format!(
                "error={} offset={} timestamp={} leader_epoch={}",
                p.error_code, p.offset, p.timestamp, p.leader_epoch
            )
        }
    }
}
