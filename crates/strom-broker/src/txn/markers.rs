//! Ending a transaction in its partitions: once a prepared commit or abort is durable in
//! `__transaction_state`, the coordinator writes its marker to every partition of the
//! transaction (Kafka's `TransactionMarkerChannelManager`): through WriteTxnMarkers to each
//! partition's leader, or directly where this broker leads; retried until every partition
//! answers (a deleted partition is dropped), then the transaction completes. A marker the
//! partition refuses as fenced (a newer producer epoch or coordinator wrote there) is not
//! retried. The timeout scan (`abort_timed_out`) aborts open transactions that ran past
//! their `transaction.timeout.ms`, fencing their producer.

use super::state::{Outcome, TxnMetadata, TxnState};
use crate::broker::Broker;
use crate::error::{self, Code};
use crate::group::offsets::{partition_for, OFFSETS_TOPIC};
use crate::partition::Wait;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use strom_client::conn::Connection;
use strom_proto::control::EndTxnMarker;
use tokio::sync::watch;

/// How long one round of markers waits for a partition's high watermark.
const MARKER_WAIT: Duration = Duration::from_secs(30);
/// The longest pause between rounds of markers still to be written.
const MARKER_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One partition of a transaction: (topic, partition).
type Tp = (String, i32);

/// Connections to the other brokers, one each, made when first needed.
#[derive(Default)]
pub struct Peers(tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>);

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Peers")
    }
}

/// The marker one request writes: producer, epoch, outcome, coordinator epoch.
#[derive(Debug, Clone, Copy)]
pub struct MarkerSpec {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

fn code(e: ResponseError) -> Code {
    error::code(e)
}

impl Broker {
    /// Starts writing the markers of a prepared transaction (then completing it).
    pub(crate) fn send_markers(
        self: &Arc<Self>,
        id: String,
        prepared: TxnMetadata,
        coordinator_epoch: i32,
    ) {
        let Some(rt) = self.txns.runtime.get() else {
            return;
        };
        let b = Arc::clone(self);
        rt.spawn(async move { b.complete_txn(id, prepared, coordinator_epoch).await });
    }

