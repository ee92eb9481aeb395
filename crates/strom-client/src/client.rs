//! The cluster handle every producer, consumer and admin client shares: bootstrap, a pool of
//! connections (one per broker), a metadata cache that follows leader changes, coordinator
//! lookup, and the retry loop for retriable errors.

use crate::conn::Connection;
use crate::error::{check, Error, Result};
use crate::limits;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// How to reach a cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` addresses to bootstrap from (Kafka's `bootstrap.servers`).
    pub bootstrap: Vec<String>,
    pub client_id: String,
    /// How long one request may wait for its response (`request.timeout.ms`, 30 s).
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// A config for a comma-separated `bootstrap.servers` list.
    pub fn new(bootstrap: &str) -> ClientConfig {
        ClientConfig {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            client_id: "strom".into(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A broker as metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition's placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
    pub error_code: i16,
}

/// A topic's metadata; `partitions` is sorted by partition index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub internal: bool,
    pub error_code: i16,
    pub partitions: Vec<PartitionInfo>,
}

/// What a Metadata response said about the cluster.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

/// A handle on a cluster; clones share connections and the metadata cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    conns: tokio::sync::Mutex<HashMap<String, Arc<Connection>>>,
    metadata: RwLock<Metadata>,
}

impl Client {
    /// Connects to the first reachable bootstrap address and loads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        if config.bootstrap.is_empty() {
            return Err(Error::Invalid("no bootstrap servers given".into()));
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                conns: Default::default(),
                metadata: Default::default(),
            }),
        };
        client.refresh(Some(&[])).await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The cached metadata (as of the last refresh).
    pub fn cached(&self) -> Metadata {
        self.with_cached(Metadata::clone)
    }

    /// Reads the cache in place: the producer and consumer look a topic up per record or
    /// per fetch, which must not copy the whole cache each time.
    pub fn with_cached<T>(&self, f: impl FnOnce(&Metadata) -> T) -> T {
        f(&self
            .inner
            .metadata
            .read()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// A pooled connection to `addr`, reopened if the last one died.
    pub async fn conn_to(&self, addr: &str) -> Result<Arc<Connection>> {
        let mut conns = self.inner.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            if !c.is_dead() {
                return Ok(Arc::clone(c));
            }
        }
        let c = Arc::new(
            Connection::connect(
                addr,
                &self.inner.config.client_id,
                self.inner.config.request_timeout,
            )
            .await?,
        );
        conns.insert(addr.to_string(), Arc::clone(&c));
        Ok(c)
    }

    /// A connection to broker `node_id`.
    pub async fn broker_conn(&self, node_id: i32) -> Result<Arc<Connection>> {
        let addr = self
            .with_cached(|m| m.brokers.get(&node_id).map(BrokerInfo::addr))
            .ok_or_else(|| Error::kafka(8, format!("broker {node_id}"), None))?;
        self.conn_to(&addr).await
    }

    /// A connection to any broker: known brokers first, then the bootstrap list.
    pub async fn any_conn(&self) -> Result<Arc<Connection>> {
        let mut addrs: Vec<String> =
            self.with_cached(|m| m.brokers.values().map(BrokerInfo::addr).collect());
        addrs.extend(self.inner.config.bootstrap.iter().cloned());
        let mut last = None;
        for addr in addrs {
            match self.conn_to(&addr).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Invalid("no brokers known".into())))
    }

    /// A connection to the active controller (for admin requests Kafka routes there).
    pub async fn controller_conn(&self) -> Result<Arc<Connection>> {
        let id = self.with_cached(|m| m.controller_id);
        if id >= 0 {
            if let Ok(c) = self.broker_conn(id).await {
                return Ok(c);
            }
        }
        self.any_conn().await
    }

    /// Fetches metadata: `None` asks for every topic, `Some(&[])` for brokers only. The
    /// cache is updated with what comes back (topics asked for and not returned are dropped).
    pub async fn refresh(&self, topics: Option<&[String]>) -> Result<Metadata> {
        self.refresh_with(topics, false).await
    }

    /// `refresh`, asking the broker to create topics that do not exist (when it allows
    /// auto-creation), as Kafka's producer does.
    pub async fn refresh_with(
        &self,
        topics: Option<&[String]>,
        auto_create: bool,
    ) -> Result<Metadata> {
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    let mut mt = MetadataRequestTopic::default();
                    mt.name = Some(TopicName(StrBytes::from_string(t.clone())));
                    mt
                })
                .collect()
        });
        req.allow_auto_topic_creation = auto_create;
        let conn = self.any_conn().await?;
        let resp = conn.call(&req).await?;
        let mut fresh = Metadata {
            cluster_id: resp.cluster_id.map(|s| s.to_string()),
            controller_id: resp.controller_id.0,
            ..Default::default()
        };
        for b in resp.brokers {
            fresh.brokers.insert(
                b.node_id.0,
                BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                },
            );
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: ids(p.replica_nodes),
                    isr: ids(p.isr_nodes),
                    offline: ids(p.offline_replicas),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            fresh.topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    id: t.topic_id,
                    internal: t.is_internal,
                    error_code: t.error_code,
                    partitions,
                },
            );
        }
        let mut cache = self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|e| e.into_inner());
        cache.cluster_id.clone_from(&fresh.cluster_id);
        cache.controller_id = fresh.controller_id;
        cache.brokers.clone_from(&fresh.brokers);
        match topics {
            None => cache.topics.clone_from(&fresh.topics),
            Some(asked) => {
                for t in asked {
                    match fresh.topics.get(t) {
                        Some(info) if info.error_code == 0 => {
                            cache.topics.insert(t.clone(), info.clone());
                        }
                        _ => {
                            cache.topics.remove(t);
                        }
                    }
                }
            }
        }
        Ok(fresh)
    }

    /// A topic's metadata, from the cache or a refresh; UNKNOWN_TOPIC_OR_PARTITION if none.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo> {
        if let Some(t) = self.with_cached(|m| m.topics.get(name).cloned()) {
            return Ok(t);
        }
        let md = self.refresh(Some(&[name.to_string()])).await?;
        let t = md
            .topics
            .get(name)
            .ok_or_else(|| Error::kafka(3, format!("topic {name}"), None))?;
        check(t.error_code, || format!("topic {name}"), None)?;
        Ok(t.clone())
    }

    /// A topic's metadata for a producer: a topic that does not exist is created when the
    /// broker allows auto-creation (`auto.create.topics.enable`), as Kafka's producer asks.
    /// A topic still being created (LEADER_NOT_AVAILABLE) is asked for again for a while;
    /// UNKNOWN_TOPIC_OR_PARTITION means the broker will not create it.
    pub async fn producer_topic(&self, name: &str) -> Result<TopicInfo> {
        if let Some(t) = self.with_cached(|m| m.topics.get(name).cloned()) {
            return Ok(t);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let md = self.refresh_with(Some(&[name.to_string()]), true).await?;
            let t = md
                .topics
                .get(name)
                .ok_or_else(|| Error::kafka(3, format!("topic {name}"), None))?;
            let creating = t.error_code == 5 || (t.error_code == 0 && t.partitions.is_empty());
            if creating && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            check(t.error_code, || format!("topic {name}"), None)?;
            return Ok(t.clone());
        }
    }

    /// Forgets a topic's cached placement so the next lookup asks the cluster.
    pub fn invalidate(&self, topic: &str) {
        self.inner
            .metadata
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .topics
            .remove(topic);
    }

    /// A connection to the leader of `topic`/`partition`.
    pub async fn leader_conn(&self, topic: &str, partition: i32) -> Result<Arc<Connection>> {
        let t = self.topic(topic).await?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| Error::kafka(3, format!("{topic}-{partition}"), None))?;
        if p.leader < 0 {
            self.invalidate(topic);
            return Err(Error::kafka(5, format!("{topic}-{partition}"), None));
        }
        self.broker_conn(p.leader).await
    }

    /// The coordinator for a group (`key_type` 0) or transactional id (1).
    pub async fn coordinator(&self, key: &str, key_type: i8) -> Result<Arc<Connection>> {
        self.retry(&format!("finding the coordinator of {key}"), || async {
            let conn = self.any_conn().await?;
            let mut req = FindCoordinatorRequest::default();
            req.key_type = key_type;
            // v4 (KIP-699) batches keys; before it, one key.
            if conn.version_of::<FindCoordinatorRequest>()? >= 4 {
                req.coordinator_keys = vec![StrBytes::from_string(key.to_string())];
            } else {
                req.key = StrBytes::from_string(key.to_string());
            }
            let resp = conn.call(&req).await?;
            let (code, node, host, port, message) = match resp.coordinators.first() {
                Some(c) => (
                    c.error_code,
                    c.node_id.0,
                    c.host.to_string(),
                    c.port,
                    c.error_message.as_ref().map(|m| m.to_string()),
                ),
                None => (
                    resp.error_code,
                    resp.node_id.0,
                    resp.host.to_string(),
                    resp.port,
                    resp.error_message.as_ref().map(|m| m.to_string()),
                ),
            };
            check(
                code,
                || format!("FindCoordinator({key})"),
                message.as_deref(),
            )?;
            let _ = node;
            self.conn_to(&format!("{host}:{port}")).await
        })
        .await
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or has failed
    /// `RETRIES_MAX` times; between attempts it backs off and refreshes the broker list.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut backoff_ms = limits::RETRY_BACKOFF_MS;
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && attempt + 1 < limits::RETRIES_MAX => {
                    attempt += 1;
                    tracing::debug!(what, attempt, error = %e, "retrying");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(limits::RETRY_BACKOFF_MS_MAX);
                    let _ = self.refresh(Some(&[])).await;
                    self.inner
                        .metadata
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .topics
                        .clear();
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn ids(v: Vec<BrokerId>) -> Vec<i32> {
    v.into_iter().map(|b| b.0).collect()
}
