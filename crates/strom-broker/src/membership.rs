//! Broker membership on a cluster: every broker heartbeats to the active controller (the
//! quorum leader) every `broker.heartbeat.interval.ms`; the leader fences a broker it has not
//! heard from for `broker.session.timeout.ms` (its partitions' leadership moves, see
//! `strom_meta::membership`) and unfences it when it is heard again. A broker shutting down
//! asks to be fenced first (Kafka's controlled shutdown), so its leaderships move before it
//! goes. A controller-only node does not heartbeat, but fences when it leads.

use crate::broker::Broker;
use crate::metadata_store::quorum::{AppCall, AppReply};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use strom_meta::membership;
use tokio::sync::watch;

/// When the leader last heard from each broker, and in which term it started counting.
#[derive(Debug, Default)]
pub struct Liveness {
    seen: Mutex<(u64, HashMap<i32, Instant>)>,
}

impl Liveness {
    fn saw(&self, node: i32) {
        let mut s = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        s.1.insert(node, Instant::now());
    }

    /// The brokers not heard from within `session` in this leadership. A new term starts
    /// every session afresh (the new leader has not heard their heartbeats), except the
    /// previous leader's, counted from its last AppendEntries here (`previous`): when the
    /// node that dies leads the quorum too, it is fenced a session after it went silent,
    /// not a session after the election that followed.
    fn expired(
        &self,
        term: u64,
        live: &[i32],
        session: Duration,
        previous: Option<(i32, Instant)>,
    ) -> Vec<i32> {
        let mut s = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if s.0 != term {
            let mut seen: HashMap<i32, Instant> = live.iter().map(|b| (*b, now)).collect();
            if let Some((node, at)) = previous.filter(|(n, _)| seen.contains_key(n)) {
                seen.insert(node, at);
            }
            *s = (term, seen);
        }
        live.iter()
            .filter(|b| {
                let last = *s.1.entry(**b).or_insert(now);
                now.duration_since(last) > session
            })
            .copied()
            .collect()
    }
}

