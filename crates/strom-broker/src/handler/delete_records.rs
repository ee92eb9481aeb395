//! DeleteRecords: moves partitions' log start offsets forward (-1: to the high watermark).
//! As Kafka's, the answer waits (up to the request's timeout) until every in-sync replica's
//! log starts there too: followers take the leader's log start from their next fetch and
//! report their own in the one after. The low watermark answered is the smallest of them.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::{Pending, Reply};
use crate::partition::Wait;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use std::sync::Arc;
use std::time::Duration;

pub fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> Pending {
    let mut response = DeleteRecordsResponse::default();
    let mut waits = Vec::new();
    for (ti, t) in req.topics.into_iter().enumerate() {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for (pi, p) in t.partitions.into_iter().enumerate() {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            match broker.replicas.get(t.name.0.as_str(), p.partition_index) {
                None => {
                    pr.error_code = super::steer::not_hosted(
                        broker,
                        t.name.0.as_str(),
                        uuid::Uuid::nil(),
                        p.partition_index,
                    )
                }
                Some(part) => match part.delete_records(p.offset) {
                    Ok(start) => {
                        let rx = part.wait_for(Wait::LowWatermark, start - 1);
                        waits.push((ti, pi, part, rx));
                    }
                    Err(c) => pr.error_code = c,
                },
            }
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    Box::pin(async move {
        for (ti, pi, part, rx) in waits {
            let outcome = tokio::time::timeout_at(deadline, rx).await;
            let Some(pr) = response
                .topics
                .get_mut(ti)
                .and_then(|t| t.partitions.get_mut(pi))
            else {
                continue;
            };
            match outcome {
                Ok(Ok(Ok(_))) => pr.low_watermark = part.low_watermark(),
                Ok(Ok(Err(c))) => pr.error_code = c,
                Ok(Err(_)) => pr.error_code = code(ResponseError::NotLeaderOrFollower),
                Err(_) => pr.error_code = code(ResponseError::RequestTimedOut),
            }
        }
        Reply::Message(ResponseKind::DeleteRecords(response))
    })
}
