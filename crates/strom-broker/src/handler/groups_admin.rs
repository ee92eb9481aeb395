//! ListGroups (with state and type filters), DescribeGroups and DeleteGroups.

use crate::broker::Broker;
use crate::group::offsets::OffsetRecord;
use crate::group::state::{GROUP_ID_NOT_FOUND, NONE};
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn list(broker: &Arc<Broker>, req: ListGroupsRequest) -> ListGroupsResponse {
    let mut r = ListGroupsResponse::default();
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect();
    for (id, state, protocol_type, group_type) in broker.groups.list() {
        if !states.is_empty() && !states.contains(&state.to_ascii_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == group_type) {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = GroupId(StrBytes::from_string(id));
        g.protocol_type = StrBytes::from_string(protocol_type);
        g.group_state = StrBytes::from_static_str(state);
        g.group_type = StrBytes::from_static_str(group_type);
        r.groups.push(g);
    }
    r
}

pub fn describe(
    broker: &Arc<Broker>,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    let ops = crate::authz::if_asked(
        req.include_authorized_operations,
        crate::authz::GROUP_OPERATIONS,
    );
    let image = broker.meta.image();
    let names = |t: &uuid::Uuid| image.topic_names.get(t).cloned();
    for id in req.groups {
        let mut g = DescribedGroup::default();
        g.group_id = id.clone();
        g.authorized_operations = ops;
        if let Err(c) = broker.check_coordinator(id.0.as_str()) {
            g.error_code = c;
            r.groups.push(g);
            continue;
        }
        match broker.groups.describe(id.0.as_str(), &names) {
            // v6 (KIP-1043) names an unknown group; older versions describe it as Dead.
            None if version >= 6 => {
                g.error_code = crate::group::state::GROUP_ID_NOT_FOUND;
                g.error_message = Some(StrBytes::from_string(format!(
                    "Group {} not found.",
                    id.0.as_str()
                )));
                g.group_state = StrBytes::from_static_str("Dead");
            }
            None => g.group_state = StrBytes::from_static_str("Dead"),
            Some(d) => {
                g.group_state = StrBytes::from_static_str(d.state);
                g.protocol_type = StrBytes::from_string(d.protocol_type);
                g.protocol_data = StrBytes::from_string(d.protocol);
                g.members = d
                    .members
                    .into_iter()
                    .map(|(member, instance, client, host, meta, assignment)| {
                        let mut m = DescribedGroupMember::default();
                        m.member_id = StrBytes::from_string(member);
                        m.group_instance_id = instance.map(StrBytes::from_string);
                        m.client_id = StrBytes::from_string(client);
                        m.client_host = StrBytes::from_string(host);
                        m.member_metadata = meta;
                        m.member_assignment = assignment;
                        m
                    })
                    .collect();
            }
        }
        r.groups.push(g);
    }
    r
}

pub fn delete(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut r = DeleteGroupsResponse::default();
        for id in req.groups_names {
            let name = id.0.as_str().to_string();
            let mut error_code = match broker.check_coordinator(&name) {
                Ok(()) => broker.groups.delete(&name),
                Err(c) => c,
            };
            // A group known only by its offsets (no member ever joined here) is deletable too.
            if error_code == GROUP_ID_NOT_FOUND && !broker.offsets.all(&name).is_empty() {
                error_code = NONE;
            }
            if error_code == NONE {
                if let Err(c) = broker
                    .persist_offsets(
                        &name,
                        &[OffsetRecord::DeleteGroup {
                            group: name.clone(),
                        }],
                    )
                    .await
                {
                    error_code = c;
                }
            }
            let mut g = DeletableGroupResult::default();
            g.group_id = id;
            g.error_code = error_code;
            r.results.push(g);
        }
        Reply::Message(ResponseKind::DeleteGroups(r))
    })
}
