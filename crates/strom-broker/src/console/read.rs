//! The console's read API: the cluster, topics, a topic's partitions, configs and newest
//! records, groups with their lag, the charts' series, the slowest requests.

use super::{error, Answer, Console};
use crate::metrics::Phase;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec, ResourceType};

/// Records a tail answers with at most.
const TAIL_MAX: usize = 500;
/// Bytes of a key or value shown, at most.
const SHOWN_BYTES_MAX: usize = 4096;

pub fn overview(c: &Console) -> Answer {
    let b = &c.broker;
    let image = b.meta.image();
    let quorum = b.meta.quorum().map(|q| q.raft().metrics().borrow().clone());
    let partitions = image.topics.values().flat_map(|t| t.partitions.values());
    let (mut count, mut under, mut offline) = (0usize, 0usize, 0usize);
    for p in partitions {
        count += 1;
        under += usize::from(p.isr.len() < p.replicas.len());
        offline += usize::from(p.leader < 0);
    }
    let brokers: Vec<Value> = image
        .brokers
        .values()
        .map(|r| {
            let http = (r.node_id == b.node_id).then(|| b.http_url()).flatten();
            json!({"id": r.node_id, "host": r.host, "port": r.port, "rack": r.rack,
                   "fenced": r.fenced, "http": http})
        })
        .collect();
    (
        200,
        json!({
            "cluster_id": b.cluster_id(),
            "node_id": b.node_id,
            "controller": quorum.as_ref().and_then(|m| m.current_leader),
            "quorum": quorum.as_ref().map(|m| json!({
                "state": format!("{:?}", m.state),
                "term": m.current_term,
                "leader": m.current_leader,
                "log_end_index": m.last_log_index,
                "applied_index": m.last_applied.map(|l| l.index),
                "voters": m.membership_config.membership().voter_ids().collect::<Vec<_>>(),
            })),
            "brokers": brokers,
            "topics": image.topics.len(),
            "partitions": count,
            "under_replicated": under,
            "offline": offline,
            "write_enabled": b.config.console_write_enable,
        }),
    )
}

pub fn topics(c: &Console) -> Answer {
    let b = &c.broker;
    let image = b.meta.image();
    let local: BTreeMap<String, u64> = b
        .replicas
        .by_topic()
        .into_iter()
        .map(|(t, parts)| (t.to_string(), parts.iter().map(|p| p.size_bytes()).sum()))
        .collect();
    let rows: Vec<Value> = image
        .topics
        .values()
        .map(|t| {
            let under = t
                .partitions
                .values()
                .filter(|p| p.isr.len() < p.replicas.len())
                .count();
            let rf = t.partitions.values().map(|p| p.replicas.len()).max();
            json!({"name": t.name, "id": t.topic_id.to_string(), "partitions": t.partitions.len(),
                   "replication_factor": rf, "under_replicated": under,
                   "internal": b.is_hidden_topic(&t.name) || t.name.starts_with("__"),
                   "size_bytes": local.get(&t.name), "records_per_s": c.history.topic_rate(&t.name)})
        })
        .collect();
    (200, json!(rows))
}

pub async fn topic(c: &Console, name: &str) -> Answer {
    let image = c.broker.meta.image();
    let Some(t) = image.topics.get(name).cloned() else {
        return error(404, format!("no topic {name}"));
    };
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let tps: Vec<(String, i32)> = t
        .partitions
        .keys()
        .map(|p| (name.to_string(), *p))
        .collect();
    let earliest = admin.try_list_offsets(&tps, OffsetSpec::Earliest).await;
    let latest = admin.try_list_offsets(&tps, OffsetSpec::Latest).await;
    let partitions: Vec<Value> = t
        .partitions
        .iter()
        .map(|(i, p)| {
            let key = (name.to_string(), *i);
            let size = c.broker.replicas.get(name, *i).map(|p| p.size_bytes());
            json!({"partition": i, "leader": p.leader, "leader_epoch": p.leader_epoch,
                   "replicas": p.replicas, "isr": p.isr,
                   "start_offset": earliest.get(&key).copied().flatten(),
                   "end_offset": latest.get(&key).copied().flatten(), "size_bytes": size})
        })
        .collect();
    let configs = match admin.describe_configs(ResourceType::Topic, name).await {
        Ok(entries) => entries
            .into_iter()
            .map(|e| json!({"name": e.name, "value": e.value, "source": e.source}))
            .collect(),
        Err(e) => vec![json!({"error": e.to_string()})],
    };
    (
        200,
        json!({"name": name, "id": t.topic_id.to_string(), "partitions": partitions,
               "configs": configs, "records_per_s": c.history.topic_rate(name)}),
    )
}

