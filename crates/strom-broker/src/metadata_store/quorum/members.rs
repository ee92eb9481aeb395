//! The quorum's membership: forming it exactly once (a static quorum's lowest voter
//! initializes it once a majority of the voters are empty; a dynamic quorum's first
//! bootstrap server starts it alone, as Kafka's `--standalone`), observers (openraft
//! learners: broker-only nodes, controllers not yet voters) that follow the log, voters
//! added and removed while running (KIP-853's AddRaftVoter and RemoveRaftVoter), and a
//! static voter whose disk was wiped readmitted under its new directory.

use super::{member_directory, AppCall, AppReply, QuorumLog};
use crate::error::BrokerError;
use kafka_protocol::error::ResponseError;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use strom_raft::wire::ANY_NODE;
use strom_raft::QuorumNode;

/// How long a change waits for a node to catch up with the log before it gives up (and
/// lets the next change in).
const CATCH_UP_MAX: Duration = Duration::from_secs(60);

/// A refused voter change: Kafka's error code and a message.
pub type Refusal = (i16, String);

fn refusal(e: ResponseError, message: String) -> Refusal {
    (e.code(), message)
}

/// An openraft change that failed: NOT_CONTROLLER when leadership moved or another change
/// is still in progress (the caller asks the leader again), else UNKNOWN_SERVER_ERROR.
fn failed(e: RaftError<u64, ClientWriteError<u64, QuorumNode>>) -> Refusal {
    let again = e.forward_to_leader::<QuorumNode>().is_some()
        || matches!(
            &e,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_)
            ))
        );
    let code = if again {
        ResponseError::NotController
    } else {
        ResponseError::UnknownServerError
    };
    refusal(code, e.to_string())
}

impl QuorumLog {
    /// Takes this node's place in the quorum; `endpoint` is where the others reach it (a
    /// controller's controller listener, a broker-only node's client listener). Returns once
    /// the place is taken (an observer: once the membership it holds lists it).
    pub async fn take_part(
        &self,
        controller: bool,
        endpoint: QuorumNode,
    ) -> Result<(), BrokerError> {
        let endpoint = endpoint.with_directory(self.directory_id.clone());
        if !self.bootstrap.is_empty() {
            if !(controller && self.pristine && self.starts_alone(&endpoint).await) {
                self.observe(endpoint).await;
            }
        } else if controller {
            self.initialize().await?;
            // A voter whose disk was wiped is readmitted under its new directory.
            self.rejoin().await;
        } else {
            self.observe(endpoint).await;
        }
        // A lone voter that already holds the quorum elects itself at once instead of
        // waiting for its election timeout.
        let voters: Vec<u64> = {
            let m = self.raft.metrics().borrow().membership_config.clone();
            m.membership().voter_ids().collect()
        };
        if voters == [self.node_id] {
            let _ = self.raft.trigger().elect().await;
        }
        Ok(())
    }

