//! DescribeTopicPartitions (KIP-966): topics and their partitions, paged by a cursor.

use crate::broker::Broker;
use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::ops::Bound;
use std::sync::Arc;

pub fn handle(
    broker: &Arc<Broker>,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = broker.meta.image();
    // Kafka: min(max.request.partition.size.limit, the request's limit).
    let limit = req
        .response_partition_limit
        .min(broker.config.max_request_partition_size_limit)
        .max(1) as usize;
    let (cursor_topic, cursor_partition) = req.cursor.as_ref().map_or((String::new(), 0), |c| {
        (c.topic_name.0.as_str().to_string(), c.partition_index)
    });
    // All topics: the image's sorted map from the cursor on, read as far as the page goes
    // (not every name copied and sorted per page: 100,000 partitions take many pages).
    let mut requested: Vec<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.as_str().to_string())
        .collect();
    requested.sort();
    let from = (Bound::Included(cursor_topic.as_str()), Bound::Unbounded);
    let names: Box<dyn Iterator<Item = &str>> = if req.topics.is_empty() {
        Box::new(
            image
                .topics
                .range::<str, _>(from)
                .map(|(n, _)| n.as_str())
                .filter(|n| !broker.is_hidden_topic(n)),
        )
    } else {
        Box::new(
            requested
                .iter()
                .map(String::as_str)
                .filter(|n| *n >= cursor_topic.as_str()),
        )
    };
    let mut response = DescribeTopicPartitionsResponse::default();
    let mut budget = limit;
    for name in names {
        let mut t = DescribeTopicPartitionsResponseTopic::default();
        t.name = Some(TopicName(StrBytes::from_string(name.to_string())));
        t.topic_authorized_operations = crate::authz::TOPIC_OPERATIONS;
        match image.topics.get(name) {
            None => t.error_code = code(ResponseError::UnknownTopicOrPartition),
            Some(topic) => {
                t.topic_id = topic.topic_id;
                t.is_internal = name.starts_with("__");
                let start = if name == cursor_topic {
                    cursor_partition
                } else {
                    0
                };
                for (index, p) in topic.partitions.range(start..) {
                    if budget == 0 {
                        let mut c = Cursor::default();
                        c.topic_name = TopicName(StrBytes::from_string(name.to_string()));
                        c.partition_index = *index;
                        response.next_cursor = Some(c);
                        break;
                    }
                    budget -= 1;
                    let mut d = DescribeTopicPartitionsResponsePartition::default();
                    d.partition_index = *index;
                    d.leader_id = BrokerId(p.leader);
                    d.leader_epoch = p.leader_epoch;
                    d.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
                    d.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
                    d.eligible_leader_replicas =
                        Some(p.elr.iter().copied().map(BrokerId).collect());
                    d.last_known_elr = Some(Vec::new());
                    t.partitions.push(d);
                }
            }
        }
        response.topics.push(t);
        if response.next_cursor.is_some() {
            break;
        }
    }
    response
}
