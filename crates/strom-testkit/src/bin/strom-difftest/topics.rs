//! CreateTopics, Metadata, CreatePartitions and DeleteTopics, good and bad.

use crate::kit::{self, msg, name, new_topic, Obs};
use kafka_protocol::messages::*;
use strom_testkit::Conn;

fn see_created(o: &mut Obs, label: &str, r: &CreateTopicsResponse) {
    for t in &r.topics {
        o.see(format!(
            "{label} {:?}: error={} message={} partitions={} rf={} id={}",
            t.name.as_str(),
            t.error_code,
            msg(&t.error_message),
            t.num_partitions,
            t.replication_factor,
            if t.topic_id.is_nil() { "nil" } else { "set" }
        ));
    }
}

pub fn create_topics(o: &mut Obs, c: &mut Conn) {
    let ok = o.topic("ok");
    let long = "x".repeat(250);
    let r = kit::create_topics(
        c,
        vec![
            new_topic(&ok, 3, 1, &[]),
            new_topic("bad/name", 1, 1, &[]),
            new_topic("..", 1, 1, &[]),
            new_topic(&long, 1, 1, &[]),
            new_topic(&o.topic("zero"), 0, 1, &[]),
            new_topic(&o.topic("minus2"), -2, 1, &[]),
            new_topic(&o.topic("rf3"), 1, 3, &[]),
            new_topic(&o.topic("rf0"), 1, 0, &[]),
            new_topic(&o.topic("defaults"), -1, -1, &[]),
        ],
        false,
    );
    see_created(o, "create", &r);
    kit::wait_for_leaders(c, &ok, 3);
    let r = kit::create_topics(c, vec![new_topic(&ok, 3, 1, &[])], false);
    see_created(o, "duplicate", &r);
    let r = kit::create_topics(c, vec![new_topic(&o.topic("dry"), 2, 1, &[])], true);
    see_created(o, "validate_only", &r);
    let md = kit::metadata(c, Some(&[&o.topic("dry")]), false);
    o.see(format!(
        "validate_only created nothing: error={}",
        md.topics[0].error_code
    ));
    // Two entries for one name in one request.
    let twice = o.topic("twice");
    let r = kit::create_topics(
        c,
        vec![new_topic(&twice, 1, 1, &[]), new_topic(&twice, 1, 1, &[])],
        false,
    );
    see_created(o, "same name twice", &r);
}

pub fn create_topics_configs(o: &mut Obs, c: &mut Conn) {
    let r = kit::create_topics(
        c,
        vec![
            new_topic(
                &o.topic("good"),
                1,
                1,
                &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
            ),
            new_topic(&o.topic("unknown-key"), 1, 1, &[("no.such.config", "1")]),
            new_topic(&o.topic("bad-value"), 1, 1, &[("retention.ms", "soon")]),
            new_topic(
                &o.topic("bad-policy"),
                1,
                1,
                &[("cleanup.policy", "sometimes")],
            ),
            new_topic(&o.topic("bad-range"), 1, 1, &[("min.insync.replicas", "0")]),
            new_topic(&o.topic("bad-segment"), 1, 1, &[("segment.bytes", "10")]),
        ],
        false,
    );
    see_created(o, "create", &r);
    // The good topic's configs as CreateTopics v5+ reports them.
    if let Some(configs) = &r.topics[0].configs {
        for cfg in configs {
            o.see(format!(
                "config {}={} read_only={} source={} sensitive={}",
                cfg.name.as_str(),
                cfg.value.as_ref().map(|v| v.as_str()).unwrap_or("null"),
                cfg.read_only,
                cfg.config_source,
                cfg.is_sensitive
            ));
        }
    }
}

fn see_metadata(o: &mut Obs, label: &str, md: &MetadataResponse) {
    for t in &md.topics {
        let n = t
            .name
            .as_ref()
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        o.see(format!(
            "{label} {n:?}: error={} internal={} partitions={}",
            t.error_code,
            t.is_internal,
            t.partitions.len()
        ));
        let mut partitions: Vec<_> = t.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition_index);
        for p in partitions {
            o.see(format!(
                "{label} {n:?} p{}: error={} leader={} epoch={} replicas={:?} isr={:?} offline={:?}",
                p.partition_index,
                p.error_code,
                p.leader_id.0,
                p.leader_epoch,
                p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>()
            ));
        }
    }
}

