//! `QuorumLog`: the metadata log on openraft (`strom-raft`). A single node is a one-voter
//! quorum; a static quorum (`controller.quorum.voters`) has 3 or 5. Entry payloads are the
//! JSON array of a batch's records; the state machine hands them to the `Applier`, and its
//! snapshots are the image (`ImageState`). A node that is not the leader forwards its
//! proposals to the leader with the offset its decision was based on; the leader commits them
//! only if that is still its newest image (else the proposer decides again).

use super::{Applier, BoxFuture, MetadataLog, ProposeError};
use crate::config::quorum::QuorumConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strom_meta::{MetadataImage, MetadataRecord};
use strom_raft::types::Raft;
use strom_raft::wire::{Rpc, RpcCall, RpcReply};
use strom_raft::{Payload, QuorumNode, TcpNetwork};

mod members;
pub use members::Refusal;

/// How long a proposal waits for a leader before it fails.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// A call to another node.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The broker's calls between quorum nodes (inside `RpcCall::App`).
#[derive(Debug, Serialize, Deserialize)]
pub enum AppCall {
    /// Commit `records` if your newest image is at `based_on`.
    Propose {
        records: Vec<MetadataRecord>,
        based_on: i64,
    },
    /// Is your quorum storage empty, and is the quorum initialized?
    Status,
    /// The quorum as the leader sees it (DescribeQuorum).
    Describe,
    /// The leader's applied offset once everything committed is applied there (a read
    /// barrier: the caller waits until it has applied as much).
    ReadIndex,
    /// Broker `node_id` lives (sent to the leader every `broker.heartbeat.interval.ms`).
    Heartbeat { node_id: i32 },
    /// Broker `node_id` shuts down: fence it now (controlled shutdown).
    ShutDown { node_id: i32 },
    /// Voter `node_id` runs on directory `directory_id`, which the membership does not
    /// record for it (its disk was wiped): make it a voter again once it caught up.
    Rejoin { node_id: i32, directory_id: String },
    /// Node `node_id` follows the log, reached at `node` (its endpoint and directory): add
    /// it as an observer (a learner), or record where it is reached now.
    Join { node_id: i32, node: QuorumNode },
    /// AddRaftVoter (KIP-853): make observer `node_id` on `directory_id` a voter, reached at
    /// `endpoint` if given, once it has caught up.
    AddVoter {
        node_id: i32,
        directory_id: String,
        endpoint: Option<(String, u16)>,
    },
    /// RemoveRaftVoter: voter `node_id` on `directory_id` stops voting.
    RemoveVoter { node_id: i32, directory_id: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AppReply {
    Committed {
        end: i64,
    },
    Stale {
        at: i64,
    },
    NotLeader,
    Failed(String),
    Status {
        pristine: bool,
        initialized: bool,
        #[serde(default)]
        directory_id: String,
        #[serde(default)]
        leader: Option<u64>,
        /// The node that answered.
        #[serde(default)]
        node_id: Option<u64>,
        /// Where the leader is reached, if this node knows.
        #[serde(default)]
        leader_node: Option<QuorumNode>,
    },
    Quorum(QuorumView),
    ReadIndex {
        at: i64,
    },
    Done,
    /// A voter change refused, with Kafka's error code.
    Refused {
        code: i16,
        message: String,
    },
}

/// The quorum as its leader sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuorumView {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<Replica>,
    /// Nodes that follow the log without voting (learners: brokers, controllers not yet
    /// voters).
    pub observers: Vec<Replica>,
}

/// A node of the quorum as the leader knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replica {
    pub node_id: i32,
    /// Its metadata log directory id (empty: not known).
    pub directory_id: String,
    /// Its log end offset as the leader knows it.
    pub log_end_offset: i64,
    /// Where it is reached (a voter's controller listener).
    pub host: String,
    pub port: u16,
}

