//! The HTTP file server: the store's images at `http://<addr>/fw/<name>`,
//! for devices whose Package URI (/5/0/1) is HTTP(S) (OMA-TS-LightweightM2M-1.1
//! Core §E.6 lists coap, coaps, http, https).
//!
//! axum routes one path per image the manifest lists to tower-http's
//! `ServeFile` (the single-file form of `ServeDir`: Range requests with 206
//! Partial Content and 416, HEAD, Last-Modified). Routing by the manifest's
//! names rather than mounting the folder means nothing but the listed images
//! is reachable (not the manifest, not a stray file), there is no listing,
//! and a path with `..`, `%2e%2e` or an absolute form matches no route and
//! gets 404: the request path is never turned into a file-system path.
//!
//! Each answered image request (200 or 206) is counted per (peer address,
//! image) — per IP, as each request may come on a new connection — in
//! a [`TransferStats`], as the CoAP server does per Block2 transfer: bytes
//! are the Content-Length of the answers (what was sent, not what the peer
//! kept), a "block" is one answered request, and a range that starts
//! before the furthest byte already sent counts as a repeat.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::services::ServeFile;

use super::coap_files::PATH_PREFIX;
use super::progress::TransferStats;
use super::serve_task::ServeTask;
use super::store::Store;
use super::FirmwareError;

/// The running HTTP file server.
#[derive(Debug)]
pub struct HttpFileServer {
    local_addr: SocketAddr,
    transfers: Arc<HttpTransfers>,
    task: ServeTask,
}

impl HttpFileServer {
    /// Binds on `addr` (e.g. 127.0.0.1:0) and serves the images of `store`.
    pub async fn bind(addr: SocketAddr, store: Arc<Store>) -> Result<Self, FirmwareError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| FirmwareError::Bind {
                what: "HTTP",
                addr,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| FirmwareError::Bind {
                what: "HTTP",
                addr,
                source,
            })?;
        let transfers = Arc::new(HttpTransfers::new(&store));
        let app = router(&store).layer(middleware::from_fn_with_state(
            Arc::clone(&transfers),
            record_transfer,
        ));
        let task = ServeTask::spawn(|stop| async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "HTTP firmware file server stopped");
            }
        });
        tracing::info!(%local_addr, "HTTP firmware file server listening");
        Ok(HttpFileServer {
            local_addr,
            transfers,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<addr>/fw/`; an image's URL is this plus its name.
    pub fn url_base(&self) -> String {
        format!("http://{}/{PATH_PREFIX}/", self.local_addr)
    }

    /// The URL of image `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}{name}", self.url_base())
    }

    /// The figures of every (peer, image) download so far, oldest first.
    pub fn transfers(&self) -> Vec<TransferStats> {
        self.transfers.snapshot()
    }

    /// A handle on the same figures that outlives a borrow of the server:
    /// HTTP has no progress events, so a watcher samples these.
    pub fn transfers_watch(&self) -> HttpTransfersWatch {
        HttpTransfersWatch(Arc::clone(&self.transfers))
    }

    /// Stops accepting, lets running responses finish, and waits.
    pub async fn shutdown(mut self) {
        self.task.stop().await;
    }
}

/// One route per image; everything else is 404.
fn router(store: &Store) -> Router {
    let mut app = Router::new();
    for image in store.images() {
        // Names are checked by the manifest (letters, digits, '.', '_', '-'),
        // so they are literal route segments.
        app = app.route_service(
            &format!("/{PATH_PREFIX}/{}", image.name()),
            ServeFile::new(&image.path),
        );
    }
    app.fallback(|| async { (StatusCode::NOT_FOUND, "no such firmware image\n") })
}

/// The figures of an [`HttpFileServer`]'s downloads, from any task.
#[derive(Debug, Clone)]
pub struct HttpTransfersWatch(Arc<HttpTransfers>);

impl HttpTransfersWatch {
    /// As [`HttpFileServer::transfers`].
    pub fn transfers(&self) -> Vec<TransferStats> {
        self.0.snapshot()
    }
}

/// Per (peer, image) figures of the HTTP downloads.
#[derive(Debug)]
struct HttpTransfers {
    /// Image name to size, for the images the router serves.
    sizes: BTreeMap<String, usize>,
    active: Mutex<BTreeMap<(std::net::IpAddr, String), (TransferStats, Instant)>>,
}

impl HttpTransfers {
    fn new(store: &Store) -> Self {
        HttpTransfers {
            sizes: store
                .images()
                .map(|i| (i.name().to_string(), i.len()))
                .collect(),
            active: Mutex::new(BTreeMap::new()),
        }
    }

    fn snapshot(&self) -> Vec<TransferStats> {
        let mut v: Vec<TransferStats> = self
            .active
            .lock()
            .map(|m| m.values().map(|(s, _)| s.clone()).collect())
            .unwrap_or_default();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Counts one answered request for `image`: `start` is the first byte
    /// sent, `len` the Content-Length.
    fn record(&self, peer: SocketAddr, image: &str, start: usize, len: usize) {
        let Some(&size) = self.sizes.get(image) else {
            return;
        };
        let Ok(mut map) = self.active.lock() else {
            return;
        };
        let next_id = map.len() as u64 + 1;
        let now = Instant::now();
        let (stats, started) = map
            .entry((peer.ip(), image.to_string()))
            .or_insert_with(|| {
                (
                    TransferStats::starting(next_id, peer, image, size, len, start),
                    now,
                )
            });
        if stats.blocks > 0 && start < stats.offset {
            stats.repeated_blocks += 1;
        }
        stats.peer = peer;
        stats.block_size = len;
        stats.bytes += len as u64;
        stats.blocks += 1;
        stats.offset = stats.offset.max(start + len);
        stats.complete = stats.offset >= size;
        stats.elapsed = now.saturating_duration_since(*started);
        tracing::debug!(%stats, "HTTP firmware download");
    }
}

/// Middleware: after the image route answered, count the bytes it sent.
async fn record_transfer(
    State(transfers): State<Arc<HttpTransfers>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let image = request
        .uri()
        .path()
        .strip_prefix(&format!("/{PATH_PREFIX}/"))
        .map(str::to_string);
    let head = request.method() == axum::http::Method::HEAD;
    let response = next.run(request).await;
    let status = response.status();
    if let (Some(image), false, true) = (
        image,
        head,
        status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT,
    ) {
        let header_text = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let len = header_text(header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        // "bytes 40000-65535/65536" for a 206; a 200 starts at 0.
        let start = header_text(header::CONTENT_RANGE)
            .and_then(|v| {
                v.strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .unwrap_or(0);
        transfers.record(peer, &image, start, len);
    }
    response
}
