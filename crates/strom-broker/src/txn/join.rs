//! A partition leader asks a transaction's coordinator about a partition a transactional
//! produce opened the transaction in (KIP-890): protocol v2 producers (Produce v12+) never
//! send AddPartitionsToTxn, so the leader adds the partition; for v1 producers it verifies
//! the partition was added. The coordinator is this broker (a direct call) or another
//! (AddPartitionsToTxn v5, a broker's request). Its answer becomes the produce's, mapped as
//! Kafka's `AddPartitionsToTxnManager` maps it.

use super::state::{self, TxnPartition, INVALID_PRODUCER_ID_MAPPING};
use crate::broker::Broker;
use crate::error::{self, Code};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a leader keeps asking while the previous transaction of the producer is still
/// completing (CONCURRENT_TRANSACTIONS): its markers are being written.
const CONCURRENT_RETRY_FOR: Duration = Duration::from_secs(5);
const CONCURRENT_RETRY_EVERY: Duration = Duration::from_millis(20);

fn code(e: ResponseError) -> Code {
    error::code(e)
}

impl Broker {
    /// Adds (or with `verify_only` checks) partitions of one transaction: each partition's code.
    pub async fn add_or_verify(
        self: &Arc<Self>,
        id: &str,
        producer: (i64, i16),
        partitions: &[TxnPartition],
        (verify_only, client_version): (bool, i16),
    ) -> Vec<Code> {
        let image = self.meta.image();
        let known = |(t, p): &TxnPartition| {
            image
                .topics
                .get(t)
                .is_some_and(|x| x.partitions.contains_key(p))
        };
        if !partitions.iter().all(known) {
            let unknown = code(ResponseError::UnknownTopicOrPartition);
            let not_attempted = code(ResponseError::OperationNotAttempted);
            return partitions
                .iter()
                .map(|p| if known(p) { not_attempted } else { unknown })
                .collect();
        }
        if verify_only {
            let checked = self.check_txn_coordinator(id).and_then(|_| {
                let m = self.txns.get(id).ok_or(INVALID_PRODUCER_ID_MAPPING)?;
                state::verify_partitions(&m, producer, partitions)
            });
            return checked.unwrap_or_else(|c| vec![c; partitions.len()]);
        }
        let now = crate::metadata_store::now_ms();
        let added = self
            .txn_transition_patient(id, |m, _| {
                let m = m.ok_or(INVALID_PRODUCER_ID_MAPPING)?;
                state::add_partitions(m, producer, partitions, client_version, now)
            })
            .await;
        vec![added.err().unwrap_or(0); partitions.len()]
    }

    /// The coordinator's answer for partitions a produce of `version` opened `id`'s
    /// transaction in: per partition 0, or the produce's error.
    pub async fn join_txn(
        self: &Arc<Self>,
        id: &str,
        producer: (i64, i16),
        partitions: &[TxnPartition],
        version: i16,
    ) -> Vec<Code> {
        let codes = self.ask_txn(id, producer, partitions, version > 11).await;
        codes
            .into_iter()
            .map(|c| produce_error(c, version))
            .collect()
    }

    /// The coordinator's answer, as it gave it: protocol v2 adds the partitions, v1
    /// verifies them; CONCURRENT_TRANSACTIONS (the previous transaction still completing)
    /// is asked again for a while.
    pub async fn ask_txn(
        self: &Arc<Self>,
        id: &str,
        producer: (i64, i16),
        partitions: &[TxnPartition],
        v2: bool,
    ) -> Vec<Code> {
        tracing::debug!(
            transactional_id = id,
            v2,
            ?partitions,
            "partitions joining a transaction"
        );
        let deadline = tokio::time::Instant::now() + CONCURRENT_RETRY_FOR;
        loop {
            let codes = match self.txn_coordinator(&self.meta.image(), id) {
                Some((node, _, _)) if node == self.node_id => {
                    self.add_or_verify(id, producer, partitions, (!v2, 2)).await
                }
                Some((node, _, _)) => {
                    self.ask_coordinator(node, id, producer, partitions, !v2)
                        .await
                }
                None => vec![code(ResponseError::CoordinatorNotAvailable); partitions.len()],
            };
            let concurrent = codes.contains(&state::CONCURRENT_TRANSACTIONS);
            if !concurrent || tokio::time::Instant::now() >= deadline {
                return codes;
            }
            tokio::time::sleep(CONCURRENT_RETRY_EVERY).await;
        }
    }

    /// AddPartitionsToTxn v5 to the coordinator on another broker.
    async fn ask_coordinator(
        &self,
        node: i32,
        id: &str,
        producer: (i64, i16),
        partitions: &[TxnPartition],
        verify_only: bool,
    ) -> Vec<Code> {
        let failed = |c| vec![c; partitions.len()];
        let Some(conn) = self.txn_peer(node).await else {
            return failed(code(ResponseError::NetworkException));
        };
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(*p);
        }
        let mut t = AddPartitionsToTxnTransaction::default();
        t.transactional_id = TransactionalId(StrBytes::from_string(id.to_string()));
        t.producer_id = ProducerId(producer.0);
        t.producer_epoch = producer.1;
        t.verify_only = verify_only;
        t.topics = topics
            .into_iter()
            .map(|(name, ps)| {
                let mut at = AddPartitionsToTxnTopic::default();
                at.name = TopicName(StrBytes::from_string(name.to_string()));
                at.partitions = ps;
                at
            })
            .collect();
        let mut req = AddPartitionsToTxnRequest::default();
        req.transactions = vec![t];
        let response = match conn.call_at(&req, 5).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(node, error = %e, "AddPartitionsToTxn to the coordinator failed");
                self.drop_txn_peer(node).await;
                return failed(code(ResponseError::NetworkException));
            }
        };
        if response.error_code != 0 {
            return failed(response.error_code);
        }
        let results: Vec<(String, i32, Code)> = response
            .results_by_transaction
            .into_iter()
            .flat_map(|t| t.topic_results)
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.results_by_partition
                    .into_iter()
                    .map(move |p| (name.clone(), p.partition_index, p.partition_error_code))
            })
            .collect();
        partitions
            .iter()
            .map(|(t, p)| {
                results
                    .iter()
                    .find(|(rt, rp, _)| rt == t && rp == p)
                    .map_or(code(ResponseError::UnknownServerError), |r| r.2)
            })
            .collect()
    }
}

/// The coordinator's answer as a produce's error (Kafka's mapping).
fn produce_error(c: Code, version: i16) -> Code {
    use ResponseError::*;
    let is = |e: ResponseError| c == code(e);
    if c == 0 {
        0
    } else if c == state::PRODUCER_FENCED {
        code(InvalidProducerEpoch)
    } else if c == state::TRANSACTION_ABORTABLE && version < 11 {
        state::INVALID_TXN_STATE
    } else if is(NetworkException)
        || is(CoordinatorLoadInProgress)
        || is(CoordinatorNotAvailable)
        || is(NotCoordinator)
        || (c == state::CONCURRENT_TRANSACTIONS && version <= 11)
    {
        code(NotEnoughReplicas)
    } else {
        c
    }
}
