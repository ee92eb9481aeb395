//! The metadata path: propose, commit, apply, reconcile.
//!
//! A controller decision (`commit`) is taken against the newest image and its records are
//! proposed to the metadata log (`MetadataLog`: `QuorumLog`, the Raft quorum on openraft,
//! one voter for a single node). Committed records reach the `Applier`, the one
//! place that applies them to the image: it publishes each new image on a `watch` channel
//! (what handlers read) and hands the image with its `MetadataDelta` to the reconciler
//! (`reconciler.rs`), which changes the hosted partitions on its own thread.

pub mod applier;
pub mod legacy;
pub mod open;
pub mod quorum;

pub use applier::{Applier, Published};
pub use quorum::QuorumLog;

use crate::error::BrokerError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use strom_meta::{ApiError, MetadataImage, MetadataRecord};

pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Records one commit may carry: Kafka's bound on the records of one operation
/// (`MAX_RECORDS_PER_USER_OP`).
pub const RECORDS_PER_BATCH_MAX: usize = 10_000;
/// Bytes of records (as proposed, JSON) one commit may carry. The metadata log's batch holds
/// them escaped once more, within `strom_raft::log_store::METADATA_BATCH_BYTES_MAX`.
pub const RECORD_BYTES_PER_BATCH_MAX: usize = 3 << 20;
/// Bytes of records in one part of a `commit_in_parts`: small, since openraft gives an
/// AppendEntries call one heartbeat interval (100 ms) to reach a follower and be appended.
pub const RECORD_BYTES_PER_PART_MAX: usize = 512 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atomic {
    Yes,
    No,
}

/// How many of `records`, from the first, fit one batch of at most `max_bytes`.
fn fitting(records: &[MetadataRecord], max_bytes: usize) -> usize {
    let mut bytes = 2;
    records
        .iter()
        .take(RECORDS_PER_BATCH_MAX)
        .take_while(|r| {
            bytes += serde_json::to_vec(r).map_or(usize::MAX / 2, |v| v.len() + 1);
            bytes <= max_bytes
        })
        .count()
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a proposal was not committed.
#[derive(Debug)]
pub enum ProposeError {
    /// The decision was taken on an image older than the leader's, which is at this
    /// offset: decide again once it is applied here.
    Stale(i64),
    /// No leader could be reached in time.
    NoQuorum,
    Failed(String),
    Storage(BrokerError),
}

/// A replicated log of metadata records.
pub trait MetadataLog: Send + Sync + std::fmt::Debug {
    /// Appends `records` as one batch, decided on the image at offset `based_on`; resolves
    /// once they are committed and applied here (the applier has published the image
    /// holding them), with the offset after them.
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
        based_on: i64,
    ) -> BoxFuture<'_, Result<i64, ProposeError>>;

    /// The offset after the last committed record.
    fn committed_end(&self) -> i64;

    /// Waits until this node's image holds everything committed before the call (a read
    /// barrier), so a decision is not taken on an image still catching up.
    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// The Raft quorum behind this log, if it is one.
    fn as_quorum(&self) -> Option<&QuorumLog> {
        None
    }
}

#[derive(Debug)]
pub struct MetadataStore {
    log: Box<dyn MetadataLog>,
    applier: Arc<Applier>,
    /// One decision at a time: each is taken against the image holding every earlier one.
    write: tokio::sync::Mutex<()>,
}