pub fn metadata(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    let md = kit::metadata(c, Some(&[]), false);
    o.see(format!(
        "brokers only: brokers={} topics={} controller={} cluster_id={}",
        md.brokers.len(),
        md.topics.len(),
        md.controller_id.0,
        md.cluster_id.is_some()
    ));
    for b in &md.brokers {
        o.see(format!(
            "broker {} rack={:?}",
            b.node_id.0,
            b.rack.as_ref().map(|r| r.as_str())
        ));
    }
    let md = kit::metadata(c, Some(&[&t, &o.topic("missing"), "bad/name"]), false);
    see_metadata(o, "named", &md);
    // Auto-creation (the broker default allows it): the topic is made with num.partitions.
    let auto = o.topic("auto");
    let md = kit::metadata(c, Some(&[&auto]), true);
    o.see(format!(
        "auto-create first answer: error={} partitions={}",
        md.topics[0].error_code,
        md.topics[0].partitions.len()
    ));
    kit::wait_for_leaders(c, &auto, 1);
    let md = kit::metadata(c, Some(&[&auto]), false);
    see_metadata(o, "auto-created", &md);
    let md = kit::metadata(c, Some(&["bad/name"]), true);
    see_metadata(o, "auto-create invalid name", &md);
    // Every topic: ours are there.
    let md = kit::metadata(c, None, false);
    let ours = md
        .topics
        .iter()
        .filter(|x| x.name.as_ref().is_some_and(|n| n.as_str() == t))
        .count();
    o.see(format!("all topics includes {t}: {ours}"));
}

fn create_partitions_req(topic: &str, count: i32, validate_only: bool) -> CreatePartitionsRequest {
    let mut t = create_partitions_request::CreatePartitionsTopic::default();
    t.name = name(topic);
    t.count = count;
    t.assignments = None;
    let mut req = CreatePartitionsRequest::default();
    req.topics.push(t);
    req.timeout_ms = 15_000;
    req.validate_only = validate_only;
    req
}

pub fn create_partitions(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    for (label, topic, count, dry) in [
        ("grow", t.as_str(), 4, false),
        ("same", t.as_str(), 4, false),
        ("shrink", t.as_str(), 1, false),
        ("validate grow", t.as_str(), 6, true),
        ("unknown topic", "no-such-topic", 3, false),
        ("huge", t.as_str(), 1_000_000_000, false),
    ] {
        let r: CreatePartitionsResponse = c.call(
            ApiKey::CreatePartitions,
            3,
            &create_partitions_req(topic, count, dry),
        );
        let x = &r.results[0];
        o.see(format!(
            "{label}: error={} message={}",
            x.error_code,
            msg(&x.error_message)
        ));
    }
    kit::wait_for_leaders(c, &t, 4);
    let md = kit::metadata(c, Some(&[&t]), false);
    o.see(format!("partitions now {}", md.topics[0].partitions.len()));
}

pub fn delete_topics(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[]);
    let mut req = DeleteTopicsRequest::default();
    req.timeout_ms = 15_000;
    for n in [t.as_str(), "no-such-topic", "bad/name"] {
        let mut d = delete_topics_request::DeleteTopicState::default();
        d.name = Some(name(n));
        req.topics.push(d);
    }
    let mut by_id = delete_topics_request::DeleteTopicState::default();
    by_id.topic_id = uuid::Uuid::from_u128(42);
    req.topics.push(by_id);
    let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 6, &req);
    let mut responses: Vec<_> = r.responses.iter().collect();
    responses.sort_by_key(|x| x.name.as_ref().map(|n| n.to_string()));
    for x in responses {
        o.see(format!(
            "delete {:?}: error={} message={}",
            x.name.as_ref().map(|n| n.as_str()),
            x.error_code,
            msg(&x.error_message)
        ));
    }
    let md = kit::metadata(c, Some(&[&t]), false);
    o.see(format!("after delete: error={}", md.topics[0].error_code));
}
