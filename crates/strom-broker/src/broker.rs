//! The broker: start-up (log dir, metadata replay, listeners), the services handlers call,
//! and graceful shutdown.

use crate::config::{BrokerConfig, Endpoint};
use crate::error::{self, BrokerError, Code};
use crate::group::offsets::{partition_for, OffsetStore, OFFSETS_TOPIC};
use crate::group::GroupCoordinator;
use crate::meta_properties::{base64url, local_cluster_id};
use crate::metadata_store::{Applier, MetadataStore, METADATA_TOPIC};
use crate::replica_manager::{log_config, ReplicaManager};
use crate::server;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use strom_log::{CleanOptions, CleanerOptions, LogConfig, LogDir, LogDirOptions};
use strom_meta::controller::{self, NewTopic};
use strom_meta::{ApiError, MetadataImage, MetadataRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    /// The cluster's id, known once this node has registered (from the metadata).
    cluster_id: OnceLock<String>,
    pub meta: MetadataStore,
    pub replicas: ReplicaManager,
    /// How far the reconciler has brought the hosted partitions (see `reconciler.rs`).
    pub reconciled: watch::Sender<crate::reconciler::Reconciled>,
    /// True once a broker serves clients (registered, reconciled, groups loaded); until
    /// then its client listeners serve only quorum calls. Never on a controller-only node.
    serving: watch::Sender<bool>,
    /// On the quorum leader: when each broker was last heard from (`membership.rs`).
    pub liveness: crate::membership::Liveness,
    /// The endpoint clients are told to use, known once the listeners are bound.
    advertised: OnceLock<Endpoint>,
    /// Producer ids this broker may hand out: `[next, end)`.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    pub fetch_sessions: std::sync::Mutex<crate::fetch_session::FetchSessions>,
    pub groups: GroupCoordinator,
    pub offsets: OffsetStore,
    /// The `__consumer_offsets` partitions whose groups are loaded here.
    pub(crate) coordinated: crate::group::loading::Loaded,
    /// Serialises the creation of `__consumer_offsets`.
    pub(crate) offsets_topic: tokio::sync::Mutex<()>,
    /// One membership write at a time per `__consumer_offsets` partition (`group/persist.rs`).
    pub(crate) membership_writes: crate::group::persist::Turns,
    /// The transaction coordinator (`txn/`).
    pub txns: crate::txn::coordinator::TxnCoordinator,
    /// The log dirs' directory ids (`meta_properties.rs`), registered with the broker.
    log_dir_ids: Vec<uuid::Uuid>,
    /// This process's incarnation id: its registration starts a new broker epoch.
    incarnation: uuid::Uuid,
    /// The cleaner settings the log dirs' cleaner threads run with (None: not started yet).
    cleaner: std::sync::Mutex<Option<CleanerSettings>>,
    /// Client connections, sharing the descriptors with segment files.
    pub connections: Arc<crate::connections::Connections>,
    /// What the broker counts (`metrics.rs`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The HTTP listener's bound address (None: off).
    pub http_addr: OnceLock<SocketAddr>,
}

/// The `log.cleaner.*` keys in effect: static, or changed at run time (Kafka's dynamic
/// cleaner configs; a change restarts the cleaner threads, as Kafka's reconfigure does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CleanerSettings {
    /// `log.cleaner.enable` and `log.cleaner.threads` > 0.
    enabled: bool,
    backoff_ms: u64,
    dedupe_buffer_bytes: u64,
}

/// A started broker: its bound addresses and the handle to stop it.
#[derive(Debug)]
pub struct RunningBroker {
    pub broker: Arc<Broker>,
    pub addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long a graceful shutdown waits for the broker's background tasks to stop.
const SHUTDOWN_TASKS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl RunningBroker {
    /// The first listener's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Graceful shutdown: stop accepting, let connections answer what they took, then flush
    /// every log and mark the clean shutdown.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        // Leaderships move away while this broker still answers (controlled shutdown).
        crate::membership::shut_down(&self.broker).await;
        let _ = self.shutdown.send(true);
        // A task that is waiting for a write the cluster cannot take any more (its
        // followers and the quorum gone with it: the group persister, the transaction
        // timeout scan) is not waited for past the deadline; what it had not written is
        // replayed from the logs at the next start.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_TASKS_WAIT;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                tracing::warn!("a background task did not stop in time: aborted");
                t.abort();
            }
        }
        // Give connection tasks a moment to write their last responses.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Some(q) = self.broker.meta.quorum() {
            if let Err(e) = q.raft().shutdown().await {
                tracing::warn!(error = %e, "the metadata quorum did not stop cleanly");
            }
        }
        let dirs = self.broker.replicas.log_dirs().to_vec();
        tokio::task::spawn_blocking(move || dirs.iter().try_for_each(|d| d.close()))
            .await
            .map_err(|e| BrokerError::Metadata(e.to_string()))??;
        Ok(())
    }
}

