//! ElectLeaders (Kafka's `kafka-leader-election`, `strom topics elect-leaders`): a preferred
//! election gives each named partition's leadership back to its first replica when that one
//! is live and in sync; an unclean one gives a leaderless partition a live replica even out
//! of sync (an operator's recovery, losing what only the dead replicas held). Decided by
//! `strom_meta::elections` and committed through the metadata log. No partitions named:
//! every partition, and only those elected are answered (as Kafka).

use crate::broker::Broker;
use crate::error::code;
use crate::handler::{Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::{Arc, Mutex, PoisonError};
use strom_meta::elections::{self, Election, Outcome};

pub fn handle(broker: &Arc<Broker>, version: i16, req: ElectLeadersRequest) -> Pending {
    let kind = match (version, req.election_type) {
        (0, _) | (_, 0) => Some(Election::Preferred),
        (_, 1) => Some(Election::Unclean),
        _ => None,
    };
    let wanted: Option<Vec<(String, i32)>> = req.topic_partitions.map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic.0.as_str().to_string(), *p))
            })
            .collect()
    });
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = ElectLeadersResponse::default();
        let Some(kind) = kind else {
            response.error_code = code(ResponseError::InvalidRequest);
            return Reply::Message(ResponseKind::ElectLeaders(response));
        };
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&outcomes);
        let result = broker
            .commit(move |img| {
                let (records, o) = elections::elect_leaders(img, kind, wanted.as_deref());
                *seen.lock().unwrap_or_else(PoisonError::into_inner) = o;
                Ok(records)
            })
            .await;
        let committed = result.as_ref().map_err(|(c, _)| *c).err();
        let outcomes =
            std::mem::take(&mut *outcomes.lock().unwrap_or_else(PoisonError::into_inner));
        for ((topic, partition), outcome) in outcomes {
            let mut pr = PartitionResult::default();
            pr.partition_id = partition;
            let (error, message) = match (outcome, committed) {
                (Outcome::Elected, Some(c)) => (c, None),
                (o, _) => answer(o, &topic, partition),
            };
            pr.error_code = error;
            pr.error_message = message.map(StrBytes::from_string);
            match response
                .replica_election_results
                .iter_mut()
                .find(|r| r.topic.0.as_str() == topic)
            {
                Some(r) => r.partition_result.push(pr),
                None => {
                    let mut r = ReplicaElectionResult::default();
                    r.topic = TopicName(StrBytes::from_string(topic));
                    r.partition_result.push(pr);
                    response.replica_election_results.push(r);
                }
            }
        }
        Reply::Message(ResponseKind::ElectLeaders(response))
    })
}

/// Kafka's code and message for an outcome (its controller's texts).
fn answer(o: Outcome, topic: &str, partition: i32) -> (i16, Option<String>) {
    let (code, message) = match o {
        Outcome::Elected => (0, None),
        Outcome::NotNeeded => (
            code(ResponseError::ElectionNotNeeded),
            Some("Leader election not needed for topic partition."),
        ),
        Outcome::PreferredNotAvailable => (
            code(ResponseError::PreferredLeaderNotAvailable),
            Some("The preferred leader was not available."),
        ),
        Outcome::NoEligibleLeader => (
            code(ResponseError::EligibleLeadersNotAvailable),
            Some("Eligible topic partition leaders are not available."),
        ),
        Outcome::UnknownTopic => {
            let c = code(ResponseError::UnknownTopicOrPartition);
            return (c, Some(format!("No such topic as {topic}")));
        }
        Outcome::UnknownPartition => {
            let c = code(ResponseError::UnknownTopicOrPartition);
            return (c, Some(format!("No such partition as {topic}-{partition}")));
        }
    };
    (code, message.map(str::to_string))
}
