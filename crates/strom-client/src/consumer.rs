//! The consumer: assigned partitions (or a group subscription), positions, fetch sessions
//! (KIP-227) per leader, record decoding (compressed batches included, CRCs checked), and
//! offset commits.
//!
//! Like Kafka's consumer it is driven by `poll` from one task: membership changes, offset
//! resets and fetches all happen inside `poll`; only heartbeats run in the background.

use crate::admin::{Admin, OffsetSpec};
use crate::client::Client;
use crate::error::{check, Error, Result};
use crate::group::{self, GroupConfig, Membership};
use crate::limits;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchRequest, FetchTopic, ForgottenTopic,
};
use kafka_protocol::messages::{BrokerId, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};
use strom_proto::batch::{self, BatchHeader};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// What to do when a partition has no committed offset, or its position is out of range
/// (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE.
    None,
}

/// Consumer settings, named after Kafka's consumer configs.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// `group.id`: needed for `subscribe` and commits.
    pub group_id: Option<String>,
    pub auto_offset_reset: OffsetReset,
    /// `isolation.level`: 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
    pub fetch_max_wait: Duration,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub partition_max_bytes: i32,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout.
    pub max_poll_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            isolation_level: 0,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 << 20,
            partition_max_bytes: 1 << 20,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
        }
    }
}

/// One record as consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    /// `CreateTime` or `LogAppendTime`.
    pub timestamp_type: &'static str,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

type Tp = (String, i32);

/// A KIP-227 session with one broker: what the broker already knows we fetch.
#[derive(Default)]
struct Session {
    id: i32,
    epoch: i32,
    /// The fetch offset last sent for each partition in the session.
    sent: BTreeMap<Tp, i64>,
}

