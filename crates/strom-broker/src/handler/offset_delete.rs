//! OffsetDelete: drops a group's committed offsets for partitions of topics no live member
//! subscribes to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use crate::broker::Broker;
use crate::group::offsets::OffsetRecord;
use crate::group::state::GROUP_ID_NOT_FOUND;
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};
use std::sync::Arc;

const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

pub fn handle(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let group = req.group_id.0.as_str().to_string();
        let mut r = OffsetDeleteResponse::default();
        if let Err(c) = broker.check_coordinator(&group) {
            r.error_code = c;
            return Reply::Message(ResponseKind::OffsetDelete(r));
        }
        if !broker.groups.exists(&group) && broker.offsets.all(&group).is_empty() {
            r.error_code = GROUP_ID_NOT_FOUND;
            return Reply::Message(ResponseKind::OffsetDelete(r));
        }
        let mut records = Vec::new();
        for t in &req.topics {
            let topic = t.name.0.as_str().to_string();
            let subscribed = broker.groups.subscribed_to(&group, &topic);
            let mut tr = OffsetDeleteResponseTopic::default();
            tr.name = t.name.clone();
            for p in &t.partitions {
                let mut pr = OffsetDeleteResponsePartition::default();
                pr.partition_index = p.partition_index;
                if subscribed {
                    pr.error_code = GROUP_SUBSCRIBED_TO_TOPIC;
                } else {
                    records.push(OffsetRecord::DeleteOffset {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: p.partition_index,
                    });
                }
                tr.partitions.push(pr);
            }
            r.topics.push(tr);
        }
        if !records.is_empty() {
            if let Err(c) = broker.persist_offsets(&group, &records).await {
                r.error_code = c;
            }
        }
        Reply::Message(ResponseKind::OffsetDelete(r))
    })
}
