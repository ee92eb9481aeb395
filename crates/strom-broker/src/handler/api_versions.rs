//! ApiVersions: the APIs and versions `handler::SUPPORTED` lists (on a controller listener,
//! those of `handler::CONTROLLER_APIS`), and the feature levels
//! this broker supports and the cluster has finalized (`strom_meta::features`).

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::code;
use crate::handler::{served_on, Endpoint, SUPPORTED};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_meta::features::{self, GROUP_VERSION};
use strom_meta::MetadataImage;

/// APIs served only while a feature is finalized at level 1 or more (and, for these two,
/// the consumer protocol is among `group.coordinator.rebalance.protocols`).
const GATED: &[(ApiKey, &str)] = &[
    (ApiKey::ConsumerGroupHeartbeat, GROUP_VERSION),
    (ApiKey::ConsumerGroupDescribe, GROUP_VERSION),
];

/// Whether the broker's config or the cluster's finalized features turn `api` off: the
/// KIP-848 consumer protocol is off with `group.version` 0, or when
/// `group.coordinator.rebalance.protocols` leaves out `consumer`, as in Kafka.
pub fn disabled(config: &BrokerConfig, image: &MetadataImage, api: ApiKey) -> bool {
    GATED.iter().any(|(k, feature)| {
        *k == api && (image.feature_level(feature) < 1 || !config.consumer_protocol_enabled)
    })
}

pub fn handle(broker: &Broker, version: i16, endpoint: Endpoint) -> ApiVersionsResponse {
    let image = broker.meta.image();
    let mut r = ApiVersionsResponse::default();
    r.api_keys = SUPPORTED
        .iter()
        .filter(|(key, ..)| served_on(endpoint, *key))
        .filter(|(key, ..)| !disabled(&broker.config, &image, *key))
        .map(|(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    // Before v4, features whose minimum is 0 are left out: older clients cannot read them
    // (KAFKA-17492).
    r.supported_features = features::SUPPORTED
        .iter()
        .filter(|s| version >= 4 || s.min > 0)
        .map(|s| {
            let mut f = SupportedFeatureKey::default();
            f.name = StrBytes::from_static_str(s.name);
            f.min_version = s.min;
            f.max_version = s.max;
            f
        })
        .collect();
    r.finalized_features = image
        .finalized_features()
        .into_iter()
        .filter(|(_, level)| *level > 0)
        .map(|(name, level)| {
            let mut f = FinalizedFeatureKey::default();
            f.name = StrBytes::from_string(name);
            f.min_version_level = level;
            f.max_version_level = level;
            f
        })
        .collect();
    r.finalized_features_epoch = image.features_epoch as i64;
    r
}

/// The answer to an ApiVersions version Strom does not know: the error and the versions it
/// does, in the v0 layout every client can read.
pub fn unsupported(broker: &Broker, endpoint: Endpoint) -> ApiVersionsResponse {
    let mut r = handle(broker, 0, endpoint);
    r.error_code = code(ResponseError::UnsupportedVersion);
    r
}
