//! A model test of the classic group coordinator: random JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and OffsetCommit calls from a few clients, and clock steps with the
//! coordinator's tick, checked after every step against Kafka's rules:
//! - a generation's assignment, as the members receive it, is what its leader handed out:
//!   every partition to at most one member, and once every member synced, to exactly one;
//! - no commit from a stale generation (older than the newest one handed out) is accepted;
//! - no member is dropped without a cause: it left, it was silent past its session timeout,
//!   or a newer generation formed without it.

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use strom_broker::group::consumer::NoTopics;
use strom_broker::group::state::{JoinRequest, GROUP_ID_NOT_FOUND};
use strom_broker::group::{GroupCoordinator, JoinReply, SyncReply};
use tokio::sync::oneshot;

const SESSION_MS: i64 = 10_000;
const REBALANCE_MS: i64 = 20_000;
const PARTITIONS: u8 = 6;
const CLIENTS: usize = 4;
const UNKNOWN_MEMBER_ID: i16 = 25;

#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Commit(usize),
    Tick(i64),
}

fn step() -> impl Strategy<Value = Step> {
    let c = 0..CLIENTS;
    prop_oneof![
        3 => c.clone().prop_map(Step::Join),
        3 => c.clone().prop_map(Step::Sync),
        3 => c.clone().prop_map(Step::Heartbeat),
        1 => c.clone().prop_map(Step::Leave),
        2 => c.prop_map(Step::Commit),
        3 => (0i64..12_000).prop_map(Step::Tick),
    ]
}

/// One client as the model sees it.
#[derive(Default)]
struct Client {
    member_id: String,
    generation: i32,
    /// The join reply (once it came) of the generation it is in; its leader's member list.
    joined: Option<JoinReply>,
    join_wait: Option<oneshot::Receiver<JoinReply>>,
    sync_wait: Option<(i32, oneshot::Receiver<SyncReply>)>,
    /// When it last heard from the coordinator that it is a member.
    last_ok_ms: i64,
    left: bool,
    /// Heartbeat said REBALANCE_IN_PROGRESS and it has not rejoined since: the join phase
    /// may end without it (after the rebalance timeout).
    told_to_rejoin: bool,
}

struct Model {
    c: GroupCoordinator,
    now: i64,
    clients: Vec<Client>,
    /// The newest generation any JoinGroup answer carried.
    newest_generation: i32,
    /// Per generation: what the leader assigned (member -> partitions), and what members got.
    assigned: BTreeMap<i32, BTreeMap<String, Vec<u8>>>,
    received: BTreeMap<i32, BTreeMap<String, Vec<u8>>>,
    /// Per generation, the members its join answer named (to the leader).
    members_of: BTreeMap<i32, BTreeSet<String>>,
}

