//! The transaction coordinator's state and its log: every transactional id lives in the
//! `__transaction_state` partition its Java string hash picks (as Kafka chooses it), and the
//! leader of that partition coordinates it. The reconciler loads a partition's ids (replaying
//! its log: the last record per id wins, a tombstone deletes) when this broker becomes its
//! leader and unloads them when it stops leading it, as the group coordinator does; until
//! loaded, requests get COORDINATOR_LOAD_IN_PROGRESS, and NOT_COORDINATOR elsewhere.
//!
//! A decision (`Broker::txn_transition`) is made against the current state under the lock,
//! marks the id pending (other requests meanwhile get CONCURRENT_TRANSACTIONS), writes the
//! next state to the log and, once it is below the partition's high watermark, makes it
//! current. A prepared commit or abort then has its markers written (`markers.rs`).

use super::log as txn_log;
use super::state::{Outcome, TxnMetadata, CONCURRENT_TRANSACTIONS};
use crate::broker::Broker;
use crate::error::{self, BrokerError, Code};
use crate::group::loading::Loaded;
use crate::group::offsets::partition_for;
use crate::partition::{Isolation, Partition, Wait};
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use strom_meta::controller::NewTopic;
use strom_meta::MetadataImage;

pub const TXN_TOPIC: &str = "__transaction_state";

/// How long a request waits for its transactional id to be free (`txn_transition_patient`).
const CONCURRENT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Its longest sleep between looks (a completion on another broker wakes nobody here).
const CONCURRENT_RECHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// One transactional id: its state and whether a write of it is in flight.
#[derive(Debug, Clone)]
struct Entry {
    meta: TxnMetadata,
    pending: bool,
}

#[derive(Debug, Default)]
pub struct TxnCoordinator {
    /// The `__transaction_state` partitions loaded here, with the leader epoch of the load
    /// (the coordinator epoch markers carry).
    pub(crate) loaded: Loaded,
    txns: Mutex<HashMap<String, Entry>>,
    /// Serialises the creation of `__transaction_state`.
    topic: tokio::sync::Mutex<()>,
    /// Connections to other brokers for markers (`markers.rs`).
    pub(crate) peers: super::markers::Peers,
    /// The runtime marker tasks run on (the reconciler thread starts some).
    pub(crate) runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// Woken at every transition written (or failed): requests that found their id busy
    /// (`txn_transition_patient`) look again.
    changed: tokio::sync::Notify,
}

impl TxnCoordinator {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.txns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state of `id`, if this broker has it.
    pub fn get(&self, id: &str) -> Option<TxnMetadata> {
        self.lock().get(id).map(|e| e.meta.clone())
    }

