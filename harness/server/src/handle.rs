//! The typed async API test steps use: bind the server, wait for events,
//! send device management requests, read the message log.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lwm2m::format::{Link, Record};
use lwm2m::path::Path;
use lwm2m::server::{
    Attributes, Content, DmRequest, PushProgress, Registration, RequestError, RequestId, Response,
    Server, ServerConfig, ServerEvent, WriteMode,
};
use lwm2m::ContentFormat;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::credentials::CredentialStore;
use crate::describe::{code_text, describe_request};
use crate::error::ServerError;
use crate::event_history::EventSeq;
use crate::event_stream::EventStream;
use crate::shared::{Command, Shared};
use crate::transport::{SecurityConfig, Transport};
use crate::udp_loop::LwM2mCore;
use dtls::Psk;
use lwm2m::server::SecurityEvent;

/// How long the request conveniences wait for an answer by default: a bit
/// more than CoAP's MAX_TRANSMIT_WAIT (93 s, RFC 7252 §4.8.2), after which the
/// core reports the request as unanswered anyway.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(95);

/// Knobs of the tokio shell (the protocol's are in [`ServerConfig`]).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Datagrams kept in the message log; older ones are dropped (counts in
    /// [`Stats`](crate::Stats) continue).
    pub log_capacity: usize,
    /// Events kept in the history.
    pub event_capacity: usize,
    /// Timeout of `read`, `write`, ... (not of `request`, which takes one).
    pub request_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            log_capacity: 100_000,
            event_capacity: 10_000,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The embedded LwM2M server: a UDP socket and the sans-IO [`Server`] in one task.
pub struct LwM2mServer;

impl LwM2mServer {
    /// Binds `addr` and starts serving plain CoAP with default [`ServerOptions`].
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> Result<ServerHandle, ServerError> {
        Self::bind_with(addr, config, ServerOptions::default()).await
    }

    /// Plain CoAP with the given options.
    pub async fn bind_with(
        addr: SocketAddr,
        config: ServerConfig,
        options: ServerOptions,
    ) -> Result<ServerHandle, ServerError> {
        Self::bind_secure_with(addr, config, SecurityConfig::NoSec, options).await
    }

    /// Binds `addr` with `security` (coaps for [`SecurityConfig::Psk`]) and
    /// default [`ServerOptions`]. Under DTLS the handle's
    /// [`CredentialStore`] holds the keys, and each Register, Update and
    /// De-register must come from the identity bound to its endpoint.
    pub async fn bind_secure(
        addr: SocketAddr,
        config: ServerConfig,
        security: SecurityConfig,
    ) -> Result<ServerHandle, ServerError> {
        Self::bind_secure_with(addr, config, security, ServerOptions::default()).await
    }

    pub async fn bind_secure_with(
        addr: SocketAddr,
        config: ServerConfig,
        security: SecurityConfig,
        options: ServerOptions,
    ) -> Result<ServerHandle, ServerError> {
        let credentials = CredentialStore::new();
        let transport = Transport::new(&security, &credentials)?;
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let shared = Arc::new(Shared::new(options.log_capacity, options.event_capacity));
        let (commands, rx) = mpsc::unbounded_channel();
        let mut core = Server::new(config);
        if transport.is_secure() {
            let store = credentials.clone();
            core.set_authorizer(Box::new(move |endpoint, identity| {
                store.authorize(endpoint, identity)
            }));
        }
        let span = tracing::info_span!("lwm2m_server", %local_addr, scheme = security.scheme());
        // Its own thread (see `udp_loop::spawn` for the measurement).
        let task = crate::udp_loop::spawn(
            "lwm2m-server",
            socket,
            LwM2mCore(core),
            transport,
            shared.clone(),
            rx,
            span,
        )
        .map_err(|source| ServerError::Bind { addr, source })?;
        tracing::info!(%local_addr, scheme = security.scheme(), "LwM2M server listening");
        Ok(ServerHandle {
            local_addr,
            shared,
            commands,
            task: Arc::new(Mutex::new(Some(task))),
            request_timeout: options.request_timeout,
            credentials,
            security,
        })
    }
}

