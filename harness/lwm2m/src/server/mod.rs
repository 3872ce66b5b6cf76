//! The LwM2M server role, sans-IO: registration interface (LwM2M 1.1 Core §6.2,
//! §8.2), device management and information reporting (§6.3, §6.4) towards any
//! number of registered clients.
//!
//! Drive it like quinn-proto's `Connection`: feed `handle_datagram` /
//! `handle_timeout` with the current time, then drain `poll_transmit`,
//! `poll_event` and `poll_timeout`.
//!
//! Registrations live at `/rd/<hex sequence number>` (`expiry.rs`: never
//! reused, never retried); a Register from an endpoint
//! already registered replaces the old registration (its observations and
//! requests in flight end). Requests are Confirmable and retransmitted by
//! the CoAP layer ([`crate::coap::MessageLayer`]); notifications whose token
//! names no observation are answered with Reset, which cancels them at the
//! client (RFC 7641 §3.6), and stale ones are dropped (RFC 7641 §3.4).
//!
//! A body too large for one datagram — a firmware image for /5/0/0 — is
//! written with [`DmRequest::WriteBlockwise`]: one Confirmable PUT per Block1
//! block (RFC 7959 §2.5), the block size renegotiated down when the device
//! answers 4.13 (§2.9.3), progress published as [`ServerEvent::PushProgress`]
//! and the device's final answer as the usual [`ServerEvent::Response`].
//!
//! The other way round (RFC 7959): a response or notification that comes
//! with Block2 M=1 is completed before anything is decoded — the server asks
//! for each next block and delivers the whole body once (`fetch.rs`); a
//! Register or Update sent with Block1 is reassembled, each block but the
//! last answered 2.31 Continue. A request carrying a critical option the
//! registration interface does not implement gets 4.02 Bad Option (RFC 7252
//! §5.4.1, [`crate::coap::critical`]).

pub mod composite;
mod expiry;
mod fetch;
mod pending;
mod push;
mod queue;
mod registration;
mod request;
mod security;

pub use push::{bytes_per_second, PushProgress, PUSH_PROGRESS_EVERY_BLOCKS};

pub use queue::{QueueEvent, DEFAULT_AWAKE_WINDOW};
pub use registration::{
    check_register, check_update, parse as parse_registration, ObjectList, ParamError,
    RegistrationParams, DEFAULT_LIFETIME, SUPPORTED_VERSIONS, UNLISTED_OBJECTS,
};
pub use request::attribute_query;
pub use security::{Authorizer, SecurityEvent};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use crate::coap::block::{Block1Inbox, Block1Outcome, BlockKind, MAX_SZX};
use crate::coap::critical;
use crate::coap::observe::ObserveSeq;
use crate::coap::{code, options, ExchangeEvent, ExchangeId, MessageLayer, Transmit};
use crate::format::{ContentFormat, Link, ObjectLinks, Record};
use crate::model::Registry;
use crate::path::Path;

/// Largest Register or Update body the server reassembles from Block1
/// blocks (RFC 7959 §2.5); a larger one is refused 4.13 with this as Size1.
/// An object list of thousands of instances fits.
pub const REGISTRATION_BODY_LIMIT: usize = 64 * 1024;

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
    /// The object list from the Register payload (`</3/0>,</4/0>,...`),
    /// targets relative to `root`, held compactly ([`ObjectLinks`]: a
    /// registration lives long and there may be 100,000 of them).
    pub objects: ObjectLinks,
    /// The alternate path the client's objects live under (`/lwm2m`), or
    /// `""` for the default root (LwM2M 1.1 Core §6.2.1); requests carry it
    /// before the object path.
    pub root: String,
    /// Content-Formats the client listed in its root link's `ct`.
    pub content_formats: Vec<u16>,
    pub peer: SocketAddr,
    pub registered_at: Instant,
    pub updated_at: Instant,
}

impl Registration {
    /// Object instances announced in the object list (links with an instance id).
    pub fn instances(&self) -> Vec<Path> {
        self.objects.instances().collect()
    }
    /// When the registration expires unless updated (LwM2M 1.1 Core
    /// §6.2.2); `None` for a lifetime too long for the clock to represent,
    /// which is as good as never for a test run. A peer's `lt` can be any
    /// number up to 2^64-1, so this never adds unchecked.
    pub fn expires_at(&self) -> Option<Instant> {
        self.updated_at.checked_add(self.lifetime)
    }
    /// Objects announced, with or without instances.
    pub fn has_object(&self, object: u16) -> bool {
        self.objects.has_object(object)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// PUT: the target is replaced.
    Replace,
    /// POST: only the given resources change.
    PartialUpdate,
}

/// Write-Attributes notification attributes (LwM2M 1.1 Core §5.1.2,
/// Table 5.1.2-1): `epmin`/`epmax` (evaluation periods) are new in 1.1;
/// ETS int-261 writes them on a resource instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
    pub gt: Option<f64>,
    pub lt: Option<f64>,
    pub st: Option<f64>,
    pub epmin: Option<u32>,
    pub epmax: Option<u32>,
    /// Attributes to remove: sent as the bare name (`?pmin`), which Core
    /// §5.1.2 / Transport §6.3 make "remove this attribute"; how a case
    /// leaves the device as it found it (the ETS procedures end so).
    pub unset: Vec<String>,
}

/// A device management or information reporting request.
#[derive(Debug, Clone, PartialEq)]
pub enum DmRequest {
    Read {
        path: Path,
        format: Option<ContentFormat>,
    },
    Write {
        path: Path,
        mode: WriteMode,
        records: Vec<Record>,
        format: Option<ContentFormat>,
    },
    Execute {
        path: Path,
        arguments: Option<String>,
    },
    Discover {
        path: Path,
    },
    Create {
        object: Path,
        records: Vec<Record>,
        format: Option<ContentFormat>,
    },
    Delete {
        path: Path,
    },
    WriteAttributes {
        path: Path,
        attributes: Attributes,
    },
    Observe {
        path: Path,
        format: Option<ContentFormat>,
    },
    CancelObserve {
        path: Path,
    },
    /// A Write (PUT, replace) of `body`, already encoded in `format`, sent
    /// block-wise with Block1 (RFC 7959 §2.5) starting with blocks of
    /// 2^(`szx`+4) bytes: the Push delivery of a firmware image into /5/0/0
    /// (LwM2M 1.1 Core §E.6, `format` Opaque). The device may ask for
    /// smaller blocks (4.13 with Block1, §2.9.3); the final response (2.04
    /// Changed expected) or refusal (e.g. 4.13 with Size1) is the
    /// request's `Response`. Progress comes as [`ServerEvent::PushProgress`].
    WriteBlockwise {
        path: Path,
        format: ContentFormat,
        body: Vec<u8>,
        szx: u8,
    },
    /// Read-Composite (LwM2M 1.1 Core §6.3.8): FETCH / with the paths as a
    /// SenML list; `format` (SenML JSON or CBOR) writes the list and is
    /// asked for the answer; `None` picks one the client listed
    /// ([`composite::default_format`]). The answer's records carry absolute paths.
    ReadComposite {
        paths: Vec<Path>,
        format: Option<ContentFormat>,
    },
    /// Write-Composite (Core §6.3.9): iPATCH / with records at absolute paths.
    WriteComposite {
        records: Vec<Record>,
        format: Option<ContentFormat>,
    },
    /// Observe-Composite (Core §6.4.3): the Read-Composite FETCH with
    /// Observe 0; notifications come as [`ServerEvent::Notification`] at `/`.
    ObserveComposite {
        paths: Vec<Path>,
        format: Option<ContentFormat>,
    },
    /// Cancel Observation-Composite (Core §6.4.4) of the newest
    /// Observe-Composite of exactly these paths: its FETCH again with
    /// Observe 1 and its token.
    CancelObserveComposite {
        paths: Vec<Path>,
    },
}

