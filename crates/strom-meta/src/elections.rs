//! Leader elections the controller makes besides fencing (pure), as Kafka's
//! `ReplicationControlManager` / `PartitionChangeBuilder`:
//! - preferred: the first replica takes the leadership back when it is live and in sync
//!   (ElectLeaders PREFERRED, `auto.leader.rebalance.enable`);
//! - unclean: a partition with no leader, whose in-sync replicas are all gone, takes a live
//!   out-of-sync replica as leader, alone in the ISR, losing what only the others held
//!   (ElectLeaders UNCLEAN, or `unclean.leader.election.enable`).
//!
//! Every election bumps the leader epoch.

use crate::image::{MetadataImage, PartitionImage};
use crate::record::MetadataRecord;

/// What an election made of one partition (Kafka's error codes for ElectLeaders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Elected,
    /// ELECTION_NOT_NEEDED: the preferred replica leads already, or a leader exists.
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is fenced or out of sync.
    PreferredNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no live replica to elect.
    NoEligibleLeader,
    /// UNKNOWN_TOPIC_OR_PARTITION: no such topic.
    UnknownTopic,
    /// UNKNOWN_TOPIC_OR_PARTITION: the topic has no such partition.
    UnknownPartition,
}

/// A partition (topic, index) and what its election made of it.
pub type Elected = ((String, i32), Outcome);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    Preferred,
    Unclean,
}

fn live(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

/// The partition after the election, or why there is none.
pub fn elect(
    image: &MetadataImage,
    p: &PartitionImage,
    kind: Election,
) -> Result<PartitionImage, Outcome> {
    match kind {
        Election::Preferred => {
            let preferred = *p.replicas.first().ok_or(Outcome::NoEligibleLeader)?;
            if p.leader == preferred {
                return Err(Outcome::NotNeeded);
            }
            if !live(image, preferred) || !p.isr.contains(&preferred) {
                return Err(Outcome::PreferredNotAvailable);
            }
            let mut next = p.clone();
            next.leader = preferred;
            next.leader_epoch += 1;
            Ok(next)
        }
        Election::Unclean => {
            if p.leader >= 0 {
                return Err(Outcome::NotNeeded);
            }
            // An in-sync or eligible replica that is back is a clean choice; otherwise any
            // live one, whose log is then the partition's (the ELR goes).
            let pick = p
                .isr
                .iter()
                .chain(&p.elr)
                .chain(&p.replicas)
                .copied()
                .find(|id| live(image, *id))
                .ok_or(Outcome::NoEligibleLeader)?;
            if p.elr.contains(&pick) && !p.isr.contains(&pick) {
                return Ok(crate::elr::lead_from_elr(p, pick));
            }
            let mut next = p.clone();
            if !p.isr.contains(&pick) {
                next.isr = vec![pick];
                next.elr.clear();
            }
            next.leader = pick;
            next.leader_epoch += 1;
            Ok(next)
        }
    }
}

/// Elects the named partitions (None: every partition, answering only those elected). The
/// records, and each partition's outcome.
pub fn elect_leaders(
    image: &MetadataImage,
    kind: Election,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<Elected>) {
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    let all: Vec<(String, i32)>;
    let wanted = match partitions {
        Some(p) => p,
        None => {
            all = image
                .topics
                .values()
                .flat_map(|t| t.partitions.keys().map(|i| (t.name.clone(), *i)))
                .collect();
            &all
        }
    };
    for (topic, index) in wanted {
        let t = image.topics.get(topic);
        let found = t.and_then(|t| t.partitions.get(index).map(|p| (t.topic_id, p)));
        let outcome = match found {
            None if t.is_none() => Outcome::UnknownTopic,
            None => Outcome::UnknownPartition,
            Some((id, p)) => match elect(image, p, kind) {
                Ok(next) => {
                    records.push(next.to_record(id, *index));
                    Outcome::Elected
                }
                Err(o) => o,
            },
        };
        if partitions.is_some() || outcome == Outcome::Elected {
            outcomes.push(((topic.clone(), *index), outcome));
        }
    }
    (records, outcomes)
}

/// Unclean elections for every leaderless partition of a topic that allows them
/// (`unclean(topic)`), where some replica lives.
pub fn unclean_where_allowed(
    image: &MetadataImage,
    unclean: impl Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (index, p) in &t.partitions {
            if p.leader < 0 && unclean(&t.name) {
                if let Ok(next) = elect(image, p, Election::Unclean) {
                    out.push(next.to_record(t.topic_id, *index));
                }
            }
        }
    }
    out
}

/// Preferred-leader elections for every partition whose preferred replica does not lead but
/// could (`auto.leader.rebalance.enable`).
pub fn rebalance(image: &MetadataImage) -> Vec<MetadataRecord> {
    elect_leaders(image, Election::Preferred, None).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    use crate::testing::apply;

    fn image(partitions: &[(Vec<i32>, Vec<i32>, i32)]) -> MetadataImage {
        let parts: Vec<crate::testing::Part> = partitions
            .iter()
            .map(|(r, i, l)| (r.clone(), i.clone(), *l, 5))
            .collect();
        crate::testing::image_with(Uuid::from_u128(3), &parts)
    }

    #[test]
    fn the_preferred_replica_takes_its_leadership_back_when_in_sync() {
        let mut img = image(&[
            (vec![1, 2, 3], vec![1, 2, 3], 2),
            (vec![1, 2, 3], vec![2, 3], 2),
            (vec![2, 3, 1], vec![2, 3, 1], 2),
        ]);
        let want: Vec<(String, i32)> = (0..3).map(|i| ("t".to_string(), i)).collect();
        let (records, outcomes) = elect_leaders(&img, Election::Preferred, Some(&want));
        let got: Vec<Outcome> = outcomes.iter().map(|o| o.1).collect();
        assert_eq!(
            got,
            vec![
                Outcome::Elected,
                Outcome::PreferredNotAvailable,
                Outcome::NotNeeded
            ]
        );
        apply(&mut img, &records);
        let p = &img.topics["t"].partitions[&0];
        assert_eq!((p.leader, p.leader_epoch), (1, 6));
        // All partitions: only those elected are answered; here none is left.
        assert_eq!(elect_leaders(&img, Election::Preferred, None).1, vec![]);
        assert!(rebalance(&img).is_empty());
    }

    #[test]
    fn an_unclean_election_takes_a_live_replica_alone_in_the_isr() {
        let mut img = image(&[(vec![1, 2, 3], vec![1], -1), (vec![1, 2], vec![1, 2], 1)]);
        for r in crate::membership::fence(&img, 1) {
            img.apply(&r).unwrap();
        }
        assert_eq!(img.topics["t"].partitions[&0].leader, -1);
        let records = unclean_where_allowed(&img, |_| false);
        assert!(records.is_empty(), "not allowed");
        let records = unclean_where_allowed(&img, |t| t == "t");
        apply(&mut img, &records);
        let p = &img.topics["t"].partitions[&0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2], 6));
        // Partition 1 had another in-sync replica: fencing moved it cleanly.
        assert_eq!(img.topics["t"].partitions[&1].leader, 2);
        let want = vec![("t".to_string(), 1), ("u".to_string(), 0)];
        let (_, outcomes) = elect_leaders(&img, Election::Unclean, Some(&want));
        let got: Vec<Outcome> = outcomes.iter().map(|o| o.1).collect();
        assert_eq!(got, vec![Outcome::NotNeeded, Outcome::UnknownTopic]);
    }
}
