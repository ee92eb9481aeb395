//! Groups on disk: `__consumer_offsets` created on first use, offsets and membership
//! written to the group's partition (answered once below its high watermark), offsets of
//! long-empty groups expired, and the tasks that tick the coordinator and persist what
//! changed. Loading them back is `loading.rs`.

use super::offsets::{partition_for, OffsetKey, OffsetRecord, OFFSETS_TOPIC};
use super::state::GroupSnapshot;
use crate::broker::Broker;
use crate::error::{self, Code};
use crate::partition::Wait;
use std::collections::HashMap;
use std::sync::Arc;
use strom_meta::controller::NewTopic;
use tokio::sync::watch;

/// A turn per `__consumer_offsets` partition (at most its partition count).
#[derive(Debug, Default)]
pub struct Turns(std::sync::Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    fn of(&self, partition: i32) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(turns.entry(partition).or_default())
    }
}

impl Broker {
    /// The `__consumer_offsets` partition that holds `group` (0 before the topic exists).
    pub(crate) fn offsets_partition(&self, group: &str) -> i32 {
        let image = self.meta.image();
        let partitions = image
            .topics
            .get(OFFSETS_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        partition_for(group, partitions)
    }

    /// Creates `__consumer_offsets` (compacted, `offsets.topic.num.partitions` partitions,
    /// `offsets.topic.segment.bytes` segments) the first time a group needs it, as Kafka does.
    pub async fn ensure_offsets_topic(&self) -> Result<(), Code> {
        if self.meta.image().topics.contains_key(OFFSETS_TOPIC) {
            return Ok(());
        }
        let _g = self.offsets_topic.lock().await;
        if self.meta.image().topics.contains_key(OFFSETS_TOPIC) {
            return Ok(());
        }
        // Capped by the brokers present, so that one node works with no configuration.
        let live = self.meta.image().live_brokers().count().max(1) as i32;
        let t = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions: self.config.offsets_topic_num_partitions,
            replication_factor: self.config.offsets_topic_replication_factor.min(live),
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".into(), "compact".into()),
                (
                    "segment.bytes".into(),
                    self.config.offsets_topic_segment_bytes.to_string(),
                ),
            ],
        };
        self.commit_topic(&t).await.map(|_| ()).map_err(|(c, _)| c)
    }

    /// Makes offset records durable in the group's `__consumer_offsets` partition, then
    /// applies them.
    pub async fn persist_offsets(&self, group: &str, records: &[OffsetRecord]) -> Result<(), Code> {
        self.write_offsets(group, records, None).await?;
        for r in records {
            self.offsets.apply(r);
        }
        Ok(())
    }

    /// TxnOffsetCommit (KIP-447): the offsets go to the group's partition in `producer`'s
    /// transaction (a transactional batch of its id and epoch), held back until its marker.
    pub async fn persist_txn_offsets(
        &self,
        group: &str,
        records: &[OffsetRecord],
        producer: (i64, i16),
    ) -> Result<(), Code> {
        self.write_offsets(group, records, Some(producer)).await?;
        self.offsets.stage(producer.0, records);
        Ok(())
    }

    /// Writes offset records (in a transaction of `producer`, if given) and waits until
    /// they are below the high watermark.
    async fn write_offsets(
        &self,
        group: &str,
        records: &[OffsetRecord],
        producer: Option<(i64, i16)>,
    ) -> Result<(), Code> {
        let unavailable =
            error::code(kafka_protocol::error::ResponseError::CoordinatorNotAvailable);
        self.ensure_offsets_topic().await?;
        let partition = self
            .replicas
            .get(OFFSETS_TOPIC, self.offsets_partition(group))
            .ok_or(unavailable)?;
        let now = crate::metadata_store::now_ms();
        let mut batch = strom_proto::BatchBuilder::new(now);
        if let Some((id, epoch)) = producer {
            batch = batch.producer(id, epoch, -1);
        }
        for r in records {
            self.push_offset_record(&mut batch, r, now);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut bytes = match producer {
            Some(_) => batch.build_with_attributes(strom_proto::batch::TRANSACTIONAL_BIT),
            None => batch.build(),
        };
        // A partition this broker no longer leads, or leads in another epoch than its groups
        // were loaded in (the coordinator epoch): the group moved, or is being reloaded.
        let not_coordinator = crate::group::state::NOT_COORDINATOR;
        let loaded_in = self
            .coordinated
            .epoch_of(partition.index)
            .ok_or(not_coordinator)?;
        if partition.leader_epoch() != loaded_in {
            return Err(not_coordinator);
        }
        let not_leader = error::code(kafka_protocol::error::ResponseError::NotLeaderOrFollower);
        let appended = partition.append_as_leader(&mut bytes).map_err(|(c, _)| {
            if c == not_leader {
                not_coordinator
            } else {
                c
            }
        })?;
        if appended.leader_epoch != loaded_in {
            return Err(not_coordinator);
        }
        match partition
            .wait_at(
                Wait::HighWatermark,
                appended.last_offset,
                appended.leader_epoch,
            )
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(c)) => Err(c),
            Err(_) => Err(unavailable),
        }
    }

    /// One record into the batch; a group deletion as a tombstone per committed offset and
    /// one for its membership, so that compaction removes every trace of it.
    fn push_offset_record(
        &self,
        batch: &mut strom_proto::BatchBuilder,
        r: &OffsetRecord,
        now: i64,
    ) {
        if let Some((key, value)) = r.stored() {
            batch.push(Some(&key), value.as_deref(), now);
            return;
        }
        for ((topic, partition), _) in self.offsets.all(r.group()) {
            let key = OffsetKey {
                group: r.group().to_string(),
                topic,
                partition,
            };
            batch.push(Some(&key.encode()), None, now);
        }
        let key = crate::group::offsets::GroupMetadataKey::encode(r.group());
        batch.push(Some(&key), None, now);
    }

    /// Deletes the offsets of groups empty for longer than `offsets.retention.minutes`.
    pub async fn expire_offsets(&self, now_ms: i64) {
        let cutoff = now_ms - self.config.offsets_retention_minutes * 60_000;
        for group in self
            .groups
            .expirable(&self.offsets.newest_commits(), cutoff)
            .into_iter()
            // Only groups this broker coordinates, loaded whole (not one still loading).
            .filter(|g| self.check_coordinator(g).is_ok())
        {
            tracing::info!(group, "offsets expired (offsets.retention.minutes)");
            if self
                .persist_offsets(
                    &group,
                    &[OffsetRecord::DeleteGroup {
                        group: group.clone(),
                    }],
                )
                .await
                .is_ok()
            {
                self.groups.forget_if_empty(&group);
            }
        }
    }

    /// Writes the membership of every group that changed since it was last written.
    pub(crate) async fn persist_groups(&self, written: &mut HashMap<String, GroupSnapshot>) {
        let now: HashMap<String, GroupSnapshot> = self.groups.snapshots().into_iter().collect();
        written.retain(|g, _| now.contains_key(g));
        for (group, snapshot) in now {
            if written.get(&group) == Some(&snapshot) || self.check_coordinator(&group).is_err() {
                continue;
            }
            match self.persist_membership(&group).await {
                Ok(Some(stored)) => {
                    written.insert(group, stored);
                }
                Ok(None) => {}
                Err(code) => {
                    tracing::warn!(%group, code, "group membership not persisted; retried");
                }
            }
        }
    }

    /// Writes `group`'s membership as it is now, if it has one to write. One writer at a
    /// time per partition, each taking the snapshot once it has its turn: a later write
    /// never carries an older generation than an earlier one.
    pub(crate) async fn persist_membership(
        &self,
        group: &str,
    ) -> Result<Option<GroupSnapshot>, Code> {
        let turn = self.membership_writes.of(self.offsets_partition(group));
        let _turn = turn.lock().await;
        let Some(snapshot) = self.groups.snapshot_of(group) else {
            return Ok(None);
        };
        let record = OffsetRecord::GroupMetadata {
            group: group.to_string(),
            snapshot: Some(snapshot.clone()),
        };
        self.persist_offsets(group, &[record]).await?;
        Ok(Some(snapshot))
    }
}

/// Expires group members and ends timed-out rebalances; every
/// `offsets.retention.check.interval.ms`, drops the offsets of groups empty for longer than
/// `offsets.retention.minutes`.
pub(crate) async fn group_ticker(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut last_retention = crate::metadata_store::now_ms();
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now = crate::metadata_store::now_ms();
                broker.groups.tick(now);
                if now - last_retention >= broker.config.offsets_retention_check_interval_ms {
                    last_retention = now;
                    broker.expire_offsets(now).await;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Every `GROUP_PERSIST_INTERVAL_MS`, writes the membership of the groups that changed to
/// `__consumer_offsets`, so that a restarted broker restores them (see ARCHITECTURE.md).
pub(crate) async fn group_persister(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(
        crate::limits::GROUP_PERSIST_INTERVAL_MS,
    ));
    let mut written: HashMap<String, GroupSnapshot> =
        broker.groups.snapshots().into_iter().collect();
    loop {
        tokio::select! {
            _ = every.tick() => broker.persist_groups(&mut written).await,
            _ = shutdown.changed() => {
                broker.persist_groups(&mut written).await;
                return;
            }
        }
    }
}
