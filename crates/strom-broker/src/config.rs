//! Broker configuration: Kafka's `server.properties` keys, names and defaults.
//!
//! Keys Strom implements take effect; every other key Kafka defines is accepted and reported
//! back as ignored (the caller logs them once), so Kafka's own `server.properties` starts
//! Strom unchanged; a key that is neither Kafka's nor Strom's, or a bad value, is an error
//! naming the key.

pub mod quorum;

use crate::group::consumer::Timing;
use crate::group::state::GroupConfig;
use crate::kafka_config_keys::{KAFKA_BROKER_KEYS, KAFKA_BROKER_KEY_PREFIXES};
use std::collections::BTreeMap;
use std::path::PathBuf;
use strom_meta::topic_config::{self, Kind};

/// A bad configuration: the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A `NAME://host:port` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    fn parse_list(key: &str, value: &str) -> Result<Vec<Endpoint>, ConfigError> {
        let bad = |why: &str| ConfigError(format!("invalid value {value:?} for {key}: {why}"));
        let mut out = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item
                .split_once("://")
                .ok_or_else(|| bad("expected NAME://host:port"))?;
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("missing :port"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| bad("port is not a number in 0..=65535"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if name.is_empty() {
                return Err(bad("empty listener name"));
            }
            out.push(Endpoint {
                name: name.to_string(),
                host,
                port,
            });
        }
        if out.is_empty() {
            return Err(bad("no listener"));
        }
        Ok(out)
    }
}

/// Broker keys Strom implements, with Kafka's defaults (log.dirs: Strom's `./data`).
/// `strom.*` keys are Strom's own.
pub const STROM_KEYS: &[(&str, Kind, &str)] = &[
    ("node.id", Kind::Int { min: 0 }, "1"),
    ("broker.id", Kind::Int { min: -1 }, "-1"),
    ("listeners", Kind::Str, "PLAINTEXT://:9092"),
    ("advertised.listeners", Kind::Str, ""),
    ("log.dirs", Kind::Str, "./data"),
    ("log.dir", Kind::Str, "./data"),
    ("num.partitions", Kind::Int { min: 1 }, "1"),
    ("default.replication.factor", Kind::Int { min: 1 }, "1"),
    ("auto.create.topics.enable", Kind::Bool, "true"),
    ("delete.topic.enable", Kind::Bool, "true"),
    ("log.retention.hours", Kind::Int { min: -1 }, "168"),
    ("log.retention.minutes", Kind::Int { min: -1 }, ""),
    ("log.retention.ms", Kind::Long { min: -1 }, ""),
    ("log.roll.hours", Kind::Int { min: 1 }, "168"),
    ("log.roll.ms", Kind::Long { min: 1 }, ""),
    ("socket.request.max.bytes", Kind::Int { min: 1 }, "104857600"),
    ("group.initial.rebalance.delay.ms", Kind::Int { min: 0 }, "3000"),
    ("group.min.session.timeout.ms", Kind::Int { min: 0 }, "6000"),
    ("group.max.session.timeout.ms", Kind::Int { min: 0 }, "1800000"),
    ("group.max.size", Kind::Int { min: 1 }, "2147483647"),
    ("group.consumer.session.timeout.ms", Kind::Int { min: 1 }, "45000"),
    ("group.consumer.min.session.timeout.ms", Kind::Int { min: 1 }, "45000"),
    ("group.consumer.max.session.timeout.ms", Kind::Int { min: 1 }, "60000"),
    ("group.consumer.heartbeat.interval.ms", Kind::Int { min: 1 }, "5000"),
    ("group.consumer.min.heartbeat.interval.ms", Kind::Int { min: 1 }, "5000"),
    ("group.consumer.max.heartbeat.interval.ms", Kind::Int { min: 1 }, "15000"),
    ("group.consumer.max.size", Kind::Int { min: 1 }, "2147483647"),
    ("log.retention.check.interval.ms", Kind::Long { min: 1 }, "300000"),
    ("log.flush.offset.checkpoint.interval.ms", Kind::Int { min: 0 }, "60000"),
    ("listener.security.protocol.map", Kind::Str, "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"),
    ("controller.listener.names", Kind::Str, ""),
    ("process.roles", Kind::Str, "broker,controller"),
    ("controller.quorum.voters", Kind::Str, ""),
    ("controller.quorum.bootstrap.servers", Kind::Str, ""),
    ("broker.heartbeat.interval.ms", Kind::Int { min: 1 }, "2000"),
    ("metadata.log.max.record.bytes.between.snapshots", Kind::Long { min: 1 }, "20971520"),
    ("metadata.log.max.snapshot.interval.ms", Kind::Long { min: 0 }, "3600000"),
    ("broker.session.timeout.ms", Kind::Int { min: 1 }, "9000"),
    ("replica.lag.time.max.ms", Kind::Long { min: 1 }, "30000"),
    ("auto.leader.rebalance.enable", Kind::Bool, "true"),
    ("leader.imbalance.check.interval.seconds", Kind::Long { min: 1 }, "300"),
    ("replica.fetch.wait.max.ms", Kind::Int { min: 0 }, "500"),
    ("replica.fetch.min.bytes", Kind::Int { min: 1 }, "1"),
    ("replica.fetch.max.bytes", Kind::Int { min: 0 }, "1048576"),
    ("replica.fetch.response.max.bytes", Kind::Int { min: 0 }, "10485760"),
    ("replica.fetch.backoff.ms", Kind::Int { min: 0 }, "1000"),
    ("replica.socket.timeout.ms", Kind::Int { min: 1 }, "30000"),
    ("offsets.topic.num.partitions", Kind::Int { min: 1 }, "50"),
    ("offsets.topic.replication.factor", Kind::Int { min: 1 }, "3"),
    ("offsets.retention.minutes", Kind::Int { min: 1 }, "10080"),
    ("offsets.retention.check.interval.ms", Kind::Long { min: 1 }, "600000"),
    ("strom.fetch.sendfile", Kind::Bool, "true"),
    ("strom.http.listener", Kind::Str, "http://:9644"),
    ("strom.metrics.per.partition", Kind::Bool, "false"),
    ("strom.console.write.enable", Kind::Bool, "false"),
    ("strom.log.flush.syncfs", Kind::Bool, "false"),
    ("log.cleaner.enable", Kind::Bool, "true"),
    ("log.cleaner.backoff.ms", Kind::Long { min: 0 }, "15000"),
    ("log.cleaner.threads", Kind::Int { min: 0 }, "1"),
    ("log.cleaner.dedupe.buffer.size", Kind::Long { min: 0 }, "134217728"),
    ("offset.metadata.max.bytes", INT_ANY, "4096"),
    ("fetch.max.bytes", Kind::Int { min: 1024 }, "57671680"),
    ("connections.max.idle.ms", LONG_ANY, "600000"),
    ("max.connections", Kind::Int { min: 0 }, "2147483647"),
    ("max.connections.per.ip", Kind::Int { min: 0 }, "2147483647"),
    ("max.connections.per.ip.overrides", Kind::Str, ""),
    ("max.connection.creation.rate", Kind::Int { min: 0 }, "2147483647"),
    ("strom.log.open.files.max", Kind::Int { min: 0 }, "0"),
    ("max.incremental.fetch.session.cache.slots", Kind::Int { min: 0 }, "1000"),
    ("group.consumer.assignors", Kind::Str, "uniform,range"),
    (
        "group.coordinator.rebalance.protocols",
        Kind::List(&["classic", "consumer", "share", "streams"]),
        "classic,consumer",
    ),
    ("broker.rack", Kind::Str, ""),
    ("replica.selector.class", Kind::Str, ""),
    ("offsets.topic.segment.bytes", Kind::Int { min: 1 }, "104857600"),
    ("max.request.partition.size.limit", Kind::Int { min: 1 }, "2000"),
    ("socket.send.buffer.bytes", INT_ANY, "102400"),
    ("socket.receive.buffer.bytes", INT_ANY, "102400"),
    ("socket.listen.backlog.size", Kind::Int { min: 1 }, "50"),
    ("transaction.state.log.num.partitions", Kind::Int { min: 1 }, "50"),
    ("transaction.state.log.replication.factor", Kind::Int { min: 1 }, "3"),
    ("transaction.state.log.min.isr", Kind::Int { min: 1 }, "2"),
    ("transaction.state.log.segment.bytes", Kind::Int { min: 1 }, "104857600"),
    ("transaction.max.timeout.ms", Kind::Int { min: 1 }, "900000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Kind::Int { min: 1 },
        "10000",
    ),
];

