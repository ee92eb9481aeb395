//! The partitions this broker hosts, by topic and by topic id, and the log dirs they live
//! in. Kept in step with the metadata image by `apply_delta` (the reconciler's thread): it
//! costs in proportion to the topics a change touched, and creates and deletes logs outside
//! the partitions lock, which handlers take only to look a partition up.

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::metadata_store::METADATA_TOPIC;
use crate::partition::state::Assignment;
pub use crate::partition::Partition;
use crate::replication_quota::{self as quota, ReplicationQuotas};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use strom_log::{LogConfig, LogDir};
use strom_meta::{MetadataDelta, MetadataImage};
use strom_proto::TimestampType;
use uuid::Uuid;

/// The log configuration of a topic: its own configs over the broker's over Kafka's defaults.
pub fn log_config(
    broker: &BrokerConfig,
    overrides: Option<&BTreeMap<String, String>>,
    dynamic: &crate::config::Dynamic<'_>,
) -> LogConfig {
    let value = |k: &str| {
        broker
            .topic_value(k, overrides, dynamic)
            .map(|v| v.0)
            .unwrap_or_default()
    };
    let long = |k: &str, d: i64| value(k).trim().parse::<i64>().unwrap_or(d);
    let d = LogConfig::default();
    let policy = value("cleanup.policy").to_ascii_lowercase();
    let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
    // An empty list neither deletes nor compacts: the log keeps everything.
    let ratio = value("min.cleanable.dirty.ratio")
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .unwrap_or(d.min_cleanable_dirty_ratio);
    LogConfig {
        segment_bytes: long("segment.bytes", d.segment_bytes as i64).max(14) as u64,
        segment_ms: long("segment.ms", d.segment_ms),
        segment_index_bytes: long("segment.index.bytes", d.segment_index_bytes as i64).max(12)
            as u64,
        index_interval_bytes: long("index.interval.bytes", 4096).max(0) as u64,
        retention_ms: long("retention.ms", d.retention_ms),
        retention_bytes: long("retention.bytes", -1),
        flush_messages: long("flush.messages", i64::MAX).max(1),
        flush_ms: long("flush.ms", i64::MAX).max(0),
        max_message_bytes: long("max.message.bytes", d.max_message_bytes as i64).max(0) as u64,
        message_timestamp_type: if value("message.timestamp.type") == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        cleanup_policy_delete: policies.contains(&"delete"),
        cleanup_policy_compact: policies.contains(&"compact"),
        min_cleanable_dirty_ratio: ratio,
        delete_retention_ms: long("delete.retention.ms", d.delete_retention_ms).max(0),
        min_compaction_lag_ms: long("min.compaction.lag.ms", 0).max(0),
        max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX).max(1),
    }
}

#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    config: BrokerConfig,
    /// The log dirs (`log.dirs`); the first also holds the metadata log.
    dirs: Vec<Arc<LogDir>>,
    maps: RwLock<Maps>,
    /// The replication throttles (their rates follow the dynamic broker keys).
    pub quotas: ReplicationQuotas,
    /// What this broker's replica fetching cost (logged at shutdown).
    pub fetch_stats: crate::replica_fetcher::FetchStats,
    /// Topics whose last reconcile failed (out of descriptors, say): tried again.
    failed: Mutex<BTreeSet<String>>,
    /// Client traffic over all topics (`metrics.rs`).
    pub traffic: Arc<crate::metrics::Traffic>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The hosted partitions, by topic name and by topic id.
#[derive(Debug, Default)]
struct Maps {
    by_name: HashMap<Arc<str>, BTreeMap<i32, Arc<Partition>>>,
    by_id: HashMap<(Uuid, i32), Arc<Partition>>,
    /// Those with more than one replica: the only ones a replica fetcher or the ISR
    /// ticker has anything to do for, so that they need not walk every partition.
    replicated: HashMap<(Uuid, i32), Arc<Partition>>,
    /// Bumped whenever `replicated` or the role or leader epoch of one of its partitions
    /// changes: the replica fetcher rebuilds its lists only then, not at every metadata
    /// change.
    follow_version: u64,
}

impl Maps {
    fn insert(&mut self, p: Arc<Partition>, replicated: bool) {
        self.set_replicated(&p, replicated);
        self.by_id.insert((p.topic_id, p.index), Arc::clone(&p));
        self.by_name
            .entry(p.topic.clone())
            .or_default()
            .insert(p.index, p);
    }

    fn set_replicated(&mut self, p: &Arc<Partition>, replicated: bool) {
        let changed = if replicated {
            self.replicated
                .insert((p.topic_id, p.index), Arc::clone(p))
                .is_none()
        } else {
            self.replicated.remove(&(p.topic_id, p.index)).is_some()
        };
        self.follow_version += u64::from(changed);
    }

