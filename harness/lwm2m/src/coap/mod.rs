//! CoAP message layer (RFC 7252) on top of coap-lite's codec: message ids,
//! tokens, confirmable retransmission driven by the caller's clock, duplicate
//! detection, piggybacked and separate responses. coap-lite only encodes and
//! decodes; everything with state is here.

pub mod block;
pub mod code;
pub mod critical;
pub mod dedup;
pub mod exchange;
pub mod glance;
pub mod observe;
pub mod options;
pub(crate) mod shrink;
mod summary;
pub mod wire;
pub mod xorshift;

pub use dedup::DuplicateCacheStats;
pub use exchange::{ExchangeEvent, ExchangeId, MessageLayer};
pub use summary::summarize;

use std::net::SocketAddr;

/// A datagram to send. The caller owns the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}
