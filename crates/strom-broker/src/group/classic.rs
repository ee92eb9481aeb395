//! The classic group protocol's state machine, as Kafka runs it: Empty → PreparingRebalance
//! → CompletingRebalance → Stable, and Dead once deleted. One group's members, their join
//! and sync waiters, the generation and the chosen protocol; the rules that need several
//! groups or the clock's ticks live in the coordinator (`state.rs`), which drives this.
//! Without I/O and without a clock of its own: the time is passed in (`now_ms`). It does not
//! know the consumer protocol (`consumer.rs`) nor the assignors (`assignor.rs`).

use super::codes::*;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl State {
    /// The names DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, Default)]
pub struct JoinReply {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader only: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814: the leader keeps the current assignment (a static leader back).
    pub skip_assignment: bool,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, Default)]
pub struct SyncReply {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout_ms: i32,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_heartbeat_ms: i64,
    pub(super) join_waiter: Option<oneshot::Sender<JoinReply>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncReply>>,
}

impl Member {
    /// The member's metadata for `protocol` (empty if it does not support it).
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

#[derive(Debug)]
pub(super) struct Group {
    pub(super) state: State,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not joined yet, each with the time it
    /// expires (its session timeout after it was handed out). As in Kafka, a join phase
    /// waits for them, and they outlive the phase's end: a member whose second JoinGroup
    /// arrives after the phase completed joins the next one instead of being refused.
    pub(super) pending: BTreeMap<String, i64>,
    /// When the current join phase ends at the latest.
    pub(super) rebalance_deadline_ms: i64,
    /// For a group that was empty: the join phase does not end before this.
    pub(super) initial_delay_until_ms: i64,
    /// When the group last became empty (0: never had members here).
    pub(super) empty_since_ms: i64,
    /// The generation whose membership is being written: SyncGroups of it wait until it is
    /// (or fail with it), as Kafka answers none before the write.
    pub(super) storing: Option<i32>,
}

impl Group {
    pub(super) fn new() -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: 0,
            empty_since_ms: 0,
            storing: None,
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((p, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                *votes.entry(p).or_default() += 1;
            }
        }
        candidates
            .into_iter()
            .max_by_key(|c| votes.get(c).copied().unwrap_or(0))
            .cloned()
    }

    pub(super) fn supports(&self, protocols: &[(String, Bytes)]) -> bool {
        self.members.is_empty()
            || protocols.iter().any(|(p, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            })
    }

    pub(super) fn prepare_rebalance(&mut self, now_ms: i64, initial_delay_ms: i64) {
        let was_empty = self.state == State::Empty;
        // Members waiting in SyncGroup learn of the new round.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncReply {
                    error_code: REBALANCE_IN_PROGRESS,
                    ..SyncReply::default()
                });
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.state = State::PreparingRebalance;
        self.rebalance_deadline_ms = now_ms + i64::from(timeout);
        self.initial_delay_until_ms = if was_empty {
            now_ms + initial_delay_ms.min(i64::from(timeout))
        } else {
            0
        };
    }

    /// A JoinGroup answer with the current generation, for a member that needs no rebalance.
    pub(super) fn current_reply(&self, member_id: &str) -> JoinReply {
        JoinReply {
            error_code: NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }

    /// Every member has rejoined and no member waiting for its id is still due (Kafka's
    /// `hasAllMembersJoined`).
    /// Every member with its metadata for the chosen protocol (what the leader is told).
    pub(super) fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.instance_id.clone(), m.metadata_for(&protocol)))
            .collect()
    }

    pub(super) fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Ends the join phase: members that did not rejoin leave, a new generation starts.
    pub(super) fn complete_join(&mut self, now_ms: i64) {
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.generation += 1;
        super::state::REBALANCES.inc();
        // Kafka restarts every member's session when a join completes: a member that waited
        // in JoinGroup longer than its session is not expired before its SyncGroup.
        for m in self.members.values_mut() {
            m.last_heartbeat_ms = now_ms;
        }
        if self.members.is_empty() {
            self.state = State::Empty;
            self.empty_since_ms = now_ms;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = State::CompletingRebalance;
        let all = self.member_list();
        let leader = self.leader.clone().unwrap_or_default();
        for (id, m) in self.members.iter_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinReply {
                    error_code: NONE,
                    generation_id: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                });
            }
        }
    }

    pub(super) fn check_join(&mut self, now_ms: i64) {
        if self.state == State::PreparingRebalance
            && ((self.all_joined() && now_ms >= self.initial_delay_until_ms)
                || now_ms >= self.rebalance_deadline_ms)
        {
            self.complete_join(now_ms);
        }
    }

    pub(super) fn remove_member(&mut self, id: &str, now_ms: i64, initial_delay_ms: i64) {
        if let Some(m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter {
                let _ = w.send(JoinReply {
                    error_code: UNKNOWN_MEMBER_ID,
                    member_id: id.to_string(),
                    ..JoinReply::default()
                });
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(SyncReply {
                    error_code: UNKNOWN_MEMBER_ID,
                    ..SyncReply::default()
                });
            }
        }
        match self.state {
            State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(now_ms, initial_delay_ms)
            }
            _ => {}
        }
        if self.members.is_empty() && self.state == State::PreparingRebalance {
            self.complete_join(now_ms);
        }
        self.check_join(now_ms);
    }
}

/// A classic group as persisted: what a restarted coordinator needs so that members of a
/// stable group carry on with their generation (Kafka's GroupMetadata record).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassicSnapshot {
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct MemberSnapshot {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout_ms: i32,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) protocols: Vec<(String, Vec<u8>)>,
    pub(super) assignment: Vec<u8>,
}

impl Group {
    /// The group to persist: only a stable or empty group (a rebalance in progress keeps
    /// the previous snapshot, as Kafka writes GroupMetadata when a generation completes).
    pub(super) fn snapshot(&self) -> Option<ClassicSnapshot> {
        if !matches!(self.state, State::Stable | State::Empty) || self.generation == 0 {
            return None;
        }
        Some(ClassicSnapshot {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberSnapshot {
                    id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|(n, b)| (n.clone(), b.to_vec()))
                        .collect(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        })
    }

    pub(super) fn restore(s: ClassicSnapshot, now_ms: i64) -> Group {
        let mut g = Group::new();
        g.generation = s.generation;
        g.protocol_type = s.protocol_type;
        g.protocol = s.protocol;
        g.leader = s.leader;
        for m in s.members {
            g.members.insert(
                m.id,
                Member {
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m
                        .protocols
                        .into_iter()
                        .map(|(n, b)| (n, Bytes::from(b)))
                        .collect(),
                    assignment: Bytes::from(m.assignment),
                    last_heartbeat_ms: now_ms,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        if g.members.is_empty() {
            g.empty_since_ms = now_ms;
        } else {
            g.state = State::Stable;
        }
        g
    }
}
