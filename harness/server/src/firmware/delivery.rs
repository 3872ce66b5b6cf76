//! The one API a case's `firmware: {image, method}` step uses to get an
//! image to a device by any of object 5's delivery methods (LwM2M 1.1 Core
//! §E.6): pull over CoAP (Block2), over CoAPS (Block2 under DTLS 1.2 PSK,
//! keys from the LwM2M server's credential store), over HTTP (Range), or
//! push into /5/0/0 with Block1.
//!
//! [`FirmwareDelivery`] holds the [`Store`] and starts each file server the
//! first time a Package URI for it is asked for, so a run with no pull case
//! binds no port. A name the manifest does not list is refused by
//! [`image`](FirmwareDelivery::image) before the device is touched. The
//! figures of the latest delivery of each image — whichever method — come
//! from [`progress`](FirmwareDelivery::progress) as a [`TransferProgress`],
//! with a one-line `Display` for the message log and
//! [`properties`](TransferProgress::properties) for JUnit.
//!
//! The runner drives a case like this:
//!
//! 1. `delivery.image(name)?` — fails the case as an error if unknown.
//! 2. Read /5/0/8 and /5/0/9 and call [`DeliveryMethodKind::applicability`]:
//!    a method the device does not offer makes the case *not applicable*.
//! 3. Pull: write [`package_uri`](FirmwareDelivery::package_uri) to /5/0/1,
//!    then await /5/0/3 = 2 (Downloaded) while polling `progress(name)` for
//!    the progress bar. Push: [`push`](FirmwareDelivery::push), which writes
//!    /5/0/0 block-wise and returns the device's code and figures.
//! 4. Execute /5/0/2 and check the observed /5/0/3 and /5/0/5 sequence
//!    with `lwm2m::firmware::FirmwareRecorder`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lwm2m::firmware::{DeliveryMethod, ProtocolSupport};
use lwm2m::path::Path;
use lwm2m::server::PushProgress;
use tokio::sync::OnceCell;

use super::coap_files::CoapFileServer;
use super::dtls_transport::DtlsDatagramTransport;
use super::generate::{fixtures_manifest, generate_fixtures};
use super::http_files::HttpFileServer;
use super::manifest::MANIFEST_FILE;
use super::progress::TransferStats;
use super::store::{Image, Store};
use super::FirmwareError;
use crate::{CredentialStore, PushReport, ServerError, ServerHandle};

/// How an image gets to the device (the `method:` of a `firmware:` step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryMethodKind {
    /// The device fetches a `coap://` Package URI with Block2 (RFC 7959).
    PullCoap,
    /// The device fetches a `coaps://` Package URI with Block2 over DTLS 1.2
    /// PSK (RFC 7252 §9.1), authenticating with its server account's PSK.
    PullCoaps,
    /// The device fetches an `http://` Package URI (Range requests to resume).
    PullHttp,
    /// The server writes the image into /5/0/0 with Block1.
    Push,
}

impl DeliveryMethodKind {
    pub const ALL: [DeliveryMethodKind; 4] = [
        DeliveryMethodKind::PullCoap,
        DeliveryMethodKind::PullCoaps,
        DeliveryMethodKind::PullHttp,
        DeliveryMethodKind::Push,
    ];

