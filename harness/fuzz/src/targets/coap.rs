//! The CoAP layer (RFC 7252) every datagram crosses first: the strict
//! message decoder, and the message layer of one endpoint
//! (`MessageLayer::handle_datagram`: deduplication, ACK and response
//! matching, retransmission).
//!
//! `coap-wire` input: one datagram. It is decoded, summarized for the
//! message log, redacted for the bootstrap log and, if it decoded, encoded
//! again.
//!
//! `coap-exchange` input: a [`frames`](crate::frames) script against a bare
//! message layer whose owner answers every request 2.05 and acknowledges
//! every Confirmable notification. An action frame sends, by `data[0]`:
//! 0 a CON GET, 1 a NON GET, 2 a CON notification, 3 a NON notification,
//! 4 cancels the last exchange.

use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use lwm2m::bootstrap::{redact_datagram, Redactor};
use lwm2m::coap::{summarize, wire, ExchangeEvent, ExchangeId, MessageLayer};

use super::driver::{Driver, Endpoint};
use super::testbed;

pub fn wire(input: &[u8]) {
    let _ = wire::RawHeader::peek(input);
    let _ = summarize(input);
    let _ = redact_datagram(input);
    let _ = Redactor::new().redact(input);
    if let Ok(packet) = wire::decode(input) {
        let again = wire::encode(&packet);
        let _ = wire::decode(&again);
    }
}

/// A message layer and the simplest owner.
pub struct LayerEndpoint {
    pub layer: MessageLayer,
    last: Option<ExchangeId>,
}

impl LayerEndpoint {
    pub fn new() -> Self {
        LayerEndpoint {
            layer: MessageLayer::new(testbed::SERVER_SEED),
            last: None,
        }
    }
}

impl Default for LayerEndpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Endpoint for LayerEndpoint {
    fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.layer.handle_datagram(now, peer, datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.layer.poll_timeout()
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.layer
            .poll_transmit()
            .map(|t| (t.destination, t.payload))
    }

    fn handle_events(&mut self, _now: Instant) -> bool {
        let mut any = false;
        while let Some(event) = self.layer.poll_event() {
            any = true;
            match event {
                ExchangeEvent::Request { peer, message } => {
                    let mut response = Packet::new();
                    response.header.code = MessageClass::Response(ResponseType::Content);
                    response.payload = b"ok".to_vec();
                    self.layer.respond(peer, &message, response);
                }
                ExchangeEvent::Unsolicited { peer, message } => {
                    if message.payload.len() % 2 == 0 {
                        self.layer.acknowledge(peer, &message);
                    } else {
                        self.layer.reject(peer, &message);
                    }
                }
                ExchangeEvent::Response { id, .. } => {
                    let _ = self.layer.is_pending(id);
                    let _ = self.layer.transmissions(id);
                }
                _ => {}
            }
        }
        any
    }

    fn action(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) {
        let mut message = Packet::new();
        let kind = data.first().map_or(0, |b| b % 5);
        if kind == 4 {
            if let Some(id) = self.last.take() {
                self.layer.cancel(id);
            }
            return;
        }
        if kind < 2 {
            message.header.code = MessageClass::Request(RequestType::Get);
            message.add_option(CoapOption::UriPath, b"3".to_vec());
            message.add_option(CoapOption::UriPath, b"0".to_vec());
        } else {
            message.header.code = MessageClass::Response(ResponseType::Content);
            message.set_token(
                data.get(1..)
                    .unwrap_or_default()
                    .iter()
                    .take(8)
                    .copied()
                    .collect(),
            );
            message.add_option(CoapOption::Observe, vec![data.len() as u8]);
            message.payload = b"87".to_vec();
        }
        let confirmable = kind.is_multiple_of(2);
        self.last = Some(self.layer.send(now, peer, message, confirmable));
    }
}

pub fn exchange(input: &[u8]) {
    let peers = [testbed::client_addr(), testbed::other_client_addr()];
    Driver::new(LayerEndpoint::new(), peers, Instant::now()).run(input);
}

pub const DICTIONARY: &[&[u8]] = &[
    b"\x40\x01",
    b"\x40\x02",
    b"\x40\x03",
    b"\x40\x04",
    b"\x44\x01",
    b"\x48\x01",
    b"\x60\x45",
    b"\x60\x00",
    b"\x70\x00",
    b"\x50\x45",
    b"\x68\x45",
    b"\xff",
    b"\xb2rd",
    b"\xb1" as &[u8],
    b"\x3d\x00",
    b"\xd0",
    b"\xe0\x00\x00",
    b"\xd1\x0e\x00",
    b"\x12\x00\x28",
    b"\x12\x2d\x16",
    b"\x61\x00",
    b"\xc1\x06",
    b"\xd1\x02",
    b"\xd1\x0a\x06",
    b"\x4d\x05",
    b"ep=meter-1",
    b"lt=60",
    b"\x0f",
];
