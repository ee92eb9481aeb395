//! Kafka broker keys Strom honours, on the wire: each test starts a broker with the key set
//! and checks what Kafka 4.1 answers with it (and, where the default differs, without it).

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::time::{Duration, Instant};

mod common;
use common::*;
use strom_testkit::requests::{now_ms, produce};

#[test]
fn fetch_max_bytes_caps_the_response_and_min_bytes_but_the_first_batch_goes_whole() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("fetch.max.bytes", "1024")]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "f", 1), 0);
    // Three batches of about 600 bytes, then one of about 2000.
    for size in [600, 600, 600, 2000] {
        assert_eq!(
            produce(&mut c, "f", 0, batch_at(&[1_000], size), 1).error_code,
            0
        );
    }
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("f", 1 << 20, 1, 0));
    assert_eq!(
        fetched_batches(&r),
        vec![0],
        "1 MiB asked, fetch.max.bytes allows one"
    );
    // The 2000-byte batch is larger than the limit and still returned, being the first.
    let mut req = fetch_request("f", 1 << 20, 1, 0);
    req.topics[0].partitions[0].fetch_offset = 3;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert_eq!(fetched_batches(&r), vec![3]);
    // min_bytes of 1 MiB is capped to 1024, which the 2000-byte batch satisfies: no wait.
    let started = Instant::now();
    let mut req = fetch_request("f", 1 << 20, 1 << 20, 8_000);
    req.topics[0].partitions[0].fetch_offset = 3;
    let _: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    rt.block_on(b.shutdown()).unwrap();

    // Kafka's default (55 MiB) lets the request's own 1 MiB through.
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "f", 1), 0);
    for size in [600, 600, 600] {
        assert_eq!(
            produce(&mut c, "f", 0, batch_at(&[1_000], size), 1).error_code,
            0
        );
    }
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("f", 1 << 20, 1, 0));
    assert_eq!(fetched_batches(&r), vec![0, 1, 2]);
    rt.block_on(b.shutdown()).unwrap();
}

fn commit(c: &mut Conn, topic: &str, metadata: &str) -> i16 {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_static_str("meta"));
    req.generation_id_or_member_epoch = -1;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = topic_name(topic);
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.committed_offset = 5;
    p.committed_metadata = Some(StrBytes::from_string(metadata.to_string()));
    t.partitions.push(p);
    req.topics.push(t);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req);
    r.topics[0].partitions[0].error_code
}

