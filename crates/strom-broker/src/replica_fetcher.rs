//! Followers fetch from their leaders (Kafka's `ReplicaFetcherThread`): one task per leader
//! broker this broker follows, over a strom-client connection to the leader's advertised
//! listener. Each round is one Fetch naming this broker (`ReplicaState`) with every
//! partition it follows from that leader, at its log end and last fetched epoch. Batches
//! come back as the leader stored them and are appended unchanged at their offsets; the
//! follower fsyncs them before it fetches again, so the offset it reports next is durable
//! (the leader counts it towards the high watermark). A diverging epoch truncates the log
//! where the leader says; OFFSET_OUT_OF_RANGE asks the leader's log bounds (ListOffsets) and
//! truncates to its end, or empties the log and restarts at its start.
//!
//! `run` keeps the tasks in line with the partitions' roles after every reconcile.

use crate::broker::Broker;
use crate::partition::state::Role;
use crate::partition::{Partition, Wait};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strom_client::conn::Connection;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// The partitions one fetcher task fetches, with the leader epoch each follows.
type Followed = Vec<Arc<Partition>>;

/// What this broker's fetching cost, for the log line at shutdown (BENCHMARKS.md measures
/// the per-round fsync with it): rounds that appended, bytes appended, and the time those
/// rounds waited for their fsync before the next fetch.
#[derive(Debug, Default)]
pub struct FetchStats {
    rounds: AtomicU64,
    bytes: AtomicU64,
    sync_wait_us: AtomicU64,
}

impl FetchStats {
    fn log(&self) {
        let rounds = self.rounds.load(Ordering::Relaxed);
        if rounds == 0 {
            return;
        }
        let wait_ms = self.sync_wait_us.load(Ordering::Relaxed) as f64 / 1000.0;
        tracing::info!(
            rounds,
            bytes = self.bytes.load(Ordering::Relaxed),
            sync_wait_ms = wait_ms as u64,
            per_round_ms = format!("{:.2}", wait_ms / rounds as f64),
            "replica fetching: rounds that appended, and their wait for fsync"
        );
    }
}

