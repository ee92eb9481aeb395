//! What the broker counts as it works, recorded where the work happens with one relaxed
//! atomic add (no lock, no allocation): client traffic per topic (and per partition when
//! `strom.metrics.per.partition` is on), requests per API with their time split as Kafka's
//! request metrics split it, connections per listener, ISR changes, parked requests.
//! `metrics/scrape.rs` reads all of it, and the state it derives (log sizes, lag, the
//! quorum), into a Prometheus exposition; `http.rs` serves it.

pub mod groups;
pub mod quorum;
pub mod scrape;
pub mod slowest;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use strom_metrics::{Counter, DurationHistogram, Gauge};

/// Bytes and records produced by clients and fetched by consumers (replication apart, as
/// Kafka's `BytesInPerSec`/`BytesOutPerSec` leave it apart).
#[derive(Debug, Default)]
pub struct Traffic {
    pub in_bytes: Counter,
    pub in_records: Counter,
    pub out_bytes: Counter,
    pub out_records: Counter,
}

/// A topic's traffic on this broker, shared by its hosted partitions, and the broker's
/// total it adds to.
#[derive(Debug)]
pub struct TopicStats {
    pub traffic: Traffic,
    broker: Arc<Traffic>,
}

impl TopicStats {
    pub fn new(broker: Arc<Traffic>) -> TopicStats {
        TopicStats {
            traffic: Traffic::default(),
            broker,
        }
    }
}

/// A partition's counters: its topic's, and its own when per-partition series are on.
#[derive(Debug)]
pub struct PartitionStats {
    pub topic: Arc<TopicStats>,
    pub own: Option<Box<Traffic>>,
}

impl PartitionStats {
    pub fn produced(&self, bytes: usize, records: i64) {
        let (bytes, records) = (bytes as u64, records.max(0) as u64);
        for t in self.each() {
            t.in_bytes.add(bytes);
            t.in_records.add(records);
        }
    }

    pub fn fetched(&self, bytes: u64, records: i64) {
        let records = records.max(0) as u64;
        for t in self.each() {
            t.out_bytes.add(bytes);
            t.out_records.add(records);
        }
    }

    fn each(&self) -> impl Iterator<Item = &Traffic> {
        [&self.topic.traffic, &*self.topic.broker]
            .into_iter()
            .chain(self.own.as_deref())
    }
}

/// The parts of a request's time, as Kafka's `RequestMetrics` splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// From the whole frame read to its handler called (decoding; Strom has no request
    /// queue: a connection's reader calls the handler itself).
    RequestQueue,
    /// The handler's synchronous part (an append, a read).
    Local,
    /// Waiting for others: replication (acks=all), the flusher, a parked fetch, a quorum
    /// commit.
    Remote,
    /// Ready, waiting for the connection's earlier responses to be written.
    ResponseQueue,
    /// Writing the response.
    ResponseSend,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::RequestQueue,
        Phase::Local,
        Phase::Remote,
        Phase::ResponseQueue,
        Phase::ResponseSend,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Phase::RequestQueue => "request_queue",
            Phase::Local => "local",
            Phase::Remote => "remote",
            Phase::ResponseQueue => "response_queue",
            Phase::ResponseSend => "response_send",
        }
    }
}

/// One API's requests: how many, and their time.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub requests: Counter,
    pub total: DurationHistogram,
    pub phases: [DurationHistogram; 5],
}

/// When a request passed each step (`server.rs` takes them).
#[derive(Debug, Clone, Copy)]
pub struct RequestTimes {
    /// Its whole frame was read.
    pub read: Instant,
    /// Its handler was called.
    pub handling: Instant,
    /// Its handler returned (the synchronous part done).
    pub handled: Instant,
}

impl RequestTimes {
    /// Records a request answered: `picked` when the writer turned to it, `ready` when its
    /// answer was there, `sent` when written.
    pub fn record(
        &self,
        (key, api, slowest): (i16, &ApiStats, &slowest::Slowest),
        picked: Instant,
        ready: Instant,
        sent: Instant,
    ) {
        let waited_from = picked.max(self.handled);
        let parts = [
            self.handling - self.read,
            self.handled - self.handling,
            ready.saturating_duration_since(waited_from),
            picked.saturating_duration_since(self.handled),
            sent.saturating_duration_since(ready),
        ];
        let total = sent.saturating_duration_since(self.read);
        api.requests.inc();
        api.total.observe(total);
        for (h, d) in api.phases.iter().zip(parts) {
            h.observe(d);
        }
        slowest.offer(key, total, parts);
    }
}

/// A listener's connections.
#[derive(Debug)]
pub struct ListenerStats {
    pub name: String,
    pub open: Gauge,
    pub created: Counter,
    pub closed: Counter,
}

impl ListenerStats {
    /// Counts a connection accepted (and admitted) until the guard drops.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.created.inc();
        self.open.add(1);
        OpenConnection(Arc::clone(self))
    }
}