impl Broker {
    /// Opens the log dirs and the metadata quorum, binds the listeners, joins the quorum,
    /// registers, reconciles and starts serving clients.
    pub async fn start(config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
        let node_id = config.node_id;
        let local_id = local_cluster_id(&config)?;
        // Before the logs open: it sizes the segment files' share of the descriptors.
        let connections = crate::connections::Connections::new(
            config.connection_limits.clone(),
            config.log_open_files_max,
        );
        let dirs = open_dirs(&config).await?;
        let dir = Arc::clone(&dirs[0]);
        let meta_log = match dir.get(&format!("{METADATA_TOPIC}-0")) {
            Some(l) => l,
            None => dir.create(METADATA_TOPIC, 0, metadata_log_config())?,
        };
        // The quorum's appends must not fail for want of a descriptor.
        meta_log.pin_active();
        let applier = Applier::new();
        let (quorum, since_snapshot) =
            crate::metadata_store::open::open_quorum(&config, meta_log, Arc::clone(&applier))
                .await?;
        let log_dir_ids = crate::meta_properties::log_dir_ids(&config, quorum.directory_id())?;
        let meta = MetadataStore::new(Box::new(quorum), applier);
        let (clients, controllers) = bind_listeners(&config).await?;
        let client_addrs: Vec<SocketAddr> = clients.iter().map(|(a, ..)| *a).collect();
        let controller_addrs: Vec<SocketAddr> = controllers.iter().map(|(a, ..)| *a).collect();
        let http = crate::http::bind(&config.http).await?;
        let advertised = advertised_endpoint(&config, &client_addrs);
        let broker = Arc::new(Broker {
            replicas: ReplicaManager::new(node_id, config.clone(), dirs),
            config: config.clone(),
            node_id,
            cluster_id: OnceLock::new(),
            meta,
            reconciled: watch::channel(crate::reconciler::Reconciled::default()).0,
            serving: watch::channel(false).0,
            liveness: crate::membership::Liveness::default(),
            advertised: OnceLock::new(),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            fetch_sessions: std::sync::Mutex::new(crate::fetch_session::FetchSessions::new(
                config.fetch_session_cache_slots,
            )),
            groups: GroupCoordinator::with_config(config.group),
            offsets: OffsetStore::default(),
            coordinated: Default::default(),
            offsets_topic: tokio::sync::Mutex::new(()),
            membership_writes: Default::default(),
            txns: Default::default(),
            log_dir_ids,
            incarnation: crate::meta_properties::random_uuid(),
            cleaner: std::sync::Mutex::new(None),
            connections,
            metrics: Arc::default(),
            http_addr: OnceLock::new(),
        });
        let _ = broker.advertised.set(advertised.clone());
        let _ = broker.txns.runtime.set(tokio::runtime::Handle::current());
        let (shutdown, rx) = watch::channel(false);
        // The quorum is served first: the others need this node to form it, and an observer
        // is reached at its client listener, whose clients wait until it serves them.
        let quorum_listeners = controllers.into_iter().map(|(_, l, name)| (l, name, true));
        let client_listeners = clients.into_iter().map(|(_, l, name)| (l, name, false));
        let mut tasks: Vec<JoinHandle<()>> = quorum_listeners
            .chain(client_listeners)
            .map(|(l, name, quorum_only)| {
                let b = Arc::clone(&broker);
                match quorum_only {
                    true => tokio::spawn(crate::quorum_server::serve(b, l, rx.clone())),
                    false => {
                        let stats = broker.metrics.listener(&name);
                        tokio::spawn(server::serve(b, (l, stats), rx.clone()))
                    }
                }
            })
            .collect();
        if let Some(http) = http {
            let _ = broker.http_addr.set(http.local_addr()?);
            tasks.push(tokio::spawn(crate::http::serve(
                Arc::clone(&broker),
                http,
                rx.clone(),
            )));
        }
        let endpoint = quorum_endpoint(&config, &advertised, &controller_addrs);
        tasks.push(tokio::spawn(join_quorum(
            Arc::clone(&broker),
            endpoint,
            rx.clone(),
        )));
        tasks.push(tokio::spawn(snapshot_when_due(
            Arc::clone(&broker),
            since_snapshot,
            rx.clone(),
        )));
        if config.quorum.broker {
            broker.start_serving(&advertised, local_id).await?;
            tasks.push(tokio::spawn(crate::group::persist::group_ticker(
                Arc::clone(&broker),
                rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::group::persist::group_persister(
                Arc::clone(&broker),
                rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::replica_fetcher::run(
                Arc::clone(&broker),
                rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::isr::shrink_ticker(
                Arc::clone(&broker),
                rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::txn::markers::abort_timed_out(
                Arc::clone(&broker),
                rx.clone(),
            )));
        } else {
            tasks.push(tokio::spawn(record_cluster_id(
                Arc::clone(&broker),
                local_id,
            )));
        }
        tasks.push(tokio::spawn(crate::membership::run(
            Arc::clone(&broker),
            rx.clone(),
        )));
        let addrs = if client_addrs.is_empty() {
            controller_addrs
        } else {
            client_addrs
        };
        tracing::info!(node_id, addrs = ?addrs, advertised = %format!("{}:{}", advertised.host, advertised.port), "broker started");
        Ok(RunningBroker {
            broker,
            addrs,
            shutdown,
            tasks,
        })
    }

    /// A broker registers, brings its partitions in line with the metadata (and loads the
    /// groups of the `__consumer_offsets` partitions it leads), then serves its clients.
    async fn start_serving(
        self: &Arc<Self>,
        advertised: &Endpoint,
        local_id: Option<String>,
    ) -> Result<(), BrokerError> {
        // Registering is a commit through the leader: once it is applied here, this node's
        // image holds everything committed before it. Only then the reconciler opens (or
        // creates) the hosted partitions, and deletes what no topic owns, and keeps them in
        // step. (Its thread ends when the broker is dropped.)
        self.register(advertised, local_id).await?;
        crate::reconciler::start(self)?;
        let at = self.meta.applier().published().offset;
        crate::reconciler::wait(&mut self.reconciled.subscribe(), at)
            .await
            .map_err(BrokerError::Metadata)?;
        self.serving.send_replace(true);
        Ok(())
    }

    /// The HTTP listener's address as clients reach it (`http://host:port`, the host the
    /// advertised one when it bound every address), None when it is off.
    pub fn http_url(&self) -> Option<String> {
        let addr = self.http_addr.get()?;
        let host = if addr.ip().is_unspecified() {
            self.advertised_endpoint().0
        } else {
            addr.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(format!("http://{host}:{}", addr.port()))
    }

    /// Whether this broker serves clients yet.
    pub fn is_serving(&self) -> bool {
        *self.serving.borrow()
    }

    /// Waits until this broker serves clients (false: it shuts down first).
    pub async fn wait_serving(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut serving = self.serving.subscribe();
        tokio::select! {
            r = serving.wait_for(|s| *s) => r.is_ok(),
            _ = shutdown.wait_for(|s| *s) => false,
        }
    }

    /// Registers this broker (or its new endpoints) in the metadata, and the cluster id if
    /// the quorum has none yet (this node's, else a new one). A node whose log dirs belong to
    /// another cluster is refused; one that had no `meta.properties` gets it now.
    async fn register(
        &self,
        advertised: &Endpoint,
        local_id: Option<String>,
    ) -> Result<(), BrokerError> {
        let registration = MetadataRecord::RegisterBroker {
            node_id: self.node_id,
            host: advertised.host.clone(),
            port: advertised.port,
            rack: self.config.broker_rack.clone(),
            log_dirs: self.log_dir_ids.clone(),
            incarnation: Some(self.incarnation),
        };
        let new_id = local_id
            .clone()
            .unwrap_or_else(|| base64url(crate::meta_properties::random_uuid().as_bytes()));
        let node_id = self.node_id;
        let decide = |img: &MetadataImage| {
            let mut records = Vec::new();
            match (&img.cluster_id, &local_id) {
                (Some(theirs), Some(ours)) if theirs != ours => {
                    return Err(ApiError::InvalidRequest(format!(
                        "this node's log dirs belong to cluster {ours}, but the metadata quorum is cluster {theirs}"
                    )))
                }
                (Some(_), _) => {}
                (None, _) => records.push(MetadataRecord::ClusterId {
                    cluster_id: new_id.clone(),
                }),
            }
            // A broker fenced while it was away is unfenced: it has caught up (this decision
            // follows a read barrier) and leads its leaderless partitions again.
            records.extend(strom_meta::membership::unfence(img, node_id));
            let current = img.brokers.get(&node_id);
            // A restart before its session ran out: the old incarnation's ISR places go
            // (KIP-903), so that this one rejoins through its fetches.
            if current.is_some_and(|b| b.incarnation != Some(self.incarnation)) {
                records.extend(strom_meta::membership::reincarnate(img, node_id));
            }
            if current.is_none_or(|b| {
                MetadataRecord::RegisterBroker {
                    node_id,
                    host: b.host.clone(),
                    port: b.port,
                    rack: b.rack.clone(),
                    log_dirs: b.log_dirs.clone(),
                    incarnation: b.incarnation,
                } != registration
            }) {
                records.push(registration.clone());
            }
            Ok(records)
        };
        // A node waits for its quorum as long as it takes (the others may start later).
        let image = loop {
            match self.meta.commit_in_parts(&decide).await {
                Ok(Ok(p)) => break p.image,
                Ok(Err(e)) => {
                    return Err(BrokerError::Config(crate::config::ConfigError(
                        e.to_string(),
                    )))
                }
                Err(BrokerError::NoQuorum(why)) => {
                    tracing::warn!(%why, "waiting for the metadata quorum to register");
                }
                Err(e) => return Err(e),
            }
        };
        let cluster_id = image.cluster_id.clone().unwrap_or(new_id);
        self.record_cluster_id(&cluster_id)?;
        Ok(())
    }

    /// This broker's epoch (KIP-903): that of its registration in this process, -1 until
    /// the metadata holds it.
    pub fn broker_epoch(&self) -> i64 {
        self.meta
            .image()
            .brokers
            .get(&self.node_id)
            .filter(|b| b.incarnation == Some(self.incarnation))
            .map_or(-1, |b| b.epoch)
    }

    /// Keeps the cluster id, and writes it (with the quorum's directory id) to the log dirs.
    fn record_cluster_id(&self, cluster_id: &str) -> Result<(), BrokerError> {
        crate::meta_properties::record(&self.config, cluster_id, &self.log_dir_ids)?;
        let _ = self.cluster_id.set(cluster_id.to_string());
        Ok(())
    }

    /// The cluster's id (empty until this node has registered).
    pub fn cluster_id(&self) -> &str {
        self.cluster_id.get().map_or("", String::as_str)
    }

    /// Brokers as Metadata and DescribeCluster report them: (id, host, port, rack), the live
    /// ones.
    pub fn advertised_brokers(
        &self,
        image: &MetadataImage,
    ) -> Vec<(i32, String, u16, Option<String>)> {
        // Fenced brokers are not listed, as Kafka lists only alive (unfenced) ones.
        let mut out: Vec<_> = image
            .live_brokers()
            .map(|b| (b.node_id, b.host.clone(), b.port, b.rack.clone()))
            .collect();
        if out.is_empty() {
            if let Some(a) = self.advertised.get() {
                out.push((
                    self.node_id,
                    a.host.clone(),
                    a.port,
                    self.config.broker_rack.clone(),
                ));
            }
        }
        out
    }

    /// The group coordinator for `group`: the leader of its `__consumer_offsets` partition,
    /// as Kafka chooses it (this broker before the topic exists). None: no leader now.
    pub fn group_coordinator(
        &self,
        image: &MetadataImage,
        group: &str,
    ) -> Option<(i32, String, u16)> {
        let Some(offsets) = image.topics.get(OFFSETS_TOPIC) else {
            let (host, port) = self.advertised_endpoint();
            return Some((self.node_id, host, port));
        };
        let p = partition_for(group, offsets.partitions.len() as i32);
        let leader = offsets.partitions.get(&p)?.leader;
        if leader == self.node_id {
            let (host, port) = self.advertised_endpoint();
            return Some((leader, host, port));
        }
        image
            .brokers
            .get(&leader)
            .map(|b| (leader, b.host.clone(), b.port))
    }

    /// Topics no client lists: the metadata log's own partition.
    pub fn is_hidden_topic(&self, name: &str) -> bool {
        name == METADATA_TOPIC
    }

    /// Commits a controller decision and brings the hosted partitions in line with it.
    pub async fn commit(
        &self,
        decide: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
    ) -> Result<Arc<MetadataImage>, (Code, String)> {
        self.commit_as(decide, true).await
    }

    /// `commit` of independent changes, a batch at a time if they do not fit one
    /// (`MetadataStore::commit_in_parts`): fencing a broker that leads 100,000 partitions.
    pub async fn commit_in_parts(
        &self,
        decide: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
    ) -> Result<Arc<MetadataImage>, (Code, String)> {
        self.commit_as(decide, false).await
    }

    async fn commit_as(
        &self,
        decide: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, ApiError>,
        atomic: bool,
    ) -> Result<Arc<MetadataImage>, (Code, String)> {
        let storage = |e: BrokerError| {
            use kafka_protocol::error::ResponseError;
            // No quorum leader in time: Kafka's answer when the controller does not respond.
            let code = match e {
                BrokerError::NoQuorum(_) => ResponseError::RequestTimedOut,
                _ => ResponseError::KafkaStorageError,
            };
            (error::code(code), e.to_string())
        };
        let committed = if atomic {
            self.meta.commit(decide).await
        } else {
            self.meta.commit_in_parts(decide).await
        };
        match committed.map_err(storage)? {
            // A broker answers once it hosts what it committed; a controller hosts nothing.
            Ok(published) => {
                if self.config.quorum.broker {
                    crate::reconciler::wait(&mut self.reconciled.subscribe(), published.offset)
                        .await
                        .map_err(|e| storage(BrokerError::Reconcile(e)))?;
                }
                Ok(published.image)
            }
            Err(e) => Err((error::api_error(&e), e.to_string())),
        }
    }

    /// A broker key's value now: this broker's dynamic value, the cluster-wide one, the
    /// static one, else the default.
    fn broker_value(&self, image: &MetadataImage, key: &str) -> String {
        if let Some((v, _)) = crate::config::Dynamic::of(image, self.node_id).get(key) {
            return v;
        }
        if let Some(v) = self.config.given.get(key) {
            return v.trim().to_string();
        }
        crate::config::STROM_KEYS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, d)| d.to_string())
            .unwrap_or_default()
    }

    /// Starts, restarts or stops the log dirs' cleaner threads when the `log.cleaner.*`
    /// settings in effect differ from those they run with. One thread per log dir; the
    /// dedupe buffer is split between them, as Kafka splits it between its cleaner threads.
    pub(crate) fn apply_cleaner_settings(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let int = |key: &str| self.broker_value(image, key).parse::<i64>().unwrap_or(0);
        let settings = CleanerSettings {
            enabled: self
                .broker_value(image, "log.cleaner.enable")
                .eq_ignore_ascii_case("true")
                && int("log.cleaner.threads") > 0,
            backoff_ms: int("log.cleaner.backoff.ms").max(0) as u64,
            dedupe_buffer_bytes: int("log.cleaner.dedupe.buffer.size").max(0) as u64,
        };
        let mut current = self.cleaner.lock().unwrap_or_else(|e| e.into_inner());
        if *current == Some(settings) {
            return Ok(());
        }
        let dirs = self.replicas.log_dirs();
        let buffer = (settings.dedupe_buffer_bytes / dirs.len().max(1) as u64)
            .max(strom_log::limits::DEDUPE_BUFFER_BYTES_MIN);
        for dir in dirs {
            dir.stop_cleaner();
            if settings.enabled {
                dir.start_cleaner(CleanerOptions {
                    backoff_ms: settings.backoff_ms,
                    clean: CleanOptions {
                        dedupe_buffer_bytes: buffer,
                        ..CleanOptions::default()
                    },
                })?;
            }
        }
        if current.is_some() {
            tracing::info!(?settings, "log cleaner reconfigured");
        }
        *current = Some(settings);
        Ok(())
    }

    pub async fn commit_topic(&self, t: &NewTopic) -> Result<Arc<MetadataImage>, (Code, String)> {
        if self.is_hidden_topic(&t.name) {
            let e = ApiError::InvalidTopic(format!("{} is reserved", t.name));
            return Err((error::api_error(&e), e.to_string()));
        }
        let t = t.clone();
        self.commit(move |img| {
            controller::create_topic(img, &t, crate::meta_properties::random_uuid())
        })
        .await
    }

    /// Creates a topic with the broker defaults (auto-creation).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: Vec<(String, String)>,
    ) -> Result<Arc<MetadataImage>, Code> {
        let t = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            assignments: Vec::new(),
            configs,
        };
        match self.commit_topic(&t).await {
            Ok(img) => Ok(img),
            // Created meanwhile by another request: fine.
            Err(_) if self.meta.image().topics.contains_key(name) => Ok(self.meta.image()),
            Err((c, _)) => Err(c),
        }
    }

    /// The next producer id, reserving a new block through the metadata log when needed.
    pub async fn next_producer_id(&self) -> Result<i64, Code> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let node_id = self.node_id;
            let image = self
                .commit(move |img| Ok(vec![controller::allocate_producer_ids(img, node_id)]))
                .await
                .map_err(|(c, _)| c)?;
            *ids = (
                image.next_producer_id - controller::PRODUCER_ID_BLOCK,
                image.next_producer_id,
            );
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// The host and port clients are told to connect to.
    pub fn advertised_endpoint(&self) -> (String, u16) {
        self.advertised
            .get()
            .map_or((String::new(), 0), |a| (a.host.clone(), a.port))
    }
}

/// Opens every log dir (on a blocking thread: recovery reads files).
async fn open_dirs(config: &BrokerConfig) -> Result<Vec<Arc<LogDir>>, BrokerError> {
    let options = LogDirOptions {
        checkpoint_interval_ms: config.log_flush_offset_checkpoint_interval_ms.max(1),
        retention_check_interval_ms: config.log_retention_check_interval_ms,
        syncfs: config.log_flush_syncfs,
        ..LogDirOptions::default()
    };
    let meta_name = format!("{METADATA_TOPIC}-0");
    let for_config = config.clone();
    let config_for = move |name: &str| {
        if name == meta_name {
            metadata_log_config()
        } else {
            log_config(&for_config, None, &crate::config::Dynamic::default())
        }
    };
    let paths = config.log_dirs.clone();
    tokio::task::spawn_blocking(move || {
        paths
            .into_iter()
            .map(|p| LogDir::open(p, options.clone(), &config_for).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| BrokerError::Metadata(e.to_string()))?
    .map_err(BrokerError::from)
}

/// Bound listeners: address, socket, listener name.
type Bound = Vec<(SocketAddr, tokio::net::TcpListener, String)>;

/// Binds every listener: those for clients, and those `controller.listener.names` names.
async fn bind_listeners(config: &BrokerConfig) -> Result<(Bound, Bound), BrokerError> {
    let mut clients = Vec::new();
    let mut controllers = Vec::new();
    for l in &config.listeners {
        let host = if l.host.is_empty() {
            "0.0.0.0"
        } else {
            l.host.as_str()
        };
        let listener = server::bind(
            host,
            l.port,
            config.socket_listen_backlog_size,
            config.socket_receive_buffer_bytes,
        )
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("binding listener {}://{}:{}: {e}", l.name, l.host, l.port),
            )
        })?;
        let bound = (listener.local_addr()?, listener, l.name.clone());
        if config.quorum.is_controller_listener(&l.name) {
            controllers.push(bound);
        } else {
            clients.push(bound);
        }
    }
    Ok((clients, controllers))
}

