//! The leader's side of ISR changes (Kafka's `Partition.maybeShrinkIsr` /
//! `maybeExpandIsr` and the AlterPartition manager): a follower that fetched its way back
//! asks to join at once (from the fetch that caught it up); lagging followers are checked
//! every half `replica.lag.time.max.ms`. A change is committed through the metadata log
//! (`strom_meta::isr::alter_partition`, against the leader and partition epochs this leader
//! knows); while it is in flight the high watermark counts the larger ISR, and one change
//! per partition is in flight at a time.

use crate::broker::Broker;
use crate::error::code;
pub use crate::partition::replication::IsrChangeKind;
use crate::partition::Partition;
use kafka_protocol::error::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Asks the controller for the ISR change `p` needs now, if any (on a task of its own).
pub fn request_change(broker: &Arc<Broker>, p: &Arc<Partition>, kind: IsrChangeKind) {
    let expand = matches!(kind, IsrChangeKind::Join(_));
    let Some(change) = p.isr_change(kind, broker.broker_epoch()) else {
        return;
    };
    let broker = Arc::clone(broker);
    let p = Arc::clone(p);
    tokio::spawn(async move {
        let timed_out = code(ResponseError::RequestTimedOut);
        let stale_partition = code(ResponseError::InvalidUpdateVersion);
        let stale_leader = code(ResponseError::FencedLeaderEpoch);
        loop {
            let c = change.clone();
            let result = broker
                .commit(move |img| strom_meta::isr::alter_partition(img, &c))
                .await;
            match result {
                // Applied by the reconciler before `commit` returned (which clears it), or
                // no change was needed.
                Ok(_) => {
                    let m = &broker.metrics;
                    match expand {
                        true => m.isr_expands.inc(),
                        false => m.isr_shrinks.inc(),
                    }
                    p.end_pending_isr(&change.new_isr)
                }
                // The outcome is unknown (no quorum in time): the larger ISR still counts,
                // and the change is asked again (as Kafka's AlterPartition manager retries)
                // until an image of the partition ends it.
                Err((c, _)) if c == timed_out && p.isr_pending(&change.new_isr) => {
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
                Err((c, _)) if c == timed_out => {}
                // The partition moved on in the metadata (a retry of a change that did
                // commit, or a change from a stale view): the newer image, on its way to
                // this broker, ends the pending change. Ending it here, before that image
                // is applied, could let the high watermark drop a replica already in the
                // committed ISR.
                Err((c, _)) if c == stale_partition || c == stale_leader => {}
                Err((c, message)) => {
                    tracing::warn!(partition = %p.log_name(), isr = ?change.new_isr, code = c, %message,
                        "ISR change refused");
                    p.end_pending_isr(&change.new_isr);
                }
            }
            return;
        }
    });
}

/// The pause before asking again for an ISR change whose outcome is unknown.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// Every half `replica.lag.time.max.ms`, each partition this broker leads drops the
/// followers that stopped keeping up.
pub async fn shrink_ticker(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis((broker.config.replica_lag_time_max_ms / 2).max(1) as u64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        for p in broker.replicas.replicated() {
            if p.is_leader() {
                let lag_max_ms = broker.config.replica_lag_time_max_ms;
                request_change(&broker, &p, IsrChangeKind::Shrink { lag_max_ms });
            }
        }
    }
}