/// Kafka's INT and LONG keys without a validator: any value of the type.
const INT_ANY: Kind = Kind::Int {
    min: i32::MIN as i64,
};
const LONG_ANY: Kind = Kind::Long { min: i64::MIN };

/// `socket.send.buffer.bytes` / `socket.receive.buffer.bytes` value meaning "leave the
/// operating system's size" (Kafka's `Selectable.USE_DEFAULT_BUFFER_SIZE`).
pub const SOCKET_BUFFER_OS_DEFAULT: i32 = -1;

/// The parsed configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<Endpoint>,
    /// Empty: advertise the bound listeners.
    pub advertised_listeners: Vec<Endpoint>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i32,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    /// The group coordinator's `group.*` keys.
    pub group: GroupConfig,
    pub log_retention_check_interval_ms: i64,
    pub log_flush_offset_checkpoint_interval_ms: i64,
    pub fetch_sendfile: bool,
    /// `strom.log.flush.syncfs`: one `syncfs` per flush cycle of several partitions.
    pub log_flush_syncfs: bool,
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`, capped by the brokers present when the topic is
    /// created (Kafka refuses to create it with fewer).
    pub offsets_topic_replication_factor: i32,
    pub offsets_retention_minutes: i64,
    pub offsets_retention_check_interval_ms: i64,
    /// `log.cleaner.enable` (and `log.cleaner.threads` > 0): compacted topics get cleaned.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the cleaner's pause when no log is dirty enough.
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`: the key map's memory (one cleaner thread per log
    /// dir, so all of it; Kafka splits it between its threads).
    pub log_cleaner_dedupe_buffer_bytes: u64,
    /// `offset.metadata.max.bytes`: longer commit metadata (in UTF-16 code units, Java's
    /// string length) gets OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: i32,
    /// `fetch.max.bytes`: caps every Fetch's `max_bytes` (and so its `min_bytes`).
    pub fetch_max_bytes: i32,
    /// `connections.max.idle.ms`: a connection with no request for this long and nothing
    /// in flight is closed; negative: never.
    pub connections_max_idle_ms: i64,
    /// `max.connections` (client connections over all listeners; more are closed as they
    /// are accepted, capped by what the open-file limit leaves), `max.connections.per.ip`
    /// with its overrides, and `max.connection.creation.rate` (`connections.rs`).
    pub connection_limits: crate::connections::Limits,
    /// `strom.log.open.files.max`: segment files held open at once (0: half of the
    /// open-file limit); the others are closed and opened again when read or written.
    pub log_open_files_max: usize,
    /// `max.incremental.fetch.session.cache.slots`: 0 means no incremental fetch sessions.
    pub fetch_session_cache_slots: usize,
    /// `group.coordinator.rebalance.protocols` names `consumer`: the KIP-848 APIs are on.
    pub consumer_protocol_enabled: bool,
    /// `broker.rack`, registered with the broker and reported to clients.
    pub broker_rack: Option<String>,
    /// `replica.selector.class` names Kafka's `RackAwareReplicaSelector` (KIP-392): a
    /// consumer that names its rack is sent to a caught-up replica in it.
    pub rack_aware_reads: bool,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets`.
    pub offsets_topic_segment_bytes: i32,
    /// `max.request.partition.size.limit`: DescribeTopicPartitions' page size at most.
    pub max_request_partition_size_limit: i32,
    /// The transaction coordinator's `transaction.*` keys.
    pub txn: TxnConfig,
    /// `socket.send.buffer.bytes` / `socket.receive.buffer.bytes` (SO_SNDBUF / SO_RCVBUF;
    /// `SOCKET_BUFFER_OS_DEFAULT` leaves the kernel's) and `socket.listen.backlog.size`.
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub socket_listen_backlog_size: i32,
    /// Broker-level values of topic configs (topic config name → value), from the keys
    /// given explicitly (`log.retention.ms` → `retention.ms`, ...).
    pub topic_defaults: BTreeMap<String, String>,
    /// Every key given explicitly, for DescribeConfigs of the broker.
    pub given: BTreeMap<String, String>,
    /// The metadata quorum: roles, voters, controller listeners.
    pub quorum: quorum::QuorumConfig,
    /// `broker.heartbeat.interval.ms`: how often a broker tells the active controller it lives.
    pub broker_heartbeat_interval_ms: i64,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced.
    pub broker_session_timeout_ms: i64,
    /// When the metadata image is snapshotted.
    pub metadata_snapshots: crate::metadata_store::quorum::SnapshotPolicy,
    /// `replica.lag.time.max.ms`: an in-sync follower not caught up for this long leaves
    /// the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `auto.leader.rebalance.enable`: the quorum leader gives leaderships back to their
    /// preferred replicas every `leader.imbalance.check.interval.seconds`.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_s: i64,
    /// How followers fetch (`replica.fetch.*`, `replica.socket.timeout.ms`).
    pub replica_fetch: ReplicaFetchConfig,
    /// The HTTP listener: metrics, health, the console.
    pub http: HttpConfig,
    /// `strom.metrics.per.partition`: series per topic-partition besides per topic.
    pub metrics_per_partition: bool,
    /// `strom.console.write.enable`: the console may create, alter and delete topics and
    /// reset groups' offsets.
    pub console_write_enable: bool,
}

/// `strom.http.listener`: where the HTTP listener binds (None: off, the key empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub bind: Option<(String, u16)>,
    /// Given explicitly: failing to bind stops the start-up. The default's port taken (a
    /// second broker on the machine) only turns the listener off, with a warning.
    pub explicit: bool,
}

impl HttpConfig {
    fn parse(value: &str, explicit: bool) -> Result<HttpConfig, ConfigError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(HttpConfig {
                bind: None,
                explicit,
            });
        }
        let bad = |why: &str| {
            ConfigError(format!(
                "invalid value {value:?} for strom.http.listener: {why}"
            ))
        };
        let rest = value
            .strip_prefix("http://")
            .ok_or_else(|| bad("expected http://host:port (empty turns it off)"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("missing :port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port is not a number in 0..=65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HttpConfig {
            bind: Some((host.to_string(), port)),
            explicit,
        })
    }
}

/// Kafka's `replica.fetch.*` keys: a follower's fetch requests to its leaders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFetchConfig {
    pub wait_max_ms: i32,
    pub min_bytes: i32,
    /// Per partition.
    pub max_bytes: i32,
    /// Per response.
    pub response_max_bytes: i32,
    pub backoff_ms: i64,
    pub socket_timeout_ms: i64,
}

/// The transaction coordinator's keys (Kafka's `TransactionStateManagerConfig` and
/// `TransactionLogConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub log_num_partitions: i32,
    /// `transaction.state.log.replication.factor`, capped by the brokers present when the
    /// topic is created (as `__consumer_offsets`).
    pub log_replication_factor: i32,
    /// `transaction.state.log.min.isr`: the topic's `min.insync.replicas` (capped by its
    /// replication factor).
    pub log_min_isr: i32,
    pub log_segment_bytes: i32,
    /// `transaction.max.timeout.ms`: a longer `transaction.timeout.ms` is refused.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_scan_interval_ms: i64,
}

