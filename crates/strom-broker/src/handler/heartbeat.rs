//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use crate::broker::Broker;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut r = HeartbeatResponse::default();
    if let Err(c) = broker.check_coordinator(req.group_id.0.as_str()) {
        r.error_code = c;
        return r;
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.as_str());
    if broker
        .groups
        .fenced(req.group_id.0.as_str(), req.member_id.as_str(), instance)
    {
        r.error_code = crate::group::state::FENCED_INSTANCE_ID;
        return r;
    }
    r.error_code = broker.groups.heartbeat(
        req.group_id.0.as_str(),
        req.generation_id,
        req.member_id.as_str(),
        crate::metadata_store::now_ms(),
    );
    r
}
