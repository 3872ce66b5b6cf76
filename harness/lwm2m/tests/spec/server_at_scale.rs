//! The server role with a fleet registered: locations stay distinct past
//! 65,536 registrations (the old four-hex-digit scheme looped forever
//! there), and expiry (LwM2M 1.1 Core §6.2.2: a registration lives `lt`
//! seconds after its Register or last Update) still fires at the right
//! instant for the right endpoints now that it comes from a deadline index
//! instead of a scan. Time is driven explicitly; nothing sleeps.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m::format::ContentFormat;
use lwm2m::server::{Server, ServerConfig, ServerEvent};

use crate::support::registry;

fn server() -> Server {
    Server::new(ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 16,
    })
}

/// Client `i`'s address: one per client, as each meter has its own.
fn peer(i: u32) -> SocketAddr {
    let [_, a, b, c] = i.to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(127, a, b, c), 56830))
}

/// A fresh message id for each request: a repeated one from the same
/// client within EXCHANGE_LIFETIME is a duplicate the server answers from
/// its cache without acting on it (RFC 7252 §4.5).
fn next_mid() -> u16 {
    static MID: AtomicU16 = AtomicU16::new(1);
    MID.fetch_add(1, Ordering::Relaxed)
}

fn request(method: RequestType, path: &[&str], query: &[String]) -> Packet {
    let mid = next_mid();
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(vec![0x0f]);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p
}

/// Sends one datagram from client `i` and returns the server's answer.
fn exchange(server: &mut Server, now: Instant, i: u32, packet: Packet) -> Packet {
    server.handle_datagram(now, peer(i), &packet.to_bytes().unwrap());
    let t = server.poll_transmit().expect("the server answers");
    assert_eq!(t.destination, peer(i));
    assert!(server.poll_transmit().is_none());
    Packet::from_bytes(&t.payload).unwrap()
}

/// Registers `meter-<i>` with lifetime `lt` and returns its location
/// (`/rd/...`), checking the answer is 2.01 Created (Core §6.2.1).
fn register(server: &mut Server, now: Instant, i: u32, lt: u64) -> String {
    let mut p = request(
        RequestType::Post,
        &["rd"],
        &[
            format!("ep=meter-{i}"),
            format!("lt={lt}"),
            "lwm2m=1.1".into(),
        ],
    );
    p.add_option(CoapOption::ContentFormat, vec![40]);
    p.payload = b"</1/0>,</3/0>".to_vec();
    let answer = exchange(server, now, i, p);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Created),
        "meter-{i}: {}",
        String::from_utf8_lossy(&answer.payload)
    );
    let segments: Vec<String> = answer
        .get_option(CoapOption::LocationPath)
        .expect("Location-Path")
        .iter()
        .map(|s| String::from_utf8(s.clone()).unwrap())
        .collect();
    format!("/{}", segments.join("/"))
}

fn update(server: &mut Server, now: Instant, i: u32, location: &str, query: &[String]) -> Packet {
    let path: Vec<&str> = location.trim_start_matches('/').split('/').collect();
    exchange(server, now, i, request(RequestType::Post, &path, query))
}

fn deregister(server: &mut Server, now: Instant, i: u32, location: &str) -> Packet {
    let path: Vec<&str> = location.trim_start_matches('/').split('/').collect();
    exchange(server, now, i, request(RequestType::Delete, &path, &[]))
}

fn expired(server: &mut Server) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(e) = server.poll_event() {
        if let ServerEvent::Expired { endpoint } = e {
            out.push(endpoint);
        }
    }
    out
}

