//! The console's writes, each a Kafka request through the console's client (so Kafka's
//! checks and error codes apply): create, delete and reconfigure a topic, reset a group's
//! committed offsets. Refused before this file unless `strom.console.write.enable`.

use super::{error, Answer, Console};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use strom_client::{AlterOp, NewTopic, OffsetSpec, ResourceType};

fn body_json(body: &[u8]) -> Result<Value, Answer> {
    serde_json::from_slice(body).map_err(|e| error(400, format!("a JSON body was expected: {e}")))
}

pub async fn create_topic(c: &Console, body: &[u8]) -> Answer {
    let v = match body_json(body) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(name) = v["name"].as_str().filter(|n| !n.is_empty()) else {
        return error(400, "a topic name is needed");
    };
    let configs = v["configs"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let t = NewTopic {
        name: name.to_string(),
        partitions: v["partitions"].as_i64().map_or(-1, |p| p as i32),
        replication_factor: v["replication_factor"].as_i64().map_or(-1, |r| r as i16),
        configs,
    };
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    match admin.create_topics(&[t]).await.map(|mut r| r.pop()) {
        Ok(Some(Ok(()))) => (200, json!({"created": name})),
        Ok(Some(Err(e))) | Err(e) => error(400, e),
        Ok(None) => error(502, "no answer for the topic"),
    }
}

pub async fn delete_topic(c: &Console, name: &str) -> Answer {
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    match admin
        .delete_topics(&[name.to_string()])
        .await
        .map(|mut r| r.pop())
    {
        Ok(Some(Ok(()))) => (200, json!({"deleted": name})),
        Ok(Some(Err(e))) | Err(e) => error(400, e),
        Ok(None) => error(502, "no answer for the topic"),
    }
}

/// Body `{"set": {key: value}, "delete": [key]}`.
pub async fn alter_topic(c: &Console, name: &str, body: &[u8]) -> Answer {
    let v = match body_json(body) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut ops = Vec::new();
    for (k, val) in v["set"].as_object().into_iter().flatten() {
        let val = val.as_str().map_or_else(|| val.to_string(), str::to_string);
        ops.push(AlterOp::Set(k.clone(), val));
    }
    for k in v["delete"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        ops.push(AlterOp::Delete(k.to_string()));
    }
    if ops.is_empty() {
        return error(400, "nothing to change: give set and/or delete");
    }
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    match admin.alter_configs(ResourceType::Topic, name, &ops).await {
        Ok(()) => (200, json!({"altered": name, "changes": ops.len()})),
        Err(e) => error(400, e),
    }
}

/// Body `{"topic": t, "to": "earliest" | "latest" | offset}`: the group's committed offsets
/// on every partition of `t` move there. Kafka refuses it while the group has members.
pub async fn reset_group(c: &Console, group: &str, body: &[u8]) -> Answer {
    let v = match body_json(body) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(topic) = v["topic"].as_str() else {
        return error(400, "a topic is needed");
    };
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    match admin.describe_group(group).await {
        Ok(d) if !d.members.is_empty() => {
            return error(
                409,
                format!("group {group} has active members: stop them first"),
            )
        }
        Ok(_) => {}
        Err(e) => return error(502, e),
    }
    let partitions = match c.broker.meta.image().topics.get(topic) {
        Some(t) => t
            .partitions
            .keys()
            .map(|p| (topic.to_string(), *p))
            .collect::<Vec<_>>(),
        None => return error(404, format!("no topic {topic}")),
    };
    let offsets: BTreeMap<(String, i32), i64> = match &v["to"] {
        Value::String(s) if s == "earliest" || s == "latest" => {
            let spec = if s == "earliest" {
                OffsetSpec::Earliest
            } else {
                OffsetSpec::Latest
            };
            match admin.list_offsets(&partitions, spec).await {
                Ok(m) => m.into_iter().map(|(tp, o)| (tp, o.unwrap_or(0))).collect(),
                Err(e) => return error(502, e),
            }
        }
        Value::Number(n) if n.as_i64().is_some_and(|o| o >= 0) => {
            let o = n.as_i64().unwrap_or(0);
            partitions.into_iter().map(|tp| (tp, o)).collect()
        }
        _ => return error(400, "to: earliest, latest or an offset"),
    };
    match admin.commit_offsets(group, &offsets).await {
        Ok(()) => (
            200,
            json!({"group": group, "topic": topic, "offsets": offsets.len()}),
        ),
        Err(e) => error(400, e),
    }
}