/// Checks every given key: Strom's own and topic defaults by kind (the topic defaults they
/// set are returned), Kafka's others reported as ignored, anything else an error.
fn check_given(
    given: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Vec<String>), ConfigError> {
    let mut ignored = Vec::new();
    let mut topic_defaults = BTreeMap::new();
    for (key, value) in given {
        let invalid =
            |why: String| ConfigError(format!("invalid value {value:?} for {key}: {why}"));
        if let Some((_, kind, _)) = STROM_KEYS.iter().find(|(k, _, _)| k == key) {
            topic_config::check_kind(*kind, value).map_err(invalid)?;
        } else if let Some(def) = topic_config::TOPIC_CONFIGS
            .iter()
            .find(|d| d.broker_key == Some(key.as_str()))
        {
            topic_config::check_kind(def.kind, value).map_err(invalid)?;
            topic_defaults.insert(def.name.to_string(), value.trim().to_string());
        } else if is_kafka_key(key) && !is_used_kafka_key(key) {
            ignored.push(key.clone());
        } else if is_kafka_key(key) {
            // Read where it is used (a listener's connection rate, the inter-broker listener).
        } else {
            return Err(ConfigError(format!(
                "unknown configuration key {key:?} (neither a Kafka broker config nor a strom.* key)"
            )));
        }
    }
    Ok((topic_defaults, ignored))
}

/// `retention.ms` and `segment.ms` defaults: the most precise of ms / minutes / hours wins,
/// as in Kafka.
fn time_defaults(
    given: &BTreeMap<String, String>,
    int: &dyn Fn(&str) -> i64,
    topic_defaults: &mut BTreeMap<String, String>,
) {
    let scaled = |key: &str, factor: i64| {
        let n = int(key);
        if n < 0 {
            -1
        } else {
            n * factor
        }
    };
    let retention_ms = if given.contains_key("log.retention.ms") {
        int("log.retention.ms")
    } else if given.contains_key("log.retention.minutes") {
        scaled("log.retention.minutes", 60_000)
    } else {
        scaled("log.retention.hours", 3_600_000)
    };
    topic_defaults.insert("retention.ms".into(), retention_ms.to_string());
    let roll_ms = if given.contains_key("log.roll.ms") {
        int("log.roll.ms")
    } else {
        int("log.roll.hours") * 3_600_000
    };
    topic_defaults.insert("segment.ms".into(), roll_ms.to_string());
}

/// `listeners` and `advertised.listeners` (empty: advertise the bound ones); PLAINTEXT only.
fn parse_listeners(
    get: &dyn Fn(&str) -> String,
) -> Result<(Vec<Endpoint>, Vec<Endpoint>), ConfigError> {
    let listeners = Endpoint::parse_list("listeners", &get("listeners"))?;
    let advertised = get("advertised.listeners");
    let advertised_listeners = if advertised.trim().is_empty() {
        Vec::new()
    } else {
        Endpoint::parse_list("advertised.listeners", &advertised)?
    };
    let protocol_map = parse_protocol_map(&get("listener.security.protocol.map"))?;
    for l in &listeners {
        let protocol = protocol_map
            .get(&l.name)
            .map(String::as_str)
            .unwrap_or(l.name.as_str());
        if protocol != "PLAINTEXT" {
            return Err(ConfigError(format!(
                "listener {} uses {protocol}; Strom serves PLAINTEXT listeners only",
                l.name
            )));
        }
    }
    Ok((listeners, advertised_listeners))
}

/// `log.dirs` (else `log.dir`): at least one, none twice.
fn parse_log_dirs(
    given: &BTreeMap<String, String>,
    get: &dyn Fn(&str) -> String,
) -> Result<Vec<PathBuf>, ConfigError> {
    let dirs = if given.contains_key("log.dirs") {
        get("log.dirs")
    } else {
        get("log.dir")
    };
    let log_dirs: Vec<PathBuf> = dirs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    if log_dirs.is_empty() {
        return Err(ConfigError("log.dirs names no directory".into()));
    }
    if let Some(dup) = log_dirs
        .iter()
        .enumerate()
        .find(|(i, d)| log_dirs[..*i].contains(d))
    {
        return Err(ConfigError(format!(
            "log.dirs names {} twice",
            dup.1.display()
        )));
    }
    Ok(log_dirs)
}

/// The `group.*` keys, checked against each other as Kafka's `GroupCoordinatorConfig` does.
fn group_config(int: &dyn Fn(&str) -> i64, assignors: &str) -> Result<GroupConfig, ConfigError> {
    let at_least = |key: &str, bound: &str| -> Result<(), ConfigError> {
        if int(key) < int(bound) {
            return Err(ConfigError(format!(
                "{key} ({}) must be at least {bound} ({})",
                int(key),
                int(bound)
            )));
        }
        Ok(())
    };
    at_least(
        "group.max.session.timeout.ms",
        "group.min.session.timeout.ms",
    )?;
    at_least(
        "group.consumer.max.session.timeout.ms",
        "group.consumer.min.session.timeout.ms",
    )?;
    at_least(
        "group.consumer.session.timeout.ms",
        "group.consumer.min.session.timeout.ms",
    )?;
    at_least(
        "group.consumer.max.session.timeout.ms",
        "group.consumer.session.timeout.ms",
    )?;
    at_least(
        "group.consumer.max.heartbeat.interval.ms",
        "group.consumer.min.heartbeat.interval.ms",
    )?;
    at_least(
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.min.heartbeat.interval.ms",
    )?;
    at_least(
        "group.consumer.max.heartbeat.interval.ms",
        "group.consumer.heartbeat.interval.ms",
    )?;
    if int("group.consumer.heartbeat.interval.ms") >= int("group.consumer.session.timeout.ms") {
        return Err(ConfigError(
            "group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms".into(),
        ));
    }
    Ok(GroupConfig {
        initial_delay_ms: int("group.initial.rebalance.delay.ms"),
        min_session_timeout_ms: int("group.min.session.timeout.ms") as i32,
        max_session_timeout_ms: int("group.max.session.timeout.ms") as i32,
        max_size: int("group.max.size") as usize,
        consumer: Timing {
            session_timeout_ms: int("group.consumer.session.timeout.ms") as i32,
            heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms") as i32,
            max_size: int("group.consumer.max.size") as usize,
            assignors: parse_assignors(assignors)?,
        },
        member_id: crate::group::state::new_member_id,
    })
}

