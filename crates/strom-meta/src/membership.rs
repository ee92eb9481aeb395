//! Broker membership decisions of the active controller (pure): fencing a broker that missed
//! its session or shuts down moves the leadership of its partitions to another in-sync
//! replica (a new leader epoch) or leaves them without a leader, and takes it out of the ISRs
//! it shares with others; unfencing gives leaderless partitions whose ISR holds it their
//! leader back. Kafka's `ReplicationControlManager` does the same on
//! `FenceBrokerRecord` / `UnfenceBrokerRecord` (KIP-841: a fenced broker leaves the ISR).

use crate::image::{MetadataImage, PartitionImage};
use crate::record::MetadataRecord;

/// Partition records for every partition whose state changes, given a new partition state
/// (its eligible leader replicas settled, `elr.rs`).
fn changes(
    image: &MetadataImage,
    change: impl Fn(&PartitionImage) -> Option<PartitionImage>,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (index, p) in &t.partitions {
            if let Some(next) = change(p) {
                let next = crate::elr::settle(image, &t.name, p, next);
                out.push(next.to_record(t.topic_id, *index));
            }
        }
    }
    out
}

/// Fences `node_id` (nothing if it is unknown or already fenced).
pub fn fence(image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
    if image.brokers.get(&node_id).is_none_or(|b| b.fenced) {
        return Vec::new();
    }
    let live = |id: &i32| *id != node_id && image.brokers.get(id).is_some_and(|b| !b.fenced);
    // The broker's record comes last: committed in parts (`commit_in_parts`), the
    // partitions not yet changed are found again, the broker still unfenced.
    let mut out = changes(image, |p| {
        if p.leader != node_id && !p.isr.contains(&node_id) {
            return None;
        }
        let mut next = p.clone();
        // The last in-sync replica stays in the ISR: it holds everything committed.
        if p.isr.len() > 1 {
            next.isr.retain(|id| *id != node_id);
        }
        if p.leader == node_id {
            next.leader = next.isr.iter().copied().find(|id| live(id)).unwrap_or(-1);
            next.leader_epoch += 1;
            // No live in-sync replica: an eligible one leads (KIP-966).
            if next.leader == -1 {
                if let Some(e) = crate::elr::electable(&next, live) {
                    next = crate::elr::lead_from_elr(&next, e);
                    next.leader_epoch = p.leader_epoch + 1;
                }
            }
        }
        (next != *p).then_some(next)
    });
    out.push(MetadataRecord::BrokerFenced {
        node_id,
        fenced: true,
    });
    out
}

/// A new incarnation of live broker `node_id` registers (it restarted before its session
/// ran out, so it was never fenced): it leaves every ISR it shares with a live replica, and
/// its leaderships move to one, as its fencing would have done (Kafka fences a restarted
/// broker until its new registration, KIP-903/KIP-966). It rejoins through its fetches, in
/// its new broker epoch. A partition it is the last live in-sync replica of stays as it is.
pub fn reincarnate(image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
    if image.brokers.get(&node_id).is_none_or(|b| b.fenced) {
        return Vec::new();
    }
    let live = |id: &i32| *id != node_id && image.brokers.get(id).is_some_and(|b| !b.fenced);
    changes(image, |p| {
        let other = p.isr.iter().copied().find(|id| live(id))?;
        if !p.isr.contains(&node_id) {
            return None;
        }
        let mut next = p.clone();
        next.isr.retain(|id| *id != node_id);
        if p.leader == node_id {
            next.leader = other;
            next.leader_epoch += 1;
        }
        Some(next)
    })
}

/// Unfences `node_id` (nothing if it is unknown or not fenced).
pub fn unfence(image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
    if image.brokers.get(&node_id).is_none_or(|b| !b.fenced) {
        return Vec::new();
    }
    // The broker's record comes last, as in `fence`.
    let mut out = changes(image, |p| {
        if p.leader != -1 {
            return None;
        }
        if p.isr.contains(&node_id) {
            let mut next = p.clone();
            next.leader = node_id;
            next.leader_epoch += 1;
            return Some(next);
        }
        // An eligible leader replica back leads a partition with no in-sync one live.
        p.elr
            .contains(&node_id)
            .then(|| crate::elr::lead_from_elr(p, node_id))
    });
    out.push(MetadataRecord::BrokerFenced {
        node_id,
        fenced: false,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    use crate::testing::{apply, image_with};

    fn image() -> MetadataImage {
        image_with(
            Uuid::from_u128(1),
            &[
                (vec![1, 2], vec![1, 2], 1, 0),
                (vec![1], vec![1], 1, 0),
                (vec![2, 3], vec![2, 3], 2, 0),
            ],
        )
    }

    #[test]
    fn a_fenced_leader_hands_over_or_leaves_no_leader() {
        let mut img = image();
        let records = fence(&img, 1);
        apply(&mut img, &records);
        let t = &img.topics["t"];
        assert!(img.brokers[&1].fenced);
        assert_eq!(
            (t.partitions[&0].leader, t.partitions[&0].leader_epoch),
            (2, 1)
        );
        assert_eq!(t.partitions[&0].isr, vec![2]);
        assert_eq!(
            (t.partitions[&1].leader, t.partitions[&1].isr.clone()),
            (-1, vec![1])
        );
        assert_eq!(t.partitions[&2].leader_epoch, 0, "untouched");
        assert!(fence(&img, 1).is_empty(), "already fenced");
        assert_eq!(img.live_brokers().count(), 2);

        let records = unfence(&img, 1);
        apply(&mut img, &records);
        let t = &img.topics["t"];
        assert!(!img.brokers[&1].fenced);
        assert_eq!(
            (t.partitions[&1].leader, t.partitions[&1].leader_epoch),
            (1, 2)
        );
        assert_eq!(t.partitions[&0].leader, 2, "leadership is not taken back");
        assert!(unfence(&img, 1).is_empty());
    }

    #[test]
    fn a_new_incarnation_leaves_the_isrs_it_shares_and_keeps_what_it_alone_holds() {
        let mut img = image();
        let records = reincarnate(&img, 1);
        apply(&mut img, &records);
        let t = &img.topics["t"];
        assert!(!img.brokers[&1].fenced, "not fenced");
        assert_eq!(
            (t.partitions[&0].leader, t.partitions[&0].leader_epoch),
            (2, 1)
        );
        assert_eq!(t.partitions[&0].isr, vec![2]);
        assert_eq!(
            (t.partitions[&1].leader, t.partitions[&1].isr.clone()),
            (1, vec![1]),
            "its own partition keeps its leader"
        );
        assert_eq!(t.partitions[&2].leader_epoch, 0, "untouched");
        // A follower leaves; a fenced broker has nothing to leave.
        let records = reincarnate(&img, 3);
        apply(&mut img, &records);
        assert_eq!(img.topics["t"].partitions[&2].isr, vec![2]);
        let records = fence(&img, 2);
        apply(&mut img, &records);
        assert!(reincarnate(&img, 2).is_empty());
    }
}