/// coaps: credentials and the events of the secure transport.
impl ServerHandle {
    /// Whether the server speaks coaps.
    pub fn is_secure(&self) -> bool {
        matches!(self.security, SecurityConfig::Psk(_))
    }

    /// `coap://127.0.0.1:5683` or `coaps://...`: the Server URI (/0/x/0) a
    /// device is given. An unspecified bind address is written as loopback.
    pub fn uri(&self) -> String {
        crate::transport::uri(self.security.scheme(), self.local_addr)
    }

    /// The server's PSK credentials (shared with the DTLS endpoint).
    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// Accept `psk` for `endpoint` from now on, replacing its earlier one
    /// (whose sessions are closed).
    pub fn set_psk(&self, endpoint: &str, psk: Psk) {
        self.credentials.set(endpoint, psk);
    }

    /// Stop accepting `endpoint`'s credential; whether it had one.
    pub fn remove_psk(&self, endpoint: &str) -> bool {
        self.credentials.remove(endpoint)
    }

    /// Makes, sets and returns a fresh PSK for `endpoint` (see
    /// [`CredentialStore::provision`]); bootstrap it into the device.
    pub fn provision_psk(&self, endpoint: &str) -> Result<Psk, ServerError> {
        self.credentials
            .provision(endpoint)
            .map_err(|e| ServerError::Credential {
                endpoint: endpoint.into(),
                reason: e.to_string(),
            })
    }

