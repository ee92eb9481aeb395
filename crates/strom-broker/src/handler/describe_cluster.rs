//! DescribeCluster: the cluster id, the controller and the brokers; on a controller
//! listener (endpoint type 2, KIP-919) the controllers: the quorum's voters at their
//! controller endpoints, and the quorum leader as the controller.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::Endpoint;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: DescribeClusterRequest,
    endpoint: Endpoint,
) -> DescribeClusterResponse {
    let mut r = DescribeClusterResponse::default();
    r.endpoint_type = req.endpoint_type;
    r.cluster_id = StrBytes::from_string(broker.cluster_id().to_string());
    r.controller_id = BrokerId(broker.node_id);
    r.cluster_authorized_operations = crate::authz::if_asked(
        req.include_cluster_authorized_operations,
        crate::authz::CLUSTER_OPERATIONS,
    );
    if !matches!(req.endpoint_type, 1 | 2) {
        // Kafka's answer: the error, its message, and this endpoint's own type (a broker's).
        r.error_code = code(ResponseError::UnsupportedEndpointType);
        r.error_message = Some(StrBytes::from_string(format!(
            "Unsupported endpoint type {}",
            req.endpoint_type
        )));
        r.endpoint_type = 1;
        r.controller_id = BrokerId(-1);
        return r;
    }
    let (kind, here) = match endpoint {
        Endpoint::Broker => (1, "BROKER"),
        Endpoint::Controller => (2, "CONTROLLER"),
    };
    if req.endpoint_type != kind {
        let wanted = if kind == 1 { "CONTROLLER" } else { "BROKER" };
        r.error_code = code(ResponseError::MismatchedEndpointType);
        r.error_message = Some(StrBytes::from_string(format!(
            "The request was sent to an endpoint of type {here}, but we wanted an endpoint of type {wanted}"
        )));
        // v0 has no endpoint type: it is a broker's request, and says nothing of it.
        if version >= 1 {
            r.endpoint_type = kind;
        }
        r.controller_id = BrokerId(-1);
        return r;
    }
    if endpoint == Endpoint::Controller {
        return controllers(broker, r);
    }
    r.brokers = broker
        .advertised_brokers(&broker.meta.image())
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(id);
            b.host = StrBytes::from_string(host);
            b.port = i32::from(port);
            b.rack = rack.map(StrBytes::from_string);
            b
        })
        .collect();
    r
}

/// The voters at their controller endpoints, the quorum leader as the controller.
fn controllers(broker: &Broker, mut r: DescribeClusterResponse) -> DescribeClusterResponse {
    let Some(q) = broker.meta.quorum() else {
        return r;
    };
    r.controller_id = BrokerId(q.leader_id().map_or(-1, |l| l as i32));
    r.brokers = q
        .voter_endpoints()
        .into_iter()
        .map(|(id, host, port)| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(id);
            b.host = StrBytes::from_string(host);
            b.port = i32::from(port);
            b
        })
        .collect();
    r
}
