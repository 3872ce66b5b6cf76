//! The embedded LwM2M Bootstrap-Server: the sans-IO
//! [`lwm2m::bootstrap::BootstrapServer`] on its own UDP socket, plain CoAP or
//! coaps, driven by the same loop as the LwM2M server, with its own event
//! history and message log.
//!
//! A case sets the script an endpoint gets ([`BootstrapServerHandle::set_script`])
//! and the bootstrap account's per-device PSK
//! ([`BootstrapServerHandle::set_psk`]), powers the device, and waits for
//! [`await_bootstrap_finished`](BootstrapServerHandle::await_bootstrap_finished),
//! which fails with the exact operation and response code when the device
//! answers one wrongly.
//!
//! Under DTLS a Bootstrap-Request whose `ep` is not the endpoint the session's
//! PSK identity is bound to is answered 4.03 Forbidden here, before the core
//! sees it (LwM2M 1.1 Core §7.1: the bootstrap credentials are per device).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use dtls::Psk;
use lwm2m::bootstrap::{BootstrapEvent, BootstrapScript, BootstrapServer, BootstrapServerConfig};
use lwm2m::coap::{code, options, wire, Transmit};
use lwm2m::server::SecurityEvent;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::credentials::CredentialStore;
use crate::error::ServerError;
use crate::event_history::{EventSeq, HistoryEvent};
use crate::handle::ServerOptions;
use crate::shared::Shared;
use crate::transport::{SecurityConfig, Transport};
use crate::udp_loop::Core;

/// What the bootstrap server's event history holds.
#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapServerEvent {
    /// The bootstrap core's report (request, each operation, finish, failure).
    Bootstrap(BootstrapEvent),
    /// A report of the DTLS transport.
    Security(SecurityEvent),
    /// A Bootstrap-Request for `endpoint` from a client authenticated as
    /// another device's identity; answered 4.03 Forbidden.
    Forbidden {
        peer: SocketAddr,
        endpoint: String,
        identity: Option<String>,
        reason: String,
    },
}

impl HistoryEvent for BootstrapServerEvent {
    fn is_malformed(&self) -> bool {
        matches!(
            self,
            BootstrapServerEvent::Bootstrap(BootstrapEvent::Malformed { .. })
        )
    }
}

/// A bootstrap session that ended well.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapOutcome {
    /// The `Finished` event's number.
    pub seq: EventSeq,
    /// When the server sent Bootstrap-Finish (for a script without one,
    /// when the session ended): a Register from before then was made with
    /// the old configuration.
    pub finished_at: Option<std::time::Instant>,
    pub endpoint: String,
    /// Where the Bootstrap-Request came from.
    pub peer: Option<SocketAddr>,
    /// Each operation of the session with the code the device answered:
    /// `(index, "Bootstrap-Write /0/1", 204)`.
    pub operations: Vec<(usize, String, u16)>,
}

/// What a handle asks the task to do.
enum BsCommand {
    SetScript {
        endpoint: String,
        script: BootstrapScript,
        done: oneshot::Sender<()>,
    },
    RemoveScript {
        endpoint: String,
        done: oneshot::Sender<bool>,
    },
    SetDefaultScript {
        script: Option<BootstrapScript>,
        done: oneshot::Sender<()>,
    },
    /// Server-initiated bootstrap (Core §6.1.4).
    Start {
        endpoint: String,
        peer: SocketAddr,
        done: oneshot::Sender<bool>,
    },
    Shutdown,
}

struct BsCore {
    core: BootstrapServer,
    /// Set under DTLS: the identity/endpoint binding to check.
    credentials: Option<CredentialStore>,
    /// 4.03 answers made here.
    refusals: Vec<Transmit>,
    forbidden: Vec<BootstrapServerEvent>,
}

impl BsCore {
    /// 4.03 for a Bootstrap-Request naming an endpoint the session identity
    /// is not bound to; `true` when the datagram was answered here.
    fn refuse_foreign_endpoint(
        &mut self,
        peer: SocketAddr,
        identity: Option<&str>,
        datagram: &[u8],
    ) -> bool {
        let Some(store) = &self.credentials else {
            return false;
        };
        let Ok(request) = wire::decode(datagram) else {
            return false;
        };
        if request.header.code != MessageClass::Request(RequestType::Post)
            || options::strings(&request, CoapOption::UriPath) != ["bs"]
        {
            return false;
        }
        let Some(endpoint) = options::query(&request)
            .into_iter()
            .find(|(k, _)| k == "ep")
            .and_then(|(_, v)| v)
        else {
            return false;
        };
        let Err(reason) = store.authorize(&endpoint, identity) else {
            return false;
        };
        tracing::warn!(%peer, %endpoint, ?identity, %reason, "Bootstrap-Request forbidden");
        let mut answer = Packet::new();
        answer.header.set_type(match request.header.get_type() {
            MessageType::Confirmable => MessageType::Acknowledgement,
            _ => MessageType::NonConfirmable,
        });
        answer.header.message_id = request.header.message_id;
        answer.header.code = MessageClass::from(code::from_number(403).unwrap_or(0x83));
        answer.set_token(request.get_token().to_vec());
        answer.payload = reason.clone().into_bytes();
        self.refusals.push(Transmit {
            destination: peer,
            payload: wire::encode(&answer),
        });
        self.forbidden.push(BootstrapServerEvent::Forbidden {
            peer,
            endpoint,
            identity: identity.map(str::to_string),
            reason,
        });
        true
    }
}

