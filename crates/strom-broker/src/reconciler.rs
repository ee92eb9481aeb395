//! The reconciler: one thread, off the async workers, that turns each applied metadata change
//! into local partition changes (create, delete, become leader or follower, reconfigure),
//! the log cleaner's settings and the groups this broker coordinates (`group/loading.rs`), as Kafka's `ReplicaManager.applyDelta` and Redpanda's
//! `controller_backend` do. It publishes how far it got, so that an admin request is answered
//! once this broker hosts what it created.

use crate::broker::Broker;
use crate::metadata_store::applier::Change;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Weak};
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

fn run(broker: Weak<Broker>, initial: Change, rx: Receiver<Change>) {
    let mut next = Some(initial);
    while let Some(change) = next.take().or_else(|| rx.recv().ok()) {
        let Some(b) = broker.upgrade() else { return };
        // Changes queued behind this one are folded in: only the newest image matters.
        let mut change = change;
        while let Ok(more) = rx.try_recv() {
            change.delta.merge(more.delta);
            change.image = more.image;
            change.offset = more.offset;
        }
        let result = b
            .replicas
            .apply_delta(&change.image, &change.delta)
            .and_then(|()| b.apply_cleaner_settings(&change.image))
            .and_then(|()| b.reconcile_groups(&change.image))
            .and_then(|()| b.reconcile_txns(&change.image));
        b.reconciled.send_modify(|r| {
            r.offset = change.offset;
            if let Err(e) = result {
                tracing::error!(offset = change.offset, error = %e, "reconciling the metadata failed");
                r.failed = Some((change.offset, e.to_string()));
            }
        });
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
