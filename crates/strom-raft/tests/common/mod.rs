//! Shared test pieces: a toy metadata image ([`TestImage`]), opening one node's storage from
//! a directory, and an in-memory network ([`Router`]) that calls the target `Raft` directly.
#![allow(dead_code)]

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use strom_log::{LogDir, LogDirOptions};
use strom_raft::types::Raft;
use strom_raft::{
    metadata_log_config, open_metadata_log, Applier, LogStore, QuorumNode, StateMachineStore,
    TypeConfig,
};

/// A toy image: every applied payload with its index.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestImage {
    pub applied: Vec<(u64, Vec<u8>)>,
}

impl Applier for TestImage {
    fn apply(&mut self, index: u64, payload: &[u8]) -> Result<(), String> {
        if payload == b"poison" {
            return Err("poison record".into());
        }
        self.applied.push((index, payload.to_vec()));
        Ok(())
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        *self = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// One node's storage, opened from `path` as the broker would.
pub fn open_storage(path: &Path) -> (LogDir, LogStore, StateMachineStore<TestImage>) {
    let dir = LogDir::open(path, LogDirOptions::default(), &|_| metadata_log_config())
        .expect("open log dir");
    let log = open_metadata_log(&dir).expect("metadata log");
    let sm = StateMachineStore::open(log.dir(), TestImage::default()).expect("state machine");
    let store = LogStore::open(log).expect("log store");
    (dir, store, sm)
}

/// The in-memory network: node id -> running Raft.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Raft>>>,
}

impl Router {
    pub fn add(&self, id: u64, raft: Raft) {
        self.nodes.lock().unwrap().insert(id, raft);
    }

    pub fn remove(&self, id: u64) -> Option<Raft> {
        self.nodes.lock().unwrap().remove(&id)
    }

    fn get(&self, id: u64) -> Result<Raft, Unreachable> {
        self.nodes.lock().unwrap().get(&id).cloned().ok_or_else(|| {
            Unreachable::new(&std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("node {id} is down"),
            ))
        })
    }
}

/// A connection to one target node.
pub struct Conn {
    target: u64,
    router: Router,
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, _node: &QuorumNode) -> Conn {
        Conn {
            target,
            router: self.clone(),
        }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, QuorumNode, RaftError<u64, E>>;

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let raft = self.router.get(self.target)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        let raft = self.router.get(self.target)?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        let raft = self.router.get(self.target)?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Silences "unused" for NetworkError in some test binaries.
pub fn _network_error(e: &std::io::Error) -> NetworkError {
    NetworkError::new(e)
}
