//! The server role against the LwM2M 1.1.1 Core TS (§6.2 registration
//! interface, §6.4 information reporting), RFC 7252 (§4.5 duplicates, §4.8.2
//! EXCHANGE_LIFETIME / NON_LIFETIME) and RFC 7641 (§3.4 sequence numbers,
//! §3.6 Reset): hand-built datagrams in, every answer checked byte for byte.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m::coap::exchange::{EXCHANGE_LIFETIME, NON_LIFETIME};
use lwm2m::format::ContentFormat;
use lwm2m::server::{DmRequest, RequestError, RequestId, Server, ServerEvent, DEFAULT_LIFETIME};
use lwm2m::Path;

use crate::support;
use crate::support::{con_post, registry, request};

const A: &str = "192.0.2.10:56830";
const B: &str = "198.51.100.7:40001";
const MS: Duration = Duration::from_millis(1);

fn server() -> Server {
    support::seeded_server(&registry(), 7)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const OBJECTS: &str = "</1/0>,</3/0>";

/// Feeds a datagram from `from` and returns every datagram the server sends.
fn feed(s: &mut Server, now: Instant, from: &str, datagram: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
    s.handle_datagram(now, addr(from), datagram);
    drain(s)
}

fn drain(s: &mut Server) -> Vec<(SocketAddr, Vec<u8>)> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|t| (t.destination, t.payload))
        .collect()
}

fn events(s: &mut Server) -> Vec<ServerEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// The one answer to a datagram, which must go back to `from`.
fn answer(s: &mut Server, now: Instant, from: &str, datagram: &[u8]) -> Vec<u8> {
    let out = feed(s, now, from, datagram);
    assert_eq!(out.len(), 1, "one answer, got {out:?}");
    assert_eq!(out[0].0, addr(from), "answered to the sender");
    out[0].1.clone()
}

/// `ACK <code>` piggybacked on message `mid`, token 0x0a, no options, no payload.
fn ack(code: u8, mid: u16) -> Vec<u8> {
    vec![0x61, code, (mid >> 8) as u8, mid as u8, 0x0a]
}

/// `ACK <code>` with a diagnostic payload (RFC 7252 §5.5.2).
fn ack_with_diagnostic(code: u8, mid: u16, diagnostic: &str) -> Vec<u8> {
    let mut v = ack(code, mid);
    v.push(0xff);
    v.extend(diagnostic.as_bytes());
    v
}

/// `ACK 2.01 Created` with Location-Path `rd`, `<id>` (Transport §6.2, Table 6.2.1-1).
fn created(mid: u16, location: &str) -> Vec<u8> {
    let id = location.strip_prefix("/rd/").expect("location under /rd");
    assert_eq!(id.len(), 4);
    let mut v = ack(0x41, mid);
    // Location-Path (8): delta 8, length 2 "rd"; delta 0, length 4 id.
    v.extend([0x82, b'r', b'd', 0x04]);
    v.extend(id.as_bytes());
    v
}

fn segments(location: &str) -> Vec<&str> {
    location.split('/').filter(|s| !s.is_empty()).collect()
}

/// Registers `meter-1` from `from` with `query` and returns its location.
fn register(s: &mut Server, now: Instant, from: &str, mid: u16, query: &[&str]) -> String {
    let mut q = vec!["ep=meter-1"];
    q.extend_from_slice(query);
    let reply = answer(s, now, from, &con_post(mid, &["rd"], &q, Some(OBJECTS)));
    let location = s
        .registration("meter-1")
        .expect("registered")
        .location
        .clone();
    assert_eq!(reply, created(mid, &location));
    location
}

fn sent(out: &[(SocketAddr, Vec<u8>)]) -> Packet {
    assert_eq!(out.len(), 1, "{out:?}");
    Packet::from_bytes(&out[0].1).unwrap()
}

