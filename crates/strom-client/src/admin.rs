//! The admin client: topics, partitions, configs, offsets, groups and the cluster, as Kafka's
//! `Admin` offers them. Each method is one request (routed to the controller, a leader or a
//! group coordinator) with its per-item errors turned into `Result`s.

mod elections;
mod reassignments;
mod transactions;

use crate::client::{Client, Metadata};
use crate::error::{check, Error, Result};
pub use elections::{ElectionResult, ElectionType};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::{BrokerId, ConsumerProtocolAssignment, GroupId, TopicName};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
pub use reassignments::{Move, MoveResult, Reassignment};
use std::collections::{BTreeMap, HashMap};
pub use transactions::{ProducerDescription, TransactionDescription, TransactionListing};

/// Which thing a config belongs to (Kafka's `ConfigResource.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    Topic = 2,
    Broker = 4,
}

/// One configuration entry as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's `ConfigSource` names: DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG...
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
}

/// What a topic to create looks like.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    /// -1 takes the broker's `num.partitions`.
    pub partitions: i32,
    /// -1 takes the broker's `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// A config change for IncrementalAlterConfigs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterOp {
    Set(String, String),
    Delete(String),
}

/// Where to look an offset up (ListOffsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    /// ListOffsets' timestamp for it (-2 earliest, -1 latest).
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

/// A group member as DescribeGroups reports it, with its decoded assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<(String, i32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// A broker as DescribeCluster reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterBroker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<ClusterBroker>,
}

/// The metadata quorum (DescribeQuorum on `__cluster_metadata-0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDescription {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumReplica {
    pub replica_id: i32,
    /// Its metadata log directory id (KIP-853; empty: not known).
    pub directory_id: String,
    pub log_end_offset: i64,
    /// Records behind the leader's high watermark.
    pub lag: i64,
    /// When the replica last fetched (ms since the epoch; -1: unknown).
    pub last_fetch_ms: i64,
}

/// The admin client.
#[derive(Clone)]
pub struct Admin {
    client: Client,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn msg(m: &Option<StrBytes>) -> Option<String> {
    m.as_ref().map(|m| m.to_string())
}

impl Admin {
    /// Sends `req` to the controller, retried as every admin call is (`Client::retry`).
    async fn controller_call<R: Request>(&self, what: &str, req: &R) -> Result<R::Response> {
        self.client
            .retry(what, || async {
                self.client.controller_conn().await?.call(req).await
            })
            .await
    }

    pub fn new(client: Client) -> Admin {
        Admin { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Metadata for every topic (`None`) or the ones named.
    pub async fn metadata(&self, topics: Option<&[String]>) -> Result<Metadata> {
        self.client
            .retry("Metadata", || self.client.refresh(topics))
            .await
    }

    /// Creates topics; one result per topic, in order.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<Vec<Result<()>>> {
        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = 30_000;
        for t in topics {
            let mut ct = CreatableTopic::default();
            ct.name = name(&t.name);
            ct.num_partitions = t.partitions;
            ct.replication_factor = t.replication_factor;
            for (k, v) in &t.configs {
                let mut c = CreatableTopicConfig::default();
                c.name = sb(k);
                c.value = Some(sb(v));
                ct.configs.push(c);
            }
            req.topics.push(ct);
        }
        let resp = self.controller_call("CreateTopics", &req).await?;
        Ok(topics
            .iter()
            .map(|t| {
                let r = resp
                    .topics
                    .iter()
                    .find(|r| r.name.0.as_str() == t.name)
                    .ok_or_else(|| Error::Protocol(format!("no result for topic {}", t.name)))?;
                check(
                    r.error_code,
                    || format!("creating topic {}", t.name),
                    msg(&r.error_message).as_deref(),
                )
            })
            .collect())
    }

    /// Deletes topics by name; one result per topic, in order.
    pub async fn delete_topics(&self, topics: &[String]) -> Result<Vec<Result<()>>> {
        let mut req = DeleteTopicsRequest::default();
        req.timeout_ms = 30_000;
        let resp = self
            .client
            .retry("DeleteTopics", || async {
                let conn = self.client.controller_conn().await?;
                let mut req = req.clone();
                // v6 names topics in `topics` (by name or id); before it, `topic_names`.
                for t in topics {
                    if conn.version_of::<DeleteTopicsRequest>()? >= 6 {
                        let mut s = DeleteTopicState::default();
                        s.name = Some(name(t));
                        req.topics.push(s);
                    } else {
                        req.topic_names.push(name(t));
                    }
                }
                conn.call(&req).await
            })
            .await?;
        for t in topics {
            self.client.invalidate(t);
        }
        Ok(topics
            .iter()
            .map(|t| {
                let r = resp
                    .responses
                    .iter()
                    .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == t))
                    .ok_or_else(|| Error::Protocol(format!("no result for topic {t}")))?;
                check(
                    r.error_code,
                    || format!("deleting topic {t}"),
                    msg(&r.error_message).as_deref(),
                )
            })
            .collect())
    }

