//! The controller listener: serves the quorum's calls between nodes (openraft's RPCs and the
//! broker's own, `metadata_store::quorum::AppCall`), framed as Kafka requests with Strom's
//! private API key, and, on a connection that opens with a Kafka request, the controller's
//! Kafka APIs (`handler::CONTROLLER_APIS`, for `--bootstrap-controller`). One call at a time per connection, as the callers send them. A client
//! listener hands over connections that open with such a call (`server::connection`): an
//! observer, a broker without a controller listener, is reached there.

use crate::broker::Broker;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The largest call accepted (a batch of entries or a snapshot chunk is far smaller).
const CALL_BYTES_MAX: usize = 64 << 20;

pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    crate::server::accept_loop(
        listener,
        shutdown,
        || std::time::Duration::ZERO,
        move |stream, peer, shutdown| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                let served = match crate::server::read_head(&broker, &stream).await {
                    Ok(head) if crate::server::is_quorum_call(&head) => {
                        connection(broker, stream, shutdown, head).await
                    }
                    Ok(head) => {
                        let kind = crate::handler::Endpoint::Controller;
                        crate::server::kafka_connection(broker, stream, shutdown, kind, head).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "controller connection closed");
                }
            });
        },
    )
    .await
}

/// Serves one connection's quorum calls (also a client listener's connection that opened
/// with one: a broker-only node follows the log there, having no controller listener).
/// `head` holds the connection's first bytes, already read.
pub(crate) async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
    head: bytes::BytesMut,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let (read, mut write) = stream.into_split();
    let mut read = std::io::Cursor::new(head).chain(read);
    loop {
        let size = tokio::select! {
            size = read.read_i32() => size?,
            _ = shutdown.changed() => return Ok(()),
        };
        let size = usize::try_from(size)
            .ok()
            .filter(|n| (10..=CALL_BYTES_MAX).contains(n))
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, format!("bad frame size {size}")))?;
        let mut frame = vec![0u8; size];
        read.read_exact(&mut frame).await?;
        if !strom_raft::wire::is_rpc(&frame) {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "a connection that opened with a quorum call makes only quorum calls",
            ));
        }
        let (correlation, body) = strom_raft::wire::parse_request(&frame)
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "malformed call header"))?;
        let reply = match serde_json::from_slice::<strom_raft::wire::Rpc>(body) {
            Ok(rpc) if !addressed_here(&broker, &rpc) => strom_raft::wire::RpcReply::Refused(
                format!("this is node {}, not {}", broker.node_id, rpc.to),
            ),
            // A call to another incarnation of this node (the caller's membership records the
            // directory this node had before its disk was wiped): it must not vote or take
            // entries as the old one.
            Ok(rpc) if stale_incarnation(&broker, rpc.to_dir.as_deref()) => {
                strom_raft::wire::RpcReply::Refused(format!(
                    "node {} runs on a new directory, not {}",
                    broker.node_id,
                    rpc.to_dir.unwrap_or_default()
                ))
            }
            Ok(rpc) => serve_call(&broker, rpc).await,
            Err(e) => strom_raft::wire::RpcReply::Refused(format!("unreadable call: {e}")),
        };
        let body = serde_json::to_vec(&reply).map_err(Error::other)?;
        write
            .write_all(&strom_raft::wire::response_frame(correlation, &body))
            .await?;
    }
}

/// Membership calls are the broker's; the rest the metadata store's.
async fn serve_call(
    broker: &Arc<Broker>,
    rpc: strom_raft::wire::Rpc,
) -> strom_raft::wire::RpcReply {
    use crate::metadata_store::quorum::AppCall;
    use strom_raft::wire::{RpcCall, RpcReply};
    if let RpcCall::App(v) = &rpc.call {
        if let Ok(call) = serde_json::from_value::<AppCall>(v.clone()) {
            if let Some(reply) = crate::membership::serve(broker, &call).await {
                return RpcReply::App(serde_json::to_value(reply).unwrap_or_default());
            }
        }
    }
    broker.meta.serve(rpc).await
}

/// A call for this node, or a broker call for whichever node listens here.
fn addressed_here(broker: &Broker, rpc: &strom_raft::wire::Rpc) -> bool {
    use strom_raft::wire::{RpcCall, ANY_NODE};
    rpc.to == broker.node_id as u64 || (rpc.to == ANY_NODE && matches!(rpc.call, RpcCall::App(_)))
}

fn stale_incarnation(broker: &Broker, to_dir: Option<&str>) -> bool {
    let mine = broker.meta.quorum().map_or("", |q| q.directory_id());
    to_dir.is_some_and(|d| !d.is_empty() && !mine.is_empty() && d != mine)
}