/// The connection quotas. `max.connections.per.ip.overrides` is `host:count,...` (an
/// address or a host name, resolved at start-up, as Kafka does); a per-IP quota of 0 makes
/// sense only with overrides, and Kafka refuses it without.
fn connection_limits(
    get: &dyn Fn(&str) -> String,
    int: &dyn Fn(&str) -> i64,
    given: &BTreeMap<String, String>,
) -> Result<crate::connections::Limits, ConfigError> {
    const OVERRIDES: &str = "max.connections.per.ip.overrides";
    let invalid =
        |v: &str, why: &str| ConfigError(format!("invalid value {v:?} for {OVERRIDES}: {why}"));
    let mut per_ip_overrides = std::collections::HashMap::new();
    for entry in get(OVERRIDES)
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| invalid(entry, "expected host:count"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| invalid(entry, "the count is not a number of connections"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let ip = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip,
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
                .ok()
                .and_then(|mut a| a.next())
                .map(|a| a.ip())
                .ok_or_else(|| invalid(entry, "unknown host"))?,
        };
        per_ip_overrides.insert(ip, count as usize);
    }
    let per_ip = int("max.connections.per.ip").max(0) as usize;
    if per_ip == 0 && per_ip_overrides.is_empty() {
        return Err(ConfigError(format!(
            "max.connections.per.ip can be 0 only if {OVERRIDES} is set"
        )));
    }
    Ok(crate::connections::Limits {
        max: int("max.connections").max(0) as usize,
        per_ip,
        per_ip_overrides,
        creation_rate: int("max.connection.creation.rate").clamp(0, i64::from(i32::MAX)) as u32,
        listener_rates: listener_rates(given)?,
        inter_broker_listener: inter_broker_listener(given),
    })
}

/// `listener.name.<listener>.max.connection.creation.rate` keys, by listener.
fn listener_rates(
    given: &BTreeMap<String, String>,
) -> Result<std::collections::HashMap<String, u32>, ConfigError> {
    let mut out = std::collections::HashMap::new();
    for (key, value) in given {
        let Some(listener) = key
            .strip_prefix("listener.name.")
            .and_then(|k| k.strip_suffix(".max.connection.creation.rate"))
        else {
            continue;
        };
        let rate: i64 = value
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("invalid value {value:?} for {key}: not a number")))?;
        if rate < 0 {
            return Err(ConfigError(format!(
                "invalid value {rate} for {key}: must be at least 0"
            )));
        }
        out.insert(
            listener.to_ascii_uppercase(),
            rate.min(i64::from(i32::MAX)) as u32,
        );
    }
    Ok(out)
}

/// The inter-broker listener: `inter.broker.listener.name`, else the one named after
/// `security.inter.broker.protocol` (PLAINTEXT), as Kafka picks it.
fn inter_broker_listener(given: &BTreeMap<String, String>) -> String {
    [
        "inter.broker.listener.name",
        "security.inter.broker.protocol",
    ]
    .iter()
    .find_map(|k| given.get(*k).map(|v| v.trim().to_ascii_uppercase()))
    .filter(|v| !v.is_empty())
    .unwrap_or_else(|| "PLAINTEXT".into())
}

/// `replica.selector.class`: unset (consumers read from leaders) or Kafka's
/// `RackAwareReplicaSelector` (KIP-392). Kafka loads any class named; Strom refuses others
/// at start-up.
fn rack_aware_reads(value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "" => Ok(false),
        "org.apache.kafka.common.replica.RackAwareReplicaSelector" => Ok(true),
        other => Err(ConfigError(format!(
            "invalid value {other:?} for replica.selector.class: Strom has only \
             org.apache.kafka.common.replica.RackAwareReplicaSelector"
        ))),
    }
}

/// `group.consumer.assignors`: Strom's two server-side assignors, by Kafka's short names or
/// class names; the first is the default. Kafka loads any class named; Strom refuses names
/// it has no assignor for, at start-up.
fn parse_assignors(value: &str) -> Result<&'static [&'static str], ConfigError> {
    const KEY: &str = "group.consumer.assignors";
    let mut names: Vec<&'static str> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = match item {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            other => {
                return Err(ConfigError(format!(
                    "invalid value {value:?} for {KEY}: Strom has no assignor {other:?} (it has uniform and range)"
                )))
            }
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    match names.as_slice() {
        ["uniform"] => Ok(&["uniform"]),
        ["range"] => Ok(&["range"]),
        ["uniform", "range"] => Ok(&["uniform", "range"]),
        ["range", "uniform"] => Ok(&["range", "uniform"]),
        _ => Err(ConfigError(format!(
            "invalid value {value:?} for {KEY}: at least one assignor is needed"
        ))),
    }
}

/// `group.coordinator.rebalance.protocols`: whether `consumer` is on. `classic` cannot be
/// left out (Kafka's start-up error); `share` and `streams` are accepted and change nothing.
fn consumer_protocol_enabled(value: &str) -> Result<bool, ConfigError> {
    let protocols: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !protocols.contains(&"classic") {
        return Err(ConfigError(
            "group.coordinator.rebalance.protocols: Disabling the 'classic' protocol is not supported."
                .into(),
        ));
    }
    Ok(protocols.contains(&"consumer"))
}

/// Parses Java properties text: `key=value`, `key: value` or `key value`; `#`/`!` comments;
/// a trailing backslash continues the line.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':', ' ', '\t']);
        let (key, value) = match split {
            Some(i) => {
                let (k, v) = entry.split_at(i);
                let v = v[1..].trim_start();
                let v = v.strip_prefix(['=', ':']).unwrap_or(v);
                (k.trim(), v.trim())
            }
            None => (entry.trim(), ""),
        };
        if key.is_empty() {
            return Err(ConfigError(format!("line {}: missing key", n + 1)));
        }
        out.insert(key.to_string(), unescape(value));
    }
    Ok(out)
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `key` is a configuration key Strom knows: its own, a topic default, or Kafka's.
pub fn is_known_key(key: &str) -> bool {
    STROM_KEYS.iter().any(|(k, _, _)| *k == key)
        || topic_config::TOPIC_CONFIGS
            .iter()
            .any(|d| d.broker_key == Some(key))
        || is_kafka_key(key)
}

