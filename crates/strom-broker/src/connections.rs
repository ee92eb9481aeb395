//! The process's descriptors, shared by client connections and open segment files: both
//! come out of `RLIMIT_NOFILE` (raised to its hard limit at start-up). Segment files are a
//! cache (`strom_log::Handles`), closed least recently used first, so connections come
//! first: every connection admitted lowers the files' share, and `max.connections` (capped
//! by the limit, less a reserve) refuses connections before descriptors run out.
//!
//! Also Kafka's other connection quotas: `max.connections.per.ip` (with
//! `max.connections.per.ip.overrides`) closes a new connection from an address that has
//! its share open, and `max.connection.creation.rate` paces the acceptors (a connection
//! past the rate waits in the listen backlog, as in Kafka, rather than being refused). As
//! in Kafka, the broker-wide rate leaves the inter-broker listener alone (replicas must
//! reconnect after a failure); `listener.name.<listener>.max.connection.creation.rate`
//! paces one listener, that one included.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use strom_log::Handles;

/// Descriptors kept back for short-lived files (checkpoints, directory syncs, index
/// trims), listeners, the metadata quorum's and the replicas' own connections.
pub const RESERVED: usize = 256;
/// Segment files the cache may always hold, however many connections there are.
pub const FILES_MIN: usize = 64;
/// Connections of the HTTP listener open at once, at most.
pub const OTHER_MAX: usize = 1024;

/// The connection quotas a broker is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `max.connections`.
    pub max: usize,
    /// `max.connections.per.ip`, and the addresses `max.connections.per.ip.overrides` sets
    /// apart.
    pub per_ip: usize,
    pub per_ip_overrides: HashMap<IpAddr, usize>,
    /// `max.connection.creation.rate`: connections accepted per second, over all client
    /// listeners but the inter-broker one.
    pub creation_rate: u32,
    /// `listener.name.<listener>.max.connection.creation.rate`, by listener name (upper
    /// case, as listener names are compared).
    pub listener_rates: HashMap<String, u32>,
    /// `inter.broker.listener.name` (Kafka's default: the listener named after
    /// `security.inter.broker.protocol`, PLAINTEXT).
    pub inter_broker_listener: String,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max: i32::MAX as usize,
            per_ip: i32::MAX as usize,
            per_ip_overrides: HashMap::new(),
            creation_rate: i32::MAX as u32,
            listener_rates: HashMap::new(),
            inter_broker_listener: "PLAINTEXT".into(),
        }
    }
}

#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    /// Connections admitted at most.
    max: usize,
    per_ip: usize,
    per_ip_overrides: HashMap<IpAddr, usize>,
    /// Open connections by address; kept only when some address has a quota.
    by_ip: Option<Mutex<HashMap<IpAddr, usize>>>,
    /// The broker-wide rate, and each listener's own.
    pace: Option<Mutex<Pace>>,
    listener_paces: HashMap<String, Mutex<Pace>>,
    inter_broker_listener: String,
    /// Connections of other listeners (HTTP): their descriptors count, Kafka's quotas not.
    other: AtomicUsize,
    /// The open-file limit.
    nofile: usize,
    /// `strom.log.open.files.max`, or half the limit.
    files_max: usize,
    refused: AtomicU64,
}

impl Connections {
    pub fn new(limits: Limits, log_open_files_max: usize) -> Arc<Connections> {
        let nofile = strom_log::handles::open_files_limit();
        let files_max = match log_open_files_max {
            0 => nofile / 2,
            n => n,
        };
        let max = limits
            .max
            .min(nofile.saturating_sub(RESERVED + FILES_MIN))
            .max(1);
        let quota_per_ip =
            limits.per_ip < max || limits.per_ip_overrides.values().any(|&n| n < max);
        let c = Arc::new(Connections {
            open: AtomicUsize::new(0),
            max,
            per_ip: limits.per_ip,
            per_ip_overrides: limits.per_ip_overrides,
            by_ip: quota_per_ip.then(|| Mutex::new(HashMap::new())),
            pace: (limits.creation_rate < i32::MAX as u32)
                .then(|| Mutex::new(Pace::new(limits.creation_rate))),
            listener_paces: limits
                .listener_rates
                .iter()
                .filter(|(_, r)| **r < i32::MAX as u32)
                .map(|(l, r)| (l.to_ascii_uppercase(), Mutex::new(Pace::new(*r))))
                .collect(),
            inter_broker_listener: limits.inter_broker_listener.to_ascii_uppercase(),
            other: AtomicUsize::new(0),
            nofile,
            files_max,
            refused: AtomicU64::new(0),
        });
        c.share_files(0);
        c
    }