/// A notification or response to `request`'s token: 2.05, Observe `seq`
/// (3-byte big-endian at most, RFC 7641 §2), text payload.
fn content(ty: MessageType, mid: u16, token: &[u8], seq: Option<u32>, payload: &str) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(ty);
    p.header.code = MessageClass::Response(ResponseType::Content);
    p.header.message_id = mid;
    p.set_token(token.to_vec());
    if let Some(seq) = seq {
        let bytes = seq.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        p.add_option(CoapOption::Observe, bytes[skip..].to_vec());
    }
    p.add_option(CoapOption::ContentFormat, vec![]);
    p.payload = payload.as_bytes().to_vec();
    p.to_bytes().unwrap()
}

/// Starts an observation of /3/0/9 on `meter-1` (at `peer`) and returns its
/// id and token, the client having answered with Observe `seq`.
fn observe(s: &mut Server, now: Instant, peer: &str, seq: u32) -> (RequestId, Vec<u8>) {
    let _ = events(s);
    let id = s
        .request(
            now,
            "meter-1",
            DmRequest::Observe {
                path: Path::resource(3, 0, 9),
                format: Some(ContentFormat::Text),
            },
        )
        .unwrap();
    let get = sent(&drain(s));
    let token = get.get_token().to_vec();
    let reply = content(
        MessageType::Acknowledgement,
        get.header.message_id,
        &token,
        Some(seq),
        "87",
    );
    assert!(feed(s, now, peer, &reply).is_empty());
    let ev = events(s);
    assert!(
        matches!(&ev[..], [ServerEvent::Response { id: i, result: Ok(_), .. }] if *i == id),
        "{ev:?}"
    );
    (id, token)
}

/// The values of the Notification events among `ev`.
fn notified(ev: &[ServerEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            ServerEvent::Notification { records, .. } => {
                Some(records.iter().map(|r| format!("{:?}", r.value)).collect())
            }
            _ => None,
        })
        .collect()
}

/// LwM2M 1.1.1 Core §6.2.1, Register parameters: Lifetime is optional and
/// the server takes 86400 s when it is absent; Binding Mode is optional
/// with default `U`; a client that names no LwM2M Version is an LwM2M 1.0
/// client (1.0 clients may omit it). A `POST /rd?ep=meter-1` with only the
/// object list is registered with exactly these, and the registration
/// lives 86400 s to the instant.
#[test]
fn register_without_lt_b_or_lwm2m_takes_the_ts_defaults() {
    let mut s = server();
    let t0 = Instant::now();
    // CON POST /rd?ep=meter-1, token 0a, Content-Format 40, "</1/0>,</3/0>".
    let mut bytes = vec![
        0x41, 0x02, 0x01, 0x00, 0x0a, 0xb2, b'r', b'd', 0x11, 40, 0x3a,
    ];
    bytes.extend(b"ep=meter-1");
    bytes.push(0xff);
    bytes.extend(OBJECTS.as_bytes());
    let reply = answer(&mut s, t0, A, &bytes);
    let reg = s.registration("meter-1").unwrap().clone();
    assert_eq!(reply, created(0x0100, &reg.location));
    assert_eq!(reg.lifetime, DEFAULT_LIFETIME);
    assert_eq!(reg.lifetime, Duration::from_secs(86_400));
    assert_eq!(reg.binding, "U");
    assert_eq!(reg.lwm2m_version, "1.0");
    assert!(!reg.queue_mode);
    assert_eq!(reg.peer, addr(A));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(86_400)));
    s.handle_timeout(t0 + Duration::from_secs(86_400) - MS);
    assert!(s.registration("meter-1").is_some());
}

