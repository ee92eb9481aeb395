//! DescribeCluster: the cluster id, the controller and the brokers.

use crate::broker::Broker;
use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: DescribeClusterRequest) -> DescribeClusterResponse {
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
