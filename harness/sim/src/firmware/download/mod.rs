//! Pulling a package from its Package URI into a slot file, on a thread of
//! its own so that the meter keeps answering its LwM2M server meanwhile
//! (a server observes State while the image downloads).
//!
//! The thread writes each piece to the slot durably, then reports the new
//! offset ([`DownloadEventKind::Progress`], every [`PROGRESS_STEP`] bytes);
//! the meter's loop records it in NV. A power cut therefore loses at most
//! the bytes after the last recorded offset, and the next boot resumes from
//! there ([`DownloadJob::offset`], with the ETag recorded alongside).
//!
//! Failures carry the reason object 5 (and object 9) report:
//! [`FailureKind`] → Update Result 2, 4, 7 or 9.

mod coap;
mod http;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use lwm2m::firmware::{PackageUri, ProtocolSupport, SoftwareResult, UpdateResult};

use super::slots::SlotWriter;
use crate::error::SimError;

/// Offsets are reported (and so recorded in NV) at least every this many bytes.
pub const PROGRESS_STEP: u64 = 4096;

/// Which object a download is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Object 5.
    Firmware,
    /// Object 9.
    Software,
}

/// Why a download ended without an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Larger than the slot.
    TooLarge,
    /// The server stopped answering, refused the connection or reset it.
    ConnectionLost,
    /// The URI names nothing the server has (4.04, HTTP 404) or cannot be resolved.
    InvalidUri,
    /// A scheme the device does not download from.
    UnsupportedProtocol,
    /// The transfer delivered bytes that cannot be an image (sizes disagree).
    Integrity,
}

impl FailureKind {
    /// Object 5's Update Result (Core §E.6, resource 5).
    pub fn update_result(self) -> UpdateResult {
        match self {
            FailureKind::TooLarge => UpdateResult::NotEnoughFlash,
            FailureKind::ConnectionLost => UpdateResult::ConnectionLost,
            FailureKind::InvalidUri => UpdateResult::InvalidUri,
            FailureKind::UnsupportedProtocol => UpdateResult::UnsupportedProtocol,
            FailureKind::Integrity => UpdateResult::IntegrityCheckFailure,
        }
    }

    /// Object 9's Update Result (registry, resource 9). Object 9 has no
    /// "unsupported protocol": a URI the device cannot use is Invalid URI.
    pub fn software_result(self) -> SoftwareResult {
        match self {
            FailureKind::TooLarge => SoftwareResult::NotEnoughStorage,
            FailureKind::ConnectionLost => SoftwareResult::ConnectionLost,
            FailureKind::InvalidUri | FailureKind::UnsupportedProtocol => {
                SoftwareResult::InvalidUri
            }
            FailureKind::Integrity => SoftwareResult::IntegrityCheckFailure,
        }
    }
}

/// A failure and what happened, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
}

impl Failure {
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        Failure {
            kind,
            reason: reason.into(),
        }
    }
}

/// What a download thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadEvent {
    pub target: Target,
    /// Which download (a cancelled one's late events are ignored).
    pub generation: u64,
    pub kind: DownloadEventKind,
}

