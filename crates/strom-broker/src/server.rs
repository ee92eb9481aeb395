//! The network server: listeners, one task pair per connection, size-prefixed frames.
//!
//! A connection's reader task decodes each request and calls its handler, which does its
//! synchronous part (an append) at once and returns a future for the rest (a durability wait,
//! a parked fetch). The futures go, in request order, through a bounded queue to the
//! connection's writer task, which awaits them one by one and writes the responses — so
//! pipelined requests are answered in order, and at most `INFLIGHT_PER_CONNECTION_MAX` are
//! in flight. Fetch responses carry file slices that the writer sends with `sendfile`.

use crate::broker::Broker;
use crate::config::SOCKET_BUFFER_OS_DEFAULT;
use crate::handler::Endpoint;
use crate::handler::{self, Pending, Reply};
use crate::limits::{INFLIGHT_PER_CONNECTION_MAX, READ_BUFFER_BYTES};
use crate::response;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Serves one bound listener (its connections counted in `stats`) until `shutdown` turns
/// true.
pub async fn serve(
    broker: Arc<Broker>,
    (listener, stats): (TcpListener, Arc<crate::metrics::ListenerStats>),
    shutdown: watch::Receiver<bool>,
) {
    let send_buffer = broker.config.socket_send_buffer_bytes;
    let connections = Arc::clone(&broker.connections);
    let name = stats.name.clone();
    let pace = move || connections.pace(&name);
    accept_loop(listener, shutdown, pace, move |stream, peer, shutdown| {
        // Past max.connections (or the address's max.connections.per.ip) the connection is
        // closed at once: the client sees it closed and retries after its backoff, as with
        // Kafka's connection quotas.
        let Some(admitted) = broker.connections.admit(peer.ip()) else {
            return;
        };
        if let Err(e) = set_send_buffer(&stream, send_buffer) {
            tracing::warn!(%peer, error = %e, "socket.send.buffer.bytes not applied");
        }
        let broker = Arc::clone(&broker);
        let open = stats.opened();
        tokio::spawn(async move {
            if let Err(e) = connection(broker, stream, shutdown).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            drop((admitted, open));
        });
    })
    .await
}

/// Accepts connections (no Nagle) and hands each to `on_connection` until `shutdown` turns
/// true, each after the wait `pace` gives (`max.connection.creation.rate`: the next ones
/// wait in the listen backlog meanwhile); a failed accept (out of descriptors) closes idle
/// segment files and is retried after a pause.
pub async fn accept_loop(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    pace: impl Fn() -> Duration,
    on_connection: impl Fn(TcpStream, std::net::SocketAddr, watch::Receiver<bool>),
) {
    let mut failures = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    failures = 0;
                    let _ = stream.set_nodelay(true);
                    let wait = pace();
                    if !wait.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                    on_connection(stream, peer, shutdown.clone());
                }
                Err(e) => {
                    if strom_log::handles::is_out_of_descriptors(&e) {
                        strom_log::Handles::files().relieve();
                    }
                    failures += 1;
                    // The first failure of a run and then one in a hundred.
                    if failures % 100 == 1 {
                        tracing::warn!(error = %e, failures, "accept failed");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Binds a listener as Kafka's acceptor does: SO_RCVBUF set before `listen`, so accepted
/// sockets inherit it (`socket.receive.buffer.bytes`; -1 leaves the kernel's), and a listen
/// backlog of `socket.listen.backlog.size`.
pub async fn bind(
    host: &str,
    port: u16,
    backlog: i32,
    receive_buffer_bytes: i32,
) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    for addr in tokio::net::lookup_host((host, port)).await? {
        match bind_addr(addr, backlog, receive_buffer_bytes) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn bind_addr(addr: SocketAddr, backlog: i32, receive_buffer_bytes: i32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if receive_buffer_bytes != SOCKET_BUFFER_OS_DEFAULT {
        socket.set_recv_buffer_size(u32::try_from(receive_buffer_bytes).unwrap_or(u32::MAX))?;
    }
    socket.bind(addr)?;
    socket.listen(u32::try_from(backlog).unwrap_or(1).max(1))
}

/// SO_SNDBUF of an accepted socket (`socket.send.buffer.bytes`; -1 leaves the kernel's, with
/// its autotuning).
fn set_send_buffer(stream: &TcpStream, bytes: i32) -> io::Result<()> {
    if bytes == SOCKET_BUFFER_OS_DEFAULT {
        return Ok(());
    }
    let value: libc::c_int = bytes;
    // SAFETY: the descriptor is open while `stream` is borrowed; `value` outlives the call
    // and the length is its size.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// When a connection last received a request or finished a response, and how many of its
/// requests are unanswered: `connections.max.idle.ms` closes it only when idle on both.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Returns once the connection has been idle for `idle`: nothing received and nothing in
    /// flight for that long. Never, for `None` (a negative `connections.max.idle.ms`).
    async fn expired(&self, idle: Option<Duration>) {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            // A deadline past what the clock can hold (Long.MAX_VALUE ms) never comes.
            let Some(deadline) = self.last().checked_add(idle) else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(deadline).await;
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                // Answering a request is activity: look again once it may be done.
                tokio::time::sleep(idle.max(Duration::from_millis(10))).await;
                continue;
            }
            if self
                .last()
                .checked_add(idle)
                .is_some_and(|d| d <= Instant::now())
            {
                return;
            }
        }
    }
}

/// What the writer needs to frame one response.
struct Outgoing {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    reply: Pending,
    times: crate::metrics::RequestTimes,
}

/// The next whole frame in `buf`, if it has one (room is reserved for the rest of a frame
/// whose size is known); a size over `socket.request.max.bytes` (or negative) is refused
/// before its body is read.
fn next_frame(buf: &mut BytesMut, max_frame: usize) -> io::Result<Option<Bytes>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 || size as usize > max_frame {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {size} bytes refused (socket.request.max.bytes is {max_frame})"),
        ));
    }
    let size = size as usize;
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

