//! CreateTopics: each topic is decided by the controller and committed on its own, so one
//! bad topic does not fail the others; `validate_only` decides without committing.

use crate::broker::Broker;
use crate::error;
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::controller::{self, NewTopic};
use strom_meta::topic_config::TOPIC_CONFIGS;

pub fn handle(broker: &Arc<Broker>, version: i16, req: CreateTopicsRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = CreateTopicsResponse::default();
        for t in req.topics {
            let name = t.name.0.as_str().to_string();
            let mut result = CreatableTopicResult::default();
            result.name = t.name.clone();
            result.num_partitions = -1;
            result.replication_factor = -1;
            let mut configs = Vec::new();
            let mut bad_config = None;
            for c in &t.configs {
                match &c.value {
                    Some(v) => configs.push((c.name.as_str().to_string(), v.as_str().to_string())),
                    None => {
                        bad_config = Some(format!("config {} has a null value", c.name.as_str()))
                    }
                }
            }
            let new_topic = NewTopic {
                name: name.clone(),
                partitions: if t.num_partitions == -1 {
                    broker.config.num_partitions
                } else {
                    t.num_partitions
                },
                replication_factor: if t.replication_factor == -1 {
                    broker.config.default_replication_factor
                } else {
                    i32::from(t.replication_factor)
                },
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect(),
                configs,
            };
            let outcome = if let Some(msg) = bad_config {
                Err((
                    error::api_error(&strom_meta::ApiError::InvalidConfig(msg.clone())),
                    msg,
                ))
            } else if req.validate_only {
                let id = uuid::Uuid::new_v4();
                controller::create_topic(&broker.meta.image(), &new_topic, id)
                    .map(|_| ())
                    .map_err(|e| (error::api_error(&e), e.to_string()))
            } else {
                broker.commit_topic(&new_topic).await.map(|_| ())
            };
            match outcome {
                Ok(()) => {
                    let image = broker.meta.image();
                    result.topic_id = image
                        .topics
                        .get(&name)
                        .map(|t| t.topic_id)
                        .unwrap_or_default();
                    result.num_partitions =
                        new_topic.partitions.max(new_topic.assignments.len() as i32);
                    result.replication_factor = new_topic.replication_factor as i16;
                    if version >= 5 {
                        let overrides: std::collections::BTreeMap<String, String> =
                            new_topic.configs.iter().cloned().collect();
                        result.configs = Some(
                            TOPIC_CONFIGS
                                .iter()
                                .filter_map(|d| {
                                    let (value, source) = broker.config.topic_value(
                                        d.name,
                                        Some(&overrides),
                                        &crate::config::Dynamic::of(&image, broker.node_id),
                                    )?;
                                    let mut c = CreatableTopicConfigs::default();
                                    c.name = StrBytes::from_static_str(d.name);
                                    c.value = Some(StrBytes::from_string(value));
                                    c.config_source = source as i8;
                                    Some(c)
                                })
                                .collect(),
                        );
                    }
                }
                Err((c, message)) => {
                    result.error_code = c;
                    result.error_message = Some(StrBytes::from_string(message));
                }
            }
            response.topics.push(result);
        }
        Reply::Message(ResponseKind::CreateTopics(response))
    })
}