/// LwM2M 1.1.1 Core §6.2.2: the registration lives `lt` seconds from the
/// Register or the last Update, and an Update's `lt` starts the new
/// lifetime then. Registered with lt=60 at t0, updated with lt=30 at
/// t0+50: alive 1 ms before t0+80, expired at t0+80 exactly, with its
/// observations and requests in flight.
#[test]
fn the_registration_expires_exactly_lt_after_the_last_update() {
    let mut s = server();
    let t0 = Instant::now();
    let loc = register(&mut s, t0, A, 0x100, &["lt=60", "lwm2m=1.1"]);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    let t1 = t0 + Duration::from_secs(50);
    let reply = answer(
        &mut s,
        t1,
        A,
        &con_post(0x101, &segments(&loc), &["lt=30"], None),
    );
    assert_eq!(reply, ack(0x44, 0x101), "2.04 Changed");
    let _ = events(&mut s);
    let expiry = t0 + Duration::from_secs(80);
    assert_eq!(
        s.registration("meter-1").unwrap().expires_at(),
        Some(expiry)
    );
    let (obs, _) = observe(&mut s, t1, A, 2);
    let read = s
        .request(
            t1,
            "meter-1",
            DmRequest::Read {
                path: Path::resource(3, 0, 0),
                format: None,
            },
        )
        .unwrap();
    let _ = drain(&mut s);
    assert_eq!(s.poll_timeout().map(|t| t <= expiry), Some(true));
    s.handle_timeout(expiry - MS);
    let _ = drain(&mut s);
    assert!(s.registration("meter-1").is_some(), "alive 1 ms before");
    assert!(!events(&mut s)
        .iter()
        .any(|e| matches!(e, ServerEvent::Expired { .. })));
    s.handle_timeout(expiry);
    assert!(s.registration("meter-1").is_none(), "gone at t0+80");
    let ev = events(&mut s);
    assert!(ev.contains(&ServerEvent::Expired {
        endpoint: "meter-1".into()
    }));
    assert!(ev.iter().any(|e| matches!(e, ServerEvent::Response { id, result: Err(RequestError::RegistrationEnded), .. } if *id == read)));
    assert!(s.observations("meter-1").is_empty());
    let _ = obs;
}

/// LwM2M 1.1.1 Core §6.2.2: an Update after the lifetime ran out finds no
/// registration (4.04 Not Found; the client then registers again), even
/// when the datagram is handled before the driver's timer fired —
/// `tokio::select!` may take the socket first. The registration is
/// refreshed by an Update 1 ms before its expiry, and refused at it.
#[test]
fn an_update_arriving_after_the_lifetime_gets_4_04_before_any_timer() {
    let mut s = server();
    let t0 = Instant::now();
    let loc = register(&mut s, t0, A, 0x100, &["lt=60", "lwm2m=1.1"]);
    let path = segments(&loc);
    let t1 = t0 + Duration::from_secs(60) - MS;
    let reply = answer(&mut s, t1, A, &con_post(0x101, &path, &[], None));
    assert_eq!(reply, ack(0x44, 0x101), "1 ms before expiry: 2.04");
    let _ = events(&mut s);
    // No handle_timeout at all: the datagram at t1 + 60 s meets an expired registration.
    let reply = answer(
        &mut s,
        t1 + Duration::from_secs(60),
        A,
        &con_post(0x102, &path, &[], None),
    );
    assert_eq!(
        reply,
        ack_with_diagnostic(0x84, 0x102, &format!("no registration at {loc}"))
    );
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Expired {
            endpoint: "meter-1".into()
        }]
    );
    assert!(s.registration("meter-1").is_none());
}

