//! Replica placement: where a new partition's replicas go, spread evenly over the live
//! brokers and over their racks (`broker.rack`), as Kafka's rack-aware placement does.
//!
//! The brokers are arranged so that neighbours are in different racks (one from each rack in
//! turn, racks by name, brokers by id; brokers with no rack form one rack). Partition `p`'s
//! leader is the arrangement's entry `start + p`, so preferred leaders take turns over every
//! broker; its followers are taken from a later point, shifted by partition so that a
//! broker's partitions do not all have the same followers, skipping brokers already chosen
//! and racks already used while an unused rack remains. `start` and the shift come from a
//! seed (the topic id), so topics do not all start on the same broker and a placement is
//! reproducible.

use crate::image::BrokerImage;
use std::collections::BTreeMap;

/// The arrangement: brokers interleaved by rack.
fn arrange<'a>(brokers: impl IntoIterator<Item = &'a BrokerImage>) -> Vec<(i32, String)> {
    let mut racks: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        racks
            .entry(b.rack.clone().unwrap_or_default())
            .or_default()
            .push(b.node_id);
    }
    racks.values_mut().for_each(|ids| ids.sort_unstable());
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| {
            racks
                .iter()
                .filter_map(move |(rack, ids)| ids.get(i).map(|id| (*id, rack.clone())))
        })
        .collect()
}

/// The replicas of partitions `partitions` (leader first), `rf` each, over `brokers`.
/// The caller checks that `rf` is between 1 and the broker count.
pub fn place<'a>(
    brokers: impl IntoIterator<Item = &'a BrokerImage>,
    partitions: std::ops::Range<i32>,
    rf: usize,
    seed: u128,
) -> Vec<(i32, Vec<i32>)> {
    let list = arrange(brokers);
    let n = list.len();
    if n == 0 {
        return Vec::new();
    }
    let start = (seed % n as u128) as usize;
    let shift0 = ((seed >> 64) % n as u128) as usize;
    let racks = list
        .iter()
        .map(|(_, r)| r)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    partitions
        .map(|p| {
            let p_us = p as usize;
            let first = (start + p_us) % n;
            let mut chosen = vec![first];
            // Followers from a point after the leader that moves with every round of
            // partitions over the brokers.
            let from = first + 1 + (shift0 + p_us / n) % n.max(1);
            for step in 0..n {
                if chosen.len() == rf {
                    break;
                }
                let i = (from + step) % n;
                let used: Vec<&String> = chosen.iter().map(|c| &list[*c].1).collect();
                let rack_free = !used.contains(&&list[i].1) || used.len() >= racks;
                if !chosen.contains(&i) && rack_free {
                    chosen.push(i);
                }
            }
            // Fewer racks than replicas past the first round: fill from any broker left.
            for step in 0..n {
                if chosen.len() == rf {
                    break;
                }
                let i = (from + step) % n;
                if !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
            (p, chosen.into_iter().map(|i| list[i].0).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    fn brokers(racks: &[Option<&str>]) -> Vec<BrokerImage> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| BrokerImage {
                node_id: i as i32 + 1,
                host: "h".into(),
                port: 1,
                rack: r.map(str::to_string),
                log_dirs: Vec::new(),
                fenced: false,
                incarnation: None,
                epoch: 0,
            })
            .collect()
    }

    #[test]
    fn replicas_go_to_every_rack_and_leaders_take_turns() {
        let b = brokers(&[
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            Some("c"),
            Some("c"),
        ]);
        let rack = |id: i32| b[id as usize - 1].rack.clone();
        let placed = place(&b, 0..12, 3, 7);
        let mut leaders: HashMap<i32, usize> = HashMap::new();
        for (_, replicas) in &placed {
            let racks: BTreeSet<_> = replicas.iter().map(|r| rack(*r)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?} not over three racks");
            *leaders.entry(replicas[0]).or_default() += 1;
        }
        assert!(leaders.values().all(|c| *c == 2), "{leaders:?}");
        assert_eq!(place(&b, 0..12, 3, 7), placed, "reproducible");
    }

    proptest! {
        /// Any brokers and racks: distinct replicas, as many as asked; as many racks as
        /// there can be; every broker leads within one of every other.
        #[test]
        fn placements_are_spread(
            racks in proptest::collection::vec(proptest::option::of(0u8..4), 1..9),
            rf in 1usize..5,
            parts in 1i32..40,
            seed in any::<u128>(),
        ) {
            let names: Vec<Option<String>> =
                racks.iter().map(|r| r.map(|r| format!("r{r}"))).collect();
            let b = brokers(&names.iter().map(|r| r.as_deref()).collect::<Vec<_>>());
            let rf = rf.min(b.len());
            let rack_count = names.iter().collect::<BTreeSet<_>>().len();
            let placed = place(&b, 0..parts, rf, seed);
            prop_assert_eq!(placed.len(), parts as usize);
            let mut leads = vec![0i32; b.len()];
            for (_, replicas) in &placed {
                let distinct: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(distinct.len(), rf);
                let used: BTreeSet<_> =
                    replicas.iter().map(|r| &names[*r as usize - 1]).collect();
                prop_assert_eq!(used.len(), rf.min(rack_count));
                leads[replicas[0] as usize - 1] += 1;
            }
            let (lo, hi) = (leads.iter().min().unwrap(), leads.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "leaders {:?}", leads);
        }
    }
}
