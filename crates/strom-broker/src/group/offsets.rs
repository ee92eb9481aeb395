//! Committed offsets, kept in memory and made durable as records in the internal topic
//! `__consumer_offsets` (one partition per group, chosen as Kafka chooses it: the Java hash
//! of the group id modulo `offsets.topic.num.partitions`). Replayed at start-up.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

/// A record of `__consumer_offsets` (the record value, as JSON; the key is the group id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OffsetRecord {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        committed: Committed,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    DeleteGroup {
        group: String,
    },
    /// A group's membership as its coordinator keeps it; None: the group is gone.
    GroupMetadata {
        group: String,
        snapshot: Option<super::state::GroupSnapshot>,
    },
}

/// The key of a group's membership record: one per group, so compaction keeps the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMetadataKey {
    pub group: String,
    pub metadata: bool,
}

impl GroupMetadataKey {
    pub fn encode(group: &str) -> Vec<u8> {
        serde_json::to_vec(&GroupMetadataKey {
            group: group.to_string(),
            metadata: true,
        })
        .unwrap_or_default()
    }
}

/// The key of an offset record in `__consumer_offsets` (JSON): one key per group, topic and
/// partition, so that compaction keeps each partition's latest commit (with the group id
/// alone as the key, it would keep one commit per group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

impl OffsetKey {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl OffsetRecord {
    /// The key and value stored for this record: a commit under its partition's key; a
    /// deleted offset as a tombstone (no value) under the same key, which compaction drops
    /// after `delete.retention.ms`. None for `DeleteGroup`, which is stored as a tombstone
    /// per committed offset of the group (see `Broker::persist_offsets`).
    pub fn stored(&self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        match self {
            OffsetRecord::Commit {
                group,
                topic,
                partition,
                ..
            }
            | OffsetRecord::DeleteOffset {
                group,
                topic,
                partition,
            } => {
                let key = OffsetKey {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                let value = matches!(self, OffsetRecord::Commit { .. })
                    .then(|| serde_json::to_vec(self).unwrap_or_default());
                Some((key.encode(), value))
            }
            OffsetRecord::DeleteGroup { .. } => None,
            OffsetRecord::GroupMetadata { group, snapshot } => Some((
                GroupMetadataKey::encode(group),
                snapshot
                    .is_some()
                    .then(|| serde_json::to_vec(self).unwrap_or_default()),
            )),
        }
    }

    /// Reads a stored record back: from its value when it has one (every record written
    /// before offset keys existed too), else from a tombstone's key.
    pub fn from_stored(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, String> {
        match value {
            Some(v) => serde_json::from_slice(v).map_err(|e| e.to_string()),
            None => {
                let key = key.unwrap_or_default();
                if let Ok(k) = serde_json::from_slice::<GroupMetadataKey>(key) {
                    return Ok(OffsetRecord::GroupMetadata {
                        group: k.group,
                        snapshot: None,
                    });
                }
                let k: OffsetKey = serde_json::from_slice(key)
                    .map_err(|e| format!("tombstone with an unreadable key: {e}"))?;
                Ok(OffsetRecord::DeleteOffset {
                    group: k.group,
                    topic: k.topic,
                    partition: k.partition,
                })
            }
        }
    }

    pub fn group(&self) -> &str {
        match self {
            OffsetRecord::Commit { group, .. }
            | OffsetRecord::DeleteOffset { group, .. }
            | OffsetRecord::DeleteGroup { group }
            | OffsetRecord::GroupMetadata { group, .. } => group,
        }
    }
}

/// Java's `String.hashCode`, so groups land in the partition Kafka would put them in.
/// Whether commit metadata is longer than `offset.metadata.max.bytes` allows. Despite the
/// key's name, Kafka compares Java's `String.length()`: UTF-16 code units, not bytes.
pub fn metadata_too_large(metadata: Option<&str>, max: i32) -> bool {
    metadata.is_some_and(|m| {
        i64::try_from(m.encode_utf16().count()).unwrap_or(i64::MAX) > i64::from(max)
    })
}

pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group (Kafka's `Utils.abs(hash) % n`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A group's committed offsets by (topic, partition).
type GroupOffsets = BTreeMap<(String, i32), Committed>;

#[derive(Debug, Default)]
pub struct OffsetStore {
    groups: Mutex<HashMap<String, GroupOffsets>>,
    /// Offsets committed inside open transactions (KIP-447), by producer id: applied when
    /// the commit marker reaches the group's partition, dropped at an abort.
    pending: Mutex<HashMap<i64, Vec<OffsetRecord>>>,
}

impl OffsetStore {
    pub fn apply(&self, r: &OffsetRecord) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        match r {
            OffsetRecord::Commit {
                group,
                topic,
                partition,
                committed,
            } => {
                groups
                    .entry(group.clone())
                    .or_default()
                    .insert((topic.clone(), *partition), committed.clone());
            }
            OffsetRecord::DeleteOffset {
                group,
                topic,
                partition,
            } => {
                if let Some(g) = groups.get_mut(group) {
                    g.remove(&(topic.clone(), *partition));
                    // A group deleted as tombstones (one per offset) leaves nothing behind.
                    if g.is_empty() {
                        groups.remove(group);
                    }
                }
            }
            OffsetRecord::DeleteGroup { group } => {
                groups.remove(group);
            }
            // Membership is the group coordinator's (see `Broker::replay_offsets`).
            OffsetRecord::GroupMetadata { .. } => {}
        }
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)))
            .cloned()
    }

