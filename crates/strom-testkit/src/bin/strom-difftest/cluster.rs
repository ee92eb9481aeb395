//! The cluster-level admin APIs: DescribeCluster, DescribeLogDirs, DescribeTopicPartitions
//! (paging), ListGroups filters, DescribeClientQuotas, ListConfigResources, UpdateFeatures
//! (validate-only: nothing changes), FindCoordinator for a transactional id.

use crate::kit::{self, msg, name, s, Obs};
use kafka_protocol::messages::*;
use strom_testkit::Conn;

pub fn describe_cluster(o: &mut Obs, c: &mut Conn) {
    for (label, endpoint_type) in [("brokers", 1), ("controllers", 2), ("bad type", 9)] {
        let mut req = DescribeClusterRequest::default();
        req.endpoint_type = endpoint_type;
        let r: Result<DescribeClusterResponse, String> =
            c.try_call(ApiKey::DescribeCluster, 1, &req);
        match r {
            Ok(r) => o.see(format!(
                "{label}: error={} message={} brokers={} controller={} endpoint_type={}",
                r.error_code,
                msg(&r.error_message),
                r.brokers.len(),
                r.controller_id.0,
                r.endpoint_type
            )),
            Err(e) => o.see(format!("{label}: {e}")),
        }
    }
}

pub fn describe_log_dirs(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    kit::produce_line(c, &t, 0, kit::batch(3, kit::now_ms()), -1);
    let mut wanted = describe_log_dirs_request::DescribableLogDirTopic::default();
    wanted.topic = name(&t);
    wanted.partitions = vec![0, 1, 7];
    let mut req = DescribeLogDirsRequest::default();
    req.topics = Some(vec![wanted]);
    let r: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &req);
    o.see(format!("error={} dirs={}", r.error_code, r.results.len()));
    for d in &r.results {
        o.see(format!(
            "dir: error={} total>0={} usable>0={} topics={}",
            d.error_code,
            d.total_bytes > 0,
            d.usable_bytes > 0,
            d.topics.len()
        ));
        for t in &d.topics {
            let mut ps: Vec<_> = t.partitions.iter().collect();
            ps.sort_by_key(|p| p.partition_index);
            for p in ps {
                o.see(format!(
                    "p{}: has_bytes={} lag={} future={}",
                    p.partition_index,
                    p.partition_size > 0,
                    p.offset_lag,
                    p.is_future_key
                ));
            }
        }
    }
}

pub fn describe_topic_partitions(o: &mut Obs, c: &mut Conn) {
    let a = o.topic("a");
    let b = o.topic("b");
    kit::topic(c, &a, 3, &[]);
    kit::topic(c, &b, 2, &[]);
    let mut cursor = None;
    for page in 0..4 {
        let mut req = DescribeTopicPartitionsRequest::default();
        for t in [&a, &b, &o.topic("missing")] {
            let mut x = describe_topic_partitions_request::TopicRequest::default();
            x.name = name(t);
            req.topics.push(x);
        }
        req.response_partition_limit = 2;
        req.cursor = cursor.take();
        let r: DescribeTopicPartitionsResponse = c.call(ApiKey::DescribeTopicPartitions, 0, &req);
        for t in &r.topics {
            let ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            o.see(format!(
                "page {page} {:?}: error={} partitions={ps:?}",
                t.name.as_ref().map(|n| n.as_str()),
                t.error_code
            ));
        }
        let next = r.next_cursor.as_ref().map(|c| {
            let mut n = describe_topic_partitions_request::Cursor::default();
            n.topic_name = c.topic_name.clone();
            n.partition_index = c.partition_index;
            n
        });
        o.see(format!(
            "page {page} next: {:?}",
            next.as_ref()
                .map(|c| (c.topic_name.as_str().to_string(), c.partition_index))
        ));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
}

pub fn list_groups(o: &mut Obs, c: &mut Conn) {
    for (label, states, types) in [
        ("all", vec![], vec![]),
        ("state Stable", vec!["Stable"], vec![]),
        ("state bogus", vec!["Bogus"], vec![]),
        ("type consumer", vec![], vec!["consumer"]),
        ("type bogus", vec![], vec!["bogus"]),
    ] {
        let mut req = ListGroupsRequest::default();
        req.states_filter = states.iter().map(|x| s(x)).collect();
        req.types_filter = types.iter().map(|x| s(x)).collect();
        let r: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &req);
        o.see(format!("{label}: error={}", r.error_code));
    }
}

pub fn client_quotas_and_config_resources(o: &mut Obs, c: &mut Conn) {
    let req = DescribeClientQuotasRequest::default();
    let r: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req);
    o.see(format!(
        "quotas: error={} entries={:?}",
        r.error_code,
        r.entries.as_ref().map(|e| e.len())
    ));
    let mut bad = describe_client_quotas_request::ComponentData::default();
    bad.entity_type = s("user");
    bad.match_type = 0;
    bad._match = None;
    let mut req = DescribeClientQuotasRequest::default();
    req.components.push(bad);
    let r: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req);
    o.see(format!(
        "quotas bad filter: error={} message={}",
        r.error_code,
        msg(&r.error_message)
    ));
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[]);
    for (label, types) in [
        ("topics", vec![2i8]),
        ("brokers", vec![4]),
        ("bad type", vec![3]),
    ] {
        let mut req = ListConfigResourcesRequest::default();
        req.resource_types = types;
        let r: ListConfigResourcesResponse = c.call(ApiKey::ListConfigResources, 1, &req);
        let ours = r
            .config_resources
            .iter()
            .filter(|x| x.resource_name.as_str() == t || x.resource_type == 4)
            .map(|x| format!("{}:{}", x.resource_type, x.resource_name.as_str()))
            .collect::<Vec<_>>();
        o.see(format!(
            "config resources {label}: error={} ours={ours:?}",
            r.error_code
        ));
    }
}

pub fn features(o: &mut Obs, c: &mut Conn) {
    for (label, feature, level, upgrade) in [
        ("group.version to 5", "group.version", 5, 1),
        ("group.version down without type", "group.version", 0, 1),
        (
            "group.version up with downgrade type",
            "group.version",
            1,
            2,
        ),
        ("unknown feature", "no.such.version", 1, 1),
        ("metadata.version unsafe down", "metadata.version", 20, 3),
        (
            "group.version safe down (validate only)",
            "group.version",
            0,
            2,
        ),
    ] {
        let mut u = update_features_request::FeatureUpdateKey::default();
        u.feature = s(feature);
        u.max_version_level = level;
        u.upgrade_type = upgrade;
        let mut req = UpdateFeaturesRequest::default();
        req.timeout_ms = 15_000;
        req.validate_only = true;
        req.feature_updates.push(u);
        let r: UpdateFeaturesResponse = c.call(ApiKey::UpdateFeatures, 1, &req);
        o.see(format!(
            "{label}: error={} message={} results={:?}",
            r.error_code,
            msg(&r.error_message),
            r.results.iter().map(|x| x.error_code).collect::<Vec<_>>()
        ));
    }
}
