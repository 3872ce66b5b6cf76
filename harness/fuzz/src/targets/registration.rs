//! The registration interface's parameter parser (LwM2M 1.1 Core §6.2.1,
//! §6.2.2): Register's and Update's query and object list, and the checks
//! against each LwM2M version.
//!
//! The input is a Register or Update datagram as a device sends it. Inputs
//! that are not CoAP (most mutations of the header) are read as
//! `ep=meter-1&lt=60&b=U` query text, a newline, and the object list, and
//! built into a `POST /rd` with Content-Format 40, so that mutations of the
//! text reach the parser instead of dying in the CoAP decoder.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};
use lwm2m::coap::wire;
use lwm2m::server::{check_register, check_update, parse_registration, SUPPORTED_VERSIONS};

pub fn run(input: &[u8]) {
    let packet = wire::decode(input).unwrap_or_else(|_| from_text(input));
    let Ok(params) = parse_registration(&packet) else {
        return;
    };
    let _ = check_register(&params);
    for version in SUPPORTED_VERSIONS {
        let _ = check_update(&params, version);
        let _ = params.queue_mode(version);
    }
}

/// `query\npayload` as a Register request.
pub fn from_text(input: &[u8]) -> Packet {
    let (query, payload) = match input.iter().position(|b| *b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[][..]),
    };
    let mut packet = Packet::new();
    packet.header.code = MessageClass::Request(RequestType::Post);
    packet.add_option(CoapOption::UriPath, b"rd".to_vec());
    for q in query.split(|b| *b == b'&') {
        packet.add_option(CoapOption::UriQuery, q.to_vec());
    }
    if !payload.is_empty() {
        packet.add_option(CoapOption::ContentFormat, vec![40]);
        packet.payload = payload.to_vec();
    }
    packet
}

pub const DICTIONARY: &[&[u8]] = &[
    b"ep=",
    b"lt=",
    b"lwm2m=",
    b"b=",
    b"Q",
    b"sms=",
    b"&",
    b"=",
    b"1.0",
    b"1.1",
    b"1.2",
    b"9.99",
    b"UQS",
    b"UMHTSN",
    b"18446744073709551615",
    b"18446744073709551616",
    b"\n",
    b"</>;rt=\"oma.lwm2m\";ct=11543,",
    b"</lwm2m>;rt=\"oma.lwm2m\"",
    b"</0/0>",
    b"</21/0>",
    b",</3/0>",
    b";ct=\"60 110\"",
];
