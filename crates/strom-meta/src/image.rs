//! The metadata image: the state every broker serves from, built by applying records in order.

use crate::delta::MetadataDelta;
use crate::error::MetaError;
use crate::record::{ConfigResource, MetadataRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Its log dirs' directory ids, as it registered them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_dirs: Vec<Uuid>,
    /// Fenced: missed its session or shut down; not listed to clients, leads nothing.
    #[serde(default)]
    pub fenced: bool,
    /// The process that registered, and its broker epoch (KIP-903): the log position of the
    /// registration that first named this incarnation, as Kafka's is the offset of its
    /// registration record. A follower's fetches carry it; the ISR admits a replica only
    /// in its current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<Uuid>,
    #[serde(default)]
    pub epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by every change of the partition (Kafka's partition epoch): an ISR change is
    /// made against the epoch its leader knew (AlterPartition).
    #[serde(default)]
    pub partition_epoch: i32,
    /// A running reassignment (`reassignment.rs`): the replicas being added (not yet all in
    /// sync) and those to remove once they are. Empty when none runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
    /// Eligible leader replicas (KIP-966, `elr.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
}

impl PartitionImage {
    /// The `Partition` record that sets partition `partition` of `topic_id` to this state.
    pub fn to_record(&self, topic_id: Uuid, partition: i32) -> crate::record::MetadataRecord {
        crate::record::MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            adding_replicas: self.adding.clone(),
            removing_replicas: self.removing.clone(),
            eligible_leader_replicas: self.elr.clone(),
        }
    }

    /// The replicas a running reassignment moves to (all of them when none runs).
    pub fn target(&self) -> Vec<i32> {
        let removing = &self.removing;
        self.replicas
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect()
    }

    /// The replicas before a running reassignment (all of them when none runs).
    pub fn original(&self) -> Vec<i32> {
        let adding = &self.adding;
        self.replicas
            .iter()
            .copied()
            .filter(|r| !adding.contains(r))
            .collect()
    }

    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// Everything the metadata log says, as of `records_applied` records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Shared between images: the next image (a clone per committed batch) copies one
    /// pointer per topic, and a record copies only the topic it changes (`Arc::make_mut`).
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names: HashMap<Uuid, String>,
    pub configs: BTreeMap<(ConfigResource, String), BTreeMap<String, String>>,
    pub next_producer_id: i64,
    /// Feature levels set by `FeatureLevel` records (see `features`).
    pub features: BTreeMap<String, i16>,
    /// `records_applied` when a feature level last changed: ApiVersions' finalized
    /// features epoch.
    pub features_epoch: u64,
    pub records_applied: u64,
    /// Set once, by a `ClusterId` record.
    pub cluster_id: Option<String>,
}

