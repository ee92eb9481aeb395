//! The broker's metrics and their exposition: lock-free counters, gauges and fixed-bucket
//! duration histograms (one relaxed atomic add to record, nothing locked or allocated), and
//! the two text formats Prometheus scrapes — its own (0.0.4) and OpenMetrics (1.0.0).
//!
//! Recording happens on the produce and fetch paths, so it is a `fetch_add` and no more;
//! everything else (labels, formatting, sums) happens at scrape time.

mod exposition;

pub use exposition::{Exposition, Format, Kind, MetricValue};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Adds one now and takes it off when the guard drops: "how many are in here".
    pub fn hold(&self) -> GaugeHold<'_> {
        self.add(1);
        GaugeHold(self)
    }
}

/// One unit of a gauge, given back when dropped.
#[derive(Debug)]
pub struct GaugeHold<'a>(&'a Gauge);

impl Drop for GaugeHold<'_> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// The upper bounds of a duration histogram's buckets, in nanoseconds: 100 µs to 10 s,
/// the range of Kafka's request and flush times (the last bucket, +Inf, holds the rest).
pub const DURATION_BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

const SLOTS: usize = DURATION_BOUNDS_NS.len() + 1;

/// A histogram of durations over `DURATION_BOUNDS_NS`: each observation adds one to its
/// bucket and its duration to the sum, in tenths of a microsecond (in nanoseconds the sum
/// of 5,000 consumers' one-second long polls would wrap a u64 in six weeks; in these units,
/// in over a century). Exposed in seconds.
#[derive(Debug)]
pub struct DurationHistogram {
    /// Per bucket (not cumulative; the last is +Inf).
    slots: [AtomicU64; SLOTS],
    /// In units of `SUM_UNIT_NS`.
    sum: AtomicU64,
}

const SUM_UNIT_NS: u64 = 100;

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram::new()
    }
}

/// A histogram's values read at one time: cumulative bucket counts, their total, the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative: `cumulative[i]` observations were at most `DURATION_BOUNDS_NS[i]`; the
    /// last is the count.
    pub cumulative: [u64; SLOTS],
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.cumulative[SLOTS - 1]
    }
}

impl DurationHistogram {
    pub const fn new() -> DurationHistogram {
        DurationHistogram {
            slots: [const { AtomicU64::new(0) }; SLOTS],
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        self.observe_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn observe_ns(&self, ns: u64) {
        // A value equal to a bound belongs to that bucket (Prometheus' `le`).
        let i = DURATION_BOUNDS_NS.partition_point(|b| *b < ns);
        self.slots[i].fetch_add(1, Ordering::Relaxed);
        let units = ns / SUM_UNIT_NS + u64::from(ns % SUM_UNIT_NS >= SUM_UNIT_NS / 2);
        self.sum.fetch_add(units, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0u64; SLOTS];
        let mut total = 0u64;
        for (c, slot) in cumulative.iter_mut().zip(&self.slots) {
            total += slot.load(Ordering::Relaxed);
            *c = total;
        }
        HistogramSnapshot {
            cumulative,
            sum_seconds: (self.sum.load(Ordering::Relaxed) * SUM_UNIT_NS) as f64 / 1e9,
        }
    }

    /// Whether anything was observed.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_counts_in_that_bucket_and_buckets_are_cumulative() {
        let h = DurationHistogram::new();
        h.observe_ns(100_000);
        h.observe_ns(100_001);
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[15], 2);
        assert_eq!(s.count(), 3);
        assert!((s.sum_seconds - 60.000_200_0).abs() < 1e-9);
    }

    #[test]
    fn a_gauge_hold_gives_its_unit_back() {
        let g = Gauge::new();
        {
            let _a = g.hold();
            let _b = g.hold();
            assert_eq!(g.get(), 2);
        }
        assert_eq!(g.get(), 0);
    }
}
