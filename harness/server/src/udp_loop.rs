//! The one tokio task that owns a UDP socket, its transport (plain or DTLS)
//! and a sans-IO protocol core, in the manner of quinn's endpoint driver:
//! wait for a datagram, the next deadline, a command or a credential change;
//! feed it in with the current time; then drain what the transport and the
//! core want sent and what they have to report.
//!
//! The same loop runs the LwM2M server ([`LwM2mCore`]) and the bootstrap
//! server (`crate::bootstrap_server`). Every datagram the core sees or sends
//! is logged — the decrypted CoAP under DTLS — after
//! [`Redactor::redact`](lwm2m::bootstrap::Redactor::redact), so the log and
//! the captures never hold a Security object's secret key; the real bytes go
//! on the wire. Under DTLS the capture also gets the records as they went.
//! Transport reports get a note line in the log and an event.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use lwm2m::bootstrap::Redactor;
use lwm2m::coap::{summarize, Transmit};
use lwm2m::server::{SecurityEvent, Server, ServerEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::capture::Carried;
use crate::credentials::{CredentialWatch, Revocation};
use crate::event_history::HistoryEvent;
use crate::message_log::Direction;
use crate::shared::{Command, Shared};
use crate::transport::Transport;

/// Largest UDP payload; a datagram is never truncated on receive.
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams taken off the socket in one turn of the loop before the core's
/// output is flushed and timers and commands get their turn: enough to cut
/// the wake-ups of a burst, few enough that a flood cannot hold a deadline
/// or a test step's command back for long (issue 16).
const RECEIVE_BATCH: usize = 64;

/// A sans-IO core the loop drives.
pub(crate) trait Core: Send + 'static {
    type Event: HistoryEvent;
    type Command: Send + 'static;
    /// A datagram from `peer`, who authenticated as `identity` (DTLS) or not.
    fn handle_datagram(
        &mut self,
        now: std::time::Instant,
        peer: SocketAddr,
        identity: Option<&str>,
        datagram: &[u8],
    );
    fn handle_timeout(&mut self, now: std::time::Instant);
    fn poll_timeout(&self) -> Option<std::time::Instant>;
    /// When `handle_timeout` would give memory back (the duplicate cache
    /// forgetting what is past its lifetime): not a protocol deadline, but
    /// a quiet server must still be woken for it, or a fleet that left
    /// stays in memory until the next datagram comes.
    fn poll_housekeeping(&self) -> Option<std::time::Instant> {
        None
    }
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Carries out a handle's command; `false` stops the loop.
    fn command(&mut self, now: std::time::Instant, command: Self::Command) -> bool;
    /// Moves the core's events into the history.
    fn publish_events(&mut self, shared: &Shared<Self::Event>);
    fn security_event(event: SecurityEvent) -> Self::Event;
    fn malformed(peer: SocketAddr, reason: String) -> Self::Event;
}

/// Marks the server closed however the task ends (return or panic), so that
/// waiters get `ServerError::Shutdown` instead of waiting for their timeout.
struct CloseOnDrop<E: HistoryEvent>(Arc<Shared<E>>);

impl<E: HistoryEvent> Drop for CloseOnDrop<E> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The core's clock. tokio's, so a test that pauses time drives the core too.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

struct Driver<C: Core> {
    socket: UdpSocket,
    core: C,
    transport: Transport,
    shared: Arc<Shared<C::Event>>,
    redactor: Redactor,
    /// The socket's address, the captures' other end.
    local: SocketAddr,
}