#[test]
fn offset_metadata_longer_than_offset_metadata_max_bytes_is_refused() {
    const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "m", 1), 0);
    assert_eq!(commit(&mut c, "m", &"x".repeat(4096)), 0);
    assert_eq!(
        commit(&mut c, "m", &"x".repeat(4097)),
        OFFSET_METADATA_TOO_LARGE
    );
    rt.block_on(b.shutdown()).unwrap();

    // Java string length: two emoji are 4 UTF-16 units (8 bytes), three accents are 3.
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("offset.metadata.max.bytes", "3")]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "m", 1), 0);
    assert_eq!(commit(&mut c, "m", "\u{e9}\u{e9}\u{e9}"), 0);
    assert_eq!(
        commit(&mut c, "m", "\u{1f600}\u{1f600}"),
        OFFSET_METADATA_TOO_LARGE
    );
    // The refused commit was not stored: the offset is the accepted one's.
    let mut f = OffsetFetchRequest::default();
    f.group_id = GroupId(StrBytes::from_static_str("meta"));
    let mut ft = offset_fetch_request::OffsetFetchRequestTopic::default();
    ft.name = topic_name("m");
    ft.partition_indexes = vec![0];
    f.topics = Some(vec![ft]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &f);
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        p.metadata.as_ref().map(|m| m.as_str()),
        Some("\u{e9}\u{e9}\u{e9}")
    );
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn connections_idle_longer_than_connections_max_idle_ms_are_closed() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("connections.max.idle.ms", "300")]);
    let mut idle = Conn::open(b.addr());
    let _: ApiVersionsResponse = idle.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    // A request in flight longer than the limit (a fetch waiting 1.5 s) keeps it open.
    let mut busy = Conn::open(b.addr());
    assert_eq!(create_topic(&mut busy, "idle", 1), 0);
    let started = Instant::now();
    let r: FetchResponse = busy.call(ApiKey::Fetch, 12, &fetch_request("idle", 1 << 20, 1, 1_500));
    assert!(started.elapsed() >= Duration::from_millis(1_400));
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    // By now `idle` has had nothing for 1.5 s: closed.
    assert!(idle.closed(), "an idle connection is closed");
    let _: ApiVersionsResponse = busy.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    rt.block_on(b.shutdown()).unwrap();

    // Negative: never closed.
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("connections.max.idle.ms", "-1")]);
    let mut c = Conn::open(b.addr());
    std::thread::sleep(Duration::from_millis(700));
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn broker_rack_is_reported_in_metadata_and_describe_cluster() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    let m: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(m.brokers[0].rack, None);
    rt.block_on(b.shutdown()).unwrap();
    // Set on a restart: the broker registers again with it.
    let b = start(&rt, tmp.path(), &[("broker.rack", "rack-a")]);
    let mut c = Conn::open(b.addr());
    let m: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(
        m.brokers[0].rack.as_ref().map(|r| r.as_str()),
        Some("rack-a")
    );
    let d: DescribeClusterResponse = c.call(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default(),
    );
    assert_eq!(
        d.brokers[0].rack.as_ref().map(|r| r.as_str()),
        Some("rack-a")
    );
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn offsets_topic_segment_bytes_and_the_partition_page_limit_are_applied() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(
        &rt,
        tmp.path(),
        &[
            ("offsets.topic.segment.bytes", "2097152"),
            ("offsets.topic.num.partitions", "1"),
            ("max.request.partition.size.limit", "2"),
        ],
    );
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "p", 5), 0);
    assert_eq!(commit(&mut c, "p", ""), 0);
    let image = b.broker.meta.image();
    assert_eq!(
        image
            .topic_config("__consumer_offsets")
            .and_then(|c| c.get("segment.bytes"))
            .map(String::as_str),
        Some("2097152")
    );
    let mut req = DescribeTopicPartitionsRequest::default();
    let mut t = describe_topic_partitions_request::TopicRequest::default();
    t.name = topic_name("p");
    req.topics.push(t);
    req.response_partition_limit = 2000;
    let r: DescribeTopicPartitionsResponse = c.call(ApiKey::DescribeTopicPartitions, 0, &req);
    assert_eq!(r.topics[0].partitions.len(), 2);
    assert_eq!(r.next_cursor.as_ref().map(|c| c.partition_index), Some(2));

    // Every topic, two partitions a page: each partition once, in name order.
    assert_eq!(create_topic(&mut c, "a", 3), 0);
    let image = b.broker.meta.image();
    let expected: Vec<(String, i32)> = image
        .topics
        .values()
        .filter(|t| !b.broker.is_hidden_topic(&t.name))
        .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
        .collect();
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let mut req = DescribeTopicPartitionsRequest::default();
        req.response_partition_limit = 2000;
        req.cursor = cursor.take();
        let r: DescribeTopicPartitionsResponse = c.call(ApiKey::DescribeTopicPartitions, 0, &req);
        pages += 1;
        assert!(pages <= expected.len(), "paging does not end");
        for t in &r.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            seen.extend(
                t.partitions
                    .iter()
                    .map(|p| (name.clone(), p.partition_index)),
            );
        }
        let Some(next) = r.next_cursor else { break };
        let mut at = describe_topic_partitions_request::Cursor::default();
        at.topic_name = next.topic_name;
        at.partition_index = next.partition_index;
        cursor = Some(at);
    }
    assert_eq!(seen, expected);
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn acks_all_needs_min_insync_replicas_capped_at_the_replication_factor() {
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("min.insync.replicas", "2")]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "isr", 1), 0);
    // One replica: Kafka (since 3.7) caps the minimum at the replica count, so this is fine.
    assert_eq!(
        produce(&mut c, "isr", 0, batch_at(&[1_000], 10), -1).error_code,
        0
    );
    // Three replicas, one in sync (the others are brokers that do not exist here).
    let image = b.broker.meta.image();
    let topic = image.topics["isr"].clone();
    rt.block_on(b.broker.meta.commit(move |_| {
        Ok(vec![strom_meta::MetadataRecord::Partition {
            topic_id: topic.topic_id,
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: vec![1],
            leader: 1,
            leader_epoch: topic.partitions[&0].leader_epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            eligible_leader_replicas: Vec::new(),
        }])
    }))
    .unwrap()
    .unwrap();
    let refused = produce(&mut c, "isr", 0, batch_at(&[1_000], 10), -1);
    assert_eq!(refused.error_code, NOT_ENOUGH_REPLICAS);
    assert_eq!(refused.error_message, None, "Kafka sends no message");
    assert_eq!(
        produce(&mut c, "isr", 0, batch_at(&[1_000], 10), 1).error_code,
        0
    );
    // The refused batch was not appended: offsets 0 and 1 only.
    let p = b.broker.replicas.get("isr", 0).unwrap();
    assert_eq!(p.log_end_offset(), 2);
    // Under min.insync.replicas the high watermark stays where it was (Kafka 4.x): the
    // acks=1 record is in the log but not yet visible.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("isr", 1 << 20, 1, 0));
    assert_eq!(fetched_batches(&r), vec![0]);
    assert_eq!(p.high_watermark(), 1);
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn create_time_records_out_of_the_timestamp_window_are_refused() {
    const INVALID_TIMESTAMP: i16 = 32;
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(
        &rt,
        tmp.path(),
        &[("log.message.timestamp.before.max.ms", "86400000")],
    );
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "ts", 1), 0);
    let now = now_ms();
    assert_eq!(
        produce(&mut c, "ts", 0, batch_at(&[now, now - 1_000], 1), 1).error_code,
        0
    );
    // Kafka 4's default future limit is an hour.
    let future = now + 2 * 3_600_000;
    let r = produce(&mut c, "ts", 0, batch_at(&[now, future], 1), 1);
    assert_eq!(r.error_code, INVALID_TIMESTAMP);
    assert_eq!(
        r.error_message.as_ref().map(|m| m.as_str()),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    assert_eq!(r.record_errors.len(), 1);
    assert_eq!(r.record_errors[0].batch_index, 1);
    let message = r.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "Timestamp {future} of message with offset 1 is out of range. The timestamp should be within ["
        )),
        "{message}"
    );
    // The broker's past limit (a day), on a record behind a recent first one.
    let r = produce(
        &mut c,
        "ts",
        0,
        batch_at(&[now, now - 2 * 86_400_000], 1),
        1,
    );
    assert_eq!(r.error_code, INVALID_TIMESTAMP);
    // A topic's own limit wins; LogAppendTime topics are not checked.
    let mut req = IncrementalAlterConfigsRequest::default();
    let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = StrBytes::from_static_str("ts");
    let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
    cfg.name = StrBytes::from_static_str("message.timestamp.type");
    cfg.value = Some(StrBytes::from_static_str("LogAppendTime"));
    res.configs.push(cfg);
    req.resources.push(res);
    let a: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 0, &req);
    assert_eq!(a.responses[0].error_code, 0);
    assert_eq!(
        produce(&mut c, "ts", 0, batch_at(&[now, future], 1), 1).error_code,
        0
    );
    rt.block_on(b.shutdown()).unwrap();
}