/// One open connection of a listener.
#[derive(Debug)]
pub struct OpenConnection(Arc<ListenerStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.add(-1);
        self.0.closed.inc();
    }
}

/// One unit of one of the broker's gauges, owned (for futures that outlive a borrow).
#[derive(Debug)]
pub struct Held {
    metrics: Arc<Metrics>,
    gauge: fn(&Metrics) -> &Gauge,
}

impl Held {
    pub fn new(metrics: &Arc<Metrics>, gauge: fn(&Metrics) -> &Gauge) -> Held {
        gauge(metrics).add(1);
        Held {
            metrics: Arc::clone(metrics),
            gauge,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        (self.gauge)(&self.metrics).add(-1);
    }
}

/// The API keys Kafka has defined, and some room: a request's stats are found by its key.
const API_KEYS: usize = 128;

/// The broker's own counters (those of topics live with their partitions).
#[derive(Debug)]
pub struct Metrics {
    apis: Box<[ApiStats]>,
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
    /// Consumer and follower fetches parked until data arrives (Kafka's delayed fetches).
    pub parked_fetches: Gauge,
    /// Produces waiting for replication or the disk (Kafka's delayed produces).
    pub produce_waits: Gauge,
    /// Follower appends: bytes replicated into this broker (`ReplicationBytesInPerSec`).
    pub replication_in_bytes: Counter,
    /// Bytes sent to followers (`ReplicationBytesOutPerSec`).
    pub replication_out_bytes: Counter,
    /// The slowest recent requests (the console shows them).
    pub slowest: slowest::Slowest,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            apis: (0..API_KEYS).map(|_| ApiStats::default()).collect(),
            listeners: Mutex::new(Vec::new()),
            isr_shrinks: Counter::new(),
            isr_expands: Counter::new(),
            parked_fetches: Gauge::new(),
            produce_waits: Gauge::new(),
            replication_in_bytes: Counter::new(),
            replication_out_bytes: Counter::new(),
            slowest: slowest::Slowest::default(),
        }
    }
}

impl Metrics {
    /// The stats of API `key` (None for a key past what is kept).
    pub fn api(&self, key: i16) -> Option<&ApiStats> {
        usize::try_from(key).ok().and_then(|k| self.apis.get(k))
    }

    /// Every API with its key.
    pub fn apis(&self) -> impl Iterator<Item = (i16, &ApiStats)> {
        self.apis.iter().enumerate().map(|(k, s)| (k as i16, s))
    }

    /// The stats of the listener called `name`, made on first use.
    pub fn listener(&self, name: &str) -> Arc<ListenerStats> {
        let mut all = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = all.iter().find(|l| l.name == name) {
            return Arc::clone(l);
        }
        let l = Arc::new(ListenerStats {
            name: name.to_string(),
            open: Gauge::new(),
            created: Counter::new(),
            closed: Counter::new(),
        });
        all.push(Arc::clone(&l));
        l
    }

    pub fn listeners(&self) -> Vec<Arc<ListenerStats>> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_requests_phases_add_up_to_its_total() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let times = RequestTimes {
            read: t0,
            handling: ms(1),
            handled: ms(3),
        };
        let api = ApiStats::default();
        let slowest = slowest::Slowest::default();
        // The writer turned to it at 10 ms (earlier answers first), its answer came at
        // 30 ms, written at 31 ms.
        times.record((0, &api, &slowest), ms(10), ms(30), ms(31));
        let sums: Vec<f64> = api
            .phases
            .iter()
            .map(|h| h.snapshot().sum_seconds)
            .collect();
        let expect = [0.001, 0.002, 0.020, 0.007, 0.001];
        for (got, want) in sums.iter().zip(expect) {
            assert!((got - want).abs() < 1e-9, "{sums:?}");
        }
        let total = api.total.snapshot().sum_seconds;
        assert!((total - sums.iter().sum::<f64>()).abs() < 1e-9);
        assert_eq!(api.requests.get(), 1);
        assert_eq!(slowest.list().len(), 1);
    }

    #[test]
    fn partition_traffic_adds_to_its_topic_the_broker_and_itself_when_kept() {
        let broker = Arc::new(Traffic::default());
        let topic = Arc::new(TopicStats::new(Arc::clone(&broker)));
        let a = PartitionStats {
            topic: Arc::clone(&topic),
            own: Some(Box::default()),
        };
        let b = PartitionStats {
            topic: Arc::clone(&topic),
            own: None,
        };
        a.produced(100, 3);
        b.produced(50, 2);
        b.fetched(40, 1);
        assert_eq!(broker.in_bytes.get(), 150);
        assert_eq!(topic.traffic.in_records.get(), 5);
        assert_eq!(topic.traffic.out_bytes.get(), 40);
        assert_eq!(a.own.as_ref().map(|t| t.in_bytes.get()), Some(100));
    }
}
