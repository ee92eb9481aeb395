//! ConsumerGroupHeartbeat and ConsumerGroupDescribe: the consumer group protocol of KIP-848
//! (`group.protocol=consumer`), whose state machine is `group/consumer.rs`.

use crate::broker::Broker;
use crate::error::code;
use crate::group::assignor::Assignment;
use crate::group::consumer::{Heartbeat, Topics};
use crate::group::state::GROUP_ID_NOT_FOUND;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup, Member,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::image::MetadataImage;
use uuid::Uuid;

/// The metadata image as the group coordinator sees topics.
pub struct ImageTopics<'a>(pub &'a MetadataImage);

impl Topics for ImageTopics<'_> {
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
        let t = self.0.topics.get(name)?;
        Some((
            t.topic_id,
            i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
        ))
    }

    fn name_of(&self, id: &Uuid) -> Option<String> {
        self.0.topic_names.get(id).cloned()
    }

    /// Every topic a regex subscription may match: internal ones too, as Kafka matches
    /// (franz-go's Test848RegexBrokerResolves subscribes to `__consumer_offsets`); only the
    /// metadata log, which no client sees, is left out.
    fn names(&self) -> Vec<String> {
        self.0
            .topics
            .keys()
            .filter(|n| n.as_str() != crate::metadata_store::METADATA_TOPIC)
            .cloned()
            .collect()
    }
}

pub fn heartbeat(
    broker: &Arc<Broker>,
    version: i16,
    req: ConsumerGroupHeartbeatRequest,
    client_id: String,
    peer: &str,
) -> ConsumerGroupHeartbeatResponse {
    // Kafka answers with the bare error (`getErrorResponse`: no message).
    if crate::handler::api_versions::disabled(
        &broker.config,
        &broker.meta.image(),
        ApiKey::ConsumerGroupHeartbeat,
    ) {
        let mut r = ConsumerGroupHeartbeatResponse::default();
        r.error_code = code(ResponseError::UnsupportedVersion);
        return r;
    }
    let owned = req.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        a
    });
    let hb = Heartbeat {
        version,
        group_id: req.group_id.0.as_str().to_string(),
        member_id: req.member_id.as_str().to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.as_str().to_string()),
        rack_id: req.rack_id.map(|s| s.as_str().to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|t| t.0.as_str().to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.as_str().to_string()),
        server_assignor: req.server_assignor.map(|s| s.as_str().to_string()),
        owned,
        client_id,
        client_host: format!("/{peer}"),
    };
    if let Err(c) = broker.check_coordinator(&hb.group_id) {
        let mut r = ConsumerGroupHeartbeatResponse::default();
        r.error_code = c;
        return r;
    }
    let image = broker.meta.image();
    let reply = broker.groups.consumer_heartbeat(
        &hb,
        crate::metadata_store::now_ms(),
        &ImageTopics(&image),
    );
    if reply.error_code == crate::group::consumer::INVALID_REQUEST {
        tracing::info!(group = %hb.group_id, member = %hb.member_id, epoch = hb.member_epoch,
            error = ?reply.error_message, "ConsumerGroupHeartbeat refused");
    }
    let mut r = ConsumerGroupHeartbeatResponse::default();
    r.error_code = reply.error_code;
    r.error_message = reply.error_message.map(StrBytes::from_string);
    r.member_id = (!reply.member_id.is_empty()).then(|| StrBytes::from_string(reply.member_id));
    r.member_epoch = reply.member_epoch;
    r.heartbeat_interval_ms = reply.heartbeat_interval_ms;
    r.assignment = reply.assignment.map(|a| {
        let mut w = WireAssignment::default();
        w.topic_partitions = a
            .into_iter()
            .map(|(t, ps)| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = t;
                tp.partitions = ps.into_iter().collect();
                tp
            })
            .collect();
        w
    });
    r
}

pub fn describe(
    broker: &Arc<Broker>,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let image = broker.meta.image();
    if crate::handler::api_versions::disabled(&broker.config, &image, ApiKey::ConsumerGroupDescribe)
    {
        // Kafka's `getErrorResponse`: every group with the error and nothing else.
        let mut r = ConsumerGroupDescribeResponse::default();
        for id in req.group_ids {
            let mut g = DescribedGroup::default();
            g.group_id = id;
            g.error_code = code(ResponseError::UnsupportedVersion);
            r.groups.push(g);
        }
        return r;
    }
    let names = ImageTopics(&image);
    let ops = crate::authz::if_asked(
        req.include_authorized_operations,
        crate::authz::GROUP_OPERATIONS,
    );
    let wire = |a: &Assignment| {
        let mut w = describe::Assignment::default();
        w.topic_partitions = a
            .iter()
            .filter_map(|(t, ps)| {
                let mut tp = describe::TopicPartitions::default();
                tp.topic_id = *t;
                tp.topic_name = TopicName(StrBytes::from_string(names.name_of(t)?));
                tp.partitions = ps.iter().copied().collect();
                Some(tp)
            })
            .collect();
        w
    };
    let mut r = ConsumerGroupDescribeResponse::default();
    for id in req.group_ids {
        let mut g = DescribedGroup::default();
        g.group_id = id.clone();
        g.authorized_operations = ops;
        if let Err(c) = broker.check_coordinator(id.0.as_str()) {
            g.error_code = c;
            r.groups.push(g);
            continue;
        }
        match broker.groups.consumer_describe(id.0.as_str()) {
            None => {
                g.error_code = GROUP_ID_NOT_FOUND;
                g.error_message = Some(StrBytes::from_string(
                    if broker.groups.is_classic(id.0.as_str()) {
                        format!("Group {} is not a consumer group.", id.0.as_str())
                    } else {
                        format!("Group {} not found.", id.0.as_str())
                    },
                ));
            }
            Some(d) => {
                g.group_state = StrBytes::from_static_str(d.state);
                g.group_epoch = d.group_epoch;
                g.assignment_epoch = d.assignment_epoch;
                g.assignor_name = StrBytes::from_string(d.assignor);
                g.members = d
                    .members
                    .iter()
                    .map(|m| {
                        let mut w = Member::default();
                        w.member_id = StrBytes::from_string(m.member_id.clone());
                        w.instance_id = m.instance_id.clone().map(StrBytes::from_string);
                        w.rack_id = m.rack_id.clone().map(StrBytes::from_string);
                        w.member_epoch = m.member_epoch;
                        w.client_id = StrBytes::from_string(m.client_id.clone());
                        w.client_host = StrBytes::from_string(m.client_host.clone());
                        w.subscribed_topic_names = m
                            .subscribed
                            .iter()
                            .map(|n| TopicName(StrBytes::from_string(n.clone())))
                            .collect();
                        w.subscribed_topic_regex = m.regex.clone().map(StrBytes::from_string);
                        w.assignment = wire(&m.assignment);
                        w.target_assignment = wire(&m.target);
                        // 0: a classic member, 1: a consumer-protocol member.
                        w.member_type = if m.classic { 0 } else { 1 };
                        w
                    })
                    .collect();
            }
        }
        r.groups.push(g);
    }
    r
}