/// Sets broker `1`'s `key` with IncrementalAlterConfigs; the error code.
fn alter_broker(c: &mut Conn, key: &str, value: &str) -> (i16, Option<String>) {
    let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
    cfg.name = StrBytes::from_string(key.into());
    cfg.value = Some(StrBytes::from_string(value.into()));
    let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
    res.resource_type = 4;
    res.resource_name = StrBytes::from_static_str("1");
    res.configs.push(cfg);
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources.push(res);
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    let x = &r.responses[0];
    (
        x.error_code,
        x.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// `log.cleaner.backoff.ms`, `.threads` and `.dedupe.buffer.size` change at run time, as in
/// Kafka: a cleaner asleep for ten minutes is restarted with the new settings and cleans.
#[test]
fn log_cleaner_keys_change_at_run_time() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("log.cleaner.backoff.ms", "600000")]);
    let mut c = Conn::open(b.addr());
    compacted_table(&mut c, "slow");
    // The cleaner made its pass at start-up and sleeps for ten minutes.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!cleaned(&mut c, "slow"), "cleaned while the cleaner sleeps");
    assert_eq!(alter_broker(&mut c, "log.cleaner.threads", "0").0, 42);
    assert_eq!(alter_broker(&mut c, "log.cleaner.threads", "2"), (0, None));
    assert_eq!(
        alter_broker(&mut c, "log.cleaner.dedupe.buffer.size", "33554432"),
        (0, None)
    );
    assert_eq!(
        alter_broker(&mut c, "log.cleaner.backoff.ms", "50"),
        (0, None)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cleaned(&mut c, "slow") {
        assert!(Instant::now() < deadline, "not cleaned after the change");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The log.enable switch itself is read-only, as in Kafka.
    assert_eq!(alter_broker(&mut c, "log.cleaner.enable", "false").0, 42);
    rt.block_on(b.shutdown()).unwrap();
}