    /// The first DTLS handshake failure after `after` whose claimed identity
    /// is `identity` (`None`: any).
    pub async fn await_handshake_failed(
        &self,
        identity: Option<&str>,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<(EventSeq, SecurityEvent), ServerError> {
        let pick = |e: &ServerEvent| match e {
            ServerEvent::Security(e @ SecurityEvent::HandshakeFailed { identity: got, .. })
                if identity.is_none() || got.as_deref() == identity =>
            {
                Some(e.clone())
            }
            _ => None,
        };
        self.shared
            .await_event(after, timeout, pick, || match identity {
                Some(id) => format!("a failed DTLS handshake of PSK identity {id:?}"),
                None => "a failed DTLS handshake".into(),
            })
            .await
    }

    /// The first completed DTLS handshake of `identity` after `after`.
    pub async fn await_handshake_completed(
        &self,
        identity: &str,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<(EventSeq, SecurityEvent), ServerError> {
        let pick =
            |e: &ServerEvent| match e {
                ServerEvent::Security(
                    e @ SecurityEvent::HandshakeCompleted { identity: got, .. },
                ) if got == identity => Some(e.clone()),
                _ => None,
            };
        self.shared
            .await_event(after, timeout, pick, || {
                format!("a DTLS handshake of PSK identity {identity:?}")
            })
            .await
    }

    /// The first 4.03 to a Register/Update/De-register naming `endpoint`
    /// after `after` (identity/endpoint mismatch). Returns the
    /// [`ServerEvent::Forbidden`].
    pub async fn await_forbidden(
        &self,
        endpoint: &str,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<(EventSeq, ServerEvent), ServerError> {
        let pred = |e: &ServerEvent| matches!(e, ServerEvent::Forbidden { endpoint: got, .. } if got == endpoint);
        self.await_event_described(after, timeout, pred, || {
            format!("a registration of {endpoint} refused with 4.03")
        })
        .await
    }
}

/// An Observe request's outcome: the id that later `Notification` events
/// carry, the first response (its code says whether the observation was
/// established), and the event number to wait for notifications after.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub id: RequestId,
    pub endpoint: String,
    pub path: Path,
    pub first: Response,
    pub seq: EventSeq,
}

/// One notification of an observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub seq: EventSeq,
    pub path: Path,
    pub records: Vec<Record>,
}

/// A cheap, cloneable handle on the running server. The server stops when
/// [`shutdown`](Self::shutdown) is called or the last handle is dropped.
#[derive(Clone)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    request_timeout: Duration,
    credentials: CredentialStore,
    security: SecurityConfig,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("running", &self.is_running())
            .finish()
    }
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn is_running(&self) -> bool {
        !self.shared.is_closed()
    }

    /// The timeout the request conveniences use.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// A handle on the same server whose conveniences wait `timeout`.
    pub fn with_request_timeout(&self, timeout: Duration) -> ServerHandle {
        ServerHandle {
            request_timeout: timeout,
            ..self.clone()
        }
    }

    // ----- events -----

    /// The number of the latest event; wait "after" it for things still to come.
    pub fn current_seq(&self) -> EventSeq {
        self.shared.state().events.last()
    }

    /// Held events numbered above `after`.
    pub fn events_since(&self, after: EventSeq) -> Vec<(EventSeq, ServerEvent)> {
        self.shared.state().events.since(after)
    }

    /// A stream of events from now on (see [`EventStream`]).
    pub fn subscribe(&self) -> EventStream {
        EventStream::new(self.shared.clone(), self.current_seq())
    }

    /// The first event numbered above `after` that `pred` accepts, including
    /// ones that happened before this call. `ServerError::Timeout` if none
    /// comes within `timeout`; `Shutdown` if the server stops first.
    pub async fn await_event(
        &self,
        after: EventSeq,
        timeout: Duration,
        pred: impl Fn(&ServerEvent) -> bool + Send + Sync,
    ) -> Result<(EventSeq, ServerEvent), ServerError> {
        self.await_event_described(after, timeout, pred, || "a matching server event".into())
            .await
    }

    /// [`await_event`](Self::await_event) with a timeout error that says
    /// what was awaited.
    async fn await_event_described(
        &self,
        after: EventSeq,
        timeout: Duration,
        pred: impl Fn(&ServerEvent) -> bool,
        what: impl Fn() -> String,
    ) -> Result<(EventSeq, ServerEvent), ServerError> {
        let pick = |e: &ServerEvent| pred(e).then(|| e.clone());
        self.shared.await_event(after, timeout, pick, what).await
    }

    // ----- registrations -----

    pub fn registration(&self, endpoint: &str) -> Option<Registration> {
        self.shared
            .state()
            .registrations
            .get(endpoint)
            .map(|r| Registration::clone(r))
    }

    /// The endpoint names registered now, without copying their
    /// registrations: what a reader that lost events (its history gap, see
    /// [`EventStream`]) checks itself against at 100,000 devices.
    pub fn registered_endpoints(&self) -> Vec<String> {
        self.shared
            .state()
            .registrations
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    pub fn registrations(&self) -> Vec<Registration> {
        self.shared
            .state()
            .registrations
            .values()
            .map(|r| Registration::clone(r))
            .collect()
    }

    /// The first Register of `endpoint` after `after` (an Update does not count:
    /// a step awaiting registration after a power cycle wants a fresh one).
    pub async fn await_registered(
        &self,
        endpoint: &str,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<(EventSeq, Registration), ServerError> {
        let pick = |e: &ServerEvent| match e {
            ServerEvent::Registered(r) if r.endpoint == endpoint => Some(Registration::clone(r)),
            _ => None,
        };
        self.shared
            .await_event(after, timeout, pick, || format!("{endpoint} to register"))
            .await
    }

    /// The first registration Update of `endpoint` after `after`.
    pub async fn await_updated(
        &self,
        endpoint: &str,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<(EventSeq, Registration), ServerError> {
        let pick = |e: &ServerEvent| match e {
            ServerEvent::Updated(r) if r.endpoint == endpoint => Some(Registration::clone(r)),
            _ => None,
        };
        self.shared
            .await_event(after, timeout, pick, || {
                format!("{endpoint} to update its registration")
            })
            .await
    }

    /// The end of `endpoint`'s registration after `after`: a De-register or
    /// its lifetime expiring. Returns that event.
    pub async fn await_deregistered(
        &self,
        endpoint: &str,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<(EventSeq, ServerEvent), ServerError> {
        let pred = |e: &ServerEvent| matches!(e, ServerEvent::Deregistered { endpoint: ep } | ServerEvent::Expired { endpoint: ep } if ep == endpoint);
        self.await_event_described(after, timeout, pred, || {
            format!("{endpoint} to deregister or expire")
        })
        .await
    }

    // ----- requests -----

    /// Queues `request` to `endpoint` and returns its id at once; its outcome
    /// arrives as `ServerEvent::Response` with that id. Most callers want
    /// [`request`](Self::request).
    pub async fn start_request(
        &self,
        endpoint: &str,
        request: DmRequest,
    ) -> Result<RequestId, ServerError> {
        let described = describe_request(&request);
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request {
                endpoint: endpoint.to_string(),
                request,
                reply,
            })
            .map_err(|_| ServerError::Shutdown)?;
        let id = answer.await.map_err(|_| ServerError::Shutdown)?;
        id.map_err(|e| request_error(endpoint, &described, e))
    }

    /// Sends `request` and waits up to `timeout` for the response. A response
    /// with any CoAP code is `Ok`; check `Response::code`.
    pub async fn request(
        &self,
        endpoint: &str,
        request: DmRequest,
        timeout: Duration,
    ) -> Result<Response, ServerError> {
        self.request_seq(endpoint, request, timeout)
            .await
            .map(|(_, _, r)| r)
    }

    async fn request_seq(
        &self,
        endpoint: &str,
        request: DmRequest,
        timeout: Duration,
    ) -> Result<(EventSeq, RequestId, Response), ServerError> {
        let described = describe_request(&request);
        let after = self.current_seq();
        let id = self.start_request(endpoint, request).await?;
        let pick = |e: &ServerEvent| match e {
            ServerEvent::Response {
                id: got, result, ..
            } if *got == id => Some(result.clone()),
            _ => None,
        };
        let (seq, result) = self
            .shared
            .await_event(after, timeout, pick, || {
                format!("{endpoint} to answer {described}")
            })
            .await?;
        match result {
            Ok(response) => Ok((seq, id, response)),
            Err(e) => Err(request_error(endpoint, &described, e)),
        }
    }

    /// Read (LwM2M 1.1 Core §6.3.1). `format` is the Accept option; `None` lets
    /// the server's default apply.
    pub async fn read(
        &self,
        endpoint: &str,
        path: Path,
        format: Option<ContentFormat>,
    ) -> Result<Response, ServerError> {
        self.request(
            endpoint,
            DmRequest::Read { path, format },
            self.request_timeout,
        )
        .await
    }

    /// Write (§6.3.3), replacing or partially updating `path`.
    pub async fn write(
        &self,
        endpoint: &str,
        path: Path,
        mode: WriteMode,
        records: Vec<Record>,
        format: Option<ContentFormat>,
    ) -> Result<Response, ServerError> {
        self.request(
            endpoint,
            DmRequest::Write {
                path,
                mode,
                records,
                format,
            },
            self.request_timeout,
        )
        .await
    }

    /// Execute (§6.3.5) with optional arguments (`0='a',1`).
    pub async fn execute(
        &self,
        endpoint: &str,
        path: Path,
        arguments: Option<String>,
    ) -> Result<Response, ServerError> {
        self.request(
            endpoint,
            DmRequest::Execute { path, arguments },
            self.request_timeout,
        )
        .await
    }

    /// Discover (§6.3.2): the links the device lists under `path`. A non-2.05
    /// answer is `ServerError::Unsuccessful` here, since there are no links to return.
    pub async fn discover(&self, endpoint: &str, path: Path) -> Result<Vec<Link>, ServerError> {
        let request = DmRequest::Discover { path };
        let described = describe_request(&request);
        let response = self
            .request(endpoint, request, self.request_timeout)
            .await?;
        if !response.is_success() {
            return Err(ServerError::Unsuccessful {
                endpoint: endpoint.into(),
                request: described,
                code: code_text(response.code),
            });
        }
        match response.content {
            Content::Links(links) => Ok(links),
            Content::None => Ok(Vec::new()),
            Content::Records(_) => Err(ServerError::Decode {
                endpoint: endpoint.into(),
                request: described,
                reason: "expected link format, got resource values".into(),
            }),
        }
    }

    /// Observe (§6.4.1). Notifications arrive as `ServerEvent::Notification`
    /// with `observation == returned.id`; see [`await_notification`](Self::await_notification).
    pub async fn observe(
        &self,
        endpoint: &str,
        path: Path,
        format: Option<ContentFormat>,
    ) -> Result<Observation, ServerError> {
        let (seq, id, first) = self
            .request_seq(
                endpoint,
                DmRequest::Observe { path, format },
                self.request_timeout,
            )
            .await?;
        Ok(Observation {
            id,
            endpoint: endpoint.into(),
            path,
            first,
            seq,
        })
    }

    /// The next notification of `observation` numbered above `after` (use
    /// `Observation::seq` for the first, the previous notification's `seq` next).
    pub async fn await_notification(
        &self,
        observation: &Observation,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<Notification, ServerError> {
        let id = observation.id;
        let pick = |e: &ServerEvent| match e {
            ServerEvent::Notification {
                observation,
                path,
                records,
                ..
            } if *observation == id => Some((*path, records.clone())),
            _ => None,
        };
        let (seq, (path, records)) = self
            .shared
            .await_event(after, timeout, pick, || {
                format!(
                    "a notification from {} for {}",
                    observation.endpoint, observation.path
                )
            })
            .await?;
        Ok(Notification { seq, path, records })
    }

    /// Cancel Observation (§6.4.2) by a GET with Observe=1 on the path.
    pub async fn cancel_observe(
        &self,
        endpoint: &str,
        path: Path,
    ) -> Result<Response, ServerError> {
        self.request(
            endpoint,
            DmRequest::CancelObserve { path },
            self.request_timeout,
        )
        .await
    }

    /// Cancels an observation the passive way (RFC 7641 §3.6, ETS 1.1
    /// int-302): the server forgets it and sends nothing, so the client's
    /// next notification of it is answered with Reset. Returns the
    /// observation's token, which the caller can look for in the message
    /// log (the notification and the RST answering it).
    pub async fn forget_observation(
        &self,
        endpoint: &str,
        path: Path,
    ) -> Result<Vec<u8>, ServerError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ForgetObservation {
                endpoint: endpoint.to_string(),
                path,
                reply,
            })
            .map_err(|_| ServerError::Shutdown)?;
        answer
            .await
            .map_err(|_| ServerError::Shutdown)?
            .ok_or_else(|| {
                request_error(
                    endpoint,
                    &format!("forget the observation of {path}"),
                    RequestError::Invalid(format!("no observation of {path} on {endpoint}")),
                )
            })
    }

    /// Forgets `endpoint`'s registration without telling the device (ETS
    /// 1.1 int-105 "Discarded Register Update"): its next Update is answered
    /// 4.04 Not Found and it must Register again (LwM2M 1.1 Core §6.2.2).
    /// With `trigger` (an Execute of Registration Update Trigger, say), that
    /// request is sent first, in the same turn of the server loop, so the
    /// device cannot have updated between the two; its answer is then
    /// ignored. Publishes `ServerEvent::Discarded` and returns the location
    /// the registration had; [`Self::registration`] no longer shows it once
    /// that event is seen (the snapshot follows the loop's events, which may
    /// come just after this returns).
    pub async fn discard_registration(
        &self,
        endpoint: &str,
        trigger: Option<DmRequest>,
    ) -> Result<String, ServerError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::DiscardRegistration {
                endpoint: endpoint.to_string(),
                trigger,
                reply,
            })
            .map_err(|_| ServerError::Shutdown)?;
        answer
            .await
            .map_err(|_| ServerError::Shutdown)?
            .map_err(|e| request_error(endpoint, "discard the registration", e))
    }

    /// Queue mode (LwM2M 1.1 Core §6.5): how long the server believes a
    /// queue-mode client awake after each message from it, so that it holds
    /// requests while the device really sleeps. The device's own awake time
    /// (the rig knows it); MAX_TRANSMIT_WAIT (93 s) until set.
    pub fn set_queue_awake_window(&self, window: Duration) -> Result<(), ServerError> {
        self.commands
            .send(Command::SetQueueAwakeWindow(window))
            .map_err(|_| ServerError::Shutdown)
    }

    /// Write-Attributes (§6.3.4).
    pub async fn write_attributes(
        &self,
        endpoint: &str,
        path: Path,
        attributes: Attributes,
    ) -> Result<Response, ServerError> {
        self.request(
            endpoint,
            DmRequest::WriteAttributes { path, attributes },
            self.request_timeout,
        )
        .await
    }

    /// Create (§6.3.6) an instance of `object`.
    pub async fn create(
        &self,
        endpoint: &str,
        object: Path,
        records: Vec<Record>,
        format: Option<ContentFormat>,
    ) -> Result<Response, ServerError> {
        self.request(
            endpoint,
            DmRequest::Create {
                object,
                records,
                format,
            },
            self.request_timeout,
        )
        .await
    }

    /// Delete (§6.3.7).
    pub async fn delete(&self, endpoint: &str, path: Path) -> Result<Response, ServerError> {
        self.request(endpoint, DmRequest::Delete { path }, self.request_timeout)
            .await
    }

    crate::log_and_lifecycle::log_and_lifecycle_methods!(Command::Shutdown, "LwM2M server");
}

