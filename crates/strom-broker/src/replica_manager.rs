//! The partitions this broker hosts: their logs, idempotent-producer state, and the parked
//! fetches waiting for their next append. Kept in step with the metadata image by
//! `reconcile`.

use crate::config::BrokerConfig;
use crate::error::{self, BrokerError, Code};
use crate::metadata_store::METADATA_TOPIC;
use crate::producer_state::{BatchMeta, ProducerStates, SeqCheck};
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use strom_log::{AppendInfo, Log, LogConfig, LogDir};
use strom_meta::MetadataImage;
use strom_proto::{BatchHeader, TimestampType};
use tokio::sync::Notify;
use uuid::Uuid;

/// Parked fetches one partition wakes; older registrations are dropped past this.
pub const WAITERS_PER_PARTITION_MAX: usize = 10_000;

#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    pub log: Arc<Log>,
    /// Held across the sequence check, the append and the state update, so they are atomic.
    producers: Mutex<ProducerStates>,
    waiters: Mutex<Vec<Weak<Notify>>>,
}

/// What a produce to one partition got.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    /// Nothing was written (an idempotent retry): no need to wait for durability.
    pub duplicate: bool,
}

impl Partition {
    /// Appends a producer's record set after the idempotence checks.
    pub fn append(&self, records: &mut [u8]) -> Result<Appended, (Code, String)> {
        let headers: Vec<BatchHeader> = strom_proto::batch::split(records)
            .map_err(|e| (error::batch_error(&e), e.to_string()))?
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        for h in &headers {
            if h.record_count != h.last_offset_delta + 1 {
                return Err((
                    error::code(ResponseError::CorruptMessage),
                    format!(
                        "batch has {} records but a last offset delta of {}",
                        h.record_count, h.last_offset_delta
                    ),
                ));
            }
        }
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let [h] = headers.as_slice() {
            match producers.check(h) {
                SeqCheck::Append => {}
                SeqCheck::Duplicate(BatchMeta {
                    first_offset,
                    last_offset,
                    ..
                }) => {
                    return Ok(Appended {
                        base_offset: first_offset,
                        last_offset,
                        log_append_time_ms: -1,
                        duplicate: true,
                    });
                }
                SeqCheck::Refuse(code) => return Err((code, "sequence check failed".into())),
            }
        } else if headers
            .iter()
            .any(|h| h.producer_id >= 0 && h.base_sequence >= 0)
        {
            for h in &headers {
                if let SeqCheck::Refuse(code) = producers.check(h) {
                    return Err((code, "sequence check failed".into()));
                }
            }
        }
        let info: AppendInfo = self
            .log
            .append(records)
            .map_err(|e| (error::log_error(&e), e.to_string()))?;
        // Offsets are assigned now: record the stored headers.
        let mut at = 0usize;
        for h in &headers {
            if let Some(stored) = records.get(at..).and_then(|b| BatchHeader::parse(b).ok()) {
                producers.record(&stored);
            }
            at += h.size();
        }
        drop(producers);
        self.wake_fetchers();
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
            duplicate: false,
        })
    }

    /// Registers a parked fetch to be woken by the next append.
    pub fn add_waiter(&self, waiter: &Arc<Notify>) {
        let mut w = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        w.retain(|x| x.strong_count() > 0);
        if w.len() >= WAITERS_PER_PARTITION_MAX {
            w.remove(0);
        }
        w.push(Arc::downgrade(waiter));
    }

    fn wake_fetchers(&self) {
        let waiters =
            std::mem::take(&mut *self.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for w in waiters.iter().filter_map(Weak::upgrade) {
            w.notify_one();
        }
    }

    /// Rebuilds idempotent producers' state from the batch headers of the last two segments.
    fn load_producers(&self) -> Result<(), BrokerError> {
        let bases = self.log.segment_base_offsets();
        let from = bases
            .len()
            .checked_sub(2)
            .and_then(|i| bases.get(i))
            .copied()
            .unwrap_or(0);
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.log
            .for_each_header(from.max(self.log.log_start_offset()), |h| {
                producers.record(h)
            })?;
        Ok(())
    }
}

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
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Partitions by topic id and index, for requests that name topics by id.
    by_id: RwLock<HashMap<(Uuid, i32), Arc<Partition>>>,
}

