//! DescribeQuorum: the metadata quorum (`__cluster_metadata-0`) as its leader sees it: leader
//! id and epoch (the Raft term), high watermark (the applied end), and every voter's log end
//! offset as the leader knows it, the observers (learners) likewise, directory ids and
//! the voters' controller endpoints (v2, KIP-853). A node that does not lead asks the leader, as Kafka's
//! brokers forward the request to the active controller.

use crate::broker::Broker;
use crate::error::code;
use crate::handler::{Pending, Reply};
use crate::metadata_store::quorum::{QuorumView, Replica};
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
    let listener = broker
        .config
        .quorum
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".into());
    r.nodes = view
        .iter()
        .flat_map(|v| &v.voters)
        .filter(|v| v.port != 0)
        .map(|v| {
            let mut n = Node::default();
            n.node_id = BrokerId(v.node_id);
            let mut l = Listener::default();
            l.name = StrBytes::from_string(listener.clone());
            l.host = StrBytes::from_string(v.host.clone());
            l.port = v.port;
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
    pd.current_voters = v.voters.iter().map(|r| state(r, v, now)).collect();
    pd.observers = v.observers.iter().map(|r| state(r, v, now)).collect();
}

/// A replica as the leader sees it now: one it has heard from has fetched up to here.
fn state(r: &Replica, v: &QuorumView, now: i64) -> ReplicaState {
    let mut s = ReplicaState::default();
    s.replica_id = BrokerId(r.node_id);
    s.replica_directory_id = uuid::Uuid::parse_str(&r.directory_id).unwrap_or_default();
    s.log_end_offset = r.log_end_offset;
    let heard = r.node_id == v.leader_id || r.log_end_offset > 0;
    s.last_fetch_timestamp = if heard { now } else { -1 };
    s.last_caught_up_timestamp = if heard && r.log_end_offset >= v.high_watermark {
        now
    } else {
        -1
    };
    s
}
