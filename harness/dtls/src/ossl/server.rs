//! The server endpoint: many peers on one socket, sessions keyed by address.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use openssl::ssl::{Ssl, SslContext};

use super::connection::{Connection, Outcome, Phase};
use super::context;
use crate::config::ServerConfig;
use crate::cookie::CookieSecret;
use crate::error::Error;
use crate::event::{CloseReason, DropReason, HandshakeFailure, Received, ServerEvent, Transmit};
use crate::record::{self, ContentType, RecordHeader};
use crate::secret::SecretKey;
use crate::server::{DtlsServer, ServerStats, SessionInfo, SessionState};

/// Events kept when the caller does not drain them; older ones are dropped
/// (and counted) so that a flood cannot grow memory through the event queue.
const MAX_QUEUED_EVENTS: usize = 4096;

struct Session {
    conn: Connection,
    /// ClientHello random of the handshake that created it; a ClientHello
    /// with the same random is a retransmission, another one a new handshake.
    client_random: [u8; 32],
    identity: Option<String>,
    /// The identity this session is filed under in `by_identity`: the one
    /// the client claimed, once its ClientKeyExchange was read.
    indexed: Option<String>,
}

/// DTLS 1.2 PSK server over OpenSSL; see [`DtlsServer`].
pub struct OpensslServer {
    ctx: SslContext,
    config: ServerConfig,
    cookies: CookieSecret,
    sessions: HashMap<SocketAddr, Session>,
    /// Peers by claimed PSK identity, so revoking a key touches only the
    /// sessions that use it.
    by_identity: HashMap<String, Vec<SocketAddr>>,
    transmits: VecDeque<Transmit>,
    received: VecDeque<Received>,
    events: VecDeque<ServerEvent>,
    stats: ServerStats,
}

