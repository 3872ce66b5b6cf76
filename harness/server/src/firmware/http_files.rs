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

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use tokio::sync::oneshot;
use tower_http::services::ServeFile;

use super::coap_files::PATH_PREFIX;
use super::store::Store;
use super::FirmwareError;

/// The running HTTP file server.
#[derive(Debug)]
pub struct HttpFileServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
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
        let app = router(&store);
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "HTTP firmware file server stopped");
            }
        });
        tracing::info!(%local_addr, "HTTP firmware file server listening");
        Ok(HttpFileServer {
            local_addr,
            shutdown: Some(shutdown),
            task: Some(task),
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

    /// Stops accepting, lets running responses finish, and waits.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpFileServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
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