    /// Connections admitted at most (`max.connections`, capped by the limit).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Admits one more connection from `peer`, or None (the caller closes it) at
    /// `max.connections` or at the address's `max.connections.per.ip`.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        // An IPv4 client of a dual-stack listener counts as its IPv4 address.
        let peer = peer.to_canonical();
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if n > self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.refuse(
                "max.connections reached: closing new connections",
                self.max,
                peer,
            );
            return None;
        }
        if let Some(by_ip) = &self.by_ip {
            let quota = self
                .per_ip_overrides
                .get(&peer)
                .copied()
                .unwrap_or(self.per_ip);
            let mut by_ip = by_ip.lock().unwrap_or_else(PoisonError::into_inner);
            // A refused address leaves no entry behind (a scan of many must not grow it).
            if by_ip.get(&peer).copied().unwrap_or(0) >= quota {
                drop(by_ip);
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.refuse(
                    "max.connections.per.ip reached: closing the new connection",
                    quota,
                    peer,
                );
                return None;
            }
            *by_ip.entry(peer).or_insert(0) += 1;
        }
        self.share_files(n);
        Some(Admitted(Arc::clone(self), peer))
    }

    fn refuse(&self, why: &'static str, max: usize, peer: IpAddr) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed);
        // The first refusal and then one in a thousand: a flood must not flood the log.
        if refused.is_multiple_of(1000) {
            tracing::warn!(max, refused = refused + 1, %peer, "{why}");
        }
    }

    /// How long `listener`'s acceptor waits before taking its next connection, to keep to
    /// the listener's rate and (but for the inter-broker listener) the broker's: the longer
    /// of the two, a token taken from each, as Kafka records a connection on both (zero:
    /// take it now).
    pub fn pace(&self, listener: &str) -> Duration {
        let take = |p: &Mutex<Pace>| {
            p.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(Instant::now())
        };
        let listener = listener.to_ascii_uppercase();
        let own = self
            .listener_paces
            .get(&listener)
            .map_or(Duration::ZERO, take);
        let broker_wide = match listener == self.inter_broker_listener {
            true => Duration::ZERO,
            false => self.pace.as_ref().map_or(Duration::ZERO, take),
        };
        own.max(broker_wide)
    }

    /// A connection of the HTTP listener: its descriptor lowers the segment files' share as
    /// a client's does; Kafka's quotas do not apply. None past `OTHER_MAX` open.
    pub fn admit_other(self: &Arc<Self>) -> Option<OtherConnection> {
        if self.other.fetch_add(1, Ordering::AcqRel) >= OTHER_MAX {
            self.other.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.share_files(self.open.load(Ordering::Acquire));
        Some(OtherConnection(Arc::clone(self)))
    }

    /// The segment files' share with `connections` client connections open (and those of
    /// other listeners).
    fn share_files(&self, connections: usize) {
        let others = self.other.load(Ordering::Acquire);
        let left = self.nofile.saturating_sub(RESERVED + connections + others);
        Handles::files().set_limit(self.files_max.min(left).max(FILES_MIN));
    }
}

/// A connection counted until dropped.
#[derive(Debug)]
pub struct Admitted(Arc<Connections>, IpAddr);

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(by_ip) = &self.0.by_ip {
            let mut by_ip = by_ip.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(open) = by_ip.get_mut(&self.1) {
                *open -= 1;
                if *open == 0 {
                    by_ip.remove(&self.1);
                }
            }
        }
        let n = self.0.open.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.share_files(n);
    }
}

/// A connection of another listener counted until dropped.
#[derive(Debug)]
pub struct OtherConnection(Arc<Connections>);

impl Drop for OtherConnection {
    fn drop(&mut self) {
        self.0.other.fetch_sub(1, Ordering::AcqRel);
        self.0.share_files(self.0.open.load(Ordering::Acquire));
    }
}