#[test]
fn seventy_thousand_registrations_get_distinct_locations() {
    const N: u32 = 70_000;
    let mut s = server();
    let t0 = Instant::now();
    let mut locations = HashSet::new();
    for i in 0..N {
        let location = register(&mut s, t0, i, 86_400);
        assert!(location.starts_with("/rd/"), "{location}");
        assert!(locations.insert(location.clone()), "{location} given twice");
        // Events are drained as a driver would; they are not the point here.
        while s.poll_event().is_some() {}
    }
    assert_eq!(locations.len(), N as usize);
    assert_eq!(s.registrations().len(), N as usize);
    // The last one is reachable at its location: Update answers 2.04.
    let last = s
        .registration(&format!("meter-{}", N - 1))
        .unwrap()
        .location
        .clone();
    let answer = update(&mut s, t0, N - 1, &last, &[]);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Changed)
    );
}

/// Registers endpoint `name` from client `i`'s address.
fn register_as(server: &mut Server, now: Instant, i: u32, name: &str) -> Packet {
    let mut p = request(
        RequestType::Post,
        &["rd"],
        &[format!("ep={name}"), "lt=600".into(), "lwm2m=1.1".into()],
    );
    p.add_option(CoapOption::ContentFormat, vec![40]);
    p.payload = b"</3/0>".to_vec();
    exchange(server, now, i, p)
}

/// Issue 16: "a Register flood with one endpoint name from many addresses
/// keeps one registration". Each Register of a name already registered
/// replaces the registration (Core §6.2.1 leaves a repeated Register to
/// the server; a re-registration is how a rebooted client comes back), so
/// 5,000 of them from 5,000 addresses leave one, at the last address.
#[test]
fn a_register_flood_of_one_name_from_many_addresses_keeps_one_registration() {
    let mut s = server();
    let t0 = Instant::now();
    for i in 0..5_000 {
        let answer = register_as(&mut s, t0, i, "same-name");
        assert_eq!(
            answer.header.code,
            MessageClass::Response(ResponseType::Created),
            "Register {i}"
        );
        while s.poll_event().is_some() {}
    }
    assert_eq!(s.registrations().len(), 1);
    assert_eq!(s.registration("same-name").unwrap().peer, peer(4_999));
    // One deadline left too: at its lifetime, one expiry.
    s.handle_timeout(t0 + Duration::from_secs(600));
    assert_eq!(expired(&mut s), vec!["same-name".to_string()]);
    assert_eq!(s.poll_timeout(), None);
}

/// Issue 16: "a client that registers and vanishes expires on time at
/// 100,000 registered". 100,000 meters hold a day's lifetime; one more
/// registers with 60 s and is never heard again. At 60 s less a
/// nanosecond nothing ends; at 60 s it alone does (Core §6.2.2).
#[test]
fn one_that_vanishes_among_100_000_expires_on_its_lifetime() {
    let mut s = server();
    let t0 = Instant::now();
    for i in 0..100_000 {
        register(&mut s, t0, i, 86_400);
        while s.poll_event().is_some() {}
    }
    let vanishes = 100_000;
    register(&mut s, t0, vanishes, 60);
    while s.poll_event().is_some() {}
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    s.handle_timeout(t0 + Duration::from_secs(60) - Duration::from_nanos(1));
    assert!(expired(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(expired(&mut s), vec![format!("meter-{vanishes}")]);
    assert_eq!(s.registrations().len(), 100_000);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(86_400)));
}

