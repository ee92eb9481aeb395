//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): the broker computes
//! the assignment, and each member moves toward it through its own heartbeats, so no member
//! stops for another's rebalance.
//!
//! Three epochs drive it, as in Kafka. The group epoch rises whenever something that shapes
//! the assignment changes (a member joins, leaves or changes its subscription; a subscribed
//! topic gains partitions). The assignment epoch is the group epoch the target assignment
//! was computed for. A member's epoch reaches the assignment epoch once the member has given
//! up every partition the target takes from it; partitions it gains are handed over only
//! when their previous owner has released them.
//!
//! Like `state.rs`, this is a state machine without I/O or a clock: time and the topics'
//! metadata are passed in.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

use super::assignor::{self, contains, count, insert, intersects, split, Assignment, ASSIGNORS};
use super::codes::{GROUP_MAX_SIZE_REACHED, NONE, UNKNOWN_MEMBER_ID};

pub const INVALID_REQUEST: i16 = 42;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;

/// A subscription regex as Kafka applies it (RE2J `matches`): the whole topic name.
fn compile(regex: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{regex})$")).ok()
}

/// The member epochs a leaving member sends: -1 leaves, -2 leaves for now (static members).
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// What the coordinator needs to know about topics.
pub trait Topics {
    /// The topic's id and partition count.
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)>;
    fn name_of(&self, id: &Uuid) -> Option<String>;
    /// Every topic a regex subscription may match (internal topics left out).
    fn names(&self) -> Vec<String>;
}

/// No topics at all (tests of the classic protocol).
pub struct NoTopics;

impl Topics for NoTopics {
    fn lookup(&self, _: &str) -> Option<(Uuid, i32)> {
        None
    }
    fn name_of(&self, _: &Uuid) -> Option<String> {
        None
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A classic consumer's JoinGroup metadata (ConsumerProtocolSubscription, after its version):
/// the topics it subscribes to and the partitions it owns (v1+), by topic name.
pub fn decode_subscription(meta: &bytes::Bytes) -> Option<(Vec<String>, ByName)> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut b = meta.clone();
    if b.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    bytes::Buf::advance(&mut b, 2);
    let s = ConsumerProtocolSubscription::decode(&mut b, version.clamp(0, 3)).ok()?;
    Some((
        s.topics.iter().map(|t| t.as_str().to_string()).collect(),
        s.owned_partitions
            .iter()
            .map(|o| (o.topic.0.as_str().to_string(), o.partitions.clone()))
            .collect(),
    ))
}

/// Partitions by topic name, as classic consumers' metadata carries them.
pub type ByName = Vec<(String, Vec<i32>)>;

/// A classic assignment (ConsumerProtocolAssignment after its version), by topic name.
pub fn decode_classic_assignment(data: &bytes::Bytes) -> ByName {
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Decodable;
    let mut b = data.clone();
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    bytes::Buf::advance(&mut b, 2);
    ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .iter()
                .map(|t| (t.topic.0.as_str().to_string(), t.partitions.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Partitions by topic name to partitions by topic id (unknown topics left out).
pub fn by_id(list: &[(String, Vec<i32>)], topics: &dyn Topics) -> Assignment {
    let mut a = Assignment::new();
    for (name, ps) in list {
        if let Some((id, _)) = topics.lookup(name) {
            a.entry(id).or_default().extend(ps.iter().copied());
        }
    }
    a
}

/// A ConsumerGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatReply {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed since the member last heard it.
    pub assignment: Option<Assignment>,
}

impl HeartbeatReply {
    fn error(code: i16, message: &str) -> HeartbeatReply {
        HeartbeatReply {
            error_code: code,
            error_message: Some(message.to_string()),
            ..HeartbeatReply::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum MemberState {
    /// Holds what the target gives it, or waits for nothing.
    Stable,
    /// Must release partitions (`revoking`) before it moves on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

/// A member as persisted (see `Group`); the fields marked `skip` are runtime only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Member {
    epoch: i32,
    previous_epoch: i32,
    state: MemberState,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    subscribed: BTreeSet<String>,
    regex: Option<String>,
    server_assignor: Option<String>,
    /// The partitions given to the member.
    assigned: Assignment,
    /// Partitions taken from the member that it has not confirmed releasing yet.
    revoking: Assignment,
    #[serde(skip)]
    revoke_deadline_ms: i64,
    #[serde(skip)]
    last_heartbeat_ms: i64,
    /// What the member last heard as its assignment (None: nothing yet).
    #[serde(skip)]
    last_sent: Option<Assignment>,
    /// Set for a member that speaks the classic protocol (JoinGroup/SyncGroup/Heartbeat).
    classic: Option<Classic>,
}

/// What a classic member of a consumer group keeps from its JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classic {
    pub session_timeout_ms: i32,
    /// The assignor name the member is answered with (its first choice): the member
    /// follows that assignor's rules (eager or cooperative) when its assignment changes.
    pub protocol: String,
}

/// A classic member's JoinGroup into a consumer group, decoded.
#[derive(Debug, Clone)]
pub struct ClassicJoin {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub classic: Classic,
    /// From the member's ConsumerProtocolSubscription: its topics and owned partitions.
    pub subscribed: BTreeSet<String>,
    pub owned: Assignment,
}

/// A classic member of a classic group that becomes a consumer group.
#[derive(Debug, Clone)]
pub struct Converted {
    pub member_id: String,
    pub join: ClassicJoin,
    pub assigned: Assignment,
    pub last_heartbeat_ms: i64,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct Description {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub regex: Option<String>,
    pub assignment: Assignment,
    pub target: Assignment,
    /// The member speaks the classic protocol.
    pub classic: bool,
}

/// A consumer group. It is persisted as it is (JSON in `__consumer_offsets`, see
/// `GroupCoordinator::snapshots`), so a restarted coordinator knows every member, epoch and
/// assignment.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: HashMap<String, Assignment>,
    /// The subscribed topics' ids and partition counts the target was computed over.
    topics: BTreeMap<String, (Uuid, i32)>,
    assignor: String,
    /// Each subscription regex in use with the topics it matches now.
    #[serde(default)]
    resolved: BTreeMap<String, BTreeSet<String>>,
}

/// Consumer-protocol settings: `group.consumer.session.timeout.ms`,
/// `group.consumer.heartbeat.interval.ms`, `group.consumer.max.size` and
/// `group.consumer.assignors`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    /// Members a group may hold (Kafka's default: unlimited, `Integer.MAX_VALUE`).
    pub max_size: usize,
    /// The server assignors members may name, a non-empty subset of `ASSIGNORS`; the first
    /// is the default.
    pub assignors: &'static [&'static str],
}

impl Timing {
    /// The assignor of a group whose members name none.
    pub fn default_assignor(&self) -> &'static str {
        self.assignors.first().copied().unwrap_or(ASSIGNORS[0])
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            assignors: ASSIGNORS,
        }
    }
}

impl Group {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .filter(|m| m.epoch != STATIC_LEAVE_EPOCH)
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.members
            .values()
            .any(|m| self.subscription(m).contains(topic))
    }

