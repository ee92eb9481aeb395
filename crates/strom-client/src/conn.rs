//! One TCP connection to one broker: Kafka framing, correlation ids, many requests in flight,
//! and ApiVersions negotiation (each request goes out at the highest version both sides know).
//!
//! [`Connection::call`] writes its request and waits for the answer. [`Connection::start`]
//! takes the socket's write lock (a fair, first-come lock), leaves the writing to a task and
//! returns, so a caller that starts requests one after the other (the producer's sender) gets
//! them on the wire in that order without waiting for answers — which is what keeps an
//! idempotent producer's pipelined batches in sequence order. A reader task matches
//! responses to waiters by correlation id; when the socket fails, every waiter gets the
//! error and the connection is marked dead, so the owner opens a new one.

use crate::error::{Error, Result};
use crate::limits;
use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<Result<Bytes>>>>>;

/// A connection to one broker. Cheap to share behind an `Arc`; calls may run concurrently.
pub struct Connection {
    /// Unique within the process: tells a reconnected broker's new connection from the old.
    id: u64,
    addr: String,
    client_id: StrBytes,
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    pending: Pending,
    correlation: AtomicI32,
    dead: Arc<AtomicBool>,
    in_flight: Arc<Semaphore>,
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

/// A request on the wire (or queued for it); [`Reply::wait`] gives its response. Holds one
/// of the connection's in-flight slots until then.
pub struct Reply<S> {
    rx: oneshot::Receiver<Result<Bytes>>,
    correlation: i32,
    key: i16,
    version: i16,
    addr: String,
    pending: Pending,
    timeout: Duration,
    _permit: OwnedSemaphorePermit,
    _response: PhantomData<fn() -> S>,
}

impl<S: Decodable + HeaderVersion> Reply<S> {
    /// Waits for the response (at most the connection's request timeout) and decodes it.
    pub async fn wait(self) -> Result<S> {
        let frame = match tokio::time::timeout(self.timeout, self.rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => {
                return Err(Error::Disconnected {
                    addr: self.addr,
                    reason: "connection closed".into(),
                })
            }
            Err(_) => {
                lock(&self.pending).remove(&self.correlation);
                return Err(Error::Timeout {
                    what: format!("{} to {}", api_name(self.key), self.addr),
                    after: self.timeout,
                });
            }
        };
        let version = self.version;
        let mut frame = frame;
        // ApiVersions responses always use header v0 (so that a client with a newer version
        // can still read the error); the crate's header_version says so too.
        ResponseHeader::decode(&mut frame, S::header_version(version))
            .and_then(|_| S::decode(&mut frame, version))
            .map_err(|e| {
                Error::Protocol(format!("{} v{version} response: {e}", api_name(self.key)))
            })
    }
}

fn lock(
    pending: &Pending,
) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<Result<Bytes>>>> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
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
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let mut conn = Connection {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            writer: Arc::new(tokio::sync::Mutex::new(write)),
            pending,
            correlation: AtomicI32::new(0),
            dead,
            in_flight: Arc::new(Semaphore::new(limits::IN_FLIGHT_PER_CONNECTION_MAX)),
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
                .call_version(
                    ApiKey::ApiVersions as i16,
                    version,
                    &req,
                    &[],
                    Write::Inline,
                )
                .await?
                .ok_or_else(|| Error::Protocol("no ApiVersions response".into()))?
                .wait()
                .await?;
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

    /// This connection's process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the socket has failed; a dead connection answers every call with an error.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
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
        self.call_version(R::KEY, version, req, &[], Write::Inline)
            .await?
            .ok_or_else(|| Error::Protocol("no response".into()))?
            .wait()
            .await
    }

    /// Queues `req` at the negotiated version and returns once it is queued for writing
    /// (after waiting for an in-flight slot), not once it is answered: requests started one
    /// after the other are written in that order, and their replies can be awaited
    /// concurrently. Byte fields of `req` that are one of `splice` (a producer's record
    /// batches) are written from those buffers rather than copied into the frame.
    pub async fn start<R: Request>(&self, req: &R, splice: &[Bytes]) -> Result<Reply<R::Response>> {
        let version = self.version_of::<R>()?;
        self.call_version(R::KEY, version, req, splice, Write::Started)
            .await?
            .ok_or_else(|| Error::Protocol("no response".into()))
    }

    /// Queues a request the broker will not answer (Produce with acks=0); `splice` as for
    /// [`Connection::start`].
    pub async fn send_no_response<R: Request>(&self, req: &R, splice: &[Bytes]) -> Result<()> {
        let version = self.version_of::<R>()?;
        self.call_version::<R, R::Response>(R::KEY, version, req, splice, Write::NoResponse)
            .await
            .map(|_| ())
    }

    async fn call_version<Q, S>(
        &self,
        key: i16,
        version: i16,
        req: &Q,
        splice: &[Bytes],
        how: Write,
    ) -> Result<Option<Reply<S>>>
    where
        Q: Encodable + HeaderVersion,
        S: Decodable + HeaderVersion,
    {
        if self.is_dead() {
            return Err(self.disconnected("connection closed"));
        }
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| self.disconnected("connection closed"))?;
        let correlation = self.correlation.fetch_add(1, Ordering::Relaxed);
        let mut header = RequestHeader::default();
        header.request_api_key = key;
        header.request_api_version = version;
        header.correlation_id = correlation;
        header.client_id = Some(self.client_id.clone());
        let header_version = Q::header_version(version);
        let size = header
            .compute_size(header_version)
            .and_then(|h| req.compute_size(version).map(|r| h + r))
            .map_err(|e| encode_err(key, e))?;
        let spliced: usize = splice.iter().map(Bytes::len).sum();
        let mut frame = Frame {
            parts: Vec::with_capacity(2 * splice.len() + 1),
            parts_len: 0,
            cur: BytesMut::with_capacity((4 + size).saturating_sub(spliced)),
            splice,
        };
        frame.cur.extend_from_slice(&(size as i32).to_be_bytes());
        header
            .encode(&mut frame, header_version)
            .and_then(|()| req.encode(&mut frame, version))
            .map_err(|e| encode_err(key, e))?;
        if frame.offset() != 4 + size {
            return Err(encode_err(
                key,
                "the encoded size differs from the computed one",
            ));
        }
        let frame = frame.finish();

