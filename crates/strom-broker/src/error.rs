//! Kafka error codes, mapped from Strom's errors in this one place.

use kafka_protocol::error::ResponseError;
use strom_log::LogError;
use strom_meta::ApiError;

pub type Code = i16;

pub const NONE: Code = 0;

/// The code of a Kafka error.
pub const fn code(e: ResponseError) -> Code {
    e.code()
}

/// What a client is told when a log operation fails.
pub fn log_error(e: &LogError) -> Code {
    match e {
        LogError::InvalidBatch(e) => batch_error(e),
        LogError::BatchTooLarge { .. } => code(ResponseError::MessageTooLarge),
        LogError::OffsetOutOfRange { .. } => code(ResponseError::OffsetOutOfRange),
        LogError::NotFound(_) => code(ResponseError::UnknownTopicOrPartition),
        LogError::InvalidConfig(_) => code(ResponseError::InvalidConfig),
        LogError::InvalidName(_) => code(ResponseError::InvalidTopicException),
        LogError::AlreadyExists(_) => code(ResponseError::TopicAlreadyExists),
        // Out of descriptors or a segment deleted under a read: this call only, retriable.
        LogError::Exhausted { .. } | LogError::SegmentGone { .. } => {
            code(ResponseError::KafkaStorageError)
        }
        LogError::Offline { .. }
        | LogError::Io { .. }
        | LogError::Corrupt { .. }
        | LogError::Uncleanable { .. }
        | LogError::NotContiguous { .. }
        | LogError::Closed => code(ResponseError::KafkaStorageError),
    }
}

/// What a producer is told of a batch that does not parse, as Kafka tells it: a checksum
/// that does not match is CORRUPT_MESSAGE; a batch that is malformed (truncated, an old
/// message format, bad lengths or fields) is INVALID_RECORD.
pub fn batch_error(e: &strom_proto::BatchError) -> Code {
    match e {
        strom_proto::BatchError::CrcMismatch { .. } => code(ResponseError::CorruptMessage),
        _ => code(ResponseError::InvalidRecord),
    }
}

/// What a client is told when the controller refuses an admin request.
pub fn api_error(e: &ApiError) -> Code {
    match e {
        ApiError::InvalidTopic(_) => code(ResponseError::InvalidTopicException),
        ApiError::TopicAlreadyExists(_) => code(ResponseError::TopicAlreadyExists),
        ApiError::UnknownTopic(_) => code(ResponseError::UnknownTopicOrPartition),
        ApiError::InvalidPartitions(_) => code(ResponseError::InvalidPartitions),
        ApiError::InvalidReplicationFactor(_) => code(ResponseError::InvalidReplicationFactor),
        ApiError::InvalidReplicaAssignment(_) => code(ResponseError::InvalidReplicaAssignment),
        ApiError::InvalidConfig(_) => code(ResponseError::InvalidConfig),
        ApiError::InvalidRequest(_) => code(ResponseError::InvalidRequest),
        ApiError::TopicDeletionDisabled => code(ResponseError::TopicDeletionDisabled),
        ApiError::FencedLeaderEpoch(_) => code(ResponseError::FencedLeaderEpoch),
        ApiError::NotLeaderOrFollower(_) => code(ResponseError::NotLeaderOrFollower),
        ApiError::IneligibleReplica(_) => code(ResponseError::IneligibleReplica),
        ApiError::InvalidUpdateVersion(_) => code(ResponseError::InvalidUpdateVersion),
        ApiError::NoReassignmentInProgress(_) => code(ResponseError::NoReassignmentInProgress),
        ApiError::PolicyViolation(_) => code(ResponseError::PolicyViolation),
    }
}

/// Failures inside the broker that are not a client's fault.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("metadata log is inconsistent: {0}")]
    Metadata(String),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// This broker could not bring its partitions in line with a committed change (out of
    /// descriptors, say); it tries again by itself.
    #[error("applying the change on this broker failed (retried): {0}")]
    Reconcile(String),
    /// The metadata quorum has no leader this node can reach.
    #[error("{0}")]
    NoQuorum(String),
}