    /// Raises a topic's partition count to `total`.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let mut req = CreatePartitionsRequest::default();
        req.timeout_ms = 30_000;
        let mut t = CreatePartitionsTopic::default();
        t.name = name(topic);
        t.count = total;
        req.topics.push(t);
        let resp = self.controller_call("CreatePartitions", &req).await?;
        self.client.invalidate(topic);
        let r = resp
            .results
            .first()
            .ok_or_else(|| Error::Protocol("empty CreatePartitions response".into()))?;
        check(
            r.error_code,
            || format!("adding partitions to {topic}"),
            msg(&r.error_message).as_deref(),
        )
    }

    /// Every config of a topic or broker (broker names are node ids; "" for the cluster
    /// default).
    pub async fn describe_configs(
        &self,
        kind: ResourceType,
        resource: &str,
    ) -> Result<Vec<ConfigEntry>> {
        let mut req = DescribeConfigsRequest::default();
        let mut r = DescribeConfigsResource::default();
        r.resource_type = kind as i8;
        r.resource_name = sb(resource);
        r.configuration_keys = None;
        req.resources.push(r);
        let resp = self
            .client
            .retry("DescribeConfigs", || async {
                let conn = match kind {
                    ResourceType::Broker => match resource.parse::<i32>() {
                        Ok(id) => self.client.broker_conn(id).await?,
                        Err(_) => self.client.any_conn().await?,
                    },
                    ResourceType::Topic => self.client.any_conn().await?,
                };
                conn.call(&req).await
            })
            .await?;
        let result = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("empty DescribeConfigs response".into()))?;
        check(
            result.error_code,
            || format!("describing configs of {resource}"),
            msg(&result.error_message).as_deref(),
        )?;
        let mut out: Vec<ConfigEntry> = result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: config_source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Sets or deletes configs of a topic or broker (IncrementalAlterConfigs).
    pub async fn alter_configs(
        &self,
        kind: ResourceType,
        resource: &str,
        ops: &[AlterOp],
    ) -> Result<()> {
        let mut req = IncrementalAlterConfigsRequest::default();
        let mut r = AlterConfigsResource::default();
        r.resource_type = kind as i8;
        r.resource_name = sb(resource);
        for op in ops {
            let mut c = AlterableConfig::default();
            match op {
                AlterOp::Set(k, v) => {
                    c.name = sb(k);
                    c.config_operation = 0;
                    c.value = Some(sb(v));
                }
                AlterOp::Delete(k) => {
                    c.name = sb(k);
                    c.config_operation = 1;
                }
            }
            r.configs.push(c);
        }
        req.resources.push(r);
        // One broker's configs are altered by that broker (as Kafka's admin client routes).
        let broker = match kind {
            ResourceType::Broker => resource.parse::<i32>().ok(),
            ResourceType::Topic => None,
        };
        let resp = self
            .client
            .retry("IncrementalAlterConfigs", || async {
                let conn = match broker {
                    Some(id) => self.client.broker_conn(id).await?,
                    None => self.client.controller_conn().await?,
                };
                conn.call(&req).await
            })
            .await?;
        let r = resp
            .responses
            .first()
            .ok_or_else(|| Error::Protocol("empty IncrementalAlterConfigs response".into()))?;
        check(
            r.error_code,
            || format!("altering configs of {resource}"),
            msg(&r.error_message).as_deref(),
        )
    }

    /// Offsets of partitions by `spec`, asked of each partition's leader. `None` for a
    /// timestamp past every record.
    pub async fn list_offsets(
        &self,
        partitions: &[(String, i32)],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<(String, i32), Option<i64>>> {
        let timestamp = spec.timestamp();
        let mut out = BTreeMap::new();
        for (topic, partition) in partitions {
            let offset = self
                .client
                .retry("ListOffsets", || {
                    self.ask_offset(topic, *partition, timestamp)
                })
                .await?;
            out.insert((topic.clone(), *partition), (offset >= 0).then_some(offset));
        }
        Ok(out)
    }

    /// `list_offsets` asked once per partition, for a description: a partition that cannot
    /// answer now (no leader, OFFSET_NOT_AVAILABLE while a new leader's high watermark
    /// catches up) is left out instead of failing or waiting.
    pub async fn try_list_offsets(
        &self,
        partitions: &[(String, i32)],
        spec: OffsetSpec,
    ) -> BTreeMap<(String, i32), Option<i64>> {
        let timestamp = spec.timestamp();
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        // Each topic's metadata looked up once, not once per partition (a copy of all of
        // its partitions each time).
        let mut leaders: HashMap<&str, HashMap<i32, i32>> = HashMap::new();
        for (topic, partition) in partitions {
            if !leaders.contains_key(topic.as_str()) {
                let found = match self.client.topic(topic).await {
                    Ok(t) => t
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.leader))
                        .collect(),
                    Err(_) => HashMap::new(),
                };
                leaders.insert(topic, found);
            }
            let leader = leaders[topic.as_str()]
                .get(partition)
                .copied()
                .unwrap_or(-1);
            by_leader
                .entry(leader)
                .or_default()
                .entry(topic)
                .or_default()
                .push(*partition);
        }
        // One request per leader (100,000 partitions would be 100,000 round trips)...
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader.iter().filter(|(l, _)| **l >= 0) {
            if let Ok(answered) = self.offsets_from(*leader, topics, timestamp).await {
                for (tp, offset) in answered {
                    out.insert(tp, (offset >= 0).then_some(offset));
                }
            }
        }
        // ...and a partition that request did not answer is asked alone (its leader may
        // have moved: `ask_offset` looks it up again).
        for (topic, partition) in partitions {
            if out.contains_key(&(topic.clone(), *partition)) {
                continue;
            }
            if let Ok(offset) = self.ask_offset(topic, *partition, timestamp).await {
                out.insert((topic.clone(), *partition), (offset >= 0).then_some(offset));
            }
        }
        out
    }

    /// One ListOffsets to broker `leader` for all of `topics`' partitions: the offsets of
    /// those answered without an error.
    async fn offsets_from(
        &self,
        leader: i32,
        topics: &BTreeMap<&str, Vec<i32>>,
        timestamp: i64,
    ) -> Result<Vec<((String, i32), i64)>> {
        let conn = self.client.broker_conn(leader).await?;
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        for (topic, partitions) in topics {
            let mut t = ListOffsetsTopic::default();
            t.name = name(topic);
            for partition in partitions {
                let mut p = ListOffsetsPartition::default();
                p.partition_index = *partition;
                p.current_leader_epoch = -1;
                p.timestamp = timestamp;
                t.partitions.push(p);
            }
            req.topics.push(t);
        }
        let resp = conn.call(&req).await?;
        Ok(resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.error_code == 0)
                    .map(move |p| ((t.name.0.to_string(), p.partition_index), p.offset))
            })
            .collect())
    }

    /// One ListOffsets to the partition's leader.
    async fn ask_offset(&self, topic: &str, partition: i32, timestamp: i64) -> Result<i64> {
        let conn = self.client.leader_conn(topic, partition).await?;
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        let mut t = ListOffsetsTopic::default();
        t.name = name(topic);
        let mut p = ListOffsetsPartition::default();
        p.partition_index = partition;
        p.current_leader_epoch = -1;
        p.timestamp = timestamp;
        t.partitions.push(p);
        req.topics.push(t);
        let resp = conn.call(&req).await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| Error::Protocol("empty ListOffsets response".into()))?;
        if p.error_code != 0 {
            self.client.invalidate(topic);
        }
        check(p.error_code, || format!("{topic}-{partition}"), None)?;
        Ok(p.offset)
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let md = self.metadata(Some(&[])).await?;
        let mut out = Vec::new();
        for b in md.brokers.values() {
            let conn = self.client.conn_to(&b.addr()).await?;
            let resp = conn.call(&ListGroupsRequest::default()).await?;
            check(resp.error_code, || "ListGroups".into(), None)?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let resp =
            self.client
                .retry("DescribeGroups", || async {
                    let conn = self.client.coordinator(group, 0).await?;
                    let mut req = DescribeGroupsRequest::default();
                    req.groups.push(GroupId(sb(group)));
                    let resp = conn.call(&req).await?;
                    let g =
                        resp.groups.into_iter().next().ok_or_else(|| {
                            Error::Protocol("empty DescribeGroups response".into())
                        })?;
                    check(
                        g.error_code,
                        || format!("describing group {group}"),
                        msg(&g.error_message).as_deref(),
                    )?;
                    Ok(g)
                })
                .await?;
        let members = resp
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: decode_assignment(&m.member_assignment),
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: resp.group_state.to_string(),
            protocol_type: resp.protocol_type.to_string(),
            protocol: resp.protocol_data.to_string(),
            members,
        })
    }

    /// A group's committed offsets, for every partition it has committed.
    pub async fn committed_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        self.client
            .retry("OffsetFetch", || async {
                let conn = self.client.coordinator(group, 0).await?;
                // v7 is the last version with the single-group shape; every broker since
                // Kafka 2.5 has it.
                let version = conn.version_of::<OffsetFetchRequest>()?.min(7);
                let mut req = OffsetFetchRequest::default();
                req.group_id = GroupId(sb(group));
                req.topics = None;
                let resp = conn.call_at(&req, version).await?;
                check(
                    resp.error_code,
                    || format!("offsets of group {group}"),
                    None,
                )?;
                let mut out = BTreeMap::new();
                for t in resp.topics {
                    for p in t.partitions {
                        check(
                            p.error_code,
                            || format!("{}-{}", t.name.0, p.partition_index),
                            None,
                        )?;
                        if p.committed_offset >= 0 {
                            out.insert(
                                (t.name.0.to_string(), p.partition_index),
                                p.committed_offset,
                            );
                        }
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Commits offsets for a group that has no active members (what reset-offsets does).
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<()> {
        let req = offset_commit_request(group, -1, "", offsets);
        let resp = self
            .client
            .retry("OffsetCommit", || async {
                self.client.coordinator(group, 0).await?.call(&req).await
            })
            .await?;
        check_offset_commit(group, resp)
    }

    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let resp = self
            .client
            .retry("DeleteGroups", || async {
                let conn = self.client.coordinator(group, 0).await?;
                let mut req = DeleteGroupsRequest::default();
                req.groups_names.push(GroupId(sb(group)));
                conn.call(&req).await
            })
            .await?;
        let r = resp
            .results
            .first()
            .ok_or_else(|| Error::Protocol("empty DeleteGroups response".into()))?;
        check(r.error_code, || format!("deleting group {group}"), None)
    }

    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let resp = self
            .client
            .retry("DescribeCluster", || async {
                self.client
                    .any_conn()
                    .await?
                    .call(&DescribeClusterRequest::default())
                    .await
            })
            .await?;
        check(
            resp.error_code,
            || "DescribeCluster".into(),
            msg(&resp.error_message).as_deref(),
        )?;
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: resp.controller_id.0,
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| ClusterBroker {
                    node_id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                    fenced: b.is_fenced,
                })
                .collect(),
        })
    }
}