/// Starts the loop on its own thread with a current-thread runtime and
/// returns a task of the caller's runtime that ends when the loop does
/// (re-raising its panic, so `join_task` reports it).
///
/// Why a thread: on the caller's multi-thread runtime each datagram woke a
/// worker on the other core, which cost more than the protocol work
/// (fleet bench, issue 16: 0.24x the bare UDP echo rate). Here the socket,
/// the timers and the core live on one thread that epoll wakes directly;
/// handles reach it only through the command channel and read what it
/// publishes in [`Shared`], as before.
pub(crate) fn spawn<C: Core>(
    name: &str,
    socket: std::net::UdpSocket,
    core: C,
    transport: Transport,
    shared: Arc<Shared<C::Event>>,
    commands: mpsc::UnboundedReceiver<C::Command>,
    span: tracing::Span,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    socket.set_nonblocking(true)?;
    shared.watch_receive_drops(&socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(async move {
                    match UdpSocket::from_std(socket) {
                        Ok(socket) => {
                            tracing::Instrument::instrument(
                                run(socket, core, transport, shared, commands),
                                span,
                            )
                            .await
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot register the server socket");
                            shared.close();
                        }
                    }
                })
            }));
            let _ = done_tx.send(outcome);
        })?;
    Ok(tokio::spawn(async move {
        if let Ok(Err(panic)) = done_rx.await {
            std::panic::resume_unwind(panic);
        }
    }))
}

