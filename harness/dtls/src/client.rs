//! The client-side interface: what the virtual meter programs against.

use std::net::SocketAddr;
use std::time::Instant;

use crate::error::Error;
use crate::event::{ClientEvent, CloseReason, HandshakeFailure, Transmit};
use crate::suite::CipherSuite;

/// A DTLS client association with one server. Sans-IO like [`crate::DtlsServer`].
pub trait DtlsClient: Send {
    /// The server address given at connect.
    fn remote(&self) -> SocketAddr;
    /// Where the association is.
    fn state(&self) -> &ClientState;
    /// A datagram arrived from `from` (anything not from the server is dropped).
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    /// Time passed: retransmit the flight or give up.
    fn handle_timeout(&mut self, now: Instant);
    /// Encrypts one application datagram; the session must be established.
    fn send(&mut self, now: Instant, payload: &[u8]) -> Result<(), Error>;
    /// Sends close_notify (if established) and ends the association.
    fn close(&mut self, now: Instant);
    /// Next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next decrypted application datagram.
    fn poll_received(&mut self) -> Option<Vec<u8>>;
    /// Next event.
    fn poll_event(&mut self) -> Option<ClientEvent>;
    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Client association state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    /// Handshake running.
    Handshaking,
    /// Established with this suite.
    Connected(CipherSuite),
    /// The handshake failed.
    Failed(HandshakeFailure),
    /// The established session ended.
    Closed(CloseReason),
}