impl Admin {
    /// The metadata quorum: its leader, epoch, high watermark, voters and observers.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription> {
        use kafka_protocol::messages::describe_quorum_request::{
            DescribeQuorumRequest, PartitionData, TopicData,
        };
        let mut req = DescribeQuorumRequest::default();
        let mut t = TopicData::default();
        t.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
        t.partitions.push(PartitionData::default());
        req.topics.push(t);
        let resp = self
            .client
            .retry("DescribeQuorum", || async {
                self.client.any_conn().await?.call(&req).await
            })
            .await?;
        check(
            resp.error_code,
            || "DescribeQuorum".into(),
            msg(&resp.error_message).as_deref(),
        )?;
        let p = resp
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| Error::Protocol("DescribeQuorum: no partition in the answer".into()))?;
        check(
            p.error_code,
            || "DescribeQuorum".into(),
            msg(&p.error_message).as_deref(),
        )?;
        let hw = p.high_watermark;
        let replicas =
            |list: Vec<kafka_protocol::messages::describe_quorum_response::ReplicaState>| {
                list.into_iter()
                    .map(|r| QuorumReplica {
                        replica_id: r.replica_id.0,
                        directory_id: if r.replica_directory_id.is_nil() {
                            String::new()
                        } else {
                            r.replica_directory_id.to_string()
                        },
                        log_end_offset: r.log_end_offset,
                        lag: (hw - r.log_end_offset).max(0),
                        last_fetch_ms: r.last_fetch_timestamp,
                    })
                    .collect()
            };
        Ok(QuorumDescription {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: hw,
            voters: replicas(p.current_voters),
            observers: replicas(p.observers),
        })
    }
}