    /// After `take_part`: a node the membership stops listing (a leader removed as a voter)
    /// follows the log again as an observer. Runs until dropped.
    pub async fn keep_place(&self, endpoint: QuorumNode) {
        let endpoint = endpoint.with_directory(self.directory_id.clone());
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if !self.is_initialized() {
                continue;
            }
            match member_directory(&self.raft, self.node_id).as_deref() {
                None => self.observe(endpoint.clone()).await,
                // A voter the quorum formed without hearing from: its directory is recorded
                // so that a later wipe of its disk is noticed.
                Some("") if !self.directory_id.is_empty() => self.ask_to_rejoin().await,
                Some(_) => {}
            }
        }
    }

    /// Initializes the quorum exactly once: a single node itself; in a static quorum the
    /// lowest voter id, once a majority of the voters (itself included) report empty
    /// storage and none reports an initialized quorum. The others wait to be told.
    async fn initialize(&self) -> Result<(), BrokerError> {
        let lowest = self.voters.keys().next().copied();
        if !self.pristine || lowest != Some(self.node_id) {
            return Ok(());
        }
        loop {
            if self.is_initialized() {
                return Ok(());
            }
            let mut nodes: BTreeMap<u64, QuorumNode> = self.voters.clone();
            if let Some(me) = nodes.get_mut(&self.node_id) {
                me.directory_id = self.directory_id.clone();
            }
            let mut empty = 1;
            for (id, node) in nodes.iter_mut().filter(|(id, _)| **id != self.node_id) {
                match self.call(*id, &AppCall::Status).await {
                    Ok(AppReply::Status {
                        initialized: true, ..
                    }) => return Ok(()),
                    Ok(AppReply::Status {
                        pristine: true,
                        directory_id,
                        ..
                    }) => {
                        node.directory_id = directory_id;
                        empty += 1;
                    }
                    _ => {}
                }
            }
            if empty * 2 > self.voters.len() {
                return self.initialize_with(nodes).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn initialize_with(&self, nodes: BTreeMap<u64, QuorumNode>) -> Result<(), BrokerError> {
        let members: BTreeSet<u64> = nodes.keys().copied().collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => {
                tracing::info!(voters = ?members, "metadata quorum initialized");
                Ok(())
            }
            Err(e) if self.is_initialized() => {
                tracing::debug!(error = %e, "quorum already initialized");
                Ok(())
            }
            Err(e) => Err(BrokerError::Metadata(format!(
                "initializing the quorum: {e}"
            ))),
        }
    }

    /// A dynamic quorum starts from the node at its first bootstrap server, alone, when
    /// that node's storage is empty and no other bootstrap server knows an initialized
    /// quorum. Whether the first server is this node is asked of whoever answers there.
    async fn starts_alone(&self, endpoint: &QuorumNode) -> bool {
        loop {
            // A quorum found anywhere is joined, even while the first server is down.
            if self.quorum_elsewhere().await {
                return false;
            }
            match self
                .call_at(ANY_NODE, &self.bootstrap[0], &AppCall::Status)
                .await
            {
                Ok(AppReply::Status {
                    node_id: Some(id),
                    directory_id,
                    ..
                }) if id == self.node_id && directory_id == self.directory_id => break,
                Ok(AppReply::Status { .. }) => return false,
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        if self.quorum_elsewhere().await {
            return false;
        }
        let nodes = BTreeMap::from([(self.node_id, endpoint.clone())]);
        if let Err(e) = self.initialize_with(nodes).await {
            tracing::error!(error = %e, "the metadata quorum could not be started");
        }
        true
    }

    /// Whether a bootstrap server other than the first knows an initialized quorum.
    async fn quorum_elsewhere(&self) -> bool {
        for server in &self.bootstrap[1..] {
            if let Ok(AppReply::Status {
                initialized: true, ..
            }) = self.call_at(ANY_NODE, server, &AppCall::Status).await
            {
                return true;
            }
        }
        false
    }

    /// Whether this node's storage was empty and the quorum is initialized.
    pub fn answer_status(&self) -> AppReply {
        let leader = self.leader();
        AppReply::Status {
            pristine: self.pristine && !self.is_initialized(),
            initialized: self.is_initialized(),
            directory_id: self.directory_id.clone(),
            leader,
            node_id: Some(self.node_id),
            leader_node: leader.and_then(|l| self.node(l)),
        }
    }

    /// Whether the membership this node holds lists node `id` as a voter.
    fn is_voter(&self, id: u64) -> bool {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let voter = m.membership().voter_ids().any(|v| v == id);
        voter
    }

    /// Follows the log as an observer: asks the leader to add this node as a learner
    /// reached at `endpoint` (or to record its new address), until the membership this node
    /// holds says so.
    async fn observe(&self, endpoint: QuorumNode) {
        loop {
            let listed = {
                let m = self.raft.metrics().borrow().membership_config.clone();
                m.membership().get_node(&self.node_id).cloned()
            };
            // A static voter is dialled as configured, whatever the membership records.
            let configured = self.voters.contains_key(&self.node_id);
            if listed.is_some_and(|n| {
                n.directory_id == self.directory_id && (n == endpoint || configured)
            }) {
                return;
            }
            if self.is_leader() {
                // A voter that leads records its own endpoint.
                if let Err((_, message)) = self.admit(self.node_id, endpoint.clone()).await {
                    tracing::warn!(%message, "recording this node's endpoint");
                }
            } else if let Some((leader, at)) = self.find_leader().await {
                let call = AppCall::Join {
                    node_id: self.node_id as i32,
                    node: endpoint.clone(),
                };
                match self.call_at(leader, &at, &call).await {
                    Ok(AppReply::Refused { message, .. }) => {
                        tracing::warn!(%message, "the quorum leader refused this node as an observer")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "asking to observe the quorum"),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The leader and where it is reached, as this node knows it or as a voter or a
    /// bootstrap server tells.
    pub(crate) async fn find_leader(&self) -> Option<(u64, QuorumNode)> {
        if let Some(l) = self.leader() {
            if let Some(node) = self.node(l) {
                return Some((l, node));
            }
        }
        // The configured voters, the voters the membership here records (a dynamic quorum's
        // may all differ from the bootstrap servers by now), the bootstrap servers.
        let recorded: Vec<(u64, QuorumNode)> = {
            let m = self.raft.metrics().borrow().membership_config.clone();
            m.membership()
                .voter_ids()
                .filter_map(|id| m.membership().get_node(&id).map(|n| (id, n.clone())))
                .collect()
        };
        let contacts = self
            .voters
            .iter()
            .map(|(id, n)| (*id, n.clone()))
            .chain(recorded)
            .filter(|(id, _)| *id != self.node_id)
            .chain(self.bootstrap.iter().map(|n| (ANY_NODE, n.clone())));
        for (id, node) in contacts {
            if let Ok(AppReply::Status {
                leader: Some(l),
                leader_node,
                ..
            }) = self.call_at(id, &node, &AppCall::Status).await
            {
                if let Some(at) = leader_node.or_else(|| self.node(l)) {
                    return Some((l, at));
                }
            }
        }
        None
    }

    /// On the leader: node `id` follows the log at `node`. A new node becomes a learner; a
    /// learner's new address or directory is recorded; a voter stays as it is, unless it
    /// comes on another directory: that incarnation must be removed first (as Kafka).
    pub async fn admit(&self, id: u64, node: QuorumNode) -> Result<(), Refusal> {
        let _one = self.changing.lock().await;
        let listed = {
            let m = self.raft.metrics().borrow().membership_config.clone();
            m.membership().get_node(&id).cloned()
        };
        let change = match listed {
            Some(n) if n == node => return Ok(()),
            Some(n) if self.is_voter(id) => {
                if n.directory_id.is_empty() || n.directory_id == node.directory_id {
                    // The same voter (or one recorded before directory ids), reached
                    // somewhere else now: restarted on a new address.
                    let set = ChangeMembers::SetNodes(BTreeMap::from([(id, node.clone())]));
                    self.raft
                        .change_membership(set, true)
                        .await
                        .map_err(failed)?;
                    tracing::info!(node = id, at = %node, "voter's endpoint updated");
                    return Ok(());
                }
                return Err(refusal(
                    ResponseError::DuplicateVoter,
                    format!(
                        "node {id} is a voter on directory {}: remove it before it joins on {}",
                        n.directory_id, node.directory_id
                    ),
                ));
            }
            Some(n) if n.directory_id == node.directory_id => {
                ChangeMembers::SetNodes(BTreeMap::from([(id, node.clone())]))
            }
            Some(_) => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
            None => ChangeMembers::AddNodes(BTreeMap::from([(id, node.clone())])),
        };
        let re_add = matches!(change, ChangeMembers::RemoveNodes(_));
        self.raft
            .change_membership(change, true)
            .await
            .map_err(failed)?;
        if re_add {
            self.raft
                .add_learner(id, node.clone(), false)
                .await
                .map_err(failed)?;
        }
        tracing::info!(node = id, at = %node, "observer admitted");
        Ok(())
    }

    /// On the leader (AddRaftVoter): observer `id` on `directory_id` becomes a voter, reached
    /// at `endpoint` if given, once it has caught up with the log.
    pub async fn add_voter(
        &self,
        id: u64,
        directory_id: &str,
        endpoint: Option<(String, u16)>,
    ) -> Result<(), Refusal> {
        let _one = self.changing.lock().await;
        if self.is_voter(id) {
            return Err(refusal(
                ResponseError::DuplicateVoter,
                format!("node {id} is already a voter"),
            ));
        }
        let listed = {
            let m = self.raft.metrics().borrow().membership_config.clone();
            m.membership().get_node(&id).cloned()
        };
        let Some(mut node) = listed.filter(|n| n.directory_id == directory_id) else {
            return Err(refusal(
                ResponseError::InvalidRequest,
                format!(
                    "node {id} on directory {directory_id} does not follow the metadata log: \
                     start it (it joins as an observer) before adding it as a voter"
                ),
            ));
        };
        if let Some((host, port)) = endpoint {
            if (node.host.as_str(), node.port) != (host.as_str(), port) {
                node.host = host;
                node.port = port;
                let set = ChangeMembers::SetNodes(BTreeMap::from([(id, node.clone())]));
                self.raft
                    .change_membership(set, true)
                    .await
                    .map_err(failed)?;
            }
        }
        // Waits until the observer has caught up with the log, within a bound: one that
        // never does (it died) must not hold every other membership change.
        tokio::time::timeout(CATCH_UP_MAX, self.raft.add_learner(id, node, true))
            .await
            .map_err(|_| {
                refusal(
                    ResponseError::RequestTimedOut,
                    format!("node {id} did not catch up with the metadata log in {CATCH_UP_MAX:?}"),
                )
            })?
            .map_err(failed)?;
        let ids = BTreeSet::from([id]);
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(ids), false)
            .await
            .map_err(failed)?;
        tracing::info!(node = id, "voter added");
        Ok(())
    }

    /// On the leader (RemoveRaftVoter): voter `id` on `directory_id` leaves the quorum.
    pub async fn remove_voter(&self, id: u64, directory_id: &str) -> Result<(), Refusal> {
        let _one = self.changing.lock().await;
        let recorded = member_directory(&self.raft, id);
        let matches = recorded
            .as_deref()
            .is_some_and(|d| d.is_empty() || directory_id.is_empty() || d == directory_id);
        if !self.is_voter(id) || !matches {
            return Err(refusal(
                ResponseError::VoterNotFound,
                format!("no voter {id} on directory {directory_id}"),
            ));
        }
        let voters = {
            let m = self.raft.metrics().borrow().membership_config.clone();
            m.membership().voter_ids().count()
        };
        if voters == 1 {
            return Err(refusal(
                ResponseError::InvalidRequest,
                format!("node {id} is the only voter"),
            ));
        }
        // A removed voter stays an observer; but openraft's leader keeps leading while it
        // is in the membership at all, so a leader removing itself leaves it, steps down,
        // and comes back as an observer (`keep_place`).
        let retain = id != self.node_id;
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), retain)
            .await
            .map_err(failed)?;
        tracing::info!(node = id, "voter removed");
        Ok(())
    }

    /// A static voter whose directory the membership does not know (its disk was wiped: a
    /// new incarnation, which the others refuse to talk to as the old one) asks the leader
    /// to make it a voter again, until the membership records this directory. A fresh node
    /// of a forming quorum finds it recorded at once.
    async fn rejoin(&self) {
        loop {
            let recorded = member_directory(&self.raft, self.node_id);
            if recorded
                .as_deref()
                .is_some_and(|d| d.is_empty() || d == self.directory_id)
            {
                return;
            }
            self.ask_to_rejoin().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Asks the leader to record this node under its directory (`readmit`).
    async fn ask_to_rejoin(&self) {
        if let Some((leader, at)) = self.find_leader().await {
            let call = AppCall::Rejoin {
                node_id: self.node_id as i32,
                directory_id: self.directory_id.clone(),
            };
            if let Err(e) = self.call_at(leader, &at, &call).await {
                tracing::debug!(error = %e, "asking to rejoin the quorum");
            }
        }
    }

    /// On the leader: static voter `node` runs on a directory the membership does not
    /// record. The returned task removes it as a voter, adds it back as a learner with its
    /// new directory (which waits until it has caught up), then makes it a voter again; one
    /// change at a time. A voter recorded without a directory (the quorum formed before it
    /// answered) only has its directory recorded: nothing says its log was lost. The leader
    /// itself is never readmitted: it won its election with its log.
    pub fn readmit(
        &self,
        node: u64,
        directory_id: String,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let raft = self.raft.clone();
        let configured = self.voters.get(&node).cloned();
        let one = Arc::clone(&self.changing);
        let me = self.node_id;
        async move {
            let _one = one.lock().await;
            let Some(configured) = configured else {
                return Err(format!("node {node} is not in controller.quorum.voters"));
            };
            let recorded = member_directory(&raft, node);
            let fresh = configured.with_directory(directory_id.clone());
            match recorded.as_deref() {
                Some(d) if d == directory_id => return Ok(()),
                Some("") => {
                    let nodes = BTreeMap::from([(node, fresh)]);
                    raft.change_membership(ChangeMembers::SetNodes(nodes), false)
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::info!(node, %directory_id, "voter's directory recorded");
                    return Ok(());
                }
                _ if node == me => return Ok(()),
                _ => {}
            }
            tracing::warn!(node, %directory_id, "a voter came back with a new directory: readmitting it");
            let ids = BTreeSet::from([node]);
            if recorded.is_some() {
                raft.change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tokio::time::timeout(CATCH_UP_MAX, raft.add_learner(node, fresh, true))
                .await
                .map_err(|_| format!("node {node} did not catch up in {CATCH_UP_MAX:?}"))?
                .map_err(|e| e.to_string())?;
            raft.change_membership(ChangeMembers::AddVoterIds(ids), false)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(node, "voter readmitted");
            Ok(())
        }
    }
}
