//! The quorum's messages between nodes and their framing. Calls travel as Kafka-framed
//! requests with a private API key (`RPC_API_KEY`, far above Kafka's), so they share a
//! listener with Kafka's APIs: `[size][api key][api version][correlation id][client id]`
//! then the JSON body; the response is `[size][correlation id]` then the JSON reply.

use crate::types::TypeConfig;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

/// The API key of Strom's node-to-node calls.
pub const RPC_API_KEY: i16 = 32_123;
/// The largest reply a node reads (a snapshot chunk or a batch of entries is far smaller).
pub const REPLY_BYTES_MAX: usize = 64 << 20;

/// `Rpc::to` for a call to whichever node listens at an address (a dynamic quorum's
/// bootstrap servers are known by address only); served for the broker's calls, never for
/// openraft's.
pub const ANY_NODE: u64 = u64::MAX;

/// A call to node `to` (and, when the caller knows it, to its incarnation `to_dir`: the
/// directory id the quorum's membership records for it).
#[derive(Debug, Serialize, Deserialize)]
pub struct Rpc {
    pub to: u64,
    #[serde(default)]
    pub to_dir: Option<String>,
    pub call: RpcCall,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcCall {
    Raft(RaftCall),
    /// The application's own calls (the broker's controller requests), as JSON.
    App(serde_json::Value),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcReply {
    Raft(RaftReply),
    App(serde_json::Value),
    /// The call could not be served here (another node id, no quorum here, a bad body).
    Refused(String),
}

/// openraft's three RPCs.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftCall {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
}

/// Answers one of openraft's RPCs with the local node.
pub async fn answer(raft: &crate::types::Raft, call: RaftCall) -> RaftReply {
    match call {
        RaftCall::AppendEntries(r) => RaftReply::AppendEntries(raft.append_entries(r).await),
        RaftCall::Vote(r) => RaftReply::Vote(raft.vote(r).await),
        RaftCall::InstallSnapshot(r) => RaftReply::InstallSnapshot(raft.install_snapshot(r).await),
    }
}

/// A request frame (without the size prefix) for `body`.
pub fn request_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + body.len());
    f.extend_from_slice(&((10 + body.len()) as i32).to_be_bytes());
    f.extend_from_slice(&RPC_API_KEY.to_be_bytes());
    f.extend_from_slice(&0i16.to_be_bytes());
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Whether a request frame (after its size) is one of these calls.
pub fn is_rpc(frame: &[u8]) -> bool {
    frame.get(..2) == Some(&RPC_API_KEY.to_be_bytes()[..])
}

/// The correlation id and body of a request frame (after its size), if it is well formed.
pub fn parse_request(frame: &[u8]) -> Option<(i32, &[u8])> {
    let correlation = i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    let client_len = i16::from_be_bytes(frame.get(8..10)?.try_into().ok()?);
    let body_at = 10 + usize::try_from(client_len).unwrap_or(0);
    Some((correlation, frame.get(body_at..)?))
}

/// A response frame, size prefix included.
pub fn response_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(body);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let f = request_frame(7, b"{}");
        let size = i32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(size, f.len() - 4);
        assert!(is_rpc(&f[4..]));
        assert_eq!(parse_request(&f[4..]), Some((7, &b"{}"[..])));
        assert_eq!(parse_request(&f[4..9]), None);
        assert!(!is_rpc(&[0, 18]));
    }
}