/// Starts, feeds and stops the fetcher tasks as leadership moves.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut reconciled = broker.reconciled.subscribe();
    let mut fetchers: HashMap<i32, watch::Sender<Followed>> = HashMap::new();
    let mut seen = None;
    loop {
        // Rebuilt only when the replicated partitions, their roles or leader epochs changed
        // (or a fetcher task ended), not at every metadata change.
        let version = broker.replicas.follow_version();
        if seen == Some(version) && !fetchers.values().any(|tx| tx.is_closed()) {
            tokio::select! {
                r = reconciled.changed() => if r.is_err() { break },
                _ = shutdown.changed() => break,
            }
            continue;
        }
        seen = Some(version);
        let mut by_leader: BTreeMap<i32, Followed> = BTreeMap::new();
        for p in broker.replicas.replicated() {
            if let Role::Follower { leader } = p.role() {
                if leader >= 0 && leader != broker.node_id {
                    by_leader.entry(leader).or_default().push(p);
                }
            }
        }
        fetchers.retain(|leader, tx| by_leader.contains_key(leader) && !tx.is_closed());
        for (leader, parts) in by_leader {
            match fetchers.get(&leader) {
                Some(tx) => {
                    tx.send_replace(parts);
                }
                None => {
                    let (tx, rx) = watch::channel(parts);
                    tokio::spawn(fetch_from(
                        Arc::clone(&broker),
                        leader,
                        rx,
                        shutdown.clone(),
                    ));
                    fetchers.insert(leader, tx);
                }
            }
        }
        tokio::select! {
            r = reconciled.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    broker.replicas.fetch_stats.log();
}

/// One leader's fetcher: fetches until its partition set is dropped or the broker stops.
async fn fetch_from(
    broker: Arc<Broker>,
    leader: i32,
    mut parts: watch::Receiver<Followed>,
    mut shutdown: watch::Receiver<bool>,
) {
    let backoff = Duration::from_millis(broker.config.replica_fetch.backoff_ms.max(1) as u64);
    let mut conn: Option<Connection> = None;
    // Partitions that failed, left out of the fetches until their backoff passed (else one
    // partition's error answers every fetch at once and the rounds spin).
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    loop {
        if *shutdown.borrow() || parts.has_changed().is_err() {
            return;
        }
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let throttle = &broker.replicas.quotas.follower;
        let sent: Vec<(Arc<Partition>, i32)> = parts
            .borrow_and_update()
            .iter()
            .filter(|p| !delayed.contains_key(&(p.topic_id, p.index)))
            // A throttled moving replica waits while this broker's follower rate is used up.
            .filter(|p| !(p.follower_throttled(broker.node_id) && throttle.exceeded()))
            .filter_map(|p| match p.role() {
                Role::Follower { .. } => Some((Arc::clone(p), p.leader_epoch())),
                Role::Leader => None,
            })
            .collect();
        let outcome = match conn.as_ref().filter(|c| !c.is_dead()) {
            _ if sent.is_empty() => Ok(Vec::new()),
            Some(c) => fetch_round(&broker, c, &sent).await,
            None => match connect(&broker, leader).await {
                Ok(c) => {
                    conn = Some(c);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        let pause = match outcome {
            Ok(_) if sent.is_empty() => Some(
                delayed
                    .values()
                    .min()
                    .map_or(backoff, |t| t.saturating_duration_since(now)),
            ),
            Ok(failed) => {
                for p in failed {
                    delayed.insert((p.topic_id, p.index), Instant::now() + backoff);
                }
                None
            }
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                Some(backoff)
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = parts.changed() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn connect(broker: &Broker, leader: i32) -> Result<Connection, String> {
    let image = broker.meta.image();
    let b = image
        .brokers
        .get(&leader)
        .ok_or_else(|| format!("leader {leader} is not registered"))?;
    let addr = format!("{}:{}", b.host, b.port);
    let timeout =
        Duration::from_millis(broker.config.replica_fetch.socket_timeout_ms.max(1) as u64);
    let client_id = format!("strom-replica-fetcher-{}", broker.node_id);
    Connection::connect(&addr, &client_id, timeout)
        .await
        .map_err(|e| e.to_string())
}

/// One Fetch to the leader and its answer applied; then what was appended is made durable
/// before the next round. The partitions that failed (to be backed off).
async fn fetch_round(
    broker: &Broker,
    conn: &Connection,
    sent: &[(Arc<Partition>, i32)],
) -> Result<Vec<Arc<Partition>>, String> {
    let version = conn
        .version_of::<FetchRequest>()
        .map_err(|e| e.to_string())?;
    let (sent, mut failed) = durable_first(sent).await;
    if sent.is_empty() {
        return Ok(failed);
    }
    let req = fetch_request(broker, version, &sent);
    let wait = Duration::from_millis(
        (broker.config.replica_fetch.socket_timeout_ms.max(1) as u64)
            .max(broker.config.replica_fetch.wait_max_ms.max(0) as u64 + 1_000),
    );
    let resp: FetchResponse = tokio::time::timeout(wait, conn.call_at(&req, version))
        .await
        .map_err(|_| "fetch timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if resp.error_code != 0 {
        return Err(format!("fetch failed with error {}", resp.error_code));
    }
    let by_key: HashMap<(Uuid, String, i32), &PartitionData> = resp
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |pd| {
                (
                    (
                        t.topic_id,
                        t.topic.0.as_str().to_string(),
                        pd.partition_index,
                    ),
                    pd,
                )
            })
        })
        .collect();
    let mut durable = Vec::new();
    for (p, epoch) in &sent {
        let key = if version >= 13 {
            (p.topic_id, String::new(), p.index)
        } else {
            (Uuid::nil(), p.topic.to_string(), p.index)
        };
        let Some(pd) = by_key.get(&key) else { continue };
        let bytes = pd.records.as_ref().map_or(0, |r| r.len() as u64);
        broker
            .replicas
            .fetch_stats
            .bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if p.follower_throttled(broker.node_id) {
            broker.replicas.quotas.follower.record(bytes);
        }
        match apply_partition(broker, conn, p, *epoch, pd).await {
            Ok(Some(last)) => durable.push((Arc::clone(p), *epoch, last, pd.high_watermark)),
            Ok(None) => p.follow_high_watermark(*epoch, pd.high_watermark),
            Err(e) => {
                tracing::debug!(partition = %p.log_name(), error = %e, "replica fetch refused");
                failed.push(Arc::clone(p));
            }
        }
    }
    failed.extend(until_durable(&broker.replicas.fetch_stats, durable).await);
    Ok(failed)
}

/// Waits until what a round appended is durable before the next fetch reports it (Strom's
/// rule inside Kafka's protocol), then takes each partition's high watermark; the
/// partitions whose sync failed.
async fn until_durable(
    stats: &FetchStats,
    appended: Vec<(Arc<Partition>, i32, i64, i64)>,
) -> Vec<Arc<Partition>> {
    if appended.is_empty() {
        return Vec::new();
    }
    stats.rounds.fetch_add(1, Ordering::Relaxed);
    let waiting = std::time::Instant::now();
    let mut failed = Vec::new();
    for (p, epoch, last, hw) in appended {
        match p.wait_for(Wait::Local, last).await {
            Ok(Ok(_)) => p.follow_high_watermark(epoch, hw),
            _ => failed.push(p),
        }
    }
    let waited = waiting.elapsed().as_micros() as u64;
    stats.sync_wait_us.fetch_add(waited, Ordering::Relaxed);
    failed
}

/// The partitions whose whole log is durable, so that the fetch offset each reports (its
/// log end) is on disk: a log with an unsynced tail (after a restart, or appended as a
/// leader with acks=1) is synced first; one that cannot be is left out (and backed off).
async fn durable_first(
    sent: &[(Arc<Partition>, i32)],
) -> (Vec<(Arc<Partition>, i32)>, Vec<Arc<Partition>>) {
    let mut ready = Vec::new();
    let mut failed = Vec::new();
    for (p, epoch) in sent {
        let end = p.log_end_offset();
        let synced = p.log().durable_offset() >= end
            || matches!(p.wait_for(Wait::Local, end - 1).await, Ok(Ok(_)));
        if synced {
            ready.push((Arc::clone(p), *epoch));
        } else {
            failed.push(Arc::clone(p));
        }
    }
    (ready, failed)
}

fn fetch_request(broker: &Broker, version: i16, sent: &[(Arc<Partition>, i32)]) -> FetchRequest {
    let f = broker.config.replica_fetch;
    let mut req = FetchRequest::default();
    if version >= 15 {
        req.replica_state.replica_id = BrokerId(broker.node_id);
        req.replica_state.replica_epoch = broker.broker_epoch();
    } else {
        req.replica_id = BrokerId(broker.node_id);
    }
    req.max_wait_ms = f.wait_max_ms;
    req.min_bytes = f.min_bytes;
    req.max_bytes = f.response_max_bytes;
    req.session_id = 0;
    req.session_epoch = -1;
    for (p, epoch) in sent {
        let mut fp = FetchPartition::default();
        fp.partition = p.index;
        fp.current_leader_epoch = *epoch;
        fp.fetch_offset = p.log_end_offset();
        if version >= 12 {
            fp.last_fetched_epoch = p.latest_epoch();
        }
        fp.log_start_offset = p.log_start_offset();
        fp.partition_max_bytes = f.max_bytes;
        let same = |t: &&mut FetchTopic| {
            if version >= 13 {
                t.topic_id == p.topic_id
            } else {
                t.topic.0.as_str() == &*p.topic
            }
        };
        match req.topics.iter_mut().find(same) {
            Some(t) => t.partitions.push(fp),
            None => {
                let mut t = FetchTopic::default();
                if version >= 13 {
                    t.topic_id = p.topic_id;
                } else {
                    t.topic = TopicName(StrBytes::from_string(p.topic.to_string()));
                }
                t.partitions.push(fp);
                req.topics.push(t);
            }
        }
    }
    req
}

/// One partition's part of the answer. Ok(Some(last)): records appended up to `last`;
/// Ok(None): nothing appended (caught up, or truncated).
async fn apply_partition(
    broker: &Broker,
    conn: &Connection,
    p: &Arc<Partition>,
    epoch: i32,
    pd: &PartitionData,
) -> Result<Option<i64>, String> {
    if p.leader_epoch() != epoch || p.is_leader() {
        return Err("the partition moved on while the fetch was out".into());
    }
    match pd.error_code {
        0 => {}
        c if c == ResponseError::OffsetOutOfRange.code() => {
            // Nothing to cut: the leader cannot place this log; back off, do not spin.
            if !out_of_range(broker, conn, p, epoch).await? {
                return Err("out of range, and nothing to truncate".into());
            }
            return Ok(None);
        }
        c => return Err(format!("error {c}")),
    }
    if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
        let to = truncation_offset(p, pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset);
        tracing::info!(partition = %p.log_name(), to, "follower log diverged from the leader's; truncating");
        if !p.truncate_to(epoch, to).map_err(|e| e.to_string())? {
            return Err("the partition moved on before the truncation".into());
        }
        return Ok(None);
    }
    if pd.log_start_offset >= 0 {
        p.follow_log_start(pd.log_start_offset)
            .map_err(|e| e.to_string())?;
    }
    let records = pd.records.as_deref().unwrap_or_default();
    broker
        .metrics
        .replication_in_bytes
        .add(records.len() as u64);
    p.append_as_follower(epoch, records)
        .map_err(|(c, m)| format!("append failed ({c}): {m}"))
}

/// Where a follower cuts its log when the leader says its epoch `leader_epoch` ended at
/// `leader_end` (Kafka's `getOffsetTruncationState`): at the smaller of that and where the
/// same epoch ends here; if this log does not know that epoch, at the end of the largest
/// epoch below it (the next fetch resolves the rest).
fn truncation_offset(p: &Partition, leader_epoch: i32, leader_end: i64) -> i64 {
    let log_end = p.log_end_offset();
    if leader_epoch < 0 {
        return leader_end.min(log_end);
    }
    let (epoch, end) = p.end_offset_for_epoch(leader_epoch);
    if end < 0 {
        leader_end.min(log_end)
    } else if epoch != leader_epoch {
        end.min(log_end)
    } else {
        end.min(leader_end).min(log_end)
    }
}

/// OFFSET_OUT_OF_RANGE (Kafka's `fetchOffsetAndTruncate`): a log past the leader's end is
/// cut to it (the leader lost records it was never acknowledged for); a log that ends
/// before the leader's start is emptied and restarted there. Whether the log changed (a cut
/// refused because this replica's role moved on counts as none).
async fn out_of_range(
    broker: &Broker,
    conn: &Connection,
    p: &Partition,
    epoch: i32,
) -> Result<bool, String> {
    let leader_end = list_offset(broker, conn, p, epoch, -1).await?;
    let log_end = p.log_end_offset();
    if leader_end < log_end {
        tracing::warn!(partition = %p.log_name(), leader_end, log_end, "follower past its leader's log end; truncating");
        return p.truncate_to(epoch, leader_end).map_err(|e| e.to_string());
    }
    let leader_start = list_offset(broker, conn, p, epoch, -2).await?;
    if leader_start > log_end {
        tracing::info!(partition = %p.log_name(), leader_start, "follower behind its leader's log start; restarting there");
        return p
            .truncate_fully_and_start_at(epoch, leader_start)
            .map_err(|e| e.to_string());
    }
    Ok(false)
}

/// The leader's log end (-1) or start (-2), asked as a replica.
async fn list_offset(
    broker: &Broker,
    conn: &Connection,
    p: &Partition,
    epoch: i32,
    timestamp: i64,
) -> Result<i64, String> {
    let mut part = ListOffsetsPartition::default();
    part.partition_index = p.index;
    part.current_leader_epoch = epoch;
    part.timestamp = timestamp;
    let mut topic = ListOffsetsTopic::default();
    topic.name = TopicName(StrBytes::from_string(p.topic.to_string()));
    topic.partitions.push(part);
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(broker.node_id);
    req.topics.push(topic);
    let resp: ListOffsetsResponse = conn.call(&req).await.map_err(|e| e.to_string())?;
    let pr = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or("empty ListOffsets answer")?;
    if pr.error_code != 0 {
        return Err(format!("ListOffsets error {}", pr.error_code));
    }
    Ok(pr.offset)
}
