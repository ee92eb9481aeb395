//! Every broker configuration key Apache Kafka 3.x and 4.x define, so that an operator's
//! `server.properties` is accepted; keys Strom has no use for are logged once as ignored.
//! Compiled from Kafka's config definitions (see the list of source classes below).
//!
//! Sources: the `ConfigDef`s merged into the broker's config (3.0-3.8: `KafkaConfig.scala`
//! plus `RemoteLogManagerConfig`; 3.9 on: the list in `AbstractKafkaConfig`), that is
//! `ServerConfigs`, `ServerLogConfigs` / `LogConfig.SERVER_CONFIG_DEF`,
//! `ServerTopicConfigSynonyms`, `ReplicationConfigs`, `KRaftConfigs`, `MetadataLogConfig`,
//! `QuorumConfig` (`RaftConfig` in 3.x), `SocketServerConfigs`, `GroupCoordinatorConfig`,
//! `ShareGroupConfig`, `ShareCoordinatorConfig`, `TransactionLogConfig(s)`,
//! `TransactionStateManagerConfig(s)`, `AddPartitionsToTxnConfig`, `CleanerConfig`,
//! `QuotaConfig(s)`, `ZkConfigs`, `RemoteLogManagerConfig`, `BrokerSecurityConfigs` (with
//! `SslConfigs`, `SaslConfigs`, `SecurityConfig`), `MetricConfigs`,
//! `DelegationTokenManagerConfigs` and `PasswordEncoderConfigs`, internal (`defineInternal`)
//! keys included. Besides those, keys read outside a `ConfigDef`: the broker quotas of
//! `DynamicConfig.Broker`, the authorizers' `super.users`, `allow.everyone.if.no.acl.found`
//! and `authorizer.zookeeper.*`, `JmxReporter`'s `metrics.jmx.*` and
//! `KafkaCSVMetricsReporter`'s `kafka.csv.metrics.*`.
//!
//! Versions read (apache/kafka commits): 3.0.0 8cb0a5e9d3, 3.1.0 37edeed077, 3.2.0 38103ffaa9,
//! 3.3.0 9d1f9f7764, 3.3.2 b66af662e6, 3.4.0 2e1947d240, 3.5.0 c97b88d5db, 3.5.1 2c6fb6c544,
//! 3.6.0 60e845626d, 3.6.2 c4deed5130, 3.7.0 2ae524ed62, 3.7.2 79a8f2b5f4, 3.8.0 771b9576b0,
//! 3.8.1 70d6ff42de, 3.9.0-rc3 dd5272687e, 3.9.1 f745dfdcee, 3.9.2-rc0 12ead27d3b,
//! 4.0.0 985bc99521, 4.0.1 b31ce61fd6, 4.0.2 5d0fe56677, 4.1.0 13f70256db, 4.1.1 be816b82d2,
//! 4.1.2 c82fd9b934, 4.2.0-rc1 6eef663634, 4.2.1 18d5ecd939, 4.3.0 a9ce322153,
//! 4.3.1 26b251a451, the 4.4 branch at 87943b2ff8 (2026-08-21) and trunk (4.5.0-SNAPSHOT) at
//! d79bd502ec (2026-08-23). The 3.x lists were checked against the generated
//! `kafka_config.html` of kafka-site for 3.0-3.9 (every documented key is here).
//!
//! A trailing comment gives the versions of keys not defined in every version from 3.0 to
//! 4.4 ("since 4.1", "removed in 4.0"), and marks internal keys and keys from outside a
//! `ConfigDef`. Kafka 2.x-only keys (`port`, `host.name`, ...) are not listed.

