//! Replication's calls on a partition. On the leader: a follower's fetch moves its fetch
//! state (and maybe the high watermark), the ISR change in flight, `min.insync.replicas`.
//! On a follower: the leader's batches appended at their offsets, truncation where the logs
//! diverge, the leader's high watermark and log start taken.

use super::{lock, now_ms, Partition};
use crate::error::{self, BrokerError, Code};
use kafka_protocol::error::ResponseError;
use strom_log::LogError;
use strom_proto::BatchHeader;

/// Which ISR change a leader considers (`Partition::isr_change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrChangeKind {
    /// Follower `id` fetched and may have caught up.
    Join(i32),
    /// The periodic check for lagging followers.
    Shrink { lag_max_ms: i64 },
}

impl Partition {
    /// Follower `id` fetched from `fetch_offset` in broker epoch `broker_epoch` (leader
    /// only). Whether it may now join the ISR (caught up, and no ISR change in flight).
    pub fn follower_fetched(
        &self,
        (id, broker_epoch): (i32, i64),
        fetch_offset: i64,
        log_start: i64,
    ) -> bool {
        let mut shared = lock(&self.shared);
        let before = shared.state.high_watermark();
        let end = self.log.log_end_offset();
        shared
            .state
            .record_fetch_from(id, fetch_offset, log_start, end, now_ms());
        shared.state.set_broker_epoch(id, broker_epoch);
        let join = shared.state.pending_isr().is_none() && shared.state.may_join().contains(&id);
        self.settle(shared, before);
        join
    }

    /// The ISR change this leader should ask for now, if any, marked in flight (Kafka's
    /// `maybeExpandIsr` / `maybeShrinkIsr`): `Join(id)`, the follower that just fetched,
    /// in if it caught up; `Shrink`, the followers not caught up for `lag_max_ms` out. Each
    /// names only the replicas it is about: a dead follower whose last fetch still looks
    /// caught up (the high watermark stuck below min.insync.replicas) never joins with
    /// another. None while another change is in flight or nothing changes.
    /// `own_epoch` is this broker's epoch, named with the followers' in the change.
    pub fn isr_change(
        &self,
        kind: IsrChangeKind,
        own_epoch: i64,
    ) -> Option<strom_meta::isr::IsrChange> {
        let mut shared = lock(&self.shared);
        let st = &shared.state;
        if !st.is_leader() || st.pending_isr().is_some() {
            return None;
        }
        let (out, join) = match kind {
            IsrChangeKind::Shrink { lag_max_ms } => (st.out_of_sync(now_ms(), lag_max_ms), None),
            IsrChangeKind::Join(id) => (Vec::new(), st.may_join().contains(&id).then_some(id)),
        };
        let isr: Vec<i32> = st
            .replicas()
            .iter()
            .copied()
            .filter(|id| (st.isr().contains(id) && !out.contains(id)) || join == Some(*id))
            .collect();
        let mut same = st.isr().to_vec();
        same.sort_unstable();
        let mut sorted = isr.clone();
        sorted.sort_unstable();
        if sorted == same {
            return None;
        }
        let change = strom_meta::isr::IsrChange {
            topic_id: self.topic_id,
            partition: self.index,
            leader: st.node_id(),
            leader_epoch: st.leader_epoch(),
            partition_epoch: st.partition_epoch(),
            new_isr: isr.clone(),
            broker_epochs: isr
                .iter()
                .map(|id| match st.follower(*id) {
                    _ if *id == st.node_id() => (*id, own_epoch),
                    Some(f) => (*id, f.broker_epoch),
                    None => (*id, -1),
                })
                .collect(),
        };
        let before = st.high_watermark();
        shared.state.set_pending_isr(Some(isr));
        self.settle(shared, before);
        Some(change)
    }

    /// The in-sync followers whose logs, as of their last fetch, hold `offset`, with where
    /// their logs end (leader only; KIP-392's candidates to serve a consumer).
    pub fn read_replicas(&self, offset: i64) -> Vec<(i32, i64)> {
        let shared = lock(&self.shared);
        let st = &shared.state;
        if !st.is_leader() {
            return Vec::new();
        }
        st.isr()
            .iter()
            .filter(|id| **id != st.node_id())
            .filter_map(|id| st.follower(*id).map(|f| (*id, f)))
            .filter(|(_, f)| f.fetch_offset >= offset && f.log_start_offset <= offset)
            .map(|(id, f)| (id, f.fetch_offset))
            .collect()
    }