/// LwM2M 1.1.1 Core §6.2.1: "If the LwM2M Client sends a Register
/// operation to the LwM2M Server even though the LwM2M Server has
/// registration information of the LwM2M Client, the LwM2M Server removes
/// the existing registration information and performs the new Register";
/// the server "MUST re-initiate observation requests whenever the LwM2M
/// Client registers" (§6.4.1), so the old observations end, and requests
/// in flight to the old registration end with `RegistrationEnded`. The old
/// location answers 4.04; a notification for an old observation gets a
/// Reset (RFC 7641 §3.6).
#[test]
fn a_register_from_a_registered_endpoint_replaces_it_with_its_observations_and_requests() {
    let mut s = server();
    let t0 = Instant::now();
    let old = register(&mut s, t0, A, 0x100, &["lwm2m=1.1"]);
    let _ = events(&mut s);
    let (_, token) = observe(&mut s, t0, A, 2);
    let read = s
        .request(
            t0,
            "meter-1",
            DmRequest::Read {
                path: Path::resource(3, 0, 0),
                format: None,
            },
        )
        .unwrap();
    let pending = sent(&drain(&mut s));

    let new = register(&mut s, t0 + MS, A, 0x101, &["lwm2m=1.1"]);
    assert_ne!(new, old, "a new location");
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [
        ServerEvent::Response { id, result: Err(RequestError::RegistrationEnded), .. },
        ServerEvent::Registered(r),
    ] if *id == read && r.location == new),
        "{ev:?}"
    );
    assert!(s.observations("meter-1").is_empty());
    // The Read is not retransmitted any more.
    s.handle_timeout(t0 + Duration::from_secs(10));
    assert!(drain(&mut s).is_empty());
    // The client's late answer to it matches nothing (an ACK) and is ignored.
    let late = content(
        MessageType::Acknowledgement,
        pending.header.message_id,
        pending.get_token(),
        None,
        "x",
    );
    assert!(feed(&mut s, t0 + Duration::from_secs(10), A, &late).is_empty());
    // The old location is gone: 4.04.
    let reply = answer(
        &mut s,
        t0 + Duration::from_secs(10),
        A,
        &con_post(0x102, &segments(&old), &[], None),
    );
    assert_eq!(
        reply,
        ack_with_diagnostic(0x84, 0x102, &format!("no registration at {old}"))
    );
    // A notification of the old observation: RST, nothing delivered.
    let note = content(MessageType::Confirmable, 0x7001, &token, Some(3), "88");
    let out = feed(&mut s, t0 + Duration::from_secs(10), A, &note);
    assert_eq!(out, vec![(addr(A), vec![0x70, 0x00, 0x70, 0x01])]);
    assert!(notified(&events(&mut s)).is_empty());
}

/// The same endpoint registering from another address (a device that
/// rebooted behind a new NAT binding) replaces the registration the same
/// way (LwM2M 1.1.1 Core §6.2.1), and the server "records the connection
/// information of the registration message (e.g. source IP address and
/// port) and uses this information for all future interactions": requests
/// go to the new address.
#[test]
fn a_register_from_another_address_moves_the_endpoint_there() {
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, A, 0x100, &["lwm2m=1.1"]);
    let (_, token) = observe(&mut s, t0, A, 2);
    let _ = events(&mut s);
    register(&mut s, t0 + MS, B, 0x100, &["lwm2m=1.1"]);
    assert_eq!(s.registration("meter-1").unwrap().peer, addr(B));
    assert!(s.observations("meter-1").is_empty());
    s.request(
        t0 + MS,
        "meter-1",
        DmRequest::Read {
            path: Path::resource(3, 0, 0),
            format: None,
        },
    )
    .unwrap();
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(B));
    // A NON notification of the old observation from the old address: Reset.
    let note = content(MessageType::NonConfirmable, 0x7002, &token, Some(3), "88");
    let out = feed(&mut s, t0 + MS, A, &note);
    assert_eq!(out, vec![(addr(A), vec![0x70, 0x00, 0x70, 0x02])]);
}

/// NAT rebinding (LwM2M 1.1.1 Core §6.2.2: the Update refreshes the
/// registration and its connection information): an Update from another
/// address moves the registration there, and a request still in flight to
/// the old address is retransmitted — byte-identical, RFC 7252 §4.2 — to
/// the new one, whose answer completes it.
#[test]
fn an_update_from_another_address_moves_the_requests_in_flight() {
    let mut s = server();
    let t0 = Instant::now();
    let loc = register(&mut s, t0, A, 0x100, &["lwm2m=1.1"]);
    let _ = events(&mut s);
    let read = s
        .request(
            t0,
            "meter-1",
            DmRequest::Read {
                path: Path::resource(3, 0, 9),
                format: Some(ContentFormat::Text),
            },
        )
        .unwrap();
    let first = drain(&mut s);
    assert_eq!(first[0].0, addr(A));
    let reply = answer(
        &mut s,
        t0 + MS,
        B,
        &con_post(0x101, &segments(&loc), &[], None),
    );
    assert_eq!(reply, ack(0x44, 0x101));
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [ServerEvent::Updated(r)] if r.peer == addr(B)),
        "{ev:?}"
    );
    let retransmit_at = s.poll_timeout().unwrap();
    s.handle_timeout(retransmit_at);
    let again = drain(&mut s);
    assert_eq!(again, vec![(addr(B), first[0].1.clone())]);
    let get = Packet::from_bytes(&again[0].1).unwrap();
    let reply = content(
        MessageType::Acknowledgement,
        get.header.message_id,
        get.get_token(),
        None,
        "87",
    );
    assert!(feed(&mut s, retransmit_at, B, &reply).is_empty());
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [ServerEvent::Response { id, result: Ok(r), .. }] if *id == read && r.code == 205),
        "{ev:?}"
    );
}

