//! Metadata: brokers, the cluster id and controller, and topics with their partitions;
//! creates requested topics that do not exist when auto-creation is on.

use crate::broker::Broker;
use crate::error::{self, code};
use crate::handler::{Pending, Reply};
use crate::limits::METADATA_OFF_WORKER_PARTITIONS;
use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::{controller, MetadataImage, TopicImage};

pub fn handle(broker: &Arc<Broker>, version: i16, req: MetadataRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        // v0 asks for all topics with an empty list; later versions with null.
        let all = match &req.topics {
            None => true,
            Some(t) => t.is_empty() && version == 0,
        };
        let topic_ops = crate::authz::if_asked(
            version >= 8 && req.include_topic_authorized_operations,
            crate::authz::TOPIC_OPERATIONS,
        );
        let cluster_ops = req.include_cluster_authorized_operations && (8..=10).contains(&version);
        let auto_create = broker.config.auto_create_topics_enable
            && (version < 4 || req.allow_auto_topic_creation);
        let image = broker.meta.image();
        if all {
            let mut response = frame(&broker, &image, cluster_ops);
            if more_partitions_than(&image, METADATA_OFF_WORKER_PARTITIONS) {
                return all_topics_off_worker(broker, image, response, topic_ops, version).await;
            }
            response.topics = all_topics(&broker, &image, topic_ops);
            return Reply::Message(ResponseKind::Metadata(response));
        }
        let wanted = req.topics.unwrap_or_default();
        let (topics, image) = named_topics(&broker, image, wanted, topic_ops, auto_create).await;
        let mut response = frame(&broker, &image, cluster_ops);
        response.topics = topics;
        encode_large(response, version).await
    })
}

/// The response less its topics: brokers, cluster id, controller.
fn frame(broker: &Broker, image: &MetadataImage, cluster_ops: bool) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    response.brokers = broker
        .advertised_brokers(image)
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(id);
            b.host = StrBytes::from_string(host);
            b.port = i32::from(port);
            b.rack = rack.map(StrBytes::from_string);
            b
        })
        .collect();
    response.cluster_id = Some(StrBytes::from_string(broker.cluster_id().to_string()));
    response.controller_id = BrokerId(broker.node_id);
    response.cluster_authorized_operations =
        crate::authz::if_asked(cluster_ops, crate::authz::CLUSTER_OPERATIONS);
    response
}

fn more_partitions_than(image: &MetadataImage, limit: usize) -> bool {
    image
        .topics
        .values()
        .try_fold(0usize, |n, t| {
            Some(n + t.partitions.len()).filter(|&n| n <= limit)
        })
        .is_none()
}

fn all_topics(broker: &Broker, image: &MetadataImage, ops: i32) -> Vec<MetadataResponseTopic> {
    image
        .topics
        .values()
        .filter(|t| !broker.is_hidden_topic(&t.name))
        .map(|t| topic(t, ops))
        .collect()
}

/// Every topic of a large cluster (100,000 partitions take a while), built and encoded in
/// one trip to a blocking thread, so the async workers go on serving produce and fetch.
async fn all_topics_off_worker(
    broker: Arc<Broker>,
    image: Arc<MetadataImage>,
    mut response: MetadataResponse,
    ops: i32,
    version: i16,
) -> Reply {
    let done = tokio::task::spawn_blocking(move || {
        response.topics = all_topics(&broker, &image, ops);
        let partitions = response.topics.iter().map(|t| t.partitions.len()).sum();
        let reply = encode(response, version);
        give_back_freed_memory(partitions);
        reply
    })
    .await;
    done.unwrap_or_else(from_blocking)
}

/// The topics a request names, each found, auto-created or an error; with the image that
/// holds any it created.
async fn named_topics(
    broker: &Arc<Broker>,
    mut image: Arc<MetadataImage>,
    wanted: Vec<MetadataRequestTopic>,
    ops: i32,
    auto_create: bool,
) -> (Vec<MetadataResponseTopic>, Arc<MetadataImage>) {
    let mut topics = Vec::with_capacity(wanted.len());
    for wanted in wanted {
        let result = match (&wanted.name, wanted.topic_id.is_nil()) {
            (Some(name), _) => {
                let name = name.0.as_str().to_string();
                let mut err = error::NONE;
                if !image.topics.contains_key(&name) {
                    let (e, new_image) = missing(broker, &name, auto_create).await;
                    (err, image) = (e, new_image.unwrap_or(image));
                }
                match image.topics.get(&name) {
                    Some(t) if err == error::NONE => topic(t, ops),
                    _ => error_topic(Some(name), uuid::Uuid::nil(), err),
                }
            }
            (None, false) => match image.topic_by_id(&wanted.topic_id) {
                Some(t) => topic(t, ops),
                None => error_topic(None, wanted.topic_id, code(ResponseError::UnknownTopicId)),
            },
            (None, true) => {
                error_topic(None, uuid::Uuid::nil(), code(ResponseError::InvalidRequest))
            }
        };
        topics.push(result);
    }
    (topics, image)
}

