//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), and the
//! first offset at or after a timestamp.

use crate::broker::Broker;
use crate::error::{self, code};
use crate::partition::Partition;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub fn handle(broker: &Arc<Broker>, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // A follower (replica id >= 0) is answered from the whole log, as Kafka's
    // `fetchOffsetForTimestamp` without an isolation level.
    let replica = req.replica_id.0 >= 0;
    let committed = !replica && req.isolation_level == 1;
    let mut response = ListOffsetsResponse::default();
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            pr.leader_epoch = -1;
            match broker.replicas.get(t.name.0.as_str(), p.partition_index) {
                None => pr.error_code = code(ResponseError::UnknownTopicOrPartition),
                Some(part) => {
                    match part.leader_epoch_checked(p.current_leader_epoch) {
                        Err(c) => pr.error_code = c,
                        Ok(epoch) => {
                            let epoch = lookup(&part, p.timestamp, (replica, committed), &mut pr)
                                .unwrap_or(epoch);
                            // The leader epoch of the offset found (none found: -1).
                            if version >= 4 && pr.offset >= 0 {
                                pr.leader_epoch = epoch;
                            }
                        }
                    }
                }
            }
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}

/// One partition's answer: consumers are told offsets below the high watermark only (Kafka's
/// `fetchOffsetForTimestamp` for requests without a replica id), and OFFSET_NOT_AVAILABLE
/// while a new leader's high watermark has not reached its epoch's start (KIP-207: offsets
/// below it may still be cut); read_committed ones offsets below the last stable offset. The
/// epoch of the offset found, when it is not the current one.
fn lookup(
    part: &Partition,
    timestamp: i64,
    (replica, committed): (bool, bool),
    pr: &mut ListOffsetsPartitionResponse,
) -> Option<i32> {
    if !replica && !matches!(timestamp, EARLIEST | EARLIEST_LOCAL) && part.epoch_start_pending() {
        pr.error_code = code(ResponseError::OffsetNotAvailable);
        return None;
    }
    let found = match timestamp {
        LATEST if replica => {
            pr.offset = part.log_end_offset();
            return None;
        }
        LATEST if committed => {
            pr.offset = part.last_stable_offset();
            return None;
        }
        LATEST => {
            pr.offset = part.high_watermark();
            return None;
        }
        EARLIEST | EARLIEST_LOCAL => {
            pr.offset = part.log_start_offset();
            return part.epoch_at(pr.offset);
        }
        EARLIEST_PENDING_UPLOAD => return None,
        MAX_TIMESTAMP => part.max_timestamp(),
        ts if ts >= 0 => part.offset_for_timestamp(ts),
        // Kafka's answer to a special timestamp it does not know.
        _ => {
            pr.error_code = code(ResponseError::UnsupportedVersion);
            return None;
        }
    };
    let found = match committed {
        true => found.map(|f| f.filter(|f| f.offset < part.last_stable_offset())),
        false => found,
    };
    match found {
        Ok(Some(f)) => {
            pr.offset = f.offset;
            pr.timestamp = f.timestamp;
            part.epoch_at(f.offset)
        }
        Ok(None) => None,
        Err(e) => {
            pr.error_code = error::log_error(&e);
            None
        }
    }
}
