//! The producer: records are partitioned (Kafka's murmur2 for keys, a sticky partition per
//! topic for key-less records), accumulated per partition into batches (`batch.size`,
//! `linger.ms`, `compression.type`), and sent by one background task, one Produce request per
//! leader carrying a batch per partition.
//!
//! Ordering and idempotence: each partition has at most one batch in flight. A batch that
//! fails with a retriable error goes back to the head of its partition's queue with the same
//! bytes (the same producer id, epoch and sequence), so a retry after a broker restart is
//! deduplicated by the broker and records stay in order. One in flight per partition costs
//! little: while a batch is out, the next one grows, so batches get larger under load.

use crate::client::Client;
use crate::error::{check, Error, Result};
use bytes::Bytes;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom_proto::{BatchBuilder, Compression};
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
        }
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
    builder: BatchBuilder,
    created: Instant,
    timestamps: Vec<i64>,
    waiters: Vec<Waiter>,
    bytes: usize,
}

struct Sealed {
    /// Built lazily on first send, so the sequence number is assigned in send order.
    encoded: Option<Bytes>,
    builder: Option<BatchBuilder>,
    created: Instant,
    timestamps: Vec<i64>,
    waiters: Vec<Waiter>,
    bytes: usize,
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<Open>,
    sealed: VecDeque<Sealed>,
    in_flight: bool,
    next_sequence: i32,
    /// Do not send before this instant (backoff after a retriable error).
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    partitions: BTreeMap<Tp, PartitionQueue>,
    sticky: HashMap<String, i32>,
    flushing: usize,
    closed: bool,
    producer_id: Option<(i64, i16)>,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
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
        let inner = Arc::new(Inner {
            client,
            config,
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
        let topic = inner.client.topic(&record.topic).await?;
        let count = topic.partitions.len() as i32;
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
        {
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
                (None, None) => {
                    let next = st.sticky.len() as i32 + timestamp as i32;
                    *st.sticky
                        .entry(record.topic.clone())
                        .or_insert(next.rem_euclid(count))
                        % count
                }
            };
            let q = st
                .partitions
                .entry((record.topic.clone(), partition))
                .or_default();
            let fits = q.open.as_ref().is_some_and(|o| {
                o.builder.is_empty() || o.bytes + size <= inner.config.batch_bytes
            });
            if !fits {
                if let Some(o) = q.open.take() {
                    q.sealed.push_back(seal(o));
                }
            }
            let open = q.open.get_or_insert_with(|| Open {
                builder: BatchBuilder::new(timestamp),
                created: Instant::now(),
                timestamps: Vec::new(),
                waiters: Vec::new(),
                bytes: 0,
            });
            let headers: Vec<(&[u8], Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_deref()))
                .collect();
            open.builder.push_with_headers(
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
                timestamp,
            );
            open.timestamps.push(timestamp);
            open.waiters.push(tx);
            open.bytes += size;
            let full = open.bytes >= inner.config.batch_bytes;
            if full {
                if let Some(o) = q.open.take() {
                    q.sealed.push_back(seal(o));
                }
                if record.partition.is_none() && record.key.is_none() {
                    // Sticky partitioning (KIP-480): move on once a batch is full.
                    let next = (partition + 1) % count;
                    st.sticky.insert(record.topic.clone(), next);
                }
            }
        }
        inner.wake.notify_one();
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
                    .all(|q| q.open.is_none() && q.sealed.is_empty() && !q.in_flight)
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

fn seal(o: Open) -> Sealed {
    Sealed {
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

/// The background task: wakes on new records or when the oldest open batch's linger ends,
/// takes one ready batch per idle partition, and sends them grouped by leader.
async fn sender(inner: Arc<Inner>) {
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
        let (ready, next_deadline) = take_ready(&inner);
        if !ready.is_empty() {
            dispatch(&inner, ready).await;
            continue;
        }
        match next_deadline {
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

fn take_ready(inner: &Arc<Inner>) -> (Vec<Outgoing>, Option<Instant>) {
    let now = Instant::now();
    let mut st = inner.lock();
    let flushing = st.flushing > 0 || st.closed;
    let producer = st.producer_id;
    let mut ready = Vec::new();
    let mut next: Option<Instant> = None;
    let mut earliest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
    for (tp, q) in st.partitions.iter_mut() {
        if q.in_flight {
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
                    if let Some(o) = q.open.take() {
                        q.sealed.push_back(seal(o));
                    }
                } else {
                    earliest(due);
                }
            }
        }
        let Some(mut batch) = q.sealed.pop_front() else {
            continue;
        };
        if batch.encoded.is_none() {
            let Some(builder) = batch.builder.take() else {
                continue;
            };
            let count = builder.len() as i32;
            let builder = match producer {
                Some((id, epoch)) => {
                    let seq = q.next_sequence;
                    q.next_sequence = seq.wrapping_add(count) & i32::MAX;
                    builder.producer(id, epoch, seq)
                }
                None => builder,
            };
            match builder.build_compressed(inner.config.compression) {
                Ok(bytes) => batch.encoded = Some(Bytes::from(bytes)),
                Err(e) => {
                    for w in batch.waiters.drain(..) {
                        w(Err(Error::Invalid(e.to_string())));
                    }
                    inner.release(batch.bytes);
                    continue;
                }
            }
        }
        q.in_flight = true;
        ready.push(Outgoing {
            tp: tp.clone(),
            batch,
        });
    }
    (ready, next)
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

/// Groups batches by leader and starts one request per leader; the partitions stay in
/// flight until their request's task completes them.
async fn dispatch(inner: &Arc<Inner>, ready: Vec<Outgoing>) {
    let mut by_leader: BTreeMap<i32, Vec<Outgoing>> = BTreeMap::new();
    for out in ready {
        let leader = match inner.client.topic(&out.tp.0).await {
            Ok(t) => t
                .partitions
                .iter()
                .find(|p| p.partition == out.tp.1)
                .map_or(-1, |p| p.leader),
            Err(_) => -1,
        };
        by_leader.entry(leader).or_default().push(out);
    }
    for (leader, batches) in by_leader {
        let inner = Arc::clone(inner);
        tokio::spawn(async move {
            if leader < 0 {
                let e = Error::kafka(5, "no leader known", None);
                for out in batches {
                    complete(&inner, out, Err(e.clone()));
                }
                return;
            }
            send_to(&inner, leader, batches).await;
        });
    }
}

async fn send_to(inner: &Arc<Inner>, leader: i32, batches: Vec<Outgoing>) {
    let conn = match inner.client.broker_conn(leader).await {
        Ok(c) => c,
        Err(e) => {
            for out in batches {
                complete(inner, out, Err(e.clone()));
            }
            return;
        }
    };
    let mut req = ProduceRequest::default();
    req.transactional_id = None;
    req.acks = inner.config.acks;
    req.timeout_ms = 30_000;
    let mut topics: BTreeMap<String, TopicProduceData> = BTreeMap::new();
    let ids: BTreeMap<String, uuid::Uuid> = inner.client.with_cached(|m| {
        batches
            .iter()
            .filter_map(|o| m.topics.get(&o.tp.0).map(|t| (o.tp.0.clone(), t.id)))
            .collect()
    });
    // v13 (KIP-516) names topics by id only.
    let by_id = conn.version_of::<ProduceRequest>().is_ok_and(|v| v >= 13);
    for out in &batches {
        let t = topics.entry(out.tp.0.clone()).or_insert_with(|| {
            let mut t = TopicProduceData::default();
            match ids.get(&out.tp.0) {
                Some(id) if by_id => t.topic_id = *id,
                _ => t.name = TopicName(StrBytes::from_string(out.tp.0.clone())),
            }
            t
        });
        let mut p = PartitionProduceData::default();
        p.index = out.tp.1;
        p.records = out.batch.encoded.clone();
        t.partition_data.push(p);
    }
    req.topic_data = topics.into_values().collect();
    if inner.config.acks == 0 {
        let r = conn.send_no_response(&req).await;
        for out in batches {
            let r = match &r {
                Ok(()) => Ok(-1),
                Err(e) => Err(e.clone()),
            };
            complete(inner, out, r.map(|o| (o, -1)));
        }
        return;
    }
    let resp = match conn.call(&req).await {
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
    let q = st.partitions.entry(tp.clone()).or_default();
    q.in_flight = false;
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
            if e.is_retriable()
                && batch.created.elapsed() < inner.config.delivery_timeout
                && !st.closed =>
        {
            tracing::debug!(topic = tp.0, partition = tp.1, error = %e, "produce retry");
            inner.client.invalidate(&tp.0);
            let q = st.partitions.entry(tp).or_default();
            q.sealed.push_front(batch);
            q.retry_at = Some(Instant::now() + Duration::from_millis(100));
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
    drop(st);
    inner.wake.notify_one();
    inner.idle.notify_waiters();
}

fn fail_all(inner: &Arc<Inner>, e: &Error) {
    let mut st = inner.lock();
    let mut released = 0;
    for q in st.partitions.values_mut() {
        let open = q.open.take().map(seal);
        for b in q.sealed.drain(..).chain(open) {
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
