//! Request dispatch: the APIs Strom implements, at which versions, and the handler of each.
//!
//! A handler does its synchronous part at once (so pipelined produces append in request
//! order) and returns a `Pending` future for what must wait.

use crate::broker::Broker;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchResponse, RequestHeader, RequestKind, ResponseKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub mod alter_configs;
pub mod api_versions;
pub mod client_quotas;
pub mod consumer_group;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod groups_admin;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod raft_voters;
pub mod read_replica;
pub mod reassignments;
pub mod steer;
pub mod sync_group;
pub mod txn;
pub mod txn_admin;
pub mod txn_offset_commit;
pub mod update_features;
pub mod write_txn_markers;

/// A handler's answer.
pub enum Reply {
    /// No response at all (a produce with acks=0).
    None,
    Message(ResponseKind),
    /// A message's body already encoded at the request's version (a large response,
    /// encoded off the async workers: `handler::metadata`).
    Encoded(bytes::Bytes),
    /// A fetch response whose records fields are markers for these file slices.
    Fetch {
        response: FetchResponse,
        slices: Vec<(Bytes, crate::response::Records)>,
    },
}

pub type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

pub fn ready(body: ResponseKind) -> Pending {
    Box::pin(std::future::ready(Reply::Message(body)))
}

/// Each implemented API with the versions served: the `kafka-protocol` crate's range (what
/// Kafka 4.1 speaks), as far as the handler implements the fields.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::UpdateFeatures, 0, 2),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::ListConfigResources, 0, 1),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
];

/// The listener a request came in on: a client listener, or a controller listener, which
/// serves the controller's APIs to clients that bootstrap from controllers
/// (`--bootstrap-controller`, KIP-919) besides the quorum's own calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Broker,
    Controller,
}

/// The APIs a controller listener serves.
pub const CONTROLLER_APIS: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::DescribeCluster,
    ApiKey::DescribeQuorum,
    ApiKey::AddRaftVoter,
    ApiKey::RemoveRaftVoter,
    ApiKey::UpdateFeatures,
    ApiKey::DescribeConfigs,
    ApiKey::IncrementalAlterConfigs,
];

/// Whether a listener of type `endpoint` serves `api_key`.
pub fn served_on(endpoint: Endpoint, api_key: ApiKey) -> bool {
    endpoint == Endpoint::Broker || CONTROLLER_APIS.contains(&api_key)
}

pub fn supported(api_key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == api_key && (*min..=*max).contains(&version))
}

