//! The LwM2M client role, sans-IO, which the virtual meter runs: registration
//! (Register, Update before the lifetime ends, De-register), device
//! management requests answered from an in-memory object store, and
//! observations with notification attributes (LwM2M 1.1 Core §6.2–§6.4).
//!
//! Behaviour worth knowing when driving it:
//! - Register goes out on [`Client::start`]; Updates at half the lifetime
//!   (and at once after Create/Delete changed the object list). A failed
//!   Update (4.04 or no answer) is followed by a new Register; a failed
//!   Register leaves the state `Failed` and is retried after
//!   [`RETRY_INITIAL`], doubling up to [`RETRY_MAX`].
//! - Notifications are Non-confirmable except every [`CON_EVERY`]-th and
//!   any due [`CON_AT_LEAST_EVERY`] (24 h) after the last, which are
//!   Confirmable so that a vanished observer is noticed (RFC 7641 §4.5);
//!   a Reset or an unacknowledged CON notification ends the observation,
//!   and while a CON notification is outstanding no other goes to that
//!   observer (NSTART = 1, RFC 7641 §4.5.1).
//! - A Write emits one [`ClientEvent::Written`] per resource (instance) it
//!   set, so the device can react to e.g. `/5/0/1` inside an instance write.
//! - With a [`BootstrapConfig`], the client bootstraps (Core §6.1) when it
//!   holds no LwM2M Server account at [`Client::start`], when asked
//!   ([`Client::bootstrap`]), and when [`RetryPolicy::bootstrap_after`]
//!   Registers in a row failed (§6.2.1.1), sending the Bootstrap-Request
//!   after the Client Hold Off Time (/0/x/11); Bootstrap-Finish makes it
//!   register with the account it got (see `bootstrap.rs`).
//! - Block-wise transfer (RFC 7959): a Write, Create or Execute body sent
//!   with Block1 is reassembled and acted on once, whole (2.31 Continue for
//!   the blocks before); a Read carrying Block2 gets the block it asks for,
//!   and [`Client::set_block2_size`] makes larger responses and
//!   notifications go block-wise by themselves. A request with a critical
//!   option the client does not implement gets 4.02 Bad Option (RFC 7252
//!   §5.4.1).

pub mod access_control;
mod bootstrap;
mod composite;
mod management;
mod observe;
pub mod registration;
mod server_account;
mod store;

pub use bootstrap::{BootstrapConfig, RetryPolicy};
pub use composite::{SendError, MUTE_SEND};
pub use observe::{CON_AT_LEAST_EVERY, CON_EVERY};
pub use server_account::DEFAULT_DISABLE_TIMEOUT;
pub use store::{ObjectStore, StoreError};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, Packet};

use crate::bootstrap::ServerAccount;
use crate::coap::critical;
use crate::coap::{code, options, ExchangeEvent, ExchangeId, MessageLayer, Transmit};
use crate::format::ContentFormat;
use crate::model::{Registry, ResourceType};
use crate::path::Path;
use crate::server::Attributes;
use crate::value::Value;
use observe::Observation;

