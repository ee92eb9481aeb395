//! DescribeConfigs for topics (every topic config, with its value, source and synonyms) and
//! for this broker (the keys Strom implements, as given or defaulted). Synonyms follow
//! Kafka: a topic config lists its override and its primary broker key at each level that
//! sets it; a broker key lists every key of its group at each level. A level's value is
//! listed only where it exists (Kafka's `log.retention.ms` has no default, so neither has
//! `retention.ms` a default synonym).

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
use strom_meta::MetadataImage;

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
        Kind::List(_) | Kind::AnyList => 7,
    }
}

fn entry(
    name: &str,
    value: Option<String>,
    source: ConfigSource,
    kind: Kind,
    doc: Option<&str>,
) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = StrBytes::from_string(name.to_string());
    c.value = value.map(StrBytes::from_string);
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

/// Broker keys whose Kafka default is null (the value comes from another key).
const NO_DEFAULT: &[&str] = &[
    "log.retention.ms",
    "log.retention.minutes",
    "log.roll.ms",
    "log.roll.jitter.ms",
    "log.flush.interval.ms",
];

/// A broker key's kind and Kafka default (None: null).
fn broker_key_default(key: &str) -> Option<(Kind, Option<String>)> {
    let known = STROM_KEYS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, kind, d)| (*kind, d.to_string()))
        .or_else(|| {
            TOPIC_CONFIGS
                .iter()
                .find(|d| d.broker_key == Some(key))
                .map(|d| (d.kind, d.default.to_string()))
        })?;
    let default = (!NO_DEFAULT.contains(&key) && !known.1.is_empty()).then_some(known.1);
    Some((known.0, default))
}

/// One broker key at every level that sets it: this broker's dynamic value, the cluster's,
/// the static one, the default.
fn levels(broker: &Broker, dynamic: &Dynamic, key: &str) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    let layers = [
        (dynamic.broker, ConfigSource::DynamicBroker),
        (dynamic.default, ConfigSource::DynamicDefaultBroker),
    ];
    for (map, source) in layers {
        if let Some(v) = map.and_then(|m| m.get(key)) {
            out.push(synonym(key, v.clone(), source));
        }
    }
    if let Some(v) = broker.config.given.get(key) {
        out.push(synonym(key, v.clone(), ConfigSource::StaticBroker));
    }
    if let Some((_, Some(d))) = broker_key_default(key) {
        out.push(synonym(key, d, ConfigSource::Default));
    }
    out
}

pub fn handle(broker: &Arc<Broker>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    let image = broker.meta.image();
    let dynamic = Dynamic::of(&image, broker.node_id);
    for r in req.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = r.resource_type;
        result.resource_name = r.resource_name.clone();
        // Null (or, leniently, an empty list) asks for every key.
        let keys = r.configuration_keys.clone();
        let wanted = move |k: &str| {
            keys.as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| x.as_str() == k))
        };
        let ask = Ask {
            name: r.resource_name.as_str(),
            wanted: &wanted,
            synonyms: req.include_synonyms,
            documentation: req.include_documentation,
        };
        let outcome = match r.resource_type {
            RESOURCE_TOPIC => topic(broker, &image, &dynamic, &ask),
            RESOURCE_BROKER => broker_configs(broker, &dynamic, &ask),
            other => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} is not supported"),
            )),
        };
        match outcome {
            Ok(configs) => result.configs = configs,
            Err((e, message)) => {
                result.error_code = code(e);
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        response.results.push(result);
    }
    response
}

/// What one resource of a DescribeConfigs asks for.
struct Ask<'a> {
    name: &'a str,
    wanted: &'a dyn Fn(&str) -> bool,
    synonyms: bool,
    documentation: bool,
}

type Described = Result<Vec<DescribeConfigsResourceResult>, (ResponseError, String)>;

