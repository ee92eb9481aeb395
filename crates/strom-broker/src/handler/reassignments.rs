//! AlterPartitionReassignments and ListPartitionReassignments (Kafka's
//! `kafka-reassign-partitions`, `strom topics reassign`): moving partitions between brokers
//! while they serve. Decided by `strom_meta::reassignment` and committed through the
//! metadata log; the brokers then add the new replicas (which fetch from the leader and
//! join the ISR once caught up), and the ISR change that brings the last target replica in
//! sync completes the move, after which the replicas that left delete their logs.

use crate::broker::Broker;
use crate::error::api_error;
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use strom_meta::reassignment::{self, Request};

/// One partition's ask: topic, partition, target (None cancels).
type Ask = (String, i32, Option<Vec<i32>>);

pub fn alter(broker: &Arc<Broker>, req: AlterPartitionReassignmentsRequest) -> Pending {
    let allow_rf_change = req.allow_replication_factor_change;
    let asks: Arc<Vec<Ask>> = Arc::new(
        req.topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let target = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                    (t.name.0.to_string(), p.partition_index, target)
                })
            })
            .collect(),
    );
    let broker = Arc::clone(broker);
    Box::pin(async move {
        // Each partition is decided on its own: a refused one does not stop the others.
        let refusals = Arc::new(Mutex::new(BTreeMap::new()));
        let (seen, decide_asks) = (Arc::clone(&refusals), Arc::clone(&asks));
        let decided = broker
            .commit(move |img| {
                let mut records = Vec::new();
                let mut refused = BTreeMap::new();
                for (topic, partition, target) in decide_asks.iter() {
                    let req = Request {
                        topic,
                        partition: *partition,
                        target: target.as_deref(),
                        allow_replication_factor_change: allow_rf_change,
                    };
                    match reassignment::alter(img, &req) {
                        Ok(r) => records.extend(r),
                        Err(e) => {
                            refused.insert((topic.clone(), *partition), e);
                        }
                    }
                }
                *seen.lock().unwrap_or_else(PoisonError::into_inner) = refused;
                Ok(records)
            })
            .await;
        let refused = std::mem::take(&mut *refusals.lock().unwrap_or_else(PoisonError::into_inner));
        let mut response = AlterPartitionReassignmentsResponse::default();
        response.allow_replication_factor_change = allow_rf_change;
        let failed = decided.err();
        for (topic, partition, _) in asks.iter() {
            let mut pr = ReassignablePartitionResponse::default();
            pr.partition_index = *partition;
            let error = match refused.get(&(topic.clone(), *partition)) {
                Some(e) => Some((api_error(e), e.to_string())),
                None => failed.clone(),
            };
            if let Some((c, message)) = error {
                pr.error_code = c;
                pr.error_message = Some(StrBytes::from_string(message));
            }
            match response
                .responses
                .iter_mut()
                .find(|t| t.name.0.as_str() == topic)
            {
                Some(t) => t.partitions.push(pr),
                None => {
                    let mut t = ReassignableTopicResponse::default();
                    t.name = TopicName(StrBytes::from_string(topic.clone()));
                    t.partitions.push(pr);
                    response.responses.push(t);
                }
            }
        }
        Reply::Message(ResponseKind::AlterPartitionReassignments(response))
    })
}

/// The running reassignments of the partitions named (all when none are).
pub fn list(
    broker: &Arc<Broker>,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = broker.meta.image();
    let wanted = |topic: &str, partition: i32| {
        req.topics.as_ref().is_none_or(|ts| {
            ts.iter()
                .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&partition))
        })
    };
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let mut response = ListPartitionReassignmentsResponse::default();
    for (topic, partition, p) in reassignment::running(&image) {
        if !wanted(topic, partition) {
            continue;
        }
        let mut o = OngoingPartitionReassignment::default();
        o.partition_index = partition;
        o.replicas = ids(&p.replicas);
        o.adding_replicas = ids(&p.adding);
        o.removing_replicas = ids(&p.removing);
        match response
            .topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == topic)
        {
            Some(t) => t.partitions.push(o),
            None => {
                let mut t = OngoingTopicReassignment::default();
                t.name = TopicName(StrBytes::from_string(topic.to_string()));
                t.partitions.push(o);
                response.topics.push(t);
            }
        }
    }
    response
}
