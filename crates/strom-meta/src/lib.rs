//! Cluster metadata — brokers, topics, partitions, configs, producer-id blocks — as a log of
//! `MetadataRecord`s applied to a `MetadataImage`.
//!
//! Architecture invariant: pure state. `MetadataImage::apply` is deterministic and does no
//! I/O; `controller` turns admin requests into records by reading an image. Where the record
//! log is stored (today a `strom-log` partition, `__cluster_metadata-0`; later openraft's log)
//! is the broker's business.

pub mod controller;
pub mod delta;
pub mod elections;
pub mod elr;
pub mod error;
pub mod features;
pub mod image;
pub mod isr;
pub mod membership;
pub mod placement;
pub mod reassignment;
pub mod record;
#[cfg(test)]
mod testing;
pub mod topic_config;

pub use delta::MetadataDelta;
pub use error::{ApiError, MetaError};
pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use record::{ConfigResource, MetadataRecord};