        let rx = if matches!(how, Write::NoResponse) {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            self.lock_pending().insert(correlation, tx);
            Some(rx)
        };
        let fail = {
            let (addr, pending, dead) = (
                self.addr.clone(),
                Arc::clone(&self.pending),
                Arc::clone(&self.dead),
            );
            move |e: std::io::Error| fail_pending(&addr, &pending, &dead, &e.to_string())
        };
        if matches!(how, Write::Inline) {
            let mut w = self.writer.lock().await;
            if let Err(e) = write_parts(&mut w, frame).await {
                fail(e);
                return Err(self.disconnected("write failed"));
            }
        } else {
            // Taken in call order (the lock is fair); the write goes on without the caller.
            let mut w = Arc::clone(&self.writer).lock_owned().await;
            tokio::spawn(async move {
                if let Err(e) = write_parts(&mut w, frame).await {
                    fail(e);
                }
            });
        }
        // A failed write marks the connection dead before it fails the pending waiters, so
        // a waiter inserted before this check is either failed by it or sees `dead` here.
        if self.is_dead() {
            self.lock_pending().remove(&correlation);
            return Err(self.disconnected("connection closed"));
        }
        Ok(rx.map(|rx| Reply {
            rx,
            correlation,
            key,
            version,
            addr: self.addr.clone(),
            pending: Arc::clone(&self.pending),
            timeout: self.request_timeout,
            _permit: permit,
            _response: PhantomData,
        }))
    }

    fn lock_pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<Result<Bytes>>>> {
        lock(&self.pending)
    }

    fn disconnected(&self, reason: &str) -> Error {
        Error::Disconnected {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }
}

fn encode_err(key: i16, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: cannot encode: {e}", api_name(key)))
}

/// How `call_version` writes: in the caller (and the caller waits for the answer), or in a
/// task once the write lock is taken (the caller gets a `Reply`, or nothing for a request
/// the broker does not answer).
#[derive(Clone, Copy)]
enum Write {
    Inline,
    Started,
    NoResponse,
}

async fn write_parts(write: &mut OwnedWriteHalf, parts: Vec<Bytes>) -> std::io::Result<()> {
    let mut parts = VecDeque::from(parts);
    while !parts.is_empty() {
        let slices: Vec<IoSlice<'_>> = parts
            .iter()
            .take(limits::WRITE_PARTS_MAX)
            .map(|p| IoSlice::new(p))
            .collect();
        let mut n = write.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let Some(front) = parts.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                parts.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
    Ok(())
}

/// A request frame in parts: encoded bytes, except that a byte field which is one of
/// `splice` is referenced as its own part instead of copied.
struct Frame<'a> {
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    parts_len: usize,
    cur: BytesMut,
    splice: &'a [Bytes],
}

impl Frame<'_> {
    fn finish(mut self) -> Vec<Bytes> {
        if !self.cur.is_empty() {
            self.parts.push(self.cur.freeze());
        }
        self.parts
    }
}

// SAFETY: every method writes through the inner `BytesMut`, which upholds `BufMut`'s
// contract; `put_slice` may instead end the current part and append a spliced buffer, which
// only ever adds initialized bytes.
unsafe impl BufMut for Frame<'_> {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise (`cnt` bytes of `chunk_mut` initialized) is passed on
        // to the same buffer `chunk_mut` came from.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= limits::SPLICE_BYTES_MIN {
            if let Some(b) = self
                .splice
                .iter()
                .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            {
                if !self.cur.is_empty() {
                    let done = self.cur.split().freeze();
                    self.parts_len += done.len();
                    self.parts.push(done);
                }
                self.parts_len += b.len();
                self.parts.push(b.clone());
                return;
            }
        }
        self.cur.extend_from_slice(src);
    }
}

/// Gaps (`seek`/`range`) work within the part being written; request encoders use none.
impl ByteBufMut for Frame<'_> {
    fn offset(&self) -> usize {
        self.parts_len + self.cur.len()
    }

    fn seek(&mut self, offset: usize) {
        self.cur.resize(offset.saturating_sub(self.parts_len), 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let base = self.parts_len;
        &mut self.cur[r.start - base..r.end - base]
    }
}

/// Marks the connection dead, then fails every waiter (in that order: see `call_version`).
fn fail_pending(addr: &str, pending: &Pending, dead: &AtomicBool, reason: &str) {
    dead.store(true, Ordering::SeqCst);
    let waiters: Vec<_> = lock(pending).drain().collect();
    for (_, tx) in waiters {
        let _ = tx.send(Err(Error::Disconnected {
            addr: addr.to_string(),
            reason: reason.to_string(),
        }));
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
        let waiter = lock(&pending).remove(&correlation);
        if let Some(tx) = waiter {
            let _ = tx.send(Ok(std::mem::take(&mut body)));
        }
    };
    fail_pending(&addr, &pending, &dead, &reason);
}

/// `Produce`, `Fetch`, ... for messages; the number for keys this crate does not know.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}
