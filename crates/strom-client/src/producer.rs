//! The producer: records are partitioned (Kafka's murmur2 for keys, a sticky partition per
//! topic for key-less records), accumulated per partition into batches (`batch.size`,
//! `linger.ms`, `compression.type`), and sent by one background task, one Produce request per
//! leader carrying a batch per partition, with up to `max.in.flight.requests.per.connection`
//! requests outstanding per connection.
//!
//! Ordering and idempotence: a partition's batches get consecutive sequence numbers in the
//! order they are first sent, and the sender queues requests on a connection in that order
//! (`Connection::start`), so they reach the broker in sequence. A partition's in-flight
//! batches all go through one connection; a new batch waits for the earlier ones to come
//! back before it goes out on another (after a leader change or a reconnect). A batch that
//! fails with a retriable error goes back into its partition's queue in creation order with
//! the same bytes (the same producer id, epoch and sequence), and the partition sends nothing
//! more until all its in-flight batches are back; then the failed batches go out again in
//! order, followed by the rest — Kafka's rule. A retry after a broker restart is thus
//! deduplicated by the broker and records stay in order. A batch refused with
//! OUT_OF_ORDER_SEQUENCE_NUMBER while an earlier batch of its partition is unresolved is
//! retried the same way (its predecessor had not been written). Without idempotence, a retry
//! may reorder records when more than one batch is in flight, as in Kafka; `max_in_flight: 1`
//! keeps them in order.

use crate::client::Client;
use crate::conn::Connection;
use crate::error::{check, Error, Result};
use crate::limits;
use bytes::Bytes;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom_proto::batch::HEADER_BYTES;
use strom_proto::compression::CompressionError;
use strom_proto::{varint, Compression};
use tokio::sync::{oneshot, Notify, Semaphore};

/// Producer settings, named after Kafka's producer configs.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// `acks`: 0 (no answer), 1 (leader wrote it), -1 / all (every in-sync replica has it).
    pub acks: i16,
    /// `linger.ms`: how long a batch waits for more records.
    pub linger: Duration,
    /// `batch.size`: a batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `enable.idempotence`: a producer id and per-partition sequence numbers, so retries
    /// are never written twice.
    pub idempotence: bool,
    /// `delivery.timeout.ms`: how long a record may take, retries included.
    pub delivery_timeout: Duration,
    /// `buffer.memory`: bytes of records waiting to be sent before `send` waits.
    pub buffer_bytes: usize,
    /// `max.request.size`: the largest record (and request) accepted.
    pub request_bytes_max: usize,
    /// `max.in.flight.requests.per.connection`: Produce requests outstanding per broker
    /// connection (so also batches per partition). At least 1; at most 5 with idempotence,
    /// as in Kafka (the broker remembers five batches per producer for deduplication).
    pub max_in_flight: usize,
}

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            acks: -1,
            linger: Duration::from_millis(5),
            batch_bytes: 16_384,
            compression: Compression::None,
            idempotence: true,
            delivery_timeout: Duration::from_secs(120),
            buffer_bytes: 32 << 20,
            request_bytes_max: 1 << 20,
            max_in_flight: 5,
        }
    }
}

/// A batch being filled, encoded in place: the v2 batch header's room, then each record as
/// it comes, so sealing it only fills in the header and the CRC (and compresses, if asked).
/// Byte for byte what `strom_proto::BatchBuilder` builds (a test checks), without its
/// per-record buffer and the copies into the batch and out of it.
struct RecordsBuf {
    buf: Vec<u8>,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
}

/// Bytes of `v` as a zig-zag varint.
fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    b.map_or(varint_len(-1), |b| varint_len(b.len() as i64) + b.len())
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => varint::put_varint(out, -1),
        Some(b) => {
            varint::put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

impl RecordsBuf {
    fn new(base_timestamp: i64, reserve: usize) -> RecordsBuf {
        let mut buf = Vec::with_capacity(HEADER_BYTES + reserve);
        buf.resize(HEADER_BYTES, 0);
        RecordsBuf {
            buf,
            base_timestamp,
            max_timestamp: base_timestamp,
            count: 0,
        }
    }

    fn len(&self) -> usize {
        self.count as usize
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Option<Bytes>)],
        timestamp: i64,
    ) {
        let delta = timestamp - self.base_timestamp;
        let mut body = 1
            + varint_len(delta)
            + varint_len(i64::from(self.count))
            + bytes_len(key)
            + bytes_len(value)
            + varint_len(headers.len() as i64);
        for (k, v) in headers {
            body += bytes_len(Some(k.as_bytes())) + bytes_len(v.as_deref());
        }
        self.buf.reserve(varint_len(body as i64) + body);
        varint::put_varint(&mut self.buf, body as i32);
        self.buf.push(0); // record attributes: unused
        varint::put_varlong(&mut self.buf, delta);
        varint::put_varint(&mut self.buf, self.count);
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
        varint::put_varint(&mut self.buf, headers.len() as i32);
        for (k, v) in headers {
            put_bytes(&mut self.buf, Some(k.as_bytes()));
            put_bytes(&mut self.buf, v.as_deref());
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    /// The finished batch (base offset 0), with `(producer id, epoch, base sequence)` if
    /// idempotent.
    fn build(
        self,
        producer: Option<(i64, i16, i32)>,
        codec: Compression,
    ) -> std::result::Result<Bytes, CompressionError> {
        let mut out = if codec == Compression::None {
            self.buf
        } else {
            let packed = strom_proto::compression::compress(
                codec,
                self.buf.get(HEADER_BYTES..).unwrap_or(&[]),
            )?;
            let mut out = Vec::with_capacity(HEADER_BYTES + packed.len());
            out.resize(HEADER_BYTES, 0);
            out.extend_from_slice(&packed);
            out
        };
        let (id, epoch, sequence) = producer.unwrap_or((-1, -1, -1));
        let size = out.len();
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(&0i64.to_be_bytes()); // base offset
        header.extend_from_slice(
            &((size - strom_proto::batch::LOG_OVERHEAD_BYTES) as i32).to_be_bytes(),
        );
        header.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        header.push(strom_proto::batch::MAGIC_V2 as u8);
        header.extend_from_slice(&0u32.to_be_bytes()); // crc, filled in below
        header.extend_from_slice(&codec.attribute_bits().to_be_bytes()); // CreateTime
        header.extend_from_slice(&(self.count - 1).max(0).to_be_bytes());
        header.extend_from_slice(&self.base_timestamp.to_be_bytes());
        header.extend_from_slice(&self.max_timestamp.to_be_bytes());
        header.extend_from_slice(&id.to_be_bytes());
        header.extend_from_slice(&epoch.to_be_bytes());
        header.extend_from_slice(&sequence.to_be_bytes());
        header.extend_from_slice(&self.count.to_be_bytes());
        if let Some(h) = out.get_mut(..HEADER_BYTES) {
            h.copy_from_slice(&header);
        }
        let crc = strom_proto::batch::crc(&out);
        if let Some(field) = out.get_mut(17..21) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        Ok(Bytes::from(out))
    }
}

/// A record to send. `partition: None` lets the partitioner choose.
#[derive(Clone, Debug, Default)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; `None` is now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.to_string(),
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            ..Default::default()
        }
    }
}