impl std::fmt::Debug for OpensslServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslServer")
            .field("config", &self.config)
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl OpensslServer {
    /// Builds the OpenSSL context and draws the cookie secret.
    pub fn new(config: ServerConfig) -> Result<Self, Error> {
        Ok(Self {
            ctx: context::server(&config)?,
            cookies: CookieSecret::generate()?,
            config,
            sessions: HashMap::new(),
            by_identity: HashMap::new(),
            transmits: VecDeque::new(),
            received: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
        })
    }

    /// A fresh server on the same OpenSSL context and config: a new cookie
    /// secret, no sessions, nothing queued, zeroed stats.
    ///
    /// Exists because building the context is most of what [`Self::new`]
    /// costs (about half a millisecond); callers that need many clean
    /// servers in a row (the fuzz target builds one per input) build one
    /// with `new` and restart it. The context keeps no per-connection state
    /// (session cache and tickets are off), so nothing carries over.
    pub fn restarted(&self) -> Result<Self, Error> {
        Ok(Self {
            ctx: self.ctx.clone(),
            cookies: CookieSecret::generate()?,
            config: self.config.clone(),
            sessions: HashMap::new(),
            by_identity: HashMap::new(),
            transmits: VecDeque::new(),
            received: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
        })
    }

    fn event(&mut self, event: ServerEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.stats.events_discarded += 1;
        }
        self.events.push_back(event);
    }

    fn drop_datagram(&mut self, peer: SocketAddr, reason: DropReason) {
        tracing::debug!(%peer, %reason, "datagram dropped");
        self.stats.datagrams_dropped += 1;
        self.event(ServerEvent::Dropped { peer, reason });
    }

    fn transmit(&mut self, destination: SocketAddr, datagrams: Vec<Vec<u8>>) {
        self.transmits
            .extend(datagrams.into_iter().map(|payload| Transmit {
                destination,
                payload,
            }));
    }

    /// The stateless half of RFC 6347 §4.2.1, then session creation.
    fn handle_client_hello(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
        records: &[RecordHeader],
    ) {
        let hello = match record::parse_client_hello(datagram) {
            Ok(hello) => hello,
            Err(e) => return self.drop_datagram(peer, DropReason::UnusableClientHello(e)),
        };
        if let Some(session) = self.sessions.get(&peer) {
            if session.client_random == hello.random {
                // A retransmitted ClientHello of the running handshake.
                return self.feed(now, peer, datagram, records);
            }
        }
        if hello.cookie.is_empty() {
            match self.cookies.cookie(peer, &hello.random) {
                Ok(cookie) => {
                    self.stats.hello_verify_requests += 1;
                    let hvr = record::hello_verify_request(hello.record_sequence, &cookie);
                    self.transmit(peer, vec![hvr]);
                }
                Err(e) => tracing::warn!(%peer, error = %e, "cookie computation failed"),
            }
            return;
        }
        if !self.cookies.verify(peer, &hello.random, &hello.cookie) {
            self.stats.bad_cookies += 1;
            return self.drop_datagram(peer, DropReason::BadCookie);
        }
        // The peer proved it receives at its address: now state may be created.
        if let Some(old) = self.sessions.remove(&peer) {
            self.end_session(peer, old, EndKind::Replaced);
        }
        self.make_room();
        if self.sessions.len() >= self.config.max_sessions {
            self.stats.sessions_refused += 1;
            // A full table meets a burst of handshakes: one line per
            // doubling of the count keeps the log readable, the stats exact.
            let refused = self.stats.sessions_refused;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, max = self.config.max_sessions, refused, "session table full, ClientHello dropped (logged at 1, 2, 4, ... refusals)");
            } else {
                tracing::debug!(%peer, refused, "session table full, ClientHello dropped");
            }
            return;
        }
        let idx = match context::indices() {
            Ok(idx) => idx,
            Err(e) => return tracing::error!(error = %e, "no ex_data indices"),
        };
        let mut ssl = match Ssl::new(&self.ctx) {
            Ok(ssl) => ssl,
            Err(e) => return tracing::error!(%peer, error = %e, "SSL_new failed"),
        };
        ssl.set_ex_data(idx.expected_cookie, hello.cookie.clone());
        match Connection::accept(ssl, datagram, self.config.mtu, self.config.retransmit, now) {
            Ok((conn, outcome)) => {
                self.stats.sessions_created += 1;
                tracing::debug!(%peer, "cookie verified, handshake started");
                self.sessions.insert(
                    peer,
                    Session {
                        conn,
                        client_random: hello.random,
                        identity: None,
                        indexed: None,
                    },
                );
                self.apply(peer, outcome);
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "could not start handshake");
                self.drop_datagram(
                    peer,
                    DropReason::UnusableClientHello(record::RecordError::NotClientHello(
                        "OpenSSL refused the ClientHello",
                    )),
                );
            }
        }
    }

    /// Evicts the oldest half-open handshakes so a new one fits under the cap.
    fn make_room(&mut self) {
        loop {
            let half_open: Vec<(SocketAddr, Instant)> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.conn.phase() == Phase::Handshaking)
                .map(|(a, s)| (*a, s.conn.created))
                .collect();
            if half_open.len() < self.config.max_half_open.max(1) {
                return;
            }
            let Some((oldest, _)) = half_open.into_iter().min_by_key(|(_, t)| *t) else {
                return;
            };
            if let Some(session) = self.sessions.remove(&oldest) {
                self.stats.half_open_evicted += 1;
                self.end_session(oldest, session, EndKind::Failed(HandshakeFailure::Evicted));
            }
        }
    }

    fn feed(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8], records: &[RecordHeader]) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return self.drop_datagram(peer, DropReason::UnknownPeer);
        };
        let outcome = session.conn.handle_datagram(now, datagram, records);
        self.apply(peer, outcome);
    }

    /// Moves one outcome into the queues and the session table.
    fn apply(&mut self, peer: SocketAddr, outcome: Outcome) {
        self.transmit(peer, outcome.transmits);
        for payload in outcome.received {
            self.received.push_back(Received { peer, payload });
        }
        if outcome.rejected > 0 {
            self.drop_datagram(
                peer,
                DropReason::RecordsRejected {
                    count: outcome.rejected,
                },
            );
        }
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        if session.indexed.is_none() {
            if let Some(identity) = claimed_identity(&session.conn) {
                self.by_identity
                    .entry(identity.clone())
                    .or_default()
                    .push(peer);
                session.indexed = Some(identity);
            }
        }
        if outcome.completed {
            let identity = authenticated_identity(&session.conn);
            session.identity = Some(identity.clone());
            self.stats.handshakes_completed += 1;
            match session.conn.suite() {
                Some(suite) => {
                    tracing::info!(%peer, %identity, %suite, "DTLS handshake completed");
                    self.event(ServerEvent::HandshakeCompleted {
                        peer,
                        identity,
                        suite,
                    });
                }
                None => {
                    tracing::error!(%peer, "handshake completed with an unknown suite");
                }
            }
        }
        if let Some(reason) = outcome.failed {
            if let Some(session) = self.sessions.remove(&peer) {
                self.end_session(peer, session, EndKind::Failed(reason));
            }
        } else if let Some(reason) = outcome.closed {
            if let Some(session) = self.sessions.remove(&peer) {
                self.end_session(peer, session, EndKind::Closed(reason));
            }
        }
    }

    /// Reports the end of a session already removed from the table.
    fn end_session(&mut self, peer: SocketAddr, mut session: Session, kind: EndKind) {
        if let Some(indexed) = &session.indexed {
            if let Some(peers) = self.by_identity.get_mut(indexed) {
                peers.retain(|p| *p != peer);
                if peers.is_empty() {
                    self.by_identity.remove(indexed);
                }
            }
        }
        let was_established = session.conn.phase() == Phase::Established;
        let identity = session
            .identity
            .clone()
            .or_else(|| claimed_identity(&session.conn));
        match kind {
            EndKind::Failed(mut reason) => {
                if lookup_failed(&session.conn) {
                    reason = HandshakeFailure::UnknownIdentity;
                }
                self.stats.handshakes_failed += 1;
                tracing::warn!(%peer, identity = identity.as_deref().unwrap_or("-"), %reason, "DTLS handshake failed");
                self.event(ServerEvent::HandshakeFailed {
                    peer,
                    identity,
                    reason,
                });
            }
            EndKind::Closed(reason) | EndKind::Local(reason) => {
                let farewell = session.conn.close();
                if matches!(
                    reason,
                    CloseReason::Local | CloseReason::IdleTimeout | CloseReason::KeyRevoked
                ) {
                    self.transmit(peer, farewell);
                }
                tracing::info!(%peer, %reason, "DTLS session closed");
                self.event(ServerEvent::SessionClosed {
                    peer,
                    identity: identity.unwrap_or_default(),
                    reason,
                });
            }
            EndKind::Replaced => {
                session.conn.close();
                if was_established {
                    self.event(ServerEvent::SessionClosed {
                        peer,
                        identity: identity.unwrap_or_default(),
                        reason: CloseReason::Replaced,
                    });
                } else {
                    self.stats.handshakes_failed += 1;
                    self.event(ServerEvent::HandshakeFailed {
                        peer,
                        identity,
                        reason: HandshakeFailure::Protocol(
                            "superseded by a new ClientHello".into(),
                        ),
                    });
                }
            }
        }
    }

    fn info(peer: SocketAddr, session: &Session) -> SessionInfo {
        SessionInfo {
            peer,
            identity: session.identity.clone(),
            state: match session.conn.phase() {
                Phase::Handshaking => SessionState::Handshaking,
                Phase::Established => SessionState::Established,
                Phase::Done => SessionState::Closed,
            },
            suite: session
                .conn
                .suite()
                .filter(|_| session.conn.phase() == Phase::Established),
            last_activity: session.conn.last_activity,
        }
    }
}

