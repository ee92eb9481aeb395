//! The crate's own error, and its conversion to openraft's `StorageError` (which names what
//! was being done: reading logs, writing the vote, ...).

use crate::types::StorageError;
use openraft::{ErrorSubject, ErrorVerb, StorageIOError};
use std::path::{Path, PathBuf};

/// What went wrong in the quorum's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The underlying partition log failed (I/O, offline dir, out of range, ...).
    #[error("metadata log: {0}")]
    Log(#[from] strom_log::LogError),
    /// A file operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes do not decode: a damaged file or batch.
    #[error("{} is damaged: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// A value could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The log is not in the shape the raft log store needs.
    #[error("raft log invariant broken: {0}")]
    Invariant(String),
    /// The application refused an entry or a snapshot.
    #[error("state machine: {0}")]
    Apply(String),
}

/// Attaches a path to an I/O error.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StoreError {
    /// As openraft's error, saying what was being done to what.
    pub fn into_storage(self, subject: ErrorSubject<u64>, verb: ErrorVerb) -> StorageError {
        StorageIOError::new(subject, verb, &self).into()
    }

    /// As an error reading the log.
    pub fn read_logs(self) -> StorageError {
        self.into_storage(ErrorSubject::Logs, ErrorVerb::Read)
    }

    /// As an error writing the log.
    pub fn write_logs(self) -> StorageError {
        self.into_storage(ErrorSubject::Logs, ErrorVerb::Write)
    }

    /// As an error writing the vote.
    pub fn write_vote(self) -> StorageError {
        self.into_storage(ErrorSubject::Vote, ErrorVerb::Write)
    }

    /// As an error of the state machine.
    pub fn state_machine(self, verb: ErrorVerb) -> StorageError {
        self.into_storage(ErrorSubject::StateMachine, verb)
    }

    /// As an error about snapshots.
    pub fn snapshot(self, verb: ErrorVerb) -> StorageError {
        self.into_storage(ErrorSubject::Snapshot(None), verb)
    }
}
