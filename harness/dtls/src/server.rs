//! The server-side interface: what the LwM2M server and bootstrap server
//! program against.

use std::net::SocketAddr;
use std::time::Instant;

use crate::error::Error;
use crate::event::{Received, ServerEvent, Transmit};
use crate::secret::SecretKey;
use crate::suite::CipherSuite;

/// A DTLS server endpoint serving many peers over one datagram socket the
/// caller owns. Sans-IO: feed it datagrams and time, drain what it produced.
///
/// The caller's loop, after every call that feeds something in:
/// drain [`poll_transmit`](Self::poll_transmit) to the socket,
/// [`poll_received`](Self::poll_received) to the CoAP layer,
/// [`poll_event`](Self::poll_event) to its log, then sleep until
/// [`poll_timeout`](Self::poll_timeout) or the next datagram.
pub trait DtlsServer: Send {
    /// A datagram arrived from `peer`. Never panics; anything unusable is
    /// dropped and reported as [`ServerEvent::Dropped`].
    fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]);
    /// Time passed: retransmit flights, fail exhausted handshakes, expire
    /// idle sessions. Call at [`poll_timeout`](Self::poll_timeout) (calling
    /// earlier is harmless).
    fn handle_timeout(&mut self, now: Instant);
    /// Encrypts one application datagram for an established session.
    fn send(&mut self, now: Instant, peer: SocketAddr, payload: &[u8]) -> Result<(), Error>;
    /// Sends close_notify and forgets the session; false if there was none.
    fn close(&mut self, now: Instant, peer: SocketAddr) -> bool;
    /// Closes every session (close_notify to each established one).
    fn shutdown(&mut self, now: Instant);
    /// The key of `identity` changed: `current` is its key now, `None` if
    /// it has none. Every session that authenticated (or is handshaking) as
    /// `identity` with another key ends: an established one gets
    /// close_notify (RFC 5246 §7.2.1) and reports
    /// [`CloseReason::KeyRevoked`](crate::CloseReason::KeyRevoked), a
    /// handshaking one [`HandshakeFailure::KeyRevoked`](crate::HandshakeFailure::KeyRevoked);
    /// its state is dropped, so the peer's next datagram needs a new
    /// handshake, which the key lookup then decides. Sessions with the
    /// current key stay. Returns the peers whose session ended. Costs the
    /// sessions of `identity`, not of the endpoint.
    fn revoke(
        &mut self,
        now: Instant,
        identity: &str,
        current: Option<&SecretKey>,
    ) -> Vec<SocketAddr>;
    /// Next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next decrypted application datagram.
    fn poll_received(&mut self) -> Option<Received>;
    /// Next event.
    fn poll_event(&mut self) -> Option<ServerEvent>;
    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The session with `peer`, if any.
    fn session(&self, peer: SocketAddr) -> Option<SessionInfo>;
    /// All sessions.
    fn sessions(&self) -> Vec<SessionInfo>;
    /// Counters.
    fn stats(&self) -> ServerStats;
}

/// Where a server session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Cookie verified, handshake running.
    Handshaking,
    /// Application data flows.
    Established,
    /// Ended (only seen transiently).
    Closed,
}

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Peer address (the session key).
    pub peer: SocketAddr,
    /// The authenticated identity, once the handshake completed: the PSK
    /// identity, or in a certificate suite (see
    /// [`CipherSuite::is_certificate`]) the subject CN of the client's
    /// verified certificate. The LwM2M server binds this to the endpoint
    /// name the client registers.
    pub identity: Option<String>,
    /// State.
    pub state: SessionState,
    /// Negotiated suite, once established.
    pub suite: Option<CipherSuite>,
    /// Last authenticated datagram (or handshake progress).
    pub last_activity: Instant,
}

/// Endpoint counters; `sessions` and `half_open` are current values, the
/// rest totals since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Sessions in the table.
    pub sessions: usize,
    /// Of which still handshaking.
    pub half_open: usize,
    /// HelloVerifyRequests sent (stateless).
    pub hello_verify_requests: u64,
    /// ClientHellos with a cookie we did not issue.
    pub bad_cookies: u64,
    /// Sessions created (cookie verified).
    pub sessions_created: u64,
    /// Half-open sessions evicted by the cap.
    pub half_open_evicted: u64,
    /// Verified ClientHellos refused because the table was full.
    pub sessions_refused: u64,
    /// Handshakes completed.
    pub handshakes_completed: u64,
    /// Handshakes failed.
    pub handshakes_failed: u64,
    /// Datagrams (or parts) dropped.
    pub datagrams_dropped: u64,
    /// Events discarded because the queue was full.
    pub events_discarded: u64,
}