impl DmRequest {
    /// The path the request targets (the object, for Create).
    pub fn path(&self) -> Path {
        match self {
            DmRequest::Read { path, .. }
            | DmRequest::Write { path, .. }
            | DmRequest::Execute { path, .. }
            | DmRequest::Discover { path }
            | DmRequest::Delete { path }
            | DmRequest::WriteAttributes { path, .. }
            | DmRequest::Observe { path, .. }
            | DmRequest::CancelObserve { path }
            | DmRequest::WriteBlockwise { path, .. } => *path,
            DmRequest::Create { object, .. } => *object,
            // Composite operations address the root; their records carry absolute paths.
            DmRequest::ReadComposite { .. }
            | DmRequest::WriteComposite { .. }
            | DmRequest::ObserveComposite { .. }
            | DmRequest::CancelObserveComposite { .. } => Path::ROOT,
        }
    }
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
    /// Queue mode (`queue.rs`): the request was held for a sleeping client
    /// that never talked again before its registration expired.
    #[error("held {held_for:?} in queue mode and never sent: the client did not wake before its registration expired (lifetime {lifetime:?})")]
    NeverWoke {
        held_for: Duration,
        lifetime: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// Shared with the server's table (and the snapshot beside it): an
    /// event history of thousands of registrations holds each once (issue 16).
    Registered(Arc<Registration>),
    Updated(Arc<Registration>),
    Deregistered {
        endpoint: String,
    },
    /// The lifetime passed without an Update (LwM2M 1.1 Core §6.2.2).
    Expired {
        endpoint: String,
    },
    /// The server itself dropped the registration (see
    /// [`Server::discard_registration`]); it was at `location`.
    Discarded {
        endpoint: String,
        location: String,
    },
    Response {
        id: RequestId,
        endpoint: String,
        result: Result<Response, RequestError>,
    },
    /// A notification for an observation started by the Observe request `observation`.
    Notification {
        observation: RequestId,
        endpoint: String,
        path: Path,
        records: Vec<Record>,
    },
    /// A datagram was not understood; it was dropped (and answered with Reset when confirmable).
    Malformed {
        peer: SocketAddr,
        reason: String,
    },
    /// Figures of a [`DmRequest::WriteBlockwise`] in flight (`id` is the
    /// request's): after the first block, every
    /// [`PUSH_PROGRESS_EVERY_BLOCKS`] blocks, on each renegotiation, and
    /// once with `finished` set just before the request's `Response`.
    PushProgress {
        id: RequestId,
        endpoint: String,
        progress: PushProgress,
    },
    /// A Register, Update or De-register the [`Authorizer`] refused: the
    /// client authenticated as `identity` but asked to act as `endpoint`.
    /// It was answered 4.03 Forbidden.
    Forbidden {
        peer: SocketAddr,
        endpoint: String,
        identity: Option<String>,
        /// `Register`, `Update` or `De-register`.
        operation: String,
        reason: String,
    },
    /// A report of the secure transport (a DTLS handshake or drop); the
    /// transport shell publishes these, the core never does.
    Security(SecurityEvent),
    /// What queue mode did: a client fell asleep, a request was held for
    /// it or sent when it woke (LwM2M 1.1 Core §6.5, `queue.rs`).
    Queue(QueueEvent),
    /// A registered client pushed `records` with Send (LwM2M 1.1 Core
    /// §6.4.6, POST /dp); it was answered 2.04 Changed.
    Sent {
        endpoint: String,
        records: Vec<Record>,
    },
}

/// Entry counts of the server's tables and indexes ([`Server::bookkeeping`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bookkeeping {
    pub registrations: usize,
    pub locations: usize,
    /// Addresses in the Send sender index.
    pub peers: usize,
    pub deadlines: usize,
    pub requests_in_flight: usize,
    /// Endpoints in the requests-in-flight index.
    pub endpoints_with_requests: usize,
    pub observations: usize,
    /// Endpoints in the observations index.
    pub endpoints_observed: usize,
    pub composite_observations: usize,
}

/// A request in flight.
#[derive(Debug)]
struct Pending {
    id: RequestId,
    /// Shared with the registration's keys (one name per device, issue 16).
    endpoint: Arc<str>,
    path: Path,
    /// For Observe: the token, to record the observation when the first response comes.
    observe_token: Option<Vec<u8>>,
    /// For WriteBlockwise: the upload, moved to the next block's exchange.
    push: Option<push::Push>,
    /// The request as built, before token and alternate path: what the
    /// following blocks repeat when the response comes block-wise.
    template: Option<Packet>,
    /// A Block2 body being fetched (RFC 7959 §2.4), moved to each next
    /// block's exchange; for a notification, `id` is the observation's.
    fetch: Option<fetch::Fetch>,
}

/// An established observation (RFC 7641 §3), keyed by its token.
#[derive(Debug)]
struct Observation {
    id: RequestId,
    endpoint: Arc<str>,
    path: Path,
    seq: Option<ObserveSeq>,
}

