//! Test fixture: a message-log entry as the server records a datagram, for
//! the steps that judge what crossed the wire by reading that log.

use coap_lite::Packet;
use lwm2m::coap::wire;
use server::{Direction, LogEntry};

/// `p` logged as received (`Direction::In`) or sent, from a fixed peer.
pub fn entry(direction: Direction, p: &Packet) -> LogEntry {
    LogEntry {
        index: 0,
        time: chrono::Utc::now(),
        direction,
        peer: "127.0.0.1:5683".parse().unwrap(),
        summary: lwm2m::coap::summarize(&wire::encode(p)),
        bytes: wire::encode(p),
        send_error: None,
    }
}
