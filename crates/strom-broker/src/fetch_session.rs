//! Incremental fetch sessions (KIP-227): a consumer's partitions are remembered between
//! fetches, so later requests name only what changed and responses carry only partitions
//! with news (records, a moved high watermark or log start, an error).
//!
//! A pure cache: the fetch handler asks it to resolve a request into the partitions to read,
//! and reports back what each response told the client.

use std::collections::HashMap;
use uuid::Uuid;

/// `max.incremental.fetch.session.cache.slots`, Kafka's default (the key sets the bound).
pub const SESSIONS_DEFAULT: usize = 1000;
/// Partitions one session may hold.
pub const PARTITIONS_PER_SESSION_MAX: usize = 100_000;

/// Error codes a session lookup can answer with.
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// One partition of a fetch: what to read, and what the client last heard about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPartition {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    /// The leader epoch the client knows (-1: unknown), checked at every fetch.
    pub current_leader_epoch: i32,
    /// A follower's `LastFetchedEpoch` (-1: none): where its log may diverge.
    pub last_fetched_epoch: i32,
    /// A follower's own log start offset (-1: not given).
    pub log_start_offset: i64,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// (high watermark, log start) last sent; None until first sent.
    pub last_sent: Option<(i64, i64)>,
}

impl SessionPartition {
    fn same_partition(&self, other: &SessionPartition) -> bool {
        self.partition == other.partition
            && if self.topic_id.is_nil() && other.topic_id.is_nil() {
                self.topic == other.topic
            } else {
                self.topic_id == other.topic_id
            }
    }
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    partitions: Vec<SessionPartition>,
    last_used: u64,
}

/// How a fetch request relates to sessions.
#[derive(Debug)]
pub enum Resolved {
    /// Read these and answer with every one of them, under `session_id` (0: sessionless).
    Full {
        session_id: i32,
        partitions: Vec<SessionPartition>,
    },
    /// Read these and answer with the ones that have news; then report with `sent`.
    Incremental {
        session_id: i32,
        partitions: Vec<SessionPartition>,
    },
    /// Refuse the whole request with this top-level error.
    Error(i16),
}

#[derive(Debug)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    /// `max.incremental.fetch.session.cache.slots`: sessions held at most; with 0, none is
    /// created and every fetch is a full one under session id 0, as in Kafka.
    slots: usize,
    next_id: i32,
    clock: u64,
}

impl FetchSessions {
    pub fn new(slots: usize) -> FetchSessions {
        FetchSessions {
            sessions: HashMap::new(),
            slots,
            next_id: 0,
            clock: 0,
        }
    }

    /// Applies a request: `requested` are the partitions it names (with offsets), `forgotten`
    /// the ones it drops.
    pub fn resolve(
        &mut self,
        session_id: i32,
        epoch: i32,
        requested: Vec<SessionPartition>,
        forgotten: &[(String, Uuid, i32)],
    ) -> Resolved {
        self.clock += 1;
        match (session_id, epoch) {
            (id, -1) => {
                // A full fetch outside any session; it also closes the named session.
                self.sessions.remove(&id);
                Resolved::Full {
                    session_id: 0,
                    partitions: requested,
                }
            }
            (id, 0) => {
                self.sessions.remove(&id);
                let new_id = self.create(&requested);
                Resolved::Full {
                    session_id: new_id,
                    partitions: requested,
                }
            }
            (id, n) => {
                let Some(session) = self.sessions.get_mut(&id) else {
                    return Resolved::Error(FETCH_SESSION_ID_NOT_FOUND);
                };
                if session.next_epoch != n {
                    return Resolved::Error(INVALID_FETCH_SESSION_EPOCH);
                }
                session.next_epoch = if n == i32::MAX { 1 } else { n + 1 };
                session.last_used = self.clock;
                session.partitions.retain(|p| {
                    !forgotten.iter().any(|(t, tid, i)| {
                        *i == p.partition
                            && (if tid.is_nil() {
                                *t == p.topic
                            } else {
                                *tid == p.topic_id
                            })
                    })
                });
                for r in requested {
                    if let Some(p) = session.partitions.iter_mut().find(|p| p.same_partition(&r)) {
                        p.fetch_offset = r.fetch_offset;
                        p.current_leader_epoch = r.current_leader_epoch;
                        p.last_fetched_epoch = r.last_fetched_epoch;
                        p.log_start_offset = r.log_start_offset;
                        p.max_bytes = r.max_bytes;
                    } else if session.partitions.len() < PARTITIONS_PER_SESSION_MAX {
                        session.partitions.push(r);
                    }
                }
                Resolved::Incremental {
                    session_id: id,
                    partitions: session.partitions.clone(),
                }
            }
        }
    }