fn request_error(endpoint: &str, request: &str, error: RequestError) -> ServerError {
    let endpoint = endpoint.to_string();
    let request = request.to_string();
    match error {
        RequestError::NotRegistered(ep) => ServerError::NotRegistered(ep),
        RequestError::Timeout { attempts } => ServerError::NoResponse {
            endpoint,
            request,
            attempts,
        },
        RequestError::Reset => ServerError::Reset { endpoint, request },
        RequestError::Decode(reason) => ServerError::Decode {
            endpoint,
            request,
            reason,
        },
        RequestError::RegistrationEnded => ServerError::RegistrationEnded { endpoint, request },
        RequestError::Invalid(reason) => ServerError::InvalidRequest { request, reason },
        e @ RequestError::NeverWoke { .. } => ServerError::NeverSent {
            endpoint,
            request,
            reason: e.to_string(),
        },
    }
}

/// The outcome of a firmware push ([`ServerHandle::push_firmware`]): the
/// device's final answer and the transfer's figures, for the message log,
/// the step log and JUnit properties.
#[derive(Debug, Clone, PartialEq)]
pub struct PushReport {
    /// The device's final CoAP code: 204 (2.04 Changed) when it took the
    /// image; 413 when it refused it as too large (see `size1`); any other
    /// code it answered a block with.
    pub code: u16,
    /// Bytes the device acknowledged.
    pub bytes: usize,
    /// Size of the image.
    pub total: usize,
    /// Blocks the device acknowledged.
    pub blocks: u32,
    /// Block size in use at the end (after any renegotiation).
    pub block_size: usize,
    /// Datagrams sent again after a loss.
    pub retransmissions: u32,
    /// Times the device asked for smaller blocks (RFC 7959 §2.9.3).
    pub renegotiations: u32,
    /// From the first block to the final answer.
    pub elapsed: Duration,
    /// The size limit the device announced with a 4.13 (RFC 7959 §4).
    pub size1: Option<u32>,
}