/// The state machine's application state: the image with the offset it holds.
#[derive(Debug)]
pub struct ImageState {
    applier: Arc<Applier>,
    /// Record bytes applied since the last snapshot (Kafka's
    /// `metadata.log.max.record.bytes.between.snapshots` counts these).
    since_snapshot: Arc<AtomicU64>,
}

/// A snapshot's application state: the image (its own JSON document, embedded as it is)
/// and the metadata offset it holds everything before.
#[derive(Deserialize)]
struct StoredImage<'a> {
    offset: i64,
    #[serde(borrow)]
    image: &'a serde_json::value::RawValue,
}

impl strom_raft::Applier for ImageState {
    fn apply(&mut self, index: u64, payload: &[u8]) -> Result<(), String> {
        self.since_snapshot
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let records: Vec<MetadataRecord> =
            serde_json::from_slice(payload).map_err(|e| format!("entry {index}: {e}"))?;
        self.applier
            .apply(&records, index as i64 + 1)
            .map_err(|e| format!("entry {index}: {e}"))
    }

    fn skip(&mut self, index: u64) {
        self.applier.advance(index as i64 + 1);
    }

    fn snapshot(&self) -> Vec<u8> {
        self.since_snapshot.store(0, Ordering::Relaxed);
        let p = self.applier.published();
        let mut out = format!("{{\"offset\":{},\"image\":", p.offset).into_bytes();
        out.extend_from_slice(&p.image.to_snapshot());
        out.push(b'}');
        out
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let s: StoredImage = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        let image =
            MetadataImage::from_snapshot(s.image.get().as_bytes()).map_err(|e| e.to_string())?;
        self.applier.load(image, s.offset);
        Ok(())
    }
}

impl ImageState {
    pub fn new(applier: Arc<Applier>) -> ImageState {
        ImageState {
            applier,
            since_snapshot: Arc::default(),
        }
    }

    /// The count of record bytes applied since the last snapshot.
    pub fn since_snapshot(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.since_snapshot)
    }
}

/// When the image is snapshotted (and the log before it purged), Kafka's keys:
/// `metadata.log.max.record.bytes.between.snapshots` (20 MiB) and
/// `metadata.log.max.snapshot.interval.ms` (an hour; 0: never by time).
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPolicy {
    pub max_bytes: u64,
    pub max_interval: Duration,
}

pub struct QuorumLog {
    node_id: u64,
    raft: Raft,
    /// Connections for the broker's calls, apart from openraft's so that a long forwarded
    /// proposal never holds up a vote or a heartbeat.
    calls: TcpNetwork,
    applier: Arc<Applier>,
    voters: BTreeMap<u64, QuorumNode>,
    /// A dynamic quorum's contact points (KIP-853's bootstrap servers).
    bootstrap: Vec<QuorumNode>,
    /// The storage was empty when opened: this node may take part in initializing.
    pristine: bool,
    /// This node's metadata log directory id (KIP-853).
    directory_id: String,
    /// One membership change at a time.
    changing: Arc<tokio::sync::Mutex<()>>,
    /// The last leader this node heard from (an AppendEntries), and when.
    leader_heard: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
}

/// The directory id `raft`'s membership records for node `id` (None: not a member).
fn member_directory(raft: &Raft, id: u64) -> Option<String> {
    let m = raft.metrics().borrow().membership_config.clone();
    m.membership().get_node(&id).map(|n| n.directory_id.clone())
}

impl std::fmt::Debug for QuorumLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumLog")
            .field("node_id", &self.node_id)
            .field("voters", &self.voters)
            .field("pristine", &self.pristine)
            .field("directory_id", &self.directory_id)
            .finish_non_exhaustive()
    }
}

/// The configured voters as openraft names them: the static voters, a single node alone,
/// none for a dynamic quorum (its voters are in the log).
pub fn voters_of(node_id: i32, quorum: &QuorumConfig) -> BTreeMap<u64, QuorumNode> {
    if quorum.is_single_node() {
        return BTreeMap::from([(node_id as u64, QuorumNode::default())]);
    }
    quorum
        .voters
        .iter()
        .map(|v| (v.id as u64, QuorumNode::new(v.host.clone(), v.port)))
        .collect()
}

