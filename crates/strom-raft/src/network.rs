//! The quorum's network over TCP: `PeerClient` is one connection to a peer (one call at a
//! time; dropped and redialled after any error or timeout), `TcpNetwork` is openraft's
//! network factory over such clients, one per peer address.

use crate::types::{QuorumNode, TypeConfig};
use crate::wire::{self, RaftCall, RaftReply, Rpc, RpcCall, RpcReply};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection to a peer at `addr` (`host:port`).
#[derive(Debug)]
pub struct PeerClient {
    addr: String,
    conn: tokio::sync::Mutex<Option<TcpStream>>,
    next_correlation: AtomicI32,
}

impl PeerClient {
    pub fn new(addr: String) -> PeerClient {
        PeerClient {
            addr,
            conn: tokio::sync::Mutex::new(None),
            next_correlation: AtomicI32::new(1),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `rpc` and waits for its reply, at most `timeout`.
    pub async fn call(&self, rpc: &Rpc, timeout: Duration) -> io::Result<RpcReply> {
        let body = serde_json::to_vec(rpc).map_err(io::Error::other)?;
        let correlation = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.conn.lock().await;
        // The stream is taken out for the exchange and put back only once it completed: a
        // call dropped half-way (openraft cancels) leaves no half-read reply behind.
        let mut stream = conn.take();
        let result = tokio::time::timeout(timeout, self.exchange(&mut stream, correlation, &body))
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time")));
        if result.is_ok() {
            *conn = stream;
        }
        let reply = result?;
        serde_json::from_slice(&reply).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    async fn exchange(
        &self,
        conn: &mut Option<TcpStream>,
        correlation: i32,
        body: &[u8],
    ) -> io::Result<Vec<u8>> {
        if conn.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            *conn = Some(s);
        }
        let Some(s) = conn.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        s.write_all(&wire::request_frame(correlation, body)).await?;
        let size = s.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|n| (4..=wire::REPLY_BYTES_MAX).contains(n))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad reply size"))?;
        let mut frame = vec![0u8; size];
        s.read_exact(&mut frame).await?;
        if frame.get(..4) != Some(&correlation.to_be_bytes()[..]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reply to another call",
            ));
        }
        frame.drain(..4);
        Ok(frame)
    }
}

/// openraft's network: a client per peer address, shared by every connection to it.
#[derive(Debug, Clone, Default)]
pub struct TcpNetwork {
    clients: Arc<Mutex<HashMap<String, Arc<PeerClient>>>>,
    /// Where this node dials some peers, whatever address the membership records (which
    /// is the view of the node that wrote it): a static quorum's voters as configured here,
    /// so that each node reaches the others by its own routes (proxies, NAT).
    dial: Arc<HashMap<u64, QuorumNode>>,
}

impl TcpNetwork {
    /// A network that dials the peers in `dial` at the addresses given there.
    pub fn dialling(dial: HashMap<u64, QuorumNode>) -> TcpNetwork {
        TcpNetwork {
            dial: Arc::new(dial),
            ..TcpNetwork::default()
        }
    }

    /// The client for `node`'s address (dialled on first use).
    pub fn client(&self, node: &QuorumNode) -> Arc<PeerClient> {
        let addr = format!("{}:{}", node.host, node.port);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            clients
                .entry(addr.clone())
                .or_insert_with(|| Arc::new(PeerClient::new(addr))),
        )
    }
}

/// openraft's connection to one target.
#[derive(Debug)]
pub struct TcpConn {
    target: u64,
    /// The target's directory id as the membership records it (empty: unknown).
    target_dir: String,
    client: Arc<PeerClient>,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = TcpConn;

    async fn new_client(&mut self, target: u64, node: &QuorumNode) -> TcpConn {
        let at = self.dial.get(&target).unwrap_or(node);
        TcpConn {
            target,
            target_dir: node.directory_id.clone(),
            client: self.client(at),
        }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, QuorumNode, RaftError<u64, E>>;

impl TcpConn {
    /// Sends a raft call; a peer that cannot be reached (or refuses) is `Unreachable`, so
    /// openraft backs off instead of retrying at once.
    async fn raft_call<E: std::error::Error>(
        &self,
        call: RaftCall,
        option: &RPCOption,
    ) -> Result<RaftReply, RPCError<u64, QuorumNode, RaftError<u64, E>>> {
        let rpc = Rpc {
            to: self.target,
            to_dir: Some(self.target_dir.clone()).filter(|d| !d.is_empty()),
            call: RpcCall::Raft(call),
        };
        match self.client.call(&rpc, option.hard_ttl()).await {
            Ok(RpcReply::Raft(r)) => Ok(r),
            Ok(RpcReply::Refused(why)) => Err(RPCError::Unreachable(Unreachable::new(
                &io::Error::new(io::ErrorKind::ConnectionRefused, why),
            ))),
            Ok(RpcReply::App(_)) => Err(RPCError::Network(NetworkError::new(&io::Error::new(
                io::ErrorKind::InvalidData,
                "an application reply to a raft call",
            )))),
            Err(e) => Err(RPCError::Unreachable(Unreachable::new(&e))),
        }
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<u64, E>,
    ) -> RPCError<u64, QuorumNode, RaftError<u64, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

fn mismatch<E: std::error::Error>() -> RPCError<u64, QuorumNode, RaftError<u64, E>> {
    RPCError::Network(NetworkError::new(&io::Error::new(
        io::ErrorKind::InvalidData,
        "a reply to another kind of call",
    )))
}

impl RaftNetwork<TypeConfig> for TcpConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        match self
            .raft_call(RaftCall::AppendEntries(rpc), &option)
            .await?
        {
            RaftReply::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(mismatch()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        match self
            .raft_call(RaftCall::InstallSnapshot(rpc), &option)
            .await?
        {
            RaftReply::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(mismatch()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        match self.raft_call(RaftCall::Vote(rpc), &option).await? {
            RaftReply::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(mismatch()),
        }
    }
}
