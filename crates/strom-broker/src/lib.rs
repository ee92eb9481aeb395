//! Strom's Kafka-protocol broker: the network server, request handlers, and the services they
//! call (`ReplicaManager` for partitions, `MetadataStore` for cluster metadata).
//!
//! Architecture invariants: handlers are thin — decode, call a service, encode; codecs come
//! from the `kafka-protocol` crate, except the splice of file slices into Fetch responses
//! (`response.rs`), tested byte-for-byte against the crate's encoding.

pub mod authz;
pub mod broker;
pub mod config;
pub mod connections;
pub mod console;
pub mod error;
pub mod fetch_session;
pub mod group;
pub mod handler;
pub mod http;
pub mod isr;
pub mod kafka_config_keys;
pub mod limits;
pub mod membership;
pub mod meta_properties;
pub mod metadata_store;
pub mod metrics;
pub mod partition;
pub mod producer_snapshot;
pub mod producer_state;
pub mod quorum_server;
pub mod reconciler;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replication_quota;
pub mod response;
pub mod server;
pub mod txn;

pub use broker::{Broker, RunningBroker};
pub use config::{parse_properties, BrokerConfig, ConfigError};