/// Calls the handler of a decoded request. `request` is None only for an ApiVersions
/// request at a version Strom does not know, which gets UNSUPPORTED_VERSION.
pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    version: i16,
    request: Option<RequestKind>,
    peer: &str,
    endpoint: Endpoint,
) -> Pending {
    let client_id = || {
        header
            .client_id
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default()
    };
    match request {
        None => ready(ResponseKind::ApiVersions(api_versions::unsupported(
            broker, endpoint,
        ))),
        Some(RequestKind::ApiVersions(_)) => ready(ResponseKind::ApiVersions(
            api_versions::handle(broker, version, endpoint),
        )),
        Some(RequestKind::UpdateFeatures(r)) => update_features::handle(broker, version, r),
        Some(RequestKind::DescribeClientQuotas(r)) => ready(ResponseKind::DescribeClientQuotas(
            client_quotas::describe(r),
        )),
        Some(RequestKind::ListConfigResources(r)) => ready(ResponseKind::ListConfigResources(
            list_config_resources::handle(broker, version, r),
        )),
        Some(RequestKind::Metadata(r)) => metadata::handle(broker, version, r),
        Some(RequestKind::Produce(r)) => produce::handle(broker, version, r),
        Some(RequestKind::Fetch(r)) => fetch::handle(broker, version, r),
        Some(RequestKind::ListOffsets(r)) => ready(ResponseKind::ListOffsets(
            list_offsets::handle(broker, version, r),
        )),
        Some(RequestKind::OffsetForLeaderEpoch(r)) => ready(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(broker, r),
        )),
        Some(RequestKind::CreateTopics(r)) => create_topics::handle(broker, version, r),
        Some(RequestKind::DeleteTopics(r)) => delete_topics::handle(broker, version, r),
        Some(RequestKind::InitProducerId(r)) => init_producer_id::handle(broker, version, r),
        Some(RequestKind::AddPartitionsToTxn(r)) => txn::add_partitions(broker, version, r),
        Some(RequestKind::AddOffsetsToTxn(r)) => txn::add_offsets(broker, version, r),
        Some(RequestKind::EndTxn(r)) => txn::end(broker, version, r),
        Some(RequestKind::TxnOffsetCommit(r)) => txn_offset_commit::handle(broker, version, r),
        Some(RequestKind::WriteTxnMarkers(r)) => write_txn_markers::handle(broker, r),
        Some(RequestKind::DescribeTransactions(r)) => ready(ResponseKind::DescribeTransactions(
            txn_admin::describe(broker, r),
        )),
        Some(RequestKind::ListTransactions(r)) => {
            ready(ResponseKind::ListTransactions(txn_admin::list(broker, r)))
        }
        Some(RequestKind::DescribeProducers(r)) => ready(ResponseKind::DescribeProducers(
            txn_admin::describe_producers(broker, r),
        )),
        Some(RequestKind::DescribeConfigs(r)) => ready(ResponseKind::DescribeConfigs(
            describe_configs::handle(broker, r),
        )),
        Some(RequestKind::AlterConfigs(r)) => alter_configs::handle_alter(broker, r),
        Some(RequestKind::IncrementalAlterConfigs(r)) => {
            alter_configs::handle_incremental(broker, r)
        }
        Some(RequestKind::CreatePartitions(r)) => create_partitions::handle(broker, r),
        Some(RequestKind::ElectLeaders(r)) => elect_leaders::handle(broker, version, r),
        Some(RequestKind::DeleteRecords(r)) => delete_records::handle(broker, r),
        Some(RequestKind::AlterPartitionReassignments(r)) => reassignments::alter(broker, r),
        Some(RequestKind::ListPartitionReassignments(r)) => ready(
            ResponseKind::ListPartitionReassignments(reassignments::list(broker, r)),
        ),
        Some(RequestKind::DescribeCluster(r)) => ready(ResponseKind::DescribeCluster(
            describe_cluster::handle(broker, version, r, endpoint),
        )),
        Some(RequestKind::DescribeQuorum(r)) => describe_quorum::handle(broker, r),
        Some(RequestKind::AddRaftVoter(r)) => raft_voters::add(broker, r),
        Some(RequestKind::RemoveRaftVoter(r)) => raft_voters::remove(broker, r),
        Some(RequestKind::DescribeLogDirs(r)) => ready(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(broker, r),
        )),
        Some(RequestKind::FindCoordinator(r)) => find_coordinator::handle(broker, version, r),
        Some(RequestKind::JoinGroup(r)) => {
            join_group::handle(broker, version, r, client_id(), peer.to_string())
        }
        Some(RequestKind::SyncGroup(r)) => sync_group::handle(broker, r),
        Some(RequestKind::Heartbeat(r)) => {
            ready(ResponseKind::Heartbeat(heartbeat::handle(broker, r)))
        }
        Some(RequestKind::LeaveGroup(r)) => ready(ResponseKind::LeaveGroup(leave_group::handle(
            broker, version, r,
        ))),
        Some(RequestKind::OffsetCommit(r)) => offset_commit::handle(broker, version, r),
        Some(RequestKind::OffsetFetch(r)) => ready(ResponseKind::OffsetFetch(
            offset_fetch::handle(broker, version, r),
        )),
        Some(RequestKind::ListGroups(r)) => {
            ready(ResponseKind::ListGroups(groups_admin::list(broker, r)))
        }
        Some(RequestKind::DescribeGroups(r)) => ready(ResponseKind::DescribeGroups(
            groups_admin::describe(broker, version, r),
        )),
        Some(RequestKind::DeleteGroups(r)) => groups_admin::delete(broker, r),
        Some(RequestKind::OffsetDelete(r)) => offset_delete::handle(broker, r),
        Some(RequestKind::ConsumerGroupHeartbeat(r)) => {
            ready(ResponseKind::ConsumerGroupHeartbeat(
                consumer_group::heartbeat(broker, version, r, client_id(), peer),
            ))
        }
        Some(RequestKind::ConsumerGroupDescribe(r)) => ready(ResponseKind::ConsumerGroupDescribe(
            consumer_group::describe(broker, r),
        )),
        Some(RequestKind::DescribeTopicPartitions(r)) => ready(
            ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(broker, r)),
        ),
        Some(other) => {
            // `supported` let it through, so a handler is missing: a bug, answered as Kafka
            // answers an API it does not know — by closing; here, by an empty future.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler");
            Box::pin(std::future::ready(Reply::None))
        }
    }
}