impl MetadataImage {
    /// Applies one record. Deterministic and without I/O: every broker replaying the same log
    /// builds the same image. A record that does not fit (a partition of an unknown topic)
    /// is an error and changes nothing.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), MetaError> {
        match record {
            MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack,
                log_dirs,
                incarnation,
            } => {
                // The same incarnation again (new endpoints) keeps its epoch and fencing.
                let known = self
                    .brokers
                    .get(node_id)
                    .filter(|b| incarnation.is_some() && b.incarnation == *incarnation);
                let (epoch, fenced) = known.map_or((self.records_applied as i64, false), |b| {
                    (b.epoch, b.fenced)
                });
                self.brokers.insert(
                    *node_id,
                    BrokerImage {
                        node_id: *node_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        log_dirs: log_dirs.clone(),
                        fenced,
                        incarnation: *incarnation,
                        epoch,
                    },
                );
            }
            MetadataRecord::BrokerFenced { node_id, fenced } => {
                let b = self
                    .brokers
                    .get_mut(node_id)
                    .ok_or_else(|| MetaError(format!("fencing unknown broker {node_id}")))?;
                b.fenced = *fenced;
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) || self.topic_names.contains_key(topic_id) {
                    return Err(MetaError(format!("topic {name} exists")));
                }
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                    }),
                );
                self.topic_names.insert(*topic_id, name.clone());
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                adding_replicas,
                removing_replicas,
                eligible_leader_replicas,
            } => {
                let topic = self
                    .topic_names
                    .get(topic_id)
                    .and_then(|n| self.topics.get_mut(n))
                    .map(Arc::make_mut)
                    .ok_or_else(|| {
                        MetaError(format!("partition of unknown topic id {topic_id}"))
                    })?;
                let partition_epoch = topic
                    .partitions
                    .get(partition)
                    .map_or(0, |p| p.partition_epoch + 1);
                topic.partitions.insert(
                    *partition,
                    PartitionImage {
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch,
                        adding: adding_replicas.clone(),
                        removing: removing_replicas.clone(),
                        elr: eligible_leader_replicas.clone(),
                    },
                );
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self
                    .topic_names
                    .remove(topic_id)
                    .ok_or_else(|| MetaError(format!("removing unknown topic id {topic_id}")))?;
                self.topics.remove(&name);
                self.configs.remove(&(ConfigResource::Topic, name));
            }
            MetadataRecord::Config {
                resource,
                name,
                key,
                value,
            } => {
                let entry = self.configs.entry((*resource, name.clone())).or_default();
                match value {
                    Some(v) => {
                        entry.insert(key.clone(), v.clone());
                    }
                    None => {
                        entry.remove(key);
                    }
                }
                if entry.is_empty() {
                    self.configs.remove(&(*resource, name.clone()));
                }
            }
            MetadataRecord::FeatureLevel { name, level } => {
                self.features.insert(name.clone(), *level);
                self.features_epoch = self.records_applied + 1;
            }
            MetadataRecord::ClusterId { cluster_id } => match &self.cluster_id {
                Some(id) if id != cluster_id => {
                    return Err(MetaError(format!(
                        "the cluster id is {id}; it cannot become {cluster_id}"
                    )))
                }
                _ => self.cluster_id = Some(cluster_id.clone()),
            },
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                if *next_producer_id < self.next_producer_id {
                    return Err(MetaError("producer id blocks must move forward".into()));
                }
                self.next_producer_id = *next_producer_id;
            }
        }
        self.records_applied += 1;
        Ok(())
    }

    /// Applies a run of records, noting what they changed in `delta`. Stops at the first
    /// record that does not fit (the ones before it stay applied).
    pub fn apply_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
        delta: &mut MetadataDelta,
    ) -> Result<(), MetaError> {
        let mut grown = Vec::new();
        let result = records.into_iter().try_for_each(|r| {
            delta.record(self, r);
            if let MetadataRecord::Partition {
                topic_id,
                partition,
                ..
            } = r
            {
                if self.partition_by_id(topic_id, *partition).is_none() {
                    grown.push(*topic_id);
                }
            }
            self.apply(r)
        });
        grown.dedup();
        for topic_id in grown {
            self.pack_partitions(&topic_id);
        }
        result
    }

    fn partition_by_id(&self, topic_id: &Uuid, partition: i32) -> Option<&PartitionImage> {
        let name = self.topic_names.get(topic_id)?;
        self.topics.get(name)?.partitions.get(&partition)
    }

    /// Rebuilds a topic's partition map in one go, which fills its nodes: inserted one at a
    /// time in order (a topic's creation), a BTreeMap's nodes stay half empty, and that
    /// was a tenth of an idle partition's memory.
    fn pack_partitions(&mut self, topic_id: &Uuid) {
        let Some(topic) = self
            .topic_names
            .get(topic_id)
            .and_then(|n| self.topics.get_mut(n))
        else {
            return;
        };
        let topic = Arc::make_mut(topic);
        topic.partitions = std::mem::take(&mut topic.partitions).into_iter().collect();
    }

    /// The image as one JSON document (a metadata snapshot): `from_snapshot` rebuilds exactly
    /// this image, counters included.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let snapshot = Snapshot {
            brokers: self.brokers.values().cloned().collect(),
            topics: self.topics.values().map(|t| TopicImage::clone(t)).collect(),
            configs: self
                .configs
                .iter()
                .map(|((resource, name), entries)| (*resource, name.clone(), entries.clone()))
                .collect(),
            next_producer_id: self.next_producer_id,
            features: self.features.clone(),
            features_epoch: self.features_epoch,
            records_applied: self.records_applied,
            cluster_id: self.cluster_id.clone(),
        };
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<MetadataImage, MetaError> {
        let s: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| MetaError(format!("unreadable metadata snapshot: {e}")))?;
        Ok(MetadataImage {
            brokers: s.brokers.into_iter().map(|b| (b.node_id, b)).collect(),
            topic_names: s
                .topics
                .iter()
                .map(|t| (t.topic_id, t.name.clone()))
                .collect(),
            topics: s
                .topics
                .into_iter()
                .map(|mut t| {
                    // Deserialized one at a time: packed as `pack_partitions` does.
                    t.partitions = std::mem::take(&mut t.partitions).into_iter().collect();
                    (t.name.clone(), Arc::new(t))
                })
                .collect(),
            configs: s
                .configs
                .into_iter()
                .map(|(resource, name, entries)| ((resource, name), entries))
                .collect(),
            next_producer_id: s.next_producer_id,
            features: s.features,
            features_epoch: s.features_epoch,
            records_applied: s.records_applied,
            cluster_id: s.cluster_id,
        })
    }

    pub fn topic_config(&self, topic: &str) -> Option<&BTreeMap<String, String>> {
        self.configs
            .get(&(ConfigResource::Topic, topic.to_string()))
    }

    /// The dynamic configs of broker `name` (its node id), or of every broker (`name` "").
    pub fn broker_config(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.configs
            .get(&(ConfigResource::Broker, name.to_string()))
    }

    /// The registered brokers that are not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names
            .get(id)
            .and_then(|n| self.topics.get(n))
            .map(Arc::as_ref)
    }
}