/// Takes this node's place in the quorum and keeps it (`QuorumLog::take_part`,
/// `keep_place`), until shutdown.
async fn join_quorum(
    broker: Arc<Broker>,
    endpoint: strom_raft::QuorumNode,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(q) = broker.meta.quorum() else {
        return;
    };
    let place = async {
        if let Err(e) = q
            .take_part(broker.config.quorum.controller, endpoint.clone())
            .await
        {
            tracing::error!(error = %e, "the metadata quorum could not be initialized");
            return;
        }
        q.keep_place(endpoint).await
    };
    tokio::select! {
        _ = place => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
}

/// Snapshots the metadata image by `metadata.log.max.*` (`QuorumLog::snapshot_when_due`).
async fn snapshot_when_due(
    broker: Arc<Broker>,
    since: Arc<std::sync::atomic::AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(q) = broker.meta.quorum() else {
        return;
    };
    tokio::select! {
        _ = q.snapshot_when_due(broker.config.metadata_snapshots, since) => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
}

/// A controller-only node does not register: it learns the cluster id from the log (the
/// first broker to register commits it) and records it in its log dirs; one of another
/// cluster is refused as a broker would be (the node stops serving the quorum).
async fn record_cluster_id(broker: Arc<Broker>, local_id: Option<String>) {
    let mut images = broker.meta.applier().subscribe();
    let Ok(id) = images
        .wait_for(|p| p.image.cluster_id.is_some())
        .await
        .map(|p| p.image.cluster_id.clone().unwrap_or_default())
    else {
        return;
    };
    if let Some(ours) = local_id.filter(|ours| *ours != id) {
        tracing::error!("this node's log dirs belong to cluster {ours}, but the metadata quorum is cluster {id}");
        return;
    }
    if let Err(e) = broker.record_cluster_id(&id) {
        tracing::error!(error = %e, "writing meta.properties");
    }
}

/// Where the other quorum nodes reach this one: a controller at its controller listener
/// (as advertised, else as bound), a broker-only node (an observer) at its client listener.
fn quorum_endpoint(
    config: &BrokerConfig,
    advertised: &Endpoint,
    controllers: &[SocketAddr],
) -> strom_raft::QuorumNode {
    let Some(bound) = controllers.first().filter(|_| config.quorum.controller) else {
        return strom_raft::QuorumNode::new(advertised.host.clone(), advertised.port);
    };
    let named = config.quorum.controller_listener_names.first();
    let given = config
        .advertised_listeners
        .iter()
        .find(|a| Some(&a.name) == named && !a.host.is_empty());
    match given {
        Some(a) => strom_raft::QuorumNode::new(
            a.host.clone(),
            if a.port == 0 { bound.port() } else { a.port },
        ),
        None if bound.ip().is_unspecified() => {
            strom_raft::QuorumNode::new("localhost", bound.port())
        }
        None => strom_raft::QuorumNode::new(bound.ip().to_string(), bound.port()),
    }
}

/// The metadata partition keeps everything (no retention), in small segments.
fn metadata_log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        segment_index_bytes: 1 << 20,
        ..strom_raft::log_store::metadata_log_config()
    }
}