    /// A member's topics: those it names and those its regex matches.
    fn subscription(&self, m: &Member) -> BTreeSet<String> {
        let mut all = m.subscribed.clone();
        if let Some(found) = m.regex.as_ref().and_then(|r| self.resolved.get(r)) {
            all.extend(found.iter().cloned());
        }
        all
    }

    /// OffsetCommit's check: the member exists and commits at its current epoch.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> i16 {
        if epoch < 0 && self.members.is_empty() {
            // A commit from outside the group protocol (assign() consumers, admin tools),
            // whatever member id it carries.
            return NONE;
        }
        match self.members.get(member_id) {
            None => UNKNOWN_MEMBER_ID,
            Some(m) if epoch == m.epoch => NONE,
            Some(m) if epoch < m.epoch => STALE_MEMBER_EPOCH,
            Some(_) => FENCED_MEMBER_EPOCH,
        }
    }

    /// The partitions held by members other than `except`: assigned or still being revoked.
    fn held_by_others(&self, except: &str) -> Assignment {
        let mut held = Assignment::new();
        for (id, m) in &self.members {
            if id != except {
                for a in [&m.assigned, &m.revoking] {
                    for (t, ps) in a {
                        held.entry(*t).or_default().extend(ps.iter().copied());
                    }
                }
            }
        }
        held
    }

    fn bump(&mut self) {
        self.epoch += 1;
    }

    fn remove_member(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.bump();
        }
    }

    /// The subscribed topics as they are now; a change (created, deleted, more partitions)
    /// raises the group epoch.
    fn refresh_topics(&mut self, topics: &dyn Topics) {
        let regexes: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.regex.as_ref())
            .collect();
        self.resolved = if regexes.is_empty() {
            BTreeMap::new()
        } else {
            let all = topics.names();
            regexes
                .into_iter()
                .map(|r| {
                    let found = compile(r)
                        .map(|re| all.iter().filter(|t| re.is_match(t)).cloned().collect())
                        .unwrap_or_default();
                    (r.clone(), found)
                })
                .collect()
        };
        let names: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| self.subscription(m))
            .collect();
        let now: BTreeMap<String, (Uuid, i32)> = names
            .into_iter()
            .filter_map(|n| topics.lookup(&n).map(|x| (n, x)))
            .collect();
        if now != self.topics {
            self.topics = now;
            self.bump();
        }
    }

    /// The assignor the members ask for most (`default` when none asks).
    fn choose_assignor(&self, default: &str) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| default.to_string())
    }

    fn compute_target(&mut self, default_assignor: &str) {
        super::state::REBALANCES.inc();
        self.assignor = self.choose_assignor(default_assignor);
        let owned: BTreeMap<&String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id, self.subscription(m)))
            .collect();
        let subs: BTreeMap<&String, &BTreeSet<String>> =
            owned.iter().map(|(id, s)| (*id, s)).collect();
        self.target = assignor::assign(&self.assignor, &subs, &self.topics, &self.target);
        self.assignment_epoch = self.epoch;
    }

    /// Moves the member one step toward its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let held = self.held_by_others(id);
        let target = self.target.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.state == MemberState::UnrevokedPartitions {
            match owned {
                Some(o) if !intersects(o, &m.revoking) => m.revoking.clear(),
                _ => return,
            }
        }
        let (revoke, keep) = split(&m.assigned, &target);
        if count(&revoke) > 0 {
            m.assigned = keep;
            m.revoking = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline_ms = now_ms + i64::from(m.rebalance_timeout_ms);
            return;
        }
        let (new, _) = split(&target, &m.assigned);
        let mut waiting = false;
        for (t, ps) in &new {
            for &p in ps {
                if contains(&held, t, p) {
                    waiting = true;
                } else {
                    insert(&mut m.assigned, *t, p);
                }
            }
        }
        if m.epoch != assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
        m.state = if waiting {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// The group as ConsumerGroupDescribe shows it; `default_assignor` names the assignor
    /// of a group that has computed no assignment yet.
    pub fn describe(&self, default_assignor: &str) -> Description {
        Description {
            state: self.state(),
            group_epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: if self.assignor.is_empty() {
                default_assignor.to_string()
            } else {
                self.assignor.clone()
            },
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.iter().cloned().collect(),
                    regex: m.regex.clone(),
                    assignment: m.assigned.clone(),
                    target: self.target.get(id).cloned().unwrap_or_default(),
                    classic: m.classic.is_some(),
                })
                .collect(),
        }
    }

    /// After a restore: every member gets a full session (and rebalance timeout) from now.
    pub fn restored(mut self, now_ms: i64) -> Group {
        for m in self.members.values_mut() {
            m.last_heartbeat_ms = now_ms;
            m.revoke_deadline_ms = now_ms + i64::from(m.rebalance_timeout_ms);
        }
        self
    }

    /// Members whose session lapsed or who held on to revoked partitions past their
    /// rebalance timeout leave the group.
    pub fn tick(&mut self, now_ms: i64, timing: Timing) {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now_ms - m.last_heartbeat_ms
                    > i64::from(
                        m.classic
                            .as_ref()
                            .map_or(timing.session_timeout_ms, |c| c.session_timeout_ms),
                    )
                    || (m.state == MemberState::UnrevokedPartitions
                        && now_ms > m.revoke_deadline_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            tracing::info!(member = %id, "consumer group member fenced (session or rebalance timeout)");
            self.remove_member(&id);
        }
    }

    /// One ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        req: &Heartbeat,
        now_ms: i64,
        timing: Timing,
        topics: &dyn Topics,
    ) -> HeartbeatReply {
        if let Some(message) = invalid(req) {
            return HeartbeatReply::error(INVALID_REQUEST, message);
        }
        if let Some(a) = &req.server_assignor {
            if !timing.assignors.contains(&a.as_str()) {
                return HeartbeatReply::error(
                    UNSUPPORTED_ASSIGNOR,
                    &format!(
                        "ServerAssignor {a} is not supported. Supported assignors: {}.",
                        timing.assignors.join(", ")
                    ),
                );
            }
        }
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(req);
        }
        if let Some(r) = &req.subscribed_topic_regex {
            if !r.is_empty() && compile(r).is_none() {
                return HeartbeatReply::error(
                    INVALID_REGULAR_EXPRESSION,
                    &format!("invalid regular expression: {r}"),
                );
            }
        }
        let epoch_before = self.epoch;
        let id = if req.member_epoch == 0 {
            match self.join(req, now_ms, timing.max_size) {
                Ok(id) => id,
                Err(reply) => return reply,
            }
        } else {
            let Some(m) = self.members.get(&req.member_id) else {
                return unknown_member(req);
            };
            let resent = req.member_epoch == m.previous_epoch
                && req
                    .owned
                    .as_ref()
                    .is_some_and(|o| count(&split(o, &m.assigned).0) == 0);
            if req.member_epoch != m.epoch && !resent {
                let than = if req.member_epoch > m.epoch {
                    "greater"
                } else {
                    "smaller"
                };
                return HeartbeatReply::error(
                    FENCED_MEMBER_EPOCH,
                    &format!(
                        "The consumer group member has a {than} member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        req.member_epoch, m.epoch
                    ),
                );
            }
            req.member_id.clone()
        };
        // Fields that are null stay as they were.
        let mut changed = false;
        if let Some(m) = self.members.get_mut(&id) {
            m.last_heartbeat_ms = now_ms;
            if req.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            }
            if req.rack_id.is_some() {
                m.rack_id = req.rack_id.clone();
            }
            if let Some(names) = &req.subscribed_topic_names {
                let names: BTreeSet<String> = names.iter().cloned().collect();
                changed |= names != m.subscribed;
                m.subscribed = names;
            }
            if let Some(r) = &req.subscribed_topic_regex {
                // An empty regex clears the regex subscription.
                let r = (!r.is_empty()).then(|| r.clone());
                changed |= r != m.regex;
                m.regex = r;
            }
            if req.server_assignor.is_some() {
                changed |= req.server_assignor != m.server_assignor;
                m.server_assignor = req.server_assignor.clone();
            }
        }
        if changed {
            self.bump();
        }
        self.refresh_topics(topics);
        // One heartbeat moves the group epoch at most once, as Kafka's does: a new member,
        // its subscription and the topics it brings are one change.
        if self.epoch > epoch_before {
            self.epoch = epoch_before + 1;
        }
        if self.assignment_epoch < self.epoch {
            self.compute_target(timing.default_assignor());
        }
        self.reconcile(&id, req.owned.as_ref(), now_ms);
        let Some(m) = self.members.get_mut(&id) else {
            return unknown_member(req);
        };
        let assignment = if m.last_sent.as_ref() != Some(&m.assigned) || req.member_epoch == 0 {
            m.last_sent = Some(m.assigned.clone());
            Some(m.assigned.clone())
        } else {
            None
        };
        HeartbeatReply {
            error_code: NONE,
            error_message: None,
            member_id: id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: timing.heartbeat_interval_ms,
            assignment,
        }
    }

    /// A classic group whose members carry on in a consumer group (a consumer-protocol
    /// member joined it): the generation becomes the group epoch and each member's current
    /// assignment its assignment and target, so nobody loses anything by the conversion.
    pub fn from_classic(generation: i32, members: Vec<Converted>) -> Group {
        let mut g = Group {
            epoch: generation,
            assignment_epoch: generation,
            ..Group::default()
        };
        for c in members {
            g.target.insert(c.member_id.clone(), c.assigned.clone());
            let member = g.classic_member(&c.join, c.last_heartbeat_ms);
            g.members.insert(
                c.member_id,
                Member {
                    epoch: generation,
                    previous_epoch: generation,
                    assigned: c.assigned.clone(),
                    last_sent: Some(c.assigned),
                    ..member
                },
            );
        }
        g
    }

    fn classic_member(&self, j: &ClassicJoin, now_ms: i64) -> Member {
        Member {
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            instance_id: j.instance_id.clone(),
            rack_id: None,
            client_id: j.client_id.clone(),
            client_host: j.client_host.clone(),
            rebalance_timeout_ms: j.rebalance_timeout_ms,
            subscribed: j.subscribed.clone(),
            regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            revoke_deadline_ms: 0,
            last_heartbeat_ms: now_ms,
            last_sent: None,
            classic: Some(j.classic.clone()),
        }
    }

    /// A classic member's JoinGroup: the member is added (or updated) like a heartbeat with
    /// its owned partitions, and answered at once with its member epoch as the generation.
    /// Returns (generation, protocol name) or an error code.
    pub fn classic_join(
        &mut self,
        j: &ClassicJoin,
        now_ms: i64,
        timing: Timing,
        topics: &dyn Topics,
    ) -> Result<(i32, String), i16> {
        let epoch_before = self.epoch;
        let id = j.member_id.clone();
        if let Some(instance) = &j.instance_id {
            if let Some((pid, _)) = self
                .members
                .iter()
                .find(|(pid, m)| m.instance_id.as_ref() == Some(instance) && **pid != id)
            {
                // A static member back under a new member id takes its old place.
                let pid = pid.clone();
                if let Some(old) = self.members.remove(&pid) {
                    self.members.insert(id.clone(), old);
                }
                if let Some(t) = self.target.remove(&pid) {
                    self.target.insert(id.clone(), t);
                }
            }
        }
        match self.members.get_mut(&id) {
            Some(m) => {
                if m.subscribed != j.subscribed {
                    m.subscribed = j.subscribed.clone();
                    self.epoch += 1;
                }
                let m = self.members.get_mut(&id).expect("present");
                m.classic = Some(j.classic.clone());
                m.rebalance_timeout_ms = j.rebalance_timeout_ms;
                m.last_heartbeat_ms = now_ms;
                if m.epoch == STATIC_LEAVE_EPOCH {
                    m.epoch = m.previous_epoch;
                }
            }
            None => {
                if self.members.len() >= timing.max_size {
                    return Err(GROUP_MAX_SIZE_REACHED);
                }
                let m = self.classic_member(j, now_ms);
                self.members.insert(id.clone(), m);
                self.bump();
            }
        }
        self.refresh_topics(topics);
        // One heartbeat moves the group epoch at most once, as Kafka's does: a new member,
        // its subscription and the topics it brings are one change.
        if self.epoch > epoch_before {
            self.epoch = epoch_before + 1;
        }
        if self.assignment_epoch < self.epoch {
            self.compute_target(timing.default_assignor());
        }
        self.reconcile(&id, Some(&j.owned), now_ms);
        let m = &self.members[&id];
        Ok((m.epoch, j.classic.protocol.clone()))
    }

    /// A classic member's SyncGroup: its current assignment.
    pub fn classic_sync(&mut self, member_id: &str, generation: i32) -> Result<Assignment, i16> {
        let m = self.members.get_mut(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
        if generation != m.epoch {
            return Err(super::state::ILLEGAL_GENERATION);
        }
        m.last_sent = Some(m.assigned.clone());
        Ok(m.assigned.clone())
    }

    /// A classic member's Heartbeat: REBALANCE_IN_PROGRESS once its assignment should change,
    /// so that it rejoins (and, if it must, gives partitions up first).
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now_ms: i64,
        timing: Timing,
    ) -> i16 {
        let Some(m) = self.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        m.last_heartbeat_ms = now_ms;
        if generation != m.epoch {
            return super::state::ILLEGAL_GENERATION;
        }
        if self.assignment_epoch < self.epoch {
            self.compute_target(timing.default_assignor());
        }
        self.reconcile(member_id, None, now_ms);
        let m = &self.members[member_id];
        if m.state == MemberState::UnrevokedPartitions
            || m.epoch != generation
            || m.last_sent.as_ref() != Some(&m.assigned)
        {
            super::state::REBALANCE_IN_PROGRESS
        } else {
            NONE
        }
    }

    /// A classic member's LeaveGroup (by member id, or instance id for static members).
    pub fn classic_leave(&mut self, member_id: &str, instance_id: Option<&str>) -> i16 {
        let id = if member_id.is_empty() {
            match self
                .members
                .iter()
                .find(|(_, m)| instance_id.is_some() && m.instance_id.as_deref() == instance_id)
            {
                Some((id, _)) => id.clone(),
                None => return UNKNOWN_MEMBER_ID,
            }
        } else {
            member_id.to_string()
        };
        if !self.members.contains_key(&id) {
            return UNKNOWN_MEMBER_ID;
        }
        self.remove_member(&id);
        NONE
    }

    /// The protocol name a classic member is answered with (the first it offered).
    pub fn classic_protocol(&self, member_id: &str) -> Option<String> {
        let c = self.members.get(member_id)?.classic.as_ref()?;
        Some(c.protocol.clone())
    }

    fn leave(&mut self, req: &Heartbeat) -> HeartbeatReply {
        let id = if self.members.contains_key(&req.member_id) {
            req.member_id.clone()
        } else if let Some(i) = &req.instance_id {
            match self
                .members
                .iter()
                .find(|(_, m)| m.instance_id.as_ref() == Some(i))
            {
                Some((id, _)) => id.clone(),
                None => return unknown_member(req),
            }
        } else {
            return unknown_member(req);
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_some() {
            // A static member leaving for now keeps its partitions until its session ends
            // or it comes back under the same instance id.
            if let Some(m) = self.members.get_mut(&id) {
                m.previous_epoch = m.epoch;
                m.epoch = STATIC_LEAVE_EPOCH;
            }
        } else {
            self.remove_member(&id);
        }
        HeartbeatReply {
            member_id: id,
            member_epoch: req.member_epoch,
            ..HeartbeatReply::default()
        }
    }

    /// A member with epoch 0: new, rejoining after being fenced, or a static member back.
    fn join(
        &mut self,
        req: &Heartbeat,
        now_ms: i64,
        max_size: usize,
    ) -> Result<String, HeartbeatReply> {
        let id = if req.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        let mut inherited: Option<Member> = None;
        if let Some(instance) = &req.instance_id {
            let previous = self
                .members
                .iter()
                .find(|(_, m)| m.instance_id.as_ref() == Some(instance))
                .map(|(pid, m)| (pid.clone(), m.epoch));
            if let Some((pid, epoch)) = previous {
                if epoch != STATIC_LEAVE_EPOCH && pid != id {
                    return Err(HeartbeatReply::error(
                        UNRELEASED_INSTANCE_ID,
                        &format!("instance id {instance} is in use by another member"),
                    ));
                }
                // The static member is back: it takes its old assignment and epoch over,
                // and the group does not rebalance.
                inherited = self.members.remove(&pid);
                if let Some(t) = self.target.remove(&pid) {
                    self.target.insert(id.clone(), t);
                }
            }
        }
        if inherited.is_none() && self.members.remove(&id).is_some() {
            // Rejoining after being fenced: it starts over.
            self.target.remove(&id);
            self.bump();
        }
        if inherited.is_none() && self.members.len() >= max_size {
            return Err(HeartbeatReply::error(
                GROUP_MAX_SIZE_REACHED,
                "the group has reached its maximum size",
            ));
        }
        let member = match inherited {
            Some(mut m) => {
                m.epoch = m.previous_epoch;
                m.last_sent = None;
                m
            }
            None => {
                self.bump();
                Member {
                    epoch: 0,
                    previous_epoch: 0,
                    state: MemberState::Stable,
                    instance_id: req.instance_id.clone(),
                    rack_id: req.rack_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    rebalance_timeout_ms: req.rebalance_timeout_ms,
                    subscribed: BTreeSet::new(),
                    regex: None,
                    server_assignor: None,
                    assigned: Assignment::new(),
                    revoking: Assignment::new(),
                    revoke_deadline_ms: 0,
                    last_heartbeat_ms: now_ms,
                    last_sent: None,
                    classic: None,
                }
            }
        };
        self.members.insert(id.clone(), member);
        Ok(id)
    }
}