fn topic(broker: &Broker, image: &MetadataImage, dynamic: &Dynamic, ask: &Ask) -> Described {
    let name = ask.name;
    if let Err(e) = strom_meta::controller::validate_topic_name(name) {
        return Err((ResponseError::InvalidTopicException, e.to_string()));
    }
    if !image.topics.contains_key(name) || broker.is_hidden_topic(name) {
        // Kafka's answer carries an empty message.
        return Err((ResponseError::UnknownTopicOrPartition, String::new()));
    }
    let overrides = image.topic_config(name);
    let mut out = Vec::new();
    for def in TOPIC_CONFIGS.iter().filter(|d| (ask.wanted)(d.name)) {
        let Some((value, source)) = broker.config.topic_value(def.name, overrides, dynamic) else {
            continue;
        };
        let doc = ask.documentation.then_some(def.doc);
        let mut c = entry(def.name, Some(value), source, def.kind, doc);
        if ask.synonyms {
            if let Some(v) = overrides.and_then(|o| o.get(def.name)) {
                c.synonyms
                    .push(synonym(def.name, v.clone(), ConfigSource::Topic));
            }
            if let Some(key) = def.broker_key {
                c.synonyms.extend(levels(broker, dynamic, key));
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// Described as the address it bound (port 0 picks one; empty when off), so that tools can
/// find a broker's metrics and console.
const HTTP_LISTENER: &str = "strom.http.listener";

fn broker_configs(broker: &Broker, dynamic: &Dynamic, ask: &Ask) -> Described {
    let name = ask.name;
    if !name.is_empty() && name.parse::<i32>().is_err() {
        return Err((
            ResponseError::InvalidRequest,
            format!("Broker id must be an integer, but it is: {name}"),
        ));
    }
    if !name.is_empty() && name != broker.node_id.to_string() {
        return Err((
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id
            ),
        ));
    }
    let keys = broker_keys(dynamic);
    // Describing the cluster-wide default (name "") shows only what is set there.
    let default_only = name.is_empty();
    let mut out = Vec::new();
    for key in keys.iter().map(String::as_str).filter(|k| (ask.wanted)(k)) {
        let (kind, default) = broker_key_default(key).unwrap_or((Kind::Str, None));
        let set_here = if default_only {
            dynamic
                .default
                .and_then(|m| m.get(key))
                .map(|v| (v.clone(), ConfigSource::DynamicDefaultBroker))
        } else {
            dynamic.get(key)
        };
        let (value, source) = match (set_here, broker.config.given.get(key)) {
            (Some((v, s)), _) => (Some(v), s),
            (None, _) if default_only => continue,
            (None, Some(v)) => (Some(v.clone()), ConfigSource::StaticBroker),
            (None, None) => (default, ConfigSource::Default),
        };
        let value = match key {
            HTTP_LISTENER if !default_only => Some(broker.http_url().unwrap_or_default()),
            _ => value,
        };
        // A key neither Kafka nor Strom defines (a plugin's): Kafka cannot tell whether it is
        // a secret, so it hides the value as sensitive.
        let unknown = !crate::config::is_known_key(key);
        let value = if unknown { None } else { value };
        let has_value = value.is_some() || unknown;
        let mut c = entry(key, value, source, kind, None);
        c.is_sensitive = unknown;
        c.read_only = crate::config::check_dynamic(key, None).is_err();
        // Kafka lists no synonyms for a key without a value; the cluster-wide default lists
        // its own level only.
        if ask.synonyms && default_only {
            let v = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            c.synonyms
                .push(synonym(key, v, ConfigSource::DynamicDefaultBroker));
        } else if ask.synonyms && has_value {
            for k in crate::config::broker_synonyms(key) {
                c.synonyms.extend(levels(broker, dynamic, k));
            }
        }
        if unknown {
            for s in &mut c.synonyms {
                s.value = None;
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// The broker keys a DescribeConfigs lists: Strom's own, the topic defaults' broker keys, and
/// dynamic keys set that Strom has no use for (kept as set), sorted.
fn broker_keys(dynamic: &Dynamic) -> Vec<String> {
    let mut keys: Vec<String> = STROM_KEYS.iter().map(|(k, _, _)| k.to_string()).collect();
    keys.extend(
        TOPIC_CONFIGS
            .iter()
            .filter_map(|d| d.broker_key.map(str::to_string)),
    );
    keys.extend(
        [dynamic.broker, dynamic.default]
            .into_iter()
            .flatten()
            .flat_map(|m| m.keys().cloned()),
    );
    keys.sort_unstable();
    keys.dedup();
    keys
}