/// Kafka keys outside `STROM_KEYS` that Strom reads: a listener's connection creation rate,
/// and what names the inter-broker listener.
fn is_used_kafka_key(key: &str) -> bool {
    key == "inter.broker.listener.name"
        || key == "security.inter.broker.protocol"
        || (key.starts_with("listener.name.") && key.ends_with(".max.connection.creation.rate"))
}

fn is_kafka_key(key: &str) -> bool {
    KAFKA_BROKER_KEYS.binary_search(&key).is_ok()
        || KAFKA_BROKER_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}

impl BrokerConfig {
    /// Builds the configuration from explicitly given keys. Returns it with the keys that
    /// Kafka defines but Strom ignores.
    pub fn from_properties(
        given: &BTreeMap<String, String>,
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let (mut topic_defaults, ignored) = check_given(given)?;
        let get = |k: &str| -> String {
            given
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| {
                    STROM_KEYS
                        .iter()
                        .find(|(key, _, _)| *key == k)
                        .map(|(_, _, d)| d.to_string())
                        .unwrap_or_default()
                })
        };
        let int = |k: &str| -> i64 { get(k).parse().unwrap_or(0) };
        let boolean = |k: &str| get(k).eq_ignore_ascii_case("true");

        time_defaults(given, &int, &mut topic_defaults);

        let node_id = if given.contains_key("node.id") {
            int("node.id")
        } else if given.contains_key("broker.id") && int("broker.id") >= 0 {
            int("broker.id")
        } else {
            1
        };
        let (listeners, advertised_listeners) = parse_listeners(&get)?;
        let quorum = quorum::parse(
            &get,
            &|k: &str| given.contains_key(k),
            node_id as i32,
            &listeners,
        )?;
        let log_dirs = parse_log_dirs(given, &get)?;
        // Kafka takes any int here and fails when the socket refuses it (Java's
        // `setSendBufferSize` throws for 0 or less); Strom says so at start-up.
        let socket_buffer = |key: &str| -> Result<i32, ConfigError> {
            let n = int(key) as i32;
            if n <= 0 && n != SOCKET_BUFFER_OS_DEFAULT {
                return Err(ConfigError(format!(
                    "invalid value {n} for {key}: must be positive, or -1 for the OS default"
                )));
            }
            Ok(n)
        };
        let config = BrokerConfig {
            node_id: node_id as i32,
            listeners,
            advertised_listeners,
            log_dirs,
            num_partitions: int("num.partitions") as i32,
            default_replication_factor: int("default.replication.factor") as i32,
            auto_create_topics_enable: boolean("auto.create.topics.enable"),
            delete_topic_enable: boolean("delete.topic.enable"),
            socket_request_max_bytes: int("socket.request.max.bytes") as usize,
            group: group_config(&int, &get("group.consumer.assignors"))?,
            log_retention_check_interval_ms: int("log.retention.check.interval.ms"),
            log_flush_offset_checkpoint_interval_ms: int("log.flush.offset.checkpoint.interval.ms"),
            fetch_sendfile: boolean("strom.fetch.sendfile"),
            http: HttpConfig::parse(
                &get("strom.http.listener"),
                given.contains_key("strom.http.listener"),
            )?,
            metrics_per_partition: boolean("strom.metrics.per.partition"),
            console_write_enable: boolean("strom.console.write.enable"),
            log_flush_syncfs: boolean("strom.log.flush.syncfs"),
            offsets_topic_num_partitions: int("offsets.topic.num.partitions") as i32,
            offsets_topic_replication_factor: int("offsets.topic.replication.factor") as i32,
            offsets_retention_minutes: int("offsets.retention.minutes"),
            offsets_retention_check_interval_ms: int("offsets.retention.check.interval.ms"),
            // Kafka's `log.cleaner.threads` sizes a pool; Strom runs one cleaner thread per
            // log dir, so the count only matters as 0 (no cleaning).
            log_cleaner_enable: boolean("log.cleaner.enable") && int("log.cleaner.threads") > 0,
            log_cleaner_backoff_ms: int("log.cleaner.backoff.ms"),
            log_cleaner_dedupe_buffer_bytes: int("log.cleaner.dedupe.buffer.size").max(0) as u64,
            offset_metadata_max_bytes: int("offset.metadata.max.bytes") as i32,
            fetch_max_bytes: int("fetch.max.bytes") as i32,
            connections_max_idle_ms: int("connections.max.idle.ms"),
            connection_limits: connection_limits(&get, &int, given)?,
            log_open_files_max: int("strom.log.open.files.max").max(0) as usize,
            fetch_session_cache_slots: int("max.incremental.fetch.session.cache.slots") as usize,
            consumer_protocol_enabled: consumer_protocol_enabled(&get(
                "group.coordinator.rebalance.protocols",
            ))?,
            broker_rack: Some(get("broker.rack")).filter(|r| !r.is_empty()),
            rack_aware_reads: rack_aware_reads(&get("replica.selector.class"))?,
            offsets_topic_segment_bytes: int("offsets.topic.segment.bytes") as i32,
            max_request_partition_size_limit: int("max.request.partition.size.limit") as i32,
            socket_send_buffer_bytes: socket_buffer("socket.send.buffer.bytes")?,
            socket_receive_buffer_bytes: socket_buffer("socket.receive.buffer.bytes")?,
            socket_listen_backlog_size: int("socket.listen.backlog.size") as i32,
            txn: TxnConfig {
                log_num_partitions: int("transaction.state.log.num.partitions") as i32,
                log_replication_factor: int("transaction.state.log.replication.factor") as i32,
                log_min_isr: int("transaction.state.log.min.isr") as i32,
                log_segment_bytes: int("transaction.state.log.segment.bytes") as i32,
                max_timeout_ms: int("transaction.max.timeout.ms") as i32,
                abort_scan_interval_ms: int(
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                ),
            },
            topic_defaults,
            given: given.clone(),
            quorum,
            broker_heartbeat_interval_ms: int("broker.heartbeat.interval.ms"),
            broker_session_timeout_ms: int("broker.session.timeout.ms"),
            replica_lag_time_max_ms: int("replica.lag.time.max.ms"),
            auto_leader_rebalance_enable: boolean("auto.leader.rebalance.enable"),
            leader_imbalance_check_interval_s: int("leader.imbalance.check.interval.seconds"),
            replica_fetch: ReplicaFetchConfig {
                wait_max_ms: int("replica.fetch.wait.max.ms") as i32,
                min_bytes: int("replica.fetch.min.bytes") as i32,
                max_bytes: int("replica.fetch.max.bytes") as i32,
                response_max_bytes: int("replica.fetch.response.max.bytes") as i32,
                backoff_ms: int("replica.fetch.backoff.ms"),
                socket_timeout_ms: int("replica.socket.timeout.ms"),
            },
            metadata_snapshots: crate::metadata_store::quorum::SnapshotPolicy {
                max_bytes: int("metadata.log.max.record.bytes.between.snapshots") as u64,
                max_interval: std::time::Duration::from_millis(int(
                    "metadata.log.max.snapshot.interval.ms",
                ) as u64),
            },
        };
        Ok((config, ignored))
    }

    /// The value of a topic config for a topic with `overrides`: the topic's own value, else
    /// the broker's dynamic one (this broker's, then the cluster-wide default), else the
    /// broker's static one, else Kafka's default. With the source DescribeConfigs reports.
    pub fn topic_value(
        &self,
        name: &str,
        overrides: Option<&BTreeMap<String, String>>,
        dynamic: &Dynamic<'_>,
    ) -> Option<(String, ConfigSource)> {
        let def = topic_config::find(name)?;
        if let Some(v) = overrides.and_then(|o| o.get(name)) {
            return Some((v.clone(), ConfigSource::Topic));
        }
        if let Some(found) = dynamic.topic_default(name) {
            return Some(found);
        }
        if let Some(v) = self.topic_defaults.get(name) {
            let explicit = def.broker_key.is_some_and(|k| self.given.contains_key(k))
                || broker_keys_of(name)
                    .iter()
                    .any(|(k, _)| self.given.contains_key(*k));
            let source = if explicit {
                ConfigSource::StaticBroker
            } else {
                ConfigSource::Default
            };
            return Some((v.clone(), source));
        }
        Some((def.default.to_string(), ConfigSource::Default))
    }
}