    fn is_replicated(&self, p: &Partition) -> bool {
        self.replicated.contains_key(&(p.topic_id, p.index))
    }

    fn remove(&mut self, p: &Partition) {
        self.by_id.remove(&(p.topic_id, p.index));
        if self.replicated.remove(&(p.topic_id, p.index)).is_some() {
            self.follow_version += 1;
        }
        if let Some(parts) = self.by_name.get_mut(&*p.topic) {
            parts.remove(&p.index);
            if parts.is_empty() {
                self.by_name.remove(&*p.topic);
            }
        }
    }
}

impl ReplicaManager {
    pub fn new(node_id: i32, config: BrokerConfig, dirs: Vec<Arc<LogDir>>) -> ReplicaManager {
        ReplicaManager {
            node_id,
            config,
            dirs,
            maps: RwLock::new(Maps::default()),
            quotas: ReplicationQuotas::default(),
            fetch_stats: Default::default(),
            failed: Mutex::new(BTreeSet::new()),
            traffic: Arc::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first log dir, which holds the metadata log.
    pub fn log_dir(&self) -> &Arc<LogDir> {
        &self.dirs[0]
    }

    pub fn log_dirs(&self) -> &[Arc<LogDir>] {
        &self.dirs
    }

    /// Where a new partition goes: the online dir with the fewest partitions (Kafka's
    /// choice), the first on a tie.
    fn dir_for_new(&self) -> &Arc<LogDir> {
        self.dirs
            .iter()
            .filter(|d| !d.is_offline())
            .min_by_key(|d| d.log_count())
            .unwrap_or(&self.dirs[0])
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.read()
            .by_name
            .get(topic)
            .and_then(|t| t.get(&partition))
            .cloned()
    }

    pub fn get_by_id(&self, topic_id: &Uuid, partition: i32) -> Option<Arc<Partition>> {
        self.read().by_id.get(&(*topic_id, partition)).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.read().by_id.values().cloned().collect()
    }

    /// The hosted partitions by topic, topics in name order, partitions in index order.
    pub fn by_topic(&self) -> Vec<(Arc<str>, Vec<Arc<Partition>>)> {
        let maps = self.read();
        let mut topics: Vec<_> = maps
            .by_name
            .iter()
            .map(|(name, parts)| (Arc::clone(name), parts.values().cloned().collect()))
            .collect();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        topics
    }

    /// The hosted partitions with more than one replica (followers, and leaders that have
    /// followers): all the others are their own in-sync replica set.
    pub fn replicated(&self) -> Vec<Arc<Partition>> {
        self.read().replicated.values().cloned().collect()
    }

    /// Changes whenever `replicated` or a role among them changes.
    pub fn follow_version(&self) -> u64 {
        self.read().follow_version
    }

    /// Brings the hosted partitions of the topics `delta` names (all of them when broker
    /// configs changed or a snapshot was loaded) in line with `image`: created, deleted,
    /// reconfigured, each with its role and leader epoch. After a snapshot, logs on disk that
    /// no topic owns are deleted too.
    pub fn apply_delta(
        &self,
        image: &MetadataImage,
        delta: &MetadataDelta,
    ) -> Result<(), BrokerError> {
        let names: BTreeSet<String> = if delta.everything || delta.broker_configs {
            let hosted: Vec<String> = self.read().by_name.keys().map(|k| k.to_string()).collect();
            image.topics.keys().cloned().chain(hosted).collect()
        } else {
            delta.topics.clone()
        };
        let dynamic = crate::config::Dynamic::of(image, self.node_id);
        let rate = |key: &str| dynamic.get(key).and_then(|(v, _)| v.trim().parse().ok());
        self.quotas.leader.set_rate(rate(quota::LEADER_RATE));
        self.quotas.follower.set_rate(rate(quota::FOLLOWER_RATE));
        // One topic that cannot be reconciled now (out of descriptors) holds up no other;
        // the reconciler tries it again later.
        let mut first_error = None;
        let mut failed = lock(&self.failed);
        for name in &names {
            match self.reconcile_topic(image, name, &dynamic) {
                Ok(()) => {
                    failed.remove(name);
                }
                Err(e) => {
                    failed.insert(name.clone());
                    first_error.get_or_insert(e);
                }
            }
        }
        drop(failed);
        if let Some(e) = first_error {
            return Err(e);
        }
        if delta.everything {
            self.delete_unowned()?;
        }
        Ok(())
    }

    /// Topics whose last reconcile failed, to be tried again.
    pub fn failed_topics(&self) -> BTreeSet<String> {
        lock(&self.failed).clone()
    }

    /// Reconciles one topic's hosted partitions. Logs are created and deleted outside the
    /// partitions lock.
    fn reconcile_topic(
        &self,
        image: &MetadataImage,
        name: &str,
        dynamic: &crate::config::Dynamic<'_>,
    ) -> Result<(), BrokerError> {
        let wanted = self.wanted(image, name, dynamic);
        let hosted: Vec<Arc<Partition>> = self
            .read()
            .by_name
            .get(name)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        // Gone from the image, or the same name for a new topic: deleted.
        let (keep, gone): (Vec<_>, Vec<_>) = hosted.into_iter().partition(|p| {
            wanted
                .get(&p.index)
                .is_some_and(|w| w.topic_id == p.topic_id)
        });
        if !gone.is_empty() {
            let mut maps = self.write();
            gone.iter().for_each(|p| maps.remove(p));
        }
        for p in &gone {
            p.close();
        }
        // One checkpoint write per dir for all of them, not one per partition.
        for dir in &self.dirs {
            let names: Vec<&str> = gone
                .iter()
                .map(|p| p.log_name())
                .filter(|n| dir.get(n).is_some())
                .collect();
            if !names.is_empty() {
                dir.delete_many(&names)?;
            }
        }
        let topic: Arc<str> = keep
            .first()
            .map_or_else(|| name.into(), |p| Arc::clone(&p.topic));
        let stats = keep.first().map_or_else(
            || Arc::new(crate::metrics::TopicStats::new(Arc::clone(&self.traffic))),
            |p| Arc::clone(&p.stats.topic),
        );
        let keep: HashMap<i32, Arc<Partition>> = keep.into_iter().map(|p| (p.index, p)).collect();
        let mut first_error = Ok(());
        for (index, want) in wanted {
            let replicated = want.assignment.replicas.len() > 1;
            let done = match keep.get(&index) {
                Some(p) => {
                    // A new role or leader epoch wakes the fetcher with new lists.
                    let before = (p.role(), p.leader_epoch());
                    self.update_partition(p, want).map(|()| {
                        if self.read().is_replicated(p) != replicated {
                            self.write().set_replicated(p, replicated);
                        } else if replicated && (p.role(), p.leader_epoch()) != before {
                            self.write().follow_version += 1;
                        }
                    })
                }
                None => self
                    .open_partition((Arc::clone(&topic), &stats), index, &want)
                    .map(|p| self.write().insert(p, replicated)),
            };
            if let Err(e) = done {
                tracing::warn!(topic = name, partition = index, error = %e, "reconciling a partition failed; trying again later");
                if first_error.is_ok() {
                    first_error = Err(e);
                }
            }
        }
        first_error
    }

    fn update_partition(&self, p: &Arc<Partition>, want: Wanted) -> Result<(), BrokerError> {
        if *p.log().config() != *want.config {
            p.log().set_config(want.config)?;
        }
        p.set_min_isr(want.min_isr);
        p.set_throttled(want.throttled.0, want.throttled.1);
        p.apply(&want.assignment);
        Ok(())
    }

    /// The partitions of topic `name` the image assigns to this broker.
    fn wanted(
        &self,
        image: &MetadataImage,
        name: &str,
        dynamic: &crate::config::Dynamic<'_>,
    ) -> BTreeMap<i32, Wanted> {
        let Some(topic) = image.topics.get(name) else {
            return BTreeMap::new();
        };
        let config = Arc::new(log_config(&self.config, image.topic_config(name), dynamic));
        let min_isr = self
            .config
            .topic_value("min.insync.replicas", image.topic_config(name), dynamic)
            .and_then(|v| v.0.trim().parse::<usize>().ok())
            .unwrap_or(1);
        let listed = |key: &str, p: i32| {
            image
                .topic_config(name)
                .and_then(|c| c.get(key))
                .is_some_and(|v| quota::listed(v, p, self.node_id))
        };
        topic
            .partitions
            .iter()
            .filter(|(_, part)| part.replicas.contains(&self.node_id))
            .map(|(p, part)| {
                let assignment = Assignment {
                    leader: part.leader,
                    leader_epoch: part.leader_epoch,
                    partition_epoch: part.partition_epoch,
                    replicas: part.replicas.clone(),
                    isr: part.isr.clone(),
                };
                let w = Wanted {
                    topic_id: topic.topic_id,
                    config: config.clone(),
                    min_isr,
                    assignment,
                    throttled: (
                        listed(quota::LEADER_REPLICAS, *p),
                        listed(quota::FOLLOWER_REPLICAS, *p),
                    ),
                };
                (*p, w)
            })
            .collect()
    }

    /// Opens (or creates) a partition's log and the partition over it.
    fn open_partition(
        &self,
        (topic, stats): (Arc<str>, &Arc<crate::metrics::TopicStats>),
        index: i32,
        want: &Wanted,
    ) -> Result<Arc<Partition>, BrokerError> {
        let name = format!("{topic}-{index}");
        let log = match self.dirs.iter().find_map(|d| d.get(&name)) {
            Some(log) => {
                log.set_config(want.config.clone())?;
                log
            }
            None => self
                .dir_for_new()
                .create(&topic, index as u32, want.config.clone())?,
        };
        let stats = crate::metrics::PartitionStats {
            topic: Arc::clone(stats),
            own: self.config.metrics_per_partition.then(Box::default),
        };
        let partition = Partition::open(topic, index, want.topic_id, log, (self.node_id, stats))?;
        partition.set_min_isr(want.min_isr);
        partition.set_throttled(want.throttled.0, want.throttled.1);
        partition.apply(&want.assignment);
        Ok(partition)
    }

    /// Deletes logs on disk that no topic owns (deleted while the broker was down).
    fn delete_unowned(&self) -> Result<(), BrokerError> {
        let metadata_log = format!("{METADATA_TOPIC}-0");
        let hosted = self.all();
        let by_name: HashMap<&str, &Arc<Partition>> =
            hosted.iter().map(|p| (p.log_name(), p)).collect();
        for dir in &self.dirs {
            for log in dir.logs() {
                let name = log.name().to_string();
                let owner = by_name
                    .get(name.as_str())
                    .map(|p| Arc::ptr_eq(p.log(), &log));
                match owner {
                    Some(true) => {}
                    // The same partition in a second dir (copied by hand?): the hosted copy wins.
                    Some(false) => {
                        tracing::warn!(partition = %name, dir = %dir.path().display(),
                            "a second copy of a hosted partition is deleted");
                        dir.delete(&name)?;
                    }
                    None if name == metadata_log => {}
                    None => {
                        tracing::info!(partition = %name, "deleting a partition no topic owns");
                        dir.delete(&name)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the image wants of one hosted partition.
struct Wanted {
    topic_id: Uuid,
    /// One for all the topic's partitions.
    config: Arc<LogConfig>,
    min_isr: usize,
    assignment: Assignment,
    /// Replication throttles on this replica: (as a leader, as a follower).
    throttled: (bool, bool),
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_meta::record::MetadataRecord;

    fn partition(topic_id: Uuid, partition: i32, replicas: &[i32]) -> MetadataRecord {
        MetadataRecord::new_partition(topic_id, partition, replicas)
    }

    /// Only partitions with more than one replica are listed for the replica fetcher and
    /// the ISR ticker, and a partition leaves the list when it is down to one replica.
    #[test]
    fn only_replicated_partitions_are_walked_by_replication() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path(), Default::default(), &|_| LogConfig::default()).unwrap();
        let (config, _) = BrokerConfig::from_properties(&BTreeMap::new()).unwrap();
        let rm = ReplicaManager::new(config.node_id, config, vec![Arc::new(dir)]);
        let (solo, pair) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let me = rm.node_id;
        let mut image = MetadataImage::default();
        let mut delta = MetadataDelta::default();
        let records = [
            MetadataRecord::Topic {
                name: "solo".into(),
                topic_id: solo,
            },
            partition(solo, 0, &[me]),
            MetadataRecord::Topic {
                name: "pair".into(),
                topic_id: pair,
            },
            partition(pair, 0, &[me, me + 1]),
            partition(pair, 1, &[me + 1, me]),
        ];
        image.apply_all(&records, &mut delta).unwrap();
        rm.apply_delta(&image, &delta).unwrap();
        let listed = |rm: &ReplicaManager| {
            let mut l: Vec<_> = rm
                .replicated()
                .iter()
                .map(|p| (p.topic.to_string(), p.index))
                .collect();
            l.sort();
            l
        };
        assert_eq!(rm.all().len(), 3);
        assert_eq!(listed(&rm), [("pair".into(), 0), ("pair".into(), 1)]);

        let mut apply = |records: &[MetadataRecord]| {
            let mut delta = MetadataDelta::default();
            image.apply_all(records, &mut delta).unwrap();
            rm.apply_delta(&image, &delta).unwrap();
            rm.follow_version()
        };
        let v0 = rm.follow_version();
        let v1 = apply(&[partition(pair, 1, &[me])]);
        assert_eq!(listed(&rm), [("pair".into(), 0)]);
        assert_ne!(v1, v0, "one left the replicated partitions");
        // The fetcher's lists change with a role, not with an unrelated record.
        let v2 = apply(&[partition(solo, 0, &[me])]);
        assert_eq!(v2, v1);
        let v3 = apply(&[partition(pair, 0, &[me + 1, me])]);
        assert_ne!(v3, v2, "now a follower");
    }
}
