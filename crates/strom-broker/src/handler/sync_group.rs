//! SyncGroup: the leader hands out assignments; every member gets its own once it has and
//! the generation's membership is stored.

use crate::broker::Broker;
use crate::group::state::{Synced, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR};
use crate::group::SyncReply;
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use tokio::sync::oneshot;

pub fn handle(broker: &Arc<Broker>, req: SyncGroupRequest) -> Pending {
    if let Err(c) = broker.check_coordinator(req.group_id.0.as_str()) {
        let mut r = SyncGroupResponse::default();
        r.error_code = c;
        return crate::handler::ready(ResponseKind::SyncGroup(r));
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.as_str());
    if broker
        .groups
        .fenced(req.group_id.0.as_str(), req.member_id.as_str(), instance)
    {
        let mut r = SyncGroupResponse::default();
        r.error_code = crate::group::state::FENCED_INSTANCE_ID;
        return crate::handler::ready(ResponseKind::SyncGroup(r));
    }
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.as_str().to_string(), a.assignment.clone()))
        .collect();
    let image = broker.meta.image();
    let synced = broker.groups.sync_outcome(
        req.group_id.0.as_str(),
        req.generation_id,
        req.member_id.as_str(),
        assignments,
        crate::metadata_store::now_ms(),
        &crate::handler::consumer_group::ImageTopics(&image),
    );
    let broker = Arc::clone(broker);
    Box::pin(async move {
        // Its own task: a generation being written is answered even if this connection
        // goes away meanwhile (its SyncGroups wait for the write).
        let task = tokio::spawn(async move { (stored(&broker, synced).await,) });
        let rx = match task.await {
            Ok((rx,)) => rx,
            Err(_) => oneshot::channel().1,
        };
        let s = rx.await.unwrap_or_else(|_| crate::group::SyncReply {
            error_code: crate::group::state::NOT_COORDINATOR,
            ..Default::default()
        });
        let mut r = SyncGroupResponse::default();
        r.error_code = s.error_code;
        r.protocol_type = s.protocol_type.map(StrBytes::from_string);
        r.protocol_name = s.protocol_name.map(StrBytes::from_string);
        r.assignment = s.assignment;
        Reply::Message(ResponseKind::SyncGroup(r))
    })
}

/// A completed generation's membership is written before its members get their
/// assignments (as Kafka answers SyncGroup once GroupMetadata is stored); if it cannot be,
/// they get the error and the group rebalances.
async fn stored(broker: &Broker, synced: Synced) -> oneshot::Receiver<SyncReply> {
    let Some((group, _)) = synced.completed.clone() else {
        return broker.groups.stored(synced);
    };
    match broker.persist_membership(&group).await {
        Ok(_) => broker.groups.stored(synced),
        Err(code) => {
            let code = if code == NOT_COORDINATOR {
                code
            } else {
                COORDINATOR_NOT_AVAILABLE
            };
            let now = crate::metadata_store::now_ms();
            broker.groups.sync_failed(synced, code, now)
        }
    }
}
