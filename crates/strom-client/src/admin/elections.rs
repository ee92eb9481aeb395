//! Leader elections through the admin API (ElectLeaders), as Kafka's
//! `Admin.electLeaders` / `kafka-leader-election`.

use super::{msg, name, Admin};
use crate::error::{check, Result};
use kafka_protocol::messages::elect_leaders_request::{ElectLeadersRequest, TopicPartitions};

/// Kafka's `ElectionType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    Preferred = 0,
    Unclean = 1,
}

/// One partition's outcome: its error code (0: elected) and message.
pub type ElectionResult = ((String, i32), i16, Option<String>);

impl Admin {
    /// Elects leaders for `partitions` (None: every partition; the answer then names only
    /// the partitions elected).
    pub async fn elect_leaders(
        &self,
        kind: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<ElectionResult>> {
        let mut req = ElectLeadersRequest::default();
        req.election_type = kind as i8;
        req.timeout_ms = 30_000;
        req.topic_partitions = partitions.map(|ps| {
            let mut out: Vec<TopicPartitions> = Vec::new();
            for (topic, p) in ps {
                match out.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                    Some(t) => t.partitions.push(*p),
                    None => {
                        let mut t = TopicPartitions::default();
                        t.topic = name(topic);
                        t.partitions.push(*p);
                        out.push(t);
                    }
                }
            }
            out
        });
        let resp = self.controller_call("ElectLeaders", &req).await?;
        check(resp.error_code, || "ElectLeaders".into(), None)?;
        Ok(resp
            .replica_election_results
            .iter()
            .flat_map(|r| {
                r.partition_result.iter().map(move |p| {
                    (
                        (r.topic.0.as_str().to_string(), p.partition_id),
                        p.error_code,
                        msg(&p.error_message),
                    )
                })
            })
            .collect())
    }
}
