//! WriteTxnMarkers: a transaction coordinator (this broker's or Kafka's `kafka-transactions
//! abort` through an admin client) has this leader write commit or abort markers
//! (`Broker::write_markers_here`), each answered once below the high watermark.

use crate::broker::Broker;
use crate::handler::{Pending, Reply};
use crate::txn::markers::MarkerSpec;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: WriteTxnMarkersRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut r = WriteTxnMarkersResponse::default();
        for m in req.markers {
            let spec = MarkerSpec {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                commit: m.transaction_result,
                coordinator_epoch: m.coordinator_epoch,
            };
            let tps: Vec<(String, i32)> = m
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(|p| (t.name.0.to_string(), *p))
                })
                .collect();
            let answers = broker.write_markers_here(spec, &tps).await;
            let mut mr = WritableTxnMarkerResult::default();
            mr.producer_id = m.producer_id;
            for t in m.topics {
                let mut tr = WritableTxnMarkerTopicResult::default();
                for p in t.partition_indexes {
                    let mut pr = WritableTxnMarkerPartitionResult::default();
                    pr.partition_index = p;
                    pr.error_code = answers
                        .iter()
                        .find(|((topic, i), _)| topic == t.name.0.as_str() && *i == p)
                        .map_or(0, |(_, c)| *c);
                    tr.partitions.push(pr);
                }
                tr.name = t.name;
                mr.topics.push(tr);
            }
            r.markers.push(mr);
        }
        Reply::Message(ResponseKind::WriteTxnMarkers(r))
    })
}