    /// The name cases use: `pull-coap`, `pull-coaps`, `pull-http`, `push`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMethodKind::PullCoap => "pull-coap",
            DeliveryMethodKind::PullCoaps => "pull-coaps",
            DeliveryMethodKind::PullHttp => "pull-http",
            DeliveryMethodKind::Push => "push",
        }
    }

    /// The Package URI scheme a pull method needs in /5/0/8 Protocol Support.
    pub fn protocol(self) -> Option<ProtocolSupport> {
        match self {
            DeliveryMethodKind::PullCoap => Some(ProtocolSupport::Coap),
            DeliveryMethodKind::PullCoaps => Some(ProtocolSupport::Coaps),
            DeliveryMethodKind::PullHttp => Some(ProtocolSupport::Http),
            DeliveryMethodKind::Push => None,
        }
    }

    /// Whether a device offering `delivery` (/5/0/9) and `protocols`
    /// (/5/0/8) can be updated this way. `Err` says why not: the case is
    /// then reported as not applicable, not failed (the device is not
    /// wrong to lack an optional method). A device that does not report
    /// /5/0/9 or /5/0/8 (both optional) is given the benefit of the doubt.
    pub fn applicability(
        self,
        delivery: Option<DeliveryMethod>,
        protocols: Option<&[ProtocolSupport]>,
    ) -> Result<(), String> {
        let pull = self != DeliveryMethodKind::Push;
        match (delivery, pull) {
            (Some(DeliveryMethod::Push), true) => {
                return Err(format!(
                    "the device offers push delivery only (/5/0/9 = 1), not {self}"
                ))
            }
            (Some(DeliveryMethod::Pull), false) => {
                return Err("the device offers pull delivery only (/5/0/9 = 0), not push".into())
            }
            _ => {}
        }
        if let (Some(wanted), Some(protocols)) = (self.protocol(), protocols) {
            if !protocols.contains(&wanted) {
                return Err(format!(
                    "the device does not list {wanted:?} in /5/0/8 Protocol Support ({protocols:?}), so {self} does not apply"
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for DeliveryMethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryMethodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryMethodKind::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown delivery method {s:?} (pull-coap, pull-coaps, pull-http or push)")
            })
    }
}

/// The figures of one delivery of one image, whatever the method.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferProgress {
    pub image: String,
    pub method: DeliveryMethodKind,
    /// The device's address (a push knows only the endpoint: `None`).
    pub peer: Option<SocketAddr>,
    /// Image size in bytes.
    pub size: usize,
    /// Byte the transfer started at (non-zero when a device resumed).
    pub start_offset: usize,
    /// Furthest byte delivered (pull) or acknowledged (push).
    pub offset: usize,
    /// Payload bytes sent for distinct blocks or requests.
    pub bytes: u64,
    /// Blocks (CoAP) or answered requests (HTTP).
    pub blocks: u32,
    /// Block size (or last response length) in use at the end.
    pub block_size: usize,
    /// Datagrams or requests repeated after a loss.
    pub retransmissions: u32,
    /// Times the device asked for smaller Block1 blocks (push only).
    pub renegotiations: u32,
    pub elapsed: Duration,
    /// The whole image went out (pull) or the device answered the last
    /// block (push; see `code`).
    pub complete: bool,
    /// For a push: the device's final CoAP code (e.g. 204, 413).
    pub code: Option<u16>,
}

impl TransferProgress {
    /// Bytes per second over `elapsed` (0 before any time passed).
    pub fn throughput(&self) -> f64 {
        lwm2m::server::bytes_per_second(self.bytes, self.elapsed)
    }

    /// Fraction of the image delivered, 0.0–1.0, for a progress bar.
    pub fn fraction(&self) -> f64 {
        if self.size == 0 {
            1.0
        } else {
            (self.offset as f64 / self.size as f64).min(1.0)
        }
    }

