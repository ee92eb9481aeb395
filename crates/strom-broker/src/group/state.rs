//! The group coordinator: every group of this broker, classic ones (`classic.rs`) and
//! consumer-protocol ones (`consumer.rs`), by group id; the requests of both protocols,
//! expiry on the clock's ticks, snapshots for persistence, and the conversions between the
//! protocols (a classic member joining a consumer group, a consumer member upgrading a
//! classic group).
//!
//! Everything happens under one lock and without I/O; the time is passed in (`now_ms`), so
//! the machine is deterministic and testable. A JoinGroup or SyncGroup that must wait leaves
//! a oneshot sender in its member; completing the phase answers them all.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;

pub use super::classic::ClassicSnapshot;
use super::classic::{Group, Member};
pub use super::classic::{GroupDescription, JoinReply, State, SyncReply};
pub use super::codes::*;
use super::consumer;

/// The group coordinator's settings, Kafka's keys and defaults.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_delay_ms: i64,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`: the session
    /// timeouts a classic JoinGroup may ask for (else INVALID_SESSION_TIMEOUT).
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members (and members waiting for their id) of a classic group.
    pub max_size: usize,
    /// The consumer protocol's (KIP-848) settings.
    pub consumer: consumer::Timing,
    /// Makes a new member id, for a classic member from its client id (injected, so that
    /// tests can name members).
    pub member_id: fn(Option<&str>) -> String,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            initial_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            consumer: consumer::Timing::default(),
            member_id: new_member_id,
        }
    }
}

/// A group as persisted in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type")]
pub enum GroupSnapshot {
    Classic(ClassicSnapshot),
    Consumer(consumer::Group),
}

/// A SyncGroup's outcome (see `GroupCoordinator::sync_outcome`).
#[derive(Debug)]
pub struct Synced {
    /// This member's answer.
    pub reply: oneshot::Receiver<SyncReply>,
    /// The generation it completed (group, generation): its membership is written before
    /// the answers go out.
    pub completed: Option<(String, i32)>,
    /// The members' answers, given once the record is written.
    pub answers: Vec<(oneshot::Sender<SyncReply>, SyncReply)>,
}

impl Synced {
    /// Gives the answers taken with it; this member's to await (see
    /// `GroupCoordinator::stored`, which also answers the members that synced meanwhile).
    fn deliver(self) -> oneshot::Receiver<SyncReply> {
        for (w, answer) in self.answers {
            let _ = w.send(answer);
        }
        self.reply
    }
}

/// What JoinGroup asked, already decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member must first get its id (MEMBER_ID_REQUIRED) and rejoin.
    pub require_known_member_id: bool,
    /// v9+ (KIP-814): a static leader that rejoins a stable group is told to skip the
    /// assignment instead of causing a rebalance.
    pub supports_skip_assignment: bool,
}

/// Rebalances completed by the groups of this process: a classic group's new generation,
/// a consumer group's new target assignment.
pub static REBALANCES: strom_metrics::Counter = strom_metrics::Counter::new();

/// The coordinator of every group on this broker: classic groups here, consumer-protocol
/// (KIP-848) groups in `consumer.rs`. A group id names one or the other. When both locks are
/// taken, the classic one is taken first.
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    consumer: Mutex<HashMap<String, consumer::Group>>,
    config: GroupConfig,
}

impl GroupCoordinator {
    pub fn new(initial_delay_ms: i64) -> GroupCoordinator {
        GroupCoordinator::with_config(GroupConfig {
            initial_delay_ms,
            ..GroupConfig::default()
        })
    }