impl Admin {
    /// Makes node `id`, an observer of a dynamic quorum on directory `directory_id`, a
    /// voter reached at `endpoint` (AddRaftVoter, KIP-853).
    pub async fn add_raft_voter(
        &self,
        id: i32,
        directory_id: uuid::Uuid,
        endpoint: Option<(&str, &str, u16)>,
    ) -> Result<()> {
        use kafka_protocol::messages::add_raft_voter_request::{AddRaftVoterRequest, Listener};
        let mut req = AddRaftVoterRequest::default();
        req.timeout_ms = 60_000;
        req.cluster_id = None;
        req.voter_id = id;
        req.voter_directory_id = directory_id;
        if let Some((name, host, port)) = endpoint {
            let mut l = Listener::default();
            l.name = StrBytes::from_string(name.to_string());
            l.host = StrBytes::from_string(host.to_string());
            l.port = port;
            req.listeners.push(l);
        }
        let resp = self.client.any_conn().await?.call(&req).await?;
        check(
            resp.error_code,
            || format!("AddRaftVoter {id}"),
            msg(&resp.error_message).as_deref(),
        )
    }

    /// Removes voter `id` on directory `directory_id` (RemoveRaftVoter, KIP-853).
    pub async fn remove_raft_voter(&self, id: i32, directory_id: uuid::Uuid) -> Result<()> {
        use kafka_protocol::messages::RemoveRaftVoterRequest;
        let mut req = RemoveRaftVoterRequest::default();
        req.cluster_id = None;
        req.voter_id = id;
        req.voter_directory_id = directory_id;
        let resp = self.client.any_conn().await?.call(&req).await?;
        check(
            resp.error_code,
            || format!("RemoveRaftVoter {id}"),
            msg(&resp.error_message).as_deref(),
        )
    }
}