#[test]
fn expiry_fires_at_the_lifetime_for_exactly_the_endpoints_due() {
    let mut s = server();
    let t0 = Instant::now();
    // meter-i registers at t0 + i ms with lt = 60 + (i % 7) s.
    let lifetime = |i: u32| 60 + u64::from(i % 7);
    let at = |i: u32| t0 + Duration::from_millis(u64::from(i));
    for i in 0..2_000 {
        register(&mut s, at(i), i, lifetime(i));
    }
    while s.poll_event().is_some() {}
    let deadline = |i: u32| at(i) + Duration::from_secs(lifetime(i));
    // The first deadline is meter-0's: t0 + 60 s.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    // Just before it, nothing ends.
    s.handle_timeout(t0 + Duration::from_secs(60) - Duration::from_nanos(1));
    assert!(expired(&mut s).is_empty());
    // At t0 + 62.5 s, exactly those whose deadline has come end, each once.
    let now = t0 + Duration::from_millis(62_500);
    s.handle_timeout(now);
    let mut got = expired(&mut s);
    got.sort();
    let mut want: Vec<String> = (0..2_000)
        .filter(|i| deadline(*i) <= now)
        .map(|i| format!("meter-{i}"))
        .collect();
    want.sort();
    assert!(!want.is_empty() && want.len() < 2_000);
    assert_eq!(got, want);
    for e in &want {
        assert!(s.registration(e).is_none(), "{e} still registered");
    }
    // The next wake-up is the earliest deadline still to come.
    let next = (0..2_000).map(deadline).filter(|d| *d > now).min();
    assert_eq!(s.poll_timeout(), next);
    // An Update from an expired client finds nothing: 4.04 (Core §6.2.2).
    let gone: u32 = want[0].trim_start_matches("meter-").parse().unwrap();
    let answer = update(&mut s, now, gone, "/rd/ffffffffffff", &[]);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::NotFound)
    );
    // At the last deadline everything has ended.
    let last = (0..2_000).map(deadline).max().unwrap();
    s.handle_timeout(last);
    assert_eq!(expired(&mut s).len(), 2_000 - want.len());
    assert!(s.registrations().is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn an_update_moves_the_deadline_and_a_new_lifetime_counts_from_it() {
    let mut s = server();
    let t0 = Instant::now();
    let a = register(&mut s, t0, 1, 60);
    register(&mut s, t0, 2, 60);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    // meter-1 updates at t0+50 without lt: its deadline is now t0+110.
    let answer = update(&mut s, t0 + Duration::from_secs(50), 1, &a, &[]);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(expired(&mut s), vec!["meter-2".to_string()]);
    assert!(s.registration("meter-1").is_some());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(110)));
    // At t0+100 it updates with lt=300: the deadline is t0+400.
    let answer = update(
        &mut s,
        t0 + Duration::from_secs(100),
        1,
        &a,
        &["lt=300".into()],
    );
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(400)));
    s.handle_timeout(t0 + Duration::from_secs(399));
    assert!(expired(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(400));
    assert_eq!(expired(&mut s), vec!["meter-1".to_string()]);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn deregister_removes_the_deadline() {
    let mut s = server();
    let t0 = Instant::now();
    let a = register(&mut s, t0, 1, 60);
    let b = register(&mut s, t0, 2, 90);
    let answer = deregister(&mut s, t0 + Duration::from_secs(1), 1, &a);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Deleted)
    );
    // Only meter-2's deadline is left to wake for.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(90)));
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert!(expired(&mut s).is_empty());
    let answer = deregister(&mut s, t0 + Duration::from_secs(2), 2, &b);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Deleted)
    );
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + Duration::from_secs(3_600));
    assert!(expired(&mut s).is_empty());
}

#[test]
fn a_re_registration_replaces_the_old_deadline() {
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, 1, 60);
    // The same endpoint registers again at t0+30 (Core §6.2.1: the new
    // registration replaces the old): it expires at t0+90, not t0+60.
    register(&mut s, t0 + Duration::from_secs(30), 1, 60);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(90)));
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert!(expired(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(90));
    assert_eq!(expired(&mut s), vec!["meter-1".to_string()]);
}