/// Where an acknowledged record was written. `offset` is -1 with acks=0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// Resolves when the record is acknowledged (or has failed).
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl std::future::Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Error::Invalid("the producer was closed".into()))))
    }
}

/// Called once with the record's outcome.
type Waiter = Box<dyn FnOnce(Result<RecordMetadata>) + Send>;
type Tp = (String, i32);

struct Open {
    builder: RecordsBuf,
    created: Instant,
    timestamps: Vec<i64>,
    waiters: Vec<Waiter>,
    bytes: usize,
}

struct Sealed {
    /// Creation order within the partition: a retried batch goes back in by it.
    order: u64,
    /// Built lazily on first send, so the sequence number is assigned in send order.
    encoded: Option<Bytes>,
    builder: Option<RecordsBuf>,
    created: Instant,
    timestamps: Vec<i64>,
    waiters: Vec<Waiter>,
    bytes: usize,
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<Open>,
    /// Batches to send, in creation order (retried ones back in their place).
    sealed: VecDeque<Sealed>,
    /// `order` of each batch in flight.
    in_flight: Vec<u64>,
    /// The connection (`Connection::id`) the in-flight batches went through.
    in_flight_conn: u64,
    /// A batch failed and was put back: send nothing until every in-flight batch is back.
    draining: bool,
    next_order: u64,
    next_sequence: i32,
    /// Do not send before this instant (backoff after a retriable error).
    retry_at: Option<Instant>,
}

impl PartitionQueue {
    fn seal_open(&mut self) {
        if let Some(o) = self.open.take() {
            let order = self.next_order;
            self.next_order += 1;
            self.sealed.push_back(seal(o, order));
        }
    }

    fn is_idle(&self) -> bool {
        self.open.is_none() && self.sealed.is_empty() && self.in_flight.is_empty()
    }
}

#[derive(Default)]
struct State {
    /// Topic → partition → queue (nested so a record's lookup needs no key allocation).
    partitions: BTreeMap<String, BTreeMap<i32, PartitionQueue>>,
    sticky: HashMap<String, i32>,
    /// Partitions per topic as last seen in metadata.
    partition_counts: HashMap<String, i32>,
    /// Produce requests outstanding per connection id.
    requests: HashMap<u64, usize>,
    flushing: usize,
    closed: bool,
    producer_id: Option<(i64, i16)>,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    /// `config.max_in_flight`, bounded as Kafka bounds it.
    max_in_flight: usize,
    state: Mutex<State>,
    wake: Notify,
    idle: Notify,
    memory: Semaphore,
}

