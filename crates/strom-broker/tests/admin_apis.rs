//! The admin APIs Kafka 4.x tools call beyond topics and groups: feature flags (ApiVersions'
//! feature fields, UpdateFeatures), DescribeClientQuotas and ListConfigResources, with
//! Kafka's errors and messages for bad input.

mod common;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// Supported (name, min, max) and finalized (name, level) features.
type Features = (Vec<(String, i16, i16)>, Vec<(String, i16)>);

fn features(r: &ApiVersionsResponse) -> Features {
    let supported = r
        .supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect();
    let finalized = r
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.max_version_level))
        .collect();
    (supported, finalized)
}

fn update(
    c: &mut Conn,
    version: i16,
    name: &str,
    level: i16,
    upgrade: i8,
) -> UpdateFeaturesResponse {
    let mut u = update_features_request::FeatureUpdateKey::default();
    u.feature = StrBytes::from_string(name.to_string());
    u.max_version_level = level;
    u.upgrade_type = upgrade;
    if version == 0 {
        u.allow_downgrade = upgrade != 1;
        u.upgrade_type = 1;
    }
    let mut req = UpdateFeaturesRequest::default();
    req.timeout_ms = 10_000;
    req.feature_updates.push(u);
    c.call(ApiKey::UpdateFeatures, version, &req)
}

fn has_api(r: &ApiVersionsResponse, key: ApiKey) -> bool {
    r.api_keys.iter().any(|k| k.api_key == key as i16)
}

#[test]
fn feature_levels_are_advertised_updated_and_honoured() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let b = start(&rt, dir.path(), &[]);
    let mut c = Conn::open(b.addrs[0]);
    let v4: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    let (supported, finalized) = features(&v4);
    assert_eq!(
        supported,
        vec![
            ("eligible.leader.replicas.version".into(), 0, 1),
            ("group.version".into(), 0, 1),
            ("metadata.version".into(), 7, 27),
            ("transaction.version".into(), 0, 2)
        ]
    );
    assert_eq!(
        finalized,
        vec![
            ("eligible.leader.replicas.version".into(), 1),
            ("group.version".into(), 1),
            ("metadata.version".into(), 27),
            ("transaction.version".into(), 2)
        ]
    );
    // Before v4, features with minimum 0 are left out (older clients cannot read them).
    let v3: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(features(&v3).0, vec![("metadata.version".into(), 7, 27)]);
    assert!(has_api(&v3, ApiKey::ConsumerGroupHeartbeat));

    // Bad updates: Kafka's code and message, nothing changes.
    let r = update(&mut c, 2, "group.version", 5, 1);
    assert_eq!(r.error_code, 95, "INVALID_UPDATE_VERSION");
    assert_eq!(
        r.error_message.as_deref(),
        Some("The update failed for all features since the following feature had an error: Invalid update version 5 for feature group.version. Local controller 1 only supports versions 0-1")
    );
    let r = update(&mut c, 2, "group.version", 0, 1);
    assert_eq!(r.error_code, 95);
    assert!(r
        .error_message
        .unwrap()
        .contains("without setting the upgrade type"));
    let r = update(&mut c, 1, "share.version", 1, 1);
    assert_eq!(r.error_code, 95);
    assert!(r
        .error_message
        .unwrap()
        .ends_with("does not support this feature."));

    // A safe downgrade of group.version turns the consumer protocol off.
    let r = update(&mut c, 1, "group.version", 0, 2);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.results.len(), 1, "v1 answers per feature");
    let after: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    assert_eq!(
        features(&after).1,
        vec![
            ("eligible.leader.replicas.version".into(), 1),
            ("metadata.version".into(), 27),
            ("transaction.version".into(), 2)
        ]
    );
    assert!(after.finalized_features_epoch > v4.finalized_features_epoch);
    assert!(!has_api(&after, ApiKey::ConsumerGroupHeartbeat));
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = GroupId(StrBytes::from_static_str("g"));
    let refused: ConsumerGroupHeartbeatResponse = c.call(ApiKey::ConsumerGroupHeartbeat, 0, &hb);
    assert_eq!(refused.error_code, 35, "UNSUPPORTED_VERSION");
    let r = update(&mut c, 2, "group.version", 1, 1);
    assert_eq!(
        (r.error_code, r.results.len()),
        (0, 0),
        "v2: no per-feature results"
    );
    // The level is in the metadata log: it survives a restart.
    let r = update(&mut c, 2, "group.version", 0, 2);
    assert_eq!(r.error_code, 0);
    drop(c);
    rt.block_on(b.shutdown()).unwrap();
    let b = start(&rt, dir.path(), &[]);
    let mut c = Conn::open(b.addrs[0]);
    let v: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    assert!(!has_api(&v, ApiKey::ConsumerGroupHeartbeat));
}

fn component(
    entity: &str,
    match_type: i8,
    m: Option<&str>,
) -> describe_client_quotas_request::ComponentData {
    let mut c = describe_client_quotas_request::ComponentData::default();
    c.entity_type = StrBytes::from_string(entity.to_string());
    c.match_type = match_type;
    c._match = m.map(|s| StrBytes::from_string(s.to_string()));
    c
}