    /// A consumer's fetch epoch check on any replica, leader or follower (KIP-392: a
    /// follower serves consumers too): FENCED_LEADER_EPOCH for an older epoch than this
    /// replica's, UNKNOWN_LEADER_EPOCH for a newer one.
    pub fn replica_epoch_checked(&self, current: i32) -> Result<i32, Code> {
        let epoch = lock(&self.shared).state.leader_epoch();
        match current {
            c if c >= 0 && c < epoch => Err(error::code(ResponseError::FencedLeaderEpoch)),
            c if c > epoch => Err(error::code(ResponseError::UnknownLeaderEpoch)),
            _ => Ok(epoch),
        }
    }

    /// Whether the ISR change `isr` is still in flight here.
    pub fn isr_pending(&self, isr: &[i32]) -> bool {
        lock(&self.shared).state.pending_isr() == Some(isr)
    }

    /// The ISR change `isr` is no longer in flight (answered or refused): cleared unless
    /// another change took its place meanwhile.
    pub fn end_pending_isr(&self, isr: &[i32]) {
        let mut shared = lock(&self.shared);
        if shared.state.pending_isr() != Some(isr) {
            return;
        }
        let before = shared.state.high_watermark();
        shared.state.set_pending_isr(None);
        self.settle(shared, before);
    }

    /// The topic's `min.insync.replicas`.
    pub fn set_min_isr(&self, min_isr: usize) {
        let mut shared = lock(&self.shared);
        let before = shared.state.high_watermark();
        shared.state.set_min_isr(min_isr);
        self.settle(shared, before);
    }

    /// The newest leader epoch in this replica's log (a follower's `LastFetchedEpoch`).
    pub fn latest_epoch(&self) -> i32 {
        self.log.latest_epoch()
    }