/// A token bucket: `rate` connections a second, up to a second's worth at once.
#[derive(Debug)]
struct Pace {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(rate: u32) -> Pace {
        let rate = f64::from(rate.max(1));
        Pace {
            rate,
            tokens: rate,
            at: Instant::now(),
        }
    }

    /// Takes a token: zero when one was there, else how long until it will be (it is
    /// spent already, so waiters line up one token apart).
    fn take(&mut self, now: Instant) -> Duration {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate) - 1.0;
        self.at = now;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_listeners_connections_are_bounded_and_given_back() {
        let c = Connections::new(Limits::default(), 0);
        let held: Vec<_> = (0..OTHER_MAX).map_while(|_| c.admit_other()).collect();
        assert_eq!(held.len(), OTHER_MAX);
        assert!(c.admit_other().is_none(), "past OTHER_MAX");
        drop(held);
        assert_eq!(c.other.load(Ordering::Acquire), 0);
        assert!(c.admit_other().is_some());
    }

    #[test]
    fn the_broker_wide_rate_spares_the_inter_broker_listener_and_a_listeners_own_does_not() {
        let limits = Limits {
            creation_rate: 2,
            listener_rates: HashMap::from([("plaintext".to_string(), 3)]),
            inter_broker_listener: "PLAINTEXT".into(),
            ..Limits::default()
        };
        let c = Connections::new(limits, 0);
        let waits = |l: &str, n: usize| (0..n).filter(|_| c.pace(l) > Duration::ZERO).count();
        // PLAINTEXT: its own 3 a second, not the broker's 2.
        assert_eq!(waits("PLAINTEXT", 3), 0);
        assert_eq!(waits("PLAINTEXT", 1), 1);
        // Another listener: the broker's 2.
        assert_eq!(waits("EXTERNAL", 2), 0);
        assert_eq!(waits("EXTERNAL", 1), 1);
        let unpaced = Connections::new(
            Limits {
                creation_rate: 1,
                ..Limits::default()
            },
            0,
        );
        assert!((0..10).all(|_| unpaced.pace("PLAINTEXT").is_zero()));
    }

    #[test]
    fn pace_gives_a_seconds_burst_then_one_token_per_period() {
        let t0 = Instant::now();
        let mut p = Pace::new(4);
        for _ in 0..4 {
            assert_eq!(p.take(t0), Duration::ZERO);
        }
        assert_eq!(p.take(t0), Duration::from_millis(250));
        assert_eq!(p.take(t0), Duration::from_millis(500));
        // A second later four tokens were earned: two went to the waiters promised them.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(p.take(t1), Duration::ZERO);
        assert_eq!(p.take(t1), Duration::ZERO);
        assert_eq!(p.take(t1), Duration::from_millis(250));
        // Idle long enough, the bucket is full again, and no fuller.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..4 {
            assert_eq!(p.take(later), Duration::ZERO);
        }
        assert!(p.take(later) > Duration::ZERO);
    }

    #[test]
    fn per_ip_quota_with_overrides() {
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let c = Connections::new(
            Limits {
                per_ip: 1,
                per_ip_overrides: HashMap::from([(b, 3)]),
                ..Limits::default()
            },
            0,
        );
        let first = c.admit(a).expect("first from a");
        assert!(c.admit(a).is_none(), "a has its one");
        let from_b: Vec<_> = (0..3).map(|_| c.admit(b).expect("b's three")).collect();
        assert!(c.admit(b).is_none());
        drop(first);
        let _again = c.admit(a).expect("a's slot was freed");
        drop(from_b);
        assert_eq!(c.open.load(Ordering::Relaxed), 1);
        assert_eq!(
            c.by_ip.as_ref().unwrap().lock().unwrap().len(),
            1,
            "freed entries go"
        );
        // Shut out by an override of 0, an address leaves no entry behind.
        let shut: IpAddr = "127.0.0.4".parse().unwrap();
        let c = Connections::new(
            Limits {
                per_ip: 0,
                per_ip_overrides: HashMap::from([(a, 1), (shut, 0)]),
                ..Limits::default()
            },
            0,
        );
        assert!(c.admit(shut).is_none());
        assert!(c.by_ip.as_ref().unwrap().lock().unwrap().is_empty());
        // An IPv4 client seen on an IPv6 socket is its IPv4 address.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let _held = c.admit(mapped).expect("a's one, by its mapped address");
        assert!(c.admit(a).is_none());
    }
}
