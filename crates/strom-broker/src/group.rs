//! The group coordinator: consumer groups with the classic rebalance protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) and committed offsets kept in `__consumer_offsets`.
//!
//! State machines without I/O or a clock of their own (requests and ticks go in, replies
//! come out, waiting members answered through their channels):
//! - `classic.rs`: one classic group (JoinGroup, SyncGroup, Heartbeat, LeaveGroup);
//! - `consumer.rs`: one KIP-848 consumer-protocol group (ConsumerGroupHeartbeat), which
//!   computes targets with `assignor.rs` (the `uniform` and `range` server assignors);
//! - `state.rs`: the coordinator over both, by group id, and the conversions between them.
//!
//! `classic.rs`, `consumer.rs` and `assignor.rs` do not import one another, except that the
//! consumer protocol calls its assignors. Around them: `offsets.rs` (the records in
//! `__consumer_offsets`), `persist.rs` (writing them, expiry, the ticking tasks), `loading.rs`
//! (the groups of the partitions this broker leads, loaded and unloaded as leadership
//! moves; NOT_COORDINATOR elsewhere), `codes.rs` (the error codes).

pub mod assignor;
pub mod classic;
pub mod codes;
pub mod consumer;
pub mod loading;
pub mod offsets;
pub mod persist;
pub mod state;

pub use state::{GroupCoordinator, JoinReply, SyncReply};
