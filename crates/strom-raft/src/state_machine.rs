//! The quorum's state machine for openraft: [`StateMachineStore`] implements
//! `RaftStateMachine` around an application [`Applier`] (the broker's metadata image).
//!
//! The image lives in memory; what is durable is the snapshot (see `snapshot`). On open the
//! newest valid snapshot is restored, which sets `last_applied` and the membership; openraft
//! then re-applies the committed entries after it from the log. A new snapshot replaces the
//! older files only once it is durable. [`SmHandle`] gives the application read access to
//! the image while openraft owns the store.

use crate::error::StoreError;
use crate::snapshot::{self, SnapshotFile};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorVerb, OptionalSend, RaftSnapshotBuilder, Snapshot};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The application state fed by the quorum: applies committed payloads in index order,
/// dumps itself as a snapshot and restores from one. Calls are never concurrent.
pub trait Applier: Send + Sync + 'static {
    /// Applies the payload of entry `index`. An error stops this raft node (a replica that
    /// skipped a record would diverge from the others).
    fn apply(&mut self, index: u64, payload: &[u8]) -> Result<(), String>;
    /// Entry `index` carried nothing for the application (a new leader's blank entry, a
    /// membership change): its position is applied all the same.
    fn skip(&mut self, _index: u64) {}
    /// The whole state, as bytes `restore` accepts.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

/// What the state machine store and its handles share.
#[derive(Debug)]
struct SmState<A> {
    applier: A,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    current: Option<SnapshotFile>,
}

fn lock<A>(m: &Mutex<SmState<A>>) -> MutexGuard<'_, SmState<A>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// openraft's state machine over an [`Applier`], with snapshots in `dir`.
#[derive(Debug)]
pub struct StateMachineStore<A: Applier> {
    dir: PathBuf,
    shared: Arc<Mutex<SmState<A>>>,
}

/// Read access to the application state while openraft owns the store.
#[derive(Debug)]
pub struct SmHandle<A: Applier> {
    shared: Arc<Mutex<SmState<A>>>,
}