/// An assignment as a classic consumer's SyncGroup carries it: ConsumerProtocolAssignment
/// v0, prefixed by its version. Topics whose name is unknown (deleted) are left out.
pub fn encode_classic_assignment(
    a: &Assignment,
    names: &dyn Fn(&Uuid) -> Option<String>,
) -> bytes::Bytes {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::{ConsumerProtocolAssignment, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut msg = ConsumerProtocolAssignment::default();
    for (t, ps) in a {
        if let Some(name) = names(t) {
            let mut tp = TopicPartition::default();
            tp.topic = TopicName(StrBytes::from_string(name));
            tp.partitions = ps.iter().copied().collect();
            msg.assigned_partitions.push(tp);
        }
    }
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    if msg.encode(&mut out, 0).is_err() {
        return bytes::Bytes::new();
    }
    out.freeze()
}

/// Kafka's checks of a ConsumerGroupHeartbeat, with its messages: the fields a request must
/// (or must not) carry for its member epoch.
/// Kafka's answer to a heartbeat from a member the group does not have.
fn unknown_member(req: &Heartbeat) -> HeartbeatReply {
    HeartbeatReply::error(
        UNKNOWN_MEMBER_ID,
        &format!(
            "Member {} is not a member of group {}.",
            req.member_id, req.group_id
        ),
    )
}

pub(crate) fn invalid(req: &Heartbeat) -> Option<&'static str> {
    let blank = |s: Option<&String>| s.is_some_and(|s| s.trim().is_empty());
    if (req.version >= 1 || req.member_epoch > 0 || req.member_epoch == LEAVE_EPOCH)
        && req.member_id.trim().is_empty()
    {
        return Some("MemberId can't be empty.");
    }
    if req.group_id.trim().is_empty() {
        return Some("GroupId can't be empty.");
    }
    if blank(req.instance_id.as_ref()) {
        return Some("InstanceId can't be empty.");
    }
    if blank(req.rack_id.as_ref()) {
        return Some("RackId can't be empty.");
    }
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return Some("RebalanceTimeoutMs must be provided in first request.");
            }
            if req.owned.as_ref().is_none_or(|o| count(o) > 0) {
                return Some("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return Some(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
                );
            }
        }
        STATIC_LEAVE_EPOCH if req.instance_id.is_none() => {
            return Some("InstanceId can't be null.");
        }
        e if e < STATIC_LEAVE_EPOCH => return Some("MemberEpoch is invalid."),
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(BTreeMap<String, (Uuid, i32)>);

    impl Topics for Fixed {
        fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.get(name).copied()
        }
        fn name_of(&self, id: &Uuid) -> Option<String> {
            self.0
                .iter()
                .find(|(_, (t, _))| t == id)
                .map(|(n, _)| n.clone())
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    fn topics(list: &[(&str, i32)]) -> Fixed {
        Fixed(
            list.iter()
                .enumerate()
                .map(|(i, (n, p))| (n.to_string(), (Uuid::from_u128(i as u128 + 1), *p)))
                .collect(),
        )
    }

    fn hb(member: &str, epoch: i32, owned: Option<&Assignment>) -> Heartbeat {
        Heartbeat {
            version: 1,
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
            owned: owned
                .cloned()
                .or_else(|| (epoch == 0).then(Assignment::new)),
            ..Heartbeat::default()
        }
    }

    /// Heartbeats until the member's epoch and assignment stop changing; returns them.
    fn settle(
        g: &mut Group,
        member: &str,
        held: &mut Assignment,
        epoch: &mut i32,
        now: i64,
        t: &Fixed,
    ) {
        for _ in 0..4 {
            let r = g.heartbeat(&hb(member, *epoch, Some(held)), now, Timing::default(), t);
            assert_eq!(r.error_code, NONE, "{r:?}");
            *epoch = r.member_epoch;
            if let Some(a) = r.assignment {
                *held = a;
            }
        }
    }

    #[test]
    fn a_second_member_gets_half_only_after_the_first_releases_it() {
        let t = topics(&[("t", 6)]);
        let mut g = Group::default();
        let r = g.heartbeat(&hb("a", 0, None), 0, Timing::default(), &t);
        assert_eq!(r.error_code, NONE);
        assert_eq!(count(r.assignment.as_ref().unwrap()), 6);
        let (mut a_held, mut a_epoch) = (r.assignment.unwrap(), r.member_epoch);
        assert_eq!(g.state(), "Stable");

        // b joins: its target is 3 partitions, all still held by a.
        let r = g.heartbeat(&hb("b", 0, None), 1, Timing::default(), &t);
        assert_eq!(count(r.assignment.as_ref().unwrap()), 0);
        let (mut b_held, mut b_epoch) = (r.assignment.unwrap(), r.member_epoch);
        assert_eq!(g.state(), "Reconciling");

        // a hears it must give three up; its epoch stays until it has.
        let r = g.heartbeat(&hb("a", a_epoch, Some(&a_held)), 2, Timing::default(), &t);
        assert_eq!(r.member_epoch, a_epoch);
        let keep = r.assignment.unwrap();
        assert_eq!(count(&keep), 3);
        // b still waits: a has not confirmed.
        settle(&mut g, "b", &mut b_held, &mut b_epoch, 3, &t);
        assert_eq!(count(&b_held), 0);
        // a confirms; then b gets the three.
        a_held = keep;
        settle(&mut g, "a", &mut a_held, &mut a_epoch, 4, &t);
        settle(&mut g, "b", &mut b_held, &mut b_epoch, 5, &t);
        assert_eq!(count(&a_held), 3);
        assert_eq!(count(&b_held), 3);
        assert!(!intersects(&a_held, &b_held));
        assert_eq!(a_epoch, b_epoch);
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn fencing_stale_epochs_and_expiry() {
        let t = topics(&[("t", 4)]);
        let mut g = Group::default();
        let r = g.heartbeat(&hb("a", 0, None), 0, Timing::default(), &t);
        let e = r.member_epoch;
        let r = g.heartbeat(&hb("a", e + 5, None), 1, Timing::default(), &t);
        assert_eq!(r.error_code, FENCED_MEMBER_EPOCH);
        let r = g.heartbeat(&hb("zz", 3, None), 1, Timing::default(), &t);
        assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
        assert_eq!(g.check_commit("a", e), NONE);
        assert_eq!(g.check_commit("a", e - 1), STALE_MEMBER_EPOCH);
        assert_eq!(g.check_commit("", -1), UNKNOWN_MEMBER_ID);
        g.tick(46_000, Timing::default());
        assert!(g.is_empty());
        assert_eq!(g.check_commit("", -1), NONE);
    }

    #[test]
    fn bad_joins_are_refused() {
        let t = topics(&[("t", 4)]);
        let mut g = Group::default();
        let mut r = hb("", 0, None);
        assert_eq!(
            g.heartbeat(&r, 0, Timing::default(), &t).error_code,
            INVALID_REQUEST
        );
        r.version = 0;
        let ok = g.heartbeat(&r, 0, Timing::default(), &t);
        assert_eq!(ok.error_code, NONE);
        assert!(!ok.member_id.is_empty());
        let mut r = hb("b", 0, None);
        r.server_assignor = Some("sticky".into());
        assert_eq!(
            g.heartbeat(&r, 0, Timing::default(), &t).error_code,
            UNSUPPORTED_ASSIGNOR
        );
        let mut r = hb("b", 0, None);
        r.owned = None;
        assert_eq!(
            g.heartbeat(&r, 0, Timing::default(), &t).error_code,
            INVALID_REQUEST
        );
        let mut r = hb("b", 0, None);
        r.rebalance_timeout_ms = -1;
        assert_eq!(
            g.heartbeat(&r, 0, Timing::default(), &t).error_code,
            INVALID_REQUEST
        );
    }

    #[test]
    fn a_static_member_comes_back_without_a_rebalance() {
        let t = topics(&[("t", 4)]);
        let mut g = Group::default();
        let mut a = hb("a", 0, None);
        a.instance_id = Some("i1".into());
        let ra = g.heartbeat(&a, 0, Timing::default(), &t);
        let rb = g.heartbeat(&hb("b", 0, None), 0, Timing::default(), &t);
        let (mut b_held, mut b_epoch) = (rb.assignment.unwrap(), rb.member_epoch);
        let mut a_held = ra.assignment.unwrap();
        let mut a_epoch = ra.member_epoch;
        settle(&mut g, "a", &mut a_held, &mut a_epoch, 1, &t);
        settle(&mut g, "b", &mut b_held, &mut b_epoch, 1, &t);
        assert_eq!(g.state(), "Stable");
        let epoch = g.epoch;
        let mut leave = hb("a", STATIC_LEAVE_EPOCH, None);
        leave.instance_id = Some("i1".into());
        assert_eq!(
            g.heartbeat(&leave, 2, Timing::default(), &t).error_code,
            NONE
        );
        let mut back = hb("a2", 0, None);
        back.instance_id = Some("i1".into());
        let r = g.heartbeat(&back, 3, Timing::default(), &t);
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.assignment.unwrap(), a_held);
        assert_eq!(g.epoch, epoch, "no rebalance");
        // An active instance id cannot be taken.
        let mut thief = hb("a3", 0, None);
        thief.instance_id = Some("i1".into());
        assert_eq!(
            g.heartbeat(&thief, 4, Timing::default(), &t).error_code,
            UNRELEASED_INSTANCE_ID
        );
    }

    #[test]
    fn a_regex_subscription_follows_the_topics_it_matches() {
        let mut t = topics(&[("orders-eu", 2), ("orders-us", 2), ("payments", 2)]);
        let mut g = Group::default();
        let mut r = hb("a", 0, None);
        r.subscribed_topic_names = None;
        r.subscribed_topic_regex = Some("orders-.*".into());
        let first = g.heartbeat(&r, 0, Timing::default(), &t);
        assert_eq!(count(first.assignment.as_ref().unwrap()), 4);
        // A new matching topic raises the group epoch and is assigned.
        t.0.insert("orders-ap".into(), (Uuid::from_u128(99), 3));
        let again = g.heartbeat(&hb("a", first.member_epoch, None), 1, Timing::default(), &t);
        assert!(again.member_epoch > first.member_epoch);
        assert_eq!(count(again.assignment.as_ref().unwrap()), 7);
        assert!(g.subscribes_to("orders-ap") && !g.subscribes_to("payments"));
        let mut bad = hb("b", 0, None);
        bad.subscribed_topic_regex = Some("(".into());
        assert_eq!(
            g.heartbeat(&bad, 2, Timing::default(), &t).error_code,
            INVALID_REGULAR_EXPRESSION
        );
    }

    #[test]
    fn the_configured_assignors_are_the_only_ones_and_the_first_is_the_default() {
        let t = topics(&[("t", 4)]);
        let range_only = Timing {
            assignors: &["range"],
            ..Timing::default()
        };
        let mut g = Group::default();
        let mut r = hb("a", 0, None);
        r.server_assignor = Some("uniform".into());
        let refused = g.heartbeat(&r, 0, range_only, &t);
        assert_eq!(refused.error_code, UNSUPPORTED_ASSIGNOR);
        assert_eq!(
            refused.error_message.as_deref(),
            Some("ServerAssignor uniform is not supported. Supported assignors: range.")
        );
        // A member naming none gets the first configured one.
        let ok = g.heartbeat(&hb("a", 0, None), 0, range_only, &t);
        assert_eq!(ok.error_code, NONE);
        assert_eq!(g.describe(range_only.default_assignor()).assignor, "range");
        let mut g = Group::default();
        g.heartbeat(&hb("a", 0, None), 0, Timing::default(), &t);
        assert_eq!(g.describe("uniform").assignor, "uniform");
    }
}