    async fn complete_txn(
        self: Arc<Self>,
        id: String,
        prepared: TxnMetadata,
        coordinator_epoch: i32,
    ) {
        let spec = MarkerSpec {
            producer_id: prepared.producer_id,
            producer_epoch: prepared.producer_epoch,
            commit: prepared.state == TxnState::PrepareCommit,
            coordinator_epoch,
        };
        let mut left: BTreeSet<Tp> = prepared.partitions.clone();
        let mut backoff = Duration::from_millis(20);
        while !left.is_empty() {
            // A new coordinator (or this one in a later epoch) writes them instead.
            if self.check_txn_coordinator(&id).map(|(_, e)| e) != Ok(coordinator_epoch) {
                return;
            }
            for (tp, c) in self.marker_round(spec, &left).await {
                if marker_done(c) {
                    left.remove(&tp);
                }
            }
            if !left.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MARKER_BACKOFF_MAX);
            }
        }
        loop {
            let now = crate::metadata_store::now_ms();
            let completed = self
                .txn_transition(&id, |m, _| match m {
                    Some(m) if same_prepared(m, &prepared) => Ok(Outcome::Write(m.complete(now))),
                    _ => Ok(Outcome::Done),
                })
                .await;
            match completed {
                Err(c)
                    if c == code(ResponseError::CoordinatorNotAvailable)
                        || c == super::state::CONCURRENT_TRANSACTIONS =>
                {
                    tokio::time::sleep(backoff).await;
                }
                Err(c) => {
                    tracing::debug!(transactional_id = %id, code = c, "transaction not completed here");
                    return;
                }
                Ok(_) => return,
            }
        }
    }

    /// One attempt at every partition left: each with its answer (a partition whose
    /// topic is gone answers at once; one without a leader is left for the next round).
    async fn marker_round(
        self: &Arc<Self>,
        spec: MarkerSpec,
        left: &BTreeSet<Tp>,
    ) -> Vec<(Tp, Code)> {
        let image = self.meta.image();
        let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
        let mut out = Vec::new();
        for tp in left {
            match image
                .topics
                .get(&tp.0)
                .and_then(|t| t.partitions.get(&tp.1))
            {
                None => out.push((tp.clone(), 0)),
                Some(p) if p.leader < 0 => {}
                Some(p) => by_leader.entry(p.leader).or_default().push(tp.clone()),
            }
        }
        for (leader, tps) in by_leader {
            let answers = if leader == self.node_id {
                self.write_markers_here(spec, &tps).await
            } else {
                self.write_markers_at(leader, spec, &tps).await
            };
            out.extend(answers);
        }
        out
    }

    /// WriteTxnMarkers to another broker; a failed call answers every partition retriably.
    async fn write_markers_at(&self, leader: i32, spec: MarkerSpec, tps: &[Tp]) -> Vec<(Tp, Code)> {
        let failed = |c: Code| tps.iter().map(|tp| (tp.clone(), c)).collect::<Vec<_>>();
        let Some(conn) = self.txn_peer(leader).await else {
            return failed(code(ResponseError::NetworkException));
        };
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in tps {
            topics.entry(t).or_default().push(*p);
        }
        let mut m = WritableTxnMarker::default();
        m.producer_id = ProducerId(spec.producer_id);
        m.producer_epoch = spec.producer_epoch;
        m.transaction_result = spec.commit;
        m.coordinator_epoch = spec.coordinator_epoch;
        m.topics = topics
            .into_iter()
            .map(|(t, ps)| {
                let mut wt = WritableTxnMarkerTopic::default();
                wt.name = TopicName(StrBytes::from_string(t.to_string()));
                wt.partition_indexes = ps;
                wt
            })
            .collect();
        let mut req = WriteTxnMarkersRequest::default();
        req.markers = vec![m];
        let response = match conn.call(&req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(leader, error = %e, "WriteTxnMarkers failed; retried");
                self.drop_txn_peer(leader).await;
                return failed(code(ResponseError::NetworkException));
            }
        };
        response
            .markers
            .into_iter()
            .flat_map(|m| m.topics)
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |p| ((name.clone(), p.partition_index), p.error_code))
            })
            .collect()
    }

    /// A connection to broker `id` (made once, again after it failed).
    pub(crate) async fn txn_peer(&self, id: i32) -> Option<Arc<Connection>> {
        let mut peers = self.txns.peers.0.lock().await;
        if let Some(c) = peers.get(&id).filter(|c| !c.is_dead()) {
            return Some(Arc::clone(c));
        }
        let b = self.meta.image().brokers.get(&id)?.clone();
        let addr = format!("{}:{}", b.host, b.port);
        let client_id = format!("strom-txn-markers-{}", self.node_id);
        let conn = Connection::connect(&addr, &client_id, MARKER_WAIT)
            .await
            .ok()?;
        let conn = Arc::new(conn);
        peers.insert(id, Arc::clone(&conn));
        Some(conn)
    }

    pub(crate) async fn drop_txn_peer(&self, id: i32) {
        self.txns.peers.0.lock().await.remove(&id);
    }

    /// Writes a marker to each partition this broker leads (WriteTxnMarkers, or the
    /// coordinator itself), answered once below its high watermark. A marker ending
    /// offsets in `__consumer_offsets` applies or drops them in the group coordinator.
    pub async fn write_markers_here(&self, spec: MarkerSpec, tps: &[Tp]) -> Vec<(Tp, Code)> {
        let marker = EndTxnMarker {
            commit: spec.commit,
            coordinator_epoch: spec.coordinator_epoch,
        };
        let mut waits = Vec::new();
        let mut out = Vec::new();
        for tp in tps {
            let Some(p) = self.replicas.get(&tp.0, tp.1) else {
                out.push((tp.clone(), code(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            match p.append_marker(spec.producer_id, spec.producer_epoch, marker) {
                Ok(a) => waits.push((
                    tp.clone(),
                    p.wait_at(Wait::HighWatermark, a.last_offset, a.leader_epoch),
                )),
                Err(c) => out.push((tp.clone(), c)),
            }
        }
        for (tp, wait) in waits {
            let c = match tokio::time::timeout(MARKER_WAIT, wait).await {
                Ok(Ok(Ok(_))) => 0,
                Ok(Ok(Err(c))) => c,
                Ok(Err(_)) => code(ResponseError::NotLeaderOrFollower),
                Err(_) => code(ResponseError::RequestTimedOut),
            };
            if c == 0 && tp.0 == OFFSETS_TOPIC {
                let count = self
                    .meta
                    .image()
                    .topics
                    .get(OFFSETS_TOPIC)
                    .map_or(0, |t| t.partitions.len() as i32);
                self.offsets.complete(spec.producer_id, spec.commit, &|g| {
                    partition_for(g, count) == tp.1
                });
            }
            out.push((tp, c));
        }
        out
    }
}

/// Whether a partition's answer to a marker ends the attempts there: written, or refused
/// for good (Kafka's `TransactionMarkerRequestCompletionHandler`).
fn marker_done(c: Code) -> bool {
    use ResponseError::*;
    c == 0
        || [
            InvalidProducerEpoch,
            TransactionCoordinatorFenced,
            UnsupportedForMessageFormat,
            UnsupportedVersion,
        ]
        .iter()
        .any(|e| c == code(*e))
}

/// Whether `m` is still the prepared transaction whose markers were written.
fn same_prepared(m: &TxnMetadata, prepared: &TxnMetadata) -> bool {
    m.state == prepared.state
        && m.producer_id == prepared.producer_id
        && m.producer_epoch == prepared.producer_epoch
}

/// Every `transaction.abort.timed.out.transaction.cleanup.interval.ms`, aborts the open
/// transactions this broker coordinates that ran past their timeout (their producer is
/// fenced: the abort bumps the epoch).
pub(crate) async fn abort_timed_out(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval = broker.config.txn.abort_scan_interval_ms.max(1) as u64;
    let mut every = tokio::time::interval(Duration::from_millis(interval));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = crate::metadata_store::now_ms();
        for (id, seen) in broker.txns.timed_out(now) {
            let aborted = broker
                .txn_transition(&id, |m, new_pid| match m {
                    Some(m)
                        if m.producer_id == seen.producer_id
                            && m.producer_epoch == seen.producer_epoch
                            && m.timed_out(now) =>
                    {
                        Ok(Outcome::Write(m.fence(&mut *new_pid, now)))
                    }
                    _ => Ok(Outcome::Done),
                })
                .await;
            match aborted {
                Ok(d) if d.wrote => {
                    tracing::info!(transactional_id = %id, "transaction timed out: aborted")
                }
                _ => {}
            }
        }
    }
}