    /// Name/value pairs for a JUnit testcase's `<properties>`.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("firmware.image", self.image.clone()),
            ("firmware.method", self.method.to_string()),
            ("firmware.size", self.size.to_string()),
            ("firmware.bytes", self.bytes.to_string()),
            ("firmware.start_offset", self.start_offset.to_string()),
            ("firmware.blocks", self.blocks.to_string()),
            ("firmware.block_size", self.block_size.to_string()),
            ("firmware.retransmissions", self.retransmissions.to_string()),
            ("firmware.renegotiations", self.renegotiations.to_string()),
            ("firmware.elapsed_ms", self.elapsed.as_millis().to_string()),
            (
                "firmware.throughput_bytes_per_s",
                format!("{:.0}", self.throughput()),
            ),
            ("firmware.complete", self.complete.to_string()),
        ];
        if let Some(code) = self.code {
            p.push(("firmware.code", crate::code_text(code)));
        }
        p.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn from_pull(method: DeliveryMethodKind, s: &TransferStats) -> Self {
        TransferProgress {
            image: s.image.clone(),
            method,
            peer: Some(s.peer),
            size: s.size,
            start_offset: s.start_offset,
            offset: s.offset,
            bytes: s.bytes,
            blocks: s.blocks,
            block_size: s.block_size,
            retransmissions: s.retransmissions(),
            renegotiations: 0,
            elapsed: s.elapsed,
            complete: s.complete,
            code: None,
        }
    }

    fn from_push(image: &str, p: &PushProgress, code: Option<u16>) -> Self {
        TransferProgress {
            image: image.to_string(),
            method: DeliveryMethodKind::Push,
            peer: None,
            size: p.total,
            start_offset: 0,
            offset: p.bytes,
            bytes: p.bytes as u64,
            blocks: p.blocks,
            block_size: p.block_size,
            retransmissions: p.retransmissions,
            renegotiations: p.renegotiations,
            elapsed: p.elapsed,
            complete: p.finished && code.is_some_and(|c| (200..300).contains(&c)),
            code,
        }
    }
}

impl fmt::Display for TransferProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "firmware {} {} ", self.method, self.image)?;
        if let Some(peer) = self.peer {
            write!(f, "to {peer} ")?;
        }
        write!(
            f,
            "{}/{} bytes{}, {} blocks of {}, {} retransmissions",
            self.offset,
            self.size,
            if self.start_offset > 0 {
                format!(" (resumed at {})", self.start_offset)
            } else {
                String::new()
            },
            self.blocks,
            self.block_size,
            self.retransmissions
        )?;
        if self.method == DeliveryMethodKind::Push {
            write!(f, ", {} renegotiations", self.renegotiations)?;
        }
        write!(
            f,
            ", {:.1} s, {:.1} KiB/s",
            self.elapsed.as_secs_f64(),
            self.throughput() / 1024.0
        )?;
        if let Some(code) = self.code {
            write!(f, ", device answered {}", crate::code_text(code))?;
        }
        if self.complete {
            f.write_str(", complete")?;
        }
        Ok(())
    }
}

/// Why a delivery could not be made. All of these are harness or case
/// errors (the bench could not do its part), never device failures: a
/// device's refusal of a push is a [`PushReport`] code.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] FirmwareError),
    #[error("no firmware image {name:?} in {} (it lists: {})", manifest.display(), known.join(", "))]
    UnknownImage {
        name: String,
        manifest: PathBuf,
        known: Vec<String>,
    },
    /// Images can only join the store before a file server shares it.
    #[error("cannot add the images of {}: the file servers already serve the store", dir.display())]
    AlreadyServing { dir: PathBuf },
    #[error("pushing {image:?}: {source}")]
    Push {
        image: String,
        #[source]
        source: Box<ServerError>,
    },
}

/// Datagrams a delivery's own capture holds (when not recording into the
/// LwM2M server's): a 1 MiB image at 64-byte blocks, both ways.
const FILE_SERVER_CAPTURE: usize = 40_000;

/// The firmware store and its file servers, started on first use.
#[derive(Debug)]
pub struct FirmwareDelivery {
    store: Arc<Store>,
    bind_ip: IpAddr,
    advertise_host: Option<String>,
    coap: OnceCell<CoapFileServer>,
    coaps: OnceCell<CoapFileServer>,
    /// The PSKs the CoAPS file server accepts: the LwM2M server's.
    credentials: Option<CredentialStore>,
    http: OnceCell<HttpFileServer>,
    /// Where the CoAP and CoAPS file servers record their datagrams.
    capture: crate::Capture,
    /// Per image: the method it was last offered or pushed by.
    offered: Mutex<BTreeMap<String, DeliveryMethodKind>>,
    /// Per image: the figures of its latest push.
    pushes: Mutex<BTreeMap<String, TransferProgress>>,
}