/// The LwM2M server role towards any number of clients.
pub struct Server {
    config: ServerConfig,
    layer: MessageLayer,
    /// By endpoint name. Shared (`Arc`) with the server crate's snapshot,
    /// so a fleet's registrations are held once, not once per reader
    /// (issue 16); an Update copies only a registration a reader still holds.
    /// The key is the endpoint name every index of the server shares (an
    /// `Arc<str>`: one allocation per device, not one per map).
    registrations: BTreeMap<Arc<str>, Arc<Registration>>,
    /// Location id (the number of `/rd/5a3f`, see `expiry.rs`) to endpoint name.
    locations: HashMap<u64, Arc<str>>,
    /// The registration each address last registered or updated from, so
    /// that a Send (`POST /dp`, which names no registration) finds its
    /// sender without a scan of the fleet.
    by_peer: HashMap<SocketAddr, Arc<str>>,
    /// When each registration expires, in time order (see `expiry.rs`).
    deadlines: expiry::Deadlines,
    /// The next location names; started at the first Register, with the
    /// draw the old random scheme made there (see `expiry.rs`).
    location_ids: Option<expiry::LocationIds>,
    pending: pending::PendingTable,
    /// Register and Update bodies arriving in Block1 blocks, by (peer, Uri-Path).
    block1: Block1Inbox<(SocketAddr, Vec<String>)>,
    observations: HashMap<Vec<u8>, Observation>,
    /// The tokens of each endpoint's observations, so that ending one
    /// registration does not scan every observation of the fleet. It may
    /// hold tokens of observations that ended since (checked on use); each
    /// insert prunes that endpoint's list.
    observed_by: HashMap<Arc<str>, Vec<Vec<u8>>>,
    /// The paths of each Observe-Composite, by its request id (see `composite.rs`).
    composite_observations: HashMap<RequestId, (ContentFormat, Vec<Path>)>,
    /// The ids in `composite_observations` of each endpoint, so that
    /// pruning them looks at that client's only.
    composite_by: HashMap<Arc<str>, Vec<RequestId>>,
    events: VecDeque<ServerEvent>,
    next_request: u64,
    /// See [`Server::set_authorizer`].
    authorizer: Option<Authorizer>,
    /// The authenticated identity of the datagram being handled.
    identity: Option<String>,
    /// Queue-mode clients: awake or asleep, requests held (`queue.rs`).
    queue: queue::QueueMode,
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        let layer = MessageLayer::new(config.seed);
        Server {
            config,
            layer,
            registrations: BTreeMap::new(),
            locations: HashMap::new(),
            by_peer: HashMap::new(),
            deadlines: expiry::Deadlines::default(),
            location_ids: None,
            pending: pending::PendingTable::default(),
            block1: Block1Inbox::new(REGISTRATION_BODY_LIMIT, MAX_SZX),
            observations: HashMap::new(),
            observed_by: HashMap::new(),
            composite_observations: HashMap::new(),
            composite_by: HashMap::new(),
            events: VecDeque::new(),
            next_request: 1,
            authorizer: None,
            identity: None,
            queue: queue::QueueMode::new(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.config.registry
    }

    /// Handles one datagram from `peer`. A registration whose lifetime has
    /// run out by `now` is expired first, whether or not `handle_timeout`
    /// was called for that instant: an Update that arrives after the
    /// lifetime gets 4.04 Not Found, never a second life (LwM2M 1.1 Core
    /// §6.2.2; the driver may well see the datagram before the timer).
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.expire_registrations(now);
        self.layer.handle_datagram(now, peer, datagram);
        self.process_layer_events(now);
        self.queue_heard_from(now, peer);
    }