fn request(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        instance_id: None,
        client_id: "model".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS as i32,
        rebalance_timeout_ms: REBALANCE_MS as i32,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

impl Model {
    fn new() -> Model {
        Model {
            c: GroupCoordinator::new(0),
            now: 0,
            clients: (0..CLIENTS).map(|_| Client::default()).collect(),
            newest_generation: 0,
            assigned: BTreeMap::new(),
            received: BTreeMap::new(),
            members_of: BTreeMap::new(),
        }
    }

    /// Collects answers that arrived (joins completed, syncs answered).
    fn poll(&mut self) -> Result<(), TestCaseError> {
        for i in 0..CLIENTS {
            if let Some(rx) = self.clients[i].join_wait.as_mut() {
                if let Ok(r) = rx.try_recv() {
                    self.clients[i].join_wait = None;
                    self.joined(i, r)?;
                }
            }
            if let Some((g, rx)) = self.clients[i].sync_wait.as_mut() {
                let g = *g;
                if let Ok(r) = rx.try_recv() {
                    self.clients[i].sync_wait = None;
                    self.synced(i, g, r)?;
                }
            }
        }
        Ok(())
    }

    fn joined(&mut self, i: usize, r: JoinReply) -> Result<(), TestCaseError> {
        let now = self.now;
        let cl = &mut self.clients[i];
        match r.error_code {
            0 => {
                prop_assert!(
                    r.generation_id >= self.newest_generation,
                    "generations go back"
                );
                self.newest_generation = r.generation_id;
                cl.member_id = r.member_id.clone();
                cl.generation = r.generation_id;
                cl.last_ok_ms = now;
                cl.told_to_rejoin = false;
                if !r.members.is_empty() {
                    let ids: BTreeSet<String> = r.members.iter().map(|m| m.0.clone()).collect();
                    self.members_of.insert(r.generation_id, ids);
                }
                cl.joined = Some(r);
            }
            79 => {
                // MEMBER_ID_REQUIRED: the id to rejoin with, good for a session timeout.
                cl.member_id = r.member_id;
                cl.joined = None;
                cl.generation = 0;
                cl.last_ok_ms = now;
            }
            UNKNOWN_MEMBER_ID => {
                self.dropped(i, "JoinGroup")?;
            }
            _ => {}
        }
        Ok(())
    }

    fn synced(&mut self, i: usize, g: i32, r: SyncReply) -> Result<(), TestCaseError> {
        if r.error_code == 0 {
            let id = self.clients[i].member_id.clone();
            let got = r.assignment.to_vec();
            if let Some(plan) = self.assigned.get(&g) {
                let expected = plan.get(&id).cloned().unwrap_or_default();
                prop_assert_eq!(&got, &expected, "member {} of generation {}", id, g);
            }
            self.received.entry(g).or_default().insert(id, got);
            self.clients[i].last_ok_ms = self.now;
            self.check_assignment(g)?;
        } else if r.error_code == UNKNOWN_MEMBER_ID {
            self.dropped(i, "SyncGroup")?;
        }
        Ok(())
    }

    /// Received assignments of one generation never overlap; when every member of the
    /// generation has its assignment, every partition is assigned exactly once.
    fn check_assignment(&self, g: i32) -> Result<(), TestCaseError> {
        let got = &self.received[&g];
        let mut seen = BTreeSet::new();
        for parts in got.values() {
            for p in parts {
                prop_assert!(seen.insert(*p), "partition {} twice in generation {}", p, g);
            }
        }
        if let Some(members) = self.members_of.get(&g) {
            if members.iter().all(|m| got.contains_key(m)) {
                prop_assert_eq!(
                    seen.len(),
                    PARTITIONS as usize,
                    "generation {} misses partitions",
                    g
                );
            }
        }
        Ok(())
    }

    /// The coordinator says client `i` is not a member: there must be a cause.
    fn dropped(&mut self, i: usize, what: &str) -> Result<(), TestCaseError> {
        let cl = &self.clients[i];
        let silent = self.now - cl.last_ok_ms > SESSION_MS.min(REBALANCE_MS);
        let overtaken = cl.generation > 0 && self.newest_generation > cl.generation;
        prop_assert!(
            cl.left || silent || overtaken || cl.told_to_rejoin,
            "{} refused member {} (generation {}, last ok {} ms ago) without a cause",
            what,
            cl.member_id,
            cl.generation,
            self.now - cl.last_ok_ms
        );
        let cl = &mut self.clients[i];
        cl.member_id.clear();
        cl.generation = 0;
        cl.joined = None;
        cl.left = false;
        cl.told_to_rejoin = false;
        Ok(())
    }

    fn apply(&mut self, s: &Step) -> Result<(), TestCaseError> {
        let now = self.now;
        if std::env::var_os("STROM_MODEL_TRACE").is_some() {
            let who: Vec<String> = self
                .clients
                .iter()
                .map(|c| {
                    format!(
                        "{}@g{}",
                        c.member_id.get(6..14).unwrap_or("-"),
                        c.generation
                    )
                })
                .collect();
            eprintln!(
                "t={now} {s:?} clients={who:?} newest={}",
                self.newest_generation
            );
        }
        match *s {
            Step::Join(i) if self.clients[i].join_wait.is_none() => {
                let id = self.clients[i].member_id.clone();
                self.clients[i].left = false;
                let rx = self.c.join(request(&id), now, &NoTopics);
                self.clients[i].join_wait = Some(rx);
            }
            Step::Sync(i) if self.clients[i].sync_wait.is_none() => {
                let Some(j) = self.clients[i].joined.clone() else {
                    return Ok(());
                };
                let mut plan = Vec::new();
                if j.leader == j.member_id {
                    // Partitions round-robin over the members the leader was told of.
                    let mut by_member: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for p in 0..PARTITIONS {
                        let m = &j.members[p as usize % j.members.len()].0;
                        by_member.entry(m.clone()).or_default().push(p);
                    }
                    for m in &j.members {
                        by_member.entry(m.0.clone()).or_default();
                    }
                    self.assigned.insert(j.generation_id, by_member.clone());
                    plan = by_member
                        .into_iter()
                        .map(|(m, ps)| (m, Bytes::from(ps)))
                        .collect();
                }
                let rx = self
                    .c
                    .sync("g", j.generation_id, &j.member_id, plan, now, &NoTopics);
                self.clients[i].sync_wait = Some((j.generation_id, rx));
            }
            Step::Heartbeat(i) if !self.clients[i].member_id.is_empty() => {
                let cl = &self.clients[i];
                let code = self.c.heartbeat("g", cl.generation, &cl.member_id, now);
                match code {
                    27 => {
                        self.clients[i].last_ok_ms = now;
                        self.clients[i].told_to_rejoin = true;
                    }
                    0 | 22 => self.clients[i].last_ok_ms = now,
                    UNKNOWN_MEMBER_ID if self.clients[i].generation > 0 => {
                        self.dropped(i, "Heartbeat")?
                    }
                    _ => {}
                }
            }
            Step::Leave(i) if !self.clients[i].member_id.is_empty() => {
                let id = self.clients[i].member_id.clone();
                let code = self.c.leave("g", &id, None, now);
                prop_assert!(code == 0 || code == UNKNOWN_MEMBER_ID || code == GROUP_ID_NOT_FOUND);
                let cl = &mut self.clients[i];
                cl.left = true;
                cl.member_id.clear();
                cl.generation = 0;
                cl.joined = None;
            }
            Step::Commit(i) if self.clients[i].generation > 0 => {
                let cl = &self.clients[i];
                let code = self.c.check_commit("g", cl.generation, &cl.member_id);
                if code == 0 {
                    prop_assert!(
                        cl.generation >= self.newest_generation,
                        "a commit at generation {} accepted after generation {} formed",
                        cl.generation,
                        self.newest_generation
                    );
                }
            }
            Step::Tick(ms) => {
                self.now += ms;
                self.c.tick(self.now);
            }
            _ => {}
        }
        self.poll()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    #[test]
    fn classic_groups_follow_kafkas_rules(steps in proptest::collection::vec(step(), 1..80)) {
        let mut m = Model::new();
        for s in &steps {
            m.apply(s)?;
        }
    }
}
