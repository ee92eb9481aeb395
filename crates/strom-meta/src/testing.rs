//! Images for the controller's unit tests: three registered brokers and a topic.

use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use uuid::Uuid;

/// One partition of topic "t": (replicas, ISR, leader, leader epoch).
pub(crate) type Part = (Vec<i32>, Vec<i32>, i32, i32);

/// Brokers 1, 2 and 3 registered, and topic "t" (`topic_id`) with `partitions` (0, 1, ...).
pub(crate) fn image_with(topic_id: Uuid, partitions: &[Part]) -> MetadataImage {
    let mut records: Vec<MetadataRecord> = (1..=3)
        .map(|n| MetadataRecord::RegisterBroker {
            node_id: n,
            host: "h".into(),
            port: 9092,
            rack: None,
            log_dirs: Vec::new(),
            incarnation: None,
        })
        .collect();
    records.push(MetadataRecord::Topic {
        name: "t".into(),
        topic_id,
    });
    for (i, (replicas, isr, leader, leader_epoch)) in partitions.iter().enumerate() {
        records.push(MetadataRecord::Partition {
            topic_id,
            partition: i as i32,
            replicas: replicas.clone(),
            isr: isr.clone(),
            leader: *leader,
            leader_epoch: *leader_epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            eligible_leader_replicas: Vec::new(),
        });
    }
    let mut img = MetadataImage::default();
    apply(&mut img, &records);
    img
}

pub(crate) fn apply(img: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        img.apply(r).unwrap();
    }
}
