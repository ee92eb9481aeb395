//! OffsetForLeaderEpoch: where a leader epoch ends in the leader's log (KIP-101 / KIP-320).
//! Followers ask it when their log may have diverged (the fallback of Fetch's
//! `DivergingEpoch`); consumers ask it after a leader change to check that the records
//! before their position were not cut. As Kafka's `Partition.lastOffsetForLeaderEpoch`:
//! the current leader epoch is checked (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH), only
//! the leader answers, and an epoch the log does not know is answered with -1 / -1.

use crate::broker::Broker;
use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use std::sync::Arc;

pub fn handle(
    broker: &Arc<Broker>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = -1;
            e.end_offset = -1;
            match broker.replicas.get(t.topic.0.as_str(), p.partition) {
                None if broker.meta.image().topics.contains_key(t.topic.0.as_str()) => {
                    e.error_code = code(ResponseError::NotLeaderOrFollower);
                }
                None => e.error_code = code(ResponseError::UnknownTopicOrPartition),
                Some(part) => match part.leader_epoch_checked(p.current_leader_epoch) {
                    Err(c) => e.error_code = c,
                    Ok(_) => {
                        let (epoch, end) = part.end_offset_for_epoch(p.leader_epoch);
                        if end >= 0 {
                            e.leader_epoch = epoch;
                            e.end_offset = end;
                        }
                    }
                },
            }
            tr.partitions.push(e);
        }
        response.topics.push(tr);
    }
    response
}
