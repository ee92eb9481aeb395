//! DeleteRecords: moves partitions' log start offsets forward (-1: to the high watermark).

use crate::broker::Broker;
use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for t in req.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            match broker.replicas.get(t.name.0.as_str(), p.partition_index) {
                None => pr.error_code = code(ResponseError::UnknownTopicOrPartition),
                Some(part) => match part.delete_records(p.offset) {
                    Ok(start) => pr.low_watermark = start,
                    Err(c) => pr.error_code = c,
                },
            }
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}
