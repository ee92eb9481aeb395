//! Authorized operations as Kafka reports them without an authorizer: Strom has none, so
//! every client may do everything a resource supports (bit n set = ACL operation n allowed).

/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC_OPERATIONS: i32 = 0xDF8;
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const CLUSTER_OPERATIONS: i32 = 0x1FA0;
/// READ, DELETE, DESCRIBE.
pub const GROUP_OPERATIONS: i32 = 0x148;
/// "Not asked for" in a response.
pub const OMITTED: i32 = i32::MIN;

/// `ops` when the client asked for authorized operations, the "omitted" marker otherwise.
pub fn if_asked(asked: bool, ops: i32) -> i32 {
    if asked {
        ops
    } else {
        OMITTED
    }
}
