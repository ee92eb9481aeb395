//! The high watermark and the leader epoch on the wire: consumers read up to the high
//! watermark, ListOffsets' latest is the high watermark, acks=all waits for it, and requests
//! carrying an old or unknown leader epoch are refused as Kafka refuses them.

use kafka_protocol::messages::*;
use std::time::Duration;

mod common;
use common::*;
use strom_testkit::requests::produce_request;

const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const REQUEST_TIMED_OUT: i16 = 7;

fn latest(c: &mut Conn, topic: &str, current_leader_epoch: i32) -> (i16, i64, i32) {
    let mut p = list_offsets_request::ListOffsetsPartition::default();
    p.timestamp = -1;
    p.current_leader_epoch = current_leader_epoch;
    let mut t = list_offsets_request::ListOffsetsTopic::default();
    t.name = topic_name(topic);
    t.partitions.push(p);
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics.push(t);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

fn fetch(c: &mut Conn, topic: &str, current_leader_epoch: i32, max_wait_ms: i32) -> FetchResponse {
    let mut req = fetch_request(topic, 1 << 20, 1, max_wait_ms);
    req.topics[0].partitions[0].current_leader_epoch = current_leader_epoch;
    c.call(ApiKey::Fetch, 12, &req)
}

/// Moves partition 0 of `topic` to these replicas and ISR with a new leader epoch, through the
/// broker's commit (so the hosted partition takes it).
fn reassign(
    b: &strom_broker::RunningBroker,
    rt: &tokio::runtime::Runtime,
    topic: &str,
    replicas: Vec<i32>,
    isr: Vec<i32>,
) -> i32 {
    let image = b.broker.meta.image();
    let t = image.topics[topic].clone();
    let epoch = t.partitions[&0].leader_epoch + 1;
    rt.block_on(b.broker.commit(move |_| {
        Ok(vec![strom_meta::MetadataRecord::Partition {
            topic_id: t.topic_id,
            partition: 0,
            replicas: replicas.clone(),
            isr: isr.clone(),
            leader: 1,
            leader_epoch: epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            eligible_leader_replicas: Vec::new(),
        }])
    }))
    .unwrap();
    epoch
}

#[test]
fn one_replica_answers_acks_1_once_its_records_are_visible() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("node.id", "1")]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "one", 1), 0);
    for i in 0..20 {
        assert_eq!(
            produce(&mut c, "one", 0, batch_at(&[1_000], 10), 1).error_code,
            0
        );
        // Answered means durable on the only replica: visible at once, as in Kafka.
        assert_eq!(latest(&mut c, "one", -1), (0, i + 1, 0));
    }
    let r = fetch(&mut c, "one", 0, 0);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 20);
    assert_eq!(fetched_batches(&r).len(), 20);
    assert_eq!(
        fetch(&mut c, "one", 1, 0).responses[0].partitions[0].error_code,
        UNKNOWN_LEADER_EPOCH
    );
    assert_eq!(latest(&mut c, "one", 3).0, UNKNOWN_LEADER_EPOCH);
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn a_follower_that_does_not_fetch_holds_the_high_watermark_back() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("node.id", "1")]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "hw", 1), 0);
    assert_eq!(
        produce(&mut c, "hw", 0, batch_at(&[1_000], 10), 1).error_code,
        0
    );
    // Broker 2 (which does not exist) is in the ISR and never fetches.
    let epoch = reassign(&b, &rt, "hw", vec![1, 2], vec![1, 2]);
    assert_eq!(epoch, 1);
    let r = produce(&mut c, "hw", 0, batch_at(&[1_000], 10), 1);
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 1),
        "acks=1: on the leader's disk"
    );
    assert_eq!(
        latest(&mut c, "hw", epoch),
        (0, 1, epoch),
        "latest is the high watermark"
    );
    let r = fetch(&mut c, "hw", epoch, 0);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 1);
    assert_eq!(
        fetched_batches(&r),
        vec![0],
        "nothing above the high watermark"
    );
    let mut req = produce_request("hw", 0, batch_at(&[1_000], 10), -1);
    req.timeout_ms = 300;
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        REQUEST_TIMED_OUT
    );
    // The old epoch is fenced.
    assert_eq!(
        fetch(&mut c, "hw", 0, 0).responses[0].partitions[0].error_code,
        FENCED_LEADER_EPOCH
    );
    assert_eq!(latest(&mut c, "hw", 0).0, FENCED_LEADER_EPOCH);

    // A parked fetch from the high watermark wakes when broker 2 leaves the ISR.
    let mut parked = Conn::open(b.addr());
    let mut req = fetch_request("hw", 1 << 20, 1, 10_000);
    req.topics[0].partitions[0].fetch_offset = 1;
    let frame = parked.frame(ApiKey::Fetch, 12, &req);
    parked.send_raw(&frame);
    std::thread::sleep(Duration::from_millis(200));
    let epoch = reassign(&b, &rt, "hw", vec![1, 2], vec![1]);
    let started = std::time::Instant::now();
    let r: FetchResponse = parked.read_response(ApiKey::Fetch, 12);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.responses[0].partitions[0].high_watermark, 3);
    assert_eq!(fetched_batches(&r), vec![1, 2]);
    assert_eq!(latest(&mut c, "hw", epoch), (0, 3, epoch));
    rt.block_on(b.shutdown()).unwrap();
}

