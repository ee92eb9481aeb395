//! The controller's decisions as pure functions: an admin request and the current image in,
//! the metadata records to append (or the Kafka error) out.

use crate::error::ApiError;
use crate::image::{MetadataImage, PartitionImage};
use crate::record::{ConfigResource, MetadataRecord};
use crate::topic_config;
use uuid::Uuid;

/// Kafka's longest topic name.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Producer ids handed out per metadata record.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
/// Partitions one topic may have (a bound, far above any real use).
pub const PARTITIONS_MAX: i32 = 100_000;

/// Kafka's topic name rules: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`; the messages are
/// Kafka's (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: String| {
        Err(ApiError::InvalidTopic(format!(
            "Topic name is invalid: {why}"
        )))
    };
    if name.is_empty() {
        return bad("the empty string is not allowed".into());
    }
    if name == "." || name == ".." {
        return bad(format!("'{name}' is not allowed"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad(format!(
            "the length of '{name}' is longer than the max allowed length {TOPIC_NAME_BYTES_MAX}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad(format!(
            "'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A CreateTopics entry after defaults were filled in by the broker.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Explicit assignments (partition → replicas); empty to let the controller place them.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, String)>,
}

/// Records creating a topic, its partitions and its configs.
pub fn create_topic(
    image: &MetadataImage,
    t: &NewTopic,
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, ApiError> {
    validate_topic_name(&t.name)?;
    if image.topics.contains_key(&t.name) {
        return Err(ApiError::TopicAlreadyExists(t.name.clone()));
    }
    // Kafka refuses names that collide once '.' and '_' are treated alike (metric names).
    let norm = |s: &str| s.replace('.', "_");
    if let Some(other) = image.topics.keys().find(|k| norm(k) == norm(&t.name)) {
        return Err(ApiError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {other}",
            t.name
        )));
    }
    for (k, v) in &t.configs {
        topic_config::validate(k, v).map_err(ApiError::InvalidConfig)?;
    }
    let assignments = placement(image, t, topic_id)?;
    let mut records = vec![MetadataRecord::Topic {
        name: t.name.clone(),
        topic_id,
    }];
    for (partition, replicas) in assignments {
        records.push(new_partition(topic_id, partition, replicas));
    }
    for (key, value) in &t.configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic,
            name: t.name.clone(),
            key: key.clone(),
            value: Some(value.clone()),
        });
    }
    Ok(records)
}

/// Where a new topic's partitions go: the assignment given (checked), else `partitions`
/// replicas spread over the live (registered, unfenced) brokers and their racks.
fn placement(
    image: &MetadataImage,
    t: &NewTopic,
    topic_id: Uuid,
) -> Result<Vec<(i32, Vec<i32>)>, ApiError> {
    let brokers: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
    if t.assignments.is_empty() {
        if t.partitions < 1 {
            return Err(ApiError::InvalidPartitions(
                "Number of partitions was set to an invalid non-positive value.".into(),
            ));
        }
        if t.partitions > PARTITIONS_MAX {
            return Err(ApiError::InvalidPartitions(format!(
                "Strom allows at most {PARTITIONS_MAX} partitions per topic, not {}.",
                t.partitions
            )));
        }
        if t.replication_factor < 1 {
            return Err(ApiError::InvalidReplicationFactor(
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
        }
        if t.replication_factor as usize > brokers.len() {
            let rf = t.replication_factor;
            return Err(ApiError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                brokers.len()
            )));
        }
        return Ok(crate::placement::place(
            image.live_brokers(),
            0..t.partitions,
            t.replication_factor as usize,
            topic_id.as_u128(),
        ));
    }
    let mut a = t.assignments.clone();
    a.sort_by_key(|(p, _)| *p);
    for (i, (p, replicas)) in a.iter().enumerate() {
        if *p != i as i32 {
            return Err(ApiError::InvalidRequest(
                "partition assignments must number partitions 0..n".into(),
            ));
        }
        if replicas.is_empty() {
            return Err(ApiError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes an empty replica list for partition {p}."
            )));
        }
        if let Some(r) = replicas.iter().find(|r| !image.brokers.contains_key(r)) {
            return Err(ApiError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {r}, but no such broker is registered."
            )));
        }
    }
    Ok(a)
}

pub fn delete_topic(image: &MetadataImage, name: &str) -> Result<Vec<MetadataRecord>, ApiError> {
    let topic = image
        .topics
        .get(name)
        .ok_or_else(|| ApiError::UnknownTopic(name.to_string()))?;
    Ok(vec![MetadataRecord::RemoveTopic {
        topic_id: topic.topic_id,
    }])
}