impl PushReport {
    fn new(code: u16, total: usize, progress: Option<&PushProgress>) -> Self {
        PushReport {
            code,
            bytes: progress.map_or(0, |p| p.bytes),
            total,
            blocks: progress.map_or(0, |p| p.blocks),
            block_size: progress.map_or(0, |p| p.block_size),
            retransmissions: progress.map_or(0, |p| p.retransmissions),
            renegotiations: progress.map_or(0, |p| p.renegotiations),
            elapsed: progress.map_or(Duration::ZERO, |p| p.elapsed),
            size1: progress.and_then(|p| p.size1),
        }
    }

    /// The device took the whole image (2.04 Changed).
    pub fn is_success(&self) -> bool {
        self.code == 204 && self.bytes == self.total
    }

    /// Bytes per second over `elapsed`.
    pub fn throughput(&self) -> f64 {
        lwm2m::server::bytes_per_second(self.bytes as u64, self.elapsed)
    }
}

impl std::fmt::Display for PushReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}/{} bytes in {} blocks of {}, {} retransmissions, {} renegotiations, {:.1} s, {:.1} KiB/s{}",
            code_text(self.code),
            self.bytes,
            self.total,
            self.blocks,
            self.block_size,
            self.retransmissions,
            self.renegotiations,
            self.elapsed.as_secs_f64(),
            self.throughput() / 1024.0,
            self.size1
                .map(|s| format!(", device limit {s} bytes (Size1)"))
                .unwrap_or_default()
        )
    }
}