/// A response of many partitions is encoded (and later dropped) on a blocking thread, off
/// the async workers; a small one goes to the writer as it is.
async fn encode_large(response: MetadataResponse, version: i16) -> Reply {
    let partitions: usize = response.topics.iter().map(|t| t.partitions.len()).sum();
    if partitions <= METADATA_OFF_WORKER_PARTITIONS {
        return Reply::Message(ResponseKind::Metadata(response));
    }
    let encoded = tokio::task::spawn_blocking(move || {
        let reply = encode(response, version);
        give_back_freed_memory(partitions);
        reply
    })
    .await;
    encoded.unwrap_or_else(from_blocking)
}

/// Returns to the system the pages a large response just freed (tens of MB for 100,000
/// partitions): malloc keeps them otherwise, and an idle broker that answered one such
/// request held 20 MB more, 10% of its memory. A few milliseconds on a blocking thread, but
/// with malloc's locks held: only after responses of `TRIM_AFTER_PARTITIONS` or more, and
/// at most once every `TRIM_EVERY_MS`.
fn give_back_freed_memory(partitions: usize) {
    use std::sync::atomic::{AtomicU64, Ordering};
    const TRIM_AFTER_PARTITIONS: usize = 20_000;
    const TRIM_EVERY_MS: u64 = 10_000;
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last = LAST_MS.load(Ordering::Relaxed);
    if partitions < TRIM_AFTER_PARTITIONS
        || now < last + TRIM_EVERY_MS
        || LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes malloc's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn encode(response: MetadataResponse, version: i16) -> Reply {
    let mut buf = BytesMut::new();
    match response.encode(&mut buf, version) {
        Ok(()) => Reply::Encoded(buf.freeze()),
        // The writer meets the same error and closes the connection, as for any reply.
        Err(_) => Reply::Message(ResponseKind::Metadata(response)),
    }
}

/// A blocking task that did not finish: its panic goes on; cancelled, the runtime is
/// shutting down, and the connection with it.
fn from_blocking(e: tokio::task::JoinError) -> Reply {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
    Reply::None
}

/// A requested topic that does not exist: auto-created when allowed and the name is valid.
async fn missing(
    broker: &Arc<Broker>,
    name: &str,
    auto_create: bool,
) -> (i16, Option<Arc<MetadataImage>>) {
    if let Err(e) = controller::validate_topic_name(name) {
        return (error::api_error(&e), None);
    }
    if !auto_create {
        return (code(ResponseError::UnknownTopicOrPartition), None);
    }
    match broker
        .create_topic(
            name,
            broker.config.num_partitions,
            broker.config.default_replication_factor,
            Vec::new(),
        )
        .await
    {
        Ok(img) => (error::NONE, Some(img)),
        Err(code) => (code, None),
    }
}

fn error_topic(name: Option<String>, id: uuid::Uuid, error_code: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    // Null names are only encodable from v12; earlier versions get "" (only id lookups,
    // v10+, have no name).
    t.name = Some(TopicName(StrBytes::from_string(name.unwrap_or_default())));
    t.topic_id = id;
    t.error_code = error_code;
    t.topic_authorized_operations = crate::authz::OMITTED;
    t
}

fn topic(t: &TopicImage, ops: i32) -> MetadataResponseTopic {
    let mut out = error_topic(Some(t.name.clone()), t.topic_id, error::NONE);
    out.topic_authorized_operations = ops;
    out.is_internal = t.name.starts_with("__");
    out.partitions = t
        .partitions
        .iter()
        .map(|(index, p)| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = *index;
            mp.leader_id = BrokerId(p.leader);
            mp.leader_epoch = p.leader_epoch;
            mp.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
            mp.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
            // No leader (its only in-sync replica is fenced): Kafka's answer.
            if p.leader < 0 {
                mp.error_code =
                    crate::error::code(kafka_protocol::error::ResponseError::LeaderNotAvailable);
            }
            mp
        })
        .collect();
    out
}
