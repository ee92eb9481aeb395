//! The network server: listeners, one task pair per connection, size-prefixed frames.
//!
//! A connection's reader task decodes each request and calls its handler, which does its
//! synchronous part (an append) at once and returns a future for the rest (a durability wait,
//! a parked fetch). The futures go, in request order, through a bounded queue to the
//! connection's writer task, which awaits them one by one and writes the responses — so
//! pipelined requests are answered in order, and at most `INFLIGHT_PER_CONNECTION_MAX` are
//! in flight. Fetch responses carry file slices that the writer sends with `sendfile`.

use crate::broker::Broker;
use crate::handler::{self, Pending, Reply};
use crate::limits::{INFLIGHT_PER_CONNECTION_MAX, READ_BUFFER_BYTES};
use crate::response;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Serves one bound listener until `shutdown` turns true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let broker = Arc::clone(&broker);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(broker, stream, shutdown).await {
                            tracing::debug!(%peer, error = %e, "connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// What the writer needs to frame one response.
struct Outgoing {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    reply: Pending,
}

async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let stream = Arc::new(stream);
    let (tx, rx) = mpsc::channel::<Outgoing>(INFLIGHT_PER_CONNECTION_MAX);
    let writer = tokio::spawn(write_responses(
        Arc::clone(&stream),
        rx,
        broker.config.fetch_sendfile,
    ));
    let max_frame = broker.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let result = loop {
        // A whole frame in the buffer?
        if buf.len() >= 4 {
            let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if size < 0 || size as usize > max_frame {
                break Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "frame of {size} bytes refused (socket.request.max.bytes is {max_frame})"
                    ),
                ));
            }
            let size = size as usize;
            if buf.len() >= 4 + size {
                buf.advance(4);
                let frame = buf.split_to(size).freeze();
                match decode(frame) {
                    Ok((header, api_key, version, request)) => {
                        let correlation_id = header.correlation_id;
                        // An unknown ApiVersions version is answered in the v0 layout.
                        let version = if request.is_none() { 0 } else { version };
                        let reply = handler::handle(&broker, &header, version, request, &peer);
                        let out = Outgoing {
                            api_key,
                            version,
                            correlation_id,
                            reply,
                        };
                        if tx.send(out).await.is_err() {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(e),
                }
                continue;
            }
            buf.reserve(4 + size - buf.len());
        } else {
            buf.reserve(READ_BUFFER_BYTES);
        }
        tokio::select! {
            ready = stream.readable() => {
                if let Err(e) = ready {
                    break Err(e);
                }
                match stream.try_read_buf(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => break Err(e),
                }
            }
            _ = shutdown.changed() => break Ok(()),
        }
    };
    drop(tx);
    // Requests already taken are answered before the connection closes.
    let _ = writer.await;
    result
}

/// Decodes a request frame; the request is None only for an ApiVersions request at a
/// version Strom does not know. `Err`: the connection is closed, as Kafka closes it for an unknown API key, an
/// unsupported version of anything but ApiVersions, or a malformed request.
#[allow(clippy::type_complexity)]
pub fn decode(mut frame: Bytes) -> io::Result<(RequestHeader, ApiKey, i16, Option<RequestKind>)> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    if frame.len() < 4 {
        return Err(bad("frame too short for a request header".into()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| bad(format!("unknown API key {key}")))?;
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

async fn write_responses(stream: Arc<TcpStream>, mut rx: mpsc::Receiver<Outgoing>, sendfile: bool) {
    while let Some(out) = rx.recv().await {
        let reply = out.reply.await;
        if matches!(reply, Reply::None) {
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
