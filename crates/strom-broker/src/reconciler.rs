//! The reconciler: one thread, off the async workers, that turns each applied metadata change
//! into local partition changes (create, delete, become leader or follower, reconfigure),
//! the log cleaner's settings and the groups this broker coordinates (`group/loading.rs`), as Kafka's `ReplicaManager.applyDelta` and Redpanda's
//! `controller_backend` do. It publishes how far it got, so that an admin request is answered
//! once this broker hosts what it created.

use crate::broker::Broker;
use crate::metadata_store::applier::Change;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;
use strom_meta::MetadataDelta;
use tokio::sync::watch;

/// How far the reconciler got: the metadata offset of the last change it acted on, and the
/// last failure (its offset and message), if any.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    pub offset: i64,
    pub failed: Option<(i64, String)>,
}

/// Attaches a reconciler to the broker's applier and starts its thread: it first brings the
/// hosted partitions in line with the whole current image, then follows the changes.
pub fn start(broker: &Arc<Broker>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (tx, rx) = channel();
    let first = broker.meta.applier().attach(tx);
    let weak = Arc::downgrade(broker);
    let initial = Change {
        delta: MetadataDelta::everything(&first.image, &first.image),
        image: first.image,
        offset: first.offset,
    };
    std::thread::Builder::new()
        .name("strom-reconciler".into())
        .spawn(move || run(weak, initial, rx))
}

/// How long a topic whose reconcile failed (out of descriptors, say) waits to be tried
/// again when no change comes meanwhile.
const RETRY_AFTER: Duration = Duration::from_secs(1);

fn run(broker: Weak<Broker>, initial: Change, rx: Receiver<Change>) {
    let mut next = Some(initial);
    let mut last: Option<(Arc<strom_meta::MetadataImage>, i64)> = None;
    loop {
        let change = match next.take() {
            Some(c) => c,
            None => match next_change(&broker, &rx, last.as_ref()) {
                Some(c) => c,
                None => return,
            },
        };
        let Some(b) = broker.upgrade() else { return };
        // Changes queued behind this one are folded in: only the newest image matters. So
        // are the topics that failed before, whatever the change.
        let mut change = change;
        while let Ok(more) = rx.try_recv() {
            change.delta.merge(more.delta);
            change.image = more.image;
            change.offset = more.offset;
        }
        change.delta.topics.extend(b.replicas.failed_topics());
        last = Some((Arc::clone(&change.image), change.offset));
        let results = [
            b.replicas.apply_delta(&change.image, &change.delta),
            b.apply_cleaner_settings(&change.image),
            b.reconcile_groups(&change.image),
            b.reconcile_txns(&change.image),
        ];
        let result = results.into_iter().find_map(Result::err);
        b.reconciled.send_modify(|r| {
            r.offset = change.offset;
            if let Some(e) = result {
                tracing::error!(offset = change.offset, error = %e, "reconciling the metadata failed");
                r.failed = Some((change.offset, e.to_string()));
            }
        });
    }
}

/// The next change to act on: the next one applied, or, while some topics failed to
/// reconcile and nothing else comes for `RETRY_AFTER`, those topics again under the last
/// image. None once the applier is gone.
fn next_change(
    broker: &Weak<Broker>,
    rx: &Receiver<Change>,
    last: Option<&(Arc<strom_meta::MetadataImage>, i64)>,
) -> Option<Change> {
    let failed = !broker.upgrade()?.replicas.failed_topics().is_empty();
    let Some((image, offset)) = last.filter(|_| failed) else {
        return rx.recv().ok();
    };
    match rx.recv_timeout(RETRY_AFTER) {
        Ok(change) => Some(change),
        Err(RecvTimeoutError::Disconnected) => None,
        // The failed topics are added to every change's delta.
        Err(RecvTimeoutError::Timeout) => Some(Change {
            delta: MetadataDelta::default(),
            image: Arc::clone(image),
            offset: *offset,
        }),
    }
}

/// Waits until the reconciler acted on everything before `offset`; its failure, if it failed
/// there.
pub async fn wait(rx: &mut watch::Receiver<Reconciled>, offset: i64) -> Result<(), String> {
    let r = rx
        .wait_for(|r| r.offset >= offset)
        .await
        .map_err(|_| "the reconciler stopped".to_string())?
        .clone();
    match r.failed {
        Some((at, e)) if at >= offset => Err(e),
        _ => Ok(()),
    }
}
