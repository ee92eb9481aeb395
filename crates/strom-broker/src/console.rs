//! The web console on the HTTP listener: a page (`console/assets`, compiled into the
//! binary) and the JSON API it reads. The cluster's shape (brokers, topics, partitions,
//! leaders, ISR) comes from this broker's metadata image; what needs the data itself (a
//! topic's offsets and records, groups and their lag, configs) goes through a Kafka client
//! of this broker's own (`strom-client`), so the console shows the whole cluster as any
//! client sees it and changes it only through Kafka's own requests. Writes (create, alter,
//! delete topics, reset a group's offsets) are refused unless `strom.console.write.enable`.

pub mod assets;
pub mod history;
mod read;
mod write;

use crate::broker::Broker;
use serde_json::{json, Value};
use std::sync::Arc;
use strom_client::{Admin, Client, ClientConfig};

/// The console's state: its client (made on first use) and the history it samples.
pub struct Console {
    pub broker: Arc<Broker>,
    admin: tokio::sync::Mutex<Option<Admin>>,
    pub history: history::History,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

/// An API answer: an HTTP status and a JSON body.
pub type Answer = (u16, Value);

fn error(status: u16, message: impl std::fmt::Display) -> Answer {
    (status, json!({ "error": message.to_string() }))
}

impl Console {
    pub fn new(broker: Arc<Broker>) -> Arc<Console> {
        Arc::new(Console {
            broker,
            admin: tokio::sync::Mutex::new(None),
            history: history::History::default(),
        })
    }

    /// The console's Kafka client, connected to this broker on first use (not under the
    /// lock: a connection that hangs holds up no one else).
    async fn admin(&self) -> Result<Admin, Answer> {
        if let Some(a) = self.admin.lock().await.as_ref() {
            return Ok(a.clone());
        }
        let (host, port) = self.broker.advertised_endpoint();
        let mut config = ClientConfig::new(&format!("{host}:{port}"));
        config.client_id = "strom-console".into();
        let client = Client::connect(config)
            .await
            .map_err(|e| error(503, format!("the console's client cannot connect: {e}")))?;
        let admin = Admin::new(client);
        Ok(self.admin.lock().await.get_or_insert(admin).clone())
    }

    /// Runs a reader that walks the image or the hosted partitions (all of them, at
    /// 100,000 partitions) on a blocking thread.
    async fn blocking(self: &Arc<Self>, read: fn(&Console) -> Answer) -> Answer {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || read(&me))
            .await
            .unwrap_or_else(|e| error(500, e))
    }

    /// Answers `method path?query` with `body` (POSTs).
    pub async fn api(
        self: &Arc<Self>,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Answer {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let q = |k: &str| query_param(query, k);
        match (method, parts.as_slice()) {
            ("GET", ["overview"]) => self.blocking(read::overview).await,
            ("GET", ["topics"]) => self.blocking(read::topics).await,
            ("GET", ["topics", t]) => read::topic(self, &decode(t)).await,
            ("GET", ["topics", t, "records"]) => read::records(self, &decode(t), &q).await,
            ("GET", ["groups"]) => read::groups(self).await,
            ("GET", ["groups", g]) => read::group(self, &decode(g)).await,
            ("GET", ["metrics"]) => self.blocking(read::metrics).await,
            ("GET", ["requests"]) => read::slowest(self),
            ("POST", rest) if !self.broker.config.console_write_enable => error(
                403,
                format!(
                    "the console is read-only: set strom.console.write.enable=true to {}",
                    rest.join("/")
                ),
            ),
            ("POST", ["topics"]) => write::create_topic(self, body).await,
            ("POST", ["topics", t, "delete"]) => write::delete_topic(self, &decode(t)).await,
            ("POST", ["topics", t, "configs"]) => write::alter_topic(self, &decode(t), body).await,
            ("POST", ["groups", g, "reset"]) => write::reset_group(self, &decode(g), body).await,
            (_, _) => error(404, format!("no API {method} /api/{path}")),
        }
    }
}

/// A path segment, percent-decoded (topic and group names may hold `.`, `_`, `-` and, for
/// groups, anything).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query parameter's decoded value.
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_and_query_values_are_percent_decoded() {
        assert_eq!(super::decode("a%2Fb%20c+d"), "a/b c+d");
        assert_eq!(super::decode("bad%zz%4"), "bad%zz%4");
        assert_eq!(
            super::query_param("limit=5&positions=0%3A12", "positions").as_deref(),
            Some("0:12")
        );
        assert_eq!(super::query_param("limit=5", "nope"), None);
    }
}
