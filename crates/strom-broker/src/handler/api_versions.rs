//! ApiVersions: exactly the APIs and versions `handler::SUPPORTED` lists.

use crate::error::code;
use crate::handler::SUPPORTED;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

pub fn handle() -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    r.finalized_features_epoch = -1;
    r
}

/// The answer to an ApiVersions version Strom does not know: the error and the versions it
/// does, in the v0 layout every client can read.
pub fn unsupported() -> ApiVersionsResponse {
    let mut r = handle();
    r.error_code = code(ResponseError::UnsupportedVersion);
    r
}