impl FirmwareDelivery {
    /// Loads the store in `store_dir` (its `manifest.yaml` and every image
    /// listed). When the folder is the generated fixtures' (its manifest is
    /// exactly what [`generate_fixtures`] writes) and images are missing,
    /// they are generated first: a fresh clone holds only the manifest.
    ///
    /// File servers will bind `bind_ip` on ephemeral ports; Package URIs
    /// name `advertise_host` (what the device can reach, e.g. the bench
    /// PC's LAN address) or else `bind_ip`.
    pub async fn start(
        store_dir: &FsPath,
        bind_ip: IpAddr,
        advertise_host: Option<String>,
    ) -> Result<Self, DeliveryError> {
        let dir = store_dir.to_path_buf();
        let store = tokio::task::spawn_blocking(move || load_or_generate(&dir))
            .await
            .map_err(|e| FirmwareError::Io {
                path: store_dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })??;
        tracing::info!(dir = %store_dir.display(), images = store.names().count(), "firmware store ready");
        Ok(FirmwareDelivery {
            store: Arc::new(store),
            bind_ip,
            advertise_host,
            coap: OnceCell::new(),
            coaps: OnceCell::new(),
            credentials: None,
            http: OnceCell::new(),
            capture: crate::Capture::new(FILE_SERVER_CAPTURE),
            offered: Mutex::new(BTreeMap::new()),
            pushes: Mutex::new(BTreeMap::new()),
        })
    }

    /// [`start`](Self::start), with the credential store the CoAPS file
    /// server takes its PSKs from — pass the LwM2M server's
    /// ([`ServerHandle::credentials`]) so a device authenticates with its
    /// server account. Without it, [`DeliveryMethodKind::PullCoaps`] is refused.
    pub async fn start_with_credentials(
        store_dir: &FsPath,
        bind_ip: IpAddr,
        advertise_host: Option<String>,
        credentials: CredentialStore,
    ) -> Result<Self, DeliveryError> {
        let mut delivery = Self::start(store_dir, bind_ip, advertise_host).await?;
        delivery.credentials = Some(credentials);
        Ok(delivery)
    }