impl QuorumLog {
    pub fn new(
        node_id: i32,
        raft: Raft,
        applier: Arc<Applier>,
        voters: BTreeMap<u64, QuorumNode>,
        pristine: bool,
        directory_id: String,
    ) -> QuorumLog {
        QuorumLog {
            node_id: node_id as u64,
            raft,
            calls: TcpNetwork::default(),
            applier,
            voters,
            bootstrap: Vec::new(),
            pristine,
            directory_id,
            changing: Arc::new(tokio::sync::Mutex::new(())),
            leader_heard: std::sync::Mutex::new(None),
        }
    }

    /// A dynamic quorum's bootstrap servers.
    pub fn with_bootstrap(mut self, servers: &[(String, u16)]) -> QuorumLog {
        self.bootstrap = servers
            .iter()
            .map(|(h, p)| QuorumNode::new(h.clone(), *p))
            .collect();
        self
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn directory_id(&self) -> &str {
        &self.directory_id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The leader, as far as this node knows. Not this node once it stopped being a voter
    /// (removed, it keeps its committed vote while nobody talks to it).
    fn leader(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader?;
        let voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == leader);
        (leader != self.node_id || voter).then_some(leader)
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// On the leader: once everything committed is applied here, the applied offset.
    pub async fn read_index(&self) -> Option<i64> {
        let read = self.raft.ensure_linearizable().await.ok()?;
        if let Some(log_id) = read {
            self.applier.wait_applied(log_id.index as i64 + 1).await;
        }
        Some(self.applier.published().offset)
    }

    /// The applied offset a read barrier must reach: the leader's (asked of it by others).
    async fn barrier_offset(&self, deadline: tokio::time::Instant) -> Option<i64> {
        match self.leader()? {
            id if id == self.node_id => tokio::time::timeout_at(deadline, self.read_index())
                .await
                .ok()
                .flatten(),
            id => match self.call(id, &AppCall::ReadIndex).await {
                Ok(AppReply::ReadIndex { at }) => Some(at),
                _ => None,
            },
        }
    }

    pub(crate) fn is_initialized(&self) -> bool {
        let m = self.raft.metrics();
        let initialized = m
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some();
        initialized
    }

    /// The leader's node id, if one is known.
    pub fn leader_id(&self) -> Option<u64> {
        self.leader()
    }

    /// Answers one of openraft's calls, noting when a leader's AppendEntries came.
    pub async fn answer(&self, call: strom_raft::wire::RaftCall) -> strom_raft::wire::RaftReply {
        if let strom_raft::wire::RaftCall::AppendEntries(r) = &call {
            if let Some(leader) = r.vote.leader_id().voted_for() {
                *self
                    .leader_heard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((leader, std::time::Instant::now()));
            }
        }
        strom_raft::wire::answer(&self.raft, call).await
    }

    /// The last other leader this node heard from, and when: a new leader starts that
    /// node's broker session from then, not from its own election.
    pub fn leader_heard(&self) -> Option<(u64, std::time::Instant)> {
        let heard = *self
            .leader_heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        heard.filter(|(id, _)| *id != self.node_id)
    }

    /// The current Raft term (a new leadership has a new one).
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Where node `id` is reached: a static voter as configured here (each node's own
    /// routes), any other node as the membership records it.
    fn node(&self, id: u64) -> Option<QuorumNode> {
        if let Some(n) = self.voters.get(&id) {
            return Some(n.clone());
        }
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership().get_node(&id).cloned()
    }

    /// Every voter with where it is reached (a single node's own voter has no endpoint and
    /// is left out).
    pub fn voter_endpoints(&self) -> Vec<(i32, String, u16)> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership()
            .voter_ids()
            .filter_map(|id| self.node(id).map(|n| (id as i32, n.host, n.port)))
            .filter(|(_, _, port)| *port != 0)
            .collect()
    }

    /// Calls node `id` with a broker call.
    pub async fn call(&self, id: u64, call: &AppCall) -> Result<AppReply, String> {
        let node = self
            .node(id)
            .ok_or_else(|| format!("node {id} is not in the quorum"))?;
        self.call_at(id, &node, call).await
    }

    /// Calls node `id` (`ANY_NODE`: whichever listens there) at `node`.
    pub(crate) async fn call_at(
        &self,
        id: u64,
        node: &QuorumNode,
        call: &AppCall,
    ) -> Result<AppReply, String> {
        call_on(&self.calls.client(node), id, node, call, CALL_TIMEOUT).await
    }

    /// A call that may take long (a voter change waits for a node to catch up), on a
    /// connection of its own: heartbeats and proposals to that node are not held behind it.
    pub(crate) async fn call_long(
        &self,
        id: u64,
        node: &QuorumNode,
        call: &AppCall,
        timeout: Duration,
    ) -> Result<AppReply, String> {
        let own = strom_raft::network::PeerClient::new(node.to_string());
        call_on(&own, id, node, call, timeout).await
    }
}

async fn call_on(
    client: &strom_raft::network::PeerClient,
    id: u64,
    node: &QuorumNode,
    call: &AppCall,
    timeout: Duration,
) -> Result<AppReply, String> {
    let rpc = Rpc {
        to: id,
        to_dir: None,
        call: RpcCall::App(serde_json::to_value(call).map_err(|e| e.to_string())?),
    };
    match client.call(&rpc, timeout).await {
        Ok(RpcReply::App(v)) => serde_json::from_value(v).map_err(|e| e.to_string()),
        Ok(RpcReply::Refused(why)) => Err(why),
        Ok(RpcReply::Raft(_)) => Err("a raft reply to a broker call".into()),
        Err(e) => Err(format!("node {id} at {node}: {e}")),
    }
}

impl QuorumLog {
    /// The quorum as this node sees it, if it leads.
    pub fn describe(&self) -> Option<QuorumView> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.node_id) {
            return None;
        }
        let end = m.last_log_index.map_or(0, |i| i as i64 + 1);
        let replication = m.replication.clone().unwrap_or_default();
        let membership = m.membership_config.membership();
        let replica = |id: u64| {
            let log_end_offset = if id == self.node_id {
                end
            } else {
                replication
                    .get(&id)
                    .and_then(|l| l.as_ref())
                    .map_or(0, |l| l.index as i64 + 1)
            };
            let node = membership.get_node(&id).cloned().unwrap_or_default();
            Replica {
                node_id: id as i32,
                directory_id: node.directory_id,
                log_end_offset,
                host: node.host,
                port: node.port,
            }
        };
        Some(QuorumView {
            leader_id: self.node_id as i32,
            leader_epoch: m.current_term as i32,
            high_watermark: m.last_applied.map_or(0, |l| l.index as i64 + 1),
            voters: membership.voter_ids().map(replica).collect(),
            observers: membership.learner_ids().map(replica).collect(),
        })
    }