enum EndKind {
    Failed(HandshakeFailure),
    Closed(CloseReason),
    Local(CloseReason),
    Replaced,
}

/// Who the peer proved to be: the PSK identity, or for a certificate
/// session the subject CN of the verified client certificate (LwM2M binds
/// it to the Endpoint Client Name, see [`crate::SessionInfo::identity`]).
fn authenticated_identity(conn: &Connection) -> String {
    let ssl = conn.ssl();
    if conn.suite().is_some_and(|s| s.is_certificate()) {
        return ssl
            .peer_certificate()
            .and_then(|c| crate::certificate::subject_cn(&c))
            .unwrap_or_default();
    }
    ssl.psk_identity()
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .unwrap_or_default()
}

fn claimed_identity(conn: &Connection) -> Option<String> {
    let idx = context::indices().ok()?;
    conn.ssl()
        .ex_data(idx.claimed_identity)
        .cloned()
        .filter(|s| !s.is_empty())
}

/// Whether `conn` authenticates with `current`, the identity's key now.
fn uses_key(conn: &Connection, current: Option<&SecretKey>) -> bool {
    let used = context::indices()
        .ok()
        .and_then(|idx| conn.ssl().ex_data(idx.used_key));
    match (used, current) {
        (Some(used), Some(current)) => {
            used.len() == current.len() && openssl::memcmp::eq(used.expose(), current.expose())
        }
        _ => false,
    }
}