pub(crate) async fn run<C: Core>(
    socket: UdpSocket,
    core: C,
    transport: Transport,
    shared: Arc<Shared<C::Event>>,
    mut commands: mpsc::UnboundedReceiver<C::Command>,
) {
    let _close = CloseOnDrop(shared.clone());
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut d = Driver {
        local,
        socket,
        core,
        transport,
        shared,
        redactor: Redactor::new(),
    };
    let mut revocations = d.transport.revocations();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = [
            d.core.poll_timeout(),
            d.transport.poll_timeout(),
            d.core.poll_housekeeping(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(Instant::from_std);
        // A disabled branch's future is still built, so give it some instant.
        let wake_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = d.socket.recv_from(&mut buf) => {
                match received {
                    Ok((n, peer)) => d.receive(peer, &buf[..n]),
                    // e.g. an ICMP port-unreachable reported on some platforms; the
                    // socket stays usable.
                    Err(e) => tracing::warn!(error = %e, "UDP receive failed"),
                }
                // Drain what else is ready before flushing once: one wake-up
                // and one flush for a burst, not one per datagram.
                for _ in 1..RECEIVE_BATCH {
                    match d.socket.try_recv_from(&mut buf) {
                        Ok((n, peer)) => d.receive(peer, &buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => tracing::warn!(error = %e, "UDP receive failed"),
                    }
                }
            }
            () = sleep_until(wake_at), if deadline.is_some() => {
                let at = now();
                d.transport.handle_timeout(at);
                d.core.handle_timeout(at);
            }
            revoked = next_revocation(revocations.as_mut()) => d.transport.close_revoked(now(), revoked),
            command = commands.recv() => match command {
                Some(command) => {
                    if !d.core.command(now(), command) {
                        break;
                    }
                }
                None => break,
            },
        }
        d.flush().await;
    }
    d.transport.shutdown(now());
    d.flush().await;
    tracing::info!(local = ?d.socket.local_addr().ok(), "server stopped");
}

/// Waits for a revoked credential (never, for plain CoAP).
async fn next_revocation(watch: Option<&mut CredentialWatch>) -> Revocation {
    match watch {
        Some(watch) => watch.next().await,
        None => std::future::pending().await,
    }
}

impl<C: Core> Driver<C> {
    /// How the CoAP the core sees is captured: as it is on the wire, or as
    /// the inside of DTLS records.
    fn coap_carried(&self) -> Carried {
        if self.transport.is_secure() {
            Carried::DecryptedCoap
        } else {
            Carried::Coap
        }
    }

    /// `datagram` fit for the log: a copy with the secrets of the Security
    /// object blanked, or the datagram itself when it holds none.
    fn loggable<'d>(&mut self, datagram: &'d [u8]) -> Cow<'d, [u8]> {
        match self.redactor.redact(datagram) {
            Some(redacted) => Cow::Owned(redacted),
            None => Cow::Borrowed(datagram),
        }
    }

    fn receive(&mut self, peer: SocketAddr, datagram: &[u8]) {
        let at = now();
        if self.transport.is_secure() {
            self.shared
                .capture
                .record(Carried::Dtls, peer, self.local, datagram);
        }
        let inbound = self.transport.receive(at, peer, datagram);
        // Handshake reports before the application data they enabled.
        self.publish_security_events();
        for item in inbound {
            self.deliver(at, item.peer, item.identity.as_deref(), &item.payload);
        }
    }

    /// Logs the (plaintext) datagram, then hands it to the core. A panic in
    /// the core on some input is a bug there, but it must not take the
    /// harness down mid-run: it is reported as malformed and the server
    /// carries on.
    fn deliver(
        &mut self,
        at: std::time::Instant,
        peer: SocketAddr,
        identity: Option<&str>,
        datagram: &[u8],
    ) {
        let logged = self.loggable(datagram);
        // Summarized only if debug logging is on (tracing evaluates fields lazily).
        tracing::debug!(%peer, ?identity, len = datagram.len(), summary = %summarize(datagram), "datagram in");
        self.shared
            .capture
            .record(self.coap_carried(), peer, self.local, &logged);
        self.shared.log_datagram(Direction::In, peer, &logged, None);
        let core = &mut self.core;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| {
            core.handle_datagram(at, peer, identity, datagram)
        })) {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(%peer, datagram = %hex::encode(&logged), %what, "server core panicked on a datagram");
            self.shared
                .publish(C::malformed(peer, format!("server core panicked: {what}")));
        }
    }

    fn publish_security_events(&mut self) {
        while let Some(event) = self.transport.poll_event() {
            let peer = match &event {
                SecurityEvent::HandshakeCompleted { peer, .. }
                | SecurityEvent::HandshakeFailed { peer, .. }
                | SecurityEvent::SessionClosed { peer, .. }
                | SecurityEvent::Dropped { peer, .. } => *peer,
            };
            let line = crate::describe::describe_security_event(&event);
            match &event {
                SecurityEvent::HandshakeFailed { .. } => tracing::warn!(%peer, "{line}"),
                SecurityEvent::Dropped { .. } => tracing::debug!(%peer, "{line}"),
                _ => tracing::info!(%peer, "{line}"),
            }
            {
                let mut state = self.shared.state();
                state.log.count_security(&event);
                state.log.push(Direction::Note, peer, &[], line, None);
            }
            self.shared.publish(C::security_event(event));
        }
    }

    async fn flush(&mut self) {
        // Handshake flights and alerts the transport produced on its own.
        self.send_transport_datagrams().await;
        while let Some(transmit) = self.core.poll_transmit() {
            let logged = self.loggable(&transmit.payload);
            // Recorded before it goes (taken back if it does not): the file
            // servers record on threads of their own, and the device's
            // answer to them must not land in the capture before this.
            let recorded = self.shared.capture.record(
                self.coap_carried(),
                self.local,
                transmit.destination,
                &logged,
            );
            let mut error = self
                .transport
                .send(now(), transmit.destination, &transmit.payload)
                .err();
            if let Some(e) = self.send_transport_datagrams().await {
                error.get_or_insert(e);
            }
            match &error {
                Some(e) => {
                    self.shared.capture.retract(recorded);
                    tracing::warn!(peer = %transmit.destination, error = %e, summary = %summarize(&transmit.payload), "cannot send")
                }
                None => {
                    tracing::debug!(peer = %transmit.destination, len = transmit.payload.len(), summary = %summarize(&transmit.payload), "datagram out");
                }
            }
            self.shared
                .log_datagram(Direction::Out, transmit.destination, &logged, error);
        }
        self.publish_security_events();
        self.core.publish_events(&self.shared);
    }

    /// Puts the transport's datagrams on the wire; the first socket error.
    async fn send_transport_datagrams(&mut self) -> Option<String> {
        let mut first_error = None;
        while let Some(datagram) = self.transport.poll_transmit() {
            let recorded = self.transport.is_secure().then(|| {
                self.shared.capture.record(
                    Carried::Dtls,
                    self.local,
                    datagram.destination,
                    &datagram.payload,
                )
            });
            // Without a trip through the reactor while the socket has room.
            let sent = match self
                .socket
                .try_send_to(&datagram.payload, datagram.destination)
            {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self
                    .socket
                    .send_to(&datagram.payload, datagram.destination)
                    .await
                    .map(drop),
                other => other.map(drop),
            };
            if let Err(e) = sent {
                if let Some(index) = recorded {
                    self.shared.capture.retract(index);
                }
                tracing::warn!(peer = %datagram.destination, error = %e, secure = self.transport.is_secure(), "UDP send failed");
                first_error.get_or_insert(e.to_string());
            }
        }
        first_error
    }
}