    /// Serves the images of `extra` (a second folder with its own
    /// manifest) alongside the store's, by the same file servers. Only
    /// before the first Package URI or push: a running server holds the
    /// store it started with.
    pub fn add_images(&mut self, extra: Store) -> Result<(), DeliveryError> {
        let dir = extra.dir().to_path_buf();
        let store = Arc::get_mut(&mut self.store).ok_or(DeliveryError::AlreadyServing { dir })?;
        store.merge(extra)?;
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The image `name`, or an error naming the manifest and what it lists.
    /// Call it before touching the device.
    pub fn image(&self, name: &str) -> Result<&Image, DeliveryError> {
        self.store
            .get(name)
            .ok_or_else(|| DeliveryError::UnknownImage {
                name: name.to_string(),
                manifest: self.store.manifest_path().to_path_buf(),
                known: self.store.names().map(str::to_string).collect(),
            })
    }

    /// The Package URI (/5/0/1) of image `name` for a pull method, starting
    /// that method's file server if it is not running yet. For
    /// [`DeliveryMethodKind::Push`] there is no URI: this returns
    /// `coap://` as a pull would (use [`push`](Self::push) instead).
    pub async fn package_uri(
        &self,
        name: &str,
        method: DeliveryMethodKind,
    ) -> Result<String, DeliveryError> {
        self.image(name)?;
        let (scheme, port) = match method {
            DeliveryMethodKind::PullHttp => ("http", self.http().await?.local_addr().port()),
            DeliveryMethodKind::PullCoaps => ("coaps", self.coaps().await?.local_addr().port()),
            DeliveryMethodKind::PullCoap | DeliveryMethodKind::Push => {
                ("coap", self.coap().await?.local_addr().port())
            }
        };
        self.offered_as(name, method);
        let host = match (&self.advertise_host, self.bind_ip) {
            (Some(h), _) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            (Some(h), _) => h.clone(),
            (None, IpAddr::V6(ip)) => format!("[{ip}]"),
            (None, ip) => ip.to_string(),
        };
        Ok(format!(
            "{scheme}://{host}:{port}/{}/{name}",
            super::coap_files::PATH_PREFIX
        ))
    }

    /// Pushes image `name` into /5/0/0 Package of `endpoint` with Block1,
    /// starting at 2^(`szx`+4)-byte blocks; `on_progress` sees the figures
    /// as they come. The device's answer (2.04, or a refusal such as 4.13)
    /// is in the report; the figures are also kept for [`progress`](Self::progress).
    pub async fn push(
        &self,
        server: &ServerHandle,
        endpoint: &str,
        name: &str,
        szx: u8,
        timeout: Duration,
        mut on_progress: impl FnMut(&TransferProgress) + Send,
    ) -> Result<PushReport, DeliveryError> {
        let path = Path::resource(
            lwm2m::firmware::OBJECT_ID,
            0,
            lwm2m::firmware::resource::PACKAGE,
        );
        let bytes = self.image(name)?.bytes.to_vec();
        self.offered_as(name, DeliveryMethodKind::Push);
        let result = server
            .push_firmware_with_progress(endpoint, path, bytes, szx, timeout, |p| {
                let progress = TransferProgress::from_push(name, p, None);
                on_progress(&progress);
                self.record_push(progress);
            })
            .await;
        match result {
            Ok(report) => {
                let mut last = self.progress(name).unwrap_or_else(|| {
                    TransferProgress::from_push(name, &empty_push(path, report.total), None)
                });
                last.code = Some(report.code);
                last.complete = report.is_success();
                tracing::info!(progress = %last, "firmware push finished");
                self.record_push(last);
                Ok(report)
            }
            Err(source) => Err(DeliveryError::Push {
                image: name.to_string(),
                source: Box::new(source),
            }),
        }
    }

    /// The figures of the latest delivery of image `name` by the method it
    /// was last offered with; `None` before the device asked for it.
    pub fn progress(&self, name: &str) -> Option<TransferProgress> {
        let method = *lock(&self.offered).get(name)?;
        match method {
            DeliveryMethodKind::PullCoap => latest(self.coap.get()?.transfers(), name)
                .map(|s| TransferProgress::from_pull(method, &s)),
            DeliveryMethodKind::PullCoaps => latest(self.coaps.get()?.transfers(), name)
                .map(|s| TransferProgress::from_pull(method, &s)),
            DeliveryMethodKind::PullHttp => latest(self.http.get()?.transfers(), name)
                .map(|s| TransferProgress::from_pull(method, &s)),
            DeliveryMethodKind::Push => lock(&self.pushes).get(name).cloned(),
        }
    }

    /// Figures of every pull transfer so far, CoAP, CoAPS then HTTP, in
    /// order of start.
    pub fn transfers(&self) -> Vec<TransferProgress> {
        let coap = self.coap.get().map(|s| s.transfers()).unwrap_or_default();
        let coaps = self.coaps.get().map(|s| s.transfers()).unwrap_or_default();
        let http = self.http.get().map(|s| s.transfers()).unwrap_or_default();
        coap.iter()
            .map(|s| TransferProgress::from_pull(DeliveryMethodKind::PullCoap, s))
            .chain(
                coaps
                    .iter()
                    .map(|s| TransferProgress::from_pull(DeliveryMethodKind::PullCoaps, s)),
            )
            .chain(
                http.iter()
                    .map(|s| TransferProgress::from_pull(DeliveryMethodKind::PullHttp, s)),
            )
            .collect()
    }

    /// The CoAP file server, if started: subscribe to its progress events.
    pub fn coap_server(&self) -> Option<&CoapFileServer> {
        self.coap.get()
    }

    /// The CoAPS file server, if started.
    pub fn coaps_server(&self) -> Option<&CoapFileServer> {
        self.coaps.get()
    }

    /// The HTTP file server, if started.
    pub fn http_server(&self) -> Option<&HttpFileServer> {
        self.http.get()
    }

    /// Has the CoAP and CoAPS file servers record their datagrams into
    /// `capture` (the LwM2M server's, so a case's capture shows its firmware
    /// pull beside its registration). Only before the first Package URI: a
    /// running file server keeps the capture it started with.
    pub fn record_into(&mut self, capture: crate::Capture) {
        self.capture = capture;
    }

    /// The capture the CoAP and CoAPS file servers record into.
    pub fn capture(&self) -> &crate::Capture {
        &self.capture
    }

    /// Stops the file servers that were started.
    pub async fn shutdown(self) {
        if let Some(coap) = self.coap.into_inner() {
            coap.shutdown().await;
        }
        if let Some(coaps) = self.coaps.into_inner() {
            coaps.shutdown().await;
        }
        if let Some(http) = self.http.into_inner() {
            http.shutdown().await;
        }
    }

    async fn coap(&self) -> Result<&CoapFileServer, FirmwareError> {
        self.coap
            .get_or_try_init(|| async {
                let addr = SocketAddr::new(self.bind_ip, 0);
                let bind_error = |source| FirmwareError::Bind {
                    what: "CoAP",
                    addr,
                    source,
                };
                let socket = tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(bind_error)?;
                let recorded =
                    crate::Recorded::new(socket, self.capture.clone(), crate::Carried::Coap)
                        .map_err(bind_error)?;
                CoapFileServer::serve(recorded, Arc::clone(&self.store))
            })
            .await
    }

    async fn coaps(&self) -> Result<&CoapFileServer, FirmwareError> {
        let credentials = self
            .credentials
            .clone()
            .ok_or(FirmwareError::NoCredentials)?;
        self.coaps
            .get_or_try_init(|| async {
                let addr = SocketAddr::new(self.bind_ip, 0);
                let bind_error = |source| FirmwareError::Bind {
                    what: "CoAPS",
                    addr,
                    source,
                };
                let socket = tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(bind_error)?;
                let transport = DtlsDatagramTransport::new(socket, &credentials)
                    .map_err(bind_error)?
                    .record_wire(self.capture.clone());
                let recorded = crate::Recorded::new(
                    transport,
                    self.capture.clone(),
                    crate::Carried::DecryptedCoap,
                )
                .map_err(bind_error)?;
                CoapFileServer::serve(recorded, Arc::clone(&self.store))
            })
            .await
    }

    async fn http(&self) -> Result<&HttpFileServer, FirmwareError> {
        self.http
            .get_or_try_init(|| {
                HttpFileServer::bind(SocketAddr::new(self.bind_ip, 0), Arc::clone(&self.store))
            })
            .await
    }

    fn offered_as(&self, name: &str, method: DeliveryMethodKind) {
        lock(&self.offered).insert(name.to_string(), method);
    }

    fn record_push(&self, progress: TransferProgress) {
        lock(&self.pushes).insert(progress.image.clone(), progress);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The most recent transfer of `image` (highest id).
fn latest(transfers: Vec<TransferStats>, image: &str) -> Option<TransferStats> {
    transfers
        .into_iter()
        .filter(|s| s.image == image)
        .max_by_key(|s| s.id)
}

fn empty_push(path: Path, total: usize) -> PushProgress {
    PushProgress {
        path,
        total,
        bytes: 0,
        blocks: 0,
        block_size: 0,
        initial_szx: 0,
        retransmissions: 0,
        renegotiations: 0,
        elapsed: Duration::ZERO,
        size1: None,
        finished: true,
    }
}

/// Loads the store, generating the fixture images first when `dir` holds
/// the generated fixtures' manifest and some image is missing.
fn load_or_generate(dir: &FsPath) -> Result<Store, FirmwareError> {
    match Store::load(dir) {
        Err(FirmwareError::ImageMissing { .. }) if holds_generated_manifest(dir) => {
            tracing::info!(dir = %dir.display(), "generating the firmware fixture images");
            generate_fixtures(dir)?;
            Store::load(dir)
        }
        other => other,
    }
}

fn holds_generated_manifest(dir: &FsPath) -> bool {
    let path = dir.join(MANIFEST_FILE);
    std::fs::read_to_string(&path).is_ok_and(|text| text == fixtures_manifest(&path).to_yaml())
}