    /// Every transactional id loaded here, with its state.
    pub fn all(&self) -> Vec<(String, TxnMetadata)> {
        let mut out: Vec<(String, TxnMetadata)> = self
            .lock()
            .iter()
            .map(|(id, e)| (id.clone(), e.meta.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Open transactions past their timeout, with no write in flight.
    pub fn timed_out(&self, now_ms: i64) -> Vec<(String, TxnMetadata)> {
        self.lock()
            .iter()
            .filter(|(_, e)| !e.pending && e.meta.timed_out(now_ms))
            .map(|(id, e)| (id.clone(), e.meta.clone()))
            .collect()
    }

    /// The prepared transactions of partition `p` (their markers to be written again
    /// after a load).
    fn prepared_in(&self, picks: &dyn Fn(&str) -> bool) -> Vec<(String, TxnMetadata)> {
        self.lock()
            .iter()
            .filter(|(id, e)| e.meta.state.preparing() && picks(id))
            .map(|(id, e)| (id.clone(), e.meta.clone()))
            .collect()
    }
}

/// What a decision under the lock asks for.
enum Step {
    /// A new producer id, then decide again.
    NeedPid,
    /// Nothing to write.
    Answer(Decided),
    /// Write this (the id is now pending; true: it was unknown before).
    Write(Outcome, bool),
}

impl TxnCoordinator {
    fn decide(
        &self,
        id: &str,
        decide: &mut impl FnMut(Option<&TxnMetadata>, &mut dyn FnMut() -> i64) -> Result<Outcome, Code>,
        spare: &mut Option<i64>,
    ) -> Result<Step, Code> {
        let mut txns = self.lock();
        let entry = txns.get(id);
        if entry.is_some_and(|e| e.pending) {
            return Err(CONCURRENT_TRANSACTIONS);
        }
        let mut needed = false;
        let mut new_pid = || {
            spare.take().unwrap_or_else(|| {
                needed = true;
                -1
            })
        };
        let outcome = decide(entry.map(|e| &e.meta), &mut new_pid)?;
        if needed {
            return Ok(Step::NeedPid);
        }
        let next = match &outcome {
            Outcome::Done => {
                let meta = entry
                    .map(|e| e.meta.clone())
                    .ok_or(code(ResponseError::UnknownServerError))?;
                return Ok(Step::Answer(Decided { meta, wrote: false }));
            }
            Outcome::Write(n) | Outcome::Fence(n) => n.clone(),
        };
        let fresh = entry.is_none();
        txns.entry(id.to_string())
            .or_insert_with(|| Entry {
                meta: next,
                pending: true,
            })
            .pending = true;
        Ok(Step::Write(outcome, fresh))
    }
}

/// The state a decision left.
#[derive(Debug, Clone)]
pub struct Decided {
    pub meta: TxnMetadata,
    /// Something was written (false: a retry answered from the current state).
    pub wrote: bool,
}

fn code(e: ResponseError) -> Code {
    error::code(e)
}

impl Broker {
    /// Creates `__transaction_state` (compacted, `transaction.state.log.*`) the first time
    /// a transactional id needs a coordinator, as Kafka does.
    pub async fn ensure_txn_topic(&self) -> Result<(), Code> {
        if self.meta.image().topics.contains_key(TXN_TOPIC) {
            return Ok(());
        }
        let _g = self.txns.topic.lock().await;
        if self.meta.image().topics.contains_key(TXN_TOPIC) {
            return Ok(());
        }
        let c = &self.config.txn;
        let live = self.meta.image().live_brokers().count().max(1) as i32;
        let replication_factor = c.log_replication_factor.min(live);
        let t = NewTopic {
            name: TXN_TOPIC.to_string(),
            partitions: c.log_num_partitions,
            replication_factor,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".into(), "compact".into()),
                ("segment.bytes".into(), c.log_segment_bytes.to_string()),
                (
                    "min.insync.replicas".into(),
                    c.log_min_isr.min(replication_factor).to_string(),
                ),
                ("unclean.leader.election.enable".into(), "false".into()),
            ],
        };
        self.commit_topic(&t).await.map(|_| ()).map_err(|(c, _)| c)
    }

    /// The coordinator of `id`: the leader of its partition (None: no leader now, or no
    /// topic yet).
    pub fn txn_coordinator(&self, image: &MetadataImage, id: &str) -> Option<(i32, String, u16)> {
        let topic = image.topics.get(TXN_TOPIC)?;
        let p = partition_for(id, topic.partitions.len() as i32);
        let leader = topic.partitions.get(&p)?.leader;
        if leader == self.node_id {
            let (host, port) = self.advertised_endpoint();
            return Some((leader, host, port));
        }
        image
            .brokers
            .get(&leader)
            .map(|b| (leader, b.host.clone(), b.port))
    }

    /// Whether this broker coordinates `id` now: its partition and the coordinator epoch,
    /// or NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS.
    pub fn check_txn_coordinator(&self, id: &str) -> Result<(i32, i32), Code> {
        let image = self.meta.image();
        let topic = image
            .topics
            .get(TXN_TOPIC)
            .ok_or(code(ResponseError::NotCoordinator))?;
        let p = partition_for(id, topic.partitions.len() as i32);
        match topic.partitions.get(&p) {
            Some(part) if part.leader == self.node_id => match self.txns.loaded.epoch_of(p) {
                Some(e) if e == part.leader_epoch => Ok((p, e)),
                _ => Err(code(ResponseError::CoordinatorLoadInProgress)),
            },
            _ => Err(code(ResponseError::NotCoordinator)),
        }
    }

    /// Decides on `id` against its current state (None: unknown) and makes the outcome
    /// durable. `decide` is given a source of new producer ids; it may be called twice
    /// (the first time finding it needs an id, which is then taken from the metadata log).
    /// A fence is written and then answered CONCURRENT_TRANSACTIONS.
    pub async fn txn_transition(
        self: &Arc<Self>,
        id: &str,
        mut decide: impl FnMut(Option<&TxnMetadata>, &mut dyn FnMut() -> i64) -> Result<Outcome, Code>,
    ) -> Result<Decided, Code> {
        let (partition, coordinator_epoch) = self.check_txn_coordinator(id)?;
        let mut spare: Option<i64> = None;
        let (outcome, fresh) = loop {
            match self.txns.decide(id, &mut decide, &mut spare)? {
                Step::NeedPid => spare = Some(self.next_producer_id().await?),
                Step::Answer(d) => return Ok(d),
                Step::Write(outcome, fresh) => break (outcome, fresh),
            }
        };
        let (next, fenced) = match outcome {
            Outcome::Write(n) => (n, false),
            Outcome::Fence(n) => (n, true),
            Outcome::Done => unreachable!("answered above"),
        };
        let written = self
            .write_txn(id, partition, coordinator_epoch, &next)
            .await;
        {
            let mut txns = self.txns.lock();
            match (&written, fresh) {
                (Ok(()), _) => {
                    txns.insert(
                        id.to_string(),
                        Entry {
                            meta: next.clone(),
                            pending: false,
                        },
                    );
                }
                (Err(_), true) => {
                    txns.remove(id);
                }
                (Err(_), false) => {
                    if let Some(e) = txns.get_mut(id) {
                        e.pending = false;
                    }
                }
            }
        }
        self.txns.changed.notify_waiters();
        written?;
        if next.state.preparing() {
            self.send_markers(id.to_string(), next.clone(), coordinator_epoch);
        }
        if fenced {
            return Err(CONCURRENT_TRANSACTIONS);
        }
        Ok(Decided {
            meta: next,
            wrote: true,
        })
    }

    /// `txn_transition`, but an id busy with another transition or completing a prepared
    /// transaction (CONCURRENT_TRANSACTIONS) is decided again as soon as that is written,
    /// for up to `CONCURRENT_WAIT`, rather than answered at once: clients back off 20-100
    /// ms on that error, and the markers of the transaction before usually take a few.
    pub async fn txn_transition_patient(
        self: &Arc<Self>,
        id: &str,
        mut decide: impl FnMut(Option<&TxnMetadata>, &mut dyn FnMut() -> i64) -> Result<Outcome, Code>,
    ) -> Result<Decided, Code> {
        let deadline = tokio::time::Instant::now() + CONCURRENT_WAIT;
        loop {
            let changed = self.txns.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.txn_transition(id, &mut decide).await {
                Err(CONCURRENT_TRANSACTIONS) if tokio::time::Instant::now() < deadline => {
                    // A bounded wait: a fence answers CONCURRENT_TRANSACTIONS after its own
                    // write, so the abort it started may be what completes next.
                    let _ = tokio::time::timeout(CONCURRENT_RECHECK, changed).await;
                }
                other => return other,
            }
        }
    }

    /// Waits (up to `within`) until `id` has moved on from the prepared state `prepared`:
    /// its markers are written and it completed (or another coordinator took it over).
    pub async fn txn_completed(
        &self,
        id: &str,
        prepared: &TxnMetadata,
        within: std::time::Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.txns.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let current = self.txns.get(id);
            let moved = current.is_none_or(|m| {
                m.state != prepared.state
                    || m.producer_id != prepared.producer_id
                    || m.producer_epoch != prepared.producer_epoch
            });
            if moved {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(CONCURRENT_RECHECK, changed).await;
        }
    }

    /// Writes `meta` as `id`'s record to its partition, answered once below the high
    /// watermark, within the coordinator epoch the decision was made in. Append errors map
    /// to the coordinator's (Kafka's `TransactionStateManager`).
    async fn write_txn(
        &self,
        id: &str,
        partition: i32,
        coordinator_epoch: i32,
        meta: &TxnMetadata,
    ) -> Result<(), Code> {
        let not_coordinator = code(ResponseError::NotCoordinator);
        let unavailable = code(ResponseError::CoordinatorNotAvailable);
        let p = self
            .replicas
            .get(TXN_TOPIC, partition)
            .ok_or(not_coordinator)?;
        let now = crate::metadata_store::now_ms();
        let mut batch = strom_proto::BatchBuilder::new(now);
        batch.push(
            Some(&txn_log::encode_key(id)),
            Some(&txn_log::encode_value(meta)),
            now,
        );
        let mut bytes = batch.build();
        let appended = p
            .append_as_leader(&mut bytes)
            .map_err(|(c, _)| map_append_error(c))?;
        if appended.leader_epoch != coordinator_epoch {
            return Err(not_coordinator);
        }
        match p
            .wait_at(
                Wait::HighWatermark,
                appended.last_offset,
                appended.leader_epoch,
            )
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(c)) => Err(map_append_error(c)),
            Err(_) => Err(unavailable),
        }
    }