    /// Retransmits, times out requests and expires registrations whose
    /// lifetime passed without an Update (LwM2M 1.1 Core §6.2.2).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.update_push_transmissions();
        self.process_layer_events(now);
        self.expire_registrations(now);
        self.queue_timeouts(now);
    }

    /// Ends every registration not refreshed within its lifetime: the
    /// registration lives for `lt` seconds after the Register or the last
    /// Update and is gone at that very instant (`updated_at + lt <= now`),
    /// with its observations and requests in flight (LwM2M 1.1 Core §6.2.2).
    /// Only the due deadlines are visited (`expiry.rs`), so the cost per
    /// datagram does not grow with the number registered; a deadline that
    /// no longer matches its registration is dropped unheeded.
    fn expire_registrations(&mut self, now: Instant) {
        let mut expired = Vec::new();
        while let Some((at, endpoint)) = self.deadlines.pop_due(now) {
            if self
                .registrations
                .get(&endpoint)
                .is_some_and(|r| r.expires_at() == Some(at))
            {
                expired.push(endpoint);
            }
        }
        for endpoint in expired {
            tracing::info!(%endpoint, "registration expired");
            self.queue_fail_held(now, &endpoint, true);
            self.end_registration(now, &endpoint);
            self.events.push_back(ServerEvent::Expired {
                endpoint: endpoint.to_string(),
            });
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The earliest instant at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.deadlines.next(),
            self.layer.poll_timeout(),
            self.queue.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What the CoAP layer's duplicate cache holds (RFC 7252 §4.5).
    pub fn duplicate_cache(&self) -> crate::coap::DuplicateCacheStats {
        self.layer.duplicate_cache()
    }

    /// When `handle_timeout` would give duplicate-cache memory back
    /// ([`MessageLayer::poll_housekeeping`]); not in `poll_timeout`, so
    /// that driving the server to idle is unchanged.
    pub fn poll_housekeeping(&self) -> Option<Instant> {
        self.layer.poll_housekeeping()
    }

    pub fn registration(&self, endpoint: &str) -> Option<&Registration> {
        self.registrations.get(endpoint).map(|r| &**r)
    }

    /// The registration itself, shared rather than copied: what a snapshot
    /// of the registrations beside the server holds.
    pub fn registration_shared(&self, endpoint: &str) -> Option<std::sync::Arc<Registration>> {
        self.registrations.get(endpoint).cloned()
    }

    /// How many entries each index of the server holds: what a test checks
    /// to see that an ended registration leaves nothing behind (issue 16).
    pub fn bookkeeping(&self) -> Bookkeeping {
        Bookkeeping {
            registrations: self.registrations.len(),
            locations: self.locations.len(),
            peers: self.by_peer.len(),
            deadlines: self.deadlines.len(),
            requests_in_flight: self.pending.len(),
            endpoints_with_requests: self.pending.endpoints_indexed(),
            observations: self.observations.len(),
            endpoints_observed: self.observed_by.len(),
            composite_observations: self.composite_observations.len(),
        }
    }

    /// The registration with the endpoint name the server keys it by, both
    /// shared: a snapshot beside the server holds them without a copy of
    /// either (issue 16).
    pub fn registration_entry(&self, endpoint: &str) -> Option<(Arc<str>, Arc<Registration>)> {
        self.registrations
            .get_key_value(endpoint)
            .map(|(k, r)| (k.clone(), r.clone()))
    }

    pub fn registrations(&self) -> Vec<&Registration> {
        self.registrations.values().map(|r| &**r).collect()
    }

    /// Queues a request to a registered endpoint; its outcome comes back as
    /// `ServerEvent::Response` with the returned id (and, for Observe, later
    /// `ServerEvent::Notification`s carrying the same id).
    ///
    /// Requests are sent Confirmable. Cancel-Observe reuses the observation's
    /// token (RFC 7641 §3.6) and forgets the observation at once, so that
    /// notifications crossing the cancel on the wire are answered with Reset.
    pub fn request(
        &mut self,
        now: Instant,
        endpoint: &str,
        request: DmRequest,
    ) -> Result<RequestId, RequestError> {
        self.expire_registrations(now);
        let peer = self
            .registrations
            .get(endpoint)
            .map(|r| r.peer)
            .ok_or_else(|| RequestError::NotRegistered(endpoint.to_string()))?;
        if self.queue.is_asleep(endpoint, now) {
            return self.hold_request(now, endpoint, request);
        }
        if let DmRequest::WriteBlockwise {
            path,
            format,
            body,
            szx,
        } = request
        {
            return self.start_push(now, endpoint, peer, path, format, body, szx);
        }
        let default = self
            .registrations
            .get(endpoint)
            .map_or(self.config.default_format, |r| {
                request::preferred_format(self.config.default_format, &r.content_formats)
            });
        let id = RequestId(self.next_request);
        let mut packet = match self.build_composite(endpoint, &request)? {
            Some(packet) => packet,
            None => request::build(&request, &self.config.registry, default)?,
        };
        // A Write-Composite larger than one block goes with Block1 (composite.rs).
        if let Some(id) = self.write_composite_blockwise(now, endpoint, peer, &request, &packet)? {
            return Ok(id);
        }
        let path = request::target(&request);
        let mut observe_token = None;
        match &request {
            DmRequest::ObserveComposite { .. } | DmRequest::CancelObserveComposite { .. } => {
                let (token, observing) = self.composite_token(endpoint, id, &request)?;
                packet.set_token(token.clone());
                observe_token = observing.then_some(token);
            }
            DmRequest::Observe { .. } => {
                let token = self.layer.new_token();
                packet.set_token(token.clone());
                observe_token = Some(token);
            }
            DmRequest::CancelObserve { path } => {
                // Of several observations of one path, the newest is cancelled.
                let token = self
                    .newest_observation(endpoint, |o| o.path == *path)
                    .ok_or_else(|| {
                        RequestError::Invalid(format!("no observation of {path} on {endpoint}"))
                    })?;
                self.observations.remove(&token);
                packet.set_token(token);
            }
            _ => {}
        }
        self.next_request += 1;
        let template = packet.clone();
        let exchange = self.send_request(now, endpoint, peer, packet);
        self.pending.insert(
            exchange,
            Pending {
                id,
                endpoint: self.endpoint_key(endpoint),
                path,
                observe_token,
                push: None,
                template: Some(template),
                fetch: None,
            },
        );
        Ok(id)
    }

    /// Sends a Confirmable request to a registered client, its Uri-Path put
    /// under the alternate path the client registered with (LwM2M 1.1 Core
    /// §6.2.1: `</lwm2m>;rt="oma.lwm2m"` makes /3/0 reachable as /lwm2m/3/0).
    fn send_request(
        &mut self,
        now: Instant,
        endpoint: &str,
        peer: SocketAddr,
        mut packet: Packet,
    ) -> ExchangeId {
        let root = self
            .registrations
            .get(endpoint)
            .map(|r| r.root.as_str())
            .unwrap_or("");
        if !root.is_empty() {
            let mut segments: Vec<Vec<u8>> = root
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect();
            if let Some(path) = packet.get_option(CoapOption::UriPath) {
                segments.extend(path.iter().cloned());
            }
            packet.clear_option(CoapOption::UriPath);
            for segment in segments {
                packet.add_option(CoapOption::UriPath, segment);
            }
        }
        self.layer.send(now, peer, packet, true)
    }

    /// Starts a [`DmRequest::WriteBlockwise`]: sends block 0.
    #[allow(clippy::too_many_arguments)]
    fn start_push(
        &mut self,
        now: Instant,
        endpoint: &str,
        peer: SocketAddr,
        path: Path,
        format: ContentFormat,
        body: Vec<u8>,
        szx: u8,
    ) -> Result<RequestId, RequestError> {
        if path.depth() < 2 {
            return Err(RequestError::Invalid(format!(
                "Write needs an instance or resource path, not {path}"
            )));
        }
        let total = body.len();
        let mut push = push::Push::new(now, path, format, body, szx)
            .map_err(|e| RequestError::Invalid(format!("Block1 push to {path}: {e}")))?;
        let Some(packet) = push.next_request() else {
            return Err(RequestError::Invalid(format!(
                "Block1 push to {path}: nothing to send"
            )));
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        tracing::info!(%endpoint, %path, bytes = total, szx, "Block1 push started");
        let exchange = self.send_request(now, endpoint, peer, packet);
        self.pending.insert(
            exchange,
            Pending {
                id,
                endpoint: self.endpoint_key(endpoint),
                path,
                observe_token: None,
                push: Some(push),
                template: None,
                fetch: None,
            },
        );
        Ok(id)
    }

    /// The figures of the Block1 push `id` while it is in flight (`None`
    /// once it ended: the last figures are in the final
    /// [`ServerEvent::PushProgress`]).
    pub fn push_progress(&self, id: RequestId) -> Option<PushProgress> {
        self.pending
            .values()
            .find(|p| p.id == id)
            .and_then(|p| p.push.as_ref())
            .map(push::Push::progress)
    }

    /// A response to a block of a push: send the next block or finish.
    fn handle_push_response(
        &mut self,
        now: Instant,
        mut pending: Pending,
        mut push: push::Push,
        message: Packet,
    ) {
        let renegotiations = push.renegotiations();
        let step = push.handle_response(now, &message);
        let renegotiated = push.renegotiations() > renegotiations;
        let result = match step {
            push::PushStep::Next(packet) => {
                let peer = self.registrations.get(&pending.endpoint).map(|r| r.peer);
                if let Some(peer) = peer {
                    if push.progress_due(renegotiated) {
                        self.publish_push_progress(&pending, &push);
                    }
                    let exchange = self.send_request(now, &pending.endpoint, peer, packet);
                    pending.push = Some(push);
                    self.pending.insert(exchange, pending);
                    return;
                }
                push.abort(now, None);
                Err(RequestError::RegistrationEnded)
            }
            push::PushStep::Complete(code) | push::PushStep::Refused(code) => {
                tracing::debug!(endpoint = %pending.endpoint, path = %pending.path, code, "final answer to the Block1 push");
                request::decode(&message, &pending.path, &self.config.registry)
            }
            push::PushStep::Violation(e) => Err(RequestError::Decode(format!(
                "Block1 push to {}: {e}",
                pending.path
            ))),
        };
        let progress = push.progress();
        tracing::info!(endpoint = %pending.endpoint, %progress, "Block1 push ended");
        self.publish_push_progress(&pending, &push);
        self.events.push_back(ServerEvent::Response {
            id: pending.id,
            endpoint: pending.endpoint.to_string(),
            result,
        });
    }

    fn publish_push_progress(&mut self, pending: &Pending, push: &push::Push) {
        self.events.push_back(ServerEvent::PushProgress {
            id: pending.id,
            endpoint: pending.endpoint.to_string(),
            progress: push.progress(),
        });
    }

    /// A request ended without a response: a push among them publishes its
    /// final figures first; the rest of a block-wise notification is only
    /// logged (the observation goes on, the next notification may arrive whole).
    fn end_without_response(
        &mut self,
        now: Instant,
        mut pending: Pending,
        transmissions: Option<u32>,
        error: RequestError,
    ) {
        if pending
            .fetch
            .as_ref()
            .is_some_and(fetch::Fetch::is_notification)
        {
            tracing::warn!(endpoint = %pending.endpoint, path = %pending.path, %error, "the rest of a block-wise notification never came; value dropped");
            return;
        }
        if let Some(mut push) = pending.push.take() {
            push.abort(now, transmissions);
            self.publish_push_progress(&pending, &push);
        }
        self.events.push_back(ServerEvent::Response {
            id: pending.id,
            endpoint: pending.endpoint.to_string(),
            result: Err(error),
        });
    }

    /// After retransmissions: each push's block in flight learns how often
    /// it has been sent.
    fn update_push_transmissions(&mut self) {
        for exchange in self.pending.push_exchanges() {
            let transmissions = self.layer.transmissions(exchange);
            if let (Some(push), Some(t)) = (
                self.pending
                    .get_mut(&exchange)
                    .and_then(|p| p.push.as_mut()),
                transmissions,
            ) {
                push.set_transmissions(t);
            }
        }
    }

    /// `endpoint` as the registration table's shared key, so that an
    /// index holding it adds no copy of the name (a fresh one if the
    /// endpoint is not registered, which the callers have ruled out).
    fn endpoint_key(&self, endpoint: &str) -> Arc<str> {
        self.registrations
            .get_key_value(endpoint)
            .map_or_else(|| Arc::from(endpoint), |(k, _)| k.clone())
    }

    /// Forgets the newest observation of `path` on `endpoint` without
    /// telling the client, and returns its token: the "cancel by Reset" of
    /// RFC 7641 §3.6 (LwM2M 1.1 Core §6.4.2, ETS int-302). The client's
    /// next notification then names no observation and is answered with
    /// Reset, which ends the observation there. `None` when there is no such
    /// observation.
    pub fn forget_observation(&mut self, endpoint: &str, path: Path) -> Option<Vec<u8>> {
        let token = self.newest_observation(endpoint, |o| o.path == path)?;
        self.observations.remove(&token);
        Some(token)
    }

    /// Ids of the observations currently established with an endpoint, and their paths.
    pub fn observations(&self, endpoint: &str) -> Vec<(RequestId, Path)> {
        let mut v: Vec<_> = self
            .observation_tokens(endpoint)
            .iter()
            .filter_map(|t| self.observations.get(t))
            .map(|o| (o.id, o.path))
            .collect();
        v.sort();
        v
    }

    fn process_layer_events(&mut self, now: Instant) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                ExchangeEvent::Request { peer, message } => self.handle_request(now, peer, message),
                ExchangeEvent::Response {
                    id,
                    peer: _,
                    message,
                } => self.handle_response(now, id, message),
                ExchangeEvent::Unsolicited { peer, message } => {
                    self.handle_notification(now, peer, message)
                }
                ExchangeEvent::Acknowledged { .. } => {}
                ExchangeEvent::Reset { id, peer, token } => {
                    if let Some(p) = id.and_then(|id| self.pending.remove(&id)) {
                        self.end_without_response(now, p, None, RequestError::Reset);
                    } else {
                        tracing::debug!(%peer, ?token, "Reset for a message no request waits on");
                    }
                }
                ExchangeEvent::Timeout {
                    id, transmissions, ..
                } => {
                    if let Some(p) = self.pending.remove(&id) {
                        self.end_without_response(
                            now,
                            p,
                            Some(transmissions),
                            RequestError::Timeout {
                                attempts: transmissions,
                            },
                        );
                    }
                }
                ExchangeEvent::Malformed { peer, reason } => {
                    self.events
                        .push_back(ServerEvent::Malformed { peer, reason });
                }
            }
        }
    }

    fn handle_response(&mut self, now: Instant, exchange: ExchangeId, message: Packet) {
        let Some(mut pending) = self.pending.remove(&exchange) else {
            return;
        };
        if let Some(push) = pending.push.take() {
            self.handle_push_response(now, pending, push, message);
            return;
        }
        if let Some(mut fetch) = pending.fetch.take() {
            let step = fetch.handle_response(&message);
            self.fetch_step(now, pending, (fetch, step));
            return;
        }
        // RFC 7959 §2.4: a body that comes block-wise is decoded once, whole;
        // its first block only says that the request succeeded.
        let blockwise = fetch::is_blockwise(&message);
        let result = if blockwise {
            Ok(Response {
                code: 205,
                format: options::content_format(&message).and_then(ContentFormat::from_code),
                content: Content::None,
            })
        } else {
            request::decode(&message, &pending.path, &self.config.registry)
        };
        if let (Some(token), Ok(response)) = (pending.observe_token.take(), &result) {
            // RFC 7641 §3.1: the observation exists only if the response says so.
            if let (true, Some(seq)) = (response.is_success(), options::observe(&message)) {
                // RFC 7641 §4.1: the client keys observers by endpoint and
                // token, so an older observation of the same path with another
                // token lives on beside this one.
                self.add_observation(
                    token,
                    Observation {
                        id: pending.id,
                        endpoint: pending.endpoint.clone(),
                        path: pending.path,
                        seq: Some(ObserveSeq::new(seq, now)),
                    },
                );
            }
        }
        if blockwise {
            let request = pending
                .template
                .take()
                .unwrap_or_else(|| fetch::notification_request(&pending.path, &message));
            let step = fetch::Fetch::start(&request, message, false);
            self.fetch_step(now, pending, step);
            return;
        }
        self.events.push_back(ServerEvent::Response {
            id: pending.id,
            endpoint: pending.endpoint.to_string(),
            result,
        });
    }

    /// Acts on a step of a Block2 fetch: asks for the next block, or
    /// delivers the whole body — as the request's response, or as the
    /// notification whose first block started the fetch.
    fn fetch_step(
        &mut self,
        now: Instant,
        mut pending: Pending,
        (fetch, step): (fetch::Fetch, fetch::FetchStep),
    ) {
        let peer = self.registrations.get(&pending.endpoint).map(|r| r.peer);
        let notification = fetch.is_notification();
        let result = match (step, peer) {
            (fetch::FetchStep::Next(packet), Some(peer)) => {
                let endpoint = pending.endpoint.clone();
                let exchange = self.send_request(now, &endpoint, peer, packet);
                pending.fetch = Some(fetch);
                self.pending.insert(exchange, pending);
                return;
            }
            (fetch::FetchStep::Next(_), None) => Err(RequestError::RegistrationEnded),
            (fetch::FetchStep::Complete(whole), Some(peer)) if notification => {
                self.deliver(peer, pending.id, pending.endpoint, pending.path, &whole);
                return;
            }
            (fetch::FetchStep::Complete(whole), _) => {
                request::decode(&whole, &pending.path, &self.config.registry)
            }
            (fetch::FetchStep::Failed(reason), _) => Err(RequestError::Decode(format!(
                "{} from {}: {reason}",
                pending.path, pending.endpoint
            ))),
        };
        if notification {
            match (result, peer) {
                (Err(e), Some(peer)) => self.events.push_back(ServerEvent::Malformed {
                    peer,
                    reason: format!("notification for {}: {e}", pending.path),
                }),
                (result, _) => {
                    tracing::warn!(endpoint = %pending.endpoint, path = %pending.path, ?result, "block-wise notification dropped")
                }
            }
            return;
        }
        self.events.push_back(ServerEvent::Response {
            id: pending.id,
            endpoint: pending.endpoint.to_string(),
            result,
        });
    }

    /// Delivers a notification's value, first fetching the rest of its body
    /// when it came block-wise (RFC 7959 §2.6). A fetch still running for an
    /// older notification of the same observation is abandoned: this one is
    /// newer (the caller checked its Observe sequence number).
    fn deliver_notification(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        observation: RequestId,
        endpoint: Arc<str>,
        path: Path,
        message: &Packet,
    ) {
        if !fetch::is_blockwise(message) {
            self.deliver(peer, observation, endpoint, path, message);
            return;
        }
        let older: Vec<ExchangeId> = self
            .pending
            .of_endpoint(&endpoint)
            .into_iter()
            .filter(|e| {
                self.pending.get(e).is_some_and(|p| {
                    p.id == observation
                        && p.fetch.as_ref().is_some_and(fetch::Fetch::is_notification)
                })
            })
            .collect();
        for exchange in older {
            tracing::debug!(%endpoint, %path, "a newer block-wise notification replaces the one being fetched");
            self.layer.cancel(exchange);
            self.pending.remove(&exchange);
        }
        // An Observe-Composite's rest is a FETCH of / again (composite.rs).
        let request = self.notification_fetch_request(observation, &path, message);
        let step = fetch::Fetch::start(&request, message.clone(), true);
        let pending = Pending {
            id: observation,
            endpoint,
            path,
            observe_token: None,
            push: None,
            template: None,
            fetch: None,
        };
        self.fetch_step(now, pending, step);
    }

    /// A response no request waits on: a notification if its token names an
    /// observation (RFC 7641 §3.2), else rejected with Reset (§3.5).
    fn handle_notification(&mut self, now: Instant, peer: SocketAddr, message: Packet) {
        let token = message.get_token().to_vec();
        let Some(obs) = self.observations.get_mut(&token) else {
            tracing::debug!(%peer, token = %hex::encode(&token), "response for no request or observation; Reset");
            self.layer.reject(peer, &message);
            return;
        };
        self.layer.acknowledge(peer, &message);
        let raw: u8 = message.header.code.into();
        if !code::is_response(raw) || code::to_number(raw) >= 300 {
            // §3.2: a non-2.xx notification ends the observation.
            tracing::info!(endpoint = %obs.endpoint, path = %obs.path, code = code::to_number(raw), "observation ended by the client");
            self.observations.remove(&token);
            return;
        }
        let Some(seq) = options::observe(&message) else {
            // A 2.xx without Observe also ends it (§3.2), after delivering the value.
            if let Some(obs) = self.observations.remove(&token) {
                self.deliver_notification(now, peer, obs.id, obs.endpoint, obs.path, &message);
            }
            return;
        };
        let fresh = match &mut obs.seq {
            Some(last) => last.accept(seq, now),
            None => {
                obs.seq = Some(ObserveSeq::new(seq, now));
                true
            }
        };
        if !fresh {
            tracing::debug!(endpoint = %obs.endpoint, seq, "stale notification dropped (RFC 7641 §3.4)");
            return;
        }
        let (id, endpoint, path) = (obs.id, obs.endpoint.clone(), obs.path);
        self.deliver_notification(now, peer, id, endpoint, path, &message);
    }

    fn deliver(
        &mut self,
        peer: SocketAddr,
        observation: RequestId,
        endpoint: Arc<str>,
        path: Path,
        message: &Packet,
    ) {
        let endpoint = endpoint.to_string();
        match request::decode(message, &path, &self.config.registry) {
            Ok(Response {
                content: Content::Records(records),
                ..
            }) => {
                self.events.push_back(ServerEvent::Notification {
                    observation,
                    endpoint,
                    path,
                    records,
                });
            }
            Ok(Response {
                content: Content::None,
                ..
            }) => {
                self.events.push_back(ServerEvent::Notification {
                    observation,
                    endpoint,
                    path,
                    records: Vec::new(),
                });
            }
            Ok(Response {
                content: Content::Links(_),
                ..
            }) => self.events.push_back(ServerEvent::Malformed {
                peer,
                reason: format!("notification for {path} carries links, not values"),
            }),
            Err(e) => self.events.push_back(ServerEvent::Malformed {
                peer,
                reason: format!("notification for {path} from {endpoint}: {e}"),
            }),
        }
    }

    /// Requests from clients: the registration interface at `/rd`.
    ///
    /// Before dispatch: a critical option the registration interface does
    /// not implement gets 4.02 Bad Option (RFC 7252 §5.4.1; a NON is
    /// rejected), and a body sent with Block1 is reassembled (RFC 7959
    /// §2.5) — each block but the last is answered 2.31 Continue, a gap
    /// 4.08 — so that Register and Update see the whole object list, and
    /// the final response echoes the last block's Block1 (§2.3).
    fn handle_request(&mut self, now: Instant, peer: SocketAddr, message: Packet) {
        match critical::refusal(&message, critical::SERVER_REQUEST_OPTIONS) {
            Some(critical::Refusal::Respond(answer)) => {
                return self.layer.respond(peer, &message, answer);
            }
            Some(critical::Refusal::Reject) => return self.layer.reject(peer, &message),
            None => {}
        }
        let (message, block1_echo) = match self.block1.handle(
            now,
            (peer, options::strings(&message, CoapOption::UriPath)),
            &message,
        ) {
            Block1Outcome::Single => (message, None),
            Block1Outcome::Answer(answer) => return self.layer.respond(peer, &message, answer),
            Block1Outcome::Complete { request, echo } => (request, echo),
        };
        let path = options::strings(&message, CoapOption::UriPath);
        let method = match message.header.code {
            MessageClass::Request(m) => m,
            _ => return,
        };
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        let forbidden = self.authorize(peer, method, &segments, &message);
        let reply = match (method, segments.as_slice()) {
            _ if forbidden.is_some() => forbidden.unwrap_or_else(|| Reply::code(403)),
            (RequestType::Post, ["rd"]) => self.register(now, peer, &message),
            (RequestType::Post, ["rd", id]) => self.update(now, peer, &message, id),
            (RequestType::Delete, ["rd", id]) => self.deregister(now, id),
            (RequestType::Post, [composite::SEND_PATH]) => self.receive_send(peer, &message),
            (_, ["rd"] | ["rd", _]) => Reply::code(405),
            _ => Reply::code(404),
        };
        // The De-register answered 2.02 ends the peer's session: the CoAP
        // layer may forget its earlier messages sooner (`coap/dedup.rs`).
        let session_ended = reply.code == 202
            && matches!(
                (method, segments.as_slice()),
                (RequestType::Delete, ["rd", _])
            );
        let mut response = Packet::new();
        response.header.code = MessageClass::from(code::from_number(reply.code).unwrap_or(0xa0));
        for seg in &reply.location {
            response.add_option(CoapOption::LocationPath, seg.as_bytes().to_vec());
        }
        if let Some(diag) = reply.diagnostic {
            response.payload = diag.into_bytes();
        }
        if let Some(echo) = block1_echo {
            echo.set_on(&mut response, BlockKind::Block1);
        }
        self.layer.respond(peer, &message, response);
        if session_ended {
            self.layer
                .end_of_session(now, peer, message.header.message_id);
        }
    }

    fn register(&mut self, now: Instant, peer: SocketAddr, message: &Packet) -> Reply {
        let params = match registration::parse(message) {
            Ok(p) => p,
            Err(e) => return Reply::error(e.code(), e.to_string()),
        };
        let Some(endpoint) = params.endpoint.clone() else {
            return Reply::error(400, "Register without an endpoint name (ep)".into());
        };
        let version = match registration::check_register(&params) {
            Ok(v) => v,
            Err(e) => return Reply::error(e.code(), e.to_string()),
        };
        if self.registrations.contains_key(endpoint.as_str()) {
            // LwM2M 1.1 Core §6.2.1: a new Register replaces the old registration.
            tracing::info!(%endpoint, "re-registration replaces the previous registration");
            self.end_registration(now, &endpoint);
        }
        let layer = &mut self.layer;
        let ids = self
            .location_ids
            .get_or_insert_with(|| expiry::LocationIds::new(layer.random() as u16));
        let number = ids.peek();
        let id = ids.next_id();
        let location = format!("/rd/{id}");
        let queue_mode = params.queue_mode(&version).unwrap_or(false);
        let list = params.objects.unwrap_or_default();
        let registration = Registration {
            endpoint: endpoint.clone(),
            location: location.clone(),
            lifetime: params.lifetime.unwrap_or(DEFAULT_LIFETIME),
            lwm2m_version: version,
            binding: params.binding.unwrap_or_else(|| "U".into()),
            queue_mode,
            sms_number: params.sms_number,
            objects: ObjectLinks::from(list.objects),
            root: list.root,
            content_formats: list.content_formats,
            peer,
            registered_at: now,
            updated_at: now,
        };
        tracing::info!(%endpoint, %location, %peer, lifetime = ?registration.lifetime, "registered");
        let key: Arc<str> = Arc::from(endpoint.as_str());
        self.locations.insert(number, key.clone());
        self.by_peer.insert(peer, key.clone());
        self.deadlines.insert(registration.expires_at(), &key);
        let registration = Arc::new(registration);
        self.registrations.insert(key, registration.clone());
        self.queue_track(now, &endpoint);
        self.events.push_back(ServerEvent::Registered(registration));
        Reply {
            code: 201,
            location: vec!["rd".into(), id],
            diagnostic: None,
        }
    }

    fn update(&mut self, now: Instant, peer: SocketAddr, message: &Packet, id: &str) -> Reply {
        let Some(endpoint) = self.location(id) else {
            return Reply::error(404, format!("no registration at /rd/{id}"));
        };
        let params = match registration::parse(message) {
            Ok(p) => p,
            Err(e) => return Reply::error(e.code(), e.to_string()),
        };
        let Some(reg) = self.registrations.get_mut(&*endpoint).map(Arc::make_mut) else {
            return Reply::code(404);
        };
        if let Err(e) = registration::check_update(&params, &reg.lwm2m_version) {
            return Reply::error(e.code(), e.to_string());
        }
        // The deadline moves (lt may change too): Core §6.2.2.
        self.deadlines.remove(reg.expires_at(), &endpoint);
        if let Some(lt) = params.lifetime {
            reg.lifetime = lt;
        }
        if let Some(queue) = params.queue_mode(&reg.lwm2m_version) {
            reg.queue_mode = queue;
        }
        if let Some(b) = params.binding {
            reg.binding = b;
        }
        if let Some(sms) = params.sms_number {
            reg.sms_number = Some(sms);
        }
        if let Some(mut list) = params.objects {
            list.inherit(&reg.root, &reg.content_formats);
            reg.objects = ObjectLinks::from(list.objects);
            reg.root = list.root;
            reg.content_formats = list.content_formats;
        }
        // The client may have moved (NAT rebinding): the server uses the
        // Update's source address from now on (LwM2M 1.1 Core §6.2.1 "records
        // the connection information ... for all future interactions",
        // §6.2.2), and requests still in flight to the old address are
        // retransmitted to the new one, where their answers now come from.
        let moved = (reg.peer != peer).then_some(reg.peer);
        if let Some(old) = moved {
            if self.by_peer.get(&old).is_some_and(|e| **e == *endpoint) {
                self.by_peer.remove(&old);
            }
            self.by_peer.insert(peer, endpoint.clone());
        }
        reg.peer = peer;
        reg.updated_at = now;
        self.deadlines.insert(reg.expires_at(), &endpoint);
        tracing::debug!(%endpoint, "registration updated");
        // The event shares the registration with the table; the next
        // Update copies it only while a reader still holds this one.
        if let Some(shared) = self.registrations.get(&*endpoint) {
            self.events.push_back(ServerEvent::Updated(shared.clone()));
        }
        self.queue_track(now, &endpoint);
        if let Some(old) = moved {
            tracing::info!(%endpoint, %old, new = %peer, "client moved; requests in flight follow it");
            for exchange in self.pending.of_endpoint(&endpoint) {
                self.layer.redirect(exchange, peer);
            }
        }
        Reply::code(204)
    }

    fn deregister(&mut self, now: Instant, id: &str) -> Reply {
        let Some(endpoint) = self.location(id) else {
            return Reply::error(404, format!("no registration at /rd/{id}"));
        };
        tracing::info!(%endpoint, "deregistered");
        self.end_registration(now, &endpoint);
        self.events.push_back(ServerEvent::Deregistered {
            endpoint: endpoint.to_string(),
        });
        Reply::code(202)
    }

    /// Forgets `endpoint`'s registration without telling the client, as a
    /// server that lost its state would (ETS 1.1 int-105 "Discarded Register
    /// Update"): the registration, its location, its expiry deadline, its
    /// observations and its requests in flight go the way a De-register
    /// takes them (`end_registration`), so the client's next Update to the
    /// old location is answered 4.04 Not Found and it must Register again
    /// (LwM2M 1.1 Core §6.2.2, Transport §6.2). A request
    /// queued just before still has its first datagram on the way; its
    /// answer then matches nothing and its outcome is `RegistrationEnded`.
    /// Returns the location it had, or `None` if `endpoint` was not
    /// registered; [`ServerEvent::Discarded`] reports it.
    pub fn discard_registration(&mut self, now: Instant, endpoint: &str) -> Option<String> {
        let location = self.registrations.get(endpoint)?.location.clone();
        tracing::info!(%endpoint, %location, "registration discarded by the server");
        self.end_registration(now, endpoint);
        self.events.push_back(ServerEvent::Discarded {
            endpoint: endpoint.to_string(),
            location: location.clone(),
        });
        Some(location)
    }

    /// Forgets a registration with its observations; requests still in flight
    /// to it end with `RegistrationEnded`.
    fn end_registration(&mut self, now: Instant, endpoint: &str) {
        self.queue_fail_held(now, endpoint, false);
        if let Some((key, reg)) = self.registrations.remove_entry(endpoint) {
            if let Some(number) = expiry::LocationIds::parse(&reg.location) {
                self.locations.remove(&number);
            }
            if self.by_peer.get(&reg.peer).is_some_and(|e| *e == key) {
                self.by_peer.remove(&reg.peer);
            }
            self.deadlines.remove(reg.expires_at(), &key);
        }
        for token in self.observed_by.remove(endpoint).unwrap_or_default() {
            if self
                .observations
                .get(&token)
                .is_some_and(|o| &*o.endpoint == endpoint)
            {
                if let Some(o) = self.observations.remove(&token) {
                    self.composite_observations.remove(&o.id);
                }
            }
        }
        for id in self.composite_by.remove(endpoint).unwrap_or_default() {
            self.composite_observations.remove(&id);
        }
        crate::coap::shrink::if_sparse(&mut self.composite_by);
        crate::coap::shrink::if_sparse(&mut self.locations);
        crate::coap::shrink::if_sparse(&mut self.by_peer);
        crate::coap::shrink::if_sparse(&mut self.observations);
        crate::coap::shrink::if_sparse(&mut self.observed_by);
        crate::coap::shrink::if_sparse(&mut self.composite_observations);
        for exchange in self.pending.of_endpoint(endpoint) {
            let transmissions = self.layer.transmissions(exchange);
            self.layer.cancel(exchange);
            if let Some(p) = self.pending.remove(&exchange) {
                // An Observe-Composite that never got its answer.
                self.composite_observations.remove(&p.id);
                self.end_without_response(now, p, transmissions, RequestError::RegistrationEnded);
            }
        }
    }
}