/// The newest records of a topic (or one `partition`): with `positions` (`p:offset,...`,
/// where the last answer left off) those after them, else the last `limit`; never more than
/// the newest `limit` of the topic (each partition its share).
pub async fn records(
    c: &Console,
    name: &str,
    q: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Answer {
    let image = c.broker.meta.image();
    let Some(t) = image.topics.get(name).cloned() else {
        return error(404, format!("no topic {name}"));
    };
    let limit = q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, TAIL_MAX);
    let only: Option<i32> = q("partition").and_then(|p| p.parse().ok());
    let tps: Vec<(String, i32)> = t
        .partitions
        .keys()
        .filter(|p| only.is_none_or(|o| o == **p))
        .map(|p| (name.to_string(), *p))
        .collect();
    let given: BTreeMap<i32, i64> = q("positions")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once(':'))
        .filter_map(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)))
        .collect();
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let earliest = admin.try_list_offsets(&tps, OffsetSpec::Earliest).await;
    let latest = admin.try_list_offsets(&tps, OffsetSpec::Latest).await;
    let mut wanted = Vec::new();
    // Never more than the newest `limit` of the topic (shared by its partitions): a tail
    // that fell behind a busy topic skips ahead rather than read everything since.
    let each = (limit / tps.len().max(1)).max(1) as i64;
    for tp in &tps {
        let (Some(Some(start)), Some(Some(end))) = (earliest.get(tp), latest.get(tp)) else {
            continue;
        };
        // Two ListOffsets answers: a leader change between them may disagree.
        if start > end {
            continue;
        }
        let newest = (*end - each).max(*start);
        let from = given
            .get(&tp.1)
            .map_or(newest, |o| (*o).max(newest).min(*end));
        wanted.push((tp.clone(), from, *end));
    }
    let got = read_ranges(admin.client().clone(), &wanted).await;
    let mut rows: Vec<&ConsumerRecord> = got.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse((r.timestamp_ms, r.offset)));
    rows.truncate(limit);
    let positions: BTreeMap<String, i64> = wanted
        .iter()
        .map(|((_, p), _, end)| (p.to_string(), *end))
        .collect();
    let rows: Vec<Value> = rows.into_iter().map(record_json).collect();
    (200, json!({"records": rows, "positions": positions}))
}

/// Reads each `(partition, from, to)` range, for at most two seconds.
async fn read_ranges(
    client: strom_client::Client,
    wanted: &[((String, i32), i64, i64)],
) -> Vec<ConsumerRecord> {
    let todo: Vec<_> = wanted.iter().filter(|(_, from, to)| from < to).collect();
    if todo.is_empty() {
        return Vec::new();
    }
    let config = ConsumerConfig {
        fetch_max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    consumer.assign(&todo.iter().map(|(tp, ..)| tp.clone()).collect::<Vec<_>>());
    for ((t, p), from, _) in &todo {
        consumer.seek(t, *p, *from);
    }
    let ends: BTreeMap<(String, i32), i64> =
        todo.iter().map(|(tp, _, to)| (tp.clone(), *to)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    while tokio::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(batch) => out.extend(batch.into_iter().filter(|r| {
                ends.get(&(r.topic.clone(), r.partition))
                    .is_some_and(|e| r.offset < *e)
            })),
            Err(_) => break,
        }
        let positions = consumer.positions();
        if ends
            .iter()
            .all(|(tp, end)| positions.get(tp).is_some_and(|p| p >= end))
        {
            break;
        }
    }
    out
}

fn shown(bytes: Option<&[u8]>) -> Value {
    let Some(b) = bytes else {
        return Value::Null;
    };
    let cut = &b[..b.len().min(SHOWN_BYTES_MAX)];
    let truncated = b.len() > SHOWN_BYTES_MAX;
    match std::str::from_utf8(cut) {
        Ok(s) => json!({"text": s, "truncated": truncated, "bytes": b.len()}),
        Err(_) => {
            let hex: String = cut.iter().map(|x| format!("{x:02x}")).collect();
            json!({"hex": hex, "truncated": truncated, "bytes": b.len()})
        }
    }
}

fn record_json(r: &ConsumerRecord) -> Value {
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|(k, v)| json!({"key": k, "value": shown(v.as_deref())}))
        .collect();
    json!({"partition": r.partition, "offset": r.offset, "timestamp": r.timestamp_ms,
           "timestamp_type": r.timestamp_type, "key": shown(r.key.as_deref()),
           "value": shown(r.value.as_deref()), "headers": headers})
}

/// A group's lag on one partition: committed, end (None: unknown now), and lag in seconds
/// where this broker coordinates the group.
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: i64,
    end: Option<i64>,
    seconds: Option<f64>,
}

