//! DescribeConfigs for topics (every topic config, with its value, source and synonyms) and
//! for this broker (the keys Strom implements, as given or defaulted).

use crate::broker::Broker;
use crate::config::{ConfigSource, Dynamic, STROM_KEYS};
use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::topic_config::{Kind, TOPIC_CONFIGS};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// DescribeConfigs v3+ config types.
fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::Str | Kind::Choice(_) => 2,
        Kind::Int { .. } => 3,
        Kind::Long { .. } => 5,
        Kind::Double { .. } => 6,
        Kind::List(_) => 7,
    }
}

fn entry(
    name: &str,
    value: String,
    source: ConfigSource,
    kind: Kind,
    doc: Option<&str>,
) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = StrBytes::from_string(name.to_string());
    c.value = Some(StrBytes::from_string(value));
    c.config_source = source as i8;
    c.config_type = config_type(kind);
    c.documentation = doc.map(|d| StrBytes::from_string(d.to_string()));
    c
}

fn synonym(name: &str, value: String, source: ConfigSource) -> DescribeConfigsSynonym {
    let mut s = DescribeConfigsSynonym::default();
    s.name = StrBytes::from_string(name.to_string());
    s.value = Some(StrBytes::from_string(value));
    s.source = source as i8;
    s
}

pub fn handle(broker: &Arc<Broker>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    let image = broker.meta.image();
    let dynamic = Dynamic::of(&image, broker.node_id);
    for r in req.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = r.resource_type;
        result.resource_name = r.resource_name.clone();
        let name = r.resource_name.as_str();
        // Null (or, leniently, an empty list) asks for every key.
        let wanted = |k: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| x.as_str() == k))
        };
        match r.resource_type {
            RESOURCE_TOPIC => {
                if !image.topics.contains_key(name) || broker.is_hidden_topic(name) {
                    result.error_code = code(ResponseError::UnknownTopicOrPartition);
                    result.error_message =
                        Some(StrBytes::from_string(format!("unknown topic {name}")));
                } else {
                    let overrides = image.topic_config(name);
                    for def in TOPIC_CONFIGS.iter().filter(|d| wanted(d.name)) {
                        let Some((value, source)) =
                            broker.config.topic_value(def.name, overrides, &dynamic)
                        else {
                            continue;
                        };
                        let mut c = entry(
                            def.name,
                            value.clone(),
                            source,
                            def.kind,
                            req.include_documentation.then_some(def.doc),
                        );
                        if req.include_synonyms {
                            if let Some(v) = overrides.and_then(|o| o.get(def.name)) {
                                c.synonyms
                                    .push(synonym(def.name, v.clone(), ConfigSource::Topic));
                            }
                            if let Some((v, source)) = def.broker_key.and_then(|k| dynamic.get(k)) {
                                c.synonyms.push(synonym(
                                    def.broker_key.unwrap_or_default(),
                                    v,
                                    source,
                                ));
                            }
                            if let (Some(key), Some(v)) =
                                (def.broker_key, broker.config.topic_defaults.get(def.name))
                            {
                                if broker.config.given.contains_key(key) {
                                    c.synonyms.push(synonym(
                                        key,
                                        v.clone(),
                                        ConfigSource::StaticBroker,
                                    ));
                                }
                            }
                            if let Some(key) = def.broker_key {
                                c.synonyms.push(synonym(
                                    key,
                                    def.default.to_string(),
                                    ConfigSource::Default,
                                ));
                            }
                        }
                        result.configs.push(c);
                    }
                }
            }
            RESOURCE_BROKER => {
                if !name.is_empty() && name != broker.node_id.to_string() {
                    result.error_code = code(ResponseError::InvalidRequest);
                    result.error_message = Some(StrBytes::from_string(format!(
                        "this is broker {}, not {name}",
                        broker.node_id
                    )));
                } else {
                    let given = &broker.config.given;
                    let mut keys: Vec<(&str, Kind, String)> = STROM_KEYS
                        .iter()
                        .map(|(k, kind, d)| (*k, *kind, d.to_string()))
                        .collect();
                    keys.extend(
                        TOPIC_CONFIGS.iter().filter_map(|d| {
                            d.broker_key.map(|k| (k, d.kind, d.default.to_string()))
                        }),
                    );
                    // Dynamic keys Strom has no use for, kept as set.
                    let extra: Vec<String> = [dynamic.broker, dynamic.default]
                        .into_iter()
                        .flatten()
                        .flat_map(|m| m.keys().cloned())
                        .collect();
                    keys.extend(extra.iter().map(|k| (k.as_str(), Kind::Str, String::new())));
                    keys.sort_by(|a, b| a.0.cmp(b.0));
                    keys.dedup_by(|a, b| a.0 == b.0);
                    // Describing the cluster-wide default (name "") shows only what is set.
                    let default_only = name.is_empty();
                    for (key, kind, default) in keys.into_iter().filter(|(k, _, _)| wanted(k)) {
                        let set_here = if default_only {
                            dynamic
                                .default
                                .and_then(|m| m.get(key))
                                .map(|v| (v.clone(), ConfigSource::DynamicDefaultBroker))
                        } else {
                            dynamic.get(key)
                        };
                        let (value, source) = match (set_here, given.get(key)) {
                            (Some(found), _) => found,
                            (None, _) if default_only => continue,
                            (None, Some(v)) => (v.clone(), ConfigSource::StaticBroker),
                            (None, None) => (default, ConfigSource::Default),
                        };
                        let mut c = entry(key, value, source, kind, None);
                        c.read_only = crate::config::check_dynamic(key, None).is_err();
                        result.configs.push(c);
                    }
                }
            }
            other => {
                result.error_code = code(ResponseError::InvalidRequest);
                result.error_message = Some(StrBytes::from_string(format!(
                    "resource type {other} is not supported"
                )));
            }
        }
        response.results.push(result);
    }
    response
}
