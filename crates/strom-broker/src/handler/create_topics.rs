//! CreateTopics: each topic is decided by the controller and committed on its own, so one
//! bad topic does not fail the others; `validate_only` decides without committing. A name
//! given twice in one request is refused once, as Kafka does.

use crate::broker::Broker;
use crate::error::{self, Code};
use crate::handler::{Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_meta::controller::{self, NewTopic};
use strom_meta::topic_config::TOPIC_CONFIGS;

pub fn handle(broker: &Arc<Broker>, version: i16, req: CreateTopicsRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = CreateTopicsResponse::default();
        let mut seen = BTreeMap::new();
        for t in &req.topics {
            *seen.entry(t.name.0.as_str().to_string()).or_insert(0) += 1;
        }
        let mut answered = std::collections::BTreeSet::new();
        for t in req.topics {
            let name = t.name.0.as_str().to_string();
            if !answered.insert(name.clone()) {
                continue;
            }
            let mut result = CreatableTopicResult::default();
            result.name = t.name.clone();
            result.num_partitions = -1;
            result.replication_factor = -1;
            result.error_message = None;
            let outcome = if seen[&name] > 1 {
                Err((
                    error::code(ResponseError::InvalidRequest),
                    "Duplicate topic name.".to_string(),
                ))
            } else {
                create(&broker, &t, req.validate_only).await
            };
            match outcome {
                Ok((id, new_topic)) => {
                    result.topic_id = id;
                    result.num_partitions =
                        new_topic.partitions.max(new_topic.assignments.len() as i32);
                    result.replication_factor = new_topic.replication_factor as i16;
                    if version >= 5 {
                        result.configs = Some(described_configs(&broker, &new_topic));
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

/// The topic as asked, with the broker's defaults filled in.
fn new_topic(broker: &Broker, t: &CreatableTopic) -> Result<NewTopic, (Code, String)> {
    let mut configs = Vec::new();
    for c in &t.configs {
        match &c.value {
            Some(v) => configs.push((c.name.as_str().to_string(), v.as_str().to_string())),
            None => {
                let e = strom_meta::ApiError::InvalidConfig(format!(
                    "Null value not supported for topic configs: {}",
                    c.name.as_str()
                ));
                return Err((error::api_error(&e), e.to_string()));
            }
        }
    }
    Ok(NewTopic {
        name: t.name.0.as_str().to_string(),
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
    })
}

/// Creates (or with `validate_only`, only checks) one topic: its id and what was created.
async fn create(
    broker: &Arc<Broker>,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<(uuid::Uuid, NewTopic), (Code, String)> {
    let new_topic = new_topic(broker, t)?;
    if validate_only {
        let id = crate::meta_properties::random_uuid();
        controller::create_topic(&broker.meta.image(), &new_topic, id)
            .map_err(|e| (error::api_error(&e), e.to_string()))?;
        return Ok((id, new_topic));
    }
    let image = broker.commit_topic(&new_topic).await?;
    let id = image
        .topics
        .get(&new_topic.name)
        .map(|t| t.topic_id)
        .unwrap_or_default();
    Ok((id, new_topic))
}

/// Every config of the new topic with its value and source (CreateTopics v5+).
fn described_configs(broker: &Broker, t: &NewTopic) -> Vec<CreatableTopicConfigs> {
    let image = broker.meta.image();
    let dynamic = crate::config::Dynamic::of(&image, broker.node_id);
    let overrides: BTreeMap<String, String> = t.configs.iter().cloned().collect();
    TOPIC_CONFIGS
        .iter()
        .filter_map(|d| {
            let (value, source) = broker
                .config
                .topic_value(d.name, Some(&overrides), &dynamic)?;
            let mut c = CreatableTopicConfigs::default();
            c.name = StrBytes::from_static_str(d.name);
            c.value = Some(StrBytes::from_string(value));
            c.config_source = source as i8;
            Some(c)
        })
        .collect()
}
