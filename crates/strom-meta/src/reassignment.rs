//! Partition reassignment (pure), as Kafka's `ReplicationControlManager` and
//! `PartitionReassignmentReplicas`: moving a partition from its replicas to a target set
//! while it serves. The replica set first grows to the target plus the replicas leaving
//! (target first, so the preferred leader is the target's first); the new replicas fetch
//! from the leader and join the ISR as they catch up; once every target replica is in sync
//! the reassignment completes: the replicas become the target, the ISR keeps only target
//! replicas, and a leader that leaves hands over to the first in-sync target replica.
//! A new replica never leaves before every target replica holds all acknowledged records.
//!
//! The leader epoch moves only when the leader does (Strom's choice: a removed replica is
//! fenced by the leader, which no longer counts it as a replica, so in-flight acks=all
//! produces are not failed by an epoch bump).

use crate::error::ApiError;
use crate::image::{MetadataImage, PartitionImage};
use crate::record::MetadataRecord;

/// What an operator asks of one partition: a target replica list, or to cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// `None` cancels a running reassignment.
    pub target: Option<&'a [i32]>,
    /// KIP-860: `false` refuses a target of another size than the current replica set.
    pub allow_replication_factor_change: bool,
}

/// The record that starts, replaces, completes at once or cancels a reassignment, or why it
/// is refused. A target equal to the current replicas with none running is no change.
pub fn alter(image: &MetadataImage, req: &Request) -> Result<Vec<MetadataRecord>, ApiError> {
    let topic = image
        .topics
        .get(req.topic)
        .ok_or_else(|| ApiError::UnknownTopic(req.topic.to_string()))?;
    let p = topic
        .partitions
        .get(&req.partition)
        .ok_or_else(|| ApiError::UnknownTopic(format!("{}-{}", req.topic, req.partition)))?;
    let next = match req.target {
        None if !p.reassigning() => {
            return Err(ApiError::NoReassignmentInProgress(
                "No partition reassignment is in progress.".into(),
            ))
        }
        None => revert(image, p)?,
        Some(target) => {
            validate(image, target)?;
            let original = p.original();
            if !req.allow_replication_factor_change && target.len() != original.len() {
                return Err(ApiError::InvalidReplicationFactor(format!(
                    "The replication factor is changed from {} to {}",
                    original.len(),
                    target.len()
                )));
            }
            if target == original.as_slice() && p.reassigning() {
                revert(image, p)?
            } else {
                complete_if_ready(image, start(p, target))
            }
        }
    };
    if next == *p {
        return Ok(Vec::new());
    }
    Ok(vec![next.to_record(topic.topic_id, req.partition)])
}

/// Kafka's checks of a manual assignment, with its messages.
fn validate(image: &MetadataImage, target: &[i32]) -> Result<(), ApiError> {
    if target.is_empty() {
        return Err(ApiError::InvalidReplicaAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    for (i, id) in target.iter().enumerate() {
        if target[..i].contains(id) {
            return Err(ApiError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes the broker {id} more than once."
            )));
        }
        if !image.brokers.contains_key(id) {
            return Err(ApiError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
    }
    Ok(())
}

/// The partition moving from its current replicas to `target`: every replica of both,
/// target first. A reassignment already running is replaced from all the replicas it has
/// now (Kafka's `PartitionReassignmentReplicas` of the current replicas): a replica it was
/// adding that the new target drops becomes one to remove, never dropped at once, so the
/// leader and the ISR stay replicas until the new target is in sync.
fn start(p: &PartitionImage, target: &[i32]) -> PartitionImage {
    let leaving: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !p.replicas.contains(r))
        .collect();
    let replicas: Vec<i32> = target.iter().chain(&leaving).copied().collect();
    PartitionImage {
        replicas,
        adding,
        removing: leaving,
        ..p.clone()
    }
}

/// Back to the original replicas; the ISR keeps only those. Refused when none of them is in
/// sync (the added replicas alone hold the acknowledged records).
fn revert(image: &MetadataImage, p: &PartitionImage) -> Result<PartitionImage, ApiError> {
    let original = p.original();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| original.contains(r))
        .collect();
    if isr.is_empty() {
        return Err(ApiError::InvalidReplicaAssignment(
            "cancelling would leave the partition without an in-sync replica".into(),
        ));
    }
    let mut next = PartitionImage {
        replicas: original,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
        ..p.clone()
    };
    next.elr.retain(|r| next.replicas.contains(r));
    Ok(lead_from_target(image, next))
}