    /// On the reconciler: loads the transactional ids of the `__transaction_state`
    /// partitions this broker now leads, unloads those of partitions it stopped leading,
    /// and writes again the markers of transactions a load finds prepared.
    pub(crate) fn reconcile_txns(
        self: &Arc<Self>,
        image: &MetadataImage,
    ) -> Result<(), BrokerError> {
        let topic = image.topics.get(TXN_TOPIC);
        let count = topic.map_or(0, |t| t.partitions.len() as i32);
        let led: BTreeMap<i32, i32> = topic
            .iter()
            .flat_map(|t| &t.partitions)
            .filter(|(_, p)| p.leader == self.node_id)
            .map(|(i, p)| (*i, p.leader_epoch))
            .collect();
        for (p, epoch) in self.txns.loaded.get() {
            if led.get(&p) == Some(&epoch) {
                continue;
            }
            self.txns.loaded.set(p, None);
            self.txns
                .lock()
                .retain(|id, _| partition_for(id, count) != p);
            tracing::info!(
                partition = p,
                "transactional ids unloaded: no longer the coordinator in this epoch"
            );
        }
        let loaded = self.txns.loaded.get();
        for (p, epoch) in led.iter().filter(|(p, _)| !loaded.contains_key(p)) {
            let Some(partition) = self.replicas.get(TXN_TOPIC, *p) else {
                continue;
            };
            let ids = load_txns(&partition)?;
            {
                let mut txns = self.txns.lock();
                for (id, meta) in ids {
                    txns.insert(
                        id,
                        Entry {
                            meta,
                            pending: false,
                        },
                    );
                }
            }
            self.txns.loaded.set(*p, Some(*epoch));
            let picks = |id: &str| partition_for(id, count) == *p;
            for (id, meta) in self.txns.prepared_in(&picks) {
                self.send_markers(id, meta, *epoch);
            }
        }
        Ok(())
    }
}

