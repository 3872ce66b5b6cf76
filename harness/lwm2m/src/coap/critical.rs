//! Critical options (RFC 7252 §5.4.1, §5.4.6): an option whose number is
//! odd is critical, and a request carrying a critical option the endpoint
//! does not understand must not be acted on as if the option were absent.
//! A Confirmable request gets 4.02 Bad Option; a Non-confirmable one is
//! rejected (§5.4.1, §4.3). Elective options (even numbers) are ignored
//! when not understood.
//!
//! Both LwM2M roles call [`refusal`] before dispatching a request, each with
//! the list of critical options it implements.

use coap_lite::{MessageClass, MessageType, Packet};

use super::code;

/// Uri-Host (3) and Uri-Port (7) name the origin server; both roles are the
/// only host on their socket, so they accept any value (RFC 7252 §5.10.1).
const URI_HOST: u16 = 3;
const URI_PORT: u16 = 7;
const URI_PATH: u16 = 11;
const URI_QUERY: u16 = 15;
const ACCEPT: u16 = 17;
const BLOCK2: u16 = 23;
const BLOCK1: u16 = 27;
/// Proxy-Uri and Proxy-Scheme: understood, and answered 5.05 Proxying Not
/// Supported, since neither role is a forward proxy (RFC 7252 §5.10.2).
const PROXY_URI: u16 = 35;
const PROXY_SCHEME: u16 = 39;

/// The critical options the server role's registration interface
/// implements: the request URI, Accept (its responses carry no body, so any
/// Accept is met), Block1 (a Register or Update body in blocks, RFC 7959
/// §2.5) and Block2 (a body-less response is one block). Not understood,
/// hence 4.02: If-Match (1), If-None-Match (5), OSCORE (9), Q-Block1 (19),
/// Q-Block2 (31) and anything unassigned.
pub const SERVER_REQUEST_OPTIONS: &[u16] = &[
    URI_HOST, URI_PORT, URI_PATH, URI_QUERY, ACCEPT, BLOCK2, BLOCK1,
];

/// The critical options the Bootstrap-Server implements for
/// Bootstrap-Request (`POST /bs?ep=..&pct=..`, LwM2M 1.1 Transport §6.1):
/// the request URI, Accept and Block2 (its 2.04 carries no body, so any
/// Accept is met and the whole answer is one block). A Bootstrap-Request
/// has no payload, so Block1 is not implemented there: a request carrying
/// it gets 4.02, as do If-Match, If-None-Match, OSCORE and the rest.
pub const BOOTSTRAP_SERVER_REQUEST_OPTIONS: &[u16] =
    &[URI_HOST, URI_PORT, URI_PATH, URI_QUERY, ACCEPT, BLOCK2];

/// The critical options the client role implements for the device
/// management, information reporting and bootstrap interfaces: the request
/// URI, Accept (LwM2M 1.1 Transport §6.3), Block2 for Read responses
/// (RFC 7959 §2.4) and Block1 for Write, Create and Execute bodies (§2.5).
pub const CLIENT_REQUEST_OPTIONS: &[u16] = &[
    URI_HOST, URI_PORT, URI_PATH, URI_QUERY, ACCEPT, BLOCK2, BLOCK1,
];

/// Whether an option number is critical: its lowest bit is set (RFC 7252 §5.4.6).
pub fn is_critical(number: u16) -> bool {
    number & 1 == 1
}

/// The first critical option of `packet` whose number is not in `understood`.
pub fn unrecognized(packet: &Packet, understood: &[u16]) -> Option<u16> {
    packet
        .options()
        .map(|(number, _)| *number)
        .find(|n| is_critical(*n) && !understood.contains(n))
}

/// What to do with a request carrying an option the endpoint cannot honour.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Send this response (4.02 Bad Option, or 5.05 Proxying Not Supported)
    /// with the diagnostic payload; the request is not processed.
    Respond(Packet),
    /// A Non-confirmable request with an unrecognised critical option:
    /// reject it with Reset (RFC 7252 §5.4.1, §4.3).
    Reject,
}

/// `None` when `request` may be processed; else how to refuse it.
pub fn refusal(request: &Packet, understood: &[u16]) -> Option<Refusal> {
    if let Some(number) = [PROXY_URI, PROXY_SCHEME]
        .into_iter()
        .find(|n| request.options().any(|(o, _)| o == n))
    {
        return Some(Refusal::Respond(answer(
            505,
            format!("option {number}: this endpoint is not a forward proxy (RFC 7252 §5.10.2)"),
        )));
    }
    let number = unrecognized(request, understood)?;
    tracing::debug!(
        option = number,
        "request with an unrecognised critical option refused"
    );
    if request.header.get_type() == MessageType::NonConfirmable {
        return Some(Refusal::Reject);
    }
    Some(Refusal::Respond(answer(
        402,
        format!("critical option {number} is not understood (RFC 7252 §5.4.1)"),
    )))
}

fn answer(number: u16, diagnostic: String) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::from(code::from_number(number).unwrap_or(0x82));
    p.payload = diagnostic.into_bytes();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use coap_lite::CoapOption;

    #[test]
    fn odd_numbers_are_critical() {
        let critical: Vec<u16> = (0..30).filter(|n| is_critical(*n)).collect();
        assert_eq!(
            critical,
            vec![1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29]
        );
        assert!(!is_critical(u16::from(CoapOption::ContentFormat)));
        assert!(!is_critical(u16::from(CoapOption::Observe)));
        assert!(!is_critical(u16::from(CoapOption::Size1)));
        assert!(is_critical(u16::from(CoapOption::Block1)));
    }

    #[test]
    fn unknown_critical_options_are_found_elective_ones_are_not() {
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(coap_lite::RequestType::Get);
        p.add_option(CoapOption::UriPath, b"rd".to_vec());
        p.add_option(CoapOption::Unknown(2048), vec![1]);
        assert_eq!(refusal(&p, SERVER_REQUEST_OPTIONS), None);
        p.add_option(CoapOption::IfNoneMatch, Vec::new());
        assert_eq!(unrecognized(&p, SERVER_REQUEST_OPTIONS), Some(5));
        p.header.set_type(MessageType::NonConfirmable);
        assert_eq!(refusal(&p, SERVER_REQUEST_OPTIONS), Some(Refusal::Reject));
    }
}