/// An async Kafka producer. Clones share the same batches and background task.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let memory = Semaphore::new(config.buffer_bytes.min(Semaphore::MAX_PERMITS));
        let max_in_flight = if config.idempotence {
            config
                .max_in_flight
                .clamp(1, limits::IDEMPOTENT_IN_FLIGHT_MAX)
        } else {
            config.max_in_flight.max(1)
        };
        let inner = Arc::new(Inner {
            client,
            config,
            max_in_flight,
            state: Mutex::default(),
            wake: Notify::new(),
            idle: Notify::new(),
            memory,
        });
        let task = tokio::spawn(sender(Arc::clone(&inner)));
        Producer {
            inner,
            _task: Arc::new(TaskGuard(task)),
        }
    }

    /// Queues a record; the returned future resolves once it is acknowledged. Waits only
    /// when `buffer.memory` is full.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (tx, rx) = oneshot::channel();
        self.send_with(record, move |r| {
            let _ = tx.send(r);
        })
        .await?;
        Ok(DeliveryFuture { rx })
    }

    /// Queues a record; `done` is called (on the producer's task) with its outcome, like
    /// librdkafka's delivery report callback. Cheaper than a future per record.
    pub async fn send_with(
        &self,
        record: ProducerRecord,
        done: impl FnOnce(Result<RecordMetadata>) + Send + 'static,
    ) -> Result<()> {
        let inner = &self.inner;
        let size = 32
            + record.key.as_ref().map_or(0, Bytes::len)
            + record.value.as_ref().map_or(0, Bytes::len)
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 8)
                .sum::<usize>();
        if size > inner.config.request_bytes_max {
            return Err(Error::kafka(
                10,
                format!(
                    "a record of {size} bytes is larger than max.request.size ({})",
                    inner.config.request_bytes_max
                ),
                None,
            ));
        }
        // The partition count: from the metadata cache in place (no copy per record), else
        // the last count seen (the cache forgets a topic on errors, e.g. while its leader
        // restarts, and the sender refreshes it), else a metadata request.
        let cached = inner.client.with_cached(|m| {
            m.topics
                .get(&record.topic)
                .map(|t| t.partitions.len() as i32)
        });
        let count = match cached {
            Some(n) => n,
            None => {
                let known = inner.lock().partition_counts.get(&record.topic).copied();
                match known {
                    Some(n) => n,
                    None => inner
                        .client
                        .producer_topic(&record.topic)
                        .await?
                        .partitions
                        .len() as i32,
                }
            }
        };
        if count == 0 {
            return Err(Error::kafka(5, format!("topic {}", record.topic), None));
        }
        let permits = inner
            .memory
            .acquire_many(size.min(inner.config.buffer_bytes) as u32)
            .await
            .map_err(|_| Error::Invalid("the producer was closed".into()))?;
        permits.forget();
        let tx: Waiter = Box::new(done);
        let timestamp = record.timestamp_ms.unwrap_or_else(now_ms);
        let wake = {
            let mut st = inner.lock();
            if st.closed {
                inner.release(size);
                return Err(Error::Invalid("the producer was closed".into()));
            }
            let partition = match (record.partition, &record.key) {
                (Some(p), _) => {
                    if p < 0 || p >= count {
                        inner.release(size);
                        return Err(Error::kafka(
                            3,
                            format!("{}-{p}: the topic has {count} partitions", record.topic),
                            None,
                        ));
                    }
                    p
                }
                (None, Some(key)) => strom_proto::murmur2::partition_for_key(key, count),
                (None, None) => match st.sticky.get(&record.topic) {
                    Some(p) => *p % count,
                    None => {
                        let p = (st.sticky.len() as i32 + timestamp as i32).rem_euclid(count);
                        st.sticky.insert(record.topic.clone(), p);
                        p
                    }
                },
            };
            if st.partition_counts.get(&record.topic) != Some(&count) {
                st.partition_counts.insert(record.topic.clone(), count);
            }
            if !st.partitions.contains_key(&record.topic) {
                st.partitions.insert(record.topic.clone(), BTreeMap::new());
            }
            let Some(partitions) = st.partitions.get_mut(&record.topic) else {
                inner.release(size);
                return Err(Error::Invalid("the producer lost a queue".into())); // inserted above
            };
            let q = partitions.entry(partition).or_default();
            let fits = q.open.as_ref().is_some_and(|o| {
                o.builder.is_empty() || o.bytes + size <= inner.config.batch_bytes
            });
            // The sender needs to hear of a new batch (its linger deadline) or a sealed one;
            // a record added to an open batch changes nothing it waits for.
            let mut wake = !fits;
            if !fits {
                q.seal_open();
            }
            let open = q.open.get_or_insert_with(|| Open {
                builder: RecordsBuf::new(
                    timestamp,
                    inner
                        .config
                        .batch_bytes
                        .min(limits::OPEN_BATCH_RESERVE_MAX)
                        .max(size),
                ),
                created: Instant::now(),
                timestamps: Vec::new(),
                waiters: Vec::new(),
                bytes: 0,
            });
            open.builder.push(
                record.key.as_deref(),
                record.value.as_deref(),
                &record.headers,
                timestamp,
            );
            open.timestamps.push(timestamp);
            open.waiters.push(tx);
            open.bytes += size;
            let full = open.bytes >= inner.config.batch_bytes;
            if full {
                q.seal_open();
                wake = true;
                if record.partition.is_none() && record.key.is_none() {
                    // Sticky partitioning (KIP-480): move on once a batch is full.
                    let next = (partition + 1) % count;
                    st.sticky.insert(record.topic.clone(), next);
                }
            }
            wake
        };
        if wake {
            inner.wake.notify_one();
        }
        Ok(())
    }

    /// Sends everything queued now, ignoring `linger.ms`, and waits until every record
    /// sent before the call is acknowledged or failed.
    pub async fn flush(&self) {
        self.inner.lock().flushing += 1;
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let done = {
                let st = self.inner.lock();
                st.partitions
                    .values()
                    .flat_map(BTreeMap::values)
                    .all(PartitionQueue::is_idle)
            };
            if done {
                break;
            }
            self.inner.wake.notify_one();
            idle.await;
        }
        self.inner.lock().flushing -= 1;
    }

    /// Flushes, then stops the background task.
    pub async fn close(&self) {
        self.flush().await;
        self.inner.lock().closed = true;
        self.inner.wake.notify_one();
    }
}

fn seal(o: Open, order: u64) -> Sealed {
    Sealed {
        order,
        encoded: None,
        builder: Some(o.builder),
        created: o.created,
        timestamps: o.timestamps,
        waiters: o.waiters,
        bytes: o.bytes,
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, bytes: usize) {
        self.memory.add_permits(bytes.min(self.config.buffer_bytes));
    }
}