    /// DescribeQuorum from any node: this one's view if it leads, else the leader's.
    pub async fn describe_anywhere(&self) -> Option<QuorumView> {
        if let Some(v) = self.describe() {
            return Some(v);
        }
        let leader = self.leader()?;
        match self.call(leader, &AppCall::Describe).await {
            Ok(AppReply::Quorum(v)) => Some(v),
            _ => None,
        }
    }

    /// Commits on this node as the leader, after checking the decision's base is current.
    async fn propose_as_leader(
        &self,
        records: &[MetadataRecord],
        based_on: i64,
    ) -> Result<Option<i64>, ProposeError> {
        // Everything committed before this leadership is applied first, so the check below
        // compares with the newest image.
        if let Ok(read) = self.raft.ensure_linearizable().await {
            if let Some(log_id) = read {
                self.applier.wait_applied(log_id.index as i64 + 1).await;
            }
        } else {
            return Ok(None);
        }
        let at = self.applier.published().offset;
        if at != based_on {
            return Err(ProposeError::Stale(at));
        }
        let payload =
            serde_json::to_vec(records).map_err(|e| ProposeError::Failed(e.to_string()))?;
        match self.raft.client_write(Payload(payload)).await {
            Ok(r) => {
                let end = r.log_id.index as i64 + 1;
                self.applier.wait_applied(end).await;
                Ok(Some(end))
            }
            Err(e) => {
                tracing::debug!(error = %e, "proposal not committed here");
                Ok(None)
            }
        }
    }

