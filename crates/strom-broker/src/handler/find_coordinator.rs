//! FindCoordinator (incl. batched keys, v4+): a group's coordinator is the leader of its
//! `__consumer_offsets` partition, a transactional id's the leader of its
//! `__transaction_state` partition. Creates either topic on first use, as Kafka does.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::{Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, version: i16, req: FindCoordinatorRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let keys: Vec<StrBytes> = if version >= 4 {
            req.coordinator_keys.clone()
        } else {
            vec![req.key.clone()]
        };
        let ready = match req.key_type {
            0 => broker.ensure_offsets_topic().await.is_ok(),
            1 => broker.ensure_txn_topic().await.is_ok(),
            _ => false,
        };
        let image = broker.meta.image();
        let answer = |key: StrBytes| {
            let mut c = Coordinator::default();
            c.node_id = BrokerId(-1);
            c.port = -1;
            let found = match req.key_type {
                0 => broker.group_coordinator(&image, key.as_str()),
                _ => broker.txn_coordinator(&image, key.as_str()),
            };
            c.key = key;
            if req.key_type > 1 {
                // Share coordinators (KIP-932) come with share groups.
                c.error_code = code(ResponseError::InvalidRequest);
            } else if !ready {
                c.error_code = code(ResponseError::CoordinatorNotAvailable);
            } else if let Some((id, host, port)) = found {
                c.node_id = BrokerId(id);
                c.host = StrBytes::from_string(host);
                c.port = i32::from(port);
            } else {
                // The group's partition has no leader a client can reach now.
                c.error_code = code(ResponseError::CoordinatorNotAvailable);
            }
            c
        };
        let mut r = FindCoordinatorResponse::default();
        let coordinators: Vec<Coordinator> = keys.into_iter().map(answer).collect();
        if version >= 4 {
            r.coordinators = coordinators;
        } else if let Some(c) = coordinators.into_iter().next() {
            r.error_code = c.error_code;
            r.error_message = c.error_message;
            r.node_id = c.node_id;
            r.host = c.host;
            r.port = c.port;
        }
        Reply::Message(ResponseKind::FindCoordinator(r))
    })
}
