//! AddRaftVoter and RemoveRaftVoter (KIP-853): a dynamic quorum's voters change while it
//! runs (Kafka's `kafka-metadata-quorum add-controller | remove-controller`, Strom's
//! `strom cluster add-voter | remove-voter`). Any broker takes them and hands them to the
//! quorum leader (the active controller), which checks them: an added voter must follow
//! the log as an observer on the directory named, and is made a voter once caught up; a
//! removed one must be a voter on it. A static quorum's voters never change.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::{Pending, Reply};
use crate::metadata_store::quorum::{AppCall, AppReply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
    ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;

pub fn add(broker: &Arc<Broker>, req: AddRaftVoterRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let call = AppCall::AddVoter {
            node_id: req.voter_id,
            directory_id: req.voter_directory_id.to_string(),
            endpoint: req.listeners.first().map(|l| (l.host.to_string(), l.port)),
        };
        let within = Duration::from_millis(req.timeout_ms.clamp(1_000, 300_000) as u64);
        let (error, message) = change(&broker, req.cluster_id.as_deref(), call, within).await;
        let mut r = AddRaftVoterResponse::default();
        r.error_code = error;
        r.error_message = message.map(StrBytes::from_string);
        Reply::Message(ResponseKind::AddRaftVoter(r))
    })
}

pub fn remove(broker: &Arc<Broker>, req: RemoveRaftVoterRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let call = AppCall::RemoveVoter {
            node_id: req.voter_id,
            directory_id: req.voter_directory_id.to_string(),
        };
        let within = Duration::from_secs(30);
        let (error, message) = change(&broker, req.cluster_id.as_deref(), call, within).await;
        let mut r = RemoveRaftVoterResponse::default();
        r.error_code = error;
        r.error_message = message.map(StrBytes::from_string);
        Reply::Message(ResponseKind::RemoveRaftVoter(r))
    })
}

/// Checks the request against this cluster, then has the leader make the change.
async fn change(
    broker: &Broker,
    cluster_id: Option<&str>,
    call: AppCall,
    within: Duration,
) -> (i16, Option<String>) {
    let fail = |e: ResponseError, m: String| (code(e), Some(m));
    if let Some(id) = cluster_id.filter(|id| !id.is_empty() && *id != broker.cluster_id()) {
        return fail(
            ResponseError::InconsistentClusterId,
            format!("this is cluster {}, not {id}", broker.cluster_id()),
        );
    }
    if !broker.config.quorum.is_dynamic() {
        return fail(
            ResponseError::UnsupportedVersion,
            "the quorum is static (controller.quorum.voters): its voters do not change; \
             a dynamic quorum has controller.quorum.bootstrap.servers"
                .into(),
        );
    }
    match broker.meta.ask_leader(&call, within).await {
        Some(AppReply::Done) => (0, None),
        Some(AppReply::Refused { code, message }) => (code, Some(message)),
        Some(AppReply::Failed(e)) => fail(ResponseError::UnknownServerError, e),
        _ => fail(
            ResponseError::RequestTimedOut,
            "the quorum leader did not make the change in time".into(),
        ),
    }
}
