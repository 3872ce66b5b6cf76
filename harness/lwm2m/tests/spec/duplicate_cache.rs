//! The server's duplicate cache (RFC 7252 §4.5) after a fleet leaves: a
//! meter that de-registered (LwM2M 1.1.1 Transport §6.2, answered 2.02)
//! leaves its Register and Update entries only until no copy of them can
//! still arrive — MAX_TRANSMIT_SPAN + MAX_LATENCY = 145 s after the
//! De-register (RFC 7252 §4.8.2) — and its De-register's own entry for
//! EXCHANGE_LIFETIME, so a retransmitted De-register gets the very 2.02.
//! Until then every duplicate gets its cached answer byte for byte. A
//! meter that stays registered keeps EXCHANGE_LIFETIME for every entry.
//! Time is driven explicitly; nothing sleeps.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m::coap::dedup::LAST_COPY_WINDOW;
use lwm2m::coap::exchange::{EXCHANGE_LIFETIME, MAX_LATENCY, MAX_TRANSMIT_SPAN};
use lwm2m::format::ContentFormat;
use lwm2m::server::{Server, ServerConfig};

use crate::support::registry;

const MS: Duration = Duration::from_millis(1);

fn server() -> Server {
    Server::new(ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 7,
    })
}

fn peer(i: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 3, 1), 40_000 + i))
}

/// A CON request with message id `mid` and the 8-byte token `i` (big endian).
fn request(i: u16, mid: u16, method: RequestType, path: &[&str], query: &[&str]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(u64::from(i).to_be_bytes().to_vec());
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    if method == RequestType::Post && path == ["rd"] {
        p.add_option(CoapOption::ContentFormat, vec![40]);
        p.payload = b"</1/0>,</3/0>".to_vec();
    }
    p.to_bytes().unwrap()
}

/// Feeds one datagram from meter `i`; the server's one answer, in bytes.
fn answer(s: &mut Server, now: Instant, i: u16, datagram: &[u8]) -> Vec<u8> {
    s.handle_datagram(now, peer(i), datagram);
    let t = s.poll_transmit().expect("an answer");
    assert_eq!(t.destination, peer(i));
    assert!(s.poll_transmit().is_none());
    while s.poll_event().is_some() {}
    t.payload
}

struct Meter {
    register: Vec<u8>,
    registered: Vec<u8>,
    update: Vec<u8>,
    updated: Vec<u8>,
    deregister: Vec<u8>,
    deregistered: Vec<u8>,
}

/// Meter `i` registers at `t0`, updates and de-registers (if `leave`) at `t1`.
fn run_meter(s: &mut Server, t0: Instant, t1: Instant, i: u16, leave: bool) -> Meter {
    let ep = format!("ep=m{i}");
    let register = request(i, 0x100, RequestType::Post, &["rd"], &[&ep, "lt=86400"]);
    let registered = answer(s, t0, i, &register);
    // ACK (TKL 8) 2.01 Created, mid 0x0100, the token, Location-Path "rd"
    // then the location id (RFC 7252 §3, §5.10.7; Transport §6.2.1).
    assert_eq!(registered[..4], [0x68, 0x41, 0x01, 0x00]);
    assert_eq!(registered[4..12], u64::from(i).to_be_bytes());
    assert_eq!(registered[12..15], [0x82, b'r', b'd']);
    let id = String::from_utf8(registered[16..].to_vec()).unwrap();
    assert_eq!(usize::from(registered[15]), id.len());
    let update = request(i, 0x101, RequestType::Post, &["rd", &id], &[]);
    let updated = answer(s, t1, i, &update);
    let mut want = vec![0x68, 0x44, 0x01, 0x01]; // ACK 2.04 Changed
    want.extend_from_slice(&u64::from(i).to_be_bytes());
    assert_eq!(updated, want);
    let deregister = request(i, 0x102, RequestType::Delete, &["rd", &id], &[]);
    let deregistered = if leave {
        let got = answer(s, t1, i, &deregister);
        let mut want = vec![0x68, 0x42, 0x01, 0x02]; // ACK 2.02 Deleted
        want.extend_from_slice(&u64::from(i).to_be_bytes());
        assert_eq!(got, want);
        got
    } else {
        Vec::new()
    };
    Meter {
        register,
        registered,
        update,
        updated,
        deregister,
        deregistered,
    }
}

