//! Requests the tests send again and again, built once: a topic name, a produce of one
//! partition's records, the wall clock in milliseconds.

use crate::Conn;
use bytes::Bytes;
use kafka_protocol::messages::{
    produce_request, produce_response, ApiKey, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A Produce of `records` to one partition (15 s timeout).
pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let mut pd = produce_request::PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(records);
    let mut td = produce_request::TopicProduceData::default();
    td.name = topic_name(topic);
    td.partition_data.push(pd);
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 15_000;
    req.topic_data.push(td);
    req
}

/// Produces (v9) and returns the partition's answer; panics when there is none.
pub fn produce(
    c: &mut Conn,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> produce_response::PartitionProduceResponse {
    let resp: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &produce_request(topic, partition, records, acks),
    );
    resp.responses[0].partition_responses[0].clone()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
