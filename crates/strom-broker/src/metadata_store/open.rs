//! Opening the metadata quorum at start-up: a metadata log from the single-node release
//! (no `quorum-state` beside it) becomes the first snapshot of a one-voter quorum, then the
//! raft log store, the state machine (restoring the newest snapshot into the applier) and
//! the Raft node are opened.

use super::quorum::{voters_of, ImageState, QuorumLog};
use super::Applier;
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use strom_log::Log;
use strom_raft::types::{LogId, Raft, SnapshotMeta, StoredMembership};
use strom_raft::{
    snapshot, Applier as _, LogStore, QuorumNode, QuorumState, StateMachineStore, TcpNetwork,
};

fn raft_error(what: &str) -> impl Fn(strom_raft::StoreError) -> BrokerError + '_ {
    move |e| BrokerError::Metadata(format!("{what}: {e}"))
}

/// The single-node release kept metadata records in plain batches, with no `quorum-state`:
/// they are replayed and written as a snapshot of a one-voter quorum whose log starts after
/// them (the old batches are then purged by the log store). Crash-safe: until `quorum-state`
/// is written the old log is read again.
pub fn upgrade_single_node_log(log: &Arc<Log>, node_id: i32) -> Result<bool, BrokerError> {
    let dir = log.dir();
    if QuorumState::path(dir).exists() || log.log_end_offset() == 0 {
        return Ok(false);
    }
    let applier = Applier::new();
    super::legacy::replay(log, &applier)?;
    let end = applier.published().offset;
    let node = node_id as u64;
    let last = LogId::new(
        openraft::CommittedLeaderId::new(0, node),
        (end - 1).max(0) as u64,
    );
    let nodes = BTreeMap::from([(node, QuorumNode::default())]);
    let membership = openraft::Membership::new(vec![BTreeSet::from([node])], nodes);
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), membership),
        snapshot_id: format!("single-node-{end}"),
    };
    let data = ImageState::new(applier).snapshot();
    let bytes = snapshot::encode(&meta, &data).map_err(raft_error("upgrade snapshot"))?;
    snapshot::write(dir, &meta, &bytes).map_err(raft_error("upgrade snapshot"))?;
    let state = QuorumState {
        version: 1,
        vote: None,
        last_purged: Some(last),
        directory_id: Some(new_directory_id()),
    };
    state.store(dir).map_err(raft_error("quorum-state"))?;
    tracing::info!(
        records_end = end,
        "single-node metadata log upgraded to a one-voter quorum"
    );
    Ok(true)
}

/// openraft's settings: Kafka's election timeout (`controller.quorum.election.timeout.ms`,
/// 1 s), heartbeats ten times as often; snapshots are taken by Kafka's policy
/// (`QuorumLog::snapshot_when_due`), not openraft's.
fn raft_config(config: &BrokerConfig) -> Result<Arc<openraft::Config>, BrokerError> {
    let election = config
        .given
        .get("controller.quorum.election.timeout.ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1000)
        .max(10);
    let c = openraft::Config {
        cluster_name: "strom".into(),
        heartbeat_interval: (election / 10).max(1),
        election_timeout_min: election,
        election_timeout_max: election * 2,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 1_000,
        ..openraft::Config::default()
    };
    c.validate()
        .map(Arc::new)
        .map_err(|e| BrokerError::Metadata(format!("raft settings: {e}")))
}

/// Opens this node's quorum over the metadata log `log`, restoring the image into `applier`.
/// With the state machine's count of bytes since the last snapshot.
pub async fn open_quorum(
    config: &BrokerConfig,
    log: Arc<Log>,
    applier: Arc<Applier>,
) -> Result<(QuorumLog, Arc<std::sync::atomic::AtomicU64>), BrokerError> {
    let node_id = config.node_id;
    let dir = log.dir().to_path_buf();
    let (pristine, directory_id) = {
        let log = Arc::clone(&log);
        tokio::task::spawn_blocking(move || -> Result<(bool, String), BrokerError> {
            upgrade_single_node_log(&log, node_id)?;
            // From now on this dir holds a quorum's log: the state (with the directory's id)
            // is written before openraft writes its first entry, so a crash in between is
            // never mistaken for a single-node release's log.
            let mut state = QuorumState::load(log.dir()).map_err(raft_error("quorum-state"))?;
            if state.directory_id.is_none() || !QuorumState::path(log.dir()).exists() {
                state.directory_id = Some(new_directory_id());
                state.store(log.dir()).map_err(raft_error("quorum-state"))?;
            }
            let pristine =
                state.vote.is_none() && state.last_purged.is_none() && log.log_end_offset() == 0;
            Ok((pristine, state.directory_id.unwrap_or_default()))
        })
        .await
        .map_err(|e| BrokerError::Metadata(e.to_string()))??
    };
    let state = ImageState::new(Arc::clone(&applier));
    let since_snapshot = state.since_snapshot();
    let sm = StateMachineStore::open(&dir, state).map_err(raft_error("metadata snapshot"))?;
    let pristine = pristine && sm.handle().current_snapshot().is_none();
    let store = LogStore::open(log).map_err(raft_error("metadata log"))?;
    let voters = voters_of(node_id, &config.quorum);
    let dial = voters.iter().map(|(id, n)| (*id, n.clone())).collect();
    let raft = Raft::new(
        node_id as u64,
        raft_config(config)?,
        TcpNetwork::dialling(dial),
        store,
        sm,
    )
    .await
    .map_err(|e| BrokerError::Metadata(format!("starting the metadata quorum: {e}")))?;
    if !config.quorum.is_dynamic() {
        check_voters(&raft, &voters)?;
    }
    let quorum = QuorumLog::new(node_id, raft, applier, voters, pristine, directory_id)
        .with_bootstrap(&config.quorum.bootstrap_servers);
    Ok((quorum, since_snapshot))
}

/// A new log directory id: a random UUID, as Kafka's `directory.id`.
fn new_directory_id() -> String {
    crate::meta_properties::random_uuid().to_string()
}

/// A static quorum's voters are fixed (a dynamic one's change in its log): a log whose voters differ from
/// `controller.quorum.voters` (another quorum's, or a single node's) is refused.
fn check_voters(raft: &Raft, voters: &BTreeMap<u64, QuorumNode>) -> Result<(), BrokerError> {
    let in_log: BTreeSet<u64> = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let configured: BTreeSet<u64> = voters.keys().copied().collect();
    if in_log.is_empty() || in_log == configured {
        return Ok(());
    }
    Err(BrokerError::Config(crate::config::ConfigError(format!(
        "the metadata log's voters are {in_log:?}, but controller.quorum.voters names \
         {configured:?}: this log dir belongs to another quorum"
    ))))
}
