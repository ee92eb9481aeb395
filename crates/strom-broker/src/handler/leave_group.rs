//! LeaveGroup: one member (v0–2) or a batch by member or instance id (v3+).

use crate::broker::Broker;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let group = req.group_id.0.as_str();
    let now = crate::metadata_store::now_ms();
    let mut r = LeaveGroupResponse::default();
    if let Err(c) = broker.check_coordinator(group) {
        r.error_code = c;
        return r;
    }
    if version < 3 {
        r.error_code = broker
            .groups
            .leave(group, req.member_id.as_str(), None, now);
        return r;
    }
    for m in &req.members {
        let mut out = MemberResponse::default();
        out.member_id = m.member_id.clone();
        out.group_instance_id = m.group_instance_id.clone();
        out.error_code = broker.groups.leave(
            group,
            m.member_id.as_str(),
            m.group_instance_id.as_ref().map(|s| s.as_str()),
            now,
        );
        r.members.push(out);
    }
    r
}
