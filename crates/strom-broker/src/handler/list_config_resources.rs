//! ListConfigResources (KIP-1142; v0 was ListClientMetricsResources): the resources that
//! DescribeConfigs can be asked about, by type. Strom has no client-metrics resources.

use crate::broker::Broker;
use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

pub fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let mut r = ListConfigResourcesResponse::default();
    let supported: &[i8] = if version == 0 {
        &[CLIENT_METRICS]
    } else {
        &[CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC, GROUP]
    };
    let wanted: Vec<i8> = if req.resource_types.is_empty() {
        supported.to_vec()
    } else {
        req.resource_types.clone()
    };
    if wanted.iter().any(|t| !supported.contains(t)) {
        r.error_code = code(ResponseError::UnsupportedVersion);
        return r;
    }
    let image = broker.meta.image();
    let mut add = |kind: i8, name: String| {
        let mut c = ConfigResource::default();
        c.resource_name = StrBytes::from_string(name);
        c.resource_type = kind;
        r.config_resources.push(c);
    };
    for kind in supported.iter().filter(|k| wanted.contains(k)) {
        match *kind {
            BROKER | BROKER_LOGGER => {
                for id in image.brokers.keys() {
                    add(*kind, id.to_string());
                }
            }
            TOPIC => {
                for name in image.topics.keys() {
                    add(TOPIC, name.clone());
                }
            }
            GROUP => {
                for (id, ..) in broker.groups.list() {
                    add(GROUP, id);
                }
            }
            _ => {}
        }
    }
    r
}
