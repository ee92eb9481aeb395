//! Strom's async Kafka client, for any Kafka-protocol cluster: connections with ApiVersions
//! negotiation, a metadata cache that follows leader changes and retries retriable errors, a
//! batching producer (linger, batch size, compression, acks, idempotence, murmur2 key
//! partitioning as the Java client does it), a consumer (fetch sessions, group membership,
//! commits) and an admin client. The `strom` CLI is built on it; the broker will use it to
//! replicate.
//!
//! Architecture invariant: no Strom server crate is a dependency; wire codecs come from the
//! `kafka-protocol` crate, record batches from `strom-proto`.
//!
//! ```no_run
//! # async fn demo() -> strom_client::Result<()> {
//! use strom_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};
//! let client = Client::connect(ClientConfig::new("localhost:9092")).await?;
//! let producer = Producer::new(client.clone(), ProducerConfig::default());
//! let ack = producer
//!     .send(ProducerRecord::new("orders", Some(b"id-1"), Some(b"{\"total\": 12}")))
//!     .await?;
//! let written = ack.await?;
//! println!("{}-{}@{}", written.topic, written.partition, written.offset);
//!
//! use strom_client::{Consumer, ConsumerConfig, OffsetReset};
//! let mut consumer = Consumer::new(
//!     client,
//!     ConsumerConfig {
//!         group_id: Some("billing".into()),
//!         auto_offset_reset: OffsetReset::Earliest,
//!         ..Default::default()
//!     },
//! );
//! consumer.subscribe(&["orders".to_string()])?;
//! for record in consumer.poll(std::time::Duration::from_secs(1)).await? {
//!     println!("{:?}", record.value);
//! }
//! consumer.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod client;
pub mod conn;
pub mod consumer;
pub mod error;
pub mod group;
pub mod limits;
pub mod producer;

pub use admin::{
    Admin, AlterOp, ClusterBroker, ClusterDescription, Move, MoveResult, NewTopic, OffsetSpec,
    QuorumDescription, QuorumReplica, Reassignment, ResourceType,
};
pub use client::{Client, ClientConfig, Metadata, PartitionInfo, TopicInfo};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use error::{Error, Result};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use strom_proto::Compression;