    /// A forwarded proposal: committed here if this node leads (None if it does not).
    pub async fn propose_here(
        &self,
        records: Vec<MetadataRecord>,
        based_on: i64,
    ) -> Result<Option<i64>, ProposeError> {
        if self.leader() != Some(self.node_id) {
            return Ok(None);
        }
        self.propose_as_leader(&records, based_on).await
    }

    /// Sends a proposal to the leader. None: try again.
    async fn forward(
        &self,
        leader: u64,
        records: &[MetadataRecord],
        based_on: i64,
    ) -> Result<Option<i64>, ProposeError> {
        let call = AppCall::Propose {
            records: records.to_vec(),
            based_on,
        };
        match self.call(leader, &call).await {
            Ok(AppReply::Committed { end }) => {
                self.applier.wait_applied(end).await;
                Ok(Some(end))
            }
            Ok(AppReply::Stale { at }) => Err(ProposeError::Stale(at)),
            Ok(AppReply::Failed(e)) => Err(ProposeError::Failed(e)),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::debug!(leader, error = %e, "forwarding a proposal failed");
                Ok(None)
            }
        }
    }
}

impl QuorumLog {
    /// Snapshots the image once `policy` says so, until dropped: after as many record
    /// bytes, or after its interval with anything new. `since` is the state machine's count.
    pub async fn snapshot_when_due(&self, policy: SnapshotPolicy, since: Arc<AtomicU64>) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let bytes = since.load(Ordering::Relaxed);
            let timed = !policy.max_interval.is_zero() && last.elapsed() >= policy.max_interval;
            if bytes >= policy.max_bytes || (timed && bytes > 0) {
                tracing::debug!(bytes, "snapshotting the metadata image");
                since.store(0, Ordering::Relaxed);
                last = tokio::time::Instant::now();
                let _ = self.raft.trigger().snapshot().await;
            }
        }
    }
}

impl MetadataLog for QuorumLog {
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
        based_on: i64,
    ) -> BoxFuture<'_, Result<i64, ProposeError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
            while tokio::time::Instant::now() < deadline {
                let attempt = async {
                    match self.leader() {
                        Some(id) if id == self.node_id => {
                            self.propose_as_leader(&records, based_on).await
                        }
                        Some(id) => self.forward(id, &records, based_on).await,
                        None => Ok(None),
                    }
                };
                let done = match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(r) => r?,
                    Err(_) => break,
                };
                if let Some(end) = done {
                    return Ok(end);
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(ProposeError::NoQuorum)
        })
    }

    fn committed_end(&self) -> i64 {
        self.applier.published().offset
    }

    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
            while tokio::time::Instant::now() < deadline {
                if let Some(at) = self.barrier_offset(deadline).await {
                    return tokio::time::timeout_at(deadline, self.applier.wait_applied(at))
                        .await
                        .map(|_| ())
                        .map_err(|_| ProposeError::NoQuorum);
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(ProposeError::NoQuorum)
        })
    }

    fn as_quorum(&self) -> Option<&QuorumLog> {
        Some(self)
    }
}
