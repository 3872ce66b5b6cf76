//! The server discards a registration (ETS 1.1 int-105 "Discarded Register
//! Update"): the client's next Update to the old location is answered 4.04
//! Not Found (LwM2M 1.1 Core §6.2.2, Transport §6.2), a
//! piggybacked ACK with the Update's message id and token (RFC 7252 §4.4,
//! §5.3.2), and a new Register is taken afresh. The observations and the
//! requests in flight went with the registration.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, ResponseType};
use lwm2m::server::{DmRequest, RequestError, Server, ServerEvent};
use lwm2m::Path;

use crate::support;
use crate::support::{con_post as post, registry};

fn peer() -> SocketAddr {
    "127.0.0.1:56831".parse().unwrap()
}

/// Feeds `datagram` from the client and returns what the server sends back.
fn answer(s: &mut Server, now: Instant, datagram: &[u8]) -> Option<Vec<u8>> {
    s.handle_datagram(now, peer(), datagram);
    s.poll_transmit().map(|t| {
        assert_eq!(t.destination, peer());
        t.payload
    })
}

fn location(reply: &[u8]) -> Vec<String> {
    Packet::from_bytes(reply)
        .unwrap()
        .get_option(CoapOption::LocationPath)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Registers `meter-1` with `lt=60`; returns the location's segments.
fn register(s: &mut Server, now: Instant, mid: u16) -> Vec<String> {
    let reply = answer(
        s,
        now,
        &post(
            mid,
            &["rd"],
            &["ep=meter-1", "lt=60", "lwm2m=1.1"],
            Some("</1/0>,</3/0>"),
        ),
    )
    .expect("the Register is answered");
    assert_eq!(
        Packet::from_bytes(&reply).unwrap().header.code,
        MessageClass::Response(ResponseType::Created)
    );
    location(&reply)
}

/// `ACK` with `code` piggybacked on `request` (RFC 7252 §5.2.1).
fn ack(request: &Packet, code: ResponseType, observe: Option<u8>) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.code = MessageClass::Response(code);
    p.header.message_id = request.header.message_id;
    p.set_token(request.get_token().to_vec());
    if let Some(seq) = observe {
        p.add_option(CoapOption::Observe, vec![seq]);
        p.add_option(CoapOption::ContentFormat, vec![0]);
        p.payload = b"42".to_vec();
    }
    p.to_bytes().unwrap()
}

#[test]
fn an_update_after_the_server_discarded_the_registration_is_answered_4_04() {
    let mut s = support::seeded_server(&registry(), 11);
    let now = Instant::now();
    let loc = register(&mut s, now, 0x0100);
    let segs: Vec<&str> = loc.iter().map(String::as_str).collect();
    let path = format!("/{}", loc.join("/"));

    // An observation, established (RFC 7641 §3.1).
    let observed = Path::resource(3, 0, 9);
    s.request(
        now,
        "meter-1",
        DmRequest::Observe {
            path: observed,
            format: None,
        },
    )
    .unwrap();
    let observe = Packet::from_bytes(&s.poll_transmit().unwrap().payload).unwrap();
    assert_eq!(
        answer(&mut s, now, &ack(&observe, ResponseType::Content, Some(1))),
        None
    );
    while s.poll_event().is_some() {}

    // Execute Registration Update Trigger, then discard at once: the
    // Execute's datagram still leaves, and its answer matches nothing.
    let execute = s
        .request(
            now,
            "meter-1",
            DmRequest::Execute {
                path: Path::resource(1, 0, 8),
                arguments: None,
            },
        )
        .unwrap();
    assert_eq!(
        s.discard_registration(now, "meter-1"),
        Some(path.clone()),
        "it returns the location it had"
    );
    let sent = Packet::from_bytes(&s.poll_transmit().expect("the Execute leaves").payload).unwrap();
    assert_eq!(
        lwm2m::coap::options::uri_path_string(&sent),
        "/1/0/8",
        "{sent:?}"
    );
    assert!(s.poll_transmit().is_none());
    let events: Vec<ServerEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        events.contains(&ServerEvent::Response {
            id: execute,
            endpoint: "meter-1".into(),
            result: Err(RequestError::RegistrationEnded),
        }),
        "{events:?}"
    );
    assert!(
        events.contains(&ServerEvent::Discarded {
            endpoint: "meter-1".into(),
            location: path.clone(),
        }),
        "{events:?}"
    );
    assert!(s.registration("meter-1").is_none());
    assert_eq!(
        s.poll_timeout(),
        None,
        "the expiry deadline went with the registration"
    );
    assert_eq!(
        answer(&mut s, now, &ack(&sent, ResponseType::Changed, None)),
        None,
        "the Execute's late ACK matches no exchange and is ignored (RFC 7252 §4.2)"
    );

    // The Update: CON POST /rd/<loc>, mid 0x0201, token 0x0a. Answered
    // `ACK 4.04` with mid 0x0201 and token 0x0a (RFC 7252 §3: 0x61 = ver 1,
    // ACK, TKL 1; 0x84 = 4.04) and a diagnostic payload (§5.5.2).
    let reply = answer(&mut s, now, &post(0x0201, &segs, &[], None)).expect("an answer");
    let mut expected = vec![0x61, 0x84, 0x02, 0x01, 0x0a, 0xff];
    expected.extend(format!("no registration at {path}").bytes());
    assert_eq!(reply, expected);

    // A notification of the old observation is refused: empty RST with its
    // message id (RFC 7641 §3.6, RFC 7252 §4.3).
    let mut note = Packet::new();
    note.header.set_type(MessageType::NonConfirmable);
    note.header.code = MessageClass::Response(ResponseType::Content);
    note.header.message_id = 0x0202;
    note.set_token(observe.get_token().to_vec());
    note.add_option(CoapOption::Observe, vec![2]);
    note.payload = b"43".to_vec();
    assert_eq!(
        answer(&mut s, now, &note.to_bytes().unwrap()),
        Some(vec![0x70, 0x00, 0x02, 0x02])
    );
    assert!(
        std::iter::from_fn(|| s.poll_event())
            .all(|e| !matches!(e, ServerEvent::Notification { .. })),
        "no notification from a discarded observation"
    );

    // The client registers again: a new registration at a new location.
    let later = now + Duration::from_secs(1);
    let again = register(&mut s, later, 0x0203);
    assert_ne!(again, loc, "a new location, never the discarded one");
    assert!(s.registration("meter-1").is_some());
    assert!(matches!(s.poll_event(), Some(ServerEvent::Registered(_))));
}

#[test]
fn discarding_an_unknown_endpoint_changes_nothing() {
    let mut s = support::seeded_server(&registry(), 11);
    let now = Instant::now();
    register(&mut s, now, 0x0100);
    while s.poll_event().is_some() {}
    assert_eq!(s.discard_registration(now, "meter-2"), None);
    assert!(s.poll_event().is_none());
    assert!(s.registration("meter-1").is_some());
}
