//! A model test of a KIP-848 consumer-protocol group: random ConsumerGroupHeartbeats (joins
//! with one of two subscriptions, heartbeats that report what the client owns, leaves),
//! offset commits at the client's epoch or an older one, and clock steps with the group's
//! tick, from a few clients that behave as Kafka's consumer does (it gives up revoked
//! partitions at once and starts over when fenced). Checked after every step:
//! - no partition is owned by two members of the group at once;
//! - a member's epoch never goes down;
//! - a commit is accepted only at the member's current epoch.
//!
//! And once the clients heartbeat with no time passing, every partition the members
//! subscribe to is owned by exactly one of them, all at the group's epoch.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use strom_broker::group::assignor::Assignment;
use strom_broker::group::consumer::{Group, Heartbeat, Timing, Topics};
use uuid::Uuid;

const CLIENTS: usize = 4;
const SESSION_MS: i64 = 10_000;
const TOPICS: [(&str, i32); 2] = [("t", 6), ("u", 4)];

struct Fixed;

impl Topics for Fixed {
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
        let i = TOPICS.iter().position(|(n, _)| *n == name)?;
        Some((Uuid::from_u128(i as u128 + 1), TOPICS[i].1))
    }
    fn name_of(&self, id: &Uuid) -> Option<String> {
        let i = (id.as_u128() as usize).checked_sub(1)?;
        TOPICS.get(i).map(|(n, _)| n.to_string())
    }
    fn names(&self) -> Vec<String> {
        TOPICS.iter().map(|(n, _)| n.to_string()).collect()
    }
}

#[derive(Debug, Clone)]
enum Step {
    Heartbeat(usize),
    /// Joins (if not a member) subscribed to "t" alone, else to both topics.
    Subscribe(usize, bool),
    Leave(usize),
    Commit(usize, bool),
    Tick(i64),
}

fn step() -> impl Strategy<Value = Step> {
    let c = 0..CLIENTS;
    prop_oneof![
        6 => c.clone().prop_map(Step::Heartbeat),
        2 => (c.clone(), any::<bool>()).prop_map(|(c, b)| Step::Subscribe(c, b)),
        1 => c.clone().prop_map(Step::Leave),
        2 => (c.clone(), any::<bool>()).prop_map(|(c, s)| Step::Commit(c, s)),
        2 => (1i64..15_000).prop_map(Step::Tick),
    ]
}

/// A client as Kafka's consumer runs it.
#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    epoch: i32,
    owned: Assignment,
    both: bool,
    joins: u32,
}

struct World {
    group: Group,
    clients: Vec<Client>,
    now: i64,
    timing: Timing,
    /// The highest epoch each member id was ever given.
    epochs: HashMap<String, i32>,
}

impl World {
    fn new() -> World {
        World {
            group: Group::default(),
            clients: vec![Client::default(); CLIENTS],
            now: 0,
            timing: Timing {
                session_timeout_ms: SESSION_MS as i32,
                ..Timing::default()
            },
            epochs: HashMap::new(),
        }
    }

    fn heartbeat(&mut self, i: usize) -> Result<(), TestCaseError> {
        let c = &mut self.clients[i];
        let joining = c.epoch == 0;
        if joining {
            c.joins += 1;
            c.member_id = format!("m{i}-{}", c.joins);
            c.owned.clear();
        }
        let topics = if c.both { vec!["t", "u"] } else { vec!["t"] };
        let req = Heartbeat {
            version: 1,
            group_id: "g".into(),
            member_id: c.member_id.clone(),
            member_epoch: c.epoch,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
            owned: Some(c.owned.clone()),
            ..Heartbeat::default()
        };
        let r = self.group.heartbeat(&req, self.now, self.timing, &Fixed);
        let c = &mut self.clients[i];
        if r.error_code != 0 {
            // Fenced or unknown: the consumer drops what it owns and joins again.
            *c = Client {
                joins: c.joins,
                both: c.both,
                ..Client::default()
            };
            return Ok(());
        }
        let seen = self.epochs.entry(c.member_id.clone()).or_insert(0);
        prop_assert!(
            r.member_epoch >= *seen,
            "{} went from epoch {} to {}",
            c.member_id,
            seen,
            r.member_epoch
        );
        *seen = r.member_epoch;
        c.epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            c.owned = a;
        }
        Ok(())
    }

    fn apply(&mut self, s: &Step) -> Result<(), TestCaseError> {
        match *s {
            Step::Heartbeat(i) => self.heartbeat(i)?,
            Step::Subscribe(i, both) => {
                self.clients[i].both = both;
                self.heartbeat(i)?;
            }
            Step::Leave(i) => {
                let c = &mut self.clients[i];
                if c.epoch > 0 {
                    let req = Heartbeat {
                        version: 1,
                        group_id: "g".into(),
                        member_id: c.member_id.clone(),
                        member_epoch: -1,
                        ..Heartbeat::default()
                    };
                    self.group.heartbeat(&req, self.now, self.timing, &Fixed);
                    *c = Client {
                        joins: c.joins,
                        both: c.both,
                        ..Client::default()
                    };
                }
            }
            Step::Commit(i, stale) => {
                let c = &self.clients[i];
                if c.epoch > 0 {
                    let epoch = if stale { c.epoch - 1 } else { c.epoch };
                    let code = self.group.check_commit(&c.member_id, epoch);
                    if code == 0 {
                        let current = self.epochs.get(&c.member_id).copied().unwrap_or(0);
                        prop_assert_eq!(epoch, current, "a commit at an old epoch was accepted");
                    }
                }
            }
            Step::Tick(ms) => {
                self.now += ms;
                self.group.tick(self.now, self.timing);
            }
        }
        self.check_disjoint()
    }

    /// The members the group still has, with what they own.
    fn members(&self) -> Vec<&Client> {
        self.clients
            .iter()
            .filter(|c| c.epoch > 0 && self.group.has_member(&c.member_id))
            .collect()
    }

    fn check_disjoint(&self) -> Result<(), TestCaseError> {
        let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
        for c in self.members() {
            for (t, ps) in &c.owned {
                for p in ps {
                    if let Some(other) = owner.insert((*t, *p), &c.member_id) {
                        prop_assert!(false, "{t}-{p} owned by {other} and {}", c.member_id);
                    }
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn a_consumer_group_keeps_kafkas_rules(steps in proptest::collection::vec(step(), 1..80)) {
        let mut w = World::new();
        for s in &steps {
            w.apply(s)?;
        }
        // Everyone heartbeats, with no time passing, until nothing changes any more.
        for _ in 0..12 {
            for i in 0..CLIENTS {
                if w.clients[i].epoch > 0 || w.clients[i].joins > 0 {
                    w.heartbeat(i)?;
                }
            }
        }
        let members = w.members();
        let wanted: BTreeSet<&str> = members
            .iter()
            .flat_map(|c| if c.both { vec!["t", "u"] } else { vec!["t"] })
            .collect();
        let mut owned: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        for c in &members {
            for (t, ps) in &c.owned {
                owned.extend(ps.iter().map(|p| (*t, *p)));
            }
        }
        let all: BTreeSet<(Uuid, i32)> = wanted
            .iter()
            .flat_map(|t| {
                let (id, n) = Fixed.lookup(t).unwrap();
                (0..n).map(move |p| (id, p))
            })
            .collect();
        prop_assert_eq!(owned, all, "settled, every subscribed partition is owned once");
        let epochs: BTreeSet<i32> = members.iter().map(|c| c.epoch).collect();
        prop_assert!(epochs.len() <= 1, "settled members at one epoch: {:?}", epochs);
    }
}
