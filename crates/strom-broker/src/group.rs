//! The group coordinator: consumer groups with the classic rebalance protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) and committed offsets kept in `__consumer_offsets`.
//!
//! `state.rs` is the state machine, with no I/O and no clock of its own: requests and ticks
//! go in, replies come out through the waiters' channels. `offsets.rs` persists commits.

pub mod offsets;
pub mod state;

pub use state::{GroupCoordinator, JoinReply, SyncReply};