/// Kafka's mapping of a failed `__transaction_state` append to the coordinator's answer.
fn map_append_error(c: Code) -> Code {
    use ResponseError::*;
    let is = |e: ResponseError| c == code(e);
    if is(UnknownTopicOrPartition)
        || is(NotEnoughReplicas)
        || is(NotEnoughReplicasAfterAppend)
        || is(RequestTimedOut)
    {
        code(CoordinatorNotAvailable)
    } else if is(NotLeaderOrFollower) || is(KafkaStorageError) {
        code(NotCoordinator)
    } else if is(MessageTooLarge) || is(RecordListTooLarge) {
        code(UnknownServerError)
    } else {
        c
    }
}

/// Replays one `__transaction_state` partition: the last record of each id (a tombstone
/// removes it). Unreadable records are skipped with a warning, as Kafka skips unknown
/// key versions.
fn load_txns(p: &Partition) -> Result<HashMap<String, TxnMetadata>, BrokerError> {
    let mut ids = HashMap::new();
    let mut offset = p.log_start_offset();
    while offset < p.log_end_offset() {
        let Some(slice) = p.read(offset, 1 << 20, Isolation::LogEnd)?.slice else {
            break;
        };
        let bytes = slice.read_to_vec()?;
        let batches =
            strom_proto::batch::split(&bytes).map_err(|e| BrokerError::Metadata(e.to_string()))?;
        for (h, b) in batches {
            offset = h.next_offset();
            if h.is_control() {
                continue;
            }
            let Ok(records) = strom_proto::records::decode(b) else {
                continue;
            };
            for r in records {
                let Some(key) = r.key else { continue };
                let id = match txn_log::decode_key(key) {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::warn!(partition = p.index, offset = r.offset, error = %e.0, "unreadable transaction record skipped");
                        continue;
                    }
                };
                match r.value.map(txn_log::decode_value) {
                    None => {
                        ids.remove(&id);
                    }
                    Some(Ok(meta)) => {
                        ids.insert(id, meta);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(partition = p.index, offset = r.offset, error = %e.0, "unreadable transaction state skipped");
                    }
                }
            }
        }
    }
    tracing::debug!(
        partition = p.index,
        ids = ids.len(),
        "transactional ids loaded"
    );
    Ok(ids)
}
