//! Eligible leader replicas (KIP-966, on by default in Kafka 4.1), pure. While a partition's
//! ISR is smaller than its `min.insync.replicas` the high watermark cannot move (Kafka 4.x,
//! and Strom), so a replica that leaves the ISR then still holds every committed record: it
//! joins the partition's ELR and stays electable (clean) even when fenced. An ISR back at
//! `min.insync.replicas` empties the ELR. When no live in-sync replica is left, the first
//! live ELR member (in replica order) leads, alone in the ISR.
//!
//! Strom keeps Kafka's rules with two differences. The last in-sync replica stays in the
//! ISR when fenced (Kafka 4.1 moves it to the ELR and leaves the ISR empty); it is electable
//! either way. And a replica that shut down uncleanly stays in the ELR (Kafka's KIP-966
//! part 2 removes it): a Strom follower fsyncs before it reports a fetch offset, so a crash
//! cannot take committed records from it. `min.insync.replicas` is the topic's, else the
//! cluster-wide dynamic one, else 1 (the brokers' static value is not in the metadata; with
//! 1 the ELR stays empty and elections are as before), capped by the replica count.

use crate::image::{MetadataImage, PartitionImage};

/// The partition's effective `min.insync.replicas`.
pub fn min_isr(image: &MetadataImage, topic: &str, replicas: usize) -> usize {
    let key = "min.insync.replicas";
    let value = image
        .topic_config(topic)
        .and_then(|c| c.get(key))
        .or_else(|| image.broker_config("").and_then(|c| c.get(key)));
    let min = value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(1);
    min.clamp(1, replicas.max(1))
}

/// The ELR after the partition of `topic` went from `before` to `next`: the replicas that
/// left the ISR while it is below `min.insync.replicas` join it, those in the ISR leave it,
/// and an ISR at `min.insync.replicas` empties it. Only replicas stay. With
/// `eligible.leader.replicas.version` 0 there is no ELR.
pub fn settle(
    image: &MetadataImage,
    topic: &str,
    before: &PartitionImage,
    mut next: PartitionImage,
) -> PartitionImage {
    let enabled = image.feature_level(crate::features::ELR_VERSION) >= 1;
    if !enabled || next.isr.len() >= min_isr(image, topic, next.replicas.len()) {
        next.elr.clear();
        return next;
    }
    let left = before.isr.iter().filter(|r| !next.isr.contains(r));
    let mut elr: Vec<i32> = before.elr.iter().chain(left).copied().collect();
    elr.retain(|r| !next.isr.contains(r) && next.replicas.contains(r));
    elr.sort_unstable();
    elr.dedup();
    // In replica order, as Kafka lists it.
    next.elr = next
        .replicas
        .iter()
        .copied()
        .filter(|r| elr.contains(r))
        .collect();
    next
}

/// The ELR member to elect when no live in-sync replica is left: the first live one.
pub fn electable(p: &PartitionImage, live: impl Fn(&i32) -> bool) -> Option<i32> {
    p.replicas
        .iter()
        .copied()
        .find(|r| p.elr.contains(r) && live(r))
}

/// `p` led by its ELR member `id`, alone in the ISR, in a new leader epoch.
pub fn lead_from_elr(p: &PartitionImage, id: i32) -> PartitionImage {
    let mut next = p.clone();
    next.leader = id;
    next.leader_epoch += 1;
    next.isr = vec![id];
    next.elr.retain(|r| *r != id);
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ConfigResource, MetadataRecord};
    use crate::testing::{apply, image_with};
    use uuid::Uuid;

    /// `t`-0 on [1, 2, 3], all in sync, led by 1, with `min.insync.replicas=2`.
    fn image() -> MetadataImage {
        let mut img = image_with(Uuid::from_u128(7), &[(vec![1, 2, 3], vec![1, 2, 3], 1, 0)]);
        apply(
            &mut img,
            &[MetadataRecord::Config {
                resource: ConfigResource::Topic,
                name: "t".into(),
                key: "min.insync.replicas".into(),
                value: Some("2".into()),
            }],
        );
        img
    }

    fn with_isr(p: &PartitionImage, isr: &[i32]) -> PartitionImage {
        PartitionImage {
            isr: isr.to_vec(),
            ..p.clone()
        }
    }

    #[test]
    fn replicas_leaving_an_isr_below_its_minimum_become_eligible() {
        let img = image();
        let p = img.topics["t"].partitions[&0].clone();
        // 3 leaves with the ISR still at its minimum: not eligible.
        let two = settle(&img, "t", &p, with_isr(&p, &[1, 2]));
        assert!(two.elr.is_empty());
        // 2 leaves it below: eligible; 3 comes back to the minimum: cleared.
        let one = settle(&img, "t", &two, with_isr(&two, &[1]));
        assert_eq!(one.elr, vec![2]);
        let back = settle(&img, "t", &one, with_isr(&one, &[1, 3]));
        assert!(back.elr.is_empty());
        // With the topic's minimum at 1 nothing is ever eligible.
        assert!(settle(
            &image_with(Uuid::from_u128(7), &[]),
            "t",
            &two,
            with_isr(&two, &[1])
        )
        .elr
        .is_empty());
    }

    #[test]
    fn fencing_every_replica_then_unfencing_an_eligible_one_gives_it_the_partition() {
        let mut img = image();
        for node in [3, 2, 1] {
            let records = crate::membership::fence(&img, node);
            apply(&mut img, &records);
        }
        let p = img.topics["t"].partitions[&0].clone();
        assert_eq!((p.leader, p.isr, p.elr), (-1, vec![1], vec![2]));
        let records = crate::membership::unfence(&img, 2);
        apply(&mut img, &records);
        let p = img.topics["t"].partitions[&0].clone();
        assert_eq!((p.leader, p.isr, p.elr), (2, vec![2], vec![1]));
        // 3 was not eligible (it left an ISR at its minimum): back, it leads nothing.
        let records = crate::membership::unfence(&img, 3);
        assert_eq!(records.len(), 1, "only its unfencing");
    }

    #[test]
    fn the_first_live_eligible_replica_leads_alone_in_the_isr() {
        let img = image();
        let p = img.topics["t"].partitions[&0].clone();
        let p = PartitionImage {
            isr: vec![1],
            elr: vec![2, 3],
            leader: -1,
            ..p
        };
        assert_eq!(electable(&p, |r| *r == 3), Some(3));
        assert_eq!(electable(&p, |_| false), None);
        let led = settle(&img, "t", &p, lead_from_elr(&p, 3));
        assert_eq!((led.leader, led.leader_epoch), (3, 1));
        assert_eq!(led.isr, vec![3]);
        // 1 left the ISR below its minimum: eligible now, with 2.
        assert_eq!(led.elr, vec![1, 2]);
    }
}