/// Heartbeats (a broker), and on the leader fences expired brokers, until shutdown.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms.max(1) as u64);
    let session = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1) as u64);
    let mut every = tokio::time::interval(interval.min(Duration::from_millis(500)));
    let mut last_beat = Instant::now() - interval;
    let balance_every =
        Duration::from_secs(broker.config.leader_imbalance_check_interval_s.max(1) as u64);
    let mut last_balance = Instant::now();
    let mut unclean_checked = None;
    loop {
        tokio::select! {
            _ = every.tick() => {
                if broker.config.quorum.broker && last_beat.elapsed() >= interval {
                    last_beat = Instant::now();
                    heartbeat(&broker).await;
                }
                expire(&broker, session).await;
                elect_unclean(&broker, &mut unclean_checked).await;
                if last_balance.elapsed() >= balance_every {
                    last_balance = Instant::now();
                    balance(&broker).await;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn heartbeat(broker: &Arc<Broker>) {
    let Some(q) = broker.meta.quorum() else {
        return;
    };
    match q.leader_id() {
        Some(id) if q.is_leader() && id == broker.node_id as u64 => {
            heard(broker, broker.node_id).await;
        }
        Some(id) => {
            let call = AppCall::Heartbeat {
                node_id: broker.node_id,
            };
            if let Err(e) = q.call(id, &call).await {
                tracing::debug!(error = %e, "heartbeat not delivered");
            }
        }
        None => {}
    }
}

/// On the leader: `node` lives; a fenced broker is unfenced.
pub async fn heard(broker: &Arc<Broker>, node: i32) {
    broker.liveness.saw(node);
    let fenced = broker
        .meta
        .image()
        .brokers
        .get(&node)
        .is_some_and(|b| b.fenced);
    if fenced {
        match broker
            .commit_in_parts(|img| Ok(membership::unfence(img, node)))
            .await
        {
            Ok(_) => tracing::info!(node, "broker unfenced"),
            Err((code, e)) => tracing::warn!(node, code, error = %e, "unfencing failed"),
        }
    }
}

/// On the leader: fences the live brokers whose session expired.
async fn expire(broker: &Arc<Broker>, session: Duration) {
    let Some(q) = broker.meta.quorum() else {
        return;
    };
    if !q.is_leader() {
        return;
    }
    let live: Vec<i32> = broker
        .meta
        .image()
        .live_brokers()
        .map(|b| b.node_id)
        .filter(|id| *id != broker.node_id)
        .collect();
    let previous = q
        .leader_heard()
        .and_then(|(id, at)| Some((i32::try_from(id).ok()?, at)));
    for node in broker.liveness.expired(q.term(), &live, session, previous) {
        fence(broker, node, "missed its session").await;
    }
}

fn leads_quorum(broker: &Broker) -> bool {
    broker.meta.quorum().is_some_and(|q| q.is_leader())
}

/// On the leader: leaderless partitions of topics with `unclean.leader.election.enable`
/// take a live replica (checked against the image first, so an idle tick commits nothing).
/// Leaderless partitions, live brokers and the setting all change only with the image:
/// `checked` holds the image (its records applied) last found with nothing to do, so an
/// idle tick does not walk every partition again.
async fn elect_unclean(broker: &Arc<Broker>, checked: &mut Option<u64>) {
    if !leads_quorum(broker) {
        *checked = None;
        return;
    }
    let image = broker.meta.image();
    if *checked == Some(image.records_applied) {
        return;
    }
    let allowed = |img: &strom_meta::MetadataImage, topic: &str| {
        let dynamic = crate::config::Dynamic::of(img, broker.node_id);
        broker
            .config
            .topic_value(
                "unclean.leader.election.enable",
                img.topic_config(topic),
                &dynamic,
            )
            .is_some_and(|(v, _)| v.trim().eq_ignore_ascii_case("true"))
    };
    if strom_meta::elections::unclean_where_allowed(&image, |t| allowed(&image, t)).is_empty() {
        *checked = Some(image.records_applied);
        return;
    }
    *checked = None;
    let result = broker
        .commit_in_parts(|img| {
            Ok(strom_meta::elections::unclean_where_allowed(img, |t| {
                allowed(img, t)
            }))
        })
        .await;
    match result {
        Ok(_) => {
            tracing::warn!("unclean leader election: records only the dead replicas held are lost")
        }
        Err((code, e)) => tracing::warn!(code, error = %e, "unclean leader election failed"),
    }
}

/// On the leader, every `leader.imbalance.check.interval.seconds` with
/// `auto.leader.rebalance.enable`: leaderships go back to preferred replicas in sync.
async fn balance(broker: &Arc<Broker>) {
    if !leads_quorum(broker) || !broker.config.auto_leader_rebalance_enable {
        return;
    }
    if strom_meta::elections::rebalance(&broker.meta.image()).is_empty() {
        return;
    }
    match broker
        .commit_in_parts(|img| Ok(strom_meta::elections::rebalance(img)))
        .await
    {
        Ok(_) => tracing::info!("leaderships moved back to preferred replicas"),
        Err((code, e)) => tracing::warn!(code, error = %e, "preferred leader election failed"),
    }
}

async fn fence(broker: &Arc<Broker>, node: i32, why: &str) {
    match broker
        .commit_in_parts(|img| Ok(membership::fence(img, node)))
        .await
    {
        Ok(_) => tracing::info!(node, why, "broker fenced"),
        Err((code, e)) => tracing::warn!(node, code, error = %e, "fencing failed"),
    }
}

/// Answers a membership call on the leader; None for other calls.
pub async fn serve(broker: &Arc<Broker>, call: &AppCall) -> Option<AppReply> {
    let node = match call {
        AppCall::Heartbeat { node_id } | AppCall::ShutDown { node_id } => *node_id,
        _ => return None,
    };
    let leads = broker.meta.quorum().is_some_and(|q| q.is_leader());
    if !leads {
        return Some(AppReply::NotLeader);
    }
    match call {
        AppCall::ShutDown { .. } => fence(broker, node, "shut down").await,
        _ => {
            // Answered at once; an unfence is committed behind the answer.
            let b = Arc::clone(broker);
            tokio::spawn(async move { heard(&b, node).await });
        }
    }
    Some(AppReply::Done)
}

/// Controlled shutdown: asks the leader to fence this broker, so its leaderships move now
/// (not when no other broker lives to take them).
pub async fn shut_down(broker: &Arc<Broker>) {
    let others = broker
        .meta
        .image()
        .live_brokers()
        .any(|b| b.node_id != broker.node_id);
    if !broker.config.quorum.broker || !others {
        return;
    }
    let Some(q) = broker.meta.quorum() else {
        return;
    };
    let node = broker.node_id;
    let done = async {
        match q.leader_id() {
            Some(id) if id == node as u64 => fence(broker, node, "shut down").await,
            Some(id) => {
                let _ = q.call(id, &AppCall::ShutDown { node_id: node }).await;
            }
            None => {}
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .is_err()
    {
        tracing::warn!("controlled shutdown: the leader did not answer in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_term_restarts_sessions_but_the_previous_leaders_from_its_last_contact() {
        let l = Liveness::default();
        let session = Duration::from_secs(3);
        let live = [2, 3];
        assert!(l.expired(1, &live, session, None).is_empty());
        // Term 2: node 3 led term 1 and went silent 4 s ago; node 2 gets a whole session.
        let silent = Instant::now() - Duration::from_secs(4);
        assert_eq!(l.expired(2, &live, session, Some((3, silent))), vec![3]);
        // Within the term the start is kept: a later call does not move it.
        assert_eq!(l.expired(2, &live, session, None), vec![3]);
        // A previous leader that is not a live broker (a controller-only node) is ignored.
        assert!(l.expired(3, &[2], session, Some((7, silent))).is_empty());
        l.saw(3);
        assert!(l.expired(3, &[2, 3], session, None).is_empty());
    }
}