impl MetadataStore {
    pub fn new(log: Box<dyn MetadataLog>, applier: Arc<Applier>) -> MetadataStore {
        MetadataStore {
            log,
            applier,
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// The end of the committed metadata log.
    pub fn log_end_offset(&self) -> i64 {
        self.log.committed_end()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.applier.image()
    }

    pub fn applier(&self) -> &Arc<Applier> {
        &self.applier
    }

    /// Runs a controller decision against the newest image, commits its records and
    /// returns the image holding them (and the offset after them), or the controller's
    /// refusal. A decision found stale by the leader is taken again on the newer image.
    pub async fn commit(
        &self,
        decide: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
    ) -> Result<Result<Published, ApiError>, BrokerError> {
        self.commit_as(decide, Atomic::Yes).await
    }

    /// `commit` of a decision made of independent changes (a leadership each, as fencing a
    /// broker makes), too many for one batch perhaps: committed a batch at a time, deciding
    /// again against the image each one leaves, until the decision is empty or fits.
    pub async fn commit_in_parts(
        &self,
        decide: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
    ) -> Result<Result<Published, ApiError>, BrokerError> {
        self.commit_as(decide, Atomic::No).await
    }

    async fn commit_as(
        &self,
        decide: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
        atomic: Atomic,
    ) -> Result<Result<Published, ApiError>, BrokerError> {
        let deadline = tokio::time::Instant::now() + STALE_RETRY_TIME;
        loop {
            let w = self.write.lock().await;
            self.log.barrier().await.map_err(propose_error)?;
            let current = self.applier.published();
            let mut records = match decide(&current.image) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            if records.is_empty() {
                return Ok(Ok(current));
            }
            let fits = match atomic {
                Atomic::Yes => fitting(&records, RECORD_BYTES_PER_BATCH_MAX),
                Atomic::No => fitting(&records, RECORD_BYTES_PER_PART_MAX),
            };
            let whole = fits == records.len();
            if !whole {
                if atomic == Atomic::Yes || fits == 0 {
                    // Kafka's answer to an operation of more than 10,000 records.
                    return Ok(Err(ApiError::PolicyViolation(
                        "Unable to perform excessively large batch operation.".into(),
                    )));
                }
                records.truncate(fits);
            }
            // The records must fit the image: checked before they are proposed.
            let mut trial = (*current.image).clone();
            for r in &records {
                if let Err(e) = trial.apply(r) {
                    return Ok(Err(ApiError::InvalidRequest(e.to_string())));
                }
            }
            match self.log.propose(records, current.offset).await {
                Ok(end) if whole => return Ok(Ok(self.applier.wait_applied(end).await)),
                Ok(end) => {
                    // A part: the rest is decided again against the image it leaves.
                    self.applier.wait_applied(end).await;
                }
                Err(ProposeError::Stale(at)) if tokio::time::Instant::now() < deadline => {
                    drop(w);
                    // Decide again once this node has applied what the leader had.
                    let _ = tokio::time::timeout_at(deadline, self.applier.wait_applied(at)).await;
                }
                Err(e) => return Err(propose_error(e)),
            }
        }
    }

    /// Answers a call from another quorum node.
    pub async fn serve(&self, rpc: strom_raft::wire::Rpc) -> strom_raft::wire::RpcReply {
        use quorum::{AppCall, AppReply};
        use strom_raft::wire::{RpcCall, RpcReply};
        let Some(q) = self.log.as_quorum() else {
            return RpcReply::Refused("this node runs no quorum".into());
        };
        let call = match rpc.call {
            RpcCall::Raft(call) => return RpcReply::Raft(q.answer(call).await),
            RpcCall::App(v) => serde_json::from_value::<AppCall>(v),
        };
        let reply =
            match call {
                Err(e) => AppReply::Failed(format!("unreadable call: {e}")),
                Ok(AppCall::Status) => q.answer_status(),
                Ok(AppCall::Describe) => q.describe().map_or(AppReply::NotLeader, AppReply::Quorum),
                Ok(AppCall::ReadIndex) if q.is_leader() => match q.read_index().await {
                    Some(at) => AppReply::ReadIndex { at },
                    None => AppReply::NotLeader,
                },
                Ok(AppCall::ReadIndex) => AppReply::NotLeader,
                Ok(AppCall::Rejoin { .. }) if !q.is_leader() => AppReply::NotLeader,
                Ok(AppCall::Rejoin {
                    node_id,
                    directory_id,
                }) => {
                    // The change waits for the node to catch up: it runs behind the answer, and
                    // the node asks again until the membership records its directory.
                    let change = q.readmit(node_id as u64, directory_id);
                    tokio::spawn(async move {
                        if let Err(e) = change.await {
                            tracing::warn!(node_id, error = %e, "readmitting a voter failed");
                        }
                    });
                    AppReply::Done
                }
                Ok(
                    AppCall::Join { .. } | AppCall::AddVoter { .. } | AppCall::RemoveVoter { .. },
                ) if !q.is_leader() => AppReply::NotLeader,
                Ok(AppCall::Join { node_id, node }) => done(q.admit(node_id as u64, node).await),
                Ok(AppCall::AddVoter {
                    node_id,
                    directory_id,
                    endpoint,
                }) => done(q.add_voter(node_id as u64, &directory_id, endpoint).await),
                Ok(AppCall::RemoveVoter {
                    node_id,
                    directory_id,
                }) => done(q.remove_voter(node_id as u64, &directory_id).await),
                // Membership calls are the broker's (`membership.rs`), answered before this.
                Ok(AppCall::Heartbeat { .. } | AppCall::ShutDown { .. }) => AppReply::NotLeader,
                // Leadership is checked before the lock: two nodes that each think the other
                // leads never wait on each other's lock.
                Ok(AppCall::Propose { .. }) if !q.is_leader() => AppReply::NotLeader,
                Ok(AppCall::Propose { records, based_on }) => {
                    let _w = self.write.lock().await;
                    match q.propose_here(records, based_on).await {
                        Ok(Some(end)) => AppReply::Committed { end },
                        Ok(None) => AppReply::NotLeader,
                        Err(ProposeError::Stale(at)) => AppReply::Stale { at },
                        Err(e) => AppReply::Failed(format!("{e:?}")),
                    }
                }
            };
        RpcReply::App(serde_json::to_value(reply).unwrap_or_default())
    }

    /// Has the quorum leader answer `call` (served here if this node leads); None if no
    /// leader answered within `within`.
    pub async fn ask_leader(
        &self,
        call: &quorum::AppCall,
        within: std::time::Duration,
    ) -> Option<quorum::AppReply> {
        use strom_raft::wire::{Rpc, RpcCall, RpcReply};
        let q = self.quorum()?;
        let ask = async {
            loop {
                let reply = match q.find_leader().await {
                    Some((id, _)) if q.is_leader() && id == q.node_id() => {
                        let rpc = Rpc {
                            to: id,
                            to_dir: None,
                            call: RpcCall::App(serde_json::to_value(call).ok()?),
                        };
                        match self.serve(rpc).await {
                            RpcReply::App(v) => serde_json::from_value(v).ok(),
                            _ => None,
                        }
                    }
                    Some((id, at)) => q.call_long(id, &at, call, within).await.ok(),
                    None => None,
                };
                match reply {
                    Some(quorum::AppReply::NotLeader) | None => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await
                    }
                    Some(r) => return Some(r),
                }
            }
        };
        tokio::time::timeout(within, ask).await.ok().flatten()
    }

    pub fn quorum(&self) -> Option<&QuorumLog> {
        self.log.as_quorum()
    }
}

/// A voter change's answer.
fn done(r: Result<(), quorum::Refusal>) -> quorum::AppReply {
    match r {
        Ok(()) => quorum::AppReply::Done,
        // Leadership moved or a change is in progress: asked again (`ask_leader`).
        Err((code, _)) if code == kafka_protocol::error::ResponseError::NotController.code() => {
            quorum::AppReply::NotLeader
        }
        Err((code, message)) => quorum::AppReply::Refused { code, message },
    }
}

/// How long a decision may be found stale and taken again before the request fails.
const STALE_RETRY_TIME: std::time::Duration = std::time::Duration::from_secs(30);

fn propose_error(e: ProposeError) -> BrokerError {
    match e {
        ProposeError::Stale(_) | ProposeError::NoQuorum => {
            BrokerError::NoQuorum("no metadata quorum leader could be reached".into())
        }
        ProposeError::Failed(e) => BrokerError::Metadata(e),
        ProposeError::Storage(e) => e,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use uuid::Uuid;

    /// A log in memory: each proposal commits at once, one offset per record.
    #[derive(Debug)]
    struct MemLog {
        applier: Arc<Applier>,
        end: Mutex<i64>,
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl MetadataLog for MemLog {
        fn propose(
            &self,
            records: Vec<MetadataRecord>,
            based_on: i64,
        ) -> BoxFuture<'_, Result<i64, ProposeError>> {
            let mut end = self.end.lock().unwrap();
            let result = if *end == based_on {
                self.batches.lock().unwrap().push(records.len());
                *end += records.len() as i64;
                self.applier.apply(&records, *end).unwrap();
                Ok(*end)
            } else {
                Err(ProposeError::Stale(*end))
            };
            Box::pin(std::future::ready(result))
        }

        fn committed_end(&self) -> i64 {
            *self.end.lock().unwrap()
        }
    }

    fn partition(topic_id: Uuid, partition: i32) -> MetadataRecord {
        MetadataRecord::new_partition(topic_id, partition, &[1])
    }

    /// An operation of more records than a batch takes is refused whole, as Kafka refuses
    /// it (POLICY_VIOLATION), and nothing reaches the log; independent changes are
    /// committed a batch at a time, each decided against the image the last one left.
    #[tokio::test]
    async fn too_large_for_a_batch_is_refused_or_committed_in_parts() {
        let applier = Applier::new();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let log = MemLog {
            applier: Arc::clone(&applier),
            end: Mutex::new(0),
            batches: Arc::clone(&batches),
        };
        let store = MetadataStore::new(Box::new(log), applier);
        let id = Uuid::from_u128(42);
        let topic = MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        };
        let n = RECORDS_PER_BATCH_MAX as i32 + 2_000;
        let whole = |_: &MetadataImage| {
            let mut r = vec![topic.clone()];
            r.extend((0..n).map(|p| partition(id, p)));
            Ok(r)
        };
        let refused = store.commit(whole).await.unwrap().unwrap_err();
        assert!(
            matches!(refused, ApiError::PolicyViolation(_)),
            "{refused:?}"
        );
        assert!(batches.lock().unwrap().is_empty(), "nothing proposed");

        store
            .commit(|_| Ok(vec![topic.clone()]))
            .await
            .unwrap()
            .unwrap();
        let missing = |img: &MetadataImage| {
            let have = &img.topics["t"].partitions;
            Ok((0..n)
                .filter(|p| !have.contains_key(p))
                .map(|p| partition(id, p))
                .collect())
        };
        let published = store.commit_in_parts(missing).await.unwrap().unwrap();
        assert_eq!(published.image.topics["t"].partitions.len(), n as usize);
        let parts = batches.lock().unwrap().clone();
        assert_eq!(parts[0], 1, "the topic");
        assert_eq!(parts[1..].iter().sum::<usize>(), n as usize);
        // Parts of at most RECORD_BYTES_PER_PART_MAX: about 3,700 of these records.
        assert!(parts.len() > 3, "{parts:?}");
        let first: usize = (0..parts[1] as i32)
            .map(|p| serde_json::to_vec(&partition(id, p)).unwrap().len() + 1)
            .sum();
        assert!(first <= RECORD_BYTES_PER_PART_MAX, "{parts:?}");
    }
}