impl Server {
    /// Records an established observation (RFC 7641 §3.1) and indexes it
    /// by endpoint; every observation goes in through here, or
    /// `end_registration` would not find it.
    /// The endpoint registered at `/rd/<id>`, if any.
    fn location(&self, id: &str) -> Option<Arc<str>> {
        let number = expiry::LocationIds::parse(&format!("/rd/{id}"))?;
        self.locations.get(&number).cloned()
    }

    /// The tokens of `endpoint`'s live observations (the index may hold
    /// tokens of observations that ended since; they are left out).
    fn observation_tokens(&self, endpoint: &str) -> Vec<Vec<u8>> {
        self.observed_by
            .get(endpoint)
            .into_iter()
            .flatten()
            .filter(|t| {
                self.observations
                    .get(*t)
                    .is_some_and(|o| &*o.endpoint == endpoint)
            })
            .cloned()
            .collect()
    }

    /// The token of `endpoint`'s newest observation that `matches`.
    fn newest_observation(
        &self,
        endpoint: &str,
        matches: impl Fn(&Observation) -> bool,
    ) -> Option<Vec<u8>> {
        self.observation_tokens(endpoint)
            .into_iter()
            .filter_map(|t| self.observations.get(&t).map(|o| (t, o)))
            .filter(|(_, o)| matches(o))
            .max_by_key(|(_, o)| o.id)
            .map(|(t, _)| t)
    }

    fn add_observation(&mut self, token: Vec<u8>, observation: Observation) {
        let tokens = self
            .observed_by
            .entry(observation.endpoint.clone())
            .or_default();
        let observations = &self.observations;
        tokens.retain(|t| observations.contains_key(t));
        tokens.push(token.clone());
        self.observations.insert(token, observation);
    }
}

/// What the registration interface answers.
struct Reply {
    code: u16,
    location: Vec<String>,
    diagnostic: Option<String>,
}

impl Reply {
    fn code(code: u16) -> Self {
        Reply {
            code,
            location: Vec::new(),
            diagnostic: None,
        }
    }
    /// An error with a diagnostic payload (RFC 7252 §5.5.2).
    fn error(code: u16, diagnostic: String) -> Self {
        tracing::debug!(code, %diagnostic, "registration request refused");
        Reply {
            code,
            location: Vec::new(),
            diagnostic: Some(diagnostic),
        }
    }
}