/// An OffsetCommit of `offsets` (the next offset to read per partition) for a group member
/// (`generation` -1 and no member id: a commit for a group with no active members).
pub(crate) fn offset_commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> OffsetCommitRequest {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(sb(group));
    req.generation_id_or_member_epoch = generation;
    req.member_id = sb(member_id);
    req.retention_time_ms = -1;
    let mut topics: BTreeMap<&str, OffsetCommitRequestTopic> = BTreeMap::new();
    for ((topic, partition), offset) in offsets {
        let t = topics.entry(topic).or_insert_with(|| {
            let mut t = OffsetCommitRequestTopic::default();
            t.name = name(topic);
            t
        });
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_leader_epoch = -1;
        t.partitions.push(p);
    }
    req.topics = topics.into_values().collect();
    req
}

/// The first per-partition error of an OffsetCommit response.
pub(crate) fn check_offset_commit(
    group: &str,
    resp: kafka_protocol::messages::OffsetCommitResponse,
) -> Result<()> {
    for t in resp.topics {
        for p in t.partitions {
            check(
                p.error_code,
                || {
                    format!(
                        "committing {}-{} for group {group}",
                        t.name.0, p.partition_index
                    )
                },
                None,
            )?;
        }
    }
    Ok(())
}

/// A classic consumer's assignment bytes: a version (i16) then ConsumerProtocolAssignment.
/// Anything else (another protocol type, junk) decodes to no partitions.
pub fn decode_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    let Some((version, rest)) = bytes.split_first_chunk::<2>() else {
        return Vec::new();
    };
    let version = i16::from_be_bytes(*version);
    let mut buf = bytes::Bytes::copy_from_slice(rest);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Kafka's `DescribeConfigsResponse.ConfigSource` names.
fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}