    /// Every committed offset of a group.
    pub fn all(&self, group: &str) -> Vec<((String, i32), Committed)> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups
            .get(group)
            .map(|g| g.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Each group with the time of its newest commit.
    pub fn newest_commits(&self) -> Vec<(String, i64)> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups
            .iter()
            .map(|(g, offsets)| {
                (
                    g.clone(),
                    offsets.values().map(|c| c.commit_ms).max().unwrap_or(0),
                )
            })
            .collect()
    }

    /// Forgets the groups `picks` chooses (their partition moved to another coordinator).
    pub fn unload(&self, picks: &dyn Fn(&str) -> bool) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.retain(|g, _| !picks(g));
        drop(groups);
        let mut pending = self.pending_lock();
        for records in pending.values_mut() {
            records.retain(|r| !picks(r.group()));
        }
        pending.retain(|_, records| !records.is_empty());
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<OffsetRecord>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offsets `producer_id` committed in its open transaction (durable in the log).
    pub fn stage(&self, producer_id: i64, records: &[OffsetRecord]) {
        self.pending_lock()
            .entry(producer_id)
            .or_default()
            .extend_from_slice(records);
    }

    /// `producer_id`'s transaction ended in the partition whose groups `picks` chooses:
    /// its offsets there are applied (commit) or dropped (abort).
    pub fn complete(&self, producer_id: i64, commit: bool, picks: &dyn Fn(&str) -> bool) {
        let mut pending = self.pending_lock();
        let Some(records) = pending.get_mut(&producer_id) else {
            return;
        };
        let (ended, kept): (Vec<OffsetRecord>, Vec<OffsetRecord>) =
            records.drain(..).partition(|r| picks(r.group()));
        *records = kept;
        if records.is_empty() {
            pending.remove(&producer_id);
        }
        // Applied before the pending lock is let go: an OffsetFetch sees them either
        // pending or committed, never neither.
        if commit {
            for r in &ended {
                self.apply(r);
            }
        }
    }

    /// Whether an open transaction holds an offset for this partition of `group`
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn unstable(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_lock().values().flatten().any(|r| {
            matches!(r, OffsetRecord::Commit { group: g, topic: t, partition: p, .. }
                if g == group && t == topic && *p == partition)
        })
    }

    pub fn groups(&self) -> Vec<String> {
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_metadata_is_measured_in_utf16_code_units_as_java_does() {
        assert!(!metadata_too_large(None, -1));
        assert!(!metadata_too_large(Some("abcd"), 4));
        assert!(metadata_too_large(Some("abcde"), 4));
        // 3 chars, 6 UTF-8 bytes: fits 3.
        assert!(!metadata_too_large(Some("\u{e9}\u{e9}\u{e9}"), 3));
        // 2 chars outside the BMP, 8 UTF-8 bytes, 4 UTF-16 units: not 3.
        assert!(metadata_too_large(Some("\u{1f600}\u{1f600}"), 3));
        assert!(!metadata_too_large(Some("\u{1f600}\u{1f600}"), 4));
        assert!(metadata_too_large(Some(""), -1));
    }

    #[test]
    fn stored_records_read_back() {
        let commit = OffsetRecord::Commit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            committed: Committed {
                offset: 7,
                leader_epoch: -1,
                metadata: None,
                commit_ms: 1,
            },
        };
        let delete = OffsetRecord::DeleteOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let (ck, cv) = commit.stored().unwrap();
        let (dk, dv) = delete.stored().unwrap();
        assert_eq!(ck, dk, "a delete supersedes the commit under compaction");
        assert!(dv.is_none(), "a delete is a tombstone");
        assert_eq!(
            OffsetRecord::from_stored(Some(&ck), cv.as_deref()),
            Ok(commit)
        );
        assert_eq!(OffsetRecord::from_stored(Some(&dk), None), Ok(delete));
        let other = OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 4,
        };
        assert_ne!(ck, other.encode(), "each partition has its own key");
        assert!(OffsetRecord::DeleteGroup { group: "g".into() }
            .stored()
            .is_none());
        // Membership: its own key per group, a tombstone when the group is gone.
        let gone = OffsetRecord::GroupMetadata {
            group: "g".into(),
            snapshot: None,
        };
        let (gk, gv) = gone.stored().unwrap();
        assert!(gv.is_none());
        assert_ne!(gk, ck);
        assert_eq!(OffsetRecord::from_stored(Some(&gk), None), Ok(gone));
        let kept = OffsetRecord::GroupMetadata {
            group: "g".into(),
            snapshot: Some(super::super::state::GroupSnapshot::Consumer(
                Default::default(),
            )),
        };
        let (kk, kv) = kept.stored().unwrap();
        assert_eq!(kk, gk);
        assert_eq!(
            OffsetRecord::from_stored(Some(&kk), kv.as_deref()),
            Ok(kept)
        );
    }

    #[test]
    fn partitions_match_kafkas_choice() {
        // Java: "test-group".hashCode() == 627841412; % 50 == 12.
        assert_eq!(java_hash("test-group"), 627841412);
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(java_hash(""), 0);
    }

    #[test]
    fn records_apply_in_order() {
        let s = OffsetStore::default();
        let c = Committed {
            offset: 5,
            leader_epoch: -1,
            metadata: None,
            commit_ms: 1,
        };
        s.apply(&OffsetRecord::Commit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            committed: c.clone(),
        });
        assert_eq!(s.get("g", "t", 0), Some(c));
        s.apply(&OffsetRecord::DeleteOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        });
        assert_eq!(s.get("g", "t", 0), None);
        s.apply(&OffsetRecord::DeleteGroup { group: "g".into() });
        assert!(s.groups().is_empty());
    }
}