impl<A: Applier> Clone for SmHandle<A> {
    fn clone(&self) -> Self {
        SmHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A: Applier> SmHandle<A> {
    /// Runs `f` on the application state (under the state machine's lock: keep it short).
    pub fn with_applier<R>(&self, f: impl FnOnce(&A) -> R) -> R {
        f(&lock(&self.shared).applier)
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId> {
        lock(&self.shared).last_applied
    }

    /// The last applied membership.
    pub fn membership(&self) -> StoredMembership {
        lock(&self.shared).membership.clone()
    }

    /// The metadata of the current snapshot, if any.
    pub fn current_snapshot(&self) -> Option<SnapshotMeta> {
        lock(&self.shared).current.as_ref().map(|c| c.meta.clone())
    }
}

impl<A: Applier> StateMachineStore<A> {
    /// Opens the state machine with snapshots in `dir` (the metadata log's directory):
    /// restores `applier` from the newest valid snapshot, if any, and deletes older ones.
    pub fn open(dir: impl AsRef<Path>, mut applier: A) -> Result<StateMachineStore<A>, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let mut state = SmState {
            applier,
            last_applied: None,
            membership: StoredMembership::default(),
            current: None,
        };
        if let Some((file, data)) = snapshot::load_newest(&dir)? {
            applier = state.applier;
            applier.restore(&data).map_err(StoreError::Apply)?;
            state.applier = applier;
            state.last_applied = file.meta.last_log_id;
            state.membership = file.meta.last_membership.clone();
            snapshot::remove_others(&dir, &file.path)?;
            state.current = Some(file);
        }
        Ok(StateMachineStore {
            dir,
            shared: Arc::new(Mutex::new(state)),
        })
    }

    /// A handle for reading the application state.
    pub fn handle(&self) -> SmHandle<A> {
        SmHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Makes `file` the current snapshot if it is the newest, deleting the others; deletes
/// `file` instead when a newer one is already current.
fn publish<A>(dir: &Path, st: &mut SmState<A>, file: SnapshotFile) -> Result<(), StoreError> {
    let newer = st
        .current
        .as_ref()
        .is_none_or(|c| snapshot::snapshot_key(&file.meta) >= snapshot::snapshot_key(&c.meta));
    if newer {
        snapshot::remove_others(dir, &file.path)?;
        st.current = Some(file);
    } else if st.current.as_ref().map(|c| &c.path) != Some(&file.path) {
        std::fs::remove_file(&file.path).map_err(|e| crate::error::io_error(&file.path, e))?;
    }
    Ok(())
}

/// Encodes and writes a snapshot on a blocking thread.
async fn write_snapshot(
    dir: PathBuf,
    meta: SnapshotMeta,
    bytes: Arc<Vec<u8>>,
) -> Result<SnapshotFile, StoreError> {
    tokio::task::spawn_blocking(move || snapshot::write(&dir, &meta, &bytes))
        .await
        .map_err(|e| StoreError::Invariant(e.to_string()))?
}

/// Builds a snapshot from the state captured when openraft asked for the builder.
#[derive(Debug)]
pub struct SnapshotBuilder<A: Applier> {
    dir: PathBuf,
    shared: Arc<Mutex<SmState<A>>>,
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl<A: Applier> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<A> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let err = |e: StoreError| e.snapshot(ErrorVerb::Write);
        let bytes = Arc::new(snapshot::encode(&self.meta, &self.data).map_err(err)?);
        let file = write_snapshot(self.dir.clone(), self.meta.clone(), Arc::clone(&bytes))
            .await
            .map_err(err)?;
        publish(&self.dir, &mut lock(&self.shared), file).map_err(err)?;
        let bytes = Arc::try_unwrap(bytes).unwrap_or_else(|b| (*b).clone());
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl<A: Applier> RaftStateMachine<TypeConfig> for StateMachineStore<A> {
    type SnapshotBuilder = SnapshotBuilder<A>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = lock(&self.shared);
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = lock(&self.shared);
        let mut out = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => st.applier.skip(entry.log_id.index),
                EntryPayload::Normal(p) => {
                    st.applier.apply(entry.log_id.index, &p.0).map_err(|e| {
                        openraft::StorageIOError::apply(entry.log_id, &StoreError::Apply(e))
                    })?
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    st.applier.skip(entry.log_id.index);
                }
            }
            st.last_applied = Some(entry.log_id);
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder<A> {
        let st = lock(&self.shared);
        let mut meta = SnapshotMeta {
            last_log_id: st.last_applied,
            last_membership: st.membership.clone(),
            snapshot_id: String::new(),
        };
        let stem = snapshot::file_name(&meta);
        meta.snapshot_id = format!(
            "{}-{}",
            stem.trim_end_matches(snapshot::SUFFIX),
            crate::codec::now_ms()
        );
        SnapshotBuilder {
            dir: self.dir.clone(),
            shared: Arc::clone(&self.shared),
            meta,
            data: st.applier.snapshot(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let err = |e: StoreError| e.snapshot(ErrorVerb::Write);
        let bytes = snapshot.into_inner();
        let where_ = self.dir.join(snapshot::file_name(meta));
        let (file_meta, data) = snapshot::decode(&bytes, &where_).map_err(err)?;
        if &file_meta != meta {
            return Err(err(StoreError::Corrupt {
                path: where_,
                reason: format!("received snapshot says {file_meta}, openraft says {meta}"),
            }));
        }
        let file = write_snapshot(self.dir.clone(), file_meta, Arc::new(bytes))
            .await
            .map_err(err)?;
        let mut st = lock(&self.shared);
        st.applier
            .restore(&data)
            .map_err(|e| err(StoreError::Apply(e)))?;
        st.last_applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        publish(&self.dir, &mut st, file).map_err(err)?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = lock(&self.shared).current.clone();
        let Some(file) = current else { return Ok(None) };
        let bytes = std::fs::read(&file.path)
            .map_err(|e| crate::error::io_error(&file.path, e).snapshot(ErrorVerb::Read))?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