/// Whether broker key `key` may be set at run time (AlterConfigs on a broker resource), with
/// its value checked when given. The keys behind topic defaults (`log.retention.ms`,
/// `log.segment.bytes`, `message.max.bytes`, `log.cleanup.policy`, ...) take effect at once
/// on every topic without its own value; Kafka keys Strom has no use for are kept and
/// described; the keys Strom reads only at start-up are refused, as Kafka refuses its
/// read-only keys, with INVALID_REQUEST.
pub fn check_dynamic(
    key: &str,
    value: Option<&str>,
) -> Result<strom_meta::controller::BrokerKey, strom_meta::ApiError> {
    use strom_meta::controller::BrokerKey;
    use strom_meta::ApiError;
    let invalid = |why: String| {
        ApiError::InvalidRequest(format!(
            "Invalid value {} for configuration {key}: {why}",
            value.unwrap_or_default()
        ))
    };
    if let Some(def) = topic_config::TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_key == Some(key))
    {
        if let Some(v) = value {
            topic_config::check_kind(def.kind, v).map_err(invalid)?;
        }
        return Ok(BrokerKey {
            default: def.default.to_string(),
            is_list: def.kind.is_list(),
        });
    }
    // As in Kafka, only the primary key of a group is dynamic: `log.retention.ms`, not
    // `.minutes` or `.hours`; `log.roll.ms`, not `.hours`.
    let retention_or_roll = ["retention.ms", "segment.ms"]
        .iter()
        .any(|t| broker_keys_of(t).first().is_some_and(|(k, _)| *k == key));
    if let Some((_, kind, default)) = STROM_KEYS.iter().find(|(k, _, _)| *k == key) {
        if key == "log.cleaner.threads"
            && value.is_some_and(|v| v.trim().parse::<i64>().is_ok_and(|n| n < 1))
        {
            return Err(ApiError::InvalidRequest(
                "Log cleaner threads should be at least 1".into(),
            ));
        }
        if !retention_or_roll && !DYNAMIC_STROM_KEYS.contains(&key) {
            return Err(ApiError::InvalidRequest(format!(
                "Cannot update these configs dynamically: Set({key})"
            )));
        }
        if let Some(v) = value {
            topic_config::check_kind(*kind, v).map_err(invalid)?;
        }
        return Ok(BrokerKey {
            default: default.to_string(),
            is_list: false,
        });
    }
    if READ_ONLY_KAFKA_KEYS.contains(&key) {
        return Err(ApiError::InvalidRequest(format!(
            "Cannot update these configs dynamically: Set({key})"
        )));
    }
    // Other keys, Kafka's or not (a plugin's), are kept as set, as Kafka keeps them.
    Ok(BrokerKey {
        default: String::new(),
        is_list: is_kafka_key(key),
    })
}

/// Strom's keys that change at run time besides retention and roll, as in Kafka: the log
/// cleaner's (a change restarts the cleaner threads).
const DYNAMIC_STROM_KEYS: &[&str] = &[
    "log.cleaner.threads",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
];

/// Kafka broker keys that Kafka itself does not let change at run time (and Strom ignores).
const READ_ONLY_KAFKA_KEYS: &[&str] = &[
    "zookeeper.connect",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "metadata.log.dir",
    "inter.broker.listener.name",
];

/// A broker key's synonyms as Kafka's DescribeConfigs lists them: the keys of its group
/// (`log.retention.ms|minutes|hours`, `log.roll.ms|hours`), most precise first, else itself.
pub fn broker_synonyms(key: &str) -> Vec<&str> {
    for topic_key in ["retention.ms", "segment.ms"] {
        let group = broker_keys_of(topic_key);
        if group.iter().any(|(k, _)| *k == key) {
            return group.iter().map(|(k, _)| *k).collect();
        }
    }
    vec![key]
}

/// The broker keys that set a topic config's default, most precise first, with the factor
/// to milliseconds (`retention.ms` from `log.retention.ms|minutes|hours`, `segment.ms` from
/// `log.roll.ms|hours`); other topic configs have one key, their `broker_key`.
fn broker_keys_of(topic_key: &str) -> &'static [(&'static str, i64)] {
    match topic_key {
        "retention.ms" => &[
            ("log.retention.ms", 1),
            ("log.retention.minutes", 60_000),
            ("log.retention.hours", 3_600_000),
        ],
        "segment.ms" => &[("log.roll.ms", 1), ("log.roll.hours", 3_600_000)],
        _ => &[],
    }
}

/// Dynamic broker configs (set with AlterConfigs on a broker resource and kept in the
/// metadata log): this broker's own over the cluster-wide default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dynamic<'a> {
    pub broker: Option<&'a BTreeMap<String, String>>,
    pub default: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Dynamic<'a> {
    pub fn of(image: &'a strom_meta::MetadataImage, node_id: i32) -> Dynamic<'a> {
        Dynamic {
            broker: image.broker_config(&node_id.to_string()),
            default: image.broker_config(""),
        }
    }

    /// A broker key's dynamic value with its source.
    pub fn get(&self, key: &str) -> Option<(String, ConfigSource)> {
        if let Some(v) = self.broker.and_then(|m| m.get(key)) {
            return Some((v.clone(), ConfigSource::DynamicBroker));
        }
        self.default
            .and_then(|m| m.get(key))
            .map(|v| (v.clone(), ConfigSource::DynamicDefaultBroker))
    }

    /// The dynamic default of a topic config, from its broker key(s).
    fn topic_default(&self, topic_key: &str) -> Option<(String, ConfigSource)> {
        let keys = broker_keys_of(topic_key);
        if keys.is_empty() {
            let key = topic_config::find(topic_key)?.broker_key?;
            return self.get(key);
        }
        // This broker's keys before the cluster's, each by precision.
        let layers = [
            (self.broker, ConfigSource::DynamicBroker),
            (self.default, ConfigSource::DynamicDefaultBroker),
        ];
        for (layer, source) in layers {
            let Some(m) = layer else { continue };
            for (key, factor) in keys {
                if let Some(v) = m.get(*key) {
                    let value = match v.trim().parse::<i64>() {
                        Ok(n) if n >= 0 => n.saturating_mul(*factor).to_string(),
                        Ok(_) => "-1".to_string(),
                        Err(_) => v.clone(),
                    };
                    return Some((value, source));
                }
            }
        }
        None
    }
}