/// The registration a reader holds (`registration_shared`, the server
/// crate's snapshot) is the server's own, not a copy; an Update (Core
/// §6.2.2) changes the server's and leaves the reader's as it was, so
/// neither ever sees a half-made one.
#[test]
fn a_shared_registration_is_the_servers_own_until_an_update_replaces_it() {
    let mut s = server();
    let t0 = Instant::now();
    let location = register(&mut s, t0, 1, 600);
    let held = s.registration_shared("meter-1").expect("registered");
    let again = s.registration_shared("meter-1").unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&held, &again),
        "one registration, shared"
    );
    assert_eq!(held.lifetime, Duration::from_secs(600));

    let t1 = t0 + Duration::from_secs(10);
    let answer = update(&mut s, t1, 1, &location, &["lt=900".into()]);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    let now = s.registration_shared("meter-1").unwrap();
    assert!(!std::sync::Arc::ptr_eq(&held, &now));
    assert_eq!(now.lifetime, Duration::from_secs(900));
    assert_eq!(now.updated_at, t1);
    // The reader's copy is the registration as it was before the Update.
    assert_eq!(held.lifetime, Duration::from_secs(600));
    assert_eq!(held.updated_at, t0);
    drop(held);
    drop(again);
    assert_eq!(
        s.registration("meter-1").unwrap().lifetime,
        Duration::from_secs(900)
    );
    assert!(s.registration_shared("meter-9").is_none());
}

/// Sends a Read of /3/0/9 to `meter-<i>` and returns the datagram it went in.
fn read_in_flight(server: &mut Server, now: Instant, i: u32) -> (SocketAddr, Vec<u8>) {
    server
        .request(
            now,
            &format!("meter-{i}"),
            lwm2m::server::DmRequest::Read {
                path: lwm2m::Path::resource(3, 0, 9),
                format: None,
            },
        )
        .unwrap();
    let t = server.poll_transmit().expect("the request goes out");
    (t.destination, t.payload)
}

/// Issue 16: ending a registration drops its requests in flight from the
/// by-endpoint index (each ends with `RegistrationEnded`), and once the
/// whole fleet has de-registered every index of the server is empty — no
/// location, deadline, request or observation entry is left behind.
#[test]
fn de_registration_drops_its_requests_and_leaves_every_index_empty() {
    const N: u32 = 300;
    let mut s = server();
    let t0 = Instant::now();
    let locations: Vec<String> = (0..N).map(|i| register(&mut s, t0, i, 86_400)).collect();
    for i in 0..N {
        read_in_flight(&mut s, t0, i);
    }
    while s.poll_event().is_some() {}
    let book = s.bookkeeping();
    assert_eq!(
        (
            book.registrations,
            book.locations,
            book.peers,
            book.deadlines
        ),
        (N as usize, N as usize, N as usize, N as usize)
    );
    assert_eq!(
        (book.requests_in_flight, book.endpoints_with_requests),
        (N as usize, N as usize)
    );
    let answer = deregister(&mut s, t0, 7, &locations[7]);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Deleted)
    );
    let mut ended = Vec::new();
    while let Some(e) = s.poll_event() {
        if let ServerEvent::Response {
            endpoint,
            result: Err(lwm2m::server::RequestError::RegistrationEnded),
            ..
        } = e
        {
            ended.push(endpoint);
        }
    }
    assert_eq!(ended, vec!["meter-7".to_string()]);
    let book = s.bookkeeping();
    assert_eq!(book.requests_in_flight, N as usize - 1);
    assert_eq!(book.endpoints_with_requests, N as usize - 1);
    for i in (0..N).filter(|i| *i != 7) {
        deregister(&mut s, t0, i, &locations[i as usize]);
    }
    while s.poll_event().is_some() {}
    assert_eq!(s.bookkeeping(), lwm2m::server::Bookkeeping::default());
    // Nothing is left to retransmit either: no request outlived its registration.
    assert_eq!(s.poll_timeout(), None);
}

