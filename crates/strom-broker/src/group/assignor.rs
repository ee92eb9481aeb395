//! The consumer protocol's server-side assignors (KIP-848's `uniform` and `range`), pure
//! functions of the members' subscriptions and the topics, and the partition sets they
//! compute. They know nothing of the groups that use them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// `group.consumer.assignors`: the server-side assignors, the first one the default.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The target assignment by `name` (`range`; anything else is `uniform`, which keeps what
/// `previous` gave where it can).
pub fn assign(
    name: &str,
    subs: &BTreeMap<&String, &BTreeSet<String>>,
    topics: &BTreeMap<String, (Uuid, i32)>,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    if name == "range" {
        assign_range(subs, topics)
    } else {
        assign_uniform(subs, topics, previous)
    }
}

pub fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

pub fn contains(a: &Assignment, topic: &Uuid, p: i32) -> bool {
    a.get(topic).is_some_and(|s| s.contains(&p))
}

pub fn insert(a: &mut Assignment, topic: Uuid, p: i32) {
    a.entry(topic).or_default().insert(p);
}

/// `a` minus `b`, and `a` ∩ `b`.
pub fn split(a: &Assignment, b: &Assignment) -> (Assignment, Assignment) {
    let (mut only, mut both) = (Assignment::new(), Assignment::new());
    for (t, ps) in a {
        for &p in ps {
            if contains(b, t, p) {
                insert(&mut both, *t, p);
            } else {
                insert(&mut only, *t, p);
            }
        }
    }
    (only, both)
}

pub fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| ps.iter().any(|&p| contains(b, t, p)))
}

/// Kafka's uniform assignor, sticky: every subscribed partition goes to one of the members
/// subscribed to its topic; partitions stay where the previous target put them unless the
/// counts differ by more than one.
pub fn assign_uniform(
    subs: &BTreeMap<&String, &BTreeSet<String>>,
    topics: &BTreeMap<String, (Uuid, i32)>,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = subs.keys().map(|id| ((*id).clone(), 0)).collect();
    let subscribed = |member: &str, topic: &Uuid| {
        subs.get(&member.to_string()).is_some_and(|s| {
            s.iter()
                .any(|n| topics.get(n).is_some_and(|(id, _)| id == topic))
        })
    };
    let partitions: BTreeMap<Uuid, i32> = topics.values().map(|(id, n)| (*id, *n)).collect();
    // Keep what the previous target gave, where it is still valid.
    let mut kept: Vec<(&String, &Assignment)> = previous.iter().collect();
    kept.sort();
    for (member, a) in kept {
        if !counts.contains_key(member) {
            continue;
        }
        for (t, ps) in a {
            let Some(&n) = partitions.get(t) else {
                continue;
            };
            if !subscribed(member, t) {
                continue;
            }
            for &p in ps {
                if p < n && !owner.contains_key(&(*t, p)) {
                    owner.insert((*t, p), member.clone());
                    *counts.entry(member.clone()).or_default() += 1;
                }
            }
        }
    }
    // Members subscribed to each topic.
    let eligible: BTreeMap<Uuid, Vec<String>> = partitions
        .keys()
        .map(|t| {
            (
                *t,
                counts
                    .keys()
                    .filter(|m| subscribed(m, t))
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    // The rest to the least loaded eligible member.
    for (t, &n) in &partitions {
        for p in 0..n {
            if owner.contains_key(&(*t, p)) {
                continue;
            }
            if let Some(m) = eligible[t]
                .iter()
                .min_by_key(|m| (counts[*m], (*m).clone()))
            {
                owner.insert((*t, p), m.clone());
                *counts.get_mut(m).expect("member counted") += 1;
            }
        }
    }
    // Balance: move a partition from a member to an eligible one with at least two fewer.
    // Every move lowers the sum of squared counts, so this ends.
    let mut moved = true;
    while moved {
        moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().copied().collect();
        for key in keys {
            let from = owner[&key].clone();
            let best = eligible[&key.0]
                .iter()
                .filter(|m| counts[*m] + 1 < counts[&from])
                .min_by_key(|m| (counts[*m], (*m).clone()))
                .cloned();
            if let Some(to) = best {
                *counts.get_mut(&from).expect("member counted") -= 1;
                *counts.get_mut(&to).expect("member counted") += 1;
                owner.insert(key, to);
                moved = true;
            }
        }
    }
    let mut out: HashMap<String, Assignment> = HashMap::new();
    for ((t, p), m) in owner {
        insert(out.entry(m).or_default(), t, p);
    }
    out
}

/// Kafka's range assignor, per topic: the members subscribed to it, sorted, each get a
/// contiguous range of partitions, the first ones one more when the division is uneven.
pub fn assign_range(
    subs: &BTreeMap<&String, &BTreeSet<String>>,
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = HashMap::new();
    for (name, (id, n)) in topics {
        let members: Vec<&String> = subs
            .iter()
            .filter(|(_, s)| s.contains(name))
            .map(|(m, _)| *m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let n = usize::try_from(*n).unwrap_or(0);
        let (each, extra) = (n / members.len(), n % members.len());
        let mut next = 0usize;
        for (i, m) in members.iter().enumerate() {
            let take = each + usize::from(i < extra);
            for p in next..next + take {
                insert(
                    out.entry((*m).clone()).or_default(),
                    *id,
                    i32::try_from(p).unwrap_or(i32::MAX),
                );
            }
            next += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(list: &[(&str, i32)]) -> BTreeMap<String, (Uuid, i32)> {
        list.iter()
            .enumerate()
            .map(|(i, (n, p))| (n.to_string(), (Uuid::from_u128(i as u128 + 1), *p)))
            .collect()
    }

    #[test]
    fn uniform_is_balanced_and_sticky_and_range_is_ranges() {
        let t = topics(&[("t", 7), ("u", 3)]);
        let names: BTreeSet<String> = ["t".to_string(), "u".to_string()].into();
        let ids: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
        let subs: BTreeMap<&String, &BTreeSet<String>> = ids.iter().map(|i| (i, &names)).collect();
        let first = assign_uniform(&subs, &t, &HashMap::new());
        let counts: Vec<usize> = ids.iter().map(|i| count(&first[i])).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        // A fourth member: the first three keep all they can.
        let ids4: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
        let subs4: BTreeMap<&String, &BTreeSet<String>> =
            ids4.iter().map(|i| (i, &names)).collect();
        let second = assign_uniform(&subs4, &t, &first);
        for i in &ids {
            assert_eq!(count(&split(&second[i], &first[i]).0), 0, "{i} only loses");
        }
        assert!(count(&second["m3"]) >= 2);
        let range = assign_range(&subs, &t);
        let tid = t["t"].0;
        assert_eq!(range["m0"][&tid], [0, 1, 2].into());
        assert_eq!(range["m2"][&tid], [5, 6].into());
    }
}
