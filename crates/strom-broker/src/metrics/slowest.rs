//! The slowest recent requests, for the console: the few slowest of the last minutes with
//! their time by phase. A request faster than the slowest kept ones costs one atomic load;
//! only one that would enter the list takes the lock. A fetch parked for data is not slow:
//! it ranks by its time less its remote wait.

use super::Phase;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many are kept.
const KEEP: usize = 20;
/// How long one stays.
const WINDOW: Duration = Duration::from_secs(600);
/// Faster than this, never.
const MIN_NS: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct SlowRequest {
    pub api: i16,
    /// When it was answered, ms since the epoch.
    pub at_ms: i64,
    pub total: Duration,
    pub phases: [Duration; 5],
    /// What it is ranked by.
    rank_ns: u64,
}

#[derive(Debug, Default)]
pub struct Slowest {
    /// The rank a request must beat to enter (0 while the list has room).
    floor_ns: AtomicU64,
    kept: Mutex<Vec<SlowRequest>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Slowest {
    pub fn offer(&self, api: i16, total: Duration, phases: [Duration; 5]) {
        let remote = phases[Phase::Remote as usize];
        let ranked = match api {
            1 => total.saturating_sub(remote),
            _ => total,
        };
        let rank_ns = u64::try_from(ranked.as_nanos()).unwrap_or(u64::MAX);
        if rank_ns < MIN_NS || rank_ns <= self.floor_ns.load(Ordering::Relaxed) {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_ms();
        kept.retain(|r| now - r.at_ms < WINDOW.as_millis() as i64);
        kept.push(SlowRequest {
            api,
            at_ms: now,
            total,
            phases,
            rank_ns,
        });
        kept.sort_by_key(|r| std::cmp::Reverse(r.rank_ns));
        kept.truncate(KEEP);
        self.set_floor(&kept);
    }

    fn set_floor(&self, kept: &[SlowRequest]) {
        let floor = match kept.len() {
            KEEP => kept.last().map_or(0, |r| r.rank_ns),
            _ => 0,
        };
        self.floor_ns.store(floor, Ordering::Relaxed);
    }

    /// The slowest of the window, slowest first.
    pub fn list(&self) -> Vec<SlowRequest> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_ms();
        kept.retain(|r| now - r.at_ms < WINDOW.as_millis() as i64);
        // Expired ones make room again.
        self.set_floor(&kept);
        kept.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_slowest_are_kept_and_a_parked_fetch_ranks_by_its_own_work() {
        let s = Slowest::default();
        for i in 0..30 {
            s.offer(0, ms(2 + i), [Duration::ZERO; 5]);
        }
        // A fetch that waited 500 ms for data and worked 1 ms is not among them.
        s.offer(1, ms(501), [ms(0), ms(1), ms(500), ms(0), ms(0)]);
        s.offer(3, Duration::from_micros(10), [Duration::ZERO; 5]);
        let list = s.list();
        assert_eq!(list.len(), KEEP);
        assert_eq!(list[0].total, ms(31));
        assert!(list.iter().all(|r| r.api == 0));
        assert_eq!(list.last().map(|r| r.total), Some(ms(12)));
    }
}