/// Where a config value came from, as DescribeConfigs (v1+) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Topic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

fn parse_protocol_map(v: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut m = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, proto) = item.split_once(':').ok_or_else(|| {
            ConfigError(format!(
                "invalid listener.security.protocol.map entry {item:?}: expected NAME:PROTOCOL"
            ))
        })?;
        m.insert(name.trim().to_string(), proto.trim().to_string());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_broker_configs_override_static_ones_and_some_keys_are_read_only() {
        let (c, _) =
            BrokerConfig::from_properties(&props(&[("log.retention.hours", "1")])).unwrap();
        let none = Dynamic::default();
        assert_eq!(
            c.topic_value("retention.ms", None, &none),
            Some(("3600000".into(), ConfigSource::StaticBroker))
        );
        let cluster = props(&[
            ("log.retention.minutes", "2"),
            ("log.segment.bytes", "4096"),
        ]);
        let mine = props(&[("log.retention.ms", "500")]);
        let d = Dynamic {
            broker: None,
            default: Some(&cluster),
        };
        assert_eq!(
            c.topic_value("retention.ms", None, &d),
            Some(("120000".into(), ConfigSource::DynamicDefaultBroker))
        );
        let d = Dynamic {
            broker: Some(&mine),
            default: Some(&cluster),
        };
        assert_eq!(
            c.topic_value("retention.ms", None, &d),
            Some(("500".into(), ConfigSource::DynamicBroker))
        );
        assert_eq!(
            c.topic_value("segment.bytes", None, &d),
            Some(("4096".into(), ConfigSource::DynamicDefaultBroker))
        );
        // A topic's own value still wins.
        let own = props(&[("retention.ms", "7")]);
        assert_eq!(
            c.topic_value("retention.ms", Some(&own), &d),
            Some(("7".into(), ConfigSource::Topic))
        );
        assert!(check_dynamic("log.retention.ms", Some("1000")).is_ok());
        assert!(
            check_dynamic("log.cleanup.policy", Some("compact"))
                .unwrap()
                .is_list
        );
        // A bad value: INVALID_REQUEST with Kafka's words.
        match check_dynamic("log.segment.bytes", Some("lots")) {
            Err(strom_meta::ApiError::InvalidRequest(m)) => assert_eq!(
                m,
                "Invalid value lots for configuration log.segment.bytes: Not a number of type INT"
            ),
            other => panic!("{:?}", other.err()),
        }
        assert!(check_dynamic("sasl.kerberos.min.time.before.relogin", Some("58000")).is_ok());
        assert!(matches!(
            check_dynamic("node.id", Some("2")),
            Err(strom_meta::ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            check_dynamic("log.dirs", Some("/x")),
            Err(strom_meta::ApiError::InvalidRequest(_))
        ));
        // Keys Kafka does not know are kept as set (a plugin's), as Kafka keeps them.
        assert!(check_dynamic("no.such.key", Some("1")).is_ok());
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas() {
        let (c, ignored) = BrokerConfig::from_properties(&BTreeMap::new()).unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.listeners,
            vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: String::new(),
                port: 9092
            }]
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
        assert_eq!(c.topic_defaults["retention.ms"], "604800000");
        assert!(c.auto_create_topics_enable && c.delete_topic_enable);
        assert!(ignored.is_empty());
    }

    #[test]
    fn properties_text_is_parsed_like_java() {
        let p = parse_properties("# c\n! c\nnode.id=3\nlisteners : PLAINTEXT://127.0.0.1:0\nlog.dirs /tmp/a\\\n  ,/tmp/b\nempty=\n").unwrap();
        assert_eq!(p["node.id"], "3");
        assert_eq!(p["listeners"], "PLAINTEXT://127.0.0.1:0");
        assert_eq!(p["log.dirs"], "/tmp/a,/tmp/b");
        assert_eq!(p["empty"], "");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = BrokerConfig::from_properties(&props(&[("log.retension.hours", "1")])).unwrap_err();
        assert!(e.0.contains("log.retension.hours"), "{e}");
        let e = BrokerConfig::from_properties(&props(&[("num.partitions", "x")])).unwrap_err();
        assert!(e.0.contains("num.partitions"), "{e}");
        let e = BrokerConfig::from_properties(&props(&[("log.segment.bytes", "1")])).unwrap_err();
        assert!(e.0.contains("log.segment.bytes"), "{e}");
        let e = BrokerConfig::from_properties(&props(&[("listeners", "SSL://:9093")])).unwrap_err();
        assert!(e.0.contains("SSL"), "{e}");
    }

    #[test]
    fn kafka_keys_strom_ignores_are_reported() {
        let (_, ignored) = BrokerConfig::from_properties(&props(&[
            ("num.network.threads", "3"),
            ("zookeeper.connect", "x:2181"),
        ]))
        .unwrap();
        assert_eq!(
            ignored,
            vec![
                "num.network.threads".to_string(),
                "zookeeper.connect".to_string()
            ]
        );
    }

    #[test]
    fn group_keys_are_honoured_and_checked_against_each_other() {
        let (c, ignored) = BrokerConfig::from_properties(&BTreeMap::new()).unwrap();
        assert_eq!(
            (
                c.group.min_session_timeout_ms,
                c.group.max_session_timeout_ms
            ),
            (6_000, 1_800_000)
        );
        assert_eq!(c.group.max_size, i32::MAX as usize);
        assert_eq!(c.group.consumer.max_size, i32::MAX as usize);
        assert!(ignored.is_empty());
        let (c, ignored) = BrokerConfig::from_properties(&props(&[
            ("group.min.session.timeout.ms", "100"),
            ("group.max.session.timeout.ms", "9000"),
            ("group.max.size", "3"),
            ("group.consumer.min.session.timeout.ms", "1000"),
            ("group.consumer.session.timeout.ms", "2000"),
            ("group.consumer.min.heartbeat.interval.ms", "100"),
            ("group.consumer.heartbeat.interval.ms", "500"),
            ("group.consumer.max.size", "2"),
        ]))
        .unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(c.group.min_session_timeout_ms, 100);
        assert_eq!(c.group.max_session_timeout_ms, 9_000);
        assert_eq!(c.group.max_size, 3);
        assert_eq!(c.group.consumer.session_timeout_ms, 2_000);
        assert_eq!(c.group.consumer.heartbeat_interval_ms, 500);
        assert_eq!(c.group.consumer.max_size, 2);
        for bad in [
            &[
                ("group.min.session.timeout.ms", "10000"),
                ("group.max.session.timeout.ms", "9000"),
            ][..],
            &[("group.consumer.session.timeout.ms", "30000")][..],
            &[
                ("group.consumer.heartbeat.interval.ms", "50000"),
                ("group.consumer.max.heartbeat.interval.ms", "60000"),
                ("group.consumer.session.timeout.ms", "50000"),
            ][..],
            &[("group.max.size", "0")][..],
        ] {
            let e = BrokerConfig::from_properties(&props(bad)).unwrap_err();
            assert!(e.0.contains("group."), "{bad:?}: {e}");
        }
    }

    #[test]
    fn retention_precedence_and_topic_defaults() {
        let (c, _) = BrokerConfig::from_properties(&props(&[
            ("log.retention.hours", "1"),
            ("log.retention.minutes", "5"),
        ]))
        .unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "300000");
        let (c, _) =
            BrokerConfig::from_properties(&props(&[("log.segment.bytes", "1048576")])).unwrap();
        assert_eq!(
            c.topic_value("segment.bytes", None, &Dynamic::default()),
            Some(("1048576".into(), ConfigSource::StaticBroker))
        );
        assert_eq!(
            c.topic_value("cleanup.policy", None, &Dynamic::default()),
            Some(("delete".into(), ConfigSource::Default))
        );
    }

    #[test]
    fn cleaner_keys_and_their_topic_defaults() {
        let (c, ignored) = BrokerConfig::from_properties(&BTreeMap::new()).unwrap();
        assert!(c.log_cleaner_enable);
        assert_eq!(c.log_cleaner_backoff_ms, 15_000);
        assert_eq!(c.log_cleaner_dedupe_buffer_bytes, 128 << 20);
        assert!(ignored.is_empty());
        let (c, ignored) = BrokerConfig::from_properties(&props(&[
            ("log.cleaner.enable", "false"),
            ("log.cleaner.backoff.ms", "100"),
            ("log.cleaner.min.cleanable.ratio", "0.1"),
            ("log.cleaner.delete.retention.ms", "5"),
            ("log.cleaner.min.compaction.lag.ms", "7"),
            ("log.cleanup.policy", "compact"),
        ]))
        .unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        assert!(!c.log_cleaner_enable);
        assert_eq!(c.log_cleaner_backoff_ms, 100);
        assert_eq!(
            c.topic_value("min.cleanable.dirty.ratio", None, &Dynamic::default()),
            Some(("0.1".into(), ConfigSource::StaticBroker))
        );
        assert_eq!(c.topic_defaults["delete.retention.ms"], "5");
        assert_eq!(c.topic_defaults["min.compaction.lag.ms"], "7");
        assert_eq!(c.topic_defaults["cleanup.policy"], "compact");
        let (c, _) =
            BrokerConfig::from_properties(&props(&[("log.cleaner.threads", "0")])).unwrap();
        assert!(!c.log_cleaner_enable);
    }

    #[test]
    fn kafka_keys_strom_now_honours_have_kafkas_defaults_and_ranges() {
        let (c, ignored) = BrokerConfig::from_properties(&BTreeMap::new()).unwrap();
        assert_eq!(c.offset_metadata_max_bytes, 4096);
        assert_eq!(c.fetch_max_bytes, 57_671_680);
        assert_eq!(c.connections_max_idle_ms, 600_000);
        assert_eq!(c.fetch_session_cache_slots, 1000);
        assert_eq!(c.group.consumer.assignors, &["uniform", "range"]);
        assert!(c.consumer_protocol_enabled);
        assert_eq!(c.broker_rack, None);
        assert!(!c.rack_aware_reads);
        assert_eq!(c.offsets_topic_segment_bytes, 104_857_600);
        assert_eq!(c.max_request_partition_size_limit, 2000);
        assert_eq!(
            (
                c.socket_send_buffer_bytes,
                c.socket_receive_buffer_bytes,
                c.socket_listen_backlog_size
            ),
            (102_400, 102_400, 50)
        );
        assert!(ignored.is_empty());
        let given = [
            ("offset.metadata.max.bytes", "-5"),
            ("fetch.max.bytes", "1024"),
            ("connections.max.idle.ms", "-1"),
            ("max.incremental.fetch.session.cache.slots", "0"),
            (
                "group.consumer.assignors",
                "org.apache.kafka.coordinator.group.assignor.RangeAssignor, uniform, range",
            ),
            (
                "group.coordinator.rebalance.protocols",
                "classic,share,streams",
            ),
            ("broker.rack", "rack-1"),
            (
                "replica.selector.class",
                "org.apache.kafka.common.replica.RackAwareReplicaSelector",
            ),
            ("offsets.topic.segment.bytes", "1048576"),
            ("max.request.partition.size.limit", "1"),
            ("socket.send.buffer.bytes", "-1"),
            ("socket.receive.buffer.bytes", "65536"),
            ("socket.listen.backlog.size", "1"),
        ];
        let (c, ignored) = BrokerConfig::from_properties(&props(&given)).unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(c.offset_metadata_max_bytes, -5);
        assert_eq!(c.fetch_max_bytes, 1024);
        assert_eq!(c.connections_max_idle_ms, -1);
        assert_eq!(c.fetch_session_cache_slots, 0);
        assert_eq!(c.group.consumer.assignors, &["range", "uniform"]);
        assert!(!c.consumer_protocol_enabled);
        assert_eq!(c.broker_rack.as_deref(), Some("rack-1"));
        assert!(c.rack_aware_reads);
        let selector = [("replica.selector.class", "com.example.Nearest")];
        let err = BrokerConfig::from_properties(&props(&selector)).unwrap_err();
        assert!(err.0.contains("Strom has only"), "{err}");
        assert_eq!(c.offsets_topic_segment_bytes, 1_048_576);
        assert_eq!(c.max_request_partition_size_limit, 1);
        assert_eq!(c.socket_send_buffer_bytes, -1);
        assert_eq!(c.socket_receive_buffer_bytes, 65_536);
        assert_eq!(c.socket_listen_backlog_size, 1);
        for (key, value, says) in [
            ("fetch.max.bytes", "1023", "at least 1024"),
            (
                "max.incremental.fetch.session.cache.slots",
                "-1",
                "at least 0",
            ),
            (
                "group.consumer.assignors",
                "uniform,sticky",
                "no assignor \"sticky\"",
            ),
            (
                "group.consumer.assignors",
                "com.example.MyAssignor",
                "com.example",
            ),
            ("group.consumer.assignors", "", "at least one assignor"),
            (
                "group.coordinator.rebalance.protocols",
                "consumer",
                "Disabling the 'classic'",
            ),
            (
                "group.coordinator.rebalance.protocols",
                "classic,eager",
                "must be one of",
            ),
            ("offsets.topic.segment.bytes", "0", "at least 1"),
            ("max.request.partition.size.limit", "0", "at least 1"),
            ("socket.listen.backlog.size", "0", "at least 1"),
            ("socket.send.buffer.bytes", "0", "-1 for the OS default"),
            ("socket.receive.buffer.bytes", "-2", "-1 for the OS default"),
            ("connections.max.idle.ms", "soon", "LONG"),
        ] {
            let e = BrokerConfig::from_properties(&props(&[(key, value)])).unwrap_err();
            assert!(
                e.0.contains(key) && e.0.contains(says),
                "{key}={value}: {e}"
            );
        }
    }
}