/// Registers broker `id` as a new incarnation; its broker epoch.
fn register(b: &strom_broker::RunningBroker, rt: &tokio::runtime::Runtime, id: i32) -> i64 {
    rt.block_on(b.broker.commit(move |_| {
        Ok(vec![strom_meta::MetadataRecord::RegisterBroker {
            node_id: id,
            host: "127.0.0.1".into(),
            port: 1,
            rack: None,
            log_dirs: Vec::new(),
            incarnation: Some(uuid::Uuid::new_v4()),
        }])
    }))
    .unwrap();
    b.broker.meta.image().brokers[&id].epoch
}

/// A Fetch v15 from follower 2 in broker epoch `epoch`, at `offset`: its error code.
fn follower_fetch(c: &mut Conn, b: &strom_broker::RunningBroker, epoch: i64, offset: i64) -> i16 {
    let mut req = fetch_request("kip903", 1 << 20, 1, 0);
    req.topics[0].topic_id = b.broker.meta.image().topics["kip903"].topic_id;
    req.topics[0].partitions[0].fetch_offset = offset;
    req.topics[0].partitions[0].current_leader_epoch = 1;
    req.replica_state.replica_id = BrokerId(2);
    req.replica_state.replica_epoch = epoch;
    let r: FetchResponse = c.call(ApiKey::Fetch, 15, &req);
    r.responses[0].partitions[0].error_code
}

/// KIP-903: a follower's fetches count only in the broker epoch it is registered with. An
/// older incarnation's fetch is refused; a newer one than the leader knows is served but
/// cannot bring it into the ISR; its registered epoch does.
#[test]
fn a_follower_joins_the_isr_only_in_its_registered_broker_epoch() {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("node.id", "1")]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "kip903", 1), 0);
    let old = register(&b, &rt, 2);
    let now = register(&b, &rt, 2);
    assert!(now > old, "a new incarnation, a later epoch: {old} {now}");
    assert_eq!(reassign(&b, &rt, "kip903", vec![1, 2], vec![1]), 1);
    assert_eq!(
        produce(&mut c, "kip903", 0, batch_at(&[1_000], 10), 1).error_code,
        0
    );
    let isr = || {
        b.broker.meta.image().topics["kip903"].partitions[&0]
            .isr
            .clone()
    };
    assert_eq!(follower_fetch(&mut c, &b, old, 1), NOT_LEADER_OR_FOLLOWER);
    assert_eq!(follower_fetch(&mut c, &b, now + 1, 1), 0, "served");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        isr(),
        vec![1],
        "not in the ISR from an epoch not registered"
    );
    assert_eq!(follower_fetch(&mut c, &b, now, 1), 0);
    let started = std::time::Instant::now();
    while isr() != vec![1, 2] {
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", isr());
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(b.shutdown()).unwrap();
}
