//! Storage for Strom's Raft metadata quorum on openraft 0.9 (`storage-v2` traits).
//!
//! - [`LogStore`]: the raft log as Kafka record batches in the strom-log partition
//!   `__cluster_metadata-0` (offset = raft index, partition leader epoch = term), the vote in
//!   `quorum-state` beside it.
//! - [`StateMachineStore`]: the application's [`Applier`] (the broker's metadata image) with
//!   durable snapshots `<end offset>-<epoch>.checkpoint` in the same directory.
//! - [`TypeConfig`]: node ids `u64`, nodes [`QuorumNode`], requests [`Payload`].

pub mod codec;
pub mod error;
pub mod log_store;
pub mod network;
pub mod quorum_state;
pub mod snapshot;
pub mod state_machine;
pub mod types;
pub mod wire;

pub use error::StoreError;
pub use log_store::{metadata_log_config, open_metadata_log, LogReader, LogStore, METADATA_TOPIC};
pub use network::{PeerClient, TcpNetwork};
pub use quorum_state::{QuorumState, QUORUM_STATE_FILE};
pub use state_machine::{Applier, SmHandle, SnapshotBuilder, StateMachineStore};
pub use types::{Payload, QuorumNode, TypeConfig};