/// Issue 16: with requests in flight to a whole fleet, an Update of one
/// client from a new address (NAT rebinding, LwM2M 1.1 Core §6.2.2) moves
/// that client's request — and only it — to the new address: at the
/// retransmission (RFC 7252 §4.2, byte-identical) it goes there, while
/// every other client's goes where it went before.
#[test]
fn a_client_that_moves_takes_only_its_own_requests_along() {
    const N: u32 = 200;
    let mut s = server();
    let t0 = Instant::now();
    let locations: Vec<String> = (0..N).map(|i| register(&mut s, t0, i, 86_400)).collect();
    let sent: Vec<(SocketAddr, Vec<u8>)> = (0..N).map(|i| read_in_flight(&mut s, t0, i)).collect();
    while s.poll_event().is_some() {}
    let moved_to = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 9), 40_000));
    let mut p = request(RequestType::Post, &["rd", &locations[42][4..]], &[]);
    p.header.message_id = next_mid();
    s.handle_datagram(t0, moved_to, &p.to_bytes().unwrap());
    let answer = s.poll_transmit().unwrap();
    assert_eq!(answer.destination, moved_to);
    assert_eq!(
        Packet::from_bytes(&answer.payload).unwrap().header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    // Every first retransmission falls due within ACK_TIMEOUT * 1.5 = 3 s.
    s.handle_timeout(t0 + Duration::from_secs(3));
    let mut again = Vec::new();
    while let Some(t) = s.poll_transmit() {
        again.push((t.destination, t.payload));
    }
    assert_eq!(again.len(), N as usize, "one retransmission each");
    for (i, (to, bytes)) in sent.iter().enumerate() {
        let want = if i == 42 { moved_to } else { *to };
        assert!(
            again.contains(&(want, bytes.clone())),
            "meter-{i}'s request is retransmitted to {want}"
        );
    }
    // The moved client's answer from its new address completes its request.
    let get = Packet::from_bytes(&sent[42].1).unwrap();
    let mut ack = Packet::new();
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.message_id = get.header.message_id;
    ack.header.code = MessageClass::Response(ResponseType::Content);
    ack.set_token(get.get_token().to_vec());
    ack.add_option(CoapOption::ContentFormat, vec![0]);
    ack.payload = b"87".to_vec();
    s.handle_datagram(
        t0 + Duration::from_secs(3),
        moved_to,
        &ack.to_bytes().unwrap(),
    );
    let mut answered = Vec::new();
    while let Some(e) = s.poll_event() {
        if let ServerEvent::Response {
            endpoint,
            result: Ok(r),
            ..
        } = e
        {
            answered.push((endpoint, r.code));
        }
    }
    assert_eq!(answered, vec![("meter-42".to_string(), 205)]);
    assert_eq!(s.bookkeeping().requests_in_flight, N as usize - 1);
    // A Send (POST /dp, Core §6.4.6) names no registration: the server
    // finds the sender by its address, so from the new address it is
    // meter-42's, and the old address no longer belongs to anyone.
    let send = |s: &mut Server, from: SocketAddr| {
        let mut p = request(RequestType::Post, &["dp"], &[]);
        p.add_option(CoapOption::ContentFormat, vec![110]); // SenML JSON
        p.payload = br#"[{"n":"/3/0/9","v":87}]"#.to_vec();
        s.handle_datagram(t0 + Duration::from_secs(4), from, &p.to_bytes().unwrap());
        let answer = Packet::from_bytes(&s.poll_transmit().unwrap().payload).unwrap();
        let senders: Vec<String> = std::iter::from_fn(|| s.poll_event())
            .filter_map(|e| match e {
                ServerEvent::Sent { endpoint, .. } => Some(endpoint),
                _ => None,
            })
            .collect();
        (answer.header.code, senders)
    };
    assert_eq!(
        send(&mut s, moved_to),
        (
            MessageClass::Response(ResponseType::Changed),
            vec!["meter-42".to_string()]
        )
    );
    assert_eq!(
        send(&mut s, peer(42)),
        (MessageClass::Response(ResponseType::NotFound), vec![])
    );
    assert_eq!(
        send(&mut s, peer(41)),
        (
            MessageClass::Response(ResponseType::Changed),
            vec!["meter-41".to_string()]
        )
    );
    assert_eq!(s.bookkeeping().peers, N as usize);
}
