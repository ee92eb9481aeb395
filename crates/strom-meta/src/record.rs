//! The records of the metadata log. Each is stored as one JSON record value in a batch of the
//! metadata partition; JSON keeps the log readable with any Kafka consumer.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a config record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic,
    Broker,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        /// Its log dirs' directory ids (the first holds the metadata log).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log_dirs: Vec<Uuid>,
        /// The broker process that registered (Kafka's incarnation id): a new one starts a
        /// new broker epoch (KIP-903).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incarnation: Option<Uuid>,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        /// While a reassignment runs: the replicas it adds and those it removes (`replicas`
        /// holds both; the target is `replicas` less `removing_replicas`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
        /// Out-of-sync replicas still holding every committed record (KIP-966, `elr.rs`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        eligible_leader_replicas: Vec<i32>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Sets (`Some`) or removes (`None`) one config key of a topic or broker.
    Config {
        resource: ConfigResource,
        name: String,
        key: String,
        value: Option<String>,
    },
    /// A feature's finalized level (KIP-584; Kafka's `FeatureLevelRecord`).
    FeatureLevel {
        name: String,
        level: i16,
    },
    /// A block of producer ids handed to a broker: ids below `next_producer_id` are taken.
    ProducerIds {
        node_id: i32,
        next_producer_id: i64,
    },
    /// The cluster's id, set once by the first broker to register (Kafka's comes from
    /// `kafka-storage format`; Strom has no format step). Every node's `meta.properties`
    /// must carry it.
    ClusterId {
        cluster_id: String,
    },
    /// A broker missed its session (or shut down) and is fenced: clients are not told of it
    /// and it leads nothing; `false` when it is back (Kafka's `FenceBrokerRecord` /
    /// `UnfenceBrokerRecord`).
    BrokerFenced {
        node_id: i32,
        fenced: bool,
    },
}

impl MetadataRecord {
    /// A new partition whose replicas are all in sync, the first leading at epoch 0, no
    /// reassignment running.
    pub fn new_partition(topic_id: Uuid, partition: i32, replicas: &[i32]) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            eligible_leader_replicas: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing these plain types cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = MetadataRecord::Config {
            resource: ConfigResource::Topic,
            name: "t".into(),
            key: "retention.ms".into(),
            value: Some("1000".into()),
        };
        assert_eq!(MetadataRecord::decode(&r.encode()).unwrap(), r);
        assert!(MetadataRecord::decode(b"{").is_err());
    }
}
