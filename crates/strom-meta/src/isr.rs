//! The controller's side of AlterPartition (pure): a partition leader asks to shrink or
//! expand its ISR, against the leader epoch and partition epoch it knows. As Kafka's
//! `ReplicationControlManager.alterPartition`: a stale leader epoch is FENCED_LEADER_EPOCH, a
//! stale partition epoch INVALID_UPDATE_VERSION, a request from a broker that does not lead
//! NOT_LEADER_OR_FOLLOWER, and a new ISR may only hold live, unfenced replicas and must hold
//! the leader (INELIGIBLE_REPLICA / INVALID_REQUEST). An ISR change keeps the leader epoch
//! (Kafka 3.6+: only a leader change bumps it); the partition epoch moves.

use crate::error::ApiError;
use crate::image::{MetadataImage, PartitionImage};
use crate::record::MetadataRecord;
use uuid::Uuid;

/// One partition's ISR change, as its leader asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The broker asking: it must lead the partition.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The broker epochs the leader knows for members of `new_isr` (a follower's from its
    /// fetches; -1 or absent: not known, not checked), as AlterPartition v3's
    /// `NewIsrWithEpochs` (KIP-903).
    pub broker_epochs: Vec<(i32, i64)>,
}

/// The record that makes `change`, or why it is refused. An ISR equal to the current one
/// is no change (no record).
pub fn alter_partition(
    image: &MetadataImage,
    change: &IsrChange,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let p = image
        .topic_names
        .get(&change.topic_id)
        .and_then(|n| image.topics.get(n))
        .and_then(|t| t.partitions.get(&change.partition))
        .ok_or_else(|| ApiError::UnknownTopic(format!("{}", change.topic_id)))?;
    if p.leader != change.leader {
        return Err(ApiError::NotLeaderOrFollower(format!(
            "broker {} does not lead partition {}",
            change.leader, change.partition
        )));
    }
    if change.leader_epoch != p.leader_epoch {
        return Err(ApiError::FencedLeaderEpoch(format!(
            "leader epoch {} is not the partition's {}",
            change.leader_epoch, p.leader_epoch
        )));
    }
    if change.partition_epoch != p.partition_epoch {
        return Err(ApiError::InvalidUpdateVersion(format!(
            "partition epoch {} is not the partition's {}",
            change.partition_epoch, p.partition_epoch
        )));
    }
    let mut isr = change.new_isr.clone();
    isr.sort_unstable();
    isr.dedup();
    if isr.len() != change.new_isr.len()
        || !isr.contains(&change.leader)
        || isr.iter().any(|id| !p.replicas.contains(id))
    {
        return Err(ApiError::InvalidRequest(format!(
            "ISR {:?} must hold the leader and only replicas {:?}, once each",
            change.new_isr, p.replicas
        )));
    }
    ineligible(image, p, change)?;
    let mut same = p.isr.clone();
    same.sort_unstable();
    if same == isr {
        return Ok(Vec::new());
    }
    // Kept in replica order, as Kafka lists an ISR.
    let isr: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|id| change.new_isr.contains(id))
        .collect();
    let topic = &image.topic_names[&change.topic_id];
    let next = crate::elr::settle(image, topic, p, PartitionImage { isr, ..p.clone() });
    // The ISR a reassignment waited for completes it in the same record.
    let next = crate::reassignment::complete_if_ready(image, next);
    Ok(vec![next.to_record(change.topic_id, change.partition)])
}

