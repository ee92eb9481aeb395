//! FindCoordinator (incl. batched keys, v4+): this broker coordinates every group. Creates
//! `__consumer_offsets` on first use, as Kafka does. Transaction coordinators come with
//! transactions.

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
        let ready = req.key_type != 0 || broker.ensure_offsets_topic().await.is_ok();
        let (host, port) = broker.advertised_endpoint();
        let answer = |key: StrBytes| {
            let mut c = Coordinator::default();
            c.key = key;
            if req.key_type != 0 {
                c.error_code = code(ResponseError::CoordinatorNotAvailable);
                c.error_message = Some(StrBytes::from_static_str(
                    "transactions are not supported yet",
                ));
                c.node_id = BrokerId(-1);
                c.port = -1;
            } else if !ready {
                c.error_code = code(ResponseError::CoordinatorNotAvailable);
                c.node_id = BrokerId(-1);
                c.port = -1;
            } else {
                c.node_id = BrokerId(broker.node_id);
                c.host = StrBytes::from_string(host.clone());
                c.port = i32::from(port);
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
