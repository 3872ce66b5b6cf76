//! The server endpoint: many peers on one socket, sessions keyed by address.

use std::collections::{BTreeSet, HashMap, VecDeque};
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
    /// The key this session is filed under in `OpensslServer::timers`, so
    /// rescheduling removes exactly the old entry.
    scheduled: Option<Instant>,
    /// Whether it is filed in `OpensslServer::half_open` (under
    /// `conn.created`).
    half_open: bool,
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
    /// Every session's next deadline (the earlier of its flight timer and,
    /// once established, its idle expiry), ordered, so that
    /// [`DtlsServer::poll_timeout`] reads the first entry and
    /// [`DtlsServer::handle_timeout`] visits only the sessions that are due:
    /// O(log n) per event instead of a walk of every session (issue 16; at
    /// 100,000 meters the walk on every turn of the server loop held the
    /// handshake rate to 1,423/s, docs/perf/figures.md "DTLS timers"). Kept
    /// by [`Self::reschedule`] and [`Self::take_session`] only.
    timers: BTreeSet<(Instant, SocketAddr)>,
    /// The half-open (handshaking) sessions by creation time, so that
    /// [`Self::make_room`] evicts the oldest without collecting them all, and
    /// [`DtlsServer::stats`] counts them without a scan. Same keepers.
    half_open: BTreeSet<(Instant, SocketAddr)>,
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
            timers: BTreeSet::new(),
            half_open: BTreeSet::new(),
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
            timers: BTreeSet::new(),
            half_open: BTreeSet::new(),
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
        if let Some(old) = self.take_session(peer) {
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
                        scheduled: None,
                        half_open: false,
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
    ///
    /// Each turn takes the first entry of the creation-ordered index, so an
    /// eviction costs O(log n) and the loop ends after at most as many turns
    /// as the index has entries.
    fn make_room(&mut self) {
        while self.half_open.len() >= self.config.max_half_open.max(1) {
            let Some((_, oldest)) = self.half_open.pop_first() else {
                return;
            };
            if let Some(session) = self.take_session(oldest) {
                self.stats.half_open_evicted += 1;
                self.end_session(oldest, session, EndKind::Failed(HandshakeFailure::Evicted));
            }
        }
    }

    /// When `conn` next needs the server: its flight timer, and for an
    /// established session the end of its idle time.
    fn deadline(conn: &Connection, idle_timeout: Option<std::time::Duration>) -> Option<Instant> {
        let idle = (conn.phase() == Phase::Established)
            .then_some(idle_timeout)
            .flatten()
            .map(|idle| conn.last_activity + idle);
        [conn.poll_timeout(), idle].into_iter().flatten().min()
    }

    /// Files `peer`'s session in the timer and half-open indexes as it is
    /// now. Called after every operation that touches a session (handshake
    /// start, datagram, timeout, send), so the indexes never lag the table.
    fn reschedule(&mut self, peer: SocketAddr) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        let next = Self::deadline(&session.conn, self.config.idle_timeout);
        if session.scheduled != next {
            if let Some(at) = session.scheduled {
                self.timers.remove(&(at, peer));
            }
            if let Some(at) = next {
                self.timers.insert((at, peer));
            }
            session.scheduled = next;
        }
        let handshaking = session.conn.phase() == Phase::Handshaking;
        if handshaking != session.half_open {
            let key = (session.conn.created, peer);
            if handshaking {
                self.half_open.insert(key);
            } else {
                self.half_open.remove(&key);
            }
            session.half_open = handshaking;
        }
    }

    /// Removes `peer`'s session from the table and from both indexes: the
    /// one way a session leaves.
    fn take_session(&mut self, peer: SocketAddr) -> Option<Session> {
        let session = self.sessions.remove(&peer)?;
        if let Some(at) = session.scheduled {
            self.timers.remove(&(at, peer));
        }
        if session.half_open {
            self.half_open.remove(&(session.conn.created, peer));
        }
        Some(session)
    }

    /// Panics unless the timer and half-open indexes hold exactly what the
    /// session table says: each session's current deadline and, for each
    /// handshaking one, its creation time. O(n): for tests, after each
    /// operation.
    #[cfg(test)]
    fn assert_indexes_consistent(&self) {
        let mut timers = BTreeSet::new();
        let mut half_open = BTreeSet::new();
        for (peer, session) in &self.sessions {
            let due = Self::deadline(&session.conn, self.config.idle_timeout);
            assert_eq!(session.scheduled, due, "{peer}: filed deadline is stale");
            if let Some(at) = due {
                timers.insert((at, *peer));
            }
            let handshaking = session.conn.phase() == Phase::Handshaking;
            assert_eq!(session.half_open, handshaking, "{peer}: half-open flag");
            if handshaking {
                half_open.insert((session.conn.created, *peer));
            }
        }
        assert_eq!(self.timers, timers, "timer index differs from the sessions");
        assert_eq!(self.half_open, half_open, "half-open index differs");
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
            if let Some(session) = self.take_session(peer) {
                self.end_session(peer, session, EndKind::Failed(reason));
            }
        } else if let Some(reason) = outcome.closed {
            if let Some(session) = self.take_session(peer) {
                self.end_session(peer, session, EndKind::Closed(reason));
            }
        } else {
            self.reschedule(peer);
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
        // Only the sessions whose filed deadline has come; each is visited
        // once and refiled (or removed) by `apply`.
        let due: Vec<SocketAddr> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, peer)| *peer)
            .collect();
        for peer in due {
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
                if let Some(session) = self.take_session(peer) {
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
        let sent = session.conn.send(payload);
        self.reschedule(peer);
        self.transmit(peer, sent?);
        Ok(())
    }

    fn close(&mut self, _now: Instant, peer: SocketAddr) -> bool {
        match self.take_session(peer) {
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
            let Some(session) = self.take_session(peer) else {
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
        self.timers.first().map(|(at, _)| *at)
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
            half_open: self.half_open.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    //! The timer and half-open indexes (issue 16): each test checks
    //! [`OpensslServer::assert_indexes_consistent`] after every operation.

    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::client::DtlsClient;
    use crate::config::{ClientConfig, RetransmitPolicy};
    use crate::ossl::OpensslClient;
    use crate::secret::Psk;

    const KEY: &[u8] = b"0123456789abcdef";
    const SERVER: &str = "127.0.0.1:5684";

    fn config() -> ServerConfig {
        ServerConfig::new(Arc::new(|identity: &str| {
            ["a", "b", "c", "d"]
                .contains(&identity)
                .then(|| SecretKey::new(KEY.to_vec()).unwrap())
        }))
    }

    /// A client's flight 5 (it carries the ChangeCipherSpec): dropping it
    /// leaves the server's session half-open, waiting with flight 4 armed.
    fn is_flight5(datagram: &[u8]) -> bool {
        record::parse_records(datagram).is_ok_and(|records| {
            records
                .iter()
                .any(|r| r.content_type == ContentType::ChangeCipherSpec)
        })
    }

    /// The server and its clients on a fake clock, datagrams moved in memory.
    struct Net {
        now: Instant,
        server: OpensslServer,
        clients: Vec<(SocketAddr, String, OpensslClient)>,
        /// Drop every client flight 5 (keeps handshakes half-open).
        stall: bool,
        events: Vec<ServerEvent>,
        /// What the server sent, in order, with its destination.
        sent: Vec<(SocketAddr, Vec<u8>)>,
    }

    impl Net {
        fn new(config: ServerConfig) -> Self {
            Self {
                now: Instant::now(),
                server: OpensslServer::new(config).unwrap(),
                clients: Vec::new(),
                stall: false,
                events: Vec::new(),
                sent: Vec::new(),
            }
        }

        fn client(&self, identity: &str) -> OpensslClient {
            let psk = Psk::new(identity, SecretKey::new(KEY.to_vec()).unwrap()).unwrap();
            OpensslClient::connect(ClientConfig::new(psk), SERVER.parse().unwrap(), self.now)
                .unwrap()
        }

        /// A new client at 127.0.0.1:(40000 + index), its handshake driven.
        fn connect(&mut self, identity: &str) -> SocketAddr {
            let addr: SocketAddr = format!("127.0.0.1:{}", 40000 + self.clients.len())
                .parse()
                .unwrap();
            let client = self.client(identity);
            self.clients.push((addr, identity.into(), client));
            self.drive();
            addr
        }

        /// A fresh handshake (new ClientHello random) from client `i`'s
        /// address, replacing whatever session the server holds for it.
        fn reconnect(&mut self, i: usize) {
            let identity = self.clients[i].1.clone();
            self.clients[i].2 = self.client(&identity);
            self.drive();
        }

        fn drive(&mut self) {
            for _ in 0..100 {
                let mut moved = false;
                for i in 0..self.clients.len() {
                    let from = self.clients[i].0;
                    while let Some(t) = self.clients[i].2.poll_transmit() {
                        moved = true;
                        if !(self.stall && is_flight5(&t.payload)) {
                            self.server.handle_datagram(self.now, from, &t.payload);
                            self.server.assert_indexes_consistent();
                        }
                    }
                }
                while let Some(t) = self.server.poll_transmit() {
                    moved = true;
                    self.sent.push((t.destination, t.payload.clone()));
                    let server: SocketAddr = SERVER.parse().unwrap();
                    if let Some((_, _, c)) = self
                        .clients
                        .iter_mut()
                        .find(|(a, _, _)| *a == t.destination)
                    {
                        c.handle_datagram(self.now, server, &t.payload);
                    }
                }
                while let Some(e) = self.server.poll_event() {
                    self.events.push(e);
                }
                if !moved {
                    return;
                }
            }
            panic!("datagrams still moving after 100 rounds");
        }

        /// Moves the clock to `at` and fires the server's timers only; what
        /// they send lands in `sent`.
        fn fire_server_at(&mut self, at: Instant) {
            self.now = at;
            self.sent.clear();
            self.server.handle_timeout(at);
            self.server.assert_indexes_consistent();
            // Kept, not delivered: the tests look at what the timer sent.
            while let Some(t) = self.server.poll_transmit() {
                self.sent.push((t.destination, t.payload));
            }
            while let Some(e) = self.server.poll_event() {
                self.events.push(e);
            }
        }

        fn state(&self, peer: SocketAddr) -> Option<SessionState> {
            self.server.session(peer).map(|s| s.state)
        }
    }

    #[test]
    fn a_half_open_handshake_retransmits_flight_4_when_its_timer_fires() {
        let mut net = Net::new(config());
        net.stall = true;
        let peer = net.connect("a");
        assert_eq!(net.state(peer), Some(SessionState::Handshaking));
        let flight4: Vec<Vec<u8>> = net
            .sent
            .iter()
            .rev()
            .take(1)
            .map(|(_, d)| d.clone())
            .collect();
        let first = net.server.poll_timeout().expect("flight 4 is armed");
        assert_eq!(first, net.now + RetransmitPolicy::default().initial);

        net.fire_server_at(first - Duration::from_millis(1));
        assert!(net.sent.is_empty(), "nothing is due before the deadline");
        assert_eq!(net.server.poll_timeout(), Some(first));

        net.fire_server_at(first);
        let resent: Vec<&Vec<u8>> = net.sent.iter().map(|(_, d)| d).collect();
        assert!(net.sent.iter().all(|(to, _)| *to == peer));
        assert_eq!(
            resent.last(),
            flight4.first().as_ref(),
            "byte-identical resend"
        );
        // RFC 6347 §4.2.4.1: the timer doubles.
        assert_eq!(
            net.server.poll_timeout(),
            Some(first + RetransmitPolicy::default().initial * 2)
        );
        assert_eq!(net.server.stats().half_open, 1);
    }

    #[test]
    fn a_half_open_handshake_fails_when_its_retransmissions_are_spent() {
        let mut net = Net::new(config());
        net.stall = true;
        let peer = net.connect("a");
        for _ in 0..=RetransmitPolicy::default().max_retransmissions {
            let at = net.server.poll_timeout().expect("still armed");
            net.fire_server_at(at);
        }
        net.drive();
        assert_eq!(net.state(peer), None);
        assert_eq!(net.server.poll_timeout(), None);
        assert_eq!(net.server.stats().half_open, 0);
        assert!(net.events.iter().any(|e| matches!(
            e,
            ServerEvent::HandshakeFailed { peer: p, reason: HandshakeFailure::Timeout { .. }, .. } if *p == peer
        )));
    }

    #[test]
    fn an_idle_session_ends_at_its_idle_timeout_while_an_active_one_does_not() {
        let idle = Duration::from_secs(60);
        let mut config = config();
        config.idle_timeout = Some(idle);
        let mut net = Net::new(config);
        let start = net.now;
        let quiet = net.connect("a");
        let busy = net.connect("b");
        assert_eq!(net.server.poll_timeout(), Some(start + idle));

        net.now = start + Duration::from_secs(30);
        let now = net.now;
        net.clients[1].2.send(now, b"still here").unwrap();
        net.drive();
        net.server.send(now, busy, b"noted").unwrap();
        net.server.assert_indexes_consistent();
        net.drive();

        net.fire_server_at(start + idle);
        net.drive();
        assert_eq!(net.state(quiet), None, "the quiet session ended at 60 s");
        assert!(net.events.contains(&ServerEvent::SessionClosed {
            peer: quiet,
            identity: "a".into(),
            reason: CloseReason::IdleTimeout,
        }));
        assert_eq!(net.state(busy), Some(SessionState::Established));
        assert_eq!(net.server.poll_timeout(), Some(now + idle));

        net.fire_server_at(now + idle);
        assert_eq!(net.state(busy), None, "then the busy one at its own 60 s");
        assert_eq!(net.server.poll_timeout(), None);
    }

    #[test]
    fn a_third_client_hello_evicts_the_oldest_half_open() {
        let mut config = config();
        config.max_half_open = 2;
        let mut net = Net::new(config);
        net.stall = true;
        let mut peers = Vec::new();
        for identity in ["a", "b", "c"] {
            peers.push(net.connect(identity));
            net.now += Duration::from_millis(10);
        }
        assert_eq!(net.state(peers[0]), None);
        assert_eq!(net.state(peers[1]), Some(SessionState::Handshaking));
        assert_eq!(net.state(peers[2]), Some(SessionState::Handshaking));
        let stats = net.server.stats();
        assert_eq!((stats.half_open, stats.half_open_evicted), (2, 1));
        assert!(net.events.iter().any(|e| matches!(
            e,
            ServerEvent::HandshakeFailed { peer, reason: HandshakeFailure::Evicted, .. } if *peer == peers[0]
        )));
        // An established session does not count against the cap.
        net.stall = false;
        net.connect("d");
        assert_eq!(
            net.server.stats().half_open,
            1,
            "the oldest of b, c evicted for d"
        );
        assert_eq!(net.state(peers[1]), None);
    }

    #[test]
    fn indexes_stay_consistent_through_close_revoke_and_replace() {
        let mut config = config();
        config.idle_timeout = Some(Duration::from_secs(60));
        let mut net = Net::new(config);
        let a = net.connect("a");
        let b = net.connect("b");
        let c = net.connect("c");
        net.stall = true;
        let d = net.connect("d");
        assert_eq!(net.server.stats().half_open, 1);

        assert!(net.server.close(net.now, a));
        net.server.assert_indexes_consistent();
        assert!(!net.server.close(net.now, a), "closed once");

        assert_eq!(net.server.revoke(net.now, "b", None), vec![b]);
        net.server.assert_indexes_consistent();

        // A half-open session replaced by a new handshake, still half-open.
        net.now += Duration::from_millis(10);
        net.reconnect(3);
        assert_eq!(net.state(d), Some(SessionState::Handshaking));
        assert_eq!(net.server.stats().half_open, 1);
        // An established one replaced, then completed again.
        net.stall = false;
        net.reconnect(2);
        assert_eq!(net.state(c), Some(SessionState::Established));
        // And the half-open one completed by a fresh handshake.
        net.reconnect(3);
        assert_eq!(net.state(d), Some(SessionState::Established));
        let stats = net.server.stats();
        assert_eq!((stats.sessions, stats.half_open), (2, 0));
        net.server.assert_indexes_consistent();

        net.server.shutdown(net.now);
        net.server.assert_indexes_consistent();
        assert_eq!(net.server.poll_timeout(), None);
        assert_eq!(net.server.stats().sessions, 0);
    }
}