impl Core for BsCore {
    type Event = BootstrapServerEvent;
    type Command = BsCommand;

    fn handle_datagram(
        &mut self,
        now: std::time::Instant,
        peer: SocketAddr,
        identity: Option<&str>,
        datagram: &[u8],
    ) {
        if !self.refuse_foreign_endpoint(peer, identity, datagram) {
            self.core.handle_datagram(now, peer, datagram);
        }
    }

    fn handle_timeout(&mut self, now: std::time::Instant) {
        self.core.handle_timeout(now)
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.core.poll_timeout()
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.refusals.is_empty() {
            return Some(self.refusals.remove(0));
        }
        self.core.poll_transmit()
    }

    fn command(&mut self, now: std::time::Instant, command: BsCommand) -> bool {
        match command {
            BsCommand::SetScript {
                endpoint,
                script,
                done,
            } => {
                self.core.set_script(endpoint, script);
                let _ = done.send(());
            }
            BsCommand::RemoveScript { endpoint, done } => {
                let _ = done.send(self.core.remove_script(&endpoint).is_some());
            }
            BsCommand::SetDefaultScript { script, done } => {
                self.core.set_default_script(script);
                let _ = done.send(());
            }
            BsCommand::Start {
                endpoint,
                peer,
                done,
            } => {
                let _ = done.send(self.core.start(now, &endpoint, peer));
            }
            BsCommand::Shutdown => return false,
        }
        true
    }

    fn publish_events(&mut self, shared: &Shared<BootstrapServerEvent>) {
        for event in self.forbidden.drain(..) {
            shared.publish(event);
        }
        while let Some(event) = self.core.poll_event() {
            tracing::info!(event = %crate::describe::describe_bootstrap_event(&event), "bootstrap event");
            shared.publish(BootstrapServerEvent::Bootstrap(event));
        }
    }

    fn security_event(event: SecurityEvent) -> BootstrapServerEvent {
        BootstrapServerEvent::Security(event)
    }

    fn malformed(peer: SocketAddr, reason: String) -> BootstrapServerEvent {
        BootstrapServerEvent::Bootstrap(BootstrapEvent::Malformed { peer, reason })
    }
}

/// The embedded Bootstrap-Server.
pub struct EmbeddedBootstrapServer;

impl EmbeddedBootstrapServer {
    /// Binds `addr` (coaps for [`SecurityConfig::Psk`]) with default options.
    /// No endpoint has a script yet: Bootstrap-Requests are refused (4.00)
    /// until one is set.
    pub async fn bind(
        addr: SocketAddr,
        config: BootstrapServerConfig,
        security: SecurityConfig,
    ) -> Result<BootstrapServerHandle, ServerError> {
        Self::bind_with(addr, config, security, ServerOptions::default()).await
    }

    pub async fn bind_with(
        addr: SocketAddr,
        config: BootstrapServerConfig,
        security: SecurityConfig,
        options: ServerOptions,
    ) -> Result<BootstrapServerHandle, ServerError> {
        let credentials = CredentialStore::new();
        let transport = Transport::new(&security, &credentials)?;
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let shared = Arc::new(Shared::new(options.log_capacity, options.event_capacity));
        let (commands, rx) = mpsc::unbounded_channel();
        let core = BsCore {
            core: BootstrapServer::new(config),
            credentials: transport.is_secure().then(|| credentials.clone()),
            refusals: Vec::new(),
            forbidden: Vec::new(),
        };
        let span = tracing::info_span!("bootstrap_server", %local_addr, scheme = security.scheme());
        // Its own thread, as the LwM2M server's: no wake-up of a worker on
        // another core per datagram (docs/perf/firmware-datapath.md).
        let task = crate::udp_loop::spawn(
            "bootstrap-server",
            socket,
            core,
            transport,
            shared.clone(),
            rx,
            span,
        )
        .map_err(|source| ServerError::Bind { addr, source })?;
        tracing::info!(%local_addr, scheme = security.scheme(), "LwM2M bootstrap server listening");
        Ok(BootstrapServerHandle {
            local_addr,
            shared,
            commands,
            task: Arc::new(Mutex::new(Some(task))),
            credentials,
            security,
        })
    }
}

