//! Classic consumer-group membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with the
//! `range` assignor, as Kafka's `ConsumerCoordinator` does it: the first member to join is the
//! leader, computes every member's partitions and hands them out through SyncGroup. A
//! background task heartbeats; a rebalance it learns of sets a flag that the consumer's next
//! `poll` acts on (rejoining), so membership changes happen on the caller's task.

use crate::client::Client;
use crate::conn::Connection;
use crate::error::{check, Error, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{
    consumer_protocol_assignment, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    GroupId, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;

/// Group settings (Kafka's consumer configs of the same names).
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub group_id: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
}

/// A member that has joined: its generation and assignment.
pub struct Membership {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub assignment: Vec<(String, i32)>,
    pub coordinator: Arc<Connection>,
    rejoin: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Membership {
    /// Whether the coordinator has started a rebalance this member must join.
    pub fn needs_rejoin(&self) -> bool {
        self.rejoin.load(Ordering::Acquire)
    }

    /// Leaves the group (the coordinator rebalances the others at once instead of waiting
    /// for the session timeout).
    pub async fn leave(self) -> Result<()> {
        self.heartbeat.abort();
        let mut req = LeaveGroupRequest::default();
        req.group_id = GroupId(StrBytes::from_string(self.group_id.clone()));
        let member_id = StrBytes::from_string(self.member_id.clone());
        let version = self.coordinator.version_of::<LeaveGroupRequest>()?;
        // v3 (KIP-345) leaves as a list of members; before it, one member id.
        if version >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = member_id;
            if version >= 5 {
                m.reason = Some(StrBytes::from_static_str("the consumer is closing"));
            }
            req.members.push(m);
        } else {
            req.member_id = member_id;
        }
        let resp = self.coordinator.call(&req).await?;
        check(resp.error_code, || "LeaveGroup".into(), None)
    }
}

/// Joins (or rejoins, keeping `member_id`) the group subscribed to `topics`.
pub async fn join(
    client: &Client,
    config: &GroupConfig,
    topics: &[String],
    member_id: &str,
) -> Result<Membership> {
    let mut member_id = member_id.to_string();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let coordinator = client.coordinator(&config.group_id, 0).await?;
        match join_once(client, &coordinator, config, topics, &member_id).await {
            Ok(m) => return Ok(m),
            Err(JoinError::NewMemberId(id)) => member_id = id,
            Err(JoinError::Retry(e)) if attempts < crate::limits::RETRIES_MAX => {
                tracing::debug!(error = %e, "rejoining");
                if e.code() == Some(UNKNOWN_MEMBER_ID) {
                    member_id.clear();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(JoinError::Retry(e) | JoinError::Fatal(e)) => return Err(e),
        }
    }
}

enum JoinError {
    NewMemberId(String),
    Retry(Error),
    Fatal(Error),
}

impl From<Error> for JoinError {
    fn from(e: Error) -> JoinError {
        let rejoin = matches!(
            e.code(),
            Some(REBALANCE_IN_PROGRESS | UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION)
        );
        if rejoin || e.is_retriable() {
            JoinError::Retry(e)
        } else {
            JoinError::Fatal(e)
        }
    }
}

async fn join_once(
    client: &Client,
    coordinator: &Arc<Connection>,
    config: &GroupConfig,
    topics: &[String],
    member_id: &str,
) -> Result<Membership, JoinError> {
    let group = GroupId(StrBytes::from_string(config.group_id.clone()));
    let mut req = JoinGroupRequest::default();
    req.group_id = group.clone();
    req.session_timeout_ms = config.session_timeout.as_millis() as i32;
    req.rebalance_timeout_ms = config.rebalance_timeout.as_millis() as i32;
    req.member_id = StrBytes::from_string(member_id.to_string());
    req.protocol_type = StrBytes::from_static_str("consumer");
    let mut proto = JoinGroupRequestProtocol::default();
    proto.name = StrBytes::from_static_str("range");
    proto.metadata = encode_subscription(topics).map_err(JoinError::Fatal)?;
    req.protocols.push(proto);
    let resp = coordinator.call(&req).await?;
    if resp.error_code == MEMBER_ID_REQUIRED {
        return Err(JoinError::NewMemberId(resp.member_id.to_string()));
    }
    check(resp.error_code, || "JoinGroup".into(), None)?;
    let me = resp.member_id.to_string();
    let mut sync = SyncGroupRequest::default();
    sync.group_id = group.clone();
    sync.generation_id = resp.generation_id;
    sync.member_id = resp.member_id.clone();
    sync.protocol_type = Some(StrBytes::from_static_str("consumer"));
    sync.protocol_name = resp.protocol_name.clone();
    if resp.leader == resp.member_id && !resp.skip_assignment {
        let mut subscriptions = BTreeMap::new();
        for m in &resp.members {
            subscriptions.insert(m.member_id.to_string(), decode_subscription(&m.metadata));
        }
        let assignments = assign_range(client, &subscriptions).await?;
        for (member, parts) in assignments {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = StrBytes::from_string(member);
            a.assignment = encode_assignment(&parts).map_err(JoinError::Fatal)?;
            sync.assignments.push(a);
        }
    }
    let sresp = coordinator.call(&sync).await?;
    check(sresp.error_code, || "SyncGroup".into(), None)?;
    let assignment = crate::admin::decode_assignment(&sresp.assignment);
    let rejoin = Arc::new(AtomicBool::new(false));
    let mut hb = HeartbeatRequest::default();
    hb.group_id = group;
    hb.generation_id = resp.generation_id;
    hb.member_id = resp.member_id.clone();
    let heartbeat = tokio::spawn(heartbeat_loop(
        Arc::clone(coordinator),
        hb,
        config.heartbeat_interval,
        Arc::clone(&rejoin),
    ));
    Ok(Membership {
        group_id: config.group_id.clone(),
        member_id: me,
        generation_id: resp.generation_id,
        assignment,
        coordinator: Arc::clone(coordinator),
        rejoin,
        heartbeat,
    })
}

async fn heartbeat_loop(
    coordinator: Arc<Connection>,
    req: HeartbeatRequest,
    every: Duration,
    rejoin: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(every).await;
        match coordinator.call(&req).await {
            Ok(r) if r.error_code == 0 => {}
            Ok(r) => {
                tracing::debug!(code = r.error_code, "heartbeat: rejoin needed");
                rejoin.store(true, Ordering::Release);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed: rejoin needed");
                rejoin.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// Kafka's RangeAssignor: per topic, members subscribed to it in member-id order each take a
/// contiguous range; the first `partitions % members` take one extra.
async fn assign_range(
    client: &Client,
    subscriptions: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<(String, i32)>>> {
    let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for t in topics {
            by_topic.entry(t).or_default().push(member);
        }
    }
    let mut out: BTreeMap<String, Vec<(String, i32)>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    for (topic, members) in by_topic {
        let Ok(info) = client.topic(topic).await else {
            continue; // a topic that does not exist (yet) gets no partitions
        };
        let parts = info.partitions.len();
        let per = parts / members.len();
        let extra = parts % members.len();
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let n = per + usize::from(i < extra);
            if let Some(list) = out.get_mut(*m) {
                for p in next..next + n {
                    list.push((topic.to_string(), p as i32));
                }
            }
            next += n;
        }
    }
    Ok(out)
}

fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = topics
        .iter()
        .map(|t| StrBytes::from_string(t.clone()))
        .collect();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&0i16.to_be_bytes());
    s.encode(&mut buf, 0)
        .map_err(|e| Error::Protocol(format!("encoding a subscription: {e}")))?;
    Ok(buf.freeze())
}

fn decode_subscription(bytes: &[u8]) -> Vec<String> {
    let Some((version, rest)) = bytes.split_first_chunk::<2>() else {
        return Vec::new();
    };
    let version = i16::from_be_bytes(*version).clamp(0, 3);
    let mut buf = Bytes::copy_from_slice(rest);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

fn encode_assignment(parts: &[(String, i32)]) -> Result<Bytes> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut a = ConsumerProtocolAssignment::default();
    for (t, ps) in by_topic {
        let mut tp = consumer_protocol_assignment::TopicPartition::default();
        tp.topic = TopicName(StrBytes::from_string(t.to_string()));
        tp.partitions = ps;
        a.assigned_partitions.push(tp);
    }
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&0i16.to_be_bytes());
    a.encode(&mut buf, 0)
        .map_err(|e| Error::Protocol(format!("encoding an assignment: {e}")))?;
    Ok(buf.freeze())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip() {
        let parts = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("b".to_string(), 1),
        ];
        let bytes = encode_assignment(&parts).unwrap();
        assert_eq!(crate::admin::decode_assignment(&bytes), parts);
        let sub = encode_subscription(&["x".into(), "y".into()]).unwrap();
        assert_eq!(decode_subscription(&sub), vec!["x", "y"]);
    }
}