/// Firmware push (LwM2M 1.1 Core §E.6, Push delivery method).
impl ServerHandle {
    /// Writes `image` into `path` (normally /5/0/0 Package) with Block1
    /// (RFC 7959 §2.5), starting with blocks of 2^(`szx`+4) bytes and
    /// following the device down when it answers 4.13 (§2.9.3). Waits up to
    /// `timeout` for the final answer. The device's refusal (e.g. 4.13 with
    /// Size1) is a `PushReport` with that code, not an error: judging it is
    /// the case's business. Errors are for no answer at all, a protocol
    /// violation (`Decode`), or an invalid request (SZX 7).
    pub async fn push_firmware(
        &self,
        endpoint: &str,
        path: Path,
        image: Vec<u8>,
        szx: u8,
        timeout: Duration,
    ) -> Result<PushReport, ServerError> {
        self.push_firmware_with_progress(endpoint, path, image, szx, timeout, |_| {})
            .await
    }

    /// [`push_firmware`](Self::push_firmware), calling `on_progress` with each
    /// [`PushProgress`] the core publishes (after the first block, every
    /// `PUSH_PROGRESS_EVERY_BLOCKS` blocks, on renegotiation, at the end):
    /// what a progress bar and the step log show.
    ///
    /// When `timeout` passes first this returns `ServerError::Timeout`, and
    /// the push carries on in the core until the device stops answering.
    pub async fn push_firmware_with_progress(
        &self,
        endpoint: &str,
        path: Path,
        image: Vec<u8>,
        szx: u8,
        timeout: Duration,
        mut on_progress: impl FnMut(&PushProgress) + Send,
    ) -> Result<PushReport, ServerError> {
        let total = image.len();
        let request = DmRequest::WriteBlockwise {
            path,
            format: ContentFormat::Opaque,
            body: image,
            szx,
        };
        let described = describe_request(&request);
        let deadline = Instant::now() + timeout;
        let mut cursor = self.current_seq();
        let id = self.start_request(endpoint, request).await?;
        // Continue with each progress report, Break with the final answer.
        let pick = |e: &ServerEvent| match e {
            ServerEvent::PushProgress {
                id: got, progress, ..
            } if *got == id => Some(ControlFlow::Continue(progress.clone())),
            ServerEvent::Response {
                id: got, result, ..
            } if *got == id => Some(ControlFlow::Break(result.clone())),
            _ => None,
        };
        let mut last: Option<PushProgress> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let (seq, step) = self
                .shared
                .await_event(cursor, remaining, pick, || {
                    format!("{endpoint} to answer {described}")
                })
                .await?;
            cursor = seq;
            match step {
                ControlFlow::Continue(progress) => {
                    on_progress(&progress);
                    last = Some(progress);
                }
                ControlFlow::Break(result) => {
                    let response = result.map_err(|e| request_error(endpoint, &described, e))?;
                    let report = PushReport::new(response.code, total, last.as_ref());
                    tracing::info!(%endpoint, %path, %report, "firmware push ended");
                    return Ok(report);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    /// Test steps run on a multi-threaded runtime and spawn: the handle and
    /// every future it returns must cross threads.
    #[allow(dead_code)]
    fn futures_are_send(h: &ServerHandle) {
        assert_send(&h.read("ep", Path::ROOT, None));
        assert_send(&h.await_event(EventSeq::START, Duration::ZERO, |_| true));
        assert_send(&h.await_registered("ep", EventSeq::START, Duration::ZERO));
        assert_send(&h.observe("ep", Path::ROOT, None));
        assert_send(&h.shutdown());
    }

    #[test]
    fn the_handle_is_send_and_sync() {
        assert_send_sync::<ServerHandle>();
        assert_send_sync::<ServerError>();
    }

    #[test]
    fn request_errors_keep_endpoint_and_request() {
        let e = request_error("m", "Read /3/0/0", RequestError::Timeout { attempts: 5 });
        assert_eq!(
            e.to_string(),
            "m did not answer Read /3/0/0 after 5 transmissions"
        );
        let e = request_error("m", "Read /3/0/0", RequestError::NotRegistered("m".into()));
        assert!(matches!(e, ServerError::NotRegistered(ep) if ep == "m"));
    }
}
