//! The metadata image against a model (proptest): random record sequences from a small world
//! of brokers, topics, partitions and configs. A snapshot taken anywhere and then the rest of
//! the records replayed equals the full replay; every topic whose image changed is in the
//! delta; the image's topics are the model's (a name created and not removed, its partitions).

use proptest::prelude::*;
use std::collections::BTreeMap;
use strom_meta::{ConfigResource, MetadataDelta, MetadataImage, MetadataRecord};
use uuid::Uuid;

fn record() -> impl Strategy<Value = MetadataRecord> {
    let id = (0u128..4).prop_map(Uuid::from_u128);
    let name = (0u8..3).prop_map(|n| format!("t{n}"));
    prop_oneof![
        (1i32..4, 9000u16..9003).prop_map(|(node_id, port)| MetadataRecord::RegisterBroker {
            node_id,
            host: "h".into(),
            port,
            rack: None,
            log_dirs: vec![Uuid::from_u128(u128::from(port))],
            incarnation: None,
        }),
        (name.clone(), id.clone())
            .prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
        (id.clone(), 0i32..3, 1i32..4, 0i32..5).prop_map(
            |(topic_id, partition, leader, leader_epoch)| {
                MetadataRecord::Partition {
                    topic_id,
                    partition,
                    replicas: vec![leader],
                    isr: vec![leader],
                    leader,
                    leader_epoch,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                    eligible_leader_replicas: Vec::new(),
                }
            }
        ),
        id.prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
        (name, prop::option::of("[0-9]{1,3}"), any::<bool>()).prop_map(|(name, value, topic)| {
            MetadataRecord::Config {
                resource: if topic {
                    ConfigResource::Topic
                } else {
                    ConfigResource::Broker
                },
                name: if topic { name } else { String::new() },
                key: "retention.ms".into(),
                value,
            }
        }),
        (1i16..3).prop_map(|level| MetadataRecord::FeatureLevel {
            name: "group.version".into(),
            level
        }),
        (0i64..3).prop_map(|n| MetadataRecord::ProducerIds {
            node_id: 1,
            next_producer_id: n * 1000
        }),
    ]
}

/// Applies what fits, as the broker's applier does with records the controller checked.
fn replay(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        let mut trial = image.clone();
        if trial.apply(r).is_ok() {
            *image = trial;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn snapshot_then_replay_equals_full_replay(
        records in prop::collection::vec(record(), 0..60),
        cut in 0usize..60,
    ) {
        let cut = cut.min(records.len());
        let mut full = MetadataImage::default();
        replay(&mut full, &records);
        let mut head = MetadataImage::default();
        replay(&mut head, &records[..cut]);
        let mut restored = MetadataImage::from_snapshot(&head.to_snapshot()).unwrap();
        prop_assert_eq!(&restored, &head);
        replay(&mut restored, &records[cut..]);
        prop_assert_eq!(restored, full);
    }

    #[test]
    fn the_delta_names_every_topic_that_changed(records in prop::collection::vec(record(), 0..60)) {
        let mut image = MetadataImage::default();
        for r in &records {
            let before = image.clone();
            let mut delta = MetadataDelta::default();
            let mut trial = image.clone();
            if trial.apply_all([r], &mut delta).is_err() {
                continue;
            }
            image = trial;
            for name in before.topics.keys().chain(image.topics.keys()) {
                let changed = before.topics.get(name) != image.topics.get(name)
                    || before.topic_config(name) != image.topic_config(name);
                prop_assert!(!changed || delta.topics.contains(name), "{name} changed by {r:?}");
            }
            prop_assert!(before.broker_config("") == image.broker_config("") || delta.broker_configs);
        }
    }

    #[test]
    fn topics_follow_the_model(records in prop::collection::vec(record(), 0..60)) {
        // The model: name -> (id, partition -> leader epoch).
        let mut model: BTreeMap<String, (Uuid, BTreeMap<i32, i32>)> = BTreeMap::new();
        let mut image = MetadataImage::default();
        for r in &records {
            let mut trial = image.clone();
            let fits = trial.apply(r).is_ok();
            match r {
                MetadataRecord::Topic { name, topic_id } => {
                    let free = !model.contains_key(name) && !model.values().any(|(id, _)| id == topic_id);
                    prop_assert_eq!(fits, free);
                    if free { model.insert(name.clone(), (*topic_id, BTreeMap::new())); }
                }
                MetadataRecord::Partition { topic_id, partition, leader_epoch, .. } => {
                    let t = model.values_mut().find(|(id, _)| id == topic_id);
                    prop_assert_eq!(fits, t.is_some());
                    if let Some((_, parts)) = t { parts.insert(*partition, *leader_epoch); }
                }
                MetadataRecord::RemoveTopic { topic_id } => {
                    let before = model.len();
                    model.retain(|_, (id, _)| id != topic_id);
                    prop_assert_eq!(fits, model.len() < before);
                }
                _ => {
                    // Producer ids only move forward; the cluster id is set once.
                    let may_refuse = matches!(
                        r,
                        MetadataRecord::ProducerIds { .. }
                            | MetadataRecord::ClusterId { .. }
                            | MetadataRecord::BrokerFenced { .. }
                    );
                    prop_assert!(fits || may_refuse);
                }
            }
            if fits { image = trial; }
            let seen: BTreeMap<String, (Uuid, BTreeMap<i32, i32>)> = image
                .topics
                .values()
                .map(|t| (t.name.clone(), (t.topic_id, t.partitions.iter().map(|(p, i)| (*p, i.leader_epoch)).collect())))
                .collect();
            prop_assert_eq!(&seen, &model);
        }
    }
}
