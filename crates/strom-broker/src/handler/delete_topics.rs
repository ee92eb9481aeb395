//! DeleteTopics, by name (all versions) or by topic id (v6+): the topic is removed from the
//! metadata, then its partition directories are deleted.

use crate::broker::Broker;
use crate::error::{self, code};
use crate::handler::{Pending, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::{controller, ApiError};

pub fn handle(broker: &Arc<Broker>, version: i16, req: DeleteTopicsRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
            req.topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.as_str().to_string()),
                        t.topic_id,
                    )
                })
                .collect()
        } else {
            req.topic_names
                .iter()
                .map(|n| (Some(n.0.as_str().to_string()), uuid::Uuid::nil()))
                .collect()
        };
        let mut response = DeleteTopicsResponse::default();
        for (name, id) in targets {
            let mut r = DeletableTopicResult::default();
            r.topic_id = id;
            let image = broker.meta.image();
            let name = match name {
                Some(n) => Some(n),
                None => image.topic_by_id(&id).map(|t| t.name.clone()),
            };
            r.name = name.clone().map(|n| TopicName(StrBytes::from_string(n)));
            let outcome = match name {
                None => Err((
                    code(ResponseError::UnknownTopicId),
                    "This server does not host this topic ID.".to_string(),
                )),
                Some(_) if !broker.config.delete_topic_enable => {
                    let e = ApiError::TopicDeletionDisabled;
                    Err((error::api_error(&e), e.to_string()))
                }
                Some(n) => {
                    if let Some(t) = image.topics.get(&n) {
                        r.topic_id = t.topic_id;
                    }
                    broker
                        .commit(move |img| controller::delete_topic(img, &n))
                        .await
                }
            };
            if let Err((c, message)) = outcome {
                r.error_code = c;
                r.error_message = Some(StrBytes::from_string(message));
            }
            response.responses.push(r);
        }
        Reply::Message(ResponseKind::DeleteTopics(response))
    })
}