/// An async Kafka consumer, driven by [`Consumer::poll`].
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// The partitions consumed, with their next offset once known.
    positions: BTreeMap<Tp, Option<i64>>,
    high_watermarks: BTreeMap<Tp, i64>,
    subscription: Vec<String>,
    membership: Option<Membership>,
    member_id: String,
    sessions: HashMap<i32, Session>,
    buffered: VecDeque<ConsumerRecord>,
    last_commit: Instant,
}

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            subscription: Vec::new(),
            membership: None,
            member_id: String::new(),
            sessions: HashMap::new(),
            buffered: VecDeque::new(),
            last_commit: Instant::now(),
        }
    }

    /// Consumes exactly these partitions (no group membership). Each starts at its committed
    /// offset when there is a group and one was committed, else at `auto.offset.reset`.
    pub fn assign(&mut self, partitions: &[(String, i32)]) {
        self.subscription.clear();
        self.positions = partitions.iter().map(|tp| (tp.clone(), None)).collect();
        self.buffered.clear();
    }

    /// Joins the configured group subscribed to `topics` (on the next `poll`).
    pub fn subscribe(&mut self, topics: &[String]) -> Result<()> {
        if self.config.group_id.is_none() {
            return Err(Error::Invalid("subscribe needs a group id".into()));
        }
        self.subscription = topics.to_vec();
        self.positions.clear();
        self.buffered.clear();
        Ok(())
    }

    /// Starts `partition` at `offset` on the next fetch.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.positions
            .insert((topic.to_string(), partition), Some(offset));
        self.buffered
            .retain(|r| !(r.topic == topic && r.partition == partition));
    }

    /// The partitions currently consumed.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// The next offset to consume per partition, where known.
    pub fn positions(&self) -> BTreeMap<(String, i32), i64> {
        self.positions
            .iter()
            .filter_map(|(tp, o)| o.map(|o| (tp.clone(), o)))
            .collect()
    }

    /// The high watermark last seen per partition.
    pub fn high_watermarks(&self) -> &BTreeMap<(String, i32), i64> {
        &self.high_watermarks
    }

    /// Returns the records available within `timeout` (possibly none).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            self.maintain_group().await?;
            self.resolve_positions().await?;
            if self.config.enable_auto_commit
                && self.config.group_id.is_some()
                && self.last_commit.elapsed() >= self.config.auto_commit_interval
            {
                if let Err(e) = self.commit().await {
                    tracing::debug!(error = %e, "auto-commit failed");
                }
            }
            if !self.buffered.is_empty() {
                return Ok(self.buffered.drain(..).collect());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wait = (deadline - now).min(self.config.fetch_max_wait);
            if self.positions.is_empty() {
                tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
                continue;
            }
            self.fetch(wait).await?;
            if !self.buffered.is_empty() {
                return Ok(self.buffered.drain(..).collect());
            }
        }
    }

    /// Joins or rejoins the group when subscribed and needed.
    async fn maintain_group(&mut self) -> Result<()> {
        if self.subscription.is_empty() {
            return Ok(());
        }
        let needed = self
            .membership
            .as_ref()
            .is_none_or(Membership::needs_rejoin);
        if !needed {
            return Ok(());
        }
        if self.membership.is_some() && self.config.enable_auto_commit {
            let _ = self.commit().await;
        }
        self.membership = None;
        let Some(group_id) = self.config.group_id.clone() else {
            return Ok(());
        };
        let gc = GroupConfig {
            group_id,
            session_timeout: self.config.session_timeout,
            rebalance_timeout: self.config.max_poll_interval,
            heartbeat_interval: self.config.heartbeat_interval,
        };
        let m = group::join(&self.client, &gc, &self.subscription, &self.member_id).await?;
        self.member_id.clone_from(&m.member_id);
        let assigned: BTreeSet<Tp> = m.assignment.iter().cloned().collect();
        self.positions.retain(|tp, _| assigned.contains(tp));
        for tp in assigned {
            self.positions.entry(tp).or_insert(None);
        }
        self.buffered.clear();
        self.membership = Some(m);
        Ok(())
    }

    /// Gives every partition without a position its committed offset, else the reset policy.
    async fn resolve_positions(&mut self) -> Result<()> {
        let missing: Vec<Tp> = self
            .positions
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let admin = Admin::new(self.client.clone());
        let committed = match &self.config.group_id {
            Some(g) => admin.committed_offsets(g).await?,
            None => BTreeMap::new(),
        };
        let mut reset = Vec::new();
        for tp in missing {
            match committed.get(&tp) {
                Some(&o) => {
                    self.positions.insert(tp, Some(o));
                }
                None => reset.push(tp),
            }
        }
        self.reset(&reset).await
    }

    async fn reset(&mut self, partitions: &[Tp]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let spec = match self.config.auto_offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::None => {
                let (t, p) = &partitions[0];
                return Err(Error::kafka(
                    OFFSET_OUT_OF_RANGE,
                    format!("{t}-{p} has no committed offset and auto.offset.reset is none"),
                    None,
                ));
            }
        };
        let offsets = Admin::new(self.client.clone())
            .list_offsets(partitions, spec)
            .await?;
        for (tp, o) in offsets {
            self.positions.insert(tp, Some(o.unwrap_or(0)));
        }
        Ok(())
    }

    /// One fetch round: a request per leader, concurrently.
    async fn fetch(&mut self, wait: Duration) -> Result<()> {
        let mut by_leader: BTreeMap<i32, Vec<(Tp, i64)>> = BTreeMap::new();
        for (tp, pos) in &self.positions {
            let Some(pos) = pos else { continue };
            let leader = match self.client.topic(&tp.0).await {
                Ok(t) => t
                    .partitions
                    .iter()
                    .find(|p| p.partition == tp.1)
                    .map_or(-1, |p| p.leader),
                Err(e) if e.is_retriable() => -1,
                Err(e) => return Err(e),
            };
            by_leader
                .entry(leader)
                .or_default()
                .push((tp.clone(), *pos));
        }
        if by_leader.contains_key(&-1) {
            self.client.refresh(None).await.ok();
        }
        let mut calls = Vec::new();
        let cached = self.client.cached();
        for (leader, parts) in by_leader {
            if leader < 0 {
                continue;
            }
            let conn = match self.client.broker_conn(leader).await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => {
                    self.sessions.remove(&leader);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // v13 (KIP-516) names topics by id only.
            let by_id = conn.version_of::<FetchRequest>()? >= 13;
            let req = self.build_fetch(&cached, leader, &parts, wait, by_id);
            calls.push((leader, tokio::spawn(async move { conn.call(&req).await })));
        }
        if calls.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(());
        }
        for (leader, call) in calls {
            let resp = match call.await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if e.is_retriable() => {
                    tracing::debug!(leader, error = %e, "fetch failed; will retry");
                    self.sessions.remove(&leader);
                    self.client.refresh(None).await.ok();
                    continue;
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(Error::Protocol(format!("fetch task: {e}"))),
            };
            self.handle_fetch(leader, resp).await?;
        }
        Ok(())
    }

    fn build_fetch(
        &mut self,
        cached: &crate::client::Metadata,
        leader: i32,
        parts: &[(Tp, i64)],
        wait: Duration,
        by_id: bool,
    ) -> FetchRequest {
        let session = self.sessions.entry(leader).or_default();
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(-1);
        req.max_wait_ms = wait.as_millis() as i32;
        req.min_bytes = self.config.fetch_min_bytes;
        req.max_bytes = self.config.fetch_max_bytes;
        req.isolation_level = self.config.isolation_level;
        req.session_id = session.id;
        req.session_epoch = session.epoch;
        let full = session.id == 0;
        let wanted: BTreeMap<Tp, i64> = parts.iter().cloned().collect();
        let mut topics: BTreeMap<String, FetchTopic> = BTreeMap::new();
        for (tp, offset) in &wanted {
            if !full && session.sent.get(tp) == Some(offset) {
                continue; // unchanged: the session already has it
            }
            let t = topics.entry(tp.0.clone()).or_insert_with(|| {
                let mut t = FetchTopic::default();
                if by_id {
                    t.topic_id = cached.topics.get(&tp.0).map(|i| i.id).unwrap_or_default();
                } else {
                    t.topic = TopicName(StrBytes::from_string(tp.0.clone()));
                }
                t
            });
            let mut p = FetchPartition::default();
            p.partition = tp.1;
            p.fetch_offset = *offset;
            p.current_leader_epoch = -1;
            p.last_fetched_epoch = -1;
            p.log_start_offset = -1;
            p.partition_max_bytes = self.config.partition_max_bytes;
            t.partitions.push(p);
        }
        req.topics = topics.into_values().collect();
        if !full {
            let mut forgotten: BTreeMap<String, ForgottenTopic> = BTreeMap::new();
            for tp in session.sent.keys().filter(|tp| !wanted.contains_key(*tp)) {
                let f = forgotten.entry(tp.0.clone()).or_insert_with(|| {
                    let mut f = ForgottenTopic::default();
                    if by_id {
                        f.topic_id = cached.topics.get(&tp.0).map(|i| i.id).unwrap_or_default();
                    } else {
                        f.topic = TopicName(StrBytes::from_string(tp.0.clone()));
                    }
                    f
                });
                f.partitions.push(tp.1);
            }
            req.forgotten_topics_data = forgotten.into_values().collect();
        }
        session.sent = wanted;
        req
    }

    async fn handle_fetch(&mut self, leader: i32, resp: FetchResponse) -> Result<()> {
        if matches!(
            resp.error_code,
            FETCH_SESSION_ID_NOT_FOUND | INVALID_FETCH_SESSION_EPOCH
        ) {
            self.sessions.remove(&leader);
            return Ok(());
        }
        check(resp.error_code, || "Fetch".into(), None)?;
        if let Some(s) = self.sessions.get_mut(&leader) {
            if resp.session_id != 0 {
                s.epoch = if s.id == resp.session_id {
                    s.epoch + 1
                } else {
                    1
                };
                s.id = resp.session_id;
            } else {
                // The broker declined a session: every request is a full one.
                *s = Session::default();
            }
        }
        let cached = self.client.cached();
        let mut reset = Vec::new();
        for t in resp.responses {
            let topic = if t.topic.0.is_empty() {
                cached
                    .topics
                    .values()
                    .find(|i| i.id == t.topic_id)
                    .map(|i| i.name.clone())
                    .unwrap_or_default()
            } else {
                t.topic.0.to_string()
            };
            for p in t.partitions {
                let tp = (topic.clone(), p.partition_index);
                let Some(Some(position)) = self.positions.get(&tp).copied() else {
                    continue; // no longer assigned
                };
                match p.error_code {
                    0 => {}
                    OFFSET_OUT_OF_RANGE => {
                        reset.push(tp);
                        continue;
                    }
                    code => {
                        let e = Error::kafka(code, format!("fetching {}-{}", tp.0, tp.1), None);
                        if e.is_retriable() {
                            self.client.invalidate(&tp.0);
                            self.sessions.remove(&leader);
                            continue;
                        }
                        return Err(e);
                    }
                }
                self.high_watermarks.insert(tp.clone(), p.high_watermark);
                let Some(records) = p.records else { continue };
                // read_committed: the aborted transactions the data overlaps, oldest first.
                let mut aborted: Vec<(i64, i64)> = p
                    .aborted_transactions
                    .iter()
                    .flatten()
                    .map(|a| (a.first_offset, a.producer_id.0))
                    .collect();
                aborted.sort_unstable();
                let next = self.decode(&tp, position, &records, &aborted)?;
                if next != position {
                    self.positions.insert(tp, Some(next));
                }
            }
        }
        for tp in &reset {
            self.positions.insert(tp.clone(), None);
        }
        self.reset(&reset).await
    }

    /// Appends the records at or past `position` to the buffer; returns the next position.
    /// Records of `aborted` transactions ((first offset, producer id), sorted) are dropped,
    /// as Kafka's consumer drops them: a producer's batches from its aborted transaction's
    /// first offset up to its abort marker.
    fn decode(
        &mut self,
        tp: &Tp,
        mut position: i64,
        mut bytes: &[u8],
        aborted: &[(i64, i64)],
    ) -> Result<i64> {
        let mut pending = aborted.iter().peekable();
        let mut aborting = std::collections::HashSet::new();
        while bytes.len() >= batch::HEADER_BYTES {
            let header = BatchHeader::parse(bytes)
                .map_err(|e| Error::Protocol(format!("{}-{}: {e}", tp.0, tp.1)))?;
            let Some((one, rest)) = bytes.split_at_checked(header.size()) else {
                break; // a partial batch at the end of the response: fetch it next time
            };
            bytes = rest;
            if header.next_offset() <= position {
                continue;
            }
            batch::validate(one).map_err(|e| {
                Error::Protocol(format!(
                    "{}-{} offset {}: {e}",
                    tp.0, tp.1, header.base_offset
                ))
            })?;
            let mut skip = header.is_control();
            if header.is_transactional() {
                while let Some(&&(first, pid)) = pending.peek() {
                    if first > header.last_offset() {
                        break;
                    }
                    aborting.insert(pid);
                    pending.next();
                }
                if header.is_control() {
                    let abort = strom_proto::control::EndTxnMarker::from_batch(one)
                        .is_some_and(|m| !m.commit);
                    if abort {
                        aborting.remove(&header.producer_id);
                    }
                } else if aborting.contains(&header.producer_id) {
                    skip = true;
                }
            }
            if !skip {
                let mut scratch = Vec::new();
                let records = strom_proto::records::decode_any(
                    one,
                    &mut scratch,
                    limits::DECOMPRESSED_BATCH_BYTES_MAX,
                )
                .map_err(|e| {
                    Error::Protocol(format!(
                        "{}-{} offset {}: {e}",
                        tp.0, tp.1, header.base_offset
                    ))
                })?;
                let log_append =
                    header.timestamp_type() == strom_proto::TimestampType::LogAppendTime;
                for r in records.into_iter().filter(|r| r.offset >= position) {
                    self.buffered.push_back(ConsumerRecord {
                        topic: tp.0.clone(),
                        partition: tp.1,
                        offset: r.offset,
                        timestamp_ms: if log_append {
                            header.max_timestamp
                        } else {
                            r.timestamp
                        },
                        timestamp_type: if log_append {
                            "LogAppendTime"
                        } else {
                            "CreateTime"
                        },
                        key: r.key.map(Bytes::copy_from_slice),
                        value: r.value.map(Bytes::copy_from_slice),
                        headers: r
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    String::from_utf8_lossy(k).into_owned(),
                                    v.map(Bytes::copy_from_slice),
                                )
                            })
                            .collect(),
                    });
                }
            }
            position = header.next_offset();
            if self.buffered.len() >= limits::CONSUMER_BUFFERED_RECORDS_MAX {
                break;
            }
        }
        Ok(position)
    }

    /// Commits the current positions for the group (synchronously).
    pub async fn commit(&mut self) -> Result<()> {
        let offsets = self.positions();
        self.commit_offsets(&offsets).await
    }

    /// Commits the given offsets (the next offset to read, as Kafka commits them).
    pub async fn commit_offsets(&mut self, offsets: &BTreeMap<(String, i32), i64>) -> Result<()> {
        let Some(group) = self.config.group_id.clone() else {
            return Err(Error::Invalid("commit needs a group id".into()));
        };
        self.last_commit = Instant::now();
        if offsets.is_empty() {
            return Ok(());
        }
        let (generation, member, conn) = match &self.membership {
            Some(m) => (
                m.generation_id,
                m.member_id.clone(),
                std::sync::Arc::clone(&m.coordinator),
            ),
            None => (-1, String::new(), self.client.coordinator(&group, 0).await?),
        };
        let req = crate::admin::offset_commit_request(&group, generation, &member, offsets);
        crate::admin::check_offset_commit(&group, conn.call(&req).await?)
    }

    /// Commits (with auto-commit on) and leaves the group.
    pub async fn close(mut self) -> Result<()> {
        if self.config.enable_auto_commit && self.config.group_id.is_some() {
            let _ = self.commit().await;
        }
        if let Some(m) = self.membership.take() {
            m.leave().await?;
        }
        Ok(())
    }
}
