//! What can go wrong talking to a cluster, split by what the caller can do about it.

use kafka_protocol::ResponseError;
use std::time::Duration;

/// A client error. [`Error::is_retriable`] says whether trying again (after a metadata
/// refresh) may succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made to any bootstrap or broker address.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        // Not `#[source]`: the message already says it, and `{:#}` would repeat it.
        source: std::io::Error,
    },
    /// An established connection failed.
    #[error("connection to {addr} failed: {reason}")]
    Disconnected { addr: String, reason: String },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {}{}", code_name(*.code), message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        code: i16,
        context: String,
        message: Option<String>,
    },
    /// No answer within the request timeout.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// The broker does not support any version of an API this client can speak.
    #[error("the broker does not support {0}")]
    Unsupported(String),
    /// Bytes that could not be decoded, or a response that makes no sense.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A request the client refuses before sending (unknown topic, bad argument).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A copy for each of many waiters on one failed request (`io::Error` is not `Clone`; its
/// kind and message are kept).
impl Clone for Error {
    fn clone(&self) -> Error {
        match self {
            Error::Connect { addr, source } => Error::Connect {
                addr: addr.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Disconnected { addr, reason } => Error::Disconnected {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            Error::Kafka {
                code,
                context,
                message,
            } => Error::kafka(*code, context.clone(), message.clone()),
            Error::Timeout { what, after } => Error::Timeout {
                what: what.clone(),
                after: *after,
            },
            Error::Unsupported(s) => Error::Unsupported(s.clone()),
            Error::Protocol(s) => Error::Protocol(s.clone()),
            Error::Invalid(s) => Error::Invalid(s.clone()),
        }
    }
}

impl Error {
    pub fn kafka(code: i16, context: impl Into<String>, message: Option<String>) -> Error {
        Error::Kafka {
            code,
            context: context.into(),
            message,
        }
    }

    /// Whether a retry may succeed: broken connections, timeouts and the error codes Kafka
    /// marks retriable (leader moved, coordinator loading, ...).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Disconnected { .. } | Error::Timeout { .. } | Error::Connect { .. } => true,
            // CORRUPT_MESSAGE is marked retriable by Kafka, but resending the same bytes
            // cannot fix them: a key-less record on a compacted topic would retry forever.
            Error::Kafka { code, .. } => {
                *code != ResponseError::CorruptMessage.code()
                    && ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            _ => false,
        }
    }

    /// The Kafka error code, if the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Kafka's upper-case error name (`UNKNOWN_TOPIC_OR_PARTITION`) for a code.
pub fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::new();
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
        None => format!("error code {code}"),
    }
}

/// `Ok(())` for code 0, else the error.
pub fn check(code: i16, context: impl FnOnce() -> String, message: Option<&str>) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::kafka(code, context(), message.map(str::to_string)))
    }
}
