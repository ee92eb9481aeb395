//! The transaction coordinator (issue 12, exactly-once). So far its core: the state of one
//! transactional id and the decisions on it (`state.rs`), pure and model-tested. The
//! `__transaction_state` log, the requests and the markers build on it.

pub mod state;
