//! UpdateFeatures: finalized feature levels changed through the metadata log, with Kafka's
//! rules and messages (`strom_meta::features`).

use crate::broker::Broker;
use crate::handler::{Pending, Reply};
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{ResponseKind, UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::features::{self, UpgradeType};

pub fn handle(broker: &Arc<Broker>, version: i16, req: UpdateFeaturesRequest) -> Pending {
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let updates: Vec<(String, i16, UpgradeType)> = req
            .feature_updates
            .iter()
            .map(|u| {
                let upgrade = if version == 0 {
                    if u.allow_downgrade {
                        UpgradeType::SafeDowngrade
                    } else {
                        UpgradeType::Upgrade
                    }
                } else {
                    UpgradeType::from_code(u.upgrade_type)
                };
                (u.feature.to_string(), u.max_version_level, upgrade)
            })
            .collect();
        let node_id = broker.node_id;
        let outcome = if req.validate_only {
            features::update_features(&broker.meta.image(), &updates, node_id)
                .map(|_| ())
                .map_err(|e| (crate::error::api_error(&e), e.to_string()))
        } else {
            broker
                .commit(move |img| features::update_features(img, &updates, node_id))
                .await
                .map(|_| ())
        };
        let mut r = UpdateFeaturesResponse::default();
        r.error_message = None;
        match outcome {
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(format!(
                    "The update failed for all features since the following feature had an error: {message}"
                )));
            }
            Ok(()) if version <= 1 => {
                r.results = req
                    .feature_updates
                    .into_iter()
                    .map(|u| {
                        let mut f = UpdatableFeatureResult::default();
                        f.feature = u.feature;
                        f.error_message = None;
                        f
                    })
                    .collect();
            }
            Ok(()) => {}
        }
        Reply::Message(ResponseKind::UpdateFeatures(r))
    })
}