impl ReplicaManager {
    pub fn new(node_id: i32, config: BrokerConfig, dirs: Vec<Arc<LogDir>>) -> ReplicaManager {
        ReplicaManager {
            node_id,
            config,
            dirs,
            partitions: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
        }
    }

    /// The first log dir, which holds the metadata log.
    pub fn log_dir(&self) -> &Arc<LogDir> {
        &self.dirs[0]
    }

    pub fn log_dirs(&self) -> &[Arc<LogDir>] {
        &self.dirs
    }

    /// The dir that holds the log `name`, if any.
    fn dir_of(&self, name: &str) -> Option<&Arc<LogDir>> {
        self.dirs.iter().find(|d| d.get(name).is_some())
    }

    fn delete_log(&self, name: &str) -> Result<(), BrokerError> {
        if let Some(dir) = self.dir_of(name) {
            dir.delete(name)?;
        }
        Ok(())
    }

    /// Where a new partition goes: the online dir with the fewest partitions (Kafka's
    /// choice), the first on a tie.
    fn dir_for_new(&self) -> &Arc<LogDir> {
        self.dirs
            .iter()
            .filter(|d| !d.is_offline())
            .min_by_key(|d| d.logs().len())
            .unwrap_or(&self.dirs[0])
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn get_by_id(&self, topic_id: &Uuid, partition: i32) -> Option<Arc<Partition>> {
        self.by_id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(*topic_id, partition))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Creates, reconfigures and deletes partition logs so that this broker hosts exactly
    /// the partitions the image assigns to it.
    pub fn reconcile(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let mut wanted: HashMap<(String, i32), (Uuid, LogConfig)> = HashMap::new();
        for topic in image.topics.values() {
            let config = log_config(
                &self.config,
                image.topic_config(&topic.name),
                &crate::config::Dynamic::of(image, self.node_id),
            );
            for (p, part) in &topic.partitions {
                if part.replicas.contains(&self.node_id) {
                    wanted.insert((topic.name.clone(), *p), (topic.topic_id, config.clone()));
                }
            }
        }
        let mut partitions = self
            .partitions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut by_id = self.by_id.write().unwrap_or_else(PoisonError::into_inner);
        // Gone from the image: delete.
        let stale: Vec<(String, i32)> = partitions
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in stale {
            if let Some(p) = partitions.remove(&key) {
                by_id.remove(&(p.topic_id, p.index));
                self.delete_log(p.log.name())?;
                p.wake_fetchers();
            }
        }
        for ((topic, index), (topic_id, config)) in wanted {
            let key = (topic.clone(), index);
            if let Some(p) = partitions.get(&key) {
                if p.topic_id == topic_id {
                    if *p.log.config() != config {
                        p.log.set_config(config)?;
                    }
                    continue;
                }
                // Same name, new topic: the old one was deleted and recreated.
                self.delete_log(p.log.name())?;
                by_id.remove(&(p.topic_id, p.index));
                partitions.remove(&key);
            }
            let name = format!("{topic}-{index}");
            let log = match self.dirs.iter().find_map(|d| d.get(&name)) {
                Some(log) => {
                    log.set_config(config)?;
                    log
                }
                None => self.dir_for_new().create(&topic, index as u32, config)?,
            };
            let partition = Arc::new(Partition {
                topic,
                index,
                topic_id,
                log,
                producers: Mutex::new(ProducerStates::default()),
                waiters: Mutex::new(Vec::new()),
            });
            partition.load_producers()?;
            by_id.insert((topic_id, index), Arc::clone(&partition));
            partitions.insert(key, partition);
        }
        // Logs on disk that no topic owns (deleted while the broker was down).
        let metadata_log = format!("{METADATA_TOPIC}-0");
        for dir in &self.dirs {
            for log in dir.logs() {
                let name = log.name().to_string();
                let owner = partitions
                    .values()
                    .find(|p| p.log.name() == name)
                    .map(|p| Arc::ptr_eq(&p.log, &log));
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
