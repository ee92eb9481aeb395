//! One TCP connection to one broker: Kafka framing, correlation ids, many requests in flight,
//! and ApiVersions negotiation (each request goes out at the highest version both sides know).
//!
//! Requests are written in the order `call` is entered, which is what keeps an idempotent
//! producer's batches in sequence order on the wire. A reader task matches responses to
//! waiters by correlation id; when the socket fails, every waiter gets the error and the
//! connection is marked dead, so the owner opens a new one.

use crate::error::{Error, Result};
use crate::limits;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<Result<Bytes>>>>>;

/// A connection to one broker. Cheap to share behind an `Arc`; calls may run concurrently.
pub struct Connection {
    addr: String,
    client_id: StrBytes,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    correlation: AtomicI32,
    dead: Arc<AtomicBool>,
    in_flight: tokio::sync::Semaphore,
    /// The broker's version range per API key, from ApiVersions.
    versions: HashMap<i16, (i16, i16)>,
    request_timeout: Duration,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Connects and negotiates API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        request_timeout: Duration,
    ) -> Result<Connection> {
        let connect_err = |source| Error::Connect {
            addr: addr.to_string(),
            source,
        };
        let stream = match tokio::time::timeout(request_timeout, TcpStream::connect(addr)).await {
            Ok(s) => s.map_err(connect_err)?,
            Err(_) => {
                return Err(connect_err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection timed out",
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let pending: Pending = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_loop(
            read,
            addr.to_string(),
            Arc::clone(&pending),
            Arc::clone(&dead),
        ));
        let mut conn = Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            writer: tokio::sync::Mutex::new(write),
            pending,
            correlation: AtomicI32::new(0),
            dead,
            in_flight: tokio::sync::Semaphore::new(limits::IN_FLIGHT_PER_CONNECTION_MAX),
            versions: HashMap::new(),
            request_timeout,
            reader,
        };
        conn.versions = conn.negotiate().await?;
        Ok(conn)
    }

    /// ApiVersions v3; a broker too old for it answers v0 with its ranges (KIP-511).
    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = StrBytes::from_static_str("strom-client");
        req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let mut version = 3;
        for _ in 0..2 {
            let resp: ApiVersionsResponse = self
                .call_version(ApiKey::ApiVersions as i16, version, &req, true)
                .await?
                .ok_or_else(|| Error::Protocol("no ApiVersions response".into()))?;
            if resp.error_code == 35 {
                // UNSUPPORTED_VERSION: the broker's own range for ApiVersions is in the body.
                version = resp
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version.min(3));
                continue;
            }
            crate::error::check(resp.error_code, || "ApiVersions".into(), None)?;
            return Ok(resp
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect());
        }
        Err(Error::Unsupported("ApiVersions".into()))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the socket has failed; a dead connection answers every call with an error.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// The version of `R` this connection will use.
    pub fn version_of<R: Request>(&self) -> Result<i16> {
        let ours = R::VERSIONS;
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| Error::Unsupported(api_name(R::KEY)))?;
        let v = ours.max.min(max);
        if v < ours.min.max(min) {
            return Err(Error::Unsupported(api_name(R::KEY)));
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn call<R: Request>(&self, req: &R) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.call_at(req, version).await
    }

    /// Sends `req` at a chosen version (callers that must cap it, e.g. to keep a field).
    pub async fn call_at<R: Request>(&self, req: &R, version: i16) -> Result<R::Response> {
        self.call_version(R::KEY, version, req, true)
            .await?
            .ok_or_else(|| Error::Protocol("no response".into()))
    }

    /// Sends a request the broker will not answer (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&self, req: &R) -> Result<()> {
        let version = self.version_of::<R>()?;
        self.call_version::<R, R::Response>(R::KEY, version, req, false)
            .await
            .map(|_| ())
    }

    async fn call_version<Q, S>(
        &self,
        key: i16,
        version: i16,
        req: &Q,
        expect_response: bool,
    ) -> Result<Option<S>>
    where
        Q: Encodable + HeaderVersion,
        S: Decodable + HeaderVersion,
    {
        if self.is_dead() {
            return Err(self.disconnected("connection closed"));
        }
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| self.disconnected("connection closed"))?;
        let correlation = self.correlation.fetch_add(1, Ordering::Relaxed);
        let mut header = RequestHeader::default();
        header.request_api_key = key;
        header.request_api_version = version;
        header.correlation_id = correlation;
        header.client_id = Some(self.client_id.clone());
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&[0; 4]);
        header
            .encode(&mut buf, Q::header_version(version))
            .and_then(|()| req.encode(&mut buf, version))
            .map_err(|e| Error::Invalid(format!("{}: cannot encode: {e}", api_name(key))))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());

        let rx = if expect_response {
            let (tx, rx) = oneshot::channel();
            self.lock_pending().insert(correlation, tx);
            Some(rx)
        } else {
            None
        };
        {
            let mut w = self.writer.lock().await;
            if let Err(e) = w.write_all(&buf).await {
                self.dead.store(true, Ordering::Release);
                self.lock_pending().remove(&correlation);
                return Err(self.disconnected(&e.to_string()));
            }
        }
        let Some(rx) = rx else { return Ok(None) };
        let frame = match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(self.disconnected("connection closed")),
            Err(_) => {
                self.lock_pending().remove(&correlation);
                return Err(Error::Timeout {
                    what: format!("{} to {}", api_name(key), self.addr),
                    after: self.request_timeout,
                });
            }
        };
        let mut frame = frame;
        // ApiVersions responses always use header v0 (so that a client with a newer version
        // can still read the error); the crate's header_version says so too.
        ResponseHeader::decode(&mut frame, S::header_version(version))
            .and_then(|_| S::decode(&mut frame, version))
            .map(Some)
            .map_err(|e| Error::Protocol(format!("{} v{version} response: {e}", api_name(key))))
    }

    fn lock_pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<Result<Bytes>>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disconnected(&self, reason: &str) -> Error {
        Error::Disconnected {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }
}

async fn read_loop(
    mut read: tokio::net::tcp::OwnedReadHalf,
    addr: String,
    pending: Pending,
    dead: Arc<AtomicBool>,
) {
    let reason = loop {
        let mut size = [0u8; 4];
        if let Err(e) = read.read_exact(&mut size).await {
            break if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "closed by the broker".to_string()
            } else {
                e.to_string()
            };
        }
        let size = i32::from_be_bytes(size);
        if !(4..=limits::RESPONSE_BYTES_MAX).contains(&size) {
            break format!("response frame of {size} bytes");
        }
        let mut body = vec![0u8; size as usize];
        if let Err(e) = read.read_exact(&mut body).await {
            break e.to_string();
        }
        let mut body = Bytes::from(body);
        let correlation = body.clone().get_i32();
        let waiter = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&correlation);
        if let Some(tx) = waiter {
            let _ = tx.send(Ok(std::mem::take(&mut body)));
        }
    };
    dead.store(true, Ordering::Release);
    let waiters: Vec<_> = pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    for (_, tx) in waiters {
        let _ = tx.send(Err(Error::Disconnected {
            addr: addr.clone(),
            reason: reason.clone(),
        }));
    }
}

/// `Produce`, `Fetch`, ... for messages; the number for keys this crate does not know.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}
