//! The group coordinator: consumer groups with the classic rebalance protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) and committed offsets kept in `__consumer_offsets`.
//!
//! `consumer.rs` is the KIP-848 consumer protocol (ConsumerGroupHeartbeat), whose groups
//! live beside the classic ones under the same coordinator.
//! `state.rs` is the classic state machine, with no I/O and no clock of its own: requests and ticks
//! go in, replies come out through the waiters' channels. `offsets.rs` persists commits.

pub mod consumer;
pub mod loading;
pub mod offsets;
pub mod state;

pub use state::{GroupCoordinator, JoinReply, SyncReply};