/// A client listener's connection: quorum calls (an observer is reached here), else a
/// Kafka client, which waits until the broker serves them (it may still be registering).
async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let head = read_head(&broker, &stream).await?;
    // Only a broker-only node (an observer, with no controller listener) is reached here.
    // Boxed: a quorum call's future (openraft's) is several KB, and inline it would make
    // every client connection's task that large.
    if is_quorum_call(&head) && !broker.config.quorum.controller {
        return Box::pin(crate::quorum_server::connection(
            broker, stream, shutdown, head,
        ))
        .await;
    }
    if !broker.wait_serving(&mut shutdown).await {
        return Ok(());
    }
    kafka_connection(broker, stream, shutdown, Endpoint::Broker, head).await
}

/// Serves a Kafka client's requests on a connection of a listener of type `endpoint`.
pub(crate) async fn kafka_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
    endpoint: Endpoint,
    head: BytesMut,
) -> io::Result<()> {
    let idle = u64::try_from(broker.config.connections_max_idle_ms)
        .ok()
        .map(Duration::from_millis);
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let stream = Arc::new(stream);
    let activity = Arc::new(Activity::new());
    let (tx, rx) = mpsc::channel::<Outgoing>(INFLIGHT_PER_CONNECTION_MAX);
    let writer = tokio::spawn(write_responses(
        Arc::clone(&stream),
        rx,
        broker.config.fetch_sendfile,
        (Arc::clone(&activity), Arc::clone(&broker.metrics)),
    ));
    let max_frame = broker.config.socket_request_max_bytes;
    let mut buf = head;
    // One idle watch for the connection's life (it re-reads the last activity itself), not
    // a new timer for every read.
    let idle_closed = activity.expired(idle);
    tokio::pin!(idle_closed);
    let result = loop {
        match next_frame(&mut buf, max_frame) {
            Err(e) => break Err(e),
            Ok(Some(frame)) => {
                let read = std::time::Instant::now();
                match decode_at(frame, endpoint) {
                    Ok((header, api_key, version, request)) => {
                        let correlation_id = header.correlation_id;
                        // An unknown ApiVersions version is answered in the v0 layout.
                        let version = if request.is_none() { 0 } else { version };
                        activity.in_flight.fetch_add(1, Ordering::Relaxed);
                        activity.touch();
                        let handling = std::time::Instant::now();
                        let reply =
                            handler::handle(&broker, &header, version, request, &peer, endpoint);
                        let times = crate::metrics::RequestTimes {
                            read,
                            handling,
                            handled: std::time::Instant::now(),
                        };
                        let out = Outgoing {
                            api_key,
                            version,
                            correlation_id,
                            reply,
                            times,
                        };
                        if tx.send(out).await.is_err() {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(e),
                }
                continue;
            }
            Ok(None) => {}
        }
        if buf.is_empty() {
            // Between requests the connection holds no buffer: 10,000 idle connections would
            // otherwise keep 64 KiB each. One is taken when bytes arrive.
            buf = BytesMut::new();
        }
        tokio::select! {
            ready = stream.readable() => {
                if let Err(e) = ready {
                    break Err(e);
                }
                if buf.capacity() == buf.len() {
                    buf.reserve(READ_BUFFER_BYTES);
                }
                match stream.try_read_buf(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => break Err(e),
                }
            }
            _ = shutdown.changed() => break Ok(()),
            _ = &mut idle_closed => {
                tracing::debug!(%peer, "idle connection closed (connections.max.idle.ms)");
                break Ok(());
            }
        }
    };
    drop(tx);
    // Requests already taken are answered before the connection closes.
    let _ = writer.await;
    result
}

/// A frame's head: its size and API key.
const HEAD_BYTES: usize = 6;

/// Reads a connection's first bytes, up to a frame's head: enough to tell a call between
/// quorum nodes (Strom's private API key, which no Kafka client sends) from a Kafka
/// request. Fewer at end of stream, or when nothing more came for
/// `connections.max.idle.ms`; the caller goes on with what was read.
pub(crate) async fn read_head(broker: &Broker, stream: &TcpStream) -> io::Result<BytesMut> {
    let mut head = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let idle = u64::try_from(broker.config.connections_max_idle_ms)
        .ok()
        .map(Duration::from_millis);
    let fill = fill_head(stream, &mut head);
    match idle {
        Some(idle) => {
            if let Ok(r) = tokio::time::timeout(idle, fill).await {
                r?;
            }
        }
        None => fill.await?,
    }
    Ok(head)
}

async fn fill_head(stream: &TcpStream, head: &mut BytesMut) -> io::Result<()> {
    while head.len() < HEAD_BYTES {
        stream.readable().await?;
        match stream.try_read_buf(head) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a connection's first bytes open a call between quorum nodes.
pub(crate) fn is_quorum_call(head: &[u8]) -> bool {
    head.len() >= HEAD_BYTES && strom_raft::wire::is_rpc(&head[4..])
}

/// Decodes a request frame; the request is None only for an ApiVersions request at a
/// version Strom does not know. `Err`: the connection is closed, as Kafka closes it for an unknown API key, an
/// unsupported version of anything but ApiVersions, or a malformed request.
#[allow(clippy::type_complexity)]
pub fn decode(frame: Bytes) -> io::Result<(RequestHeader, ApiKey, i16, Option<RequestKind>)> {
    decode_at(frame, Endpoint::Broker)
}

/// `decode` on a listener of type `endpoint`: a controller listener serves fewer APIs.
#[allow(clippy::type_complexity)]
fn decode_at(
    mut frame: Bytes,
    endpoint: Endpoint,
) -> io::Result<(RequestHeader, ApiKey, i16, Option<RequestKind>)> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    if frame.len() < 4 {
        return Err(bad("frame too short for a request header".into()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| bad(format!("unknown API key {key}")))?;
    if !handler::served_on(endpoint, api_key) {
        return Err(bad(format!(
            "{api_key:?} is not served on a controller listener"
        )));
    }
    let supported = handler::supported(api_key, version);
    let header_version = if api_key == ApiKey::ApiVersions && !supported {
        // Kafka reads an unknown ApiVersions version's header as the newest it knows.
        if version >= 3 {
            2
        } else {
            1
        }
    } else {
        api_key.request_header_version(version)
    };
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| bad(format!("bad request header: {e}")))?;
    if !supported {
        if api_key == ApiKey::ApiVersions {
            return Ok((header, api_key, version, None));
        }
        return Err(bad(format!("{api_key:?} v{version} is not supported")));
    }
    let request = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| bad(format!("malformed {api_key:?} v{version} request: {e}")))?;
    Ok((header, api_key, version, Some(request)))
}

async fn write_responses(
    stream: Arc<TcpStream>,
    mut rx: mpsc::Receiver<Outgoing>,
    sendfile: bool,
    (activity, metrics): (Arc<Activity>, Arc<crate::metrics::Metrics>),
) {
    while let Some(out) = rx.recv().await {
        let picked = std::time::Instant::now();
        let reply = out.reply.await;
        let ready = std::time::Instant::now();
        // Counted done once written (below), or now when there is nothing to write.
        let _done = Done(&activity);
        let key = out.api_key as i16;
        let api = metrics.api(key).map(|a| (key, a, &metrics.slowest));
        if matches!(reply, Reply::None) {
            if let Some(api) = api {
                out.times.record(api, picked, ready, ready);
            }
            continue;
        }
        let chunks = match response::encode(out.api_key, out.version, out.correlation_id, reply) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(api = ?out.api_key, version = out.version, error = %e, "encoding a response failed; closing the connection");
                close(&stream);
                return;
            }
        };
        if let Err(e) = write_chunks(&stream, chunks, sendfile).await {
            tracing::debug!(error = %e, "writing a response failed");
            close(&stream);
            return;
        }
        if let Some(api) = api {
            out.times
                .record(api, picked, ready, std::time::Instant::now());
        }
    }
}

/// Marks one request answered when dropped (after its response is written, or on any early
/// exit).
struct Done<'a>(&'a Activity);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Shuts both directions, so the reader task stops too and the client sees the close.
fn close(stream: &TcpStream) {
    // SAFETY: the descriptor is open while `stream` is borrowed.
    unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR) };
}