/// The stored form of an image (maps keyed by tuples do not fit JSON).
#[derive(Serialize, Deserialize)]
struct Snapshot {
    brokers: Vec<BrokerImage>,
    topics: Vec<TopicImage>,
    configs: Vec<(ConfigResource, String, BTreeMap<String, String>)>,
    next_producer_id: i64,
    features: BTreeMap<String, i16>,
    features_epoch: u64,
    records_applied: u64,
    #[serde(default)]
    cluster_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaying_the_same_records_builds_the_same_image() {
        let id = Uuid::from_u128(7);
        let records = vec![
            MetadataRecord::RegisterBroker {
                node_id: 1,
                host: "h".into(),
                port: 9092,
                rack: None,
                log_dirs: Vec::new(),
                incarnation: None,
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            MetadataRecord::new_partition(id, 0, &[1]),
            MetadataRecord::Config {
                resource: ConfigResource::Topic,
                name: "t".into(),
                key: "retention.ms".into(),
                value: Some("5".into()),
            },
            MetadataRecord::ProducerIds {
                node_id: 1,
                next_producer_id: 1000,
            },
        ];
        let mut a = MetadataImage::default();
        let mut b = MetadataImage::default();
        for r in &records {
            a.apply(r).unwrap();
            b.apply(&MetadataRecord::decode(&r.encode()).unwrap())
                .unwrap();
        }
        assert_eq!(a, b);
        assert_eq!(a.topics["t"].partitions.len(), 1);
        assert_eq!(a.topic_config("t").unwrap()["retention.ms"], "5");
        a.apply(&MetadataRecord::RemoveTopic { topic_id: id })
            .unwrap();
        assert!(a.topics.is_empty() && a.topic_config("t").is_none());
    }

    #[test]
    fn inconsistent_records_are_refused_without_change() {
        let mut img = MetadataImage::default();
        let bad = MetadataRecord::Partition {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            replicas: vec![],
            isr: vec![],
            leader: 1,
            leader_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            eligible_leader_replicas: Vec::new(),
        };
        assert!(img.apply(&bad).is_err());
        assert!(img
            .apply(&MetadataRecord::RemoveTopic {
                topic_id: Uuid::from_u128(1)
            })
            .is_err());
        assert_eq!(img, MetadataImage::default());
    }
}