/// Exact key names, sorted, no duplicates.
pub const KAFKA_BROKER_KEYS: &[&str] = &[
    "add.partitions.to.txn.retry.backoff.max.ms", // since 4.0
    "add.partitions.to.txn.retry.backoff.ms",     // since 4.0
    "advertised.listeners",
    "allow.everyone.if.no.acl.found", // authorizer
    "alter.config.policy.class.name",
    "alter.config.policy.kraft.compatibility.enable", // 3.9.2 only
    "alter.log.dirs.replication.quota.window.num",
    "alter.log.dirs.replication.quota.window.size.seconds",
    "authorizer.class.name",
    "authorizer.zookeeper.clientCnxnSocket", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.connection.timeout.ms", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.max.in.flight.requests", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.session.timeout.ms", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.cipher.suites", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.client.enable", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.crl.enable",   // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.enabled.protocols", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.endpoint.identification.algorithm", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.keystore.location", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.keystore.password", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.keystore.type", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.ocsp.enable",  // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.protocol",     // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.truststore.location", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.truststore.password", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.ssl.truststore.type", // AclAuthorizer, removed in 4.0
    "authorizer.zookeeper.url",              // AclAuthorizer, removed in 4.0
    "auto.create.topics.enable",
    "auto.include.jmx.reporter", // since 3.4, removed in 4.0
    "auto.leader.rebalance.enable",
    "background.threads",
    "broker.heartbeat.interval.ms",
    "broker.id",
    "broker.id.generation.enable", // removed in 4.0
    "broker.rack",
    "broker.session.timeout.ms",
    "client.quota.callback.class",
    "compression.gzip.level", // since 3.8
    "compression.lz4.level",  // since 3.8
    "compression.type",
    "compression.zstd.level", // since 3.8
    "config.providers",       // since 4.2
    "connection.failed.authentication.delay.ms",
    "connections.max.idle.ms",
    "connections.max.reauth.ms",
    "control.plane.listener.name", // removed in 4.0
    "controlled.shutdown.enable",
    "controlled.shutdown.max.retries",      // removed in 4.0
    "controlled.shutdown.retry.backoff.ms", // removed in 4.0
    "controller.listener.names",
    "controller.max.records.per.batch", // trunk after 4.4, internal
    "controller.performance.always.log.threshold.ms", // since 4.0, internal
    "controller.performance.sample.period.ms", // since 4.0, internal
    "controller.quorum.append.linger.ms",
    "controller.quorum.auto.join.enable",  // since 4.2
    "controller.quorum.bootstrap.servers", // since 3.8
    "controller.quorum.election.backoff.max.ms",
    "controller.quorum.election.timeout.ms",
    "controller.quorum.fetch.max.bytes",          // since 4.3
    "controller.quorum.fetch.snapshot.max.bytes", // since 4.3
    "controller.quorum.fetch.timeout.ms",
    "controller.quorum.request.timeout.ms",
    "controller.quorum.retry.backoff.ms",
    "controller.quorum.voters",
    "controller.quota.window.num",
    "controller.quota.window.size.seconds",
    "controller.socket.timeout.ms",
    "cordoned.log.dirs", // since 4.3
    "create.topic.policy.class.name",
    "default.replication.factor",
    "delegation.token.expiry.check.interval.ms",
    "delegation.token.expiry.time.ms",
    "delegation.token.master.key", // removed in 4.0
    "delegation.token.max.lifetime.ms",
    "delegation.token.secret.key",
    "delete.records.purgatory.purge.interval.requests",
    "delete.topic.enable",
    "early.start.listeners",                            // since 3.3
    "eligible.leader.replicas.enable",                  // since 3.7, removed in 4.0
    "errors.deadletterqueue.auto.create.topics.enable", // since 4.4
    "errors.deadletterqueue.topic.name.prefix",         // since 4.4
    "fetch.max.bytes",
    "fetch.purgatory.purge.interval.requests",
    "follower.fetch.last.tiered.offset.enable", // since 4.3
    "follower.replication.throttled.rate",      // dynamic-only broker quota
    "group.consumer.assignment.interval.ms",    // since 4.3
    "group.consumer.assignor.offload.enable",   // since 4.4, internal
    "group.consumer.assignors",                 // since 3.5
    "group.consumer.heartbeat.interval.ms",     // since 3.5
    "group.consumer.max.assignment.interval.ms", // since 4.3
    "group.consumer.max.heartbeat.interval.ms", // since 3.5
    "group.consumer.max.session.timeout.ms",    // since 3.5
    "group.consumer.max.size",                  // since 3.5
    "group.consumer.migration.policy",          // since 3.8
    "group.consumer.min.assignment.interval.ms", // since 4.3
    "group.consumer.min.heartbeat.interval.ms", // since 3.5
    "group.consumer.min.session.timeout.ms",    // since 3.5
    "group.consumer.regex.refresh.interval.ms", // since 4.1, internal
    "group.consumer.session.timeout.ms",        // since 3.5
    "group.coordinator.append.linger.ms",       // since 3.8
    "group.coordinator.background.threads",     // since 4.3
    "group.coordinator.cached.buffer.max.bytes", // since 4.3
    "group.coordinator.new.enable",             // since 3.5, removed in 4.1, internal
    "group.coordinator.rebalance.protocols",    // since 3.7
    "group.coordinator.threads",                // since 3.5
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "group.min.session.timeout.ms",
    "group.share.assignment.interval.ms",         // since 4.3
    "group.share.assignor.offload.enable",        // since 4.4, internal
    "group.share.assignors",                      // since 4.1
    "group.share.delivery.count.limit",           // since 3.9
    "group.share.dlq.manager.class.name",         // since 4.4, internal
    "group.share.enable",                         // since 3.9, removed in 4.3, internal
    "group.share.heartbeat.interval.ms",          // since 3.9
    "group.share.initialize.retry.interval.ms",   // since 4.2, internal
    "group.share.max.assignment.interval.ms",     // since 4.3
    "group.share.max.delivery.count.limit",       // since 4.3
    "group.share.max.groups",                     // since 3.9, removed in 4.1
    "group.share.max.heartbeat.interval.ms",      // since 3.9
    "group.share.max.partition.max.record.locks", // since 4.3
    "group.share.max.record.lock.duration.ms",    // since 3.9
    "group.share.max.session.timeout.ms",         // since 3.9
    "group.share.max.share.sessions",             // since 4.1
    "group.share.max.size",                       // since 3.9
    "group.share.min.assignment.interval.ms",     // since 4.3
    "group.share.min.delivery.count.limit",       // since 4.3
    "group.share.min.heartbeat.interval.ms",      // since 3.9
    "group.share.min.partition.max.record.locks", // since 4.3
    "group.share.min.record.lock.duration.ms",    // since 3.9
    "group.share.min.session.timeout.ms",         // since 3.9
    "group.share.partition.max.record.locks",     // since 3.9
    "group.share.persister.class.name",           // since 4.0, internal
    "group.share.record.lock.duration.ms",        // since 3.9
    "group.share.session.timeout.ms",             // since 3.9
    "group.streams.acceptable.recovery.lag",      // since 4.4, internal
    "group.streams.assignment.interval.ms",       // since 4.3
    "group.streams.assignor.offload.enable",      // since 4.4, internal
    "group.streams.assignors",                    // since 4.4
    "group.streams.heartbeat.interval.ms",        // since 4.1
    "group.streams.initial.rebalance.delay.ms",   // since 4.2
    "group.streams.max.assignment.interval.ms",   // since 4.3
    "group.streams.max.heartbeat.interval.ms",    // since 4.1
    "group.streams.max.session.timeout.ms",       // since 4.1
    "group.streams.max.size",                     // since 4.1
    "group.streams.max.standby.replicas",         // since 4.1
    "group.streams.max.warmup.replicas",          // since 4.4, internal
    "group.streams.min.assignment.interval.ms",   // since 4.3
    "group.streams.min.heartbeat.interval.ms",    // since 4.1
    "group.streams.min.session.timeout.ms",       // since 4.1
    "group.streams.min.task.offset.interval.ms",  // since 4.4, internal
    "group.streams.num.standby.replicas",         // since 4.1
    "group.streams.num.warmup.replicas",          // since 4.4, internal
    "group.streams.rack.aware.assignment.tags",   // since 4.4
    "group.streams.session.timeout.ms",           // since 4.1
    "group.streams.task.offset.interval.ms",      // since 4.4, internal
    "group.streams.topology.description.plugin.class", // since 4.4
    "initial.broker.registration.timeout.ms",
    "inter.broker.listener.name",
    "inter.broker.protocol.version",             // removed in 4.0
    "internal.metadata.delete.delay.millis",     // since 4.1, internal
    "internal.metadata.log.segment.bytes",       // since 4.1, internal
    "internal.metadata.max.batch.size.in.bytes", // since 4.1, internal
    "internal.metadata.max.fetch.size.in.bytes", // since 4.1, removed in 4.3, internal
    "kafka.csv.metrics.dir",                     // KafkaCSVMetricsReporter
    "kafka.csv.metrics.reporter.enabled",        // KafkaCSVMetricsReporter
    "kafka.metrics.polling.interval.secs",
    "kafka.metrics.reporters",
    "leader.imbalance.check.interval.seconds",
    "leader.imbalance.per.broker.percentage", // removed in 4.0
    "leader.replication.throttled.rate",      // dynamic-only broker quota
    "listener.security.protocol.map",
    "listeners",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.enable",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.threads",
    "log.cleanup.policy",
    "log.dir",
    "log.dir.failure.timeout.ms", // since 3.8
    "log.dirs",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "log.flush.scheduler.interval.ms",
    "log.flush.start.offset.checkpoint.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.initial.task.delay.ms",               // since 3.8, internal
    "log.local.retention.bytes",               // since 3.6
    "log.local.retention.ms",                  // since 3.6
    "log.message.downconversion.enable",       // removed in 4.0
    "log.message.format.version",              // removed in 4.0
    "log.message.timestamp.after.max.ms",      // since 3.6
    "log.message.timestamp.before.max.ms",     // since 3.6
    "log.message.timestamp.difference.max.ms", // removed in 4.0
    "log.message.timestamp.type",
    "log.preallocate",
    "log.remote.copy.lag.bytes", // since 4.4
    "log.remote.copy.lag.ms",    // since 4.4
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.hours",
    "log.roll.jitter.hours",
    "log.roll.jitter.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "log.segment.delete.delay.ms",
    "max.connection.creation.rate",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.incremental.fetch.session.cache.slots",
    "max.request.partition.size.limit", // since 3.8
    "message.max.bytes",
    "metadata.log.dir",
    "metadata.log.max.record.bytes.between.snapshots",
    "metadata.log.max.snapshot.interval.ms", // since 3.4
    "metadata.log.segment.bytes",
    "metadata.log.segment.min.bytes", // removed in 4.1, internal
    "metadata.log.segment.ms",
    "metadata.max.idle.interval.ms", // since 3.3
    "metadata.max.retention.bytes",
    "metadata.max.retention.ms",
    "metric.reporters",
    "metrics.jmx.blacklist", // JmxReporter alias, removed in 4.0
    "metrics.jmx.exclude",   // JmxReporter
    "metrics.jmx.include",   // JmxReporter
    "metrics.jmx.whitelist", // JmxReporter alias, removed in 4.0
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "min.insync.replicas",
    "node.id",
    "num.io.threads",
    "num.network.threads",
    "num.partitions",
    "num.recovery.threads.per.data.dir",
    "num.replica.alter.log.dirs.threads",
    "num.replica.fetchers",
    "offset.metadata.max.bytes",
    "offsets.commit.required.acks", // removed in 4.0
    "offsets.commit.timeout.ms",
    "offsets.load.buffer.size",
    "offsets.retention.check.interval.ms",
    "offsets.retention.minutes",
    "offsets.topic.compression.codec",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "offsets.topic.segment.bytes",
    "password.encoder.cipher.algorithm",     // removed in 4.0
    "password.encoder.iterations",           // removed in 4.0
    "password.encoder.key.length",           // removed in 4.0
    "password.encoder.keyfactory.algorithm", // removed in 4.0
    "password.encoder.old.secret",           // removed in 4.0
    "password.encoder.secret",               // removed in 4.0
    "principal.builder.class",
    "process.roles",
    "producer.id.expiration.check.interval.ms", // since 3.4, internal
    "producer.id.expiration.ms",                // since 3.4
    "producer.purgatory.purge.interval.requests",
    "queued.max.request.bytes",
    "queued.max.requests",
    "quota.window.num",
    "quota.window.size.seconds",
    "remote.fetch.max.wait.ms",               // since 3.8
    "remote.list.offsets.request.timeout.ms", // since 4.0
    "remote.log.index.file.cache.total.size.bytes",
    "remote.log.index.file.cache.ttl.ms", // since 4.3, internal
    "remote.log.manager.copier.thread.pool.size", // since 3.8
    "remote.log.manager.copy.max.bytes.per.second", // since 3.8
    "remote.log.manager.copy.quota.window.num", // since 3.8
    "remote.log.manager.copy.quota.window.size.seconds", // since 3.8
    "remote.log.manager.expiration.thread.pool.size", // since 3.8
    "remote.log.manager.fetch.max.bytes.per.second", // since 3.8
    "remote.log.manager.fetch.quota.window.num", // since 3.8
    "remote.log.manager.fetch.quota.window.size.seconds", // since 3.8
    "remote.log.manager.follower.thread.pool.size", // since 4.2
    "remote.log.manager.task.interval.ms",
    "remote.log.manager.task.retry.backoff.max.ms", // internal
    "remote.log.manager.task.retry.backoff.ms",     // internal
    "remote.log.manager.task.retry.jitter",         // internal
    "remote.log.manager.thread.pool.size",
    "remote.log.metadata.custom.metadata.max.bytes", // since 3.6
    "remote.log.metadata.manager.class.name",
    "remote.log.metadata.manager.class.path",
    "remote.log.metadata.manager.impl.prefix",
    "remote.log.metadata.manager.listener.name",
    "remote.log.reader.max.pending.tasks",
    "remote.log.reader.threads",
    "remote.log.storage.manager.class.name",
    "remote.log.storage.manager.class.path",
    "remote.log.storage.manager.impl.prefix",
    "remote.log.storage.system.enable",
    "replica.alter.log.dirs.io.max.bytes.per.second", // dynamic-only broker quota
    "replica.fetch.backoff.ms",
    "replica.fetch.max.bytes",
    "replica.fetch.min.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.wait.max.ms",
    "replica.high.watermark.checkpoint.interval.ms",
    "replica.lag.time.max.ms",
    "replica.selector.class",
    "replica.socket.receive.buffer.bytes",
    "replica.socket.timeout.ms",
    "replication.quota.window.num",
    "replication.quota.window.size.seconds",
    "request.timeout.ms",
    "reserved.broker.max.id", // removed in 4.0
    "sasl.client.callback.handler.class",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.callback.handler.class",
    "sasl.login.class",
    "sasl.login.connect.timeout.ms", // since 3.1
    "sasl.login.read.timeout.ms",    // since 3.1
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.retry.backoff.max.ms", // since 3.1
    "sasl.login.retry.backoff.ms",     // since 3.1
    "sasl.mechanism.controller.protocol",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.oauthbearer.allow.unverified.audience", // since 4.4
    "sasl.oauthbearer.allow.unverified.issuer",   // since 4.4
    "sasl.oauthbearer.assertion.algorithm",       // since 4.1
    "sasl.oauthbearer.assertion.claim.aud",       // since 4.1
    "sasl.oauthbearer.assertion.claim.exp.seconds", // since 4.1
    "sasl.oauthbearer.assertion.claim.iss",       // since 4.1
    "sasl.oauthbearer.assertion.claim.jti.include", // since 4.1
    "sasl.oauthbearer.assertion.claim.nbf.seconds", // since 4.1
    "sasl.oauthbearer.assertion.claim.sub",       // since 4.1
    "sasl.oauthbearer.assertion.file",            // since 4.1
    "sasl.oauthbearer.assertion.private.key.file", // since 4.1
    "sasl.oauthbearer.assertion.private.key.passphrase", // since 4.1
    "sasl.oauthbearer.assertion.template.file",   // since 4.1
    "sasl.oauthbearer.client.credentials.client.id", // since 4.1
    "sasl.oauthbearer.client.credentials.client.secret", // since 4.1
    "sasl.oauthbearer.clock.skew.seconds",        // since 3.1
    "sasl.oauthbearer.expected.audience",         // since 3.1
    "sasl.oauthbearer.expected.issuer",           // since 3.1
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",  // since 3.1
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", // since 3.1
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", // since 3.1
    "sasl.oauthbearer.jwks.endpoint.url",         // since 3.1
    "sasl.oauthbearer.jwt.retriever.class",       // since 4.1
    "sasl.oauthbearer.jwt.validator.class",       // since 4.1
    "sasl.oauthbearer.scope",                     // since 4.1
    "sasl.oauthbearer.scope.claim.name",          // since 3.1
    "sasl.oauthbearer.sub.claim.name",            // since 3.1
    "sasl.oauthbearer.token.endpoint.url",        // since 3.1
    "sasl.server.callback.handler.class",
    "sasl.server.max.receive.size", // since 3.3
    "security.inter.broker.protocol",
    "security.providers",
    "server.max.startup.time.ms",                // since 3.5, internal
    "share.coordinator.append.linger.ms",        // since 4.0
    "share.coordinator.cached.buffer.max.bytes", // since 4.3
    "share.coordinator.cold.partition.snapshot.interval.ms", // since 4.1, internal
    "share.coordinator.load.buffer.size",        // since 4.0
    "share.coordinator.snapshot.update.records.per.snapshot", // since 4.0
    "share.coordinator.state.topic.compression.codec", // since 4.0
    "share.coordinator.state.topic.min.isr",     // since 4.0
    "share.coordinator.state.topic.num.partitions", // since 4.0
    "share.coordinator.state.topic.prune.interval.ms", // since 4.0, internal
    "share.coordinator.state.topic.replication.factor", // since 4.0
    "share.coordinator.state.topic.segment.bytes", // since 4.0
    "share.coordinator.threads",                 // since 4.0
    "share.coordinator.write.timeout.ms",        // since 4.0
    "share.fetch.max.fetch.records",             // since 4.0, removed in 4.1, internal
    "share.fetch.purgatory.purge.interval.requests", // since 4.0
    "socket.connection.setup.timeout.max.ms",
    "socket.connection.setup.timeout.ms",
    "socket.listen.backlog.size", // since 3.2
    "socket.receive.buffer.bytes",
    "socket.request.max.bytes",
    "socket.send.buffer.bytes",
    "ssl.allow.dn.changes",  // since 3.7
    "ssl.allow.san.changes", // since 3.7
    "ssl.cipher.suites",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.endpoint.identification.algorithm",
    "ssl.engine.factory.class",
    "ssl.key.password",
    "ssl.keymanager.algorithm",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.principal.mapping.rules",
    "ssl.protocol",
    "ssl.provider",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "super.users",         // authorizer
    "telemetry.max.bytes", // since 3.7
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.max.timeout.ms",
    "transaction.partition.verification.enable", // since 3.6
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "transaction.state.log.load.buffer.size",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.segment.bytes",
    "transaction.two.phase.commit.enable", // since 4.1
    "transactional.id.expiration.ms",
    "unclean.leader.election.enable",
    "unclean.leader.election.interval.ms", // since 3.9, internal
    "unstable.api.versions.enable",        // since 3.5, internal
    "unstable.feature.versions.enable",    // since 3.8, internal
    "unstable.metadata.versions.enable",   // since 3.7, removed in 3.8, internal
    "zookeeper.clientCnxnSocket",          // removed in 4.0
    "zookeeper.connect",                   // removed in 4.0
    "zookeeper.connection.timeout.ms",     // removed in 4.0
    "zookeeper.max.in.flight.requests",    // removed in 4.0
    "zookeeper.metadata.migration.enable", // since 3.4, removed in 4.0
    "zookeeper.metadata.migration.min.batch.size", // since 3.6.2, removed in 4.0, internal
    "zookeeper.session.timeout.ms",        // removed in 4.0
    "zookeeper.set.acl",                   // removed in 4.0
    "zookeeper.ssl.cipher.suites",         // removed in 4.0
    "zookeeper.ssl.client.enable",         // removed in 4.0
    "zookeeper.ssl.crl.enable",            // removed in 4.0
    "zookeeper.ssl.enabled.protocols",     // removed in 4.0
    "zookeeper.ssl.endpoint.identification.algorithm", // removed in 4.0
    "zookeeper.ssl.keystore.location",     // removed in 4.0
    "zookeeper.ssl.keystore.password",     // removed in 4.0
    "zookeeper.ssl.keystore.type",         // removed in 4.0
    "zookeeper.ssl.ocsp.enable",           // removed in 4.0
    "zookeeper.ssl.protocol",              // removed in 4.0
    "zookeeper.ssl.truststore.location",   // removed in 4.0
    "zookeeper.ssl.truststore.password",   // removed in 4.0
    "zookeeper.ssl.truststore.type",       // removed in 4.0
    "zookeeper.sync.time.ms",              // removed in 3.2
];

/// Prefixes under which Kafka accepts per-listener / per-mechanism / client-override keys
/// (e.g. "listener.name.", "log.dirs" is NOT a prefix). Sorted.
///
/// - `config.providers.`: `config.providers.<name>.class` and `.param.<param>` (KIP-297/421).
/// - `listener.name.`: per-listener overrides, `listener.name.<listener>.<key>`, and
///   per-mechanism ones, `listener.name.<listener>.<mechanism>.sasl.jaas.config` and the like.
/// - `metrics.context.`: labels of the metrics context (KIP-606).
/// - `rlmm.config.` / `rsm.config.`: the default values of
///   `remote.log.metadata.manager.impl.prefix` / `remote.log.storage.manager.impl.prefix`,
///   under which the tiered-storage plugins take their own keys (an operator may choose
///   other prefixes; those are not known here).
pub const KAFKA_BROKER_KEY_PREFIXES: &[&str] = &[
    "config.providers.",
    "listener.name.",
    "metrics.context.",
    "rlmm.config.",
    "rsm.config.",
];