/// The LwM2M server core with its handles' commands.
pub(crate) struct LwM2mCore(pub(crate) Server);

impl Core for LwM2mCore {
    type Event = ServerEvent;
    type Command = Command;

    fn handle_datagram(
        &mut self,
        now: std::time::Instant,
        peer: SocketAddr,
        identity: Option<&str>,
        datagram: &[u8],
    ) {
        self.0
            .handle_datagram_authenticated(now, peer, identity, datagram)
    }

    fn handle_timeout(&mut self, now: std::time::Instant) {
        self.0.handle_timeout(now)
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.0.poll_timeout()
    }

    fn poll_housekeeping(&self) -> Option<std::time::Instant> {
        self.0.poll_housekeeping()
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.0.poll_transmit()
    }

    fn command(&mut self, now: std::time::Instant, command: Command) -> bool {
        match command {
            Command::Request {
                endpoint,
                request,
                reply,
            } => {
                let result = self.0.request(now, &endpoint, request);
                // The asker may have given up already; nothing to do then.
                let _ = reply.send(result);
                true
            }
            Command::ForgetObservation {
                endpoint,
                path,
                reply,
            } => {
                let _ = reply.send(self.0.forget_observation(&endpoint, path));
                true
            }
            Command::SetQueueAwakeWindow(window) => {
                self.0.set_queue_awake_window(window);
                true
            }
            Command::DiscardRegistration {
                endpoint,
                trigger,
                reply,
            } => {
                let sent = match trigger {
                    Some(request) => self.0.request(now, &endpoint, request).map(|_| ()),
                    None => Ok(()),
                };
                let result = sent.and_then(|()| {
                    self.0
                        .discard_registration(now, &endpoint)
                        .ok_or_else(|| lwm2m::server::RequestError::NotRegistered(endpoint.clone()))
                });
                let _ = reply.send(result);
                true
            }
            Command::Shutdown => false,
        }
    }

    fn publish_events(&mut self, shared: &Shared<ServerEvent>) {
        let events: Vec<ServerEvent> = std::iter::from_fn(|| self.0.poll_event()).collect();
        // The snapshot must be current before a waiter sees the event.
        if events.iter().any(changes_registrations) {
            let core = &self.0;
            shared.apply_registration_events(&events, |endpoint| core.registration_entry(endpoint));
        }
        for event in &events {
            tracing::info!(event = %crate::describe::describe_event(event), "LwM2M event");
        }
        shared.publish_all(events);
    }

    fn security_event(event: SecurityEvent) -> ServerEvent {
        ServerEvent::Security(event)
    }

    fn malformed(peer: SocketAddr, reason: String) -> ServerEvent {
        ServerEvent::Malformed { peer, reason }
    }
}

fn changes_registrations(event: &ServerEvent) -> bool {
    matches!(
        event,
        ServerEvent::Registered(_)
            | ServerEvent::Updated(_)
            | ServerEvent::Deregistered { .. }
            | ServerEvent::Expired { .. }
            | ServerEvent::Discarded { .. }
    )
}
