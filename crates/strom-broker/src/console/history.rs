//! What the console charts over time: every `INTERVAL` a point of the broker's counters
//! (traffic, Produce and Fetch latency histograms, connections, under-replicated
//! partitions) and of each group's lag, an hour of them kept; and each topic's records per
//! second over the last interval. Rates and percentiles are computed when asked, from
//! consecutive points, plus one taken at that moment.

use crate::broker::Broker;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use strom_metrics::{HistogramSnapshot, DURATION_BOUNDS_NS};

pub const INTERVAL: Duration = Duration::from_secs(10);
/// An hour of points.
const KEEP: usize = 360;
/// Groups whose lag is charted, at most.
const GROUPS_MAX: usize = 1000;

#[derive(Debug, Clone)]
pub struct Point {
    pub at_ms: i64,
    /// Cumulative: client bytes and records in and out.
    traffic: [u64; 4],
    produce: HistogramSnapshot,
    fetch: HistogramSnapshot,
    connections: i64,
    under_replicated: usize,
}

#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    points: VecDeque<Point>,
    /// At each point: group → lag in records, as its coordinator (this broker) sees it.
    group_lags: VecDeque<(i64, BTreeMap<String, i64>)>,
    /// Each topic's records in at the last point, and records per second since the one
    /// before.
    topic_records: HashMap<String, u64>,
    topic_rates: HashMap<String, f64>,
}

fn now_ms() -> i64 {
    crate::metadata_store::now_ms()
}

/// A point of the broker now.
pub fn point(broker: &Broker) -> Point {
    let t = &broker.replicas.traffic;
    let m = &broker.metrics;
    let snapshot = |key: i16| m.api(key).map(|a| a.total.snapshot()).unwrap_or_default();
    let under_replicated = broker
        .replicas
        .all()
        .iter()
        .map(|p| p.health())
        .filter(|h| h.leader && h.isr < h.replicas)
        .count();
    Point {
        at_ms: now_ms(),
        traffic: [
            t.in_bytes.get(),
            t.in_records.get(),
            t.out_bytes.get(),
            t.out_records.get(),
        ],
        produce: snapshot(0),
        fetch: snapshot(1),
        connections: m.listeners().iter().map(|l| l.open.get()).sum(),
        under_replicated,
    }
}

/// Each group's lag in records now (no I/O: committed offsets against high watermarks).
fn group_lags(broker: &Broker) -> BTreeMap<String, i64> {
    let which = crate::metrics::groups::Which {
        group: None,
        seconds: false,
    };
    let mut groups = BTreeMap::new();
    for l in crate::metrics::groups::lags(broker, which) {
        if groups.len() >= GROUPS_MAX && !groups.contains_key(&l.group) {
            continue;
        }
        *groups.entry(l.group).or_default() += l.records;
    }
    groups
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a point (and the groups' lag, the topics' rates).
    pub fn sample(&self, broker: &Broker) {
        let p = point(broker);
        let lags = (p.at_ms, group_lags(broker));
        let topics: HashMap<String, u64> = broker
            .replicas
            .by_topic()
            .into_iter()
            .filter_map(|(name, parts)| {
                let n = parts.first()?.stats.topic.traffic.in_records.get();
                Some((name.to_string(), n))
            })
            .collect();
        let mut inner = self.lock();
        let seconds = inner
            .points
            .back()
            .map_or(0.0, |last| (p.at_ms - last.at_ms) as f64 / 1000.0);
        if seconds > 0.0 {
            let before = std::mem::take(&mut inner.topic_records);
            inner.topic_rates = topics
                .iter()
                .map(|(t, n)| {
                    let was = before.get(t).copied().unwrap_or(*n);
                    (t.clone(), n.saturating_sub(was) as f64 / seconds)
                })
                .collect();
        }
        inner.topic_records = topics;
        inner.points.push_back(p);
        inner.group_lags.push_back(lags);
        while inner.points.len() > KEEP {
            inner.points.pop_front();
        }
        while inner.group_lags.len() > KEEP {
            inner.group_lags.pop_front();
        }
    }

    /// One group's lag in records at each point kept.
    pub fn group_lag(&self, group: &str) -> Vec<(i64, i64)> {
        self.lock()
            .group_lags
            .iter()
            .filter_map(|(at, lags)| Some((*at, *lags.get(group)?)))
            .collect()
    }

    /// A topic's records produced per second over the last interval.
    pub fn topic_rate(&self, topic: &str) -> Option<f64> {
        self.lock().topic_rates.get(topic).copied()
    }

    /// The points kept, and `now` after them.
    pub fn points_with(&self, now: Point) -> Vec<Point> {
        let mut all: Vec<Point> = self.lock().points.iter().cloned().collect();
        all.push(now);
        all
    }
}

/// Series between consecutive points: rates per second, p99 latencies in ms.
pub fn series(points: &[Point]) -> Value {
    let mut out: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for w in points.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let seconds = ((b.at_ms - a.at_ms) as f64 / 1000.0).max(0.001);
        let rate = |i: usize| b.traffic[i].saturating_sub(a.traffic[i]) as f64 / seconds;
        let mut push = |k, v: Value| out.entry(k).or_default().push(v);
        push("t", json!(b.at_ms));
        push("in_bytes_per_s", json!(rate(0)));
        push("in_records_per_s", json!(rate(1)));
        push("out_bytes_per_s", json!(rate(2)));
        push("out_records_per_s", json!(rate(3)));
        push("produce_p99_ms", json!(p99_ms(&a.produce, &b.produce)));
        push("fetch_p99_ms", json!(p99_ms(&a.fetch, &b.fetch)));
        push("connections", json!(b.connections));
        push("under_replicated", json!(b.under_replicated));
    }
    json!(out)
}

/// The 99th percentile of what was observed between two snapshots (the upper bound of its
/// bucket), None when nothing was.
fn p99_ms(a: &HistogramSnapshot, b: &HistogramSnapshot) -> Option<f64> {
    let count = b.count().saturating_sub(a.count());
    if count == 0 {
        return None;
    }
    let want = (count as f64 * 0.99).ceil() as u64;
    let bucket = b
        .cumulative
        .iter()
        .zip(&a.cumulative)
        .position(|(b, a)| b.saturating_sub(*a) >= want)?;
    let bound = DURATION_BOUNDS_NS
        .get(bucket)
        .or(DURATION_BOUNDS_NS.last())
        .copied()?;
    Some(bound as f64 / 1e6)
}

/// One group's lag over the points kept, then `now` (ms, lag).
pub fn group_series(history: &History, group: &str, now: (i64, i64)) -> Value {
    let mut rows = history.group_lag(group);
    rows.push(now);
    json!(rows
        .iter()
        .map(|(t, lag)| json!({"t": t, "lag": lag}))
        .collect::<Vec<_>>())
}

/// Samples every `INTERVAL` until `shutdown`.
pub async fn run(
    console: std::sync::Arc<super::Console>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let c = std::sync::Arc::clone(&console);
        let _ = tokio::task::spawn_blocking(move || c.history.sample(&c.broker)).await;
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_metrics::DurationHistogram;

    #[test]
    fn the_99th_percentile_is_the_bound_of_its_bucket_between_two_snapshots() {
        let h = DurationHistogram::new();
        h.observe(Duration::from_millis(50));
        let before = h.snapshot();
        for _ in 0..99 {
            h.observe(Duration::from_micros(300));
        }
        h.observe(Duration::from_millis(7));
        let after = h.snapshot();
        assert_eq!(p99_ms(&before, &after), Some(0.5));
        assert_eq!(p99_ms(&after, &after), None);
    }
}
