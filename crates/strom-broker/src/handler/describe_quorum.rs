//! DescribeQuorum: the metadata quorum (`__cluster_metadata-0`) as its leader sees it: leader
//! id and epoch (the Raft term), high watermark (the applied end), and every voter's log end
//! offset as the leader knows it. A node that does not lead asks the leader, as Kafka's
//! brokers forward the request to the active controller.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::{Pending, Reply};
use crate::metadata_store::quorum::QuorumView;
use crate::metadata_store::METADATA_TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: DescribeQuorumRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let view = match broker.meta.quorum() {
            Some(q) => q.describe_anywhere().await,
            None => None,
        };
        Reply::Message(ResponseKind::DescribeQuorum(answer(&broker, req, view)))
    })
}

fn answer(
    broker: &Broker,
    req: DescribeQuorumRequest,
    view: Option<QuorumView>,
) -> DescribeQuorumResponse {
    let mut r = DescribeQuorumResponse::default();
    let now = crate::metadata_store::now_ms();
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
            } else if let Some(v) = &view {
                describe(&mut pd, v, now);
            } else {
                pd.error_code = code(ResponseError::NotLeaderOrFollower);
                pd.error_message = Some(StrBytes::from_static_str(
                    "the metadata quorum has no leader this node can reach",
                ));
            }
            td.partitions.push(pd);
        }
        r.topics.push(td);
    }
    let voters: Vec<i32> = view
        .as_ref()
        .map(|v| v.voters.iter().map(|(id, _)| *id).collect())
        .unwrap_or_default();
    let image = broker.meta.image();
    r.nodes = broker
        .advertised_brokers(&image)
        .into_iter()
        .filter(|(id, ..)| voters.contains(id))
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

fn describe(pd: &mut PartitionData, v: &QuorumView, now: i64) {
    pd.leader_id = BrokerId(v.leader_id);
    pd.leader_epoch = v.leader_epoch;
    pd.high_watermark = v.high_watermark;
    for (id, leo) in &v.voters {
        let mut voter = ReplicaState::default();
        voter.replica_id = BrokerId(*id);
        voter.log_end_offset = *leo;
        // The leader's view is of now: a voter it has heard from has fetched up to here.
        let heard = *id == v.leader_id || *leo > 0;
        voter.last_fetch_timestamp = if heard { now } else { -1 };
        voter.last_caught_up_timestamp = if heard && *leo >= v.high_watermark {
            now
        } else {
            -1
        };
        pd.current_voters.push(voter);
    }
}