impl PartitionLag {
    fn lag(&self) -> Option<i64> {
        self.end.map(|e| (e - self.committed).max(0))
    }
}

struct GroupLag {
    rows: Vec<PartitionLag>,
}

async fn group_lag(
    c: &Console,
    admin: &strom_client::Admin,
    group: &str,
) -> Result<GroupLag, Answer> {
    let committed = admin
        .committed_offsets(group)
        .await
        .map_err(|e| error(502, e))?;
    let tps: Vec<(String, i32)> = committed.keys().cloned().collect();
    let latest = admin.try_list_offsets(&tps, OffsetSpec::Latest).await;
    // Two batch-header reads a partition: off the async workers.
    let broker = std::sync::Arc::clone(&c.broker);
    let g = group.to_string();
    let seconds: BTreeMap<(String, i32), Option<f64>> = tokio::task::spawn_blocking(move || {
        let which = crate::metrics::groups::Which {
            group: Some(&g),
            seconds: true,
        };
        crate::metrics::groups::lags(&broker, which)
            .into_iter()
            .map(|l| ((l.topic, l.partition), l.seconds))
            .collect()
    })
    .await
    .unwrap_or_default();
    let rows = committed
        .into_iter()
        .map(|(tp, committed)| PartitionLag {
            end: latest.get(&tp).copied().flatten(),
            seconds: seconds.get(&tp).copied().flatten(),
            topic: tp.0,
            partition: tp.1,
            committed,
        })
        .collect();
    Ok(GroupLag { rows })
}

pub async fn groups(c: &Console) -> Answer {
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let listed = match admin.list_groups().await {
        Ok(l) => l,
        Err(e) => return error(502, e),
    };
    let mut rows = Vec::new();
    for g in listed {
        let members = admin
            .describe_group(&g.group_id)
            .await
            .map(|d| d.members.len())
            .ok();
        let lag = group_lag(c, &admin, &g.group_id).await.ok();
        let total: Option<i64> = lag
            .as_ref()
            .map(|l| l.rows.iter().filter_map(PartitionLag::lag).sum());
        let seconds = lag
            .as_ref()
            .and_then(|l| l.rows.iter().filter_map(|r| r.seconds).reduce(f64::max));
        rows.push(
            json!({"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type,
                         "members": members, "lag": total, "lag_seconds": seconds}),
        );
    }
    (200, json!(rows))
}

pub async fn group(c: &Console, group: &str) -> Answer {
    let admin = match c.admin().await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let desc = match admin.describe_group(group).await {
        Ok(d) => d,
        Err(e) => return error(502, e),
    };
    let lag = match group_lag(c, &admin, group).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    let owner = |t: &str, p: i32| {
        desc.members
            .iter()
            .find(|m| m.assignment.iter().any(|(mt, mp)| mt == t && *mp == p))
            .map(|m| m.member_id.clone())
    };
    let partitions: Vec<Value> = lag
        .rows
        .iter()
        .map(|r| {
            json!({"topic": r.topic, "partition": r.partition, "committed": r.committed,
                   "end_offset": r.end, "lag": r.lag(), "lag_seconds": r.seconds,
                   "member": owner(&r.topic, r.partition)})
        })
        .collect();
    let members: Vec<Value> = desc
        .members
        .iter()
        .map(|m| json!({"member_id": m.member_id, "instance_id": m.group_instance_id,
                        "client_id": m.client_id, "host": m.host,
                        "assignment": m.assignment.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>()}))
        .collect();
    let total: i64 = lag.rows.iter().filter_map(PartitionLag::lag).sum();
    let now = (crate::metadata_store::now_ms(), total);
    (
        200,
        json!({"group": group, "state": desc.state, "protocol_type": desc.protocol_type,
               "protocol": desc.protocol, "members": members, "partitions": partitions,
               "history": super::history::group_series(&c.history, group, now),
               "write_enabled": c.broker.config.console_write_enable}),
    )
}

pub fn metrics(c: &Console) -> Answer {
    let points = c.history.points_with(super::history::point(&c.broker));
    (200, super::history::series(&points))
}

pub fn slowest(c: &Console) -> Answer {
    let rows: Vec<Value> = c
        .broker
        .metrics
        .slowest
        .list()
        .iter()
        .map(|r| {
            let api = crate::metrics::scrape::api_name(r.api);
            let phases: BTreeMap<&str, f64> = Phase::ALL
                .iter()
                .zip(r.phases)
                .map(|(p, d)| (p.label(), d.as_secs_f64() * 1000.0))
                .collect();
            json!({"api": api, "at": r.at_ms, "total_ms": r.total.as_secs_f64() * 1000.0, "phases_ms": phases})
        })
        .collect();
    (200, json!(rows))
}
