//! Partition reassignments through the admin API (AlterPartitionReassignments,
//! ListPartitionReassignments), as Kafka's `Admin.alterPartitionReassignments` /
//! `listPartitionReassignments` and `kafka-reassign-partitions`.

use super::{msg, name, Admin};
use crate::error::{check, Result};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::BrokerId;

/// One partition's move: topic, partition, target replicas (`None` cancels its move).
pub type Move = (String, i32, Option<Vec<i32>>);

/// One partition's answer: its error code (0: accepted) and message.
pub type MoveResult = ((String, i32), i16, Option<String>);

/// A running reassignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Admin {
    /// Starts (or cancels) the moves; each partition is answered on its own.
    pub async fn alter_partition_reassignments(&self, moves: &[Move]) -> Result<Vec<MoveResult>> {
        let mut req = AlterPartitionReassignmentsRequest::default();
        req.timeout_ms = 30_000;
        req.allow_replication_factor_change = true;
        for (topic, partition, target) in moves {
            let mut p = ReassignablePartition::default();
            p.partition_index = *partition;
            p.replicas = target
                .as_ref()
                .map(|r| r.iter().map(|b| BrokerId(*b)).collect());
            match req.topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partitions.push(p),
                None => {
                    let mut t = ReassignableTopic::default();
                    t.name = name(topic);
                    t.partitions.push(p);
                    req.topics.push(t);
                }
            }
        }
        let resp = self
            .controller_call("AlterPartitionReassignments", &req)
            .await?;
        let top = msg(&resp.error_message);
        check(
            resp.error_code,
            || "AlterPartitionReassignments".into(),
            top.as_deref(),
        )?;
        Ok(resp
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    let key = (t.name.0.to_string(), p.partition_index);
                    (key, p.error_code, msg(&p.error_message))
                })
            })
            .collect())
    }

    /// The reassignments running now.
    pub async fn list_partition_reassignments(&self) -> Result<Vec<Reassignment>> {
        let req = ListPartitionReassignmentsRequest::default();
        let resp = self
            .controller_call("ListPartitionReassignments", &req)
            .await?;
        let top = msg(&resp.error_message);
        check(
            resp.error_code,
            || "ListPartitionReassignments".into(),
            top.as_deref(),
        )?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        Ok(resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| Reassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect())
    }
}