/// RFC 7252 §4.8.2: the window is MAX_TRANSMIT_SPAN (45 s) + MAX_LATENCY
/// (100 s); not MAX_TRANSMIT_WAIT (93 s), which is how long the sender
/// waits, not when the network may still deliver a late copy.
#[test]
fn the_window_for_a_late_copy_is_max_transmit_span_plus_max_latency() {
    assert_eq!(MAX_TRANSMIT_SPAN, Duration::from_secs(45));
    assert_eq!(MAX_LATENCY, Duration::from_secs(100));
    assert_eq!(LAST_COPY_WINDOW, Duration::from_secs(145));
    assert!(LAST_COPY_WINDOW < EXCHANGE_LIFETIME);
}

#[test]
fn a_de_registered_fleet_is_forgotten_as_soon_as_no_copy_can_arrive() {
    const N: u16 = 1_000;
    let mut s = server();
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(5);
    let meters: Vec<Meter> = (0..N).map(|i| run_meter(&mut s, t0, t1, i, true)).collect();
    // One meter that stays registered, for contrast.
    let stays = run_meter(&mut s, t0, t1, N, false);
    let c = s.duplicate_cache();
    assert_eq!(c.entries, 3 * usize::from(N) + 2);
    assert_eq!(
        (c.peers, c.ended_peers),
        (usize::from(N) + 1, usize::from(N))
    );
    let held = c.table_bytes;

    // Just inside the window: every duplicate gets its answer byte for
    // byte, and nothing is acted on again (a duplicate Register would
    // otherwise register the de-registered meter anew).
    let inside = t1 + LAST_COPY_WINDOW - MS;
    for (i, m) in meters.iter().enumerate().step_by(97) {
        let i = i as u16;
        assert_eq!(answer(&mut s, inside, i, &m.register), m.registered);
        assert_eq!(answer(&mut s, inside, i, &m.update), m.updated);
        assert_eq!(answer(&mut s, inside, i, &m.deregister), m.deregistered);
    }
    assert_eq!(s.registrations().len(), 1, "only the meter that stayed");
    assert_eq!(s.duplicate_cache().entries, 3 * usize::from(N) + 2);

    // At the window's end only the De-registers stay (and the staying
    // meter's entries); the ended peers are no longer pending.
    let end = t1 + LAST_COPY_WINDOW;
    s.handle_timeout(end);
    let c = s.duplicate_cache();
    assert_eq!(c.entries, usize::from(N) + 2);
    assert_eq!((c.peers, c.ended_peers), (usize::from(N) + 1, 0));
    assert_eq!(answer(&mut s, end, N, &stays.register), stays.registered);
    assert_eq!(answer(&mut s, end, N, &stays.update), stays.updated);
    // A retransmitted De-register still gets the very 2.02 (§4.5), up to
    // EXCHANGE_LIFETIME after it came.
    let m = &meters[3];
    assert_eq!(
        answer(&mut s, t1 + EXCHANGE_LIFETIME - MS, 3, &m.deregister),
        m.deregistered
    );

    // After EXCHANGE_LIFETIME nothing is held and the tables gave their
    // memory back (the staying meter's Register went at t0 + 247 s, its
    // Update at t1 + 247 s).
    s.handle_timeout(t1 + EXCHANGE_LIFETIME);
    let c = s.duplicate_cache();
    assert_eq!((c.entries, c.peers, c.ended_peers), (0, 0, 0));
    assert!(
        c.table_bytes < held / 20,
        "{} bytes held of {held}",
        c.table_bytes
    );
    assert_eq!(s.registrations().len(), 1);
}

/// The server wakes a quiet loop to give memory back: the housekeeping
/// deadline is the next whole second at or after the first entry's
/// expiry (one wake a second for a burst), and none once all are gone.
#[test]
fn housekeeping_names_when_the_cache_next_gives_memory_back() {
    let mut s = server();
    let t0 = Instant::now();
    assert_eq!(s.poll_housekeeping(), None);
    run_meter(&mut s, t0, t0, 1, true);
    let due = s.poll_housekeeping().expect("entries to forget");
    assert!(due >= t0 + LAST_COPY_WINDOW && due < t0 + LAST_COPY_WINDOW + Duration::from_secs(1));
    s.handle_timeout(due);
    assert_eq!(s.duplicate_cache().entries, 1, "the De-register stays");
    let due = s.poll_housekeeping().unwrap();
    assert!(due >= t0 + EXCHANGE_LIFETIME);
    s.handle_timeout(due);
    assert_eq!(s.duplicate_cache().entries, 0);
    assert_eq!(s.poll_housekeeping(), None);
    assert_eq!(s.poll_timeout(), None, "protocol deadlines are unchanged");
}
