//! The HTTP listener (`strom.http.listener`): `/metrics` for Prometheus, `/health` and
//! `/ready` for orchestrators, and the web console (`/`, its assets, its JSON API under
//! `/api/`, `console.rs`). HTTP/1.1 by hyper; a scrape runs on a blocking thread.

use crate::broker::Broker;
use crate::config::HttpConfig;
use crate::console::Console;
use crate::error::BrokerError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body the console's API reads.
const BODY_MAX: usize = 1 << 20;

/// Binds the listener (None: turned off). The default address already taken (another
/// broker on this machine) turns it off with a warning; an address given explicitly must
/// bind.
pub async fn bind(config: &HttpConfig) -> Result<Option<TcpListener>, BrokerError> {
    let Some((host, port)) = &config.bind else {
        return Ok(None);
    };
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    match TcpListener::bind((host, *port)).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !config.explicit => {
            tracing::warn!(error = %e, "the default HTTP listener http://{host}:{port} could not be bound; no metrics or console (set strom.http.listener)");
            Ok(None)
        }
        Err(e) => Err(BrokerError::Io(std::io::Error::new(
            e.kind(),
            format!("binding strom.http.listener http://{host}:{port}: {e}"),
        ))),
    }
}

/// Serves HTTP connections until `shutdown` turns true.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let console = Console::new(broker);
    tokio::spawn(crate::console::history::run(
        Arc::clone(&console),
        shutdown.clone(),
    ));
    crate::server::accept_loop(
        listener,
        shutdown,
        || Duration::ZERO,
        move |stream, _peer, mut shutdown| {
            // Its descriptor comes out of the segment files' share; past the bound, closed.
            let Some(held) = console.broker.connections.admit_other() else {
                return;
            };
            let console = Arc::clone(&console);
            tokio::spawn(async move {
                let _held = held;
                let service = hyper::service::service_fn(move |req| {
                    let console = Arc::clone(&console);
                    async move { Ok::<_, Infallible>(route(console, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "HTTP connection ended");
                        }
                    }
                    _ = shutdown.wait_for(|s| *s) => {}
                }
            });
        },
    )
    .await
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    reply(status, "text/plain; charset=utf-8", body)
}

async fn route(console: Arc<Console>, req: Request<hyper::body::Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    if let Some(api) = path.strip_prefix("/api/") {
        return api_call(&console, api, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        if let Ok(v) = "GET, HEAD".parse() {
            r.headers_mut().insert(hyper::header::ALLOW, v);
        }
        return r;
    }
    let broker = Arc::clone(&console.broker);
    match path.as_str() {
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => match not_ready(&broker) {
            None => text(StatusCode::OK, "ready\n"),
            Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => metrics(broker, &req).await,
        p => match crate::console::assets::get(p) {
            Some((content_type, body)) => reply(StatusCode::OK, content_type, body),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// The console's JSON API: GETs read, POSTs (with a JSON body) write.
async fn api_call(
    console: &Arc<Console>,
    path: &str,
    req: Request<hyper::body::Incoming>,
) -> Reply {
    use http_body_util::BodyExt;
    if req.method() == Method::POST {
        if let Some(refused) = cross_site(&req) {
            return refused;
        }
    }
    let method = req.method().as_str().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let limited = http_body_util::Limited::new(req.into_body(), BODY_MAX);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: {e}\n"),
            )
        }
    };
    let (status, value) = console.api(&method, path, &query, &body).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(status, "application/json", value.to_string())
}

/// One scrape at a time: each walks every hosted partition.
static SCRAPING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

async fn metrics(broker: Arc<Broker>, req: &Request<hyper::body::Incoming>) -> Reply {
    let Ok(_turn) = SCRAPING.acquire().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = strom_metrics::Format::negotiate(accept);
    let body =
        tokio::task::spawn_blocking(move || crate::metrics::scrape::render(&broker, format)).await;
    match body {
        Ok(body) => reply(StatusCode::OK, format.content_type(), body),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scrape failed: {e}\n"),
        ),
    }
}

/// A write must come from the console's own page: a JSON body (which a form or a simple
/// cross-site request cannot send without a preflight this server never allows) and, when
/// the browser names an origin, this listener's own (no CSRF, no DNS rebinding).
fn cross_site(req: &Request<hyper::body::Incoming>) -> Option<Reply> {
    let header = |h| req.headers().get(h).and_then(|v| v.to_str().ok());
    let json = header(hyper::header::CONTENT_TYPE)
        .is_some_and(|t| t.trim().starts_with("application/json"));
    if !json {
        let why = "{\"error\":\"a write needs Content-Type: application/json\"}";
        return Some(reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
            why,
        ));
    }
    let host = header(hyper::header::HOST)?;
    let origin = header(hyper::header::ORIGIN)?;
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    if origin_host != host {
        let why = format!("{{\"error\":\"a write from another origin ({origin}) is refused\"}}");
        return Some(reply(StatusCode::FORBIDDEN, "application/json", why));
    }
    None
}

/// Why the broker does not serve yet, if it does not: clients are served once it has
/// registered and brought its partitions in line with the metadata; a log dir that went
/// offline, or a quorum with no leader it knows of, makes it not ready again.
fn not_ready(broker: &Broker) -> Option<String> {
    if broker.config.quorum.broker && !broker.is_serving() {
        return Some("not serving clients yet: registering and loading partitions".into());
    }
    if let Some(dir) = broker.replicas.log_dirs().iter().find(|d| d.is_offline()) {
        return Some(format!("log dir {} is offline", dir.path().display()));
    }
    if let Some(q) = broker.meta.quorum() {
        if q.raft().metrics().borrow().current_leader.is_none() {
            return Some("the metadata quorum has no leader".into());
        }
    }
    None
}