/// Records adding partitions so the topic has `count` in all.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let topic = image
        .topics
        .get(name)
        .ok_or_else(|| ApiError::UnknownTopic(name.to_string()))?;
    let have = topic.partitions.len() as i32;
    if count == have {
        return Err(ApiError::InvalidPartitions(format!(
            "Topic already has {have} partition(s)."
        )));
    }
    if count < have {
        return Err(ApiError::InvalidPartitions(format!(
            "The topic {name} currently has {have} partition(s); {count} would not be an increase."
        )));
    }
    if count > PARTITIONS_MAX {
        return Err(ApiError::InvalidPartitions(format!(
            "Strom allows at most {PARTITIONS_MAX} partitions per topic, not {count}."
        )));
    }
    let rf = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.target().len());
    let live = image.live_brokers().count();
    if live == 0 || rf > live {
        return Err(ApiError::InvalidReplicationFactor(
            "not enough brokers".into(),
        ));
    }
    let seed = topic.topic_id.as_u128();
    Ok(
        crate::placement::place(image.live_brokers(), have..count, rf, seed)
            .into_iter()
            .map(|(p, replicas)| new_partition(topic.topic_id, p, replicas))
            .collect(),
    )
}

/// A new partition: led by its first replica, every replica in sync (each holds all of it,
/// nothing), as in Kafka.
fn new_partition(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    PartitionImage {
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        adding: Vec::new(),
        removing: Vec::new(),
        elr: Vec::new(),
    }
    .to_record(topic_id, partition)
}

/// Records replacing a topic's whole config set (AlterConfigs semantics).
pub fn replace_topic_configs(
    image: &MetadataImage,
    name: &str,
    configs: &[(String, String)],
) -> Result<Vec<MetadataRecord>, ApiError> {
    if !image.topics.contains_key(name) {
        return Err(ApiError::UnknownTopic(name.to_string()));
    }
    for (k, v) in configs {
        topic_config::validate(k, v).map_err(ApiError::InvalidConfig)?;
    }
    let mut records = Vec::new();
    if let Some(current) = image.topic_config(name) {
        for key in current
            .keys()
            .filter(|k| !configs.iter().any(|(c, _)| c == *k))
        {
            records.push(config_record(name, key, None));
        }
    }
    for (k, v) in configs {
        records.push(config_record(name, k, Some(v.clone())));
    }
    Ok(records)
}

/// One IncrementalAlterConfigs operation on a topic config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

pub fn alter_topic_configs(
    image: &MetadataImage,
    name: &str,
    ops: &[(String, ConfigOp)],
) -> Result<Vec<MetadataRecord>, ApiError> {
    if !image.topics.contains_key(name) {
        return Err(ApiError::UnknownTopic(name.to_string()));
    }
    let current = image.topic_config(name).cloned().unwrap_or_default();
    let mut records = Vec::new();
    for (key, op) in ops {
        let def = topic_config::find(key)
            .ok_or_else(|| ApiError::InvalidConfig(format!("Unknown topic config name: {key}")))?;
        let existing = current.get(key).map(String::as_str).unwrap_or(def.default);
        let is_list = def.kind.is_list();
        let value = apply_op(key, existing, op, is_list)?;
        if let Some(v) = &value {
            topic_config::validate(key, v).map_err(ApiError::InvalidConfig)?;
        }
        records.push(config_record(name, key, value));
    }
    Ok(records)
}

/// What a broker needs to know of a broker config key to alter it.
pub struct BrokerKey {
    /// The value when none is set (for APPEND and SUBTRACT).
    pub default: String,
    pub is_list: bool,
}

/// Vets a broker config key, and its value when given.
pub type CheckBrokerKey = dyn Fn(&str, Option<&str>) -> Result<BrokerKey, ApiError>;

/// IncrementalAlterConfigs on a broker (`name` its node id) or on every broker (`name`
/// empty: the cluster-wide default). `check` vets each key and value (the broker knows its
/// keys, their kinds and which may change at run time); the records are `Config` records of
/// the `Broker` resource.
pub fn alter_broker_configs(
    image: &MetadataImage,
    name: &str,
    ops: &[(String, ConfigOp)],
    check: &CheckBrokerKey,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let current = image.broker_config(name).cloned().unwrap_or_default();
    let mut records = Vec::new();
    for (key, op) in ops {
        let info = check(key, None)?;
        let existing = current.get(key).cloned().unwrap_or(info.default);
        let value = apply_op(key, &existing, op, info.is_list)?;
        if let Some(v) = &value {
            check(key, Some(v))?;
        }
        records.push(broker_config_record(name, key, value));
    }
    Ok(records)
}