/// The endpoint given to clients: `advertised.listeners` (port 0 there means the bound
/// port), else the first listener with its bound address ("localhost" for a wildcard).
fn advertised_endpoint(config: &BrokerConfig, addrs: &[SocketAddr]) -> Endpoint {
    let bound = addrs.first().copied();
    let advertised = config
        .advertised_listeners
        .iter()
        .find(|a| !config.quorum.is_controller_listener(&a.name));
    if let Some(a) = advertised {
        let port = if a.port == 0 {
            bound.map_or(0, |b| b.port())
        } else {
            a.port
        };
        let host = if a.host.is_empty() {
            "localhost".to_string()
        } else {
            a.host.clone()
        };
        return Endpoint {
            name: a.name.clone(),
            host,
            port,
        };
    }
    let l = config
        .listeners
        .iter()
        .find(|l| !config.quorum.is_controller_listener(&l.name))
        .unwrap_or(&config.listeners[0]);
    let host = match bound {
        Some(b) if !b.ip().is_unspecified() => b.ip().to_string(),
        _ if !l.host.is_empty() && l.host != "0.0.0.0" => l.host.clone(),
        _ => "localhost".to_string(),
    };
    Endpoint {
        name: l.name.clone(),
        host,
        port: bound.map_or(l.port, |b| b.port()),
    }
}
