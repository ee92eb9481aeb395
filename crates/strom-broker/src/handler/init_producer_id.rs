//! InitProducerId: for an idempotent producer a fresh producer id from the block this broker
//! reserved through the metadata log; for a transactional id, its coordinator's decision
//! (`txn::state::init_producer_id`: a new epoch, fencing an open transaction).

use crate::broker::Broker;
use crate::error::code;
use crate::handler::txn::fenced_as;
use crate::handler::{Pending, Reply};
use crate::txn::state;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, version: i16, req: InitProducerIdRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut r = InitProducerIdResponse::default();
        r.producer_id = ProducerId(-1);
        r.producer_epoch = -1;
        r.ongoing_txn_producer_id = ProducerId(-1);
        r.ongoing_txn_producer_epoch = -1;
        let answer = match req.transactional_id.as_ref().map(|t| t.0.to_string()) {
            // Kafka: an empty transactional id is a malformed request (null means none).
            Some(id) if id.is_empty() => Err(code(ResponseError::InvalidRequest)),
            Some(id) => transactional(&broker, &id, &req).await,
            None => broker.next_producer_id().await.map(|id| (id, 0)),
        };
        match answer {
            Ok((id, epoch)) => {
                r.producer_id = ProducerId(id);
                r.producer_epoch = epoch;
            }
            Err(c) => r.error_code = fenced_as(c, version >= 4),
        }
        Reply::Message(ResponseKind::InitProducerId(r))
    })
}

async fn transactional(
    broker: &Arc<Broker>,
    id: &str,
    req: &InitProducerIdRequest,
) -> Result<(i64, i16), i16> {
    let timeout = req.transaction_timeout_ms;
    if timeout <= 0 || timeout > broker.config.txn.max_timeout_ms {
        return Err(code(ResponseError::InvalidTransactionTimeout));
    }
    // KIP-360: the producer id and epoch the client had, both or neither.
    let expected = match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => None,
        (id, epoch) if id >= 0 && epoch >= 0 => Some((id, epoch)),
        _ => return Err(code(ResponseError::InvalidRequest)),
    };
    let now = crate::metadata_store::now_ms();
    let d = broker
        .txn_transition_patient(id, |m, new_pid| {
            state::init_producer_id(m, timeout, expected, new_pid, now)
        })
        .await?;
    Ok((d.meta.producer_id, d.meta.producer_epoch))
}