/// A cheap, cloneable handle on the running bootstrap server. It stops when
/// [`shutdown`](Self::shutdown) is called or the last handle is dropped.
#[derive(Clone)]
pub struct BootstrapServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared<BootstrapServerEvent>>,
    commands: mpsc::UnboundedSender<BsCommand>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    credentials: CredentialStore,
    security: SecurityConfig,
}

impl std::fmt::Debug for BootstrapServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapServerHandle")
            .field("local_addr", &self.local_addr)
            .field("scheme", &self.security.scheme())
            .field("running", &self.is_running())
            .finish()
    }
}

impl BootstrapServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `coaps://127.0.0.1:5784` or `coap://...`: the Bootstrap-Server URI a
    /// device is given.
    pub fn uri(&self) -> String {
        crate::transport::uri(self.security.scheme(), self.local_addr)
    }

    pub fn is_secure(&self) -> bool {
        matches!(self.security, SecurityConfig::Psk(_))
    }

    pub fn is_running(&self) -> bool {
        !self.shared.is_closed()
    }

    // ----- credentials -----

    /// The bootstrap account's PSK credentials (per device).
    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    pub fn set_psk(&self, endpoint: &str, psk: Psk) {
        self.credentials.set(endpoint, psk);
    }

    pub fn remove_psk(&self, endpoint: &str) -> bool {
        self.credentials.remove(endpoint)
    }

    /// Makes, sets and returns a fresh bootstrap PSK for `endpoint`.
    pub fn provision_psk(&self, endpoint: &str) -> Result<Psk, ServerError> {
        self.credentials
            .provision(endpoint)
            .map_err(|e| ServerError::Credential {
                endpoint: endpoint.into(),
                reason: e.to_string(),
            })
    }

    // ----- scripts -----

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> BsCommand,
    ) -> Result<T, ServerError> {
        let (done, answer) = oneshot::channel();
        self.commands
            .send(make(done))
            .map_err(|_| ServerError::Shutdown)?;
        answer.await.map_err(|_| ServerError::Shutdown)
    }

    /// The script `endpoint`'s next Bootstrap-Request runs (replaces any
    /// earlier one). In force once this returns.
    pub async fn set_script(
        &self,
        endpoint: &str,
        script: BootstrapScript,
    ) -> Result<(), ServerError> {
        let endpoint = endpoint.to_string();
        self.ask(|done| BsCommand::SetScript {
            endpoint,
            script,
            done,
        })
        .await
    }

    /// Forgets `endpoint`'s script; whether it had one.
    pub async fn remove_script(&self, endpoint: &str) -> Result<bool, ServerError> {
        let endpoint = endpoint.to_string();
        self.ask(|done| BsCommand::RemoveScript { endpoint, done })
            .await
    }

    /// The script for endpoints without one of their own (`None`: refuse them).
    pub async fn set_default_script(
        &self,
        script: Option<BootstrapScript>,
    ) -> Result<(), ServerError> {
        self.ask(|done| BsCommand::SetDefaultScript { script, done })
            .await
    }

    /// Server-initiated bootstrap (Core §6.1.4): runs `endpoint`'s script
    /// towards `peer` now; `false` when there is no script for it.
    pub async fn start(&self, endpoint: &str, peer: SocketAddr) -> Result<bool, ServerError> {
        let endpoint = endpoint.to_string();
        self.ask(|done| BsCommand::Start {
            endpoint,
            peer,
            done,
        })
        .await
    }

    // ----- events -----

    pub fn current_seq(&self) -> EventSeq {
        self.shared.state().events.last()
    }

    pub fn events_since(&self, after: EventSeq) -> Vec<(EventSeq, BootstrapServerEvent)> {
        self.shared.state().events.since(after)
    }

    /// The first event numbered above `after` that `pred` accepts (also one
    /// that happened before this call).
    pub async fn await_event(
        &self,
        after: EventSeq,
        timeout: Duration,
        pred: impl Fn(&BootstrapServerEvent) -> bool + Send + Sync,
    ) -> Result<(EventSeq, BootstrapServerEvent), ServerError> {
        let pick = |e: &BootstrapServerEvent| pred(e).then(|| e.clone());
        self.shared
            .await_event(after, timeout, pick, || {
                "a matching bootstrap server event".into()
            })
            .await
    }

    /// `endpoint`'s bootstrap session after `after`, to its end: `Ok` when
    /// every operation got an expected answer; `ServerError::BootstrapFailed`
    /// naming the operation, the codes expected and the code got when one
    /// did not — or when the Bootstrap-Request itself was refused (no script:
    /// 4.00; identity of another device: 4.03).
    pub async fn await_bootstrap_finished(
        &self,
        endpoint: &str,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<BootstrapOutcome, ServerError> {
        let request_refused = |code: u16, reason: &str| ServerError::BootstrapFailed {
            endpoint: endpoint.to_string(),
            index: 0,
            op: "Bootstrap-Request".into(),
            expected: vec![204],
            got: Some(code),
            reason: reason.to_owned(),
        };
        // The end of the session: Ok when it finished, its failure otherwise.
        let pick = |e: &BootstrapServerEvent| match e {
            BootstrapServerEvent::Bootstrap(BootstrapEvent::Finished {
                endpoint: ep,
                finish_sent,
            }) if ep == endpoint => Some(Ok(*finish_sent)),
            BootstrapServerEvent::Bootstrap(BootstrapEvent::Failed {
                endpoint: ep,
                index,
                op,
                expected,
                got,
                reason,
            }) if ep == endpoint => Some(Err(ServerError::BootstrapFailed {
                endpoint: ep.clone(),
                index: *index,
                op: op.clone(),
                expected: expected.clone(),
                got: *got,
                reason: reason.clone(),
            })),
            BootstrapServerEvent::Bootstrap(BootstrapEvent::Rejected {
                endpoint: Some(ep),
                reason,
                ..
            }) if ep == endpoint => Some(Err(request_refused(400, reason))),
            BootstrapServerEvent::Forbidden {
                endpoint: ep,
                reason,
                ..
            } if ep == endpoint => Some(Err(request_refused(403, reason))),
            _ => None,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut from = after;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (seq, end) = self
                .shared
                .await_event(from, left, pick, || {
                    format!("{endpoint} to finish bootstrapping")
                })
                .await?;
            let Some(mut outcome) = self.session_ending_at(endpoint, after, seq) else {
                // A session the device began before `after` (one it was
                // still finishing when the caller started its own) is not
                // the one awaited, whether it ended well or not.
                from = seq;
                continue;
            };
            let finish_sent = end?;
            outcome.finished_at = finish_sent.or_else(|| self.shared.state().events.time_of(seq));
            return Ok(outcome);
        }
    }

    /// The session of `endpoint` that ended with event `end`, if its
    /// Bootstrap-Request came after `after`: its peer and each operation
    /// with the code the device answered. A refused Bootstrap-Request is
    /// its own session's end.
    fn session_ending_at(
        &self,
        endpoint: &str,
        after: EventSeq,
        end: EventSeq,
    ) -> Option<BootstrapOutcome> {
        let mut outcome = None;
        for (s, e) in self.events_since(after) {
            match e {
                _ if s > end => break,
                BootstrapServerEvent::Bootstrap(BootstrapEvent::Requested {
                    endpoint: ep,
                    peer,
                    ..
                }) if ep == endpoint => {
                    outcome = Some(BootstrapOutcome {
                        seq: end,
                        finished_at: None,
                        endpoint: endpoint.to_string(),
                        peer: Some(peer),
                        operations: Vec::new(),
                    });
                }
                BootstrapServerEvent::Bootstrap(BootstrapEvent::OpCompleted {
                    endpoint: ep,
                    index,
                    op,
                    code,
                    ..
                }) if ep == endpoint => {
                    if let Some(o) = outcome.as_mut() {
                        o.operations.push((index, op, code));
                    }
                }
                BootstrapServerEvent::Bootstrap(BootstrapEvent::Rejected {
                    endpoint: Some(ep),
                    ..
                })
                | BootstrapServerEvent::Forbidden { endpoint: ep, .. }
                    if s == end && ep == endpoint =>
                {
                    outcome.get_or_insert(BootstrapOutcome {
                        seq: end,
                        finished_at: None,
                        endpoint: endpoint.to_string(),
                        peer: None,
                        operations: Vec::new(),
                    });
                }
                _ => {}
            }
        }
        outcome
    }

    /// The first failed DTLS handshake after `after` claiming `identity`
    /// (`None`: any).
    pub async fn await_handshake_failed(
        &self,
        identity: Option<&str>,
        after: EventSeq,
        timeout: Duration,
    ) -> Result<(EventSeq, SecurityEvent), ServerError> {
        let pick = |e: &BootstrapServerEvent| match e {
            BootstrapServerEvent::Security(
                e @ SecurityEvent::HandshakeFailed { identity: got, .. },
            ) if identity.is_none() || got.as_deref() == identity => Some(e.clone()),
            _ => None,
        };
        self.shared
            .await_event(after, timeout, pick, || "a failed DTLS handshake".into())
            .await
    }

    crate::log_and_lifecycle::log_and_lifecycle_methods!(BsCommand::Shutdown, "bootstrap server");
}
