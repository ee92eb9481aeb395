//! JoinGroup: enters the member into the group's rebalance; answered when the join phase
//! completes (or at once with an error or MEMBER_ID_REQUIRED).

use crate::broker::Broker;
use crate::group::state::{JoinRequest, NOT_COORDINATOR};
use crate::group::JoinReply;
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: JoinGroupRequest,
    client_id: String,
    peer: String,
) -> Pending {
    let request = JoinRequest {
        group_id: req.group_id.0.as_str().to_string(),
        member_id: req.member_id.as_str().to_string(),
        instance_id: req
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_string()),
        client_id,
        client_host: format!("/{peer}"),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.as_str().to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let image = broker.meta.image();
    let rx = match broker.check_coordinator(&request.group_id) {
        Ok(()) => broker.groups.join(
            request,
            crate::metadata_store::now_ms(),
            &crate::handler::consumer_group::ImageTopics(&image),
        ),
        Err(error_code) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(JoinReply {
                error_code,
                ..JoinReply::default()
            });
            rx
        }
    };
    Box::pin(async move {
        // A group unloaded while this member waited: look the coordinator up again.
        let j = rx.await.unwrap_or_else(|_| JoinReply {
            error_code: NOT_COORDINATOR,
            ..JoinReply::default()
        });
        let mut r = JoinGroupResponse::default();
        r.error_code = j.error_code;
        r.generation_id = if j.error_code == 0 {
            j.generation_id
        } else {
            -1
        };
        r.protocol_type = j.protocol_type.map(StrBytes::from_string);
        // Nullable from v7: an error carries no protocol, as Kafka answers.
        r.protocol_name = if version >= 7 {
            j.protocol_name.map(StrBytes::from_string)
        } else {
            Some(StrBytes::from_string(j.protocol_name.unwrap_or_default()))
        };
        r.leader = StrBytes::from_string(j.leader);
        if version >= 9 {
            r.skip_assignment = j.skip_assignment;
        }
        r.member_id = StrBytes::from_string(j.member_id);
        r.members = j
            .members
            .into_iter()
            .map(|(id, instance, meta)| {
                let mut m = JoinGroupResponseMember::default();
                m.member_id = StrBytes::from_string(id);
                m.group_instance_id = instance.map(StrBytes::from_string);
                m.metadata = meta;
                m
            })
            .collect();
        Reply::Message(ResponseKind::JoinGroup(r))
    })
}
