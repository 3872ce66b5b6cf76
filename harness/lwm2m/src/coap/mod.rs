//! CoAP message layer (RFC 7252) on top of coap-lite's codec: message ids,
//! tokens, confirmable retransmission driven by the caller's clock, duplicate
//! detection, piggybacked and separate responses. coap-lite only encodes and
//! decodes; everything with state is here.

use std::net::SocketAddr;

/// A datagram to send. The caller owns the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}