impl DownloadEvent {
    /// Whether the event comes from `running`, the download `target`'s
    /// owner has going now: an event of another target, or a late one of a
    /// download since cancelled or replaced, is to be ignored.
    pub fn is_from(&self, target: Target, running: Option<&DownloadHandle>) -> bool {
        self.target == target && running.is_some_and(|d| d.generation == self.generation)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadEventKind {
    /// The slot durably holds `offset` bytes of the image with this ETag.
    Progress {
        offset: u64,
        etag: Option<Vec<u8>>,
    },
    /// The whole image (`size` bytes) is in the slot.
    Complete {
        size: u64,
    },
    Failed(Failure),
}

/// Where events go (the meter's inbox).
pub type Reporter = Arc<dyn Fn(DownloadEvent) + Send + Sync>;

/// One download to run.
#[derive(Debug, Clone)]
pub struct DownloadJob {
    pub target: Target,
    pub generation: u64,
    /// The Package URI as written.
    pub uri: String,
    /// The slot file to write.
    pub slot: PathBuf,
    /// Bytes already in the slot (from NV); 0 for a new download.
    pub offset: u64,
    /// The ETag the first `offset` bytes came with.
    pub etag: Option<Vec<u8>>,
    /// Block2 size exponent (CoAP).
    pub szx: u8,
    /// Largest image accepted (the slot size).
    pub limit: u64,
    /// Give up when nothing arrives for this long (`None`: the protocol's own limits).
    pub stall: Option<Duration>,
    /// Protocols the device downloads with (object 5 resource 8).
    pub protocols: Vec<ProtocolSupport>,
    /// The server account's PSK, for `coaps://` (DTLS 1.2 PSK).
    pub psk: Option<dtls::Psk>,
    /// Seeds CoAP message ids and tokens.
    pub seed: u64,
}

/// A running download; dropping it cancels it.
#[derive(Debug)]
pub struct DownloadHandle {
    pub generation: u64,
    cancel: Arc<AtomicBool>,
    _thread: Option<JoinHandle<()>>,
}

impl Drop for DownloadHandle {
    fn drop(&mut self) {
        // The thread notices within its poll interval and ends; not joined,
        // so that a blocked HTTP read never stalls the meter's loop.
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// Parses the URI (an unusable one is reported at once, as an event) and
/// starts the download thread.
pub fn spawn(job: DownloadJob, report: Reporter) -> Result<DownloadHandle, SimError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let generation = job.generation;
    let thread = {
        let cancel = Arc::clone(&cancel);
        std::thread::Builder::new()
            .name(format!("download-{generation}"))
            .spawn(move || run(job, &cancel, &report))
            .map_err(|e| SimError::Io {
                path: PathBuf::from("<download thread>"),
                source: e,
            })?
    };
    Ok(DownloadHandle {
        generation,
        cancel,
        _thread: Some(thread),
    })
}

/// Checks a Package URI before anything is fetched: an unusable one fails
/// with Invalid URI (7) or Unsupported Protocol (9).
pub fn check_uri(uri: &str, protocols: &[ProtocolSupport]) -> Result<PackageUri, Failure> {
    let parsed = PackageUri::parse(uri).map_err(|e| {
        let kind = if e.result == UpdateResult::UnsupportedProtocol {
            FailureKind::UnsupportedProtocol
        } else {
            FailureKind::InvalidUri
        };
        Failure::new(kind, e.to_string())
    })?;
    if !protocols.contains(&parsed.protocol) {
        return Err(Failure::new(
            FailureKind::UnsupportedProtocol,
            format!(
                "{} downloads are not supported by this device",
                parsed.protocol
            ),
        ));
    }
    Ok(parsed)
}

fn run(job: DownloadJob, cancel: &AtomicBool, report: &Reporter) {
    let send = |kind| {
        report(DownloadEvent {
            target: job.target,
            generation: job.generation,
            kind,
        })
    };
    let outcome = fetch(&job, cancel, report);
    if cancel.load(Ordering::Relaxed) {
        tracing::info!(generation = job.generation, "download cancelled");
        return;
    }
    match outcome {
        Ok(size) => {
            tracing::info!(uri = %job.uri, size, "download complete");
            send(DownloadEventKind::Complete { size });
        }
        Err(f) => {
            tracing::warn!(uri = %job.uri, reason = %f.reason, kind = ?f.kind, "download failed");
            send(DownloadEventKind::Failed(f));
        }
    }
}

fn fetch(job: &DownloadJob, cancel: &AtomicBool, report: &Reporter) -> Result<u64, Failure> {
    let uri = check_uri(&job.uri, &job.protocols)?;
    let writer = SlotWriter::open_at(&job.slot, job.offset)
        .map_err(|e| Failure::new(FailureKind::TooLarge, e.to_string()))?;
    let etag = if writer.len() == job.offset {
        job.etag.clone()
    } else {
        None
    };
    let mut sink = Sink {
        writer,
        reported: job.offset,
        report: Arc::clone(report),
        target: job.target,
        generation: job.generation,
        limit: job.limit,
        etag,
    };
    if sink.writer.len() != job.offset {
        // The slot lost bytes NV counted: start over rather than splice.
        sink.restart()?;
    }
    tracing::info!(uri = %job.uri, offset = sink.len(), szx = job.szx, "download starting");
    match uri.protocol {
        ProtocolSupport::Coap | ProtocolSupport::Coaps => {
            coap::fetch(job, &uri, cancel, &mut sink)?
        }
        ProtocolSupport::Http => http::fetch(job, cancel, &mut sink)?,
        other => {
            return Err(Failure::new(
                FailureKind::UnsupportedProtocol,
                format!("no {other} downloader"),
            ))
        }
    }
    Ok(sink.len())
}

/// The slot being written, and the reporting of its progress.
struct Sink {
    writer: SlotWriter,
    reported: u64,
    report: Reporter,
    target: Target,
    generation: u64,
    limit: u64,
    etag: Option<Vec<u8>>,
}

impl Sink {
    fn len(&self) -> u64 {
        self.writer.len()
    }

    /// Checks an announced total size against the slot.
    fn check_size(&self, size: u64) -> Result<(), Failure> {
        if size > self.limit {
            return Err(Failure::new(
                FailureKind::TooLarge,
                format!(
                    "the image is {size} bytes, the slot holds {} bytes",
                    self.limit
                ),
            ));
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.check_size(self.len() + bytes.len() as u64)?;
        self.writer
            .append(bytes)
            .map_err(|e| Failure::new(FailureKind::TooLarge, e.to_string()))?;
        if self.len() - self.reported >= PROGRESS_STEP {
            self.progress();
        }
        Ok(())
    }

    fn set_etag(&mut self, etag: Option<Vec<u8>>) {
        self.etag = etag;
    }

    fn progress(&mut self) {
        self.reported = self.len();
        (self.report)(DownloadEvent {
            target: self.target,
            generation: self.generation,
            kind: DownloadEventKind::Progress {
                offset: self.len(),
                etag: self.etag.clone(),
            },
        });
    }

    /// Empties the slot: the image changed, or the server ignored the range.
    fn restart(&mut self) -> Result<(), Failure> {
        tracing::info!(from = self.len(), "download restarts from byte 0");
        self.writer
            .restart()
            .map_err(|e| Failure::new(FailureKind::TooLarge, e.to_string()))?;
        self.etag = None;
        self.progress();
        Ok(())
    }
}

/// Resolves a host and port (a name or an address literal).
fn resolve(host: &str, port: u16) -> Result<std::net::SocketAddr, Failure> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Failure::new(
                FailureKind::InvalidUri,
                format!("host {host:?} cannot be resolved"),
            )
        })
}