/// LwM2M 1.1.1 Core §6.2.2: an Update carrying a binding or an object
/// list replaces what the registration held, and the server reports the
/// new state (`Updated`). Under 1.1 the bindings are U, T, S and N
/// (object 1 v1.1 resource 7); M (MQTT) and H (HTTP) arrive with 1.2, so a
/// 1.1 client's `b=M` is 4.00 and changes nothing, while a 1.2 client's is
/// registered. Queue mode is Q's business from 1.1 on, untouched by `b`.
#[test]
fn an_update_changing_binding_and_object_list_replaces_them() {
    let mut s = server();
    let t0 = Instant::now();
    let loc = register(&mut s, t0, A, 0x100, &["lwm2m=1.1", "b=U", "Q"]);
    let _ = events(&mut s);
    let path = segments(&loc);
    let reply = answer(
        &mut s,
        t0,
        A,
        &con_post(0x101, &path, &["b=T"], Some("</1/0>,</3/0>,</5/0>")),
    );
    assert_eq!(reply, ack(0x44, 0x101));
    let ev = events(&mut s);
    let [ServerEvent::Updated(reg)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(reg.binding, "T");
    assert!(
        reg.queue_mode,
        "b does not say anything about queue mode under 1.1"
    );
    assert_eq!(
        reg.instances(),
        vec![
            Path::instance(1, 0),
            Path::instance(3, 0),
            Path::instance(5, 0)
        ]
    );
    assert_eq!(s.registration("meter-1").unwrap(), &**reg);

    let reply = answer(&mut s, t0, A, &con_post(0x102, &path, &["b=M"], None));
    assert_eq!(
        reply,
        ack_with_diagnostic(
            0x80,
            0x102,
            "binding \"M\" is not a binding of LwM2M 1.1 (letters among U, T, S, N, each once; queue mode is Q)"
        )
    );
    assert!(events(&mut s).is_empty());
    assert_eq!(s.registration("meter-1").unwrap().binding, "T");

    let mut s = server();
    let loc = register(&mut s, t0, A, 0x100, &["lwm2m=1.2", "b=U"]);
    let reply = answer(
        &mut s,
        t0,
        A,
        &con_post(0x101, &segments(&loc), &["b=MU"], None),
    );
    assert_eq!(reply, ack(0x44, 0x101));
    assert_eq!(s.registration("meter-1").unwrap().binding, "MU");
}

/// LwM2M 1.1.1 Transport §6.2 (De-register: 2.02 Deleted, 4.04 Not
/// Found): `DELETE /rd/<unknown>` is 4.04. A De-register of the right
/// location is 2.02; its retransmission within EXCHANGE_LIFETIME (the ACK
/// was lost) gets the same 2.02 again, not 4.04 (RFC 7252 §4.5); a new
/// De-register of it afterwards is 4.04.
#[test]
fn de_register_of_an_unknown_location_is_4_04_and_a_retransmission_is_2_02_again() {
    let mut s = server();
    let t0 = Instant::now();
    let delete = |mid: u16, path: &[&str]| {
        request(
            MessageType::Confirmable,
            RequestType::Delete,
            mid,
            path,
            &[],
            None,
        )
    };
    let reply = answer(&mut s, t0, A, &delete(0x200, &["rd", "ffff"]));
    assert_eq!(
        reply,
        ack_with_diagnostic(0x84, 0x200, "no registration at /rd/ffff")
    );
    let loc = register(&mut s, t0, A, 0x100, &["lwm2m=1.1"]);
    let _ = events(&mut s);
    let bytes = delete(0x201, &segments(&loc));
    assert_eq!(
        answer(&mut s, t0, A, &bytes),
        ack(0x42, 0x201),
        "2.02 Deleted"
    );
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Deregistered {
            endpoint: "meter-1".into()
        }]
    );
    let later = t0 + EXCHANGE_LIFETIME - MS;
    assert_eq!(answer(&mut s, later, A, &bytes), ack(0x42, 0x201), "cached");
    assert!(events(&mut s).is_empty());
    assert_eq!(
        answer(&mut s, later, A, &delete(0x202, &segments(&loc))),
        ack_with_diagnostic(0x84, 0x202, &format!("no registration at {loc}"))
    );
}