/// INELIGIBLE_REPLICA unless every replica joining is registered and unfenced, and every
/// member whose broker epoch the leader names is in that epoch (a replica that restarted
/// since its fetches counted is another incarnation: KIP-903). Kafka checks fencing for
/// every member; here a fenced member can only be the last in-sync replica, which stays.
fn ineligible(
    image: &MetadataImage,
    p: &PartitionImage,
    change: &IsrChange,
) -> Result<(), ApiError> {
    for id in &change.new_isr {
        let broker = image.brokers.get(id);
        if !p.isr.contains(id) && broker.is_none_or(|b| b.fenced) {
            return Err(ApiError::IneligibleReplica(format!(
                "replica {id} is fenced or unknown and cannot join the ISR"
            )));
        }
        let named = change.broker_epochs.iter().find(|(b, _)| b == id);
        if let (Some((_, epoch)), Some(b)) = (named, broker) {
            if *epoch != -1 && *epoch != b.epoch {
                return Err(ApiError::IneligibleReplica(format!(
                    "replica {id} has broker epoch {}, not {epoch}",
                    b.epoch
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> MetadataImage {
        crate::testing::image_with(Uuid::from_u128(7), &[(vec![1, 2, 3], vec![1, 2, 3], 1, 4)])
    }

    fn change(isr: &[i32], leader_epoch: i32, partition_epoch: i32) -> IsrChange {
        IsrChange {
            topic_id: Uuid::from_u128(7),
            partition: 0,
            leader: 1,
            leader_epoch,
            partition_epoch,
            new_isr: isr.to_vec(),
            broker_epochs: Vec::new(),
        }
    }

    #[test]
    fn a_shrink_then_an_expand_move_the_partition_epoch_not_the_leader_epoch() {
        let mut img = image();
        let records = alter_partition(&img, &change(&[1, 3], 4, 0)).unwrap();
        for r in &records {
            img.apply(r).unwrap();
        }
        let p = &img.topics["t"].partitions[&0];
        assert_eq!(
            (p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (vec![1, 3], 4, 1)
        );
        assert_eq!(
            alter_partition(&img, &change(&[1, 2, 3], 4, 0)),
            Err(ApiError::InvalidUpdateVersion(
                "partition epoch 0 is not the partition's 1".into()
            ))
        );
        let records = alter_partition(&img, &change(&[3, 2, 1], 4, 1)).unwrap();
        for r in &records {
            img.apply(r).unwrap();
        }
        assert_eq!(img.topics["t"].partitions[&0].isr, vec![1, 2, 3]);
    }

    #[test]
    fn refusals_as_kafka_gives_them() {
        let mut img = image();
        assert!(matches!(
            alter_partition(&img, &change(&[1], 3, 0)),
            Err(ApiError::FencedLeaderEpoch(_))
        ));
        assert!(matches!(
            alter_partition(&img, &change(&[2, 3], 4, 0)),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            alter_partition(&img, &change(&[1, 4], 4, 0)),
            Err(ApiError::InvalidRequest(_))
        ));
        let not_leader = IsrChange {
            leader: 2,
            ..change(&[2], 4, 0)
        };
        assert!(matches!(
            alter_partition(&img, &not_leader),
            Err(ApiError::NotLeaderOrFollower(_))
        ));
        // A fenced broker cannot come back into the ISR.
        for r in crate::membership::fence(&img, 3) {
            img.apply(&r).unwrap();
        }
        let p = img.topics["t"].partitions[&0].clone();
        assert_eq!(p.isr, vec![1, 2]);
        assert!(matches!(
            alter_partition(&img, &change(&[1, 2, 3], 4, p.partition_epoch)),
            Err(ApiError::IneligibleReplica(_))
        ));
        assert_eq!(
            alter_partition(&img, &change(&[2, 1], 4, p.partition_epoch)),
            Ok(Vec::new())
        );
    }

    #[test]
    fn a_replica_joins_only_in_its_current_broker_epoch() {
        let img = image();
        let epoch = img.brokers[&2].epoch;
        let with = |epochs: Vec<(i32, i64)>| IsrChange {
            broker_epochs: epochs,
            ..change(&[1, 2], 4, 0)
        };
        assert!(alter_partition(&img, &with(vec![(2, epoch)])).is_ok());
        assert!(
            alter_partition(&img, &with(vec![(2, -1)])).is_ok(),
            "unknown"
        );
        assert_eq!(
            alter_partition(&img, &with(vec![(1, -1), (2, epoch - 1)])),
            Err(ApiError::IneligibleReplica(format!(
                "replica 2 has broker epoch {epoch}, not {}",
                epoch - 1
            )))
        );
    }
}
