//! `PartitionState`: what a replica knows of its partition besides the log, as a pure state
//! machine (no I/O, time passed in): its role and leader epoch from the metadata image, the
//! replica set and ISR, each follower's fetch state (leader only) and the high watermark.
//!
//! The high watermark is the minimum, over the ISR, of the offsets each in-sync replica holds
//! durably: the leader's own durable offset and each follower's fetch offset (a follower
//! fsyncs what it appended before it fetches again, issue 11). It only moves forward. On one
//! node the ISR is the leader alone, so the high watermark is what the log holds durably.

use std::collections::BTreeMap;

/// What this replica is for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Follows `leader` (-1: no leader known).
    Follower {
        leader: i32,
    },
}

/// What the leader knows of one follower from its fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The offset it fetched from: everything below is in its log, durably (`i64::MIN`:
    /// it has not fetched in this leadership).
    pub fetch_offset: i64,
    /// When it last fetched.
    pub last_fetch_ms: i64,
    /// The leader's log end at that fetch.
    pub last_fetch_leader_end: i64,
    /// Its log start offset as it last reported it (-1: not yet), for DeleteRecords' low
    /// watermark.
    pub log_start_offset: i64,
    /// When it was last caught up (Kafka's `lastCaughtUpTimeMs`, for
    /// `replica.lag.time.max.ms`): it fetched from the leader's log end, or from where the
    /// leader's log ended at its previous fetch (then caught up as of that fetch).
    pub last_caught_up_ms: i64,
    /// The broker epoch its last fetch carried (KIP-903; -1: not known).
    pub broker_epoch: i64,
}

impl FollowerState {
    fn new(last_caught_up_ms: i64) -> FollowerState {
        FollowerState {
            fetch_offset: i64::MIN,
            last_fetch_ms: 0,
            last_fetch_leader_end: i64::MIN,
            log_start_offset: -1,
            last_caught_up_ms,
            broker_epoch: -1,
        }
    }
}

/// The partition as the metadata image assigns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// What applying an assignment changed for this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    BecameLeader,
    BecameFollower,
    /// Same role, new epoch or replica set.
    Reconfigured,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    node_id: i32,
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// An ISR change asked of the controller and not yet seen in the image: until then the
    /// high watermark counts the larger of the two (Kafka's maximal ISR).
    pending_isr: Option<Vec<i32>>,
    /// `min.insync.replicas`: below it (capped by the replica count) the high watermark
    /// does not move (Kafka 4.x).
    min_isr: usize,
    /// Where this leadership's epoch starts in the log (leader only).
    epoch_start_offset: i64,
    followers: BTreeMap<i32, FollowerState>,
    /// What this replica's own log holds durably.
    local_offset: i64,
    high_watermark: i64,
}