/// RFC 7252 §4.5 with §4.8.2's EXCHANGE_LIFETIME (247 s): a Register
/// retransmitted within 247 s of the first is a duplicate — it gets the
/// very 2.01 (same Location-Path) and registers nothing new; the same
/// message id after 247 s is a new message, processed as a new Register
/// (a new location, the old registration replaced).
#[test]
fn a_duplicate_con_register_within_exchange_lifetime_gets_the_cached_2_01() {
    assert_eq!(EXCHANGE_LIFETIME, Duration::from_secs(247));
    let mut s = server();
    let t0 = Instant::now();
    let bytes = con_post(0x100, &["rd"], &["ep=meter-1", "lwm2m=1.1"], Some(OBJECTS));
    let first = answer(&mut s, t0, A, &bytes);
    let loc = s.registration("meter-1").unwrap().location.clone();
    assert_eq!(first, created(0x100, &loc));
    let _ = events(&mut s);
    let dup = answer(&mut s, t0 + EXCHANGE_LIFETIME - MS, A, &bytes);
    assert_eq!(dup, first, "the cached reply, byte for byte");
    assert!(events(&mut s).is_empty(), "not processed again");
    let again = answer(&mut s, t0 + EXCHANGE_LIFETIME, A, &bytes);
    let new = s.registration("meter-1").unwrap().location.clone();
    assert_ne!(new, loc);
    assert_eq!(again, created(0x100, &new));
    assert!(matches!(&events(&mut s)[..], [ServerEvent::Registered(r)] if r.location == new));
}

/// RFC 7252 §4.5 and §4.8.2 for Non-confirmable messages: a NON is a
/// duplicate for NON_LIFETIME (145 s) and is then silently dropped; after
/// that the same message id is a new message. A NON Register is answered
/// with a NON 2.01 (§5.2.3).
#[test]
fn a_duplicate_non_register_is_dropped_for_non_lifetime() {
    assert_eq!(NON_LIFETIME, Duration::from_secs(145));
    let mut s = server();
    let t0 = Instant::now();
    let bytes = request(
        MessageType::NonConfirmable,
        RequestType::Post,
        0x300,
        &["rd"],
        &["ep=meter-1", "lwm2m=1.1"],
        Some(OBJECTS),
    );
    let first = Packet::from_bytes(&answer(&mut s, t0, A, &bytes)).unwrap();
    assert_eq!(first.header.get_type(), MessageType::NonConfirmable);
    assert_eq!(
        first.header.code,
        MessageClass::Response(ResponseType::Created)
    );
    let _ = events(&mut s);
    assert!(feed(&mut s, t0 + NON_LIFETIME - MS, A, &bytes).is_empty());
    assert!(events(&mut s).is_empty());
    let again = Packet::from_bytes(&answer(&mut s, t0 + NON_LIFETIME, A, &bytes)).unwrap();
    assert_eq!(
        again.header.code,
        MessageClass::Response(ResponseType::Created)
    );
    assert!(matches!(&events(&mut s)[..], [ServerEvent::Registered(_)]));
}