/// AlterConfigs on a broker: the given keys replace every dynamic key of that resource.
pub fn replace_broker_configs(
    image: &MetadataImage,
    name: &str,
    configs: &[(String, String)],
    check: &CheckBrokerKey,
) -> Result<Vec<MetadataRecord>, ApiError> {
    for (k, v) in configs {
        check(k, Some(v))?;
    }
    let mut records = Vec::new();
    if let Some(current) = image.broker_config(name) {
        for key in current
            .keys()
            .filter(|k| !configs.iter().any(|(c, _)| c == *k))
        {
            records.push(broker_config_record(name, key, None));
        }
    }
    for (k, v) in configs {
        records.push(broker_config_record(name, k, Some(v.clone())));
    }
    Ok(records)
}

/// One IncrementalAlterConfigs operation on the current value `existing`.
fn apply_op(
    key: &str,
    existing: &str,
    op: &ConfigOp,
    is_list: bool,
) -> Result<Option<String>, ApiError> {
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    };
    Ok(match op {
        ConfigOp::Set(v) => Some(v.clone()),
        ConfigOp::Delete => None,
        ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
            if !is_list {
                let verb = if matches!(op, ConfigOp::Append(_)) {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                return Err(ApiError::InvalidConfig(format!(
                    "Can't {verb} to key {key} because its type is not LIST."
                )));
            }
            let mut items = list(existing);
            for item in list(v) {
                if matches!(op, ConfigOp::Append(_)) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                } else {
                    items.retain(|i| *i != item);
                }
            }
            Some(items.join(","))
        }
    })
}

fn broker_config_record(name: &str, key: &str, value: Option<String>) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::Broker,
        name: name.to_string(),
        key: key.to_string(),
        value,
    }
}

fn config_record(name: &str, key: &str, value: Option<String>) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::Topic,
        name: name.to_string(),
        key: key.to_string(),
        value,
    }
}

/// The record reserving the next block of producer ids for `node_id`; the block is
/// `[image.next_producer_id, returned next)`.
pub fn allocate_producer_ids(image: &MetadataImage, node_id: i32) -> MetadataRecord {
    MetadataRecord::ProducerIds {
        node_id,
        next_producer_id: image.next_producer_id + PRODUCER_ID_BLOCK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_broker() -> MetadataImage {
        let mut img = MetadataImage::default();
        img.apply(&MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "localhost".into(),
            port: 9092,
            rack: None,
            log_dirs: Vec::new(),
            incarnation: None,
        })
        .unwrap();
        img
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: 1,
            assignments: vec![],
            configs: vec![],
        }
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for (name, ok) in [
            ("orders", true),
            ("a.b_c-D9", true),
            ("", false),
            (".", false),
            ("..", false),
            ("a b", false),
            ("ü", false),
            (&"x".repeat(249), true),
            (&"x".repeat(250), false),
        ] {
            assert_eq!(validate_topic_name(name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn create_alter_delete() {
        let mut img = image_with_broker();
        let recs = create_topic(&img, &new_topic("t", 3), Uuid::from_u128(9)).unwrap();
        for r in &recs {
            img.apply(r).unwrap();
        }
        assert_eq!(img.topics["t"].partitions.len(), 3);
        assert!(matches!(
            create_topic(&img, &new_topic("t", 1), Uuid::from_u128(10)),
            Err(ApiError::TopicAlreadyExists(_))
        ));
        assert!(matches!(
            create_topic(&img, &new_topic("t.x", 0), Uuid::from_u128(10)),
            Err(ApiError::InvalidPartitions(_))
        ));
        let mut rf3 = new_topic("r", 1);
        rf3.replication_factor = 3;
        assert!(matches!(
            create_topic(&img, &rf3, Uuid::from_u128(11)),
            Err(ApiError::InvalidReplicationFactor(_))
        ));
        for r in create_partitions(&img, "t", 5).unwrap() {
            img.apply(&r).unwrap();
        }
        assert_eq!(img.topics["t"].partitions.len(), 5);
        assert!(create_partitions(&img, "t", 5).is_err());
        let ops = vec![(
            "cleanup.policy".to_string(),
            ConfigOp::Append("compact".into()),
        )];
        for r in alter_topic_configs(&img, "t", &ops).unwrap() {
            img.apply(&r).unwrap();
        }
        assert_eq!(
            img.topic_config("t").unwrap()["cleanup.policy"],
            "delete,compact"
        );
        assert!(alter_topic_configs(
            &img,
            "t",
            &[("retention.ms".into(), ConfigOp::Set("x".into()))]
        )
        .is_err());
        for r in delete_topic(&img, "t").unwrap() {
            img.apply(&r).unwrap();
        }
        assert!(img.topics.is_empty());
    }
}
