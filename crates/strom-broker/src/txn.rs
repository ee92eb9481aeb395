//! The transaction coordinator (issue 12, exactly-once). So far its core: the state of one
//! transactional id and the decisions on it (`state.rs`), pure and model-tested, and its
//! records in `__transaction_state` (`log.rs`, Kafka's format). The log, the requests and the
//! markers build on them.

pub mod coordinator;
pub mod join;
pub mod log;
pub mod markers;
pub mod state;
