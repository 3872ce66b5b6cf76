//! The LwM2M server role, sans-IO: registration interface (LwM2M 1.1 Core §6.2,
//! §8.2), device management and information reporting (§6.3, §6.4) towards any
//! number of registered clients.
//!
//! Drive it like quinn-proto's `Connection`: feed `handle_datagram` /
//! `handle_timeout` with the current time, then drain `poll_transmit`,
//! `poll_event` and `poll_timeout`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::coap::Transmit;
use crate::format::{ContentFormat, Link, Record};
use crate::model::Registry;
use crate::path::Path;

/// Identifies one request the server sent, so its response event can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub registry: Registry,
    /// Format asked for in Read/Observe when the request names none.
    pub default_format: ContentFormat,
    /// Seeds message ids, tokens and location names, so tests are deterministic.
    pub seed: u64,
}

/// A client's registration as the server holds it (LwM2M 1.1 Core §6.2.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub endpoint: String,
    /// Location-Path the server assigned, e.g. `/rd/5a3f`.
    pub location: String,
    pub lifetime: Duration,
    pub lwm2m_version: String,
    pub binding: String,
    pub queue_mode: bool,
    pub sms_number: Option<String>,
    /// The object list from the Register payload (`</3/0>,</4/0>,...`).
    pub objects: Vec<Link>,
    pub peer: SocketAddr,
    pub registered_at: Instant,
    pub updated_at: Instant,
}

impl Registration {
    /// Object instances announced in the object list (links with an instance id).
    pub fn instances(&self) -> Vec<Path> {
        self.objects.iter().filter_map(|l| l.path()).filter(|p| p.depth() == 2).collect()
    }
    /// Objects announced, with or without instances.
    pub fn has_object(&self, object: u16) -> bool {
        self.objects.iter().filter_map(|l| l.path()).any(|p| p.object_id() == Some(object))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// PUT: the target is replaced.
    Replace,
    /// POST: only the given resources change.
    PartialUpdate,
}

/// Write-Attributes notification attributes (LwM2M 1.1 Core §5.1.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
    pub gt: Option<f64>,
    pub lt: Option<f64>,
    pub st: Option<f64>,
}

/// A device management or information reporting request.
#[derive(Debug, Clone, PartialEq)]
pub enum DmRequest {
    Read { path: Path, format: Option<ContentFormat> },
    Write { path: Path, mode: WriteMode, records: Vec<Record>, format: Option<ContentFormat> },
    Execute { path: Path, arguments: Option<String> },
    Discover { path: Path },
    Create { object: Path, records: Vec<Record>, format: Option<ContentFormat> },
    Delete { path: Path },
    WriteAttributes { path: Path, attributes: Attributes },
    Observe { path: Path, format: Option<ContentFormat> },
    CancelObserve { path: Path },
}

/// What a response carried, decoded by its Content-Format.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    None,
    Records(Vec<Record>),
    Links(Vec<Link>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// CoAP response code as class.detail, e.g. 205 for 2.05 Content.
    pub code: u16,
    pub format: Option<ContentFormat>,
    pub content: Content,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("no registration for endpoint {0:?}")]
    NotRegistered(String),
    #[error("no response after {attempts} transmissions")]
    Timeout { attempts: u32 },
    #[error("the client answered with a Reset")]
    Reset,
    #[error("response could not be decoded: {0}")]
    Decode(String),
    #[error("the registration ended before the response came")]
    RegistrationEnded,
    #[error("invalid request: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Registered(Registration),
    Updated(Registration),
    Deregistered { endpoint: String },
    /// The lifetime passed without an Update (LwM2M 1.1 Core §6.2.2).
    Expired { endpoint: String },
    Response { id: RequestId, endpoint: String, result: Result<Response, RequestError> },
    /// A notification for an observation started by the Observe request `observation`.
    Notification { observation: RequestId, endpoint: String, path: Path, records: Vec<Record> },
    /// A datagram was not understood; it was dropped (and answered with Reset when confirmable).
    Malformed { peer: SocketAddr, reason: String },
}

pub struct Server {
    _config: ServerConfig,
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        Server { _config: config }
    }
    pub fn registry(&self) -> &Registry {
        &self._config.registry
    }
    pub fn handle_datagram(&mut self, _now: Instant, _peer: SocketAddr, _datagram: &[u8]) {
        todo!()
    }
    pub fn handle_timeout(&mut self, _now: Instant) {
        todo!()
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        todo!()
    }
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        todo!()
    }
    /// The earliest instant at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn registration(&self, _endpoint: &str) -> Option<&Registration> {
        todo!()
    }
    pub fn registrations(&self) -> Vec<&Registration> {
        todo!()
    }
    /// Queues a request to a registered endpoint; its outcome comes back as
    /// `ServerEvent::Response` with the returned id (and, for Observe, later
    /// `ServerEvent::Notification`s carrying the same id).
    pub fn request(&mut self, _now: Instant, _endpoint: &str, _request: DmRequest) -> Result<RequestId, RequestError> {
        todo!()
    }
}