    /// Where `epoch` ends in this replica's log (OffsetForLeaderEpoch, divergence).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.log.end_offset_for_epoch(epoch)
    }

    /// Appends what the leader of `leader_epoch` sent, at the leader's offsets; refused with
    /// NOT_LEADER_OR_FOLLOWER once this replica's role or epoch moved on. A trailing
    /// partial batch (a leader may cut one at its byte limit) is left for the next fetch.
    /// The last offset appended, if any.
    pub fn append_as_follower(
        &self,
        leader_epoch: i32,
        records: &[u8],
    ) -> Result<Option<i64>, (Code, String)> {
        let whole = whole_batches(records);
        if whole == 0 {
            return Ok(None);
        }
        let mut producers = lock(&self.producers);
        {
            let shared = lock(&self.shared);
            if shared.state.is_leader() || shared.state.leader_epoch() != leader_epoch {
                return Err((
                    error::code(ResponseError::NotLeaderOrFollower),
                    "no longer a follower of that leader epoch".into(),
                ));
            }
        }
        let mut owned = records.get(..whole).unwrap_or_default().to_vec();
        let info = self
            .log
            .append_as_follower(&mut owned)
            .map_err(|e| (error::log_error(&e), e.to_string()))?;
        let mut at = 0usize;
        while let Some(h) = owned.get(at..).and_then(|b| BatchHeader::parse(b).ok()) {
            self.record_stored(&mut producers, &h, owned.get(at..at + h.size()))
                .map_err(|e| (error::log_error(&e), e.to_string()))?;
            at += h.size();
        }
        self.snapshot_on_roll(&producers);
        drop(producers);
        self.track_durable(info.last_offset);
        Ok(Some(info.last_offset))
    }

    /// Cuts this follower's log to `offset` (its log diverged from the leader's there) and
    /// rebuilds its producers' state from what is left; only while it still follows the
    /// leader of `leader_epoch` (false: it no longer does, nothing was cut).
    pub fn truncate_to(&self, leader_epoch: i32, offset: i64) -> Result<bool, BrokerError> {
        self.cut(leader_epoch, offset, |log| log.truncate_to(offset))
    }

    /// Empties this follower's log and restarts it at the leader's log start (as
    /// `truncate_to`, only while following the leader of `leader_epoch`).
    pub fn truncate_fully_and_start_at(
        &self,
        leader_epoch: i32,
        offset: i64,
    ) -> Result<bool, BrokerError> {
        self.cut(leader_epoch, -1, |log| {
            log.truncate_fully_and_start_at(offset)
        })
    }

    /// A truncation to `to` (-1: the whole log). The producers' snapshots past it are
    /// deleted first, durably: one that outlived the cut in a crash would describe batches
    /// the log no longer has.
    fn cut(
        &self,
        leader_epoch: i32,
        to: i64,
        op: impl FnOnce(&strom_log::Log) -> Result<(), LogError>,
    ) -> Result<bool, BrokerError> {
        // Under `producers`, which a change of role takes too: a replica that became leader
        // meanwhile never cuts its log on a former leader's word.
        let mut producers = lock(&self.producers);
        {
            let shared = lock(&self.shared);
            if shared.state.is_leader() || shared.state.leader_epoch() != leader_epoch {
                return Ok(false);
            }
        }
        crate::producer_snapshot::delete_above(self.log.dir(), to)?;
        op(&self.log)?;
        lock(&self.shared)
            .state
            .truncated_to(self.log.log_end_offset());
        self.load_producers_into(&mut producers)?;
        Ok(true)
    }

    /// A follower of the leader of `leader_epoch` takes its high watermark (capped by what
    /// it holds durably); ignored once this replica's role or epoch moved on.
    pub fn follow_high_watermark(&self, leader_epoch: i32, leader_high_watermark: i64) {
        let mut shared = lock(&self.shared);
        if shared.state.is_leader() || shared.state.leader_epoch() != leader_epoch {
            return;
        }
        let before = shared.state.high_watermark();
        shared.state.follower_high_watermark(leader_high_watermark);
        self.settle(shared, before);
    }

    /// A follower takes its leader's log start offset when it moved past its own.
    pub fn follow_log_start(&self, leader_log_start: i64) -> Result<(), LogError> {
        if leader_log_start > self.log.log_start_offset()
            && leader_log_start <= self.log.log_end_offset()
        {
            self.log.delete_records_before(leader_log_start)?;
        }
        Ok(())
    }

    /// DeleteRecords' low watermark: the smallest log start over the in-sync replicas.
    pub fn low_watermark(&self) -> i64 {
        lock(&self.shared)
            .state
            .low_watermark(self.log.log_start_offset())
    }

    /// The leader epoch of the record at `offset`, as this replica's log knows it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.log.epoch_at(offset)
    }

    /// A leader whose high watermark has not yet reached the start of its epoch (KIP-207).
    pub fn epoch_start_pending(&self) -> bool {
        let shared = lock(&self.shared);
        shared.state.is_leader()
            && shared.state.high_watermark() < shared.state.epoch_start_offset()
    }

    /// This replica's role.
    pub fn role(&self) -> crate::partition::state::Role {
        lock(&self.shared).state.role()
    }

    /// Whether broker `id` holds a replica of this partition.
    pub fn is_replica(&self, id: i32) -> bool {
        lock(&self.shared).state.replicas().contains(&id)
    }

    /// Whether broker `id` is in the ISR (as the image says).
    pub fn in_sync(&self, id: i32) -> bool {
        lock(&self.shared).state.isr().contains(&id)
    }

    /// Which replication throttles apply to this replica (its topic's throttled replicas).
    pub fn set_throttled(&self, as_leader: bool, as_follower: bool) {
        let bits = u8::from(as_leader) | (u8::from(as_follower) << 1);
        self.throttled
            .store(bits, std::sync::atomic::Ordering::Relaxed);
    }

    /// A follower `id` fetching from this leader is throttled: listed and out of sync.
    pub fn leader_throttled(&self, id: i32) -> bool {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed) & 1 != 0 && !self.in_sync(id)
    }

    /// This follower's fetching is throttled: listed and out of sync.
    pub fn follower_throttled(&self, me: i32) -> bool {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed) & 2 != 0 && !self.in_sync(me)
    }
}

/// The length of the whole batches at the start of `records`.
fn whole_batches(records: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(h) = records.get(at..).and_then(|b| BatchHeader::parse(b).ok()) {
        if at + h.size() > records.len() {
            break;
        }
        at += h.size();
    }
    at
}