/// One batch taken for sending.
struct Outgoing {
    tp: Tp,
    batch: Sealed,
}

/// One Produce request's worth of batches for one connection.
struct Request {
    conn: Arc<Connection>,
    batches: Vec<Outgoing>,
}

/// What the sender knows about where to send, refreshed as batches need it: a connection
/// (or why there is none) per leader, and why a topic's metadata could not be had.
#[derive(Default)]
struct Routes {
    conns: HashMap<i32, Result<Arc<Connection>>>,
    topic_errors: HashMap<String, Error>,
}

/// What one pass over the queues found.
#[derive(Default)]
struct Ready {
    requests: Vec<Request>,
    /// Batches that cannot go out (no leader, no connection), to complete with the error.
    failed: Vec<(Outgoing, Error)>,
    /// Topics with batches to send but no cached metadata.
    missing_topics: HashSet<String>,
    /// Leaders with batches to send but no connection in `Routes` yet.
    missing_conns: HashSet<i32>,
    /// When the earliest open batch's linger (or a backoff) ends.
    next_deadline: Option<Instant>,
}

/// The background task: wakes on new or sealed batches, completed requests, or when the
/// oldest open batch's linger ends; takes one ready batch per partition that may send, and
/// queues a request per leader connection, up to `max_in_flight` per connection.
async fn sender(inner: Arc<Inner>) {
    let mut routes = Routes::default();
    loop {
        let wake = inner.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        if inner.lock().closed {
            return;
        }
        if inner.config.idempotence && inner.lock().producer_id.is_none() {
            match init_producer_id(&inner).await {
                Ok(id) => inner.lock().producer_id = Some(id),
                Err(e) => {
                    tracing::warn!(error = %e, "InitProducerId failed; retrying");
                    if !e.is_retriable() {
                        fail_all(&inner, &e);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        // A failed connect stays for this round: its batches fail retriably, back off and
        // refresh the metadata (the leader may have moved: a dead broker is fenced).
        routes
            .conns
            .retain(|_, c| c.as_ref().map_or(true, |c| !c.is_dead()));
        let ready = take_ready(&inner, &routes);
        // Errors are reported once (the batches now back off); the next need asks again.
        routes.conns.retain(|_, c| c.is_ok());
        routes.topic_errors.clear();
        let progress = !ready.requests.is_empty() || !ready.failed.is_empty();
        for (out, e) in ready.failed {
            complete(&inner, out, Err(e));
        }
        for req in ready.requests {
            dispatch(&inner, req).await;
        }
        let mut looked_up = false;
        for topic in ready.missing_topics {
            looked_up = true;
            if let Err(e) = inner.client.topic(&topic).await {
                routes.topic_errors.insert(topic, e);
            }
        }
        for leader in ready.missing_conns {
            looked_up = true;
            let conn = inner.client.broker_conn(leader).await;
            routes.conns.insert(leader, conn);
        }
        if progress || looked_up {
            continue;
        }
        match ready.next_deadline {
            Some(at) => {
                tokio::select! {
                    _ = &mut wake => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => wake.await,
        }
    }
}

fn take_ready(inner: &Inner, routes: &Routes) -> Ready {
    let now = Instant::now();
    let mut guard = inner.lock();
    let st = &mut *guard;
    let flushing = st.flushing > 0 || st.closed;
    let producer = st.producer_id;
    let mut ready = Ready::default();
    let mut next: Option<Instant> = None;
    let mut earliest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
    // Requests being built, by leader.
    let mut building: BTreeMap<i32, Request> = BTreeMap::new();
    for (topic, partitions) in st.partitions.iter_mut() {
        for (&partition, q) in partitions.iter_mut() {
            if q.draining || q.in_flight.len() >= inner.max_in_flight {
                continue;
            }
            if let Some(at) = q.retry_at {
                if at > now {
                    earliest(at);
                    continue;
                }
                q.retry_at = None;
            }
            if q.sealed.is_empty() {
                if let Some(o) = &q.open {
                    let due = o.created + inner.config.linger;
                    if flushing || due <= now {
                        q.seal_open();
                    } else {
                        earliest(due);
                    }
                }
            }
            if q.sealed.is_empty() {
                continue;
            }
            // Where it goes.
            let leader = inner.client.with_cached(|m| {
                m.topics.get(topic).map(|t| {
                    t.partitions
                        .iter()
                        .find(|p| p.partition == partition)
                        .map_or(-1, |p| p.leader)
                })
            });
            let failure = match leader {
                None => match routes.topic_errors.get(topic) {
                    Some(e) => Some(e.clone()),
                    None => {
                        ready.missing_topics.insert(topic.clone());
                        continue;
                    }
                },
                Some(l) if l < 0 => Some(Error::kafka(5, "no leader known", None)),
                Some(l) => match routes.conns.get(&l) {
                    None => {
                        ready.missing_conns.insert(l);
                        continue;
                    }
                    Some(Err(e)) => Some(e.clone()),
                    Some(Ok(conn)) => {
                        // One connection at a time per partition, so batches stay in order.
                        if !q.in_flight.is_empty() && q.in_flight_conn != conn.id() {
                            continue;
                        }
                        let outstanding = st.requests.get(&conn.id()).copied().unwrap_or(0);
                        if !building.contains_key(&l) && outstanding >= inner.max_in_flight {
                            continue;
                        }
                        None
                    }
                },
            };
            let Some(mut batch) = q.sealed.pop_front() else {
                continue;
            };
            if let Some(e) = failure {
                // Not sent: it counts as in flight until `complete` puts it back or fails it.
                q.in_flight.push(batch.order);
                ready.failed.push((
                    Outgoing {
                        tp: (topic.clone(), partition),
                        batch,
                    },
                    e,
                ));
                continue;
            }
            if batch.encoded.is_none() {
                let Some(builder) = batch.builder.take() else {
                    continue;
                };
                let count = builder.len() as i32;
                let producer = producer.map(|(id, epoch)| {
                    let seq = q.next_sequence;
                    q.next_sequence = seq.wrapping_add(count) & i32::MAX;
                    (id, epoch, seq)
                });
                match builder.build(producer, inner.config.compression) {
                    Ok(bytes) => batch.encoded = Some(bytes),
                    Err(e) => {
                        for w in batch.waiters.drain(..) {
                            w(Err(Error::Invalid(e.to_string())));
                        }
                        inner.release(batch.bytes);
                        continue;
                    }
                }
            }
            let Some(Some(Ok(conn))) = leader.map(|l| routes.conns.get(&l)) else {
                continue; // unreachable: checked above
            };
            q.in_flight.push(batch.order);
            q.in_flight_conn = conn.id();
            let l = leader.unwrap_or(-1);
            building
                .entry(l)
                .or_insert_with(|| Request {
                    conn: Arc::clone(conn),
                    batches: Vec::new(),
                })
                .batches
                .push(Outgoing {
                    tp: (topic.clone(), partition),
                    batch,
                });
        }
    }
    for req in building.into_values() {
        *st.requests.entry(req.conn.id()).or_default() += 1;
        ready.requests.push(req);
    }
    ready.next_deadline = next;
    ready
}

async fn init_producer_id(inner: &Inner) -> Result<(i64, i16)> {
    inner
        .client
        .retry("InitProducerId", || async {
            let mut req = InitProducerIdRequest::default();
            req.transactional_id = None; // the crate's default is Some(""), a transactional id
            req.transaction_timeout_ms = 60_000;
            req.producer_id = kafka_protocol::messages::ProducerId(-1);
            req.producer_epoch = -1;
            let resp = inner.client.any_conn().await?.call(&req).await?;
            check(resp.error_code, || "InitProducerId".into(), None)?;
            Ok((resp.producer_id.0, resp.producer_epoch))
        })
        .await
}

/// Queues one request on its connection (so requests go out in the order they were taken)
/// and leaves its answer to a task, which completes the batches.
async fn dispatch(inner: &Arc<Inner>, req: Request) {
    let Request { conn, batches } = req;
    let (produce, ids) = produce_request(inner, &conn, &batches);
    // The batches go out from their own buffers, not copied into the frame.
    let splice: Vec<Bytes> = batches
        .iter()
        .filter_map(|o| o.batch.encoded.clone())
        .collect();
    if inner.config.acks == 0 {
        let r = conn.send_no_response(&produce, &splice).await;
        finish_request(inner, &conn);
        for out in batches {
            complete(inner, out, r.clone().map(|()| (-1, -1)));
        }
        return;
    }
    let reply = match conn.start(&produce, &splice).await {
        Ok(r) => r,
        Err(e) => {
            finish_request(inner, &conn);
            for out in batches {
                complete(inner, out, Err(e.clone()));
            }
            return;
        }
    };
    drop((produce, splice));
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let resp = reply.wait().await;
        finish_request(&inner, &conn);
        complete_request(&inner, batches, resp, &ids);
    });
}

/// A request's answer came (or never will): its connection may take another.
fn finish_request(inner: &Inner, conn: &Connection) {
    let mut st = inner.lock();
    if let Some(n) = st.requests.get_mut(&conn.id()) {
        *n -= 1;
        if *n == 0 {
            st.requests.remove(&conn.id());
        }
    }
}

/// The request for `batches`, and the ids of the topics it names by id (v13+), by which
/// its response names them: the answer is matched with what was sent, whatever the
/// metadata cache holds by then.
fn produce_request(
    inner: &Inner,
    conn: &Connection,
    batches: &[Outgoing],
) -> (ProduceRequest, HashMap<String, uuid::Uuid>) {
    let mut req = ProduceRequest::default();
    let mut ids = HashMap::new();
    req.transactional_id = None;
    req.acks = inner.config.acks;
    req.timeout_ms = 30_000;
    let mut topics: BTreeMap<&str, TopicProduceData> = BTreeMap::new();
    // v13 (KIP-516) names topics by id only.
    let by_id = conn.version_of::<ProduceRequest>().is_ok_and(|v| v >= 13);
    inner.client.with_cached(|m| {
        for out in batches {
            let t = topics.entry(&out.tp.0).or_insert_with(|| {
                let mut t = TopicProduceData::default();
                match m.topics.get(&out.tp.0) {
                    Some(info) if by_id => {
                        t.topic_id = info.id;
                        ids.insert(out.tp.0.clone(), info.id);
                    }
                    _ => t.name = TopicName(StrBytes::from_string(out.tp.0.clone())),
                }
                t
            });
            let mut p = PartitionProduceData::default();
            p.index = out.tp.1;
            p.records = out.batch.encoded.clone();
            t.partition_data.push(p);
        }
    });
    req.topic_data = topics.into_values().collect();
    (req, ids)
}

/// Completes each batch of a request from its response (`ids`: the topics it named by id).
fn complete_request(
    inner: &Arc<Inner>,
    batches: Vec<Outgoing>,
    resp: Result<ProduceResponse>,
    ids: &HashMap<String, uuid::Uuid>,
) {
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            for out in batches {
                complete(inner, out, Err(e.clone()));
            }
            return;
        }
    };
    for out in batches {
        let topic_id = ids.get(&out.tp.0).copied();
        let p = resp
            .responses
            .iter()
            .find(|t| t.name.0.as_str() == out.tp.0 || Some(t.topic_id) == topic_id)
            .and_then(|t| t.partition_responses.iter().find(|p| p.index == out.tp.1));
        let result = match p {
            None => Err(Error::Protocol(format!(
                "no produce result for {}-{}",
                out.tp.0, out.tp.1
            ))),
            Some(p) => check(
                p.error_code,
                || format!("producing to {}-{}", out.tp.0, out.tp.1),
                p.error_message.as_ref().map(|m| m.as_str()),
            )
            .map(|()| (p.base_offset, p.log_append_time_ms)),
        };
        complete(inner, out, result);
    }
}

/// Finishes a batch: acknowledges its records, puts it back for a retry, or fails it.
fn complete(inner: &Arc<Inner>, out: Outgoing, result: Result<(i64, i64)>) {
    let Outgoing { tp, mut batch } = out;
    let mut st = inner.lock();
    let closed = st.closed;
    let q = st
        .partitions
        .entry(tp.0.clone())
        .or_default()
        .entry(tp.1)
        .or_default();
    // Whether a batch created before this one is unresolved (in flight or put back).
    let earlier_unresolved = q.in_flight.iter().any(|&o| o < batch.order)
        || q.sealed.front().is_some_and(|b| b.order < batch.order);
    q.in_flight.retain(|&o| o != batch.order);
    match result {
        Ok((base_offset, log_append_time)) => {
            for (i, (w, ts)) in batch.waiters.drain(..).zip(&batch.timestamps).enumerate() {
                w(Ok(RecordMetadata {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    offset: if base_offset < 0 {
                        -1
                    } else {
                        base_offset + i as i64
                    },
                    timestamp_ms: if log_append_time >= 0 {
                        log_append_time
                    } else {
                        *ts
                    },
                }));
            }
            inner.release(batch.bytes);
        }
        Err(e)
            if (e.is_retriable()
                || (e.code() == Some(ResponseError::OutOfOrderSequenceNumber.code())
                    && earlier_unresolved))
                && batch.created.elapsed() < inner.config.delivery_timeout
                && !closed =>
        {
            tracing::debug!(topic = tp.0, partition = tp.1, error = %e, "produce retry");
            // Back in creation order, ahead of every batch created after it.
            let at = q
                .sealed
                .iter()
                .position(|b| b.order > batch.order)
                .unwrap_or(q.sealed.len());
            q.sealed.insert(at, batch);
            q.draining = true;
            q.retry_at = Some(Instant::now() + Duration::from_millis(100));
            drop(st);
            inner.client.invalidate(&tp.0);
            st = inner.lock();
        }
        Err(e) => {
            let e = match e {
                Error::Disconnected { .. } | Error::Timeout { .. } => Error::Timeout {
                    what: format!(
                        "delivery to {}-{} ({}; last error: {e})",
                        tp.0, tp.1, "delivery.timeout.ms"
                    ),
                    after: inner.config.delivery_timeout,
                },
                e => e,
            };
            for w in batch.waiters.drain(..) {
                w(Err(e.clone()));
            }
            inner.release(batch.bytes);
        }
    }
    if let Some(q) = st.partitions.get_mut(&tp.0).and_then(|t| t.get_mut(&tp.1)) {
        if q.in_flight.is_empty() {
            q.draining = false;
        }
    }
    drop(st);
    inner.wake.notify_one();
    inner.idle.notify_waiters();
}

fn fail_all(inner: &Arc<Inner>, e: &Error) {
    let mut st = inner.lock();
    let mut released = 0;
    for q in st.partitions.values_mut().flat_map(BTreeMap::values_mut) {
        q.seal_open();
        for b in q.sealed.drain(..) {
            released += b.bytes;
            for w in b.waiters {
                w(Err(e.clone()));
            }
        }
    }
    drop(st);
    inner.release(released);
    inner.idle.notify_waiters();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strom_proto::BatchBuilder;

    #[test]
    fn varint_lengths_match_the_encoder() {
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            1 << 20,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            varint::put_varlong(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }

    /// The in-place batch is byte for byte what strom-proto's builder makes.
    #[test]
    fn records_buf_builds_what_batch_builder_builds() {
        let headers = vec![
            ("h1".to_string(), Some(Bytes::from_static(b"v1"))),
            ("empty".to_string(), None),
        ];
        let big = vec![7u8; 300];
        type Row<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, bool, i64);
        let records: Vec<Row<'_>> = vec![
            (
                Some(b"k".as_slice()),
                Some(b"value".as_slice()),
                false,
                1_000,
            ),
            (None, Some(big.as_slice()), true, 1_005),
            (Some(b"".as_slice()), None, false, 999),
            (None, None, true, 1_000 + 70_000),
        ];
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Zstd,
        ] {
            for producer in [None, Some((42i64, 3i16, 17i32))] {
                let mut ours = RecordsBuf::new(1_000, 16);
                let mut theirs = BatchBuilder::new(1_000);
                for (k, v, with_headers, ts) in &records {
                    let hs: &[(String, Option<Bytes>)] = if *with_headers { &headers } else { &[] };
                    ours.push(*k, *v, hs, *ts);
                    let hs: Vec<(&[u8], Option<&[u8]>)> = hs
                        .iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_deref()))
                        .collect();
                    theirs.push_with_headers(*k, *v, &hs, *ts);
                }
                if let Some((id, epoch, seq)) = producer {
                    theirs = theirs.producer(id, epoch, seq);
                }
                let ours = ours.build(producer, codec).unwrap();
                let theirs = theirs.build_compressed(codec).unwrap();
                assert_eq!(&ours[..], &theirs[..], "{codec:?} {producer:?}");
                strom_proto::batch::validate(&ours).unwrap();
            }
        }
    }
}

