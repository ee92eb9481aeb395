//! Replication throttles, as Kafka's (`ReplicationQuotaManager`): a reassignment's moving
//! replicas copy at most `leader.replication.throttled.rate` bytes/s out of this broker as
//! a leader and `follower.replication.throttled.rate` into it as a follower (dynamic broker
//! keys; unset: unlimited). Only the replicas a topic lists are throttled
//! (`leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`:
//! `partition:broker,...` or `*`), and only while they are out of the ISR: replication
//! that keeps acknowledged writes flowing is never slowed.
//!
//! The rate is kept with a token bucket holding at most one second of bytes: once it is
//! empty the throttled partitions are left out (a follower does not fetch them; a leader
//! answers them without records) until it refills.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// One direction's rate and bucket.
#[derive(Debug)]
pub struct Quota {
    /// Bytes per second; `u64::MAX`: unlimited.
    rate: AtomicU64,
    /// (last refill, tokens); tokens may go negative by the last read's size.
    bucket: Mutex<(Instant, f64)>,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            rate: AtomicU64::new(u64::MAX),
            bucket: Mutex::new((Instant::now(), 0.0)),
        }
    }
}

impl Quota {
    /// A new rate (None: unlimited); the bucket starts full.
    pub fn set_rate(&self, rate: Option<u64>) {
        let rate = rate.unwrap_or(u64::MAX);
        if self.rate.swap(rate, Ordering::Relaxed) != rate {
            let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            *b = (Instant::now(), rate as f64);
        }
    }

    /// Whether the throttled replicas have used their bytes for now.
    pub fn exceeded(&self) -> bool {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == u64::MAX {
            return false;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        *b = (
            now,
            refill(b.1, now.duration_since(b.0).as_secs_f64(), rate),
        );
        b.1 <= 0.0
    }

    /// Throttled replicas moved `bytes`.
    pub fn record(&self, bytes: u64) {
        if self.rate.load(Ordering::Relaxed) == u64::MAX {
            return;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.1 -= bytes as f64;
    }
}

/// `tokens` after `secs` at `rate`, at most a second's worth.
fn refill(tokens: f64, secs: f64, rate: u64) -> f64 {
    (tokens + secs * rate as f64).min(rate as f64)
}

/// The broker's two throttles.
#[derive(Debug, Default)]
pub struct ReplicationQuotas {
    pub leader: Quota,
    pub follower: Quota,
}

/// Whether a topic's throttled-replicas `value` lists partition `partition` on `broker`.
pub fn listed(value: &str, partition: i32, broker: i32) -> bool {
    let value = value.trim();
    value == "*"
        || value.split(',').any(|entry| {
            let mut parts = entry.trim().split(':');
            let p = parts.next().and_then(|p| p.trim().parse::<i32>().ok());
            let b = parts.next().and_then(|b| b.trim().parse::<i32>().ok());
            p == Some(partition) && b == Some(broker) && parts.next().is_none()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_listed_as_kafka_writes_them() {
        assert!(listed("*", 3, 7));
        assert!(listed("0:1, 3:7", 3, 7));
        assert!(!listed("0:1,3:8", 3, 7));
        assert!(!listed("", 0, 1));
        assert!(!listed("3:7:1", 3, 7));
    }

    #[test]
    fn a_bucket_empties_and_refills_at_the_rate() {
        let q = Quota::default();
        q.record(1 << 40);
        assert!(!q.exceeded(), "unlimited by default");
        q.set_rate(Some(1000));
        assert!(!q.exceeded(), "starts with a second of bytes");
        q.record(1_000_000);
        assert!(q.exceeded());
        assert_eq!(refill(-500.0, 0.7, 1000), 200.0);
        assert_eq!(
            refill(-500.0, 60.0, 1000),
            1000.0,
            "at most a second's worth"
        );
        q.set_rate(Some(2000));
        assert!(!q.exceeded(), "a new rate starts full");
        q.set_rate(None);
        q.record(1 << 40);
        assert!(!q.exceeded());
    }
}
