//! Transactions through the admin API, as Kafka's `Admin.listTransactions`,
//! `describeTransactions`, `describeProducers` and `abortTransaction` (what the
//! `kafka-transactions` tool calls).

use super::{name, sb, Admin};
use crate::error::{check, Error, Result};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TransactionalId, WriteTxnMarkersRequest,
};

/// A transaction as ListTransactions reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
    /// The broker that coordinates it.
    pub coordinator: i32,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the open transaction started (-1: none).
    pub start_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

/// A producer a partition's leader knows (DescribeProducers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp_ms: i64,
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction there (-1: none).
    pub txn_start_offset: i64,
}

impl Admin {
    /// Every transaction of every broker, in the states named (all when empty), and with a
    /// `pattern`, only transactional ids the regular expression matches whole.
    pub async fn list_transactions(
        &self,
        states: &[String],
        pattern: Option<&str>,
    ) -> Result<Vec<TransactionListing>> {
        let md = self.metadata(Some(&[])).await?;
        let mut out = Vec::new();
        for (id, b) in &md.brokers {
            let conn = self.client.conn_to(&b.addr()).await?;
            let mut req = ListTransactionsRequest::default();
            req.state_filters = states.iter().map(|s| sb(s)).collect();
            req.duration_filter = -1;
            req.transactional_id_pattern = pattern.map(sb);
            let resp = conn.call(&req).await?;
            check(
                resp.error_code,
                || match pattern {
                    Some(p) => format!("listing transactions matching {p:?} on broker {id}"),
                    None => format!("listing transactions on broker {id}"),
                },
                None,
            )?;
            out.extend(
                resp.transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id.0.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                        coordinator: *id,
                    }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// One transactional id, asked of its coordinator.
    pub async fn describe_transaction(&self, id: &str) -> Result<TransactionDescription> {
        let s =
            self.client
                .retry("DescribeTransactions", || async {
                    let conn = self.client.coordinator(id, 1).await?;
                    let mut req = DescribeTransactionsRequest::default();
                    req.transactional_ids = vec![TransactionalId(sb(id))];
                    let resp = conn.call(&req).await?;
                    let s = resp.transaction_states.into_iter().next().ok_or_else(|| {
                        Error::Protocol("empty DescribeTransactions response".into())
                    })?;
                    check(
                        s.error_code,
                        || format!("describing transaction {id}"),
                        None,
                    )?;
                    Ok(s)
                })
                .await?;
        Ok(TransactionDescription {
            transactional_id: id.to_string(),
            state: s.transaction_state.to_string(),
            producer_id: s.producer_id.0,
            producer_epoch: s.producer_epoch,
            timeout_ms: s.transaction_timeout_ms,
            start_ms: s.transaction_start_time_ms,
            partitions: s
                .topics
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.0.to_string();
                    t.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect(),
        })
    }

    /// The producers the leader of `topic`-`partition` knows.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerDescription>> {
        let resp = self
            .client
            .retry("DescribeProducers", || async {
                let conn = self.client.leader_conn(topic, partition).await?;
                let mut t = TopicRequest::default();
                t.name = name(topic);
                t.partition_indexes = vec![partition];
                let mut req = DescribeProducersRequest::default();
                req.topics = vec![t];
                let resp = conn.call(&req).await?;
                let p = resp
                    .topics
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .next()
                    .ok_or_else(|| Error::Protocol("empty DescribeProducers response".into()))?;
                if p.error_code != 0 {
                    self.client.invalidate(topic);
                }
                check(p.error_code, || format!("{topic}-{partition}"), None)?;
                Ok(p.active_producers)
            })
            .await?;
        Ok(resp
            .into_iter()
            .map(|p| ProducerDescription {
                producer_id: p.producer_id.0,
                producer_epoch: p.producer_epoch,
                last_sequence: p.last_sequence,
                last_timestamp_ms: p.last_timestamp,
                coordinator_epoch: p.coordinator_epoch,
                txn_start_offset: p.current_txn_start_offset,
            })
            .collect())
    }

    /// Aborts a producer's open transaction in one partition (a hanging transaction its
    /// coordinator no longer knows): an abort marker written by the partition's leader, as
    /// Kafka's `Admin.abortTransaction`.
    pub async fn abort_transaction(
        &self,
        (topic, partition): (&str, i32),
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<()> {
        let mut m = WritableTxnMarker::default();
        m.producer_id = ProducerId(producer_id);
        m.producer_epoch = producer_epoch;
        m.transaction_result = false;
        m.coordinator_epoch = coordinator_epoch;
        let mut t = WritableTxnMarkerTopic::default();
        t.name = name(topic);
        t.partition_indexes = vec![partition];
        m.topics = vec![t];
        let mut req = WriteTxnMarkersRequest::default();
        req.markers = vec![m];
        self.client
            .retry("WriteTxnMarkers", || async {
                let conn = self.client.leader_conn(topic, partition).await?;
                let resp = conn.call(&req).await?;
                let code = resp
                    .markers
                    .iter()
                    .flat_map(|m| &m.topics)
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code)
                    .next()
                    .unwrap_or(0);
                if code != 0 {
                    self.client.invalidate(topic);
                }
                check(code, || format!("aborting in {topic}-{partition}"), None)
            })
            .await
    }
}