    pub fn with_config(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            groups: Mutex::new(HashMap::new()),
            consumer: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// Drops the groups `picks` chooses (their `__consumer_offsets` partition moved away):
    /// members waiting in a join or a sync are answered NOT_COORDINATOR, as Kafka's unload
    /// answers them, and look the coordinator up again.
    pub fn unload(&self, picks: &dyn Fn(&str) -> bool) {
        let mut groups = self.lock();
        let gone: Vec<String> = groups.keys().filter(|g| picks(g)).cloned().collect();
        for id in gone {
            let Some(g) = groups.remove(&id) else {
                continue;
            };
            for m in g.members.into_values() {
                if let Some(tx) = m.join_waiter {
                    let _ = tx.send(JoinReply {
                        error_code: NOT_COORDINATOR,
                        ..JoinReply::default()
                    });
                }
                if let Some(tx) = m.sync_waiter {
                    let _ = tx.send(SyncReply {
                        error_code: NOT_COORDINATOR,
                        ..SyncReply::default()
                    });
                }
            }
        }
        drop(groups);
        self.lock_consumer().retain(|g, _| !picks(g));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_consumer(&self) -> std::sync::MutexGuard<'_, HashMap<String, consumer::Group>> {
        self.consumer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ConsumerGroupHeartbeat. An empty classic group (known only by its offsets) becomes
    /// a consumer group; one with members is not a consumer group.
    pub fn consumer_heartbeat(
        &self,
        req: &consumer::Heartbeat,
        now_ms: i64,
        topics: &dyn consumer::Topics,
    ) -> consumer::HeartbeatReply {
        let fail = |code: i16, message: String| consumer::HeartbeatReply {
            error_code: code,
            error_message: Some(message),
            ..consumer::HeartbeatReply::default()
        };
        if let Some(message) = consumer::invalid(req) {
            return fail(consumer::INVALID_REQUEST, message.into());
        }
        // v0: the coordinator names a new member.
        let named;
        let req = if req.member_id.is_empty() && req.member_epoch == 0 {
            named = consumer::Heartbeat {
                member_id: (self.config.member_id)(None),
                ..req.clone()
            };
            &named
        } else {
            req
        };
        let mut classic = self.lock();
        let mut groups = self.lock_consumer();
        if let Some(g) = classic.get(&req.group_id) {
            if g.members.is_empty() {
                classic.remove(&req.group_id);
            } else if g.state == State::Stable && g.protocol_type.as_deref() == Some("consumer") {
                // A consumer-protocol member joins a classic group: the group becomes a
                // consumer group and its classic members carry on in it (KIP-848's upgrade).
                if let Some(g) = classic.remove(&req.group_id) {
                    groups.insert(req.group_id.clone(), classic_to_consumer(g, topics));
                }
            } else if g.protocol_type.as_deref() == Some("consumer") {
                // Mid-rebalance: the member retries once the classic round is over.
                return fail(
                    COORDINATOR_NOT_AVAILABLE,
                    format!("group {} is rebalancing", req.group_id),
                );
            } else {
                return fail(
                    GROUP_ID_NOT_FOUND,
                    format!("group {} is not a consumer group", req.group_id),
                );
            }
        }
        drop(classic);
        let group = match groups.get_mut(&req.group_id) {
            Some(g) => g,
            None if req.member_epoch == 0 => groups.entry(req.group_id.clone()).or_default(),
            None => {
                return fail(
                    UNKNOWN_MEMBER_ID,
                    format!(
                        "Member {} is not a member of group {}.",
                        req.member_id, req.group_id
                    ),
                )
            }
        };
        group.heartbeat(req, now_ms, self.config.consumer, topics)
    }

    /// Every group's persistable state (classic groups only when stable or empty).
    pub fn snapshots(&self) -> Vec<(String, GroupSnapshot)> {
        let mut out: Vec<(String, GroupSnapshot)> = self
            .lock()
            .iter()
            .filter_map(|(id, g)| Some((id.clone(), GroupSnapshot::Classic(g.snapshot()?))))
            .collect();
        out.extend(
            self.lock_consumer()
                .iter()
                .map(|(id, g)| (id.clone(), GroupSnapshot::Consumer(g.clone()))),
        );
        out
    }

    /// One group's membership to persist now, if it has one to persist.
    pub fn snapshot_of(&self, group_id: &str) -> Option<GroupSnapshot> {
        if let Some(g) = self.lock().get(group_id) {
            return g.snapshot().map(GroupSnapshot::Classic);
        }
        self.lock_consumer()
            .get(group_id)
            .map(|g| GroupSnapshot::Consumer(g.clone()))
    }

    /// Restores a group from its snapshot at start-up; its members get a full session.
    pub fn restore(&self, group_id: &str, snapshot: GroupSnapshot, now_ms: i64) {
        match snapshot {
            GroupSnapshot::Classic(s) => {
                self.lock()
                    .insert(group_id.to_string(), Group::restore(s, now_ms));
            }
            GroupSnapshot::Consumer(g) => {
                self.lock_consumer()
                    .insert(group_id.to_string(), g.restored(now_ms));
            }
        }
    }

    /// Whether `member_id` speaks for a static member (`instance_id`) that another member id
    /// has since taken over: Kafka answers such a request with FENCED_INSTANCE_ID.
    pub fn fenced(&self, group_id: &str, member_id: &str, instance_id: Option<&str>) -> bool {
        let (Some(instance), false) = (instance_id, member_id.is_empty()) else {
            return false;
        };
        self.lock().get(group_id).is_some_and(|g| {
            g.members
                .iter()
                .any(|(id, m)| m.instance_id.as_deref() == Some(instance) && id != member_id)
        })
    }

    /// ConsumerGroupDescribe: None when no consumer group has this id.
    pub fn consumer_describe(&self, group_id: &str) -> Option<consumer::Description> {
        self.lock_consumer()
            .get(group_id)
            .map(|g| g.describe(self.config.consumer.default_assignor()))
    }

    /// Whether `group_id` is a classic group (one that has or had members here).
    pub fn is_classic(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    /// Handles a JoinGroup; the answer arrives on the returned channel (at once, or when the
    /// join phase completes).
    pub fn join(
        &self,
        r: JoinRequest,
        now_ms: i64,
        topics: &dyn consumer::Topics,
    ) -> oneshot::Receiver<JoinReply> {
        let (tx, rx) = oneshot::channel();
        let fail = |tx: oneshot::Sender<JoinReply>, code: i16, member_id: String| {
            let _ = tx.send(JoinReply {
                error_code: code,
                member_id,
                ..JoinReply::default()
            });
        };
        if r.group_id.is_empty() {
            fail(tx, INVALID_GROUP_ID, r.member_id);
            return rx;
        }
        let limits = self.config;
        if !(limits.min_session_timeout_ms..=limits.max_session_timeout_ms)
            .contains(&r.session_timeout_ms)
        {
            fail(tx, INVALID_SESSION_TIMEOUT, r.member_id);
            return rx;
        }
        let mut groups = self.lock();
        {
            let mut consumer = self.lock_consumer();
            if let Some(cg) = consumer.get_mut(&r.group_id) {
                if !cg.is_empty() {
                    let _ = tx.send(join_consumer_group(cg, r, now_ms, limits, topics));
                    return rx;
                }
                // An empty consumer group becomes a classic one.
                consumer.remove(&r.group_id);
            }
        }
        let group = groups.entry(r.group_id.clone()).or_insert_with(Group::new);
        if group.state == State::Dead {
            *group = Group::new();
        }
        if r.protocols.is_empty()
            || (!group.members.is_empty()
                && group.protocol_type.as_deref() != Some(r.protocol_type.as_str()))
            || !group.supports(&r.protocols)
        {
            fail(tx, INCONSISTENT_GROUP_PROTOCOL, r.member_id);
            return rx;
        }
        // Which member is this?
        let static_id = r.instance_id.as_ref().and_then(|i| {
            group
                .members
                .iter()
                .find(|(_, m)| m.instance_id.as_ref() == Some(i))
                .map(|(id, _)| id.clone())
        });
        let member_id = if r.member_id.is_empty() {
            if let Some(old_id) = static_id {
                // A static member coming back (KIP-345): it takes its old place under a new
                // member id, and whoever still uses the old id is fenced (FENCED_INSTANCE_ID);
                // a stable group with the same subscription does not rebalance for it.
                let id = (limits.member_id)(Some(&r.client_id));
                if let Some(mut old) = group.members.remove(&old_id) {
                    if let Some(w) = old.join_waiter.take() {
                        let _ = w.send(JoinReply {
                            error_code: FENCED_INSTANCE_ID,
                            member_id: old_id.clone(),
                            ..JoinReply::default()
                        });
                    }
                    if let Some(w) = old.sync_waiter.take() {
                        let _ = w.send(SyncReply {
                            error_code: FENCED_INSTANCE_ID,
                            ..SyncReply::default()
                        });
                    }
                    group.members.insert(id.clone(), old);
                }
                if group.leader.as_ref() == Some(&old_id) {
                    group.leader = Some(id.clone());
                }
                let unchanged = group
                    .members
                    .get(&id)
                    .is_some_and(|m| m.protocols == r.protocols);
                let is_leader = group.leader.as_ref() == Some(&id);
                // As Kafka: a static member back with the same protocols does not rebalance
                // a stable group; a leader is told the members and to skip the assignment
                // (KIP-814), or, before JoinGroup v9, rebalances.
                if group.state == State::Stable
                    && unchanged
                    && (!is_leader || r.supports_skip_assignment)
                {
                    if let Some(m) = group.members.get_mut(&id) {
                        m.last_heartbeat_ms = now_ms;
                        m.session_timeout_ms = r.session_timeout_ms;
                    }
                    let mut reply = group.current_reply(&id);
                    if is_leader {
                        reply.members = group.member_list();
                        reply.skip_assignment = true;
                    }
                    let _ = tx.send(reply);
                    return rx;
                }
                id
            } else {
                if group.members.len() + group.pending.len() >= limits.max_size {
                    fail(tx, GROUP_MAX_SIZE_REACHED, String::new());
                    return rx;
                }
                let id = (limits.member_id)(Some(&r.client_id));
                if r.require_known_member_id && r.instance_id.is_none() {
                    let expires = now_ms + i64::from(r.session_timeout_ms);
                    group.pending.insert(id.clone(), expires);
                    fail(tx, MEMBER_ID_REQUIRED, id);
                    return rx;
                }
                id
            }
        } else {
            if let (Some(inst), Some(known)) = (&r.instance_id, &static_id) {
                if *known != r.member_id {
                    fail(tx, FENCED_INSTANCE_ID, r.member_id);
                    return rx;
                }
                let _ = inst;
            }
            if !group.members.contains_key(&r.member_id)
                && !group.pending.contains_key(&r.member_id)
            {
                fail(tx, UNKNOWN_MEMBER_ID, r.member_id);
                return rx;
            }
            r.member_id.clone()
        };
        group.pending.remove(&member_id);
        let is_new = !group.members.contains_key(&member_id);
        let changed = group
            .members
            .get(&member_id)
            .is_some_and(|m| m.protocols != r.protocols);
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                instance_id: r.instance_id.clone(),
                client_id: r.client_id.clone(),
                client_host: r.client_host.clone(),
                session_timeout_ms: r.session_timeout_ms,
                rebalance_timeout_ms: r.rebalance_timeout_ms,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heartbeat_ms: now_ms,
                join_waiter: None,
                sync_waiter: None,
            });
        member.protocols = r.protocols;
        member.session_timeout_ms = r.session_timeout_ms;
        // As in Kafka, the first member to join a group without a leader leads it.
        if group.leader.is_none() {
            group.leader = Some(member_id.clone());
        }
        member.rebalance_timeout_ms = r.rebalance_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinReply {
                error_code: UNKNOWN_MEMBER_ID,
                ..JoinReply::default()
            });
        }
        group.protocol_type = Some(r.protocol_type);
        match group.state {
            State::Empty | State::Dead => {
                group.prepare_rebalance(now_ms, self.config.initial_delay_ms)
            }
            State::Stable | State::CompletingRebalance => {
                let leader_rejoins = group.leader.as_ref() == Some(&member_id);
                if is_new || changed || leader_rejoins || group.state == State::CompletingRebalance
                {
                    group.prepare_rebalance(now_ms, self.config.initial_delay_ms);
                } else {
                    // A known follower rejoining a stable group unchanged: answer with the
                    // current generation at once.
                    if let Some(m) = group.members.get_mut(&member_id) {
                        if let Some(w) = m.join_waiter.take() {
                            let _ = w.send(group.current_reply(&member_id));
                        }
                    }
                }
            }
            State::PreparingRebalance => {}
        }
        group.check_join(now_ms);
        rx
    }

    /// A SyncGroup, its answers given at once (the coordinator's own tests and models).
    pub fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
        topics: &dyn consumer::Topics,
    ) -> oneshot::Receiver<SyncReply> {
        let synced =
            self.sync_outcome(group_id, generation, member_id, assignments, now_ms, topics);
        self.stored(synced)
    }

    /// The generation `synced` completed is written: its members get their assignments
    /// (those that synced while it was being written too); this member's answer to await.
    pub fn stored(&self, synced: Synced) -> oneshot::Receiver<SyncReply> {
        if let Some((group_id, generation)) = &synced.completed {
            let mut groups = self.lock();
            if let Some(g) = groups.get_mut(group_id) {
                if g.storing == Some(*generation) {
                    g.storing = None;
                    if g.generation == *generation && g.state == State::Stable {
                        let (pt, pn) = (g.protocol_type.clone(), g.protocol.clone());
                        for m in g.members.values_mut() {
                            if let Some(w) = m.sync_waiter.take() {
                                let _ = w.send(SyncReply {
                                    error_code: NONE,
                                    protocol_type: pt.clone(),
                                    protocol_name: pn.clone(),
                                    assignment: m.assignment.clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
        synced.deliver()
    }

    /// The membership record of a completed generation could not be written: its members
    /// get `code` instead of their assignments, and the group rebalances (as Kafka does when
    /// it cannot store a group).
    pub fn sync_failed(
        &self,
        synced: Synced,
        code: i16,
        now_ms: i64,
    ) -> oneshot::Receiver<SyncReply> {
        for (w, _) in synced.answers {
            let _ = w.send(SyncReply {
                error_code: code,
                ..SyncReply::default()
            });
        }
        if let Some((group_id, generation)) = synced.completed {
            let mut groups = self.lock();
            if let Some(g) = groups.get_mut(&group_id) {
                if g.storing == Some(generation) {
                    g.storing = None;
                }
                if g.generation == generation && g.state == State::Stable {
                    // Those that synced while it was being written learn of the new round.
                    g.prepare_rebalance(now_ms, 0);
                }
            }
        }
        synced.reply
    }

    /// A SyncGroup as Kafka's CoordinatorResult: when it completes a generation, that
    /// generation (whose membership is to be written) and the answers to give once it is
    /// (`stored`), or to replace with an error if it cannot be (`sync_failed`).
    pub fn sync_outcome(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
        topics: &dyn consumer::Topics,
    ) -> Synced {
        let (tx, rx) = oneshot::channel();
        let mut out = Synced {
            reply: rx,
            completed: None,
            answers: Vec::new(),
        };
        let reply = |code: i16| SyncReply {
            error_code: code,
            ..SyncReply::default()
        };
        if let Some(cg) = self.lock_consumer().get_mut(group_id) {
            let _ = tx.send(match cg.classic_sync(member_id, generation) {
                Ok(a) => SyncReply {
                    error_code: NONE,
                    protocol_type: Some("consumer".into()),
                    protocol_name: cg.classic_protocol(member_id),
                    assignment: consumer::encode_classic_assignment(&a, &|t| topics.name_of(t)),
                },
                Err(code) => reply(code),
            });
            return out;
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            let _ = tx.send(reply(UNKNOWN_MEMBER_ID));
            return out;
        };
        if !group.members.contains_key(member_id) {
            let _ = tx.send(reply(UNKNOWN_MEMBER_ID));
            return out;
        }
        if generation != group.generation {
            let _ = tx.send(reply(ILLEGAL_GENERATION));
            return out;
        }
        match group.state {
            State::PreparingRebalance => {
                let _ = tx.send(reply(REBALANCE_IN_PROGRESS));
            }
            State::Stable => {
                // Kafka restarts the member's session on a SyncGroup in a stable group too.
                let storing = group.storing == Some(group.generation);
                let Some(m) = group.members.get_mut(member_id) else {
                    return out;
                };
                m.last_heartbeat_ms = now_ms;
                if storing {
                    // Answered with the others once the generation is written.
                    m.sync_waiter = Some(tx);
                    return out;
                }
                let _ = tx.send(SyncReply {
                    error_code: NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol.clone(),
                    assignment: m.assignment.clone(),
                });
            }
            State::CompletingRebalance => {
                if let Some(m) = group.members.get_mut(member_id) {
                    m.last_heartbeat_ms = now_ms;
                    m.sync_waiter = Some(tx);
                }
                if group.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, m) in group.members.iter_mut() {
                        m.assignment = given.remove(id).unwrap_or_default();
                    }
                    group.state = State::Stable;
                    let (pt, pn) = (group.protocol_type.clone(), group.protocol.clone());
                    for m in group.members.values_mut() {
                        if let Some(w) = m.sync_waiter.take() {
                            // Its session restarts with the answer, as in Kafka.
                            m.last_heartbeat_ms = now_ms;
                            let answer = SyncReply {
                                error_code: NONE,
                                protocol_type: pt.clone(),
                                protocol_name: pn.clone(),
                                assignment: m.assignment.clone(),
                            };
                            out.answers.push((w, answer));
                        }
                    }
                    out.completed = Some((group_id.to_string(), group.generation));
                    group.storing = Some(group.generation);
                }
            }
            State::Empty | State::Dead => {
                let _ = tx.send(reply(UNKNOWN_MEMBER_ID));
            }
        }
        out
    }

    pub fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str, now_ms: i64) -> i16 {
        if group_id.is_empty() {
            return INVALID_GROUP_ID;
        }
        if let Some(cg) = self.lock_consumer().get_mut(group_id) {
            return cg.classic_heartbeat(member_id, generation, now_ms, self.config.consumer);
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        let Some(m) = group.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        m.last_heartbeat_ms = now_ms;
        match group.state {
            State::PreparingRebalance => REBALANCE_IN_PROGRESS,
            _ if generation != group.generation => ILLEGAL_GENERATION,
            State::Stable | State::CompletingRebalance => NONE,
            State::Empty | State::Dead => UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup for one member, by member id or (static members) instance id.
    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> i16 {
        if let Some(cg) = self.lock_consumer().get_mut(group_id) {
            return cg.classic_leave(member_id, instance_id);
        }
        if self.fenced(group_id, member_id, instance_id) {
            return FENCED_INSTANCE_ID;
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        let id = if member_id.is_empty() {
            match instance_id.and_then(|i| {
                group
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_deref() == Some(i))
            }) {
                Some((id, _)) => id.clone(),
                None => return UNKNOWN_MEMBER_ID,
            }
        } else {
            member_id.to_string()
        };
        if group.pending.remove(&id).is_some() {
            // A member that had its id but never joined (Kafka's pending member leaving).
            group.check_join(now_ms);
            return NONE;
        }
        if !group.members.contains_key(&id) {
            return UNKNOWN_MEMBER_ID;
        }
        group.remove_member(&id, now_ms, self.config.initial_delay_ms);
        NONE
    }

    /// Time passes: expire members whose session lapsed, end join phases that timed out.
    pub fn tick(&self, now_ms: i64) {
        let mut groups = self.lock();
        for group in groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    // Members waiting in JoinGroup or SyncGroup are kept alive (Kafka's
                    // shouldKeepAlive).
                    m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                        && now_ms - m.last_heartbeat_ms > i64::from(m.session_timeout_ms)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(member = %id, "group member's session expired");
                group.remove_member(&id, now_ms, self.config.initial_delay_ms);
            }
            group.pending.retain(|_, expires| *expires >= now_ms);
            group.check_join(now_ms);
        }
        drop(groups);
        for group in self.lock_consumer().values_mut() {
            group.tick(now_ms, self.config.consumer);
        }
    }

    /// Whether a commit by this member and generation is accepted (generation -1 with no
    /// member id: a consumer outside the group protocol, allowed while the group is empty).
    pub fn check_commit(&self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        if let Some(g) = self.lock_consumer().get(group_id) {
            return g.check_commit(member_id, generation);
        }
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return if generation < 0 {
                NONE
            } else {
                ILLEGAL_GENERATION
            };
        };
        // A commit from outside the group protocol (assign() consumers, admin tools) is
        // accepted while the group has no members, whatever member id it carries.
        if generation < 0 && group.members.is_empty() {
            return NONE;
        }
        if generation < 0 && member_id.is_empty() {
            return ILLEGAL_GENERATION;
        }
        if !group.members.contains_key(member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        if generation != group.generation {
            return ILLEGAL_GENERATION;
        }
        // As Kafka: a member may commit while a rebalance is being prepared (an eager member
        // commits what it processed before it gives its partitions up), not while the new
        // generation's assignment is being handed out.
        if group.state == State::CompletingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        NONE
    }

    /// OffsetFetch v9+ from a member of a consumer-protocol group: it must be a member, at
    /// its current epoch (classic groups are not checked, as in Kafka).
    pub fn check_offset_fetch(&self, group_id: &str, member_id: &str, epoch: i32) -> i16 {
        match self.lock_consumer().get(group_id) {
            Some(g) => g.check_commit(member_id, epoch),
            None => NONE,
        }
    }

    /// Records that a group exists (it committed offsets), so it is listed as Empty.
    pub fn touch(&self, group_id: &str) {
        if self.lock_consumer().contains_key(group_id) {
            return;
        }
        self.lock()
            .entry(group_id.to_string())
            .or_insert_with(Group::new);
    }

    /// Every group: id, state, protocol type and group type (`classic` or `consumer`).
    pub fn list(&self) -> Vec<(String, &'static str, String, &'static str)> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .filter(|(_, g)| g.state != State::Dead)
            .map(|(id, g)| {
                (
                    id.clone(),
                    g.state.name(),
                    g.protocol_type.clone().unwrap_or_else(|| "consumer".into()),
                    "classic",
                )
            })
            .collect();
        out.extend(
            self.lock_consumer()
                .iter()
                .map(|(id, g)| (id.clone(), g.state(), "consumer".to_string(), "consumer")),
        );
        out.sort();
        out
    }

    /// DescribeGroups; `names` gives a topic's name by id (consumer-protocol groups keep
    /// topic ids).
    pub fn describe(
        &self,
        group_id: &str,
        names: &dyn Fn(&uuid::Uuid) -> Option<String>,
    ) -> Option<GroupDescription> {
        if let Some(d) = self.consumer_describe(group_id) {
            return Some(consumer_as_classic(d, names));
        }
        let groups = self.lock();
        let g = groups.get(group_id).filter(|g| g.state != State::Dead)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == State::Stable || g.state == State::CompletingRebalance {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let meta = m.metadata_for(&protocol);
                    (
                        id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        meta,
                        m.assignment.clone(),
                    )
                })
                .collect(),
        })
    }

    /// Deletes an empty group; its offsets are the caller's to drop.
    pub fn delete(&self, group_id: &str) -> i16 {
        {
            let mut consumer = self.lock_consumer();
            match consumer.get(group_id) {
                Some(g) if !g.is_empty() => return NON_EMPTY_GROUP,
                Some(_) => {
                    consumer.remove(group_id);
                    return NONE;
                }
                None => {}
            }
        }
        let mut groups = self.lock();
        match groups.get(group_id) {
            None => GROUP_ID_NOT_FOUND,
            Some(g) if g.state == State::Dead => GROUP_ID_NOT_FOUND,
            Some(g) if !g.members.is_empty() => NON_EMPTY_GROUP,
            Some(_) => {
                groups.remove(group_id);
                NONE
            }
        }
    }

    /// Whether a live member of the group subscribes to `topic` (consumer protocol
    /// metadata: a version, then the subscription).
    pub fn subscribed_to(&self, group_id: &str, topic: &str) -> bool {
        if let Some(g) = self.lock_consumer().get(group_id) {
            return g.subscribes_to(topic);
        }
        let groups = self.lock();
        let Some(g) = groups.get(group_id) else {
            return false;
        };
        g.members.values().any(|m| {
            m.protocols.iter().any(|(_, meta)| {
                consumer::decode_subscription(meta)
                    .is_some_and(|(topics, _)| topics.iter().any(|t| t == topic))
            })
        })
    }

    /// Groups without members whose offsets are due to expire: empty since before `cutoff_ms`
    /// (or never joined here), given each group's newest commit time.
    pub fn expirable(&self, newest_commit_ms: &[(String, i64)], cutoff_ms: i64) -> Vec<String> {
        let groups = self.lock();
        let consumer = self.lock_consumer();
        newest_commit_ms
            .iter()
            .filter(|(g, last)| {
                if consumer.get(g).is_some_and(|c| !c.is_empty()) {
                    return false;
                }
                let empty_since = match groups.get(g) {
                    Some(grp) if !grp.members.is_empty() => return false,
                    Some(grp) => grp.empty_since_ms,
                    None => 0,
                };
                (*last).max(empty_since) < cutoff_ms
            })
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Forgets a group whose offsets expired (only while it has no members).
    pub fn forget_if_empty(&self, group_id: &str) {
        {
            let mut consumer = self.lock_consumer();
            if consumer
                .get(group_id)
                .is_some_and(consumer::Group::is_empty)
            {
                consumer.remove(group_id);
            }
        }
        let mut groups = self.lock();
        if groups.get(group_id).is_some_and(|g| g.members.is_empty()) {
            groups.remove(group_id);
        }
    }

    pub fn exists(&self, group_id: &str) -> bool {
        if self.lock_consumer().contains_key(group_id) {
            return true;
        }
        self.lock()
            .get(group_id)
            .is_some_and(|g| g.state != State::Dead)
    }
}

/// A member id as Kafka makes them: for a classic member the client id (or "member"), a
/// dash, a random UUID; for a consumer-protocol member the UUID alone.
pub fn new_member_id(client_id: Option<&str>) -> String {
    match client_id {
        None => uuid::Uuid::new_v4().to_string(),
        Some("") => format!("member-{}", uuid::Uuid::new_v4()),
        Some(client) => format!("{client}-{}", uuid::Uuid::new_v4()),
    }
}

/// A classic member's JoinGroup into a consumer group: the assignment is the broker's; the
/// member is answered at once, as a follower (no one runs a client-side assignor).
fn join_consumer_group(
    cg: &mut consumer::Group,
    r: JoinRequest,
    now_ms: i64,
    config: GroupConfig,
    topics: &dyn consumer::Topics,
) -> JoinReply {
    let timing = config.consumer;
    let fail = |code: i16, member_id: String| JoinReply {
        error_code: code,
        member_id,
        ..JoinReply::default()
    };
    if r.protocol_type != "consumer" || r.protocols.is_empty() {
        return fail(INCONSISTENT_GROUP_PROTOCOL, r.member_id);
    }
    let member_id = if r.member_id.is_empty() {
        let id = (config.member_id)(Some(&r.client_id));
        if r.require_known_member_id {
            return fail(MEMBER_ID_REQUIRED, id);
        }
        id
    } else {
        r.member_id.clone()
    };
    let Some((subscribed, owned)) = consumer::decode_subscription(&r.protocols[0].1) else {
        return fail(INCONSISTENT_GROUP_PROTOCOL, member_id);
    };
    let join = consumer::ClassicJoin {
        member_id: member_id.clone(),
        instance_id: r.instance_id.clone(),
        client_id: r.client_id.clone(),
        client_host: r.client_host.clone(),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        classic: consumer::Classic {
            session_timeout_ms: r.session_timeout_ms,
            protocol: r.protocols[0].0.clone(),
        },
        subscribed: subscribed.into_iter().collect(),
        owned: consumer::by_id(&owned, topics),
    };
    match cg.classic_join(&join, now_ms, timing, topics) {
        Ok((generation, protocol)) => JoinReply {
            error_code: NONE,
            generation_id: generation,
            protocol_type: Some("consumer".into()),
            protocol_name: Some(protocol),
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        },
        Err(code) => fail(code, member_id),
    }
}

/// A stable classic group of consumers as a consumer group (see `Group::from_classic`).
fn classic_to_consumer(g: Group, topics: &dyn consumer::Topics) -> consumer::Group {
    let protocol = g.protocol.clone().unwrap_or_default();
    let members = g
        .members
        .into_iter()
        .map(|(id, m)| {
            let (subscribed, _) =
                consumer::decode_subscription(&m.metadata_for(&protocol)).unwrap_or_default();
            let assigned =
                consumer::by_id(&consumer::decode_classic_assignment(&m.assignment), topics);
            consumer::Converted {
                member_id: id.clone(),
                join: consumer::ClassicJoin {
                    member_id: id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    classic: consumer::Classic {
                        session_timeout_ms: m.session_timeout_ms,
                        protocol: protocol.clone(),
                    },
                    subscribed: subscribed.into_iter().collect(),
                    owned: assigned.clone(),
                },
                assigned,
                last_heartbeat_ms: m.last_heartbeat_ms,
            }
        })
        .collect();
    consumer::Group::from_classic(g.generation, members)
}

/// A consumer-protocol group described for DescribeGroups, as a classic "consumer" group
/// whose protocol is the server-side assignor and whose assignments are encoded the way
/// classic consumers encode theirs (ConsumerProtocolAssignment v0), so tools that only know
/// DescribeGroups still show members and partitions.
fn consumer_as_classic(
    d: consumer::Description,
    names: &dyn Fn(&uuid::Uuid) -> Option<String>,
) -> GroupDescription {
    GroupDescription {
        state: d.state,
        protocol_type: "consumer".into(),
        protocol: d.assignor,
        members: d
            .members
            .into_iter()
            .map(|m| {
                (
                    m.member_id,
                    m.instance_id,
                    m.client_id,
                    m.client_host,
                    Bytes::new(),
                    consumer::encode_classic_assignment(&m.assignment, names),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(c: &GroupCoordinator, member: &str, now: i64) -> oneshot::Receiver<JoinReply> {
        c.join(
            JoinRequest {
                group_id: "g".into(),
                member_id: member.into(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                protocol_type: "consumer".into(),
                protocols: vec![("range".into(), Bytes::from_static(b"m"))],
                require_known_member_id: true,
                supports_skip_assignment: true,
            },
            now,
            &consumer::NoTopics,
        )
    }

    #[test]
    fn a_generation_is_answered_once_stored_and_rebalances_if_it_cannot_be() {
        let c = GroupCoordinator::new(0);
        let a = join(&c, "", 0).try_recv().unwrap().member_id;
        assert_eq!(join(&c, &a, 0).try_recv().unwrap().generation_id, 1);
        let all = vec![(a.clone(), Bytes::from_static(b"all"))];
        let mut synced = c.sync_outcome("g", 1, &a, all.clone(), 0, &consumer::NoTopics);
        assert_eq!(synced.completed, Some(("g".to_string(), 1)));
        assert!(
            synced.reply.try_recv().is_err(),
            "not answered before it is stored"
        );
        assert_eq!(c.stored(synced).try_recv().unwrap().assignment, all[0].1);
        // Stored or not, a stable group's SyncGroup completes nothing new.
        let again = c.sync_outcome("g", 1, &a, all, 0, &consumer::NoTopics);
        assert_eq!(again.completed, None);
        // A generation that cannot be stored: the error, and a rebalance.
        let b = join(&c, "", 100).try_recv().unwrap().member_id;
        let mut jb = join(&c, &b, 100);
        let ja = join(&c, &a, 100).try_recv().unwrap();
        assert_eq!(jb.try_recv().unwrap().generation_id, 2);
        let synced = c.sync_outcome("g", 2, &ja.member_id, vec![], 100, &consumer::NoTopics);
        // A follower that syncs while the generation is being written waits for it too.
        let mut sb = c.sync("g", 2, &b, vec![], 100, &consumer::NoTopics);
        assert!(sb.try_recv().is_err());
        let mut sa = c.sync_failed(synced, NOT_COORDINATOR, 100);
        assert_eq!(sa.try_recv().unwrap().error_code, NOT_COORDINATOR);
        assert_eq!(sb.try_recv().unwrap().error_code, REBALANCE_IN_PROGRESS);
        assert_eq!(c.heartbeat("g", 2, &b, 100), REBALANCE_IN_PROGRESS);
    }

    #[test]
    fn member_ids_come_from_the_injected_maker() {
        let c = GroupCoordinator::with_config(GroupConfig {
            initial_delay_ms: 0,
            member_id: |client| format!("{}-1", client.unwrap_or("consumer")),
            ..GroupConfig::default()
        });
        assert_eq!(join(&c, "", 0).try_recv().unwrap().member_id, "c-1");
        assert!(new_member_id(Some("c")).starts_with("c-"));
        assert!(new_member_id(Some("")).starts_with("member-"));
    }

    #[test]
    fn session_timeout_bounds_and_max_size_come_from_the_config() {
        let c = GroupCoordinator::with_config(GroupConfig {
            initial_delay_ms: 0,
            min_session_timeout_ms: 20_000,
            max_size: 1,
            ..GroupConfig::default()
        });
        // join() asks for a 10 s session: below this coordinator's minimum.
        let r = join(&c, "", 0).try_recv().unwrap();
        assert_eq!(r.error_code, INVALID_SESSION_TIMEOUT);
        let c = GroupCoordinator::with_config(GroupConfig {
            initial_delay_ms: 0,
            max_size: 1,
            ..GroupConfig::default()
        });
        let a = join(&c, "", 0).try_recv().unwrap();
        assert_eq!(a.error_code, MEMBER_ID_REQUIRED);
        let b = join(&c, "", 0).try_recv().unwrap();
        assert_eq!(b.error_code, GROUP_MAX_SIZE_REACHED);
        let ja = join(&c, &a.member_id, 0).try_recv().unwrap();
        assert_eq!(ja.error_code, NONE);
    }

    /// Kafka keeps a member that was given its id (MEMBER_ID_REQUIRED) as pending: a join
    /// phase waits for it, so its second JoinGroup joins this generation instead of being
    /// refused with UNKNOWN_MEMBER_ID once the others completed the phase.
    #[test]
    fn unloading_answers_waiting_members_not_coordinator() {
        let c = GroupCoordinator::new(0);
        let a = join(&c, "", 0).try_recv().unwrap().member_id;
        assert_eq!(join(&c, &a, 0).try_recv().unwrap().error_code, NONE);
        let b = join(&c, "", 100).try_recv().unwrap().member_id;
        let mut jb = join(&c, &b, 200);
        assert!(jb.try_recv().is_err(), "b waits for a to rejoin");
        c.unload(&|g| g == "other");
        assert!(
            c.exists("g") && jb.try_recv().is_err(),
            "another group's unload"
        );
        c.unload(&|g| g == "g");
        assert_eq!(jb.try_recv().unwrap().error_code, NOT_COORDINATOR);
        assert!(!c.exists("g"));
        assert_eq!(c.heartbeat("g", 1, &a, 300), UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn a_join_phase_waits_for_members_given_their_id() {
        let c = GroupCoordinator::new(0);
        let a = join(&c, "", 0).try_recv().unwrap().member_id;
        let ja = join(&c, &a, 0).try_recv().unwrap();
        assert_eq!((ja.error_code, ja.generation_id), (NONE, 1));
        let b = join(&c, "", 100).try_recv().unwrap().member_id;
        let mut jb = join(&c, &b, 200);
        assert!(jb.try_recv().is_err(), "a rebalance for b");
        // c asks for its id while a has not rejoined yet.
        let cid = join(&c, "", 250).try_recv().unwrap();
        assert_eq!(cid.error_code, MEMBER_ID_REQUIRED);
        let mut ja = join(&c, &a, 300);
        assert!(ja.try_recv().is_err(), "the phase waits for c");
        let mut jc = join(&c, &cid.member_id, 400);
        let (ra, rb, rc) = (
            ja.try_recv().unwrap(),
            jb.try_recv().unwrap(),
            jc.try_recv().unwrap(),
        );
        assert_eq!(
            (ra.error_code, rb.error_code, rc.error_code),
            (NONE, NONE, NONE)
        );
        assert_eq!((ra.generation_id, rc.generation_id), (2, 2));
        // A member given an id that never comes back stops holding the phase once its
        // session ends.
        let d = join(&c, "", 500).try_recv().unwrap().member_id;
        assert_eq!(c.heartbeat("g", 2, &a, 600), NONE);
        let mut ja = join(&c, &a, 700);
        let _ = (join(&c, &b, 700), join(&c, &cid.member_id, 700));
        assert!(ja.try_recv().is_err(), "waits for d");
        c.tick(500 + 10_001);
        assert_eq!(ja.try_recv().unwrap().generation_id, 3);
        assert_eq!(
            join(&c, &d, 10_600).try_recv().unwrap().error_code,
            UNKNOWN_MEMBER_ID
        );
    }

    /// Kafka restarts every member's session when a join completes: a member that waited in
    /// JoinGroup longer than its session timeout is not expired before its SyncGroup.
    #[test]
    fn a_completed_join_restarts_every_session() {
        let c = GroupCoordinator::new(0);
        let a = join(&c, "", 0).try_recv().unwrap().member_id;
        let b = join(&c, "", 0).try_recv().unwrap().member_id;
        let mut ja = join(&c, &a, 0);
        let mut jb = join(&c, &b, 0);
        let (ra, _) = (ja.try_recv().unwrap(), jb.try_recv().unwrap());
        assert_eq!(ra.generation_id, 1);
        // b rejoins at 1 s and waits in JoinGroup until a rejoins at 9 s.
        let mut jb = join(&c, &b, 1_000);
        assert_eq!(c.heartbeat("g", 1, &a, 5_000), REBALANCE_IN_PROGRESS);
        c.tick(5_000);
        let mut ja = join(&c, &a, 9_000);
        assert_eq!(ja.try_recv().unwrap().generation_id, 2);
        assert_eq!(jb.try_recv().unwrap().generation_id, 2);
        // 11.5 s: b's last request was 10.5 s ago, but its session restarted at 9 s.
        c.tick(11_500);
        assert_eq!(c.heartbeat("g", 2, &b, 11_600), NONE);
    }

    /// KIP-345 and KIP-814: a static leader back in a stable group with the same protocols
    /// is told the members and to skip the assignment (v9+): nobody rebalances. Before v9 it
    /// rebalances, as Kafka does.
    #[test]
    fn a_static_leader_back_skips_the_assignment() {
        for (skip, rebalances) in [(true, false), (false, true)] {
            let c = GroupCoordinator::new(0);
            let request = |member: &str| JoinRequest {
                group_id: "g".into(),
                member_id: member.into(),
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                protocol_type: "consumer".into(),
                protocols: vec![("range".into(), Bytes::from_static(b"m"))],
                require_known_member_id: true,
                supports_skip_assignment: skip,
            };
            let j = c
                .join(request(""), 0, &consumer::NoTopics)
                .try_recv()
                .unwrap();
            assert_eq!((j.error_code, j.leader == j.member_id), (NONE, true));
            let mut s = c.sync(
                "g",
                1,
                &j.member_id,
                vec![(j.member_id.clone(), Bytes::from_static(b"a"))],
                0,
                &consumer::NoTopics,
            );
            assert_eq!(s.try_recv().unwrap().error_code, NONE);
            // Back under the same instance id, after a crash (no LeaveGroup).
            let mut back = c.join(request(""), 100, &consumer::NoTopics);
            match back.try_recv() {
                Ok(r) if !rebalances => {
                    assert_eq!(
                        (r.error_code, r.generation_id, r.skip_assignment),
                        (NONE, 1, true)
                    );
                    assert_eq!(r.members.len(), 1);
                    assert_eq!(r.leader, r.member_id);
                    let mut s = c.sync("g", 1, &r.member_id, Vec::new(), 100, &consumer::NoTopics);
                    assert_eq!(&s.try_recv().unwrap().assignment[..], b"a");
                }
                Ok(r) => assert_eq!((r.generation_id, r.skip_assignment), (2, false)),
                Err(_) => panic!("no answer"),
            }
        }
    }

    #[test]
    fn two_members_rebalance_sync_and_expire() {
        let c = GroupCoordinator::new(0);
        // New members first get an id.
        let a = join(&c, "", 0).try_recv().unwrap();
        assert_eq!(a.error_code, MEMBER_ID_REQUIRED);
        let mut ja = join(&c, &a.member_id, 0);
        let ja = ja.try_recv().unwrap();
        assert_eq!((ja.error_code, ja.generation_id), (NONE, 1));
        assert_eq!(ja.leader, a.member_id);
        assert_eq!(ja.members.len(), 1);
        let s = c
            .sync(
                "g",
                1,
                &a.member_id,
                vec![(a.member_id.clone(), Bytes::from_static(b"all"))],
                0,
                &consumer::NoTopics,
            )
            .try_recv()
            .unwrap();
        assert_eq!(&s.assignment[..], b"all");
        // A second member triggers a rebalance; the first learns from its heartbeat.
        let b = join(&c, "", 100).try_recv().unwrap();
        let mut jb = join(&c, &b.member_id, 100);
        assert!(jb.try_recv().is_err(), "waits for the others to rejoin");
        assert_eq!(
            c.heartbeat("g", 1, &a.member_id, 100),
            REBALANCE_IN_PROGRESS
        );
        // While the rebalance is prepared, a commits what it processed (Kafka allows it).
        assert_eq!(c.check_commit("g", 1, &a.member_id), NONE);
        let mut ja = join(&c, &a.member_id, 200);
        let (ra, rb) = (ja.try_recv().unwrap(), jb.try_recv().unwrap());
        assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
        assert_eq!(ra.members.len(), 2, "the leader sees both");
        assert!(rb.members.is_empty());
        let mut sb = c.sync("g", 2, &b.member_id, vec![], 200, &consumer::NoTopics);
        assert!(sb.try_recv().is_err(), "followers wait for the leader");
        assert_eq!(c.check_commit("g", 2, &b.member_id), REBALANCE_IN_PROGRESS);
        assert_eq!(c.check_commit("g", 1, &b.member_id), ILLEGAL_GENERATION);
        let assign = vec![
            (a.member_id.clone(), Bytes::from_static(b"p0")),
            (b.member_id.clone(), Bytes::from_static(b"p1")),
        ];
        assert_eq!(
            &c.sync("g", 2, &a.member_id, assign, 200, &consumer::NoTopics)
                .try_recv()
                .unwrap()
                .assignment[..],
            b"p0"
        );
        assert_eq!(&sb.try_recv().unwrap().assignment[..], b"p1");
        assert_eq!(c.heartbeat("g", 1, &a.member_id, 300), ILLEGAL_GENERATION);
        assert_eq!(c.check_commit("g", 2, &b.member_id), NONE);
        // b stops heartbeating: its session expires and a rebalance starts.
        c.heartbeat("g", 2, &a.member_id, 10_000);
        c.tick(10_500);
        assert_eq!(
            c.describe("g", &|_| None).unwrap().state,
            "PreparingRebalance"
        );
        assert_eq!(c.heartbeat("g", 2, &b.member_id, 10_500), UNKNOWN_MEMBER_ID);
        let ra = join(&c, &a.member_id, 10_600).try_recv().unwrap();
        assert_eq!((ra.generation_id, ra.members.len()), (3, 1));
        // Leaving empties the group; it can then be deleted.
        assert_eq!(c.leave("g", &a.member_id, None, 10_700), NONE);
        assert_eq!(c.describe("g", &|_| None).unwrap().state, "Empty");
        // Offsets expire only once the group has been empty for the retention time.
        assert_eq!(
            c.expirable(&[("g".into(), 5_000)], 10_700),
            Vec::<String>::new(),
            "empty since 10_700"
        );
        assert_eq!(
            c.expirable(&[("g".into(), 5_000)], 10_701),
            vec!["g".to_string()]
        );
        assert_eq!(c.delete("g"), NONE);
        assert_eq!(c.delete("g"), GROUP_ID_NOT_FOUND);
    }

    #[test]
    fn bad_joins_get_kafkas_errors() {
        let c = GroupCoordinator::new(0);
        let mut r = JoinRequest {
            group_id: String::new(),
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: false,
            supports_skip_assignment: false,
        };
        assert_eq!(
            c.join(r.clone(), 0, &consumer::NoTopics)
                .try_recv()
                .unwrap()
                .error_code,
            INVALID_GROUP_ID
        );
        r.group_id = "g".into();
        r.session_timeout_ms = 10;
        assert_eq!(
            c.join(r.clone(), 0, &consumer::NoTopics)
                .try_recv()
                .unwrap()
                .error_code,
            INVALID_SESSION_TIMEOUT
        );
        r.session_timeout_ms = 10_000;
        r.member_id = "nobody".into();
        assert_eq!(
            c.join(r.clone(), 0, &consumer::NoTopics)
                .try_recv()
                .unwrap()
                .error_code,
            UNKNOWN_MEMBER_ID
        );
        r.member_id = String::new();
        assert_eq!(
            c.join(r.clone(), 0, &consumer::NoTopics)
                .try_recv()
                .unwrap()
                .error_code,
            NONE
        );
        r.protocols = vec![("other".into(), Bytes::new())];
        assert_eq!(
            c.join(r, 0, &consumer::NoTopics)
                .try_recv()
                .unwrap()
                .error_code,
            INCONSISTENT_GROUP_PROTOCOL
        );
    }
}
