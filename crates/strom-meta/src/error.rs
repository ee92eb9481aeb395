//! Errors of the metadata state machine and the controller.

/// A record that cannot apply to the image: the log is inconsistent (a bug or corruption).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata record cannot apply: {0}")]
pub struct MetaError(pub String);

/// Why the controller refused an admin request; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidTopic(String),
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// Kafka's default message for UNKNOWN_TOPIC_OR_PARTITION (the name is for logs).
    #[error("This server does not host this topic-partition.")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidUpdateVersion(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    TopicDeletionDisabled,
    /// An ISR change from a leader epoch that is not the partition's.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// An ISR change asked by a broker that does not lead the partition.
    #[error("{0}")]
    NotLeaderOrFollower(String),
    /// An ISR change that adds a fenced, shutting-down or restarted replica.
    #[error("{0}")]
    IneligibleReplica(String),
    /// Cancelling a reassignment of a partition that has none running.
    #[error("{0}")]
    NoReassignmentInProgress(String),
    /// An operation too large for one batch of the metadata log.
    #[error("{0}")]
    PolicyViolation(String),
}
