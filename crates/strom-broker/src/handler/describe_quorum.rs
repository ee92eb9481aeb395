//! DescribeQuorum: the metadata quorum. Strom's metadata log (`__cluster_metadata-0`) has
//! one voter today, this node, which leads it; every record in it is committed, so the high
//! watermark is the log's end. The cluster issue puts the log under Raft, with more voters.

use crate::broker::Broker;
use crate::error::code;
use crate::metadata_store::METADATA_TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// The metadata log's leader epoch: one leader since the log began.
const LEADER_EPOCH: i32 = 1;

pub fn handle(broker: &Arc<Broker>, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let mut r = DescribeQuorumResponse::default();
    let now = crate::metadata_store::now_ms();
    let end = broker.meta.log_end_offset();
    for t in req.topics {
        let mut td = TopicData::default();
        td.topic_name = t.topic_name.clone();
        for p in t.partitions {
            let mut pd = PartitionData::default();
            pd.partition_index = p.partition_index;
            if t.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                pd.error_code = code(ResponseError::UnknownTopicOrPartition);
                pd.error_message = Some(StrBytes::from_static_str(
                    "the metadata quorum is __cluster_metadata-0",
                ));
                td.partitions.push(pd);
                continue;
            }
            pd.leader_id = BrokerId(broker.node_id);
            pd.leader_epoch = LEADER_EPOCH;
            pd.high_watermark = end;
            let mut voter = ReplicaState::default();
            voter.replica_id = BrokerId(broker.node_id);
            voter.log_end_offset = end;
            voter.last_fetch_timestamp = now;
            voter.last_caught_up_timestamp = now;
            pd.current_voters.push(voter);
            td.partitions.push(pd);
        }
        r.topics.push(td);
    }
    let image = broker.meta.image();
    r.nodes = broker
        .advertised_brokers(&image)
        .into_iter()
        .filter(|(id, ..)| *id == broker.node_id)
        .map(|(id, host, port, _)| {
            let mut n = Node::default();
            n.node_id = BrokerId(id);
            let mut l = Listener::default();
            l.name = StrBytes::from_static_str("PLAINTEXT");
            l.host = StrBytes::from_string(host);
            l.port = port;
            n.listeners.push(l);
            n
        })
        .collect();
    r
}