/// First wait before retrying a failed registration; doubled on each further
/// failure up to [`RETRY_MAX`] (LwM2M 1.1 Core §6.2.1.1 leaves the schedule to
/// the client; its default Communication Retry Timer is 60 s).
pub const RETRY_INITIAL: Duration = Duration::from_secs(30);
/// Longest wait between registration attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: String,
    pub server: SocketAddr,
    pub lifetime: Duration,
    /// "1.1"
    pub lwm2m_version: String,
    /// "U"
    pub binding: String,
    pub registry: Registry,
    /// Format used for Read responses and notifications when the request has no Accept.
    pub preferred_format: ContentFormat,
    pub seed: u64,
    /// The Bootstrap-Server account; `None`: the client only registers with `server`.
    pub bootstrap: Option<BootstrapConfig>,
    /// Registration retry timings and the fall-back to bootstrap.
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    Idle,
    Registering,
    /// Registered; the Location-Path the server gave.
    Registered {
        location: String,
    },
    Deregistering,
    /// A bootstrap session is running (Core §6.1): the Client Hold Off Time
    /// (/0/x/11) being waited out, Bootstrap-Request sent, or the
    /// Bootstrap-Server's operations being served until Bootstrap-Finish.
    Bootstrapping,
    /// The server refused or never answered; the client waits before trying again.
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Registered {
        location: String,
    },
    RegistrationFailed {
        reason: String,
    },
    Updated,
    Deregistered,
    /// A server Write changed this path (the store already holds the new value).
    Written {
        path: Path,
    },
    /// The server executed a resource; the device acts on it (reboot, ...).
    Executed {
        path: Path,
        arguments: Option<String>,
    },
    Created {
        path: Path,
    },
    Deleted {
        path: Path,
    },
    Malformed {
        peer: SocketAddr,
        reason: String,
    },
    /// Bootstrap-Finish committed the configuration; the client now holds
    /// these accounts and registers with the first (Core §6.1.7.6).
    BootstrapFinished {
        accounts: Vec<ServerAccount>,
    },
    /// Bootstrap-Request was refused or unanswered, or no Bootstrap-Finish
    /// came in time; nothing staged was applied and the request is retried.
    BootstrapFailed {
        reason: String,
    },
    /// The server answered a [`Client::send`] with `code` (2.04 Changed
    /// expected), or never did (`None`: no answer after the retransmissions, or Reset).
    SendAnswered {
        code: Option<u16>,
    },
    /// Bootstrap-Finish changed these object instances (their values are in
    /// the store, absent ones were deleted): what the device persists.
    Provisioned {
        instances: Vec<Path>,
    },
    /// A block of a Block1 Write to a path registered with
    /// [`Client::accept_block1`] was accepted (RFC 7959 §2.5) and more are
    /// expected: `received` bytes so far. The Write itself is reported by
    /// [`ClientEvent::Written`] once the last block arrived; object 5 enters
    /// Downloading at the first block.
    Block1Received {
        path: Path,
        received: usize,
    },
    /// A Block1 Write to a registered path was refused (`code`: 4.13 when
    /// the body is larger than the limit, 4.08 for a gap, 4.00 otherwise).
    Block1Refused {
        path: Path,
        code: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegOp {
    Register,
    Update,
    Deregister,
}

pub struct Client {
    config: ClientConfig,
    store: ObjectStore,
    layer: MessageLayer,
    state: RegistrationState,
    location: Option<String>,
    /// The registration interface request in flight.
    reg_exchange: Option<(ExchangeId, RegOp)>,
    next_update: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
    /// Instances were created or deleted since the last Register/Update.
    objects_changed: bool,
    attributes: BTreeMap<Path, Attributes>,
    observations: Vec<Observation>,
    /// CON notifications in flight, by exchange: their observation's token
    /// and the observer they go to.
    notify_exchanges: HashMap<ExchangeId, (Vec<u8>, SocketAddr)>,
    /// The Observe sequence number of the next notification (RFC 7641 §4.4).
    sequence: u32,
    events: VecDeque<ClientEvent>,
    /// The bootstrap session in progress.
    bs: Option<bootstrap::BootstrapSession>,
    /// The Bootstrap-Request in flight.
    bs_exchange: Option<ExchangeId>,
    bs_retry_at: Option<Instant>,
    bs_failures: u32,
    /// Device-side refusals of Execute, by resource (see [`Client::set_execute_refusal`]).
    execute_refusals: HashMap<Path, (u16, String)>,
    /// Reassemblers of Block1 Writes, by target resource (see [`Client::accept_block1`]).
    block1: HashMap<Path, crate::coap::block::Block1Assembler>,
    /// Block1 bodies to any other path — Write, Create, Execute — by
    /// (peer, target) (RFC 7959 §2.5).
    block1_inbox: crate::coap::block::Block1Inbox<(SocketAddr, Path)>,
    /// See [`Client::ignore_block1`].
    block1_ignored: bool,
    /// See [`Client::set_block2_size`].
    block2_szx: Option<u8>,
    /// The lifetime was written since the last Register/Update: the next
    /// Update carries `lt` (see `server_account.rs`).
    lifetime_changed: bool,
    /// An Update is owed at once (Registration Update Trigger, a new lifetime).
    update_pending: bool,
    /// An Execute on the account to act on once it is answered.
    pending_account_action: Option<server_account::AccountAction>,
    /// Disable (/1/x/4) in force until then.
    disabled_until: Option<Instant>,
    /// See [`Client::set_account_defaults`].
    account_defaults: Vec<(u16, Value)>,
    /// Composite operations offered, Sends in flight (`composite.rs`).
    composite: composite::CompositeState,
}

/// Largest request body the client reassembles from Block1 blocks on a path
/// without [`Client::accept_block1`] (RFC 7959 §2.5); a larger one is
/// refused 4.13 Request Entity Too Large with this as Size1 (§2.9.3).
pub const BLOCK1_BODY_LIMIT: usize = 64 * 1024;

impl Client {
    pub fn new(config: ClientConfig, store: ObjectStore) -> Self {
        let layer = MessageLayer::new(config.seed);
        let mut client = Client {
            config,
            store,
            layer,
            state: RegistrationState::Idle,
            location: None,
            reg_exchange: None,
            next_update: None,
            retry_at: None,
            failures: 0,
            objects_changed: false,
            attributes: BTreeMap::new(),
            observations: Vec::new(),
            notify_exchanges: HashMap::new(),
            sequence: 2,
            events: VecDeque::new(),
            bs: None,
            bs_exchange: None,
            bs_retry_at: None,
            bs_failures: 0,
            execute_refusals: HashMap::new(),
            block1: HashMap::new(),
            block1_inbox: crate::coap::block::Block1Inbox::new(
                BLOCK1_BODY_LIMIT,
                crate::coap::block::MAX_SZX,
            ),
            block1_ignored: false,
            block2_szx: None,
            lifetime_changed: false,
            update_pending: false,
            pending_account_action: None,
            disabled_until: None,
            account_defaults: Vec::new(),
            composite: composite::CompositeState::default(),
        };
        client.ensure_bootstrap_account();
        client
    }

    /// Sends Register. With a Bootstrap-Server account, Register goes to the
    /// first LwM2M Server account the store holds, and a client without
    /// one bootstraps instead (Core §6.1.5).
    pub fn start(&mut self, now: Instant) {
        self.retry_at = None;
        if self.config.bootstrap.is_some() {
            match self.select_account() {
                Ok(_) => self.send_register(now),
                Err(reason) => {
                    tracing::info!(endpoint = %self.config.endpoint, %reason, "no usable server account; bootstrapping");
                    self.bootstrap(now);
                }
            }
        } else {
            self.send_register(now);
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends De-register (if registered) and cancels all observations.
    pub fn stop(&mut self, now: Instant) {
        self.bs = None;
        self.bs_retry_at = None;
        if let Some(id) = self.bs_exchange.take() {
            self.layer.cancel(id);
        }
        self.observations.clear();
        for (id, _) in self.notify_exchanges.drain() {
            self.layer.cancel(id);
        }
        self.next_update = None;
        self.retry_at = None;
        if let Some((id, _)) = self.reg_exchange.take() {
            self.layer.cancel(id);
        }
        match (&self.state, self.location.clone()) {
            (RegistrationState::Registered { .. }, Some(location)) => {
                let id = self.layer.send(
                    now,
                    self.config.server,
                    registration::deregister(&location),
                    true,
                );
                self.reg_exchange = Some((id, RegOp::Deregister));
                self.state = RegistrationState::Deregistering;
            }
            _ => {
                self.location = None;
                self.state = RegistrationState::Idle;
            }
        }
    }

    /// Sends a registration Update now (the client also does so by itself before the lifetime ends).
    pub fn trigger_update(&mut self, now: Instant) {
        match self.state {
            RegistrationState::Registered { .. } if self.reg_exchange.is_none() => {
                self.send_update(now)
            }
            RegistrationState::Failed { .. } => self.start(now),
            _ => {}
        }
    }

    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// Makes Execute on `path` answer `refusal` (code, diagnostic) instead
    /// of 2.04, until set to `None`: the device decides whether its state
    /// allows the operation, e.g. object 5's Update only in Downloaded
    /// (answered 4.05, [`crate::firmware::execute_update_response`]).
    pub fn set_execute_refusal(&mut self, path: Path, refusal: Option<(u16, String)>) {
        match refusal {
            Some(r) => {
                self.execute_refusals.insert(path, r);
            }
            None => {
                self.execute_refusals.remove(&path);
            }
        }
    }

    /// Accepts Block1 Writes (RFC 7959) to the resource `path` with bodies
    /// up to `max_size` bytes in blocks of at most 2^(`max_szx`+4) bytes,
    /// e.g. object 5's Package (/5/0/0) pushed by the server. The blocks are
    /// reassembled here and the whole body is then written as one Write.
    pub fn accept_block1(&mut self, path: Path, max_size: usize, max_szx: u8) {
        self.block1.insert(
            path,
            crate::coap::block::Block1Assembler::new(max_size, max_szx),
        );
    }

    /// Fault injection: behave like a device without block-wise transfer
    /// (RFC 7959), which takes each Block1 request's payload for the whole
    /// body and answers it as such — what a conformance case expects the
    /// server to detect. Paths set up with [`Client::accept_block1`] still
    /// reassemble. Off by default: the client reassembles every Block1 body.
    pub fn ignore_block1(&mut self, ignore: bool) {
        self.block1_ignored = ignore;
    }

    /// Answers Reads, Observes and notifications whose payload is larger
    /// than 2^(`szx`+4) bytes with Block2 (RFC 7959 §2.4, §2.6), the way a
    /// device with a small buffer does: the first block with M=1, ETag and
    /// Size2, the rest when the server asks for it. `None` (the default)
    /// sends any payload in one message. Either way a request carrying
    /// Block2 gets the block it asks for, at most this size.
    pub fn set_block2_size(&mut self, szx: Option<u8>) {
        self.block2_szx = szx.map(|s| s.min(crate::coap::block::MAX_SZX));
    }

    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    /// Write-Attributes the server set, by path.
    pub fn attributes(&self) -> &BTreeMap<Path, Attributes> {
        &self.attributes
    }

    /// Paths currently observed, in the order the observations were made.
    pub fn observed_paths(&self) -> Vec<Path> {
        self.observations.iter().map(|o| o.path).collect()
    }

    /// Device-side changes outside any server request, e.g. the device creating an
    /// instance at boot; the store is the client's, so it is reached through here.
    /// The next Update carries the object list, in case instances changed.
    pub fn store_mut(&mut self) -> &mut ObjectStore {
        self.objects_changed = true;
        &mut self.store
    }

    /// A device-side change of a value (a sensor reading, a counter); notifies observers.
    ///
    /// The value must fit the resource's type; an Integer is accepted for a
    /// Time, Unsigned Integer (when not negative) or Float resource and
    /// converted, so callers need not know every resource's exact type.
    pub fn set_value(&mut self, now: Instant, path: Path, value: Value) -> Result<(), StoreError> {
        if path.depth() < 3 {
            return Err(StoreError::NotFound(path));
        }
        let def = self
            .config
            .registry
            .resource(&path)
            .ok_or(StoreError::Unknown(path))?;
        let value = coerce(def.kind, value).map_err(|got| StoreError::WrongType {
            path,
            expected: format!("{:?}", def.kind),
            got,
        })?;
        let instance = Path::from_ids(&path.ids()[..2]).unwrap_or(Path::ROOT);
        let new_instance = !self.store.instances().any(|i| i == instance);
        self.store.set(path, value);
        if new_instance {
            self.objects_changed_now(now);
        }
        self.on_change(now, &[path]);
        Ok(())
    }

    /// Handles one datagram. Notifications held back while a Confirmable
    /// one was outstanding (see [`Client::poll_timeout`]) go out once its
    /// ACK has come.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.layer.handle_datagram(now, peer, datagram);
        self.process_layer_events(now);
        self.notify_due(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.process_layer_events(now);
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.send_register(now);
        }
        if self.bs_retry_at.is_some_and(|t| t <= now) {
            self.bs_retry_at = None;
            self.send_bootstrap_request(now);
        }
        if self.bs.as_ref().is_some_and(|s| s.deadline() <= now) {
            self.bootstrap_failed(now, "no Bootstrap-Finish in time".into());
        }
        if self.next_update.is_some_and(|t| t <= now)
            && self.reg_exchange.is_none()
            && matches!(self.state, RegistrationState::Registered { .. })
        {
            self.send_update(now);
        }
        self.notify_due(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let update = self.next_update.filter(|_| self.reg_exchange.is_none());
        // An observer with a Confirmable notification outstanding gets
        // nothing more until it is acknowledged or times out (the layer's
        // own timeout wakes us for that).
        let observe = self
            .observations
            .iter()
            .filter(|o| !self.con_outstanding(o.peer))
            .filter_map(|o| self.observation_deadline(o))
            .min();
        let bootstrap = self.bs.as_ref().map(|s| s.deadline());
        [
            self.layer.poll_timeout(),
            self.retry_at,
            update,
            observe,
            self.bs_retry_at,
            bootstrap,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn send_register(&mut self, now: Instant) {
        if let Some((id, _)) = self.reg_exchange.take() {
            self.layer.cancel(id);
        }
        let packet = registration::register(&self.config, &self.store);
        // The list just sent is current; a change from here on needs an Update.
        self.objects_changed = false;
        let id = self.layer.send(now, self.config.server, packet, true);
        self.reg_exchange = Some((id, RegOp::Register));
        self.next_update = None;
        self.state = RegistrationState::Registering;
    }

    fn send_update(&mut self, now: Instant) {
        let Some(location) = self.location.clone() else {
            return self.send_register(now);
        };
        let packet = self.update_packet(&location);
        self.objects_changed = false;
        let id = self.layer.send(now, self.config.server, packet, true);
        self.reg_exchange = Some((id, RegOp::Update));
        self.next_update = None;
    }

    /// Updates go out at half the lifetime, leaving the other half for
    /// retransmissions (MAX_TRANSMIT_WAIT is 93 s) and a re-registration.
    fn update_interval(&self) -> Duration {
        (self.config.lifetime / 2).max(Duration::from_secs(1))
    }

    /// When the next Update is due after a successful Register/Update: at
    /// once if the object list or the lifetime changed, or an Update was
    /// triggered, while that request was in flight.
    fn next_update_after(&self, now: Instant) -> Instant {
        if self.update_owed() {
            now
        } else {
            now + self.update_interval()
        }
    }

    fn fail(&mut self, now: Instant, reason: String) {
        tracing::warn!(endpoint = %self.config.endpoint, %reason, "registration failed");
        let backoff = self.config.retry.backoff(self.failures);
        self.failures += 1;
        self.retry_at = Some(now + backoff);
        self.location = None;
        self.next_update = None;
        self.state = RegistrationState::Failed {
            reason: reason.clone(),
        };
        self.events
            .push_back(ClientEvent::RegistrationFailed { reason });
        // Core §6.2.1.1: when the retries are exhausted, bootstrap again.
        if self.config.bootstrap.is_some() && self.failures >= self.config.retry.bootstrap_after {
            tracing::info!(endpoint = %self.config.endpoint, failures = self.failures, "registration keeps failing; falling back to bootstrap");
            self.retry_at = None;
            self.bootstrap(now);
        }
    }

    fn process_layer_events(&mut self, now: Instant) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                // RFC 7252 §5.4.1: a request with a critical option the client
                // does not implement is not acted on, whoever sent it.
                ExchangeEvent::Request { peer, message }
                    if critical::refusal(&message, critical::CLIENT_REQUEST_OPTIONS).is_some() =>
                {
                    match critical::refusal(&message, critical::CLIENT_REQUEST_OPTIONS) {
                        Some(critical::Refusal::Respond(answer)) => {
                            self.layer.respond(peer, &message, answer)
                        }
                        _ => self.layer.reject(peer, &message),
                    }
                }
                ExchangeEvent::Request { peer, message } if self.is_bootstrap_peer(peer) => {
                    // RFC 7959 §2.5: a Bootstrap-Write sent in Block1 blocks
                    // (a certificate-mode Security instance) is acted on
                    // once, whole; blocks before the last get 2.31 Continue,
                    // and the final answer echoes the last block's Block1.
                    let (whole, echo) = match self.bootstrap_block1(now, peer, &message) {
                        Ok(whole) => whole,
                        Err(answer) => {
                            self.layer.respond(peer, &message, answer);
                            continue;
                        }
                    };
                    let (mut response, after) = self.serve_bootstrap(now, &whole);
                    if let Some(echo) = echo {
                        echo.set_on(&mut response, crate::coap::block::BlockKind::Block1);
                    }
                    self.layer.respond(peer, &message, response);
                    if after == bootstrap::AfterReply::Register {
                        self.register_after_bootstrap(now);
                    }
                }
                ExchangeEvent::Response { id, message, .. } if self.bs_exchange == Some(id) => {
                    self.bootstrap_request_outcome(now, Ok(message))
                }
                ExchangeEvent::Request { peer, .. }
                    if peer == self.config.server && self.is_disabled(now) =>
                {
                    tracing::debug!(%peer, "request ignored: the server account is disabled");
                }
                ExchangeEvent::Request { peer, message } => {
                    // Notifications a request causes go out after its response.
                    let mut changed = Vec::new();
                    let response = self.handle_request(now, peer, &message, &mut changed);
                    self.layer.respond(peer, &message, response);
                    if !changed.is_empty() {
                        self.on_change(now, &changed);
                    }
                    // Likewise an Update or De-register the request causes.
                    self.after_account_request(now, &changed);
                }
                ExchangeEvent::Response { id, message, .. } if self.is_send(id) => {
                    self.send_outcome(id, Some(&message))
                }
                ExchangeEvent::Response { id, message, .. } => {
                    self.registration_outcome(now, id, Ok(message))
                }
                ExchangeEvent::Unsolicited { peer, message } => self.layer.reject(peer, &message),
                ExchangeEvent::Acknowledged { id } => {
                    self.notify_exchanges.remove(&id);
                }
                ExchangeEvent::Reset { id, peer, token } => {
                    if let Some(id) = id {
                        if self.bs_exchange == Some(id) {
                            self.bootstrap_request_outcome(
                                now,
                                Err("the Bootstrap-Server answered with Reset".into()),
                            );
                            continue;
                        }
                        if self.reg_exchange.is_some_and(|(r, _)| r == id) {
                            self.registration_outcome(
                                now,
                                id,
                                Err("the server answered with Reset".into()),
                            );
                            continue;
                        }
                        if self.is_send(id) {
                            self.send_outcome(id, None);
                            continue;
                        }
                        self.notify_exchanges.remove(&id);
                    }
                    // RFC 7641 §3.6: Reset to a notification cancels the observation.
                    if let Some(token) = token {
                        self.cancel_observation(peer, &token);
                    }
                }
                ExchangeEvent::Timeout {
                    id,
                    peer,
                    token,
                    transmissions,
                } => {
                    if self.bs_exchange == Some(id) {
                        let reason = format!("no response after {transmissions} transmissions");
                        self.bootstrap_request_outcome(now, Err(reason));
                    } else if self.reg_exchange.is_some_and(|(r, _)| r == id) {
                        let reason = format!("no response after {transmissions} transmissions");
                        self.registration_outcome(now, id, Err(reason));
                    } else if self.is_send(id) {
                        self.send_outcome(id, None);
                    } else if self.notify_exchanges.remove(&id).is_some() {
                        // RFC 7641 §4.5: an unacknowledged CON notification ends the observation.
                        tracing::info!(%peer, "CON notification never acknowledged; observation dropped");
                        self.cancel_observation(peer, &token);
                    }
                }
                ExchangeEvent::Malformed { peer, reason } => {
                    self.events
                        .push_back(ClientEvent::Malformed { peer, reason });
                }
            }
        }
    }

    /// A request from the Bootstrap-Server through the Block1 inbox: the
    /// request whole (and the Block1 its answer echoes), or the answer to
    /// send instead (2.31 Continue, or a refusal such as 4.08, 4.13).
    /// Bootstrap-Finish (`/bs`) and requests while Block1 is ignored pass as
    /// they are.
    fn bootstrap_block1(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
    ) -> Result<(Packet, Option<crate::coap::block::BlockOption>), Packet> {
        use crate::coap::block::Block1Outcome;
        let segments = options::strings(message, CoapOption::UriPath);
        let Ok(path) = Path::from_segments(&segments) else {
            return Ok((message.clone(), None));
        };
        if self.block1_ignored {
            return Ok((message.clone(), None));
        }
        match self.block1_inbox.handle(now, (peer, path), message) {
            Block1Outcome::Single => Ok((message.clone(), None)),
            Block1Outcome::Answer(answer) => Err(answer),
            Block1Outcome::Complete { request, echo } => Ok((request, echo)),
        }
    }

    fn registration_outcome(
        &mut self,
        now: Instant,
        id: ExchangeId,
        result: Result<Packet, String>,
    ) {
        let Some((reg_id, op)) = self.reg_exchange else {
            return;
        };
        if reg_id != id {
            return;
        }
        self.reg_exchange = None;
        let code = result
            .as_ref()
            .ok()
            .map(|m| code::to_number(m.header.code.into()));
        match (op, code) {
            (RegOp::Register, Some(201)) => {
                let message = result.unwrap_or_default();
                let location = format!(
                    "/{}",
                    options::strings(&message, CoapOption::LocationPath).join("/")
                );
                tracing::info!(endpoint = %self.config.endpoint, %location, "registered");
                self.failures = 0;
                self.disabled_until = None;
                self.lifetime_changed = false;
                self.update_pending = false;
                self.location = Some(location.clone());
                self.next_update = Some(self.next_update_after(now));
                self.state = RegistrationState::Registered {
                    location: location.clone(),
                };
                self.events.push_back(ClientEvent::Registered { location });
            }
            (RegOp::Register, _) => {
                let reason = match (code, result) {
                    (Some(c), _) => format!("Register refused with {}.{:02}", c / 100, c % 100),
                    (None, Err(reason)) => reason,
                    (None, Ok(_)) => "Register failed".to_string(),
                };
                self.fail(now, reason);
            }
            (RegOp::Update, Some(204)) => {
                self.next_update = Some(self.next_update_after(now));
                self.events.push_back(ClientEvent::Updated);
            }
            (RegOp::Update, _) => {
                // LwM2M 1.1 Core §6.2.2: a failed Update (4.04: the server
                // forgot us) is followed by a new Register.
                tracing::info!(endpoint = %self.config.endpoint, ?code, "Update failed; registering again");
                self.location = None;
                self.send_register(now);
            }
            (RegOp::Deregister, _) => {
                self.location = None;
                self.state = RegistrationState::Idle;
                self.deregistered();
                self.events.push_back(ClientEvent::Deregistered);
            }
        }
    }

    /// Values at `changed` paths moved: observations covering them notify,
    /// now or when pmin allows.
    fn on_change(&mut self, now: Instant, changed: &[Path]) {
        for i in 0..self.observations.len() {
            let obs = &self.observations[i];
            if !changed.iter().any(|c| obs.covers(c)) {
                continue;
            }
            let records = self.hide_unreadable(obs.peer, self.observed_records(obs));
            if records == obs.last_records {
                continue;
            }
            let attrs = self.pacing(obs);
            let numeric = |r: &[crate::format::Record]| match r {
                [one] => one.value.as_f64(),
                _ => None,
            };
            let meets = match (
                obs.path.depth() >= 3,
                numeric(&obs.last_records),
                numeric(&records),
            ) {
                (true, Some(old), Some(new)) => observe::numeric_condition(&attrs, old, new),
                _ => true,
            };
            if meets {
                self.observations[i].pending = true;
            }
        }
        self.notify_due(now);
    }

    fn observation_deadline(&self, obs: &Observation) -> Option<Instant> {
        let attrs = self.pacing(obs);
        let pending = obs.pending.then(|| obs.last_sent + observe::pmin(&attrs));
        let periodic = observe::pmax(&attrs).map(|p| obs.last_sent + p);
        [pending, periodic].into_iter().flatten().min()
    }

    /// Whether a Confirmable notification to `peer` awaits its ACK.
    fn con_outstanding(&self, peer: SocketAddr) -> bool {
        self.notify_exchanges.values().any(|(_, p)| *p == peer)
    }

    /// Sends every notification whose time has come — to an observer with
    /// no Confirmable notification outstanding: "servers MUST strictly
    /// limit the number of simultaneous outstanding notifications/responses
    /// that they transmit to a given client to NSTART (1 by default)"
    /// (RFC 7641 §4.5.1, RFC 7252 §4.7). A change meanwhile stays pending,
    /// and the notification sent afterwards carries the state of that
    /// moment, the newest (§4.5.2).
    fn notify_due(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.observations.len() {
            let due = !self.con_outstanding(self.observations[i].peer)
                && self
                    .observation_deadline(&self.observations[i])
                    .is_some_and(|t| t <= now);
            if due && !self.notify(now, i) {
                continue; // observation removed
            }
            i += 1;
        }
    }

    /// Sends one notification; returns false when the observation ended.
    fn notify(&mut self, now: Instant, index: usize) -> bool {
        let obs = self.observations[index].clone();
        if !self.may_notify(&obs) {
            // Access Control (Core §7.3.2.5): no Notify to a server that
            // may no longer read the path; the observation stays, in case
            // the right comes back, and waits another period.
            tracing::debug!(peer = %obs.peer, path = %obs.path, "notification withheld: no Read right");
            let o = &mut self.observations[index];
            o.last_sent = now;
            o.pending = false;
            return true;
        }
        let sequence = self.sequence;
        self.sequence = crate::coap::observe::next(self.sequence);
        let confirmable = obs.next_is_confirmable(now);
        let mut packet = Packet::new();
        packet.set_token(obs.token.clone());
        let payload = match obs.composite {
            Some(_) => self.observation_payload(&obs),
            // An Object's notification carries only the instances the
            // observer may read (Core §7.3.2.4, §7.3.2.5).
            None => self.read_payload_as(Some(obs.peer), &obs.path, Some(obs.format)),
        };
        let alive = match payload {
            Ok((format, payload)) => {
                packet.header.code = MessageClass::from(code::from_number(205).unwrap_or(0x45));
                options::set_uint(&mut packet, CoapOption::Observe, sequence);
                options::set_uint(
                    &mut packet,
                    CoapOption::ContentFormat,
                    u32::from(format.code()),
                );
                packet.payload = payload;
                // RFC 7959 §2.6: a notification too large for one block
                // carries the first; the server fetches the rest with GETs.
                self.first_block2(&mut packet, format);
                true
            }
            Err(c) => {
                // RFC 7641 §4.2: an error notification ends the observation.
                packet.header.code = MessageClass::from(code::from_number(c).unwrap_or(0x84));
                false
            }
        };
        let id = self.layer.send(now, obs.peer, packet, confirmable && alive);
        if confirmable && alive {
            self.notify_exchanges
                .insert(id, (obs.token.clone(), obs.peer));
        }
        if !alive {
            self.observations.remove(index);
            return false;
        }
        let records =
            self.hide_unreadable(obs.peer, self.observed_records(&self.observations[index]));
        let o = &mut self.observations[index];
        o.last_sent = now;
        o.last_records = records;
        o.pending = false;
        o.sent += 1;
        if confirmable {
            o.last_con = now;
        }
        true
    }

    fn cancel_observation(&mut self, peer: SocketAddr, token: &[u8]) {
        let before = self.observations.len();
        self.observations
            .retain(|o| !(o.peer == peer && o.token == token));
        if self.observations.len() != before {
            tracing::debug!(%peer, token = %hex::encode(token), "observation cancelled");
        }
    }
}

/// Fits a device-side value to a resource type (see [`Client::set_value`]);
/// the error names the value's type.
fn coerce(kind: ResourceType, value: Value) -> Result<Value, String> {
    Ok(match (kind, value) {
        (ResourceType::String, v @ Value::String(_))
        | (ResourceType::Integer, v @ Value::Integer(_))
        | (ResourceType::UnsignedInteger, v @ Value::Unsigned(_))
        | (ResourceType::Float, v @ Value::Float(_))
        | (ResourceType::Boolean, v @ Value::Boolean(_))
        | (ResourceType::Opaque, v @ Value::Opaque(_))
        | (ResourceType::Time, v @ Value::Time(_))
        | (ResourceType::Objlnk, v @ Value::Objlnk(..))
        | (ResourceType::Corelnk, v @ Value::Corelnk(_)) => v,
        (ResourceType::Time, Value::Integer(i)) => Value::Time(i),
        (ResourceType::UnsignedInteger, Value::Integer(i)) if i >= 0 => Value::Unsigned(i as u64),
        (ResourceType::Integer, Value::Unsigned(u)) if i64::try_from(u).is_ok() => {
            Value::Integer(u as i64)
        }
        (ResourceType::Float, Value::Integer(i)) => Value::Float(i as f64),
        (ResourceType::Float, Value::Unsigned(u)) => Value::Float(u as f64),
        (_, v) => return Err(v.type_name().to_string()),
    })
}
