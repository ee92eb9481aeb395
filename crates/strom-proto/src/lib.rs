//! The I/O-free pieces that Strom's log, broker and client share beyond the `kafka-protocol`
//! crate: record-batch header access and validation, building batches, compression codecs and
//! Kafka's murmur2 key partitioning.
//!
//! Architecture invariant: this crate does no I/O and depends on no other Strom crate.

#![deny(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod batch;
pub mod builder;
pub mod compression;
pub mod control;
pub mod error;
pub mod murmur2;
pub mod records;
pub mod varint;

pub use batch::{BatchHeader, Compression, TimestampType};
pub use builder::BatchBuilder;
pub use error::BatchError;
