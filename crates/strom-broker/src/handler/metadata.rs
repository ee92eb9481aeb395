//! Metadata: brokers, the cluster id and controller, and topics with their partitions;
//! creates requested topics that do not exist when auto-creation is on.

use crate::broker::Broker;
use crate::error::{self, code};
use crate::handler::{Pending, Reply};
use crate::limits::METADATA_OFF_WORKER_PARTITIONS;
use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
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
        let req_cluster_ops = req.include_cluster_authorized_operations;
        let auto_create = broker.config.auto_create_topics_enable
            && (version < 4 || req.allow_auto_topic_creation);
        let mut image = broker.meta.image();
        let mut response = MetadataResponse::default();
        let mut topics = Vec::new();
        if all {
            // Every topic: built on a blocking thread (100,000 partitions take a while), so
            // the async workers go on serving produce and fetch meanwhile.
            let (b, img) = (Arc::clone(&broker), Arc::clone(&image));
            let built = tokio::task::spawn_blocking(move || {
                img.topics
                    .values()
                    .filter(|t| !b.is_hidden_topic(&t.name))
                    .map(|t| topic(t, topic_ops))
                    .collect::<Vec<_>>()
            })
            .await;
            match built {
                Ok(all) => topics = all,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down, and the connection with it.
                Err(_) => {}
            }
        } else {
            for wanted in req.topics.unwrap_or_default() {
                let result = match (&wanted.name, wanted.topic_id.is_nil()) {
                    (Some(name), _) => {
                        let name = name.0.as_str().to_string();
                        match image.topics.get(&name) {
                            Some(t) => topic(t, topic_ops),
                            None => {
                                let (err, new_image) = missing(&broker, &name, auto_create).await;
                                if let Some(img) = new_image {
                                    image = img;
                                }
                                match image.topics.get(&name) {
                                    Some(t) if err == error::NONE => topic(t, topic_ops),
                                    _ => error_topic(Some(name), uuid::Uuid::nil(), err),
                                }
                            }
                        }
                    }
                    (None, false) => match image.topic_by_id(&wanted.topic_id) {
                        Some(t) => topic(t, topic_ops),
                        None => {
                            error_topic(None, wanted.topic_id, code(ResponseError::UnknownTopicId))
                        }
                    },
                    (None, true) => {
                        error_topic(None, uuid::Uuid::nil(), code(ResponseError::InvalidRequest))
                    }
                };
                topics.push(result);
            }
        }
        response.topics = topics;
        response.brokers = broker
            .advertised_brokers(&image)
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
        response.cluster_authorized_operations = crate::authz::if_asked(
            req_cluster_ops && (8..=10).contains(&version),
            crate::authz::CLUSTER_OPERATIONS,
        );
        encode_large(response, version).await
    })
}

/// A response of many partitions is encoded (and later dropped) on a blocking thread, off
/// the async workers; a small one goes to the writer as it is.
async fn encode_large(response: MetadataResponse, version: i16) -> Reply {
    let partitions: usize = response.topics.iter().map(|t| t.partitions.len()).sum();
    if partitions <= METADATA_OFF_WORKER_PARTITIONS {
        return Reply::Message(ResponseKind::Metadata(response));
    }
    let encoded = tokio::task::spawn_blocking(move || {
        let mut buf = BytesMut::new();
        match response.encode(&mut buf, version) {
            Ok(()) => Ok(buf.freeze()),
            // The writer meets the same error and closes the connection, as for any reply.
            Err(_) => Err(response),
        }
    })
    .await;
    match encoded {
        Ok(Ok(body)) => Reply::Encoded(body),
        Ok(Err(response)) => Reply::Message(ResponseKind::Metadata(response)),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Reply::None,
    }
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
