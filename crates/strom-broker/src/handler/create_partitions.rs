//! CreatePartitions: grows a topic to a new partition count (never shrinks it).

use crate::broker::Broker;
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::controller;

pub fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = CreatePartitionsResponse::default();
        for t in req.topics {
            let name = t.name.0.as_str().to_string();
            let count = t.count;
            let outcome = if req.validate_only {
                controller::create_partitions(&broker.meta.image(), &name, count)
                    .map(|_| ())
                    .map_err(|e| (crate::error::api_error(&e), e.to_string()))
            } else {
                let n = name.clone();
                broker
                    .commit(move |img| controller::create_partitions(img, &n, count))
                    .await
                    .map(|_| ())
            };
            let mut r = CreatePartitionsTopicResult::default();
            r.name = t.name;
            r.error_message = None;
            if let Err((c, m)) = outcome {
                r.error_code = c;
                // Kafka names no reason for an unknown topic.
                let unknown = c
                    == crate::error::code(
                        kafka_protocol::error::ResponseError::UnknownTopicOrPartition,
                    );
                r.error_message = (!unknown).then(|| StrBytes::from_string(m));
            }
            response.results.push(r);
        }
        Reply::Message(ResponseKind::CreatePartitions(response))
    })
}
