//! DescribeClientQuotas: Strom has no client quotas yet, so a valid filter matches nothing;
//! the filter is checked as Kafka's `ClientQuotasImage.describe` checks it.

use crate::error::code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

const ENTITY_TYPES: &[&str] = &["user", "client-id", "ip"];

pub fn describe(req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let mut r = DescribeClientQuotasResponse::default();
    match check(&req) {
        Ok(()) => r.entries = Some(Vec::new()),
        Err((error, message)) => {
            r.error_code = code(error);
            r.error_message = Some(StrBytes::from_string(message));
            r.entries = None;
        }
    }
    r
}

fn check(req: &DescribeClientQuotasRequest) -> Result<(), (ResponseError, String)> {
    let invalid = |m: String| Err((ResponseError::InvalidRequest, m));
    let mut seen: Vec<&str> = Vec::new();
    for c in &req.components {
        let entity = c.entity_type.as_str();
        if entity.is_empty() {
            return invalid("Invalid empty entity type.".into());
        }
        if seen.contains(&entity) {
            return invalid(format!(
                "Entity type {entity} cannot appear more than once in the filter."
            ));
        }
        if !ENTITY_TYPES.contains(&entity) {
            return Err((
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {entity}"),
            ));
        }
        match (c.match_type, c._match.is_some()) {
            (0, false) => {
                return invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                )
            }
            (1, true) => {
                return invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                )
            }
            (2, true) => {
                return invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                )
            }
            (0..=2, _) => {}
            (other, _) => return invalid(format!("Unknown match type {other}")),
        }
        seen.push(entity);
    }
    if seen.contains(&"ip") && seen.len() > 1 {
        return invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into());
    }
    Ok(())
}
