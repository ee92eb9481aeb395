//! Which groups this broker coordinates: those whose `__consumer_offsets` partition it leads
//! and has loaded, as Kafka's group coordinator runtime does. The reconciler loads a
//! partition's groups (committed offsets and membership, replayed from its log) when this
//! broker becomes its leader and unloads them when it stops leading it (waiting joins and
//! syncs are answered NOT_COORDINATOR); a request for a group this broker does not
//! coordinate is answered NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while its
//! partition loads, so clients look the coordinator up again.
//!
//! A load belongs to one leadership (Kafka's coordinator epoch is the partition's leader
//! epoch): leading the partition again in a later epoch reloads it (another leader may have
//! written in between), and a write is accepted only in the epoch its groups were loaded in.

use super::offsets::{partition_for, OffsetRecord, OFFSETS_TOPIC};
use super::state::{COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::partition::{Isolation, Partition};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use strom_meta::MetadataImage;

/// The loaded partitions, each with the leader epoch it was loaded in.
#[derive(Debug, Default)]
pub struct Loaded(Mutex<BTreeMap<i32, i32>>);

impl Loaded {
    pub(crate) fn get(&self) -> BTreeMap<i32, i32> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, p: i32, epoch: Option<i32>) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match epoch {
            Some(e) => s.insert(p, e),
            None => s.remove(&p),
        };
    }

    /// The leader epoch partition `p`'s groups were loaded in, if they are.
    pub(crate) fn epoch_of(&self, p: i32) -> Option<i32> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&p)
            .copied()
    }
}

impl Broker {
    /// Whether this broker coordinates `group` now: Err with NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS if not. Before `__consumer_offsets` exists (its first
    /// FindCoordinator creates it) every broker may.
    pub fn check_coordinator(&self, group: &str) -> Result<(), i16> {
        let image = self.meta.image();
        let Some(topic) = image.topics.get(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let p = partition_for(group, topic.partitions.len() as i32);
        match topic.partitions.get(&p) {
            Some(part) if part.leader == self.node_id => {
                if self.coordinated.epoch_of(p) == Some(part.leader_epoch) {
                    Ok(())
                } else {
                    Err(COORDINATOR_LOAD_IN_PROGRESS)
                }
            }
            _ => Err(NOT_COORDINATOR),
        }
    }

    /// On the reconciler: loads the groups of the `__consumer_offsets` partitions this
    /// broker now leads and unloads those of the partitions it stopped leading.
    pub(crate) fn reconcile_groups(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let topic = image.topics.get(OFFSETS_TOPIC);
        let count = topic.map_or(0, |t| t.partitions.len() as i32);
        let led: BTreeMap<i32, i32> = topic
            .iter()
            .flat_map(|t| &t.partitions)
            .filter(|(_, p)| p.leader == self.node_id)
            .map(|(i, p)| (*i, p.leader_epoch))
            .collect();
        // Unloaded: no longer led, or led in another epoch (then loaded again below).
        for (p, epoch) in self.coordinated.get() {
            if led.get(&p) == Some(&epoch) {
                continue;
            }
            self.coordinated.set(p, None);
            let picks = |group: &str| count == 0 || partition_for(group, count) == p;
            self.groups.unload(&picks);
            self.offsets.unload(&picks);
            tracing::info!(
                partition = p,
                "groups unloaded: no longer the coordinator in this epoch"
            );
        }
        let loaded = self.coordinated.get();
        for (p, epoch) in led.iter().filter(|(p, _)| !loaded.contains_key(p)) {
            if let Some(partition) = self.replicas.get(OFFSETS_TOPIC, *p) {
                self.load_groups(&partition, count)?;
                self.coordinated.set(*p, Some(*epoch));
            }
        }
        Ok(())
    }

    /// Replays one `__consumer_offsets` partition: its committed offsets and the membership
    /// its groups last recorded.
    fn load_groups(&self, p: &Partition, count: i32) -> Result<(), BrokerError> {
        let mut membership = HashMap::new();
        let mut groups = BTreeSet::new();
        let mut offset = p.log_start_offset();
        while offset < p.log_end_offset() {
            let Some(slice) = p.read(offset, 1 << 20, Isolation::LogEnd)?.slice else {
                break;
            };
            let bytes = slice.read_to_vec()?;
            let batches = strom_proto::batch::split(&bytes)
                .map_err(|e| BrokerError::Metadata(e.to_string()))?;
            for (h, b) in batches {
                offset = h.next_offset();
                if h.is_control() {
                    // A transaction's end: its offsets here are applied or dropped.
                    if let Some(m) = strom_proto::control::EndTxnMarker::from_batch(b) {
                        self.offsets.complete(h.producer_id, m.commit, &|g| {
                            partition_for(g, count) == p.index
                        });
                    }
                    continue;
                }
                let Ok(records) = strom_proto::records::decode(b) else {
                    continue;
                };
                for r in records {
                    match OffsetRecord::from_stored(r.key, r.value) {
                        Ok(OffsetRecord::GroupMetadata { group, snapshot }) => {
                            membership.insert(group, snapshot);
                        }
                        Ok(rec) if h.is_transactional() => {
                            groups.insert(rec.group().to_string());
                            self.offsets.stage(h.producer_id, &[rec]);
                        }
                        Ok(rec) => {
                            if let OffsetRecord::DeleteGroup { group } = &rec {
                                membership.remove(group);
                            }
                            groups.insert(rec.group().to_string());
                            self.offsets.apply(&rec);
                        }
                        Err(e) => {
                            tracing::warn!(partition = p.index, offset = r.offset, error = %e, "unreadable offset record skipped")
                        }
                    }
                }
            }
        }
        let now = crate::metadata_store::now_ms();
        for (group, snapshot) in membership {
            if let Some(s) = snapshot {
                self.groups.restore(&group, s, now);
            }
        }
        for g in groups.iter().filter(|g| !self.offsets.all(g).is_empty()) {
            self.groups.touch(g);
        }
        tracing::debug!(partition = p.index, "groups loaded");
        Ok(())
    }
}
