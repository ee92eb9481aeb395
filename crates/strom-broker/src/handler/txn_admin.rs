//! What `kafka-transactions` and admin clients ask about transactions:
//! DescribeTransactions and ListTransactions (of the transactional ids this broker
//! coordinates) and DescribeProducers (the producers a partition leader knows, with the
//! offset their open transaction started at).

use crate::broker::Broker;
use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn describe(
    broker: &Arc<Broker>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut r = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let mut s = TransactionState::default();
        s.transaction_state = StrBytes::from_static_str("");
        s.producer_id = ProducerId(-1);
        s.producer_epoch = -1;
        s.transaction_start_time_ms = -1;
        let found = if id.0.is_empty() {
            Err(code(ResponseError::InvalidRequest))
        } else {
            broker.check_txn_coordinator(id.0.as_str()).and_then(|_| {
                broker
                    .txns
                    .get(id.0.as_str())
                    .ok_or(code(ResponseError::TransactionalIdNotFound))
            })
        };
        match found {
            Err(c) => s.error_code = c,
            Ok(m) => {
                s.transaction_state = StrBytes::from_static_str(m.state.name());
                s.transaction_timeout_ms = m.timeout_ms;
                s.transaction_start_time_ms = m.start_ms;
                s.producer_id = ProducerId(m.producer_id);
                s.producer_epoch = m.producer_epoch;
                let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (t, p) in &m.partitions {
                    topics.entry(t).or_default().push(*p);
                }
                s.topics = topics
                    .into_iter()
                    .map(|(t, ps)| {
                        let mut td = TopicData::default();
                        td.topic = TopicName(StrBytes::from_string(t.to_string()));
                        td.partitions = ps;
                        td
                    })
                    .collect();
            }
        }
        s.transactional_id = id;
        r.transaction_states.push(s);
    }
    r
}

/// ListTransactions: filtered by state names (unknown ones are echoed back), producer ids,
/// (v1) by running longer than the duration filter and (v2, KIP-1152) by a regular
/// expression the whole transactional id matches, as Java's `Matcher.matches`; a pattern
/// that does not compile is INVALID_REGULAR_EXPRESSION.
pub fn list(broker: &Arc<Broker>, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let mut r = ListTransactionsResponse::default();
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(_) => {
                r.error_code = crate::group::consumer::INVALID_REGULAR_EXPRESSION;
                return r;
            }
        },
    };
    use crate::txn::state::TxnState;
    let known = |name: &str| {
        TxnState::ALL.iter().any(|s| s.name() == name) || TxnState::OTHER_NAMES.contains(&name)
    };
    r.unknown_state_filters = req
        .state_filters
        .iter()
        .filter(|s| !known(s.as_str()))
        .cloned()
        .collect();
    let loading = broker
        .meta
        .image()
        .topics
        .get(crate::txn::coordinator::TXN_TOPIC)
        .is_some_and(|t| {
            t.partitions.iter().any(|(i, p)| {
                p.leader == broker.node_id
                    && broker.txns.loaded.epoch_of(*i) != Some(p.leader_epoch)
            })
        });
    if loading {
        r.error_code = code(ResponseError::CoordinatorLoadInProgress);
        return r;
    }
    let now = crate::metadata_store::now_ms();
    for (id, m) in broker.txns.all() {
        let state_ok = req.state_filters.is_empty()
            || req
                .state_filters
                .iter()
                .any(|s| s.as_str() == m.state.name());
        let pid_ok = req.producer_id_filters.is_empty()
            || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id);
        let duration_ok = req.duration_filter < 0 || now - m.start_ms > req.duration_filter;
        let id_ok = pattern.as_ref().is_none_or(|re| re.is_match(&id));
        if state_ok && pid_ok && duration_ok && id_ok && broker.check_txn_coordinator(&id).is_ok() {
            let mut t = ListedState::default();
            t.transactional_id = TransactionalId(StrBytes::from_string(id));
            t.producer_id = ProducerId(m.producer_id);
            t.transaction_state = StrBytes::from_static_str(m.state.name());
            r.transaction_states.push(t);
        }
    }
    r
}

pub fn describe_producers(
    broker: &Arc<Broker>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut r = DescribeProducersResponse::default();
    for t in req.topics {
        let mut tr = TopicResponse::default();
        for p in t.partition_indexes {
            let mut pr = PartitionResponse::default();
            pr.partition_index = p;
            match broker.replicas.get(t.name.0.as_str(), p) {
                None => {
                    pr.error_code = crate::handler::steer::not_hosted(
                        broker,
                        t.name.0.as_str(),
                        uuid::Uuid::nil(),
                        p,
                    )
                }
                Some(part) if !part.is_leader() => {
                    pr.error_code = code(ResponseError::NotLeaderOrFollower)
                }
                Some(part) => {
                    pr.active_producers = part
                        .active_producers()
                        .into_iter()
                        .map(|a| {
                            let mut s = ProducerState::default();
                            s.producer_id = ProducerId(a.producer_id);
                            s.producer_epoch = i32::from(a.epoch);
                            s.last_sequence = a.last_sequence;
                            s.last_timestamp = a.last_timestamp;
                            s.coordinator_epoch = a.coordinator_epoch;
                            s.current_txn_start_offset = a.txn_start_offset;
                            s
                        })
                        .collect();
                }
            }
            tr.partitions.push(pr);
        }
        tr.name = t.name;
        r.topics.push(tr);
    }
    r
}