async fn write_chunks(
    stream: &TcpStream,
    chunks: Vec<response::Chunk>,
    use_sendfile: bool,
) -> io::Result<()> {
    for chunk in chunks {
        match chunk {
            response::Chunk::Bytes(mut b) => {
                while !b.is_empty() {
                    stream.writable().await?;
                    match stream.try_write(&b) {
                        Ok(n) => b.advance(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            response::Chunk::File(slice) if use_sendfile => send_file(stream, &slice).await?,
            response::Chunk::File(slice) => {
                let bytes = match slice.read_to_vec() {
                    Ok(b) => b,
                    // The file shrank under us (truncation or deletion): keep the framing.
                    Err(_) => vec![0u8; slice.len as usize],
                };
                Box::pin(write_chunks(
                    stream,
                    vec![response::Chunk::Bytes(Bytes::from(bytes))],
                    false,
                ))
                .await?;
            }
        }
    }
    Ok(())
}

/// Sends a file slice with sendfile(2): from the page cache to the socket, no user-space copy.
async fn send_file(stream: &TcpStream, slice: &strom_log::FileSlice) -> io::Result<()> {
    let in_fd = slice.file.as_raw_fd();
    let out_fd = stream.as_raw_fd();
    let mut offset = slice.position as libc::off_t;
    let end = (slice.position + slice.len) as libc::off_t;
    while offset < end {
        stream.writable().await?;
        let result = stream.try_io(Interest::WRITABLE, || {
            let count = (end - offset) as usize;
            // SAFETY: both descriptors are open for the duration of the call (the slice holds
            // the file, the caller holds the stream); offset is a valid pointer.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut offset, count) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match result {
            Ok(0) => {
                // The file is shorter than the slice (truncated meanwhile): pad to keep framing.
                let pad = vec![0u8; (end - offset) as usize];
                tracing::warn!(
                    bytes = pad.len(),
                    "segment shrank during a fetch; padding the response"
                );
                return Box::pin(write_chunks(
                    stream,
                    vec![response::Chunk::Bytes(Bytes::from(pad))],
                    false,
                ))
                .await;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockopt(fd: i32, option: libc::c_int) -> i32 {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `fd` is open for the call; value and len are valid for writes.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                std::ptr::addr_of_mut!(value).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        value
    }

    #[tokio::test]
    async fn socket_buffers_are_set_on_accepted_sockets_and_minus_one_leaves_the_kernels() {
        // (receive, send) as configured; Linux reports twice what was set.
        let listener = bind("127.0.0.1", 0, 50, 48_000).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        set_send_buffer(&accepted, 81_920).unwrap();
        assert_eq!(sockopt(accepted.as_raw_fd(), libc::SO_RCVBUF), 2 * 48_000);
        assert_eq!(sockopt(accepted.as_raw_fd(), libc::SO_SNDBUF), 2 * 81_920);

        let plain = bind("127.0.0.1", 0, 50, SOCKET_BUFFER_OS_DEFAULT)
            .await
            .unwrap();
        let _client = std::net::TcpStream::connect(plain.local_addr().unwrap()).unwrap();
        let (accepted, _) = plain.accept().await.unwrap();
        let kernel = sockopt(accepted.as_raw_fd(), libc::SO_SNDBUF);
        set_send_buffer(&accepted, SOCKET_BUFFER_OS_DEFAULT).unwrap();
        assert_eq!(sockopt(accepted.as_raw_fd(), libc::SO_SNDBUF), kernel);
        assert_ne!(sockopt(accepted.as_raw_fd(), libc::SO_RCVBUF), 2 * 48_000);
    }

    /// Connections the kernel completes for a listener nobody accepts on: Linux queues
    /// backlog + 1 and then drops further SYNs.
    fn completed(addr: SocketAddr, tries: usize) -> usize {
        let mut held = Vec::new();
        for _ in 0..tries {
            if let Ok(c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                held.push(c);
            }
        }
        held.len()
    }

    #[tokio::test]
    async fn the_listen_backlog_is_socket_listen_backlog_size() {
        let small = bind("127.0.0.1", 0, 1, SOCKET_BUFFER_OS_DEFAULT)
            .await
            .unwrap();
        let addr = small.local_addr().unwrap();
        let n = tokio::task::spawn_blocking(move || completed(addr, 5))
            .await
            .unwrap();
        assert!(n < 5, "a backlog of 1 completed {n} of 5 connections");
        let large = bind("127.0.0.1", 0, 50, SOCKET_BUFFER_OS_DEFAULT)
            .await
            .unwrap();
        let addr = large.local_addr().unwrap();
        let n = tokio::task::spawn_blocking(move || completed(addr, 5))
            .await
            .unwrap();
        assert_eq!(n, 5);
    }
}