/// After De-register or expiry the server holds no observation of the
/// client (LwM2M 1.1.1 Core §6.2.3, §6.4: "the LwM2M Server should assume
/// past states are nullified including the previous observations"), so a
/// notification that still comes — CON or NON — is answered with Reset,
/// which cancels the observation at the client (RFC 7641 §3.6).
#[test]
fn notifications_after_the_registration_ended_are_reset() {
    for end in ["De-register", "expiry"] {
        let mut s = server();
        let t0 = Instant::now();
        let loc = register(&mut s, t0, A, 0x100, &["lt=60", "lwm2m=1.1"]);
        let (_, token) = observe(&mut s, t0, A, 2);
        let now = match end {
            "De-register" => {
                let bytes = request(
                    MessageType::Confirmable,
                    RequestType::Delete,
                    0x101,
                    &segments(&loc),
                    &[],
                    None,
                );
                assert_eq!(answer(&mut s, t0, A, &bytes), ack(0x42, 0x101));
                t0
            }
            _ => {
                s.handle_timeout(t0 + Duration::from_secs(60));
                t0 + Duration::from_secs(60)
            }
        };
        let _ = events(&mut s);
        let con = content(MessageType::Confirmable, 0x7100, &token, Some(3), "88");
        assert_eq!(
            feed(&mut s, now, A, &con),
            vec![(addr(A), vec![0x70, 0x00, 0x71, 0x00])],
            "{end}: CON notification"
        );
        let non = content(MessageType::NonConfirmable, 0x7101, &token, Some(4), "89");
        assert_eq!(
            feed(&mut s, now, A, &non),
            vec![(addr(A), vec![0x70, 0x00, 0x71, 0x01])],
            "{end}: NON notification"
        );
        assert!(notified(&events(&mut s)).is_empty());
    }
}

/// The server role acknowledges a CON notification (RFC 7641 §4.5) with an
/// Empty ACK; when the client retransmits it because that ACK was lost,
/// the duplicate (same message id, within EXCHANGE_LIFETIME) gets the same
/// ACK and the value is delivered once (RFC 7252 §4.5).
#[test]
fn a_retransmitted_con_notification_gets_the_same_ack_and_is_delivered_once() {
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, A, 0x100, &["lwm2m=1.1"]);
    let (_, token) = observe(&mut s, t0, A, 2);
    let note = content(MessageType::Confirmable, 0x7200, &token, Some(3), "88");
    let empty_ack = vec![0x60, 0x00, 0x72, 0x00];
    assert_eq!(
        feed(&mut s, t0, A, &note),
        vec![(addr(A), empty_ack.clone())]
    );
    assert_eq!(notified(&events(&mut s)), vec!["Integer(88)".to_string()]);
    let t = t0 + Duration::from_secs(3);
    assert_eq!(feed(&mut s, t, A, &note), vec![(addr(A), empty_ack)]);
    assert!(events(&mut s).is_empty());
}

/// RFC 7641 §3.4: a notification is newer than the last one (V1, T1) when
/// (V1 < V2 and V2 - V1 < 2^23) or (V1 > V2 and V1 - V2 > 2^23) or
/// T2 > T1 + 128 s; Observe values are 24-bit and wrap (§4.4). From
/// 0xFFFFFF, 0 is newer; from 0, 0x800000 (exactly 2^23 on) is not, and
/// 0x7FFFFF is; an older number is dropped until 128 s have passed since
/// the last accepted one, and taken 1 ms after.
#[test]
fn observe_sequence_numbers_wrap_at_2_24_and_128_s_makes_any_notification_newer() {
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, A, 0x100, &["lwm2m=1.1"]);
    let (_, token) = observe(&mut s, t0, A, 0xFF_FFFF);
    let non = |mid: u16, seq: u32, value: &str| {
        content(MessageType::NonConfirmable, mid, &token, Some(seq), value)
    };
    // Observe 0 is the empty option value: 0x60 (delta 6, length 0).
    let zero = non(0x7300, 0, "1");
    assert_eq!(
        &zero[8..10],
        &[0x60, 0x60],
        "Observe=0 then Content-Format=0, both empty"
    );
    let mut note = |at: Instant, bytes: Vec<u8>| {
        assert!(feed(&mut s, at, A, &bytes).is_empty(), "NON: no answer");
        notified(&events(&mut s))
    };
    assert_eq!(
        note(t0, zero),
        vec!["Integer(1)"],
        "0 after 0xFFFFFF: wrapped, newer"
    );
    assert!(
        note(t0, non(0x7301, 0x80_0000, "2")).is_empty(),
        "2^23 ahead: not newer"
    );
    assert_eq!(note(t0, non(0x7302, 0x7F_FFFF, "3")), vec!["Integer(3)"]);
    let t1 = t0 + Duration::from_secs(128);
    assert!(
        note(t1, non(0x7303, 0x7F_FFFE, "4")).is_empty(),
        "older, 128 s on: dropped"
    );
    assert_eq!(
        note(t1 + MS, non(0x7304, 0x7F_FFFE, "5")),
        vec!["Integer(5)"],
        "older, more than 128 s on: newer"
    );
}

