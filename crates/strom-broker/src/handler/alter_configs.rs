//! AlterConfigs (replaces a resource's whole dynamic config set) and IncrementalAlterConfigs
//! (SET, DELETE, APPEND, SUBTRACT per key), for topics and for brokers: this broker (its node
//! id) or every broker (the empty name, Kafka's `--entity-default`). Which broker keys may
//! change at run time: `config::check_dynamic`.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::handler::{Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{alter_configs_response, incremental_alter_configs_response};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::controller::{self, ConfigOp};
use strom_meta::{ApiError, MetadataImage, MetadataRecord};

type Decision = Box<dyn Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError> + Send + Sync>;

/// Runs (or with `validate_only`, only checks) one resource's change.
async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    decide: Decision,
) -> (i16, Option<String>) {
    match resource_type {
        RESOURCE_TOPIC
            if !broker.is_hidden_topic(name) && broker.meta.image().topics.contains_key(name) => {}
        RESOURCE_TOPIC => {
            return (
                code(ResponseError::UnknownTopicOrPartition),
                Some(format!("The topic '{name}' does not exist.")),
            )
        }
        RESOURCE_BROKER if name.is_empty() || name == broker.node_id.to_string() => {}
        RESOURCE_BROKER => {
            return (
                code(ResponseError::InvalidRequest),
                Some(format!(
                    "Unexpected broker id, expected {}, but received {name}",
                    broker.node_id
                )),
            )
        }
        other => {
            return (
                code(ResponseError::InvalidRequest),
                Some(format!("resource type {other} is not supported")),
            )
        }
    }
    if validate_only {
        return match decide(&broker.meta.image()) {
            Ok(_) => (0, None),
            Err(e) => (crate::error::api_error(&e), Some(e.to_string())),
        };
    }
    match broker.commit(decide).await {
        Ok(_) => (0, None),
        Err((c, m)) => (c, Some(m)),
    }
}

pub fn handle_alter(broker: &Arc<Broker>, req: AlterConfigsRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = AlterConfigsResponse::default();
        for r in req.resources {
            let name = r.resource_name.as_str().to_string();
            let configs: Vec<(String, String)> = r
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.as_str().to_string(), v.as_str().to_string()))
                })
                .collect();
            let resource = name.clone();
            let decide: Decision = if r.resource_type == RESOURCE_BROKER {
                Box::new(move |img| {
                    controller::replace_broker_configs(
                        img,
                        &resource,
                        &configs,
                        &crate::config::check_dynamic,
                    )
                })
            } else {
                Box::new(move |img| controller::replace_topic_configs(img, &resource, &configs))
            };
            let (error_code, message) =
                apply(&broker, r.resource_type, &name, req.validate_only, decide).await;
            let mut out = alter_configs_response::AlterConfigsResourceResponse::default();
            out.error_code = error_code;
            out.error_message = message.map(StrBytes::from_string);
            out.resource_type = r.resource_type;
            out.resource_name = r.resource_name;
            response.responses.push(out);
        }
        Reply::Message(ResponseKind::AlterConfigs(response))
    })
}

pub fn handle_incremental(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = IncrementalAlterConfigsResponse::default();
        for r in req.resources {
            let name = r.resource_name.as_str().to_string();
            let mut ops = Vec::new();
            let mut bad = None;
            for c in &r.configs {
                let value = c
                    .value
                    .as_ref()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                let op = match c.config_operation {
                    0 => ConfigOp::Set(value),
                    1 => ConfigOp::Delete,
                    2 => ConfigOp::Append(value),
                    3 => ConfigOp::Subtract(value),
                    other => {
                        bad = Some(format!("unknown config operation {other}"));
                        continue;
                    }
                };
                ops.push((c.name.as_str().to_string(), op));
            }
            let mut names: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            let duplicate = names.windows(2).any(|w| w[0] == w[1]);
            let (error_code, message) = if let Some(m) = bad {
                (code(ResponseError::InvalidRequest), Some(m))
            } else if duplicate {
                (
                    code(ResponseError::InvalidRequest),
                    Some("Error due to duplicate config keys".to_string()),
                )
            } else {
                let resource = name.clone();
                let decide: Decision = if r.resource_type == RESOURCE_BROKER {
                    Box::new(move |img| {
                        controller::alter_broker_configs(
                            img,
                            &resource,
                            &ops,
                            &crate::config::check_dynamic,
                        )
                    })
                } else {
                    Box::new(move |img| controller::alter_topic_configs(img, &resource, &ops))
                };
                apply(&broker, r.resource_type, &name, req.validate_only, decide).await
            };
            let mut out =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default();
            out.error_code = error_code;
            out.error_message = message.map(StrBytes::from_string);
            out.resource_type = r.resource_type;
            out.resource_name = r.resource_name;
            response.responses.push(out);
        }
        Reply::Message(ResponseKind::IncrementalAlterConfigs(response))
    })
}