    /// Starts a session (evicting the least recently used one when full); 0 if none could be.
    fn create(&mut self, partitions: &[SessionPartition]) -> i32 {
        if partitions.len() > PARTITIONS_PER_SESSION_MAX || self.slots == 0 {
            return 0;
        }
        if self.sessions.len() >= self.slots {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
            {
                self.sessions.remove(&oldest);
            }
        }
        loop {
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.sessions.contains_key(&self.next_id) {
                break;
            }
        }
        self.sessions.insert(
            self.next_id,
            Session {
                next_epoch: 1,
                partitions: partitions.to_vec(),
                last_used: self.clock,
            },
        );
        self.next_id
    }

    /// Records what a response told the client (high watermark and log start per partition),
    /// so the next incremental response can leave out partitions with no news.
    pub fn sent(&mut self, session_id: i32, sent: &[(String, Uuid, i32, i64, i64)]) {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return;
        };
        for (topic, topic_id, partition, hw, start) in sent {
            if let Some(p) = session.partitions.iter_mut().find(|p| {
                p.partition == *partition
                    && (if topic_id.is_nil() {
                        p.topic == *topic
                    } else {
                        p.topic_id == *topic_id
                    })
            }) {
                p.last_sent = Some((*hw, *start));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(topic: &str, partition: i32, offset: i64) -> SessionPartition {
        SessionPartition {
            topic: topic.into(),
            topic_id: Uuid::nil(),
            partition,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            fetch_offset: offset,
            max_bytes: 1000,
            last_sent: None,
        }
    }

    #[test]
    fn sessions_remember_partitions_and_check_epochs() {
        let mut s = FetchSessions::new(SESSIONS_DEFAULT);
        let Resolved::Full {
            session_id,
            partitions,
        } = s.resolve(0, 0, vec![part("a", 0, 5), part("a", 1, 7)], &[])
        else {
            panic!()
        };
        assert!(session_id > 0);
        assert_eq!(partitions.len(), 2);
        // Epoch 1: only partition 1 moved; partition 0 is remembered.
        let Resolved::Incremental { partitions, .. } =
            s.resolve(session_id, 1, vec![part("a", 1, 9)], &[])
        else {
            panic!()
        };
        assert_eq!(
            partitions
                .iter()
                .map(|p| (p.partition, p.fetch_offset))
                .collect::<Vec<_>>(),
            vec![(0, 5), (1, 9)]
        );
        // A replayed epoch is refused, an unknown session too.
        assert!(matches!(
            s.resolve(session_id, 1, vec![], &[]),
            Resolved::Error(INVALID_FETCH_SESSION_EPOCH)
        ));
        assert!(matches!(
            s.resolve(999, 1, vec![], &[]),
            Resolved::Error(FETCH_SESSION_ID_NOT_FOUND)
        ));
        // Forgetting a partition.
        let Resolved::Incremental { partitions, .. } =
            s.resolve(session_id, 2, vec![], &[("a".into(), Uuid::nil(), 0)])
        else {
            panic!()
        };
        assert_eq!(partitions.len(), 1);
        // Epoch -1 closes it.
        assert!(matches!(
            s.resolve(session_id, -1, vec![], &[]),
            Resolved::Full { session_id: 0, .. }
        ));
        assert!(matches!(
            s.resolve(session_id, 3, vec![], &[]),
            Resolved::Error(FETCH_SESSION_ID_NOT_FOUND)
        ));
    }

    #[test]
    fn the_cache_is_bounded_by_its_slots() {
        for slots in [SESSIONS_DEFAULT, 3] {
            let mut s = FetchSessions::new(slots);
            for _ in 0..slots + 10 {
                s.resolve(0, 0, vec![part("a", 0, 0)], &[]);
            }
            assert_eq!(s.sessions.len(), slots);
        }
    }

    #[test]
    fn no_slots_means_full_fetches_under_session_id_0() {
        let mut s = FetchSessions::new(0);
        for _ in 0..3 {
            let Resolved::Full {
                session_id,
                partitions,
            } = s.resolve(0, 0, vec![part("a", 0, 5)], &[])
            else {
                panic!("a full fetch")
            };
            assert_eq!((session_id, partitions.len()), (0, 1));
        }
        assert!(s.sessions.is_empty());
        // A client that still tries epoch 1 of a session finds none.
        assert!(matches!(
            s.resolve(1, 1, vec![], &[]),
            Resolved::Error(FETCH_SESSION_ID_NOT_FOUND)
        ));
    }
}