/// Cancel by Reset (RFC 7641 §3.6, ETS 1.1 int-302): once the server has
/// forgotten the observation, the next notification — CON or NON — is
/// answered with an empty RST carrying its message id, and nothing is
/// delivered; the other observation of the client is untouched.
#[test]
fn a_forgotten_observation_answers_its_next_notification_with_reset() {
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, A, 0x100, &["lt=600", "lwm2m=1.1"]);
    let (_, first) = observe(&mut s, t0, A, 2);
    let (forgotten, token) = observe(&mut s, t0, A, 2);
    assert_eq!(
        s.forget_observation("meter-1", Path::resource(3, 0, 9)),
        Some(token.clone()),
        "the newest observation of the path is forgotten"
    );
    assert_eq!(s.observations("meter-1").len(), 1);
    assert!(s
        .observations("meter-1")
        .iter()
        .all(|(id, _)| *id != forgotten));
    assert_eq!(
        s.forget_observation("meter-2", Path::resource(3, 0, 9)),
        None
    );
    let con = content(MessageType::Confirmable, 0x7200, &token, Some(3), "88");
    assert_eq!(
        feed(&mut s, t0, A, &con),
        vec![(addr(A), vec![0x70, 0x00, 0x72, 0x00])]
    );
    let non = content(MessageType::NonConfirmable, 0x7201, &token, Some(4), "89");
    assert_eq!(
        feed(&mut s, t0, A, &non),
        vec![(addr(A), vec![0x70, 0x00, 0x72, 0x01])]
    );
    assert!(notified(&events(&mut s)).is_empty());
    // The older observation still delivers.
    let other = content(MessageType::NonConfirmable, 0x7202, &first, Some(5), "90");
    assert!(feed(&mut s, t0, A, &other).is_empty());
    assert_eq!(notified(&events(&mut s)), vec!["Integer(90)".to_string()]);
}

/// Write-Attributes (LwM2M 1.1 Core §5.1.2, Transport §6.3): a PUT with
/// one Uri-Query per attribute and no payload; 1.1's `epmin`/`epmax`
/// follow the others (ETS int-261 writes `pmax=100&epmin=1&epmax=20`).
#[test]
fn write_attributes_puts_every_attribute_as_a_uri_query() {
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, A, 0x100, &["lt=600", "lwm2m=1.1"]);
    let _ = events(&mut s);
    s.request(
        t0,
        "meter-1",
        DmRequest::WriteAttributes {
            path: Path::resource_instance(3, 0, 11, 0),
            attributes: lwm2m::server::Attributes {
                pmax: Some(100),
                epmin: Some(1),
                epmax: Some(20),
                unset: vec!["pmin".into()],
                ..Default::default()
            },
        },
    )
    .unwrap();
    let put = sent(&drain(&mut s));
    assert_eq!(put.header.code, MessageClass::Request(RequestType::Put));
    let queries: Vec<String> = put
        .get_option(CoapOption::UriQuery)
        .into_iter()
        .flatten()
        .map(|q| String::from_utf8(q.clone()).unwrap())
        .collect();
    assert_eq!(queries, ["pmax=100", "epmin=1", "epmax=20", "pmin"]);
    let paths: Vec<&[u8]> = put
        .get_option(CoapOption::UriPath)
        .into_iter()
        .flatten()
        .map(|p| p.as_slice())
        .collect();
    assert_eq!(paths, [&b"3"[..], b"0", b"11", b"0"]);
    assert!(put.payload.is_empty());
}