/// A scripted broker for the pipelining tests: one topic, idempotent appends kept in memory
/// (Kafka's sequence rules: the next sequence is appended, a repeat of a written batch is a
/// duplicate and succeeds, anything else is OUT_OF_ORDER_SEQUENCE_NUMBER), responses sent in
/// request order after a delay so that requests pile up in flight, and faults at chosen
/// Produce requests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod fake_broker {
    use bytes::{Buf, Bytes, BytesMut};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdResponse, MetadataResponse,
        ProduceRequest, ProduceResponse, ProducerId, RequestHeader, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    pub const TOPIC: &str = "t";
    pub const PARTITIONS: i32 = 2;
    const RESPONSE_DELAY: Duration = Duration::from_millis(3);

    #[derive(Clone, Copy, Debug)]
    pub enum Fault {
        /// Refuse the request's batches with NOT_LEADER_OR_FOLLOWER (nothing written).
        NotLeader,
        /// Write the request's batches, then drop the connection without answering it (or
        /// anything after it).
        Disconnect,
    }

    #[derive(Default)]
    pub struct State {
        /// Record values per partition, in log order.
        pub values: BTreeMap<i32, Vec<Vec<u8>>>,
        /// (base sequence, record count, base offset) of each written batch.
        batches: HashMap<i32, Vec<(i32, i32, i64)>>,
        produces: usize,
        in_flight: usize,
        pub max_in_flight: usize,
        pub faults: usize,
        pub out_of_order: usize,
        pub duplicates: usize,
    }

    pub async fn start(fault: Fault, fault_at: Vec<usize>) -> (String, Arc<Mutex<State>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                let fault_at = fault_at.clone();
                tokio::spawn(serve(stream, addr.port(), state, fault, fault_at));
            }
        });
        (addr.to_string(), state)
    }

    fn frame<R: Encodable + HeaderVersion>(correlation: i32, version: i16, resp: &R) -> BytesMut {
        let mut header = ResponseHeader::default();
        header.correlation_id = correlation;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header.encode(&mut buf, R::header_version(version)).unwrap();
        resp.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf
    }

    async fn serve(
        stream: TcpStream,
        port: u16,
        state: Arc<Mutex<State>>,
        fault: Fault,
        fault_at: Vec<usize>,
    ) {
        let (mut read, mut write) = stream.into_split();
        // `None` closes the connection once what was queued before it is written.
        let (tx, mut rx) = mpsc::unbounded_channel::<Option<(Instant, BytesMut)>>();
        let writer_state = Arc::clone(&state);
        tokio::spawn(async move {
            while let Some(Some((due, frame))) = rx.recv().await {
                tokio::time::sleep_until(due.into()).await;
                if write.write_all(&frame).await.is_err() {
                    return;
                }
                writer_state.lock().unwrap().in_flight -= 1;
            }
        });
        loop {
            let mut size = [0u8; 4];
            if read.read_exact(&mut size).await.is_err() {
                return;
            }
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            if read.read_exact(&mut body).await.is_err() {
                return;
            }
            let mut buf = Bytes::from(body);
            let key = ApiKey::try_from(buf.clone().get_i16()).unwrap();
            let version = buf.slice(2..4).get_i16();
            let header =
                RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
            let correlation = header.correlation_id;
            let due = Instant::now() + RESPONSE_DELAY;
            let out = match key {
                ApiKey::ApiVersions => {
                    let mut resp = ApiVersionsResponse::default();
                    for (k, min, max) in [
                        (ApiKey::ApiVersions, 0, 3),
                        (ApiKey::Metadata, 0, 12),
                        (ApiKey::InitProducerId, 0, 4),
                        (ApiKey::Produce, 3, 9),
                    ] {
                        let mut v = ApiVersion::default();
                        v.api_key = k as i16;
                        v.min_version = min;
                        v.max_version = max;
                        resp.api_keys.push(v);
                    }
                    frame(correlation, version, &resp)
                }
                ApiKey::Metadata => {
                    let mut resp = MetadataResponse::default();
                    let mut b = MetadataResponseBroker::default();
                    b.node_id = BrokerId(0);
                    b.host = StrBytes::from_static_str("127.0.0.1");
                    b.port = i32::from(port);
                    resp.brokers.push(b);
                    resp.controller_id = BrokerId(0);
                    let mut t = MetadataResponseTopic::default();
                    t.name = Some(TopicName(StrBytes::from_static_str(TOPIC)));
                    t.topic_id = uuid::Uuid::from_u128(1);
                    for p in 0..PARTITIONS {
                        let mut mp = MetadataResponsePartition::default();
                        mp.partition_index = p;
                        mp.leader_id = BrokerId(0);
                        mp.replica_nodes = vec![BrokerId(0)];
                        mp.isr_nodes = vec![BrokerId(0)];
                        t.partitions.push(mp);
                    }
                    resp.topics.push(t);
                    frame(correlation, version, &resp)
                }
                ApiKey::InitProducerId => {
                    let mut resp = InitProducerIdResponse::default();
                    resp.producer_id = ProducerId(7);
                    resp.producer_epoch = 0;
                    frame(correlation, version, &resp)
                }
                ApiKey::Produce => {
                    let req = ProduceRequest::decode(&mut buf, version).unwrap();
                    let mut st = state.lock().unwrap();
                    st.produces += 1;
                    let faulty = fault_at.contains(&st.produces);
                    let mut resp = ProduceResponse::default();
                    for t in &req.topic_data {
                        let mut tr = TopicProduceResponse::default();
                        tr.name = t.name.clone();
                        for p in &t.partition_data {
                            let mut pr = PartitionProduceResponse::default();
                            pr.index = p.index;
                            pr.log_append_time_ms = -1;
                            let records = p.records.clone().unwrap_or_default();
                            if faulty && matches!(fault, Fault::NotLeader) {
                                pr.error_code = 6; // NOT_LEADER_OR_FOLLOWER
                                pr.base_offset = -1;
                            } else {
                                let (code, offset) = append(&mut st, p.index, &records);
                                pr.error_code = code;
                                pr.base_offset = offset;
                            }
                            tr.partition_responses.push(pr);
                        }
                        resp.responses.push(tr);
                    }
                    if faulty {
                        st.faults += 1;
                        if matches!(fault, Fault::Disconnect) {
                            let _ = tx.send(None);
                            return;
                        }
                    }
                    frame(correlation, version, &resp)
                }
                other => panic!("the fake broker does not serve {other:?}"),
            };
            {
                let mut st = state.lock().unwrap();
                st.in_flight += 1;
                st.max_in_flight = st.max_in_flight.max(st.in_flight);
            }
            if tx.send(Some((due, out))).is_err() {
                return;
            }
        }
    }

    /// Kafka's idempotent append for one batch: (error code, base offset).
    fn append(st: &mut State, partition: i32, batch: &[u8]) -> (i16, i64) {
        let header = strom_proto::BatchHeader::parse(batch).unwrap();
        let written = st.batches.entry(partition).or_default();
        if let Some(&(_, _, offset)) = written
            .iter()
            .find(|(seq, n, _)| *seq == header.base_sequence && *n == header.record_count)
        {
            st.duplicates += 1;
            return (0, offset);
        }
        let next = written.last().map_or(0, |(seq, n, _)| seq + n);
        if header.base_sequence != next {
            st.out_of_order += 1;
            return (45, -1); // OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        let log = st.values.entry(partition).or_default();
        let offset = log.len() as i64;
        for r in strom_proto::records::decode(batch).unwrap() {
            log.push(r.value.unwrap_or_default().to_vec());
        }
        st.batches.entry(partition).or_default().push((
            header.base_sequence,
            header.record_count,
            offset,
        ));
        (0, offset)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod pipelining_tests {
    use super::fake_broker::{self, Fault};
    use super::*;
    use crate::client::ClientConfig;

    /// Sends `n` records round-robin over the fake topic's partitions with many small
    /// batches in flight, and checks that every partition's log holds them in order, once.
    async fn run(fault: Fault, fault_at: Vec<usize>) -> fake_broker::State {
        let (addr, state) = fake_broker::start(fault, fault_at).await;
        let client = Client::connect(ClientConfig::new(&addr)).await.unwrap();
        let producer = Producer::new(
            client,
            ProducerConfig {
                linger: Duration::ZERO,
                batch_bytes: 400,
                ..Default::default()
            },
        );
        let n = 3000u32;
        let mut acks = Vec::new();
        for i in 0..n {
            let record = ProducerRecord {
                topic: fake_broker::TOPIC.into(),
                partition: Some((i % fake_broker::PARTITIONS as u32) as i32),
                value: Some(Bytes::from(i.to_string())),
                ..Default::default()
            };
            acks.push((i, producer.send(record).await.unwrap()));
        }
        let mut offsets: HashMap<i32, i64> = HashMap::new();
        for (i, ack) in acks {
            let m = ack.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
            // Offsets come back in send order per partition.
            let last = offsets.insert(m.partition, m.offset);
            assert!(
                last.is_none_or(|l| l + 1 == m.offset),
                "record {i}: {m:?} after {last:?}"
            );
        }
        producer.close().await;
        let st = std::mem::take(&mut *state.lock().unwrap());
        for p in 0..fake_broker::PARTITIONS {
            let want: Vec<Vec<u8>> = (0..n)
                .filter(|i| (i % fake_broker::PARTITIONS as u32) as i32 == p)
                .map(|i| i.to_string().into_bytes())
                .collect();
            assert_eq!(st.values.get(&p), Some(&want), "partition {p} ({fault:?})");
        }
        assert!(st.max_in_flight > 1, "nothing was pipelined");
        st
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_batches_stay_in_order() {
        let st = run(Fault::NotLeader, vec![]).await;
        assert_eq!((st.faults, st.out_of_order, st.duplicates), (0, 0, 0));
    }

    /// A refused batch with later ones in flight: those are refused as out of order, and
    /// everything is resent in order after them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_batch_is_resent_in_order_with_those_behind_it() {
        let st = run(Fault::NotLeader, vec![5, 40]).await;
        assert_eq!(st.faults, 2);
        assert!(
            st.out_of_order > 0,
            "no batch was in flight behind the refused one"
        );
    }

    /// Written but never acknowledged (a broker restart): the resent batch is a duplicate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_connection_resends_without_duplicates() {
        let st = run(Fault::Disconnect, vec![5, 40]).await;
        assert_eq!(st.faults, 2);
        assert!(st.duplicates > 0, "the written batches were not resent");
    }
}
