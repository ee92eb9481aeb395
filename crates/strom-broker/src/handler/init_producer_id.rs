//! InitProducerId for idempotent producers: a fresh producer id from the block this broker
//! reserved through the metadata log. Transactional ids come with the transactions issue.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::{Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut r = InitProducerIdResponse::default();
        r.producer_id = ProducerId(-1);
        r.producer_epoch = -1;
        r.ongoing_txn_producer_id = ProducerId(-1);
        r.ongoing_txn_producer_epoch = -1;
        if req.transactional_id.as_ref().is_some_and(|t| t.is_empty()) {
            // Kafka: an empty transactional id is a malformed request (null means none).
            r.error_code = code(ResponseError::InvalidRequest);
        } else if req.transactional_id.is_some() {
            r.error_code = code(ResponseError::TransactionalIdAuthorizationFailed);
        } else {
            match broker.next_producer_id().await {
                Ok(id) => {
                    r.producer_id = ProducerId(id);
                    r.producer_epoch = 0;
                }
                Err(c) => r.error_code = c,
            }
        }
        Reply::Message(ResponseKind::InitProducerId(r))
    })
}