impl PartitionState {
    /// A replica that knows nothing yet but its log: the high watermark starts at what the
    /// log held durably when opened (Kafka restores it from a checkpoint; part 2).
    pub fn new(node_id: i32, durable_offset: i64, high_watermark: i64) -> PartitionState {
        PartitionState {
            node_id,
            role: Role::Follower { leader: -1 },
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_isr: None,
            min_isr: 1,
            epoch_start_offset: 0,
            followers: BTreeMap::new(),
            local_offset: durable_offset,
            high_watermark: high_watermark.min(durable_offset).max(0),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn pending_isr(&self) -> Option<&[i32]> {
        self.pending_isr.as_deref()
    }

    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    /// The ISR the high watermark counts: the committed one and a pending change's.
    fn maximal_isr(&self) -> impl Iterator<Item = i32> + '_ {
        let pending = self.pending_isr.iter().flatten();
        self.isr
            .iter()
            .chain(pending.filter(|id| !self.isr.contains(*id)))
            .copied()
    }

    /// Too few in-sync replicas for `min.insync.replicas` (capped by the replica count, so
    /// a topic with fewer replicas than its `min.insync.replicas` still works).
    pub fn under_min_isr(&self) -> bool {
        self.isr.len() < self.min_isr.min(self.replicas.len().max(1))
    }

    pub fn set_min_isr(&mut self, min_isr: usize) -> Option<i64> {
        self.min_isr = min_isr.max(1);
        self.advance()
    }

    /// An ISR change has been asked of the controller.
    pub fn set_pending_isr(&mut self, isr: Option<Vec<i32>>) -> Option<i64> {
        self.pending_isr = isr;
        self.advance()
    }

    /// DeleteRecords' low watermark (Kafka's `lowWatermarkIfLeader`): the smallest log
    /// start offset over this leader (`own`) and the in-sync followers, -1 while one has not
    /// reported its own.
    pub fn low_watermark(&self, own: i64) -> i64 {
        self.isr
            .iter()
            .filter(|id| **id != self.node_id)
            .map(|id| self.followers.get(id).map_or(-1, |f| f.log_start_offset))
            .fold(own, i64::min)
    }

    /// In-sync followers not caught up within `lag_max_ms` of `now_ms` (Kafka's
    /// `getOutOfSyncReplicas`), leader only.
    pub fn out_of_sync(&self, now_ms: i64, lag_max_ms: i64) -> Vec<i32> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.isr
            .iter()
            .copied()
            .filter(|id| *id != self.node_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
            })
            .collect()
    }

    /// Followers outside the ISR that hold everything committed and this leadership's
    /// first offset (Kafka's `isFollowerInSync`): they may join it.
    pub fn may_join(&self) -> Vec<i32> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.followers
            .iter()
            .filter(|(id, f)| {
                !self.isr.contains(id)
                    && f.fetch_offset >= self.high_watermark
                    && f.fetch_offset >= self.epoch_start_offset
            })
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// What this replica's own log holds durably, as far as it was told.
    pub fn local_offset(&self) -> i64 {
        self.local_offset
    }

    pub fn follower(&self, id: i32) -> Option<&FollowerState> {
        self.followers.get(&id)
    }

    /// Notes the broker epoch follower `id`'s fetch carried (leader only).
    pub fn set_broker_epoch(&mut self, id: i32, epoch: i64) {
        if let Some(f) = self.followers.get_mut(&id) {
            f.broker_epoch = epoch;
        }
    }

    /// Takes the image's view of the partition. An older leader epoch than the one held is
    /// ignored (images only move forward, but a replayed delta must not undo a newer one).
    pub fn apply(&mut self, a: &Assignment, log_end: i64, now_ms: i64) -> Transition {
        if a.leader_epoch < self.leader_epoch {
            return Transition::None;
        }
        let role = if a.leader == self.node_id {
            Role::Leader
        } else {
            Role::Follower { leader: a.leader }
        };
        let transition = match (self.role, role) {
            (Role::Leader, Role::Leader) | (Role::Follower { .. }, Role::Follower { .. })
                if self.leader_epoch == a.leader_epoch
                    && self.replicas == a.replicas
                    && self.isr == a.isr
                    && self.role == role =>
            {
                Transition::None
            }
            (Role::Follower { .. }, Role::Leader) => Transition::BecameLeader,
            (Role::Leader, Role::Follower { .. }) => Transition::BecameFollower,
            (Role::Follower { leader: was }, Role::Follower { leader }) if was != leader => {
                Transition::BecameFollower
            }
            _ => Transition::Reconfigured,
        };
        let new_leadership = role == Role::Leader
            && (matches!(transition, Transition::BecameLeader)
                || a.leader_epoch != self.leader_epoch);
        if new_leadership {
            // A new leadership starts with no knowledge of the followers (Kafka resets the
            // replicas' states: the in-sync ones count as caught up now).
            self.followers = a
                .replicas
                .iter()
                .filter(|id| **id != self.node_id)
                .map(|id| {
                    let caught_up = if a.isr.contains(id) { now_ms } else { 0 };
                    (*id, FollowerState::new(caught_up))
                })
                .collect();
            self.epoch_start_offset = log_end;
        }
        if role != Role::Leader {
            self.followers.clear();
        }
        self.role = role;
        self.leader_epoch = a.leader_epoch;
        self.partition_epoch = a.partition_epoch;
        self.replicas = a.replicas.clone();
        self.isr = a.isr.clone();
        self.pending_isr = None;
        self.followers.retain(|id, _| a.replicas.contains(id));
        for id in a.replicas.iter().filter(|id| **id != self.node_id) {
            if role == Role::Leader && !self.followers.contains_key(id) {
                self.followers.insert(*id, FollowerState::new(0));
            }
        }
        self.advance();
        transition
    }

    /// This replica's log is durable up to `offset`. Returns the new high watermark if it
    /// moved.
    pub fn set_local_offset(&mut self, offset: i64) -> Option<i64> {
        self.local_offset = self.local_offset.max(offset);
        self.advance()
    }

    /// A follower fetched from `fetch_offset` at `now_ms`, with the leader's log ending at
    /// `log_end_offset` (its log start not given). Returns the new high watermark if it moved.
    #[cfg(test)]
    pub fn record_fetch(
        &mut self,
        id: i32,
        fetch_offset: i64,
        log_end_offset: i64,
        now_ms: i64,
    ) -> Option<i64> {
        self.record_fetch_from(id, fetch_offset, -1, log_end_offset, now_ms)
    }

    /// `record_fetch` with the follower's log start offset (-1: not given).
    pub fn record_fetch_from(
        &mut self,
        id: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
        now_ms: i64,
    ) -> Option<i64> {
        if !self.is_leader() || !self.replicas.contains(&id) || id == self.node_id {
            return None;
        }
        let f = self
            .followers
            .entry(id)
            .or_insert_with(|| FollowerState::new(0));
        if fetch_offset >= log_end_offset {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.fetch_offset = fetch_offset;
        if log_start_offset >= 0 {
            f.log_start_offset = log_start_offset;
        }
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = log_end_offset;
        self.advance()
    }

    /// Lowers what this replica holds (a follower truncating its log). The high watermark
    /// never moves back, but a follower's is capped by its log.
    pub fn truncated_to(&mut self, offset: i64) {
        self.local_offset = self.local_offset.min(offset);
        if !self.is_leader() {
            self.high_watermark = self.high_watermark.min(offset);
        }
    }

    /// A follower takes the leader's high watermark, capped by what it holds itself.
    pub fn follower_high_watermark(&mut self, leader_high_watermark: i64) -> Option<i64> {
        let hw = leader_high_watermark.min(self.local_offset);
        (!self.is_leader() && hw > self.high_watermark).then(|| {
            self.high_watermark = hw;
            hw
        })
    }

    /// Moves the high watermark to the minimum over the ISR, only forward (leader only).
    fn advance(&mut self) -> Option<i64> {
        if !self.is_leader() || self.under_min_isr() {
            return None;
        }
        let mut min = self.local_offset;
        for id in self.maximal_isr().filter(|id| *id != self.node_id) {
            // A follower that has not fetched since this leadership began holds nothing yet
            // the leader knows of.
            let held = self.followers.get(&id).map_or(i64::MIN, |f| f.fetch_offset);
            min = min.min(held);
        }
        (min > self.high_watermark).then(|| {
            self.high_watermark = min;
            min
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assignment(leader: i32, epoch: i32, replicas: &[i32], isr: &[i32]) -> Assignment {
        Assignment {
            leader,
            leader_epoch: epoch,
            partition_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn a_single_replica_leader_follows_its_durable_offset() {
        let mut s = PartitionState::new(1, 0, 0);
        assert_eq!(
            s.apply(&assignment(1, 0, &[1], &[1]), 0, 0),
            Transition::BecameLeader
        );
        assert_eq!(s.set_local_offset(5), Some(5));
        assert_eq!(s.set_local_offset(3), None, "never back");
        assert_eq!(s.high_watermark(), 5);
        assert_eq!(
            s.apply(&assignment(1, 0, &[1], &[1]), 0, 0),
            Transition::None
        );
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower() {
        let mut s = PartitionState::new(1, 0, 0);
        s.apply(&assignment(1, 3, &[1, 2, 3], &[1, 2, 3]), 0, 0);
        assert_eq!(s.set_local_offset(10), None, "followers have not fetched");
        assert_eq!(s.record_fetch(2, 10, 10, 100), None);
        assert_eq!(s.record_fetch(3, 7, 10, 100), Some(7));
        assert_eq!(s.follower(3).map(|f| f.last_caught_up_ms), Some(0));
        // Out of the ISR, 3 no longer holds it back.
        s.apply(&assignment(1, 3, &[1, 2, 3], &[1, 2]), 0, 0);
        assert_eq!(s.high_watermark(), 10);
    }

    #[test]
    fn old_epochs_are_ignored_and_a_move_is_a_transition() {
        let mut s = PartitionState::new(2, 0, 0);
        assert_eq!(
            s.apply(&assignment(1, 4, &[1, 2], &[1, 2]), 0, 0),
            Transition::BecameFollower
        );
        assert_eq!(
            s.apply(&assignment(2, 3, &[1, 2], &[2]), 0, 0),
            Transition::None
        );
        assert_eq!(
            s.apply(&assignment(2, 5, &[1, 2], &[2]), 0, 0),
            Transition::BecameLeader
        );
        assert_eq!(s.leader_epoch(), 5);
        assert_eq!(
            s.apply(&assignment(1, 6, &[1, 2], &[1, 2]), 0, 0),
            Transition::BecameFollower
        );
        assert_eq!(s.record_fetch(1, 10, 10, 0), None, "followers do not track");
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_may_join() {
        let mut s = PartitionState::new(1, 0, 0);
        // Leader of a new epoch at log end 10; 3 is not in sync.
        s.apply(&assignment(1, 2, &[1, 2, 3], &[1, 2]), 10, 1_000);
        assert_eq!(s.epoch_start_offset(), 10);
        assert!(
            s.out_of_sync(1_500, 1_000).is_empty(),
            "in sync as of the leadership"
        );
        assert_eq!(s.out_of_sync(2_001, 1_000), vec![2], "never fetched since");
        s.set_local_offset(12);
        // 2 fetches at the log end: caught up.
        s.record_fetch(2, 12, 12, 2_000);
        assert_eq!(s.high_watermark(), 12);
        assert!(s.out_of_sync(2_900, 1_000).is_empty());
        // 2 falls behind the log end but reaches where it ended at its last fetch: still
        // caught up as of that fetch (Kafka's rule), not as of now.
        s.record_fetch(2, 12, 20, 2_500);
        assert_eq!(s.follower(2).map(|f| f.last_caught_up_ms), Some(2_000));
        s.record_fetch(2, 15, 25, 2_600);
        assert_eq!(s.follower(2).map(|f| f.last_caught_up_ms), Some(2_000));
        s.record_fetch(2, 25, 30, 2_700);
        assert_eq!(s.follower(2).map(|f| f.last_caught_up_ms), Some(2_600));
        // 3 below the epoch start may not join; at the high watermark and past it, it may.
        s.record_fetch(3, 9, 25, 2_700);
        assert!(s.may_join().is_empty());
        s.record_fetch(3, 12, 25, 2_800);
        assert_eq!(s.may_join(), vec![3]);
    }

    #[test]
    fn a_pending_expansion_counts_and_min_isr_holds_the_high_watermark() {
        let mut s = PartitionState::new(1, 0, 0);
        s.apply(&assignment(1, 0, &[1, 2, 3], &[1, 2]), 0, 0);
        s.set_local_offset(10);
        s.record_fetch(2, 10, 10, 0);
        assert_eq!(s.high_watermark(), 10);
        // 3 joining: the high watermark waits for it too until the change lands.
        s.record_fetch(3, 5, 10, 0);
        s.set_pending_isr(Some(vec![1, 2, 3]));
        s.set_local_offset(20);
        s.record_fetch(2, 20, 20, 0);
        assert_eq!(s.high_watermark(), 10, "3 holds it back");
        s.record_fetch(3, 20, 20, 0);
        assert_eq!(s.high_watermark(), 20);
        // Two in sync of three with min.insync.replicas=3: the high watermark stays.
        s.apply(&assignment(1, 0, &[1, 2, 3], &[1, 2]), 20, 0);
        s.set_min_isr(3);
        s.set_local_offset(30);
        s.record_fetch(2, 30, 30, 0);
        assert_eq!(s.high_watermark(), 20);
        assert!(s.under_min_isr());
        // min.insync.replicas above the replica count is capped by it.
        let mut one = PartitionState::new(1, 0, 0);
        one.apply(&assignment(1, 0, &[1], &[1]), 0, 0);
        one.set_min_isr(2);
        assert_eq!(one.set_local_offset(4), Some(4));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Local(i64),
        Fetch(i32, i64),
        Isr(Vec<i32>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0i64..100).prop_map(Step::Local),
            (2i32..5, 0i64..100).prop_map(|(id, o)| Step::Fetch(id, o)),
            proptest::sample::subsequence(vec![2, 3, 4], 0..=3).prop_map(Step::Isr),
        ]
    }

    proptest! {
        /// The model: the high watermark never decreases, and whenever it moves it is at most
        /// what every in-sync replica holds (leader: the largest local offset given; a
        /// follower: its last fetch offset).
        #[test]
        fn high_watermark_model(steps in proptest::collection::vec(step(), 0..60)) {
            let mut s = PartitionState::new(1, 0, 0);
            s.apply(&assignment(1, 0, &[1, 2, 3, 4], &[1, 2, 3, 4]), 0, 0);
            let mut local = 0i64;
            let mut fetched: BTreeMap<i32, i64> = BTreeMap::new();
            let mut isr = vec![1, 2, 3, 4];
            for st in steps {
                let before = s.high_watermark();
                let moved = match st {
                    Step::Local(o) => { local = local.max(o); s.set_local_offset(o) }
                    Step::Fetch(id, o) => { fetched.insert(id, o); s.record_fetch(id, o, local, 0) }
                    Step::Isr(followers) => {
                        isr = std::iter::once(1).chain(followers).collect();
                        s.apply(&assignment(1, 0, &[1, 2, 3, 4], &isr), 0, 0);
                        None
                    }
                };
                prop_assert!(s.high_watermark() >= before);
                if let Some(hw) = moved {
                    prop_assert_eq!(hw, s.high_watermark());
                }
                if s.high_watermark() > before {
                    prop_assert!(s.high_watermark() <= local);
                    for id in isr.iter().filter(|id| **id != 1) {
                        prop_assert!(s.high_watermark() <= fetched.get(id).copied().unwrap_or(i64::MIN));
                    }
                }
            }
        }
    }
}