#[test]
fn client_quotas_are_described_empty_and_bad_filters_refused() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let b = start(&rt, dir.path(), &[]);
    let mut c = Conn::open(b.addrs[0]);
    let mut req = DescribeClientQuotasRequest::default();
    let r: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req);
    assert_eq!((r.error_code, r.entries), (0, Some(Vec::new())));
    req.components = vec![
        component("user", 0, Some("alice")),
        component("client-id", 2, None),
    ];
    let r: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req);
    assert_eq!((r.error_code, r.entries), (0, Some(Vec::new())));
    for (components, code, message) in [
        (vec![component("user", 0, None)], 42, "Request specified MATCH_TYPE_EXACT, but set match string to null."),
        (vec![component("user", 1, None), component("user", 2, None)], 42, "Entity type user cannot appear more than once in the filter."),
        (vec![component("team", 2, None)], 35, "Unsupported entity type team"),
        (vec![component("ip", 2, None), component("user", 2, None)], 42, "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."),
    ] {
        req.components = components;
        let r: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req);
        assert_eq!(r.error_code, code, "{message}");
        assert_eq!(r.error_message.as_deref(), Some(message));
        assert_eq!(r.entries, None);
    }
}

#[test]
fn config_resources_are_listed_by_type() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let b = start(&rt, dir.path(), &[]);
    let mut c = Conn::open(b.addrs[0]);
    assert_eq!(create_topic(&mut c, "orders", 1), 0);
    let list = |c: &mut Conn, version: i16, types: Vec<i8>| {
        let mut req = ListConfigResourcesRequest::default();
        req.resource_types = types;
        let r: ListConfigResourcesResponse = c.call(ApiKey::ListConfigResources, version, &req);
        let got: Vec<(i8, String)> = r
            .config_resources
            .iter()
            .map(|c| (c.resource_type, c.resource_name.to_string()))
            .collect();
        (r.error_code, got)
    };
    assert_eq!(list(&mut c, 1, vec![2]), (0, vec![(2, "orders".into())]));
    assert_eq!(
        list(&mut c, 1, vec![4, 8]),
        (0, vec![(8, "1".into()), (4, "1".into())])
    );
    let (code, all) = list(&mut c, 1, vec![]);
    assert_eq!(code, 0);
    assert!(
        all.contains(&(2, "orders".into())) && all.contains(&(4, "1".into())),
        "{all:?}"
    );
    // v0 (ListClientMetricsResources) lists client metrics only: Strom has none.
    assert_eq!(list(&mut c, 0, vec![]), (0, vec![]));
    assert_eq!(
        list(&mut c, 1, vec![3]).0,
        35,
        "UNSUPPORTED_VERSION for an unknown type"
    );
}

#[test]
fn rebalance_protocols_without_consumer_turn_the_consumer_group_apis_off() {
    const UNSUPPORTED_VERSION: i16 = 35;
    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    let rt = runtime();
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = GroupId(StrBytes::from_static_str("g"));
    hb.member_epoch = 0;
    hb.rebalance_timeout_ms = 30_000;
    hb.subscribed_topic_names = Some(vec![]);
    hb.topic_partitions = Some(vec![]);
    let mut describe = ConsumerGroupDescribeRequest::default();
    describe.group_ids = vec![GroupId(StrBytes::from_static_str("g"))];
    for (protocols, on) in [("classic,consumer", true), ("classic,share", false)] {
        let dir = tempfile::tempdir().unwrap();
        let b = start(
            &rt,
            dir.path(),
            &[("group.coordinator.rebalance.protocols", protocols)],
        );
        let mut c = Conn::open(b.addrs[0]);
        let v: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
        assert_eq!(
            has_api(&v, ApiKey::ConsumerGroupHeartbeat),
            on,
            "{protocols}"
        );
        assert_eq!(
            has_api(&v, ApiKey::ConsumerGroupDescribe),
            on,
            "{protocols}"
        );
        let r: ConsumerGroupHeartbeatResponse = c.call(ApiKey::ConsumerGroupHeartbeat, 0, &hb);
        // The heartbeat's membership write creates `__consumer_offsets`; until its partition
        // is loaded the coordinator answers COORDINATOR_LOAD_IN_PROGRESS, and clients retry.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let d = loop {
            let d: ConsumerGroupDescribeResponse =
                c.call(ApiKey::ConsumerGroupDescribe, 0, &describe);
            if d.groups[0].error_code != COORDINATOR_LOAD_IN_PROGRESS
                || std::time::Instant::now() > deadline
            {
                break d;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        if on {
            assert_eq!(r.error_code, 0, "{:?}", r.error_message);
            assert_eq!(d.groups[0].error_code, 0);
        } else {
            // Kafka's bare error responses: no message, the group id only.
            assert_eq!((r.error_code, r.error_message), (UNSUPPORTED_VERSION, None));
            assert_eq!(d.groups.len(), 1);
            assert_eq!(d.groups[0].error_code, UNSUPPORTED_VERSION);
            assert_eq!(d.groups[0].group_id.0.as_str(), "g");
        }
        rt.block_on(b.shutdown()).unwrap();
    }
}