/// Completes a running reassignment once every target replica is in sync (an ISR change
/// calls this with the partition it is about to record). Anything else is returned as is.
pub fn complete_if_ready(image: &MetadataImage, p: PartitionImage) -> PartitionImage {
    let target = p.target();
    if !p.reassigning() || !target.iter().all(|r| p.isr.contains(r)) {
        return p;
    }
    let isr = target
        .iter()
        .copied()
        .filter(|r| p.isr.contains(r))
        .collect();
    let mut next = PartitionImage {
        replicas: target,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
        ..p
    };
    next.elr.retain(|r| next.replicas.contains(r));
    lead_from_target(image, next)
}

/// A partition whose leader is no longer among its replicas gets the first live in-sync one
/// (none: leaderless), with a new leader epoch.
fn lead_from_target(image: &MetadataImage, p: PartitionImage) -> PartitionImage {
    if p.replicas.contains(&p.leader) {
        return p;
    }
    let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    let leader = p
        .replicas
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && live(r))
        .unwrap_or(-1);
    PartitionImage {
        leader,
        leader_epoch: p.leader_epoch + 1,
        ..p
    }
}

/// Every partition with a running reassignment: (topic, partition, its image).
pub fn running(image: &MetadataImage) -> impl Iterator<Item = (&str, i32, &PartitionImage)> {
    image.topics.values().flat_map(|t| {
        t.partitions
            .iter()
            .filter(|(_, p)| p.reassigning())
            .map(|(i, p)| (t.name.as_str(), *i, p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{apply, image_with};
    use uuid::Uuid;

    /// Brokers 1-4 registered; topic `t` partition 0 on [1, 2, 3], led by 1 at epoch 4.
    fn image() -> MetadataImage {
        let mut img = image_with(Uuid::from_u128(7), &[(vec![1, 2, 3], vec![1, 2, 3], 1, 4)]);
        let four = MetadataRecord::RegisterBroker {
            node_id: 4,
            host: "h".into(),
            port: 9092,
            rack: None,
            log_dirs: Vec::new(),
            incarnation: None,
        };
        apply(&mut img, &[four]);
        img
    }

    fn ask(img: &mut MetadataImage, target: Option<&[i32]>) -> Result<(), ApiError> {
        let req = Request {
            topic: "t",
            partition: 0,
            target,
            allow_replication_factor_change: true,
        };
        let records = alter(img, &req)?;
        apply(img, &records);
        Ok(())
    }

    fn part(img: &MetadataImage) -> PartitionImage {
        img.topics["t"].partitions[&0].clone()
    }

    /// The ISR change the leader would ask once `joined` caught up.
    fn join(img: &mut MetadataImage, joined: i32) {
        let p = part(img);
        let mut isr = p.isr.clone();
        isr.push(joined);
        let change = crate::isr::IsrChange {
            topic_id: Uuid::from_u128(7),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr,
            broker_epochs: Vec::new(),
        };
        let records = crate::isr::alter_partition(img, &change).unwrap();
        apply(img, &records);
    }

    #[test]
    fn a_move_adds_first_and_removes_once_the_new_replica_is_in_sync() {
        let mut img = image();
        ask(&mut img, Some(&[4, 2, 3])).unwrap();
        let p = part(&img);
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![4, 2, 3, 1], vec![4], vec![1])
        );
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
        assert_eq!(running(&img).count(), 1);
        join(&mut img, 4);
        let p = part(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![4, 2, 3], vec![4, 2, 3])
        );
        assert!(!p.reassigning());
        // Leader 1 left: the first in-sync target replica leads, in a new epoch.
        assert_eq!((p.leader, p.leader_epoch), (4, 5));
        assert_eq!(running(&img).count(), 0);
    }

    #[test]
    fn shrinking_to_in_sync_replicas_completes_at_once_and_keeps_the_leader() {
        let mut img = image();
        ask(&mut img, Some(&[2, 1])).unwrap();
        let p = part(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![2, 1], vec![2, 1])
        );
        assert_eq!((p.leader, p.leader_epoch), (1, 4));
        assert!(!p.reassigning());
    }

    #[test]
    fn cancelling_goes_back_to_the_original_replicas() {
        let mut img = image();
        assert!(matches!(
            ask(&mut img, None),
            Err(ApiError::NoReassignmentInProgress(_))
        ));
        ask(&mut img, Some(&[4, 2, 3])).unwrap();
        ask(&mut img, None).unwrap();
        // As Kafka's revert: the replicas less those added, in the order they had.
        let p = part(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![2, 3, 1], vec![1, 2, 3])
        );
        assert_eq!((p.leader, p.leader_epoch), (1, 4));
        assert!(!p.reassigning());
        // Asking for the original replicas cancels too; asking again is no change.
        ask(&mut img, Some(&[4, 2, 3])).unwrap();
        ask(&mut img, Some(&[1, 2, 3])).unwrap();
        assert!(!part(&img).reassigning());
        assert_eq!(part(&img).replicas, vec![1, 2, 3]);
        let epoch = part(&img).partition_epoch;
        ask(&mut img, Some(&[1, 2, 3])).unwrap();
        assert_eq!(part(&img).partition_epoch, epoch);
    }

    #[test]
    fn a_new_target_replaces_a_running_reassignment() {
        let mut img = image();
        ask(&mut img, Some(&[4, 2, 3])).unwrap();
        ask(&mut img, Some(&[1, 4])).unwrap();
        // From the replicas it has now: 4 is already one (not in sync yet), 2 and 3 leave.
        let p = part(&img);
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![1, 4, 2, 3], vec![], vec![2, 3])
        );
        assert!(p.reassigning());
        join(&mut img, 4);
        let p = part(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1, 4], vec![1, 4], 1)
        );
    }

    /// Review finding: replacing a move whose added replica already joined the ISR (and
    /// may lead) must keep it a replica, the ISR whole, until the new target is in sync.
    #[test]
    fn a_replaced_move_keeps_every_replica_until_the_new_target_is_in_sync() {
        let mut img = image();
        let five = MetadataRecord::RegisterBroker {
            node_id: 5,
            host: "h".into(),
            port: 9092,
            rack: None,
            log_dirs: Vec::new(),
            incarnation: None,
        };
        apply(&mut img, &[five]);
        ask(&mut img, Some(&[4, 5, 3])).unwrap();
        join(&mut img, 4);
        let before = part(&img);
        assert!(before.reassigning() && before.isr.contains(&4));
        ask(&mut img, Some(&[5, 1, 2])).unwrap();
        let p = part(&img);
        assert_eq!(p.replicas, vec![5, 1, 2, 4, 3]);
        assert_eq!(
            (p.isr.clone(), p.leader),
            (before.isr.clone(), before.leader)
        );
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![], vec![4, 3]));
        join(&mut img, 5);
        let p = part(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![5, 1, 2], vec![5, 1, 2])
        );
        assert!(!p.reassigning());
    }

    #[test]
    fn bad_targets_are_refused_with_kafkas_errors() {
        let mut img = image();
        for target in [&[][..], &[1, 1][..], &[1, 9][..]] {
            assert!(
                matches!(
                    ask(&mut img, Some(target)),
                    Err(ApiError::InvalidReplicaAssignment(_))
                ),
                "{target:?}"
            );
        }
        let req = Request {
            topic: "t",
            partition: 0,
            target: Some(&[1, 2]),
            allow_replication_factor_change: false,
        };
        assert!(matches!(
            alter(&img, &req),
            Err(ApiError::InvalidReplicationFactor(_))
        ));
        let req = Request {
            topic: "nope",
            ..req
        };
        assert!(matches!(alter(&img, &req), Err(ApiError::UnknownTopic(_))));
        assert!(!part(&img).reassigning());
    }
}