fn lookup_failed(conn: &Connection) -> bool {
    context::indices()
        .ok()
        .and_then(|idx| conn.ssl().ex_data(idx.lookup_failed).copied())
        .unwrap_or(false)
}

/// A single epoch-0 handshake record whose message type is client_hello(1).
fn is_client_hello(datagram: &[u8], records: &[RecordHeader]) -> bool {
    matches!(records, [r] if r.content_type == ContentType::Handshake
        && r.epoch == 0
        && datagram.get(r.fragment_start) == Some(&1))
}

impl DtlsServer for OpensslServer {
    fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        let records = match record::parse_records(datagram) {
            Ok(records) => records,
            Err(e) => return self.drop_datagram(peer, DropReason::Malformed(e)),
        };
        if is_client_hello(datagram, &records) {
            self.handle_client_hello(now, peer, datagram, &records);
        } else if self.sessions.contains_key(&peer) {
            self.feed(now, peer, datagram, &records);
        } else {
            self.drop_datagram(peer, DropReason::UnknownPeer);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let peers: Vec<SocketAddr> = self.sessions.keys().copied().collect();
        for peer in peers {
            let Some(session) = self.sessions.get_mut(&peer) else {
                continue;
            };
            let outcome = session.conn.handle_timeout(now);
            let idle = session.conn.phase() == Phase::Established
                && self
                    .config
                    .idle_timeout
                    .is_some_and(|idle| now >= session.conn.last_activity + idle);
            self.apply(peer, outcome);
            if idle {
                if let Some(session) = self.sessions.remove(&peer) {
                    self.end_session(peer, session, EndKind::Local(CloseReason::IdleTimeout));
                }
            }
        }
    }

    fn send(&mut self, _now: Instant, peer: SocketAddr, payload: &[u8]) -> Result<(), Error> {
        let session = self
            .sessions
            .get_mut(&peer)
            .filter(|s| s.conn.phase() == Phase::Established)
            .ok_or(Error::NoSession(peer))?;
        let datagrams = session.conn.send(payload)?;
        self.transmit(peer, datagrams);
        Ok(())
    }

    fn close(&mut self, _now: Instant, peer: SocketAddr) -> bool {
        match self.sessions.remove(&peer) {
            Some(session) => {
                self.end_session(peer, session, EndKind::Local(CloseReason::Local));
                true
            }
            None => false,
        }
    }

    fn shutdown(&mut self, now: Instant) {
        let peers: Vec<SocketAddr> = self.sessions.keys().copied().collect();
        for peer in peers {
            self.close(now, peer);
        }
    }

    fn revoke(
        &mut self,
        _now: Instant,
        identity: &str,
        current: Option<&SecretKey>,
    ) -> Vec<SocketAddr> {
        let peers = self.by_identity.get(identity).cloned().unwrap_or_default();
        let mut ended = Vec::new();
        for peer in peers {
            let keep = self
                .sessions
                .get(&peer)
                .is_none_or(|s| uses_key(&s.conn, current));
            if keep {
                continue;
            }
            let Some(session) = self.sessions.remove(&peer) else {
                continue;
            };
            tracing::info!(%peer, %identity, "PSK revoked: ending the DTLS session");
            let kind = if session.conn.phase() == Phase::Established {
                EndKind::Local(CloseReason::KeyRevoked)
            } else {
                EndKind::Failed(HandshakeFailure::KeyRevoked)
            };
            self.end_session(peer, session, kind);
            ended.push(peer);
        }
        ended
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_received(&mut self) -> Option<Received> {
        self.received.pop_front()
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| {
                let idle = (s.conn.phase() == Phase::Established)
                    .then_some(self.config.idle_timeout)
                    .flatten()
                    .map(|idle| s.conn.last_activity + idle);
                [s.conn.poll_timeout(), idle].into_iter().flatten().min()
            })
            .min()
    }

    fn session(&self, peer: SocketAddr) -> Option<SessionInfo> {
        self.sessions.get(&peer).map(|s| Self::info(peer, s))
    }

    fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(p, s)| Self::info(*p, s))
            .collect()
    }

    fn stats(&self) -> ServerStats {
        ServerStats {
            sessions: self.sessions.len(),
            half_open: self
                .sessions
                .values()
                .filter(|s| s.conn.phase() == Phase::Handshaking)
                .count(),
            ..self.stats
        }
    }
}
