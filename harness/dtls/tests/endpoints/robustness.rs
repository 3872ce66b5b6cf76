//! What the server does with hostile or broken input: cookies before state,
//! bounded state under a ClientHello flood, garbage and replays dropped with
//! events while sessions keep working.

use std::net::SocketAddr;
use std::time::Duration;

use crate::pair;
use crate::pair::{client_config, keys, Dir, Pair};
use dtls::record::{self, ContentType};
use dtls::{
    CipherSuite, ClientEvent, CloseReason, DropReason, DtlsClient, DtlsServer, HandshakeFailure,
    ServerEvent,
};

const KEY: &[u8] = b"0123456789abcdef";

/// A ClientHello as a client would send it: taken from a real client.
fn real_client_hello() -> Vec<u8> {
    let cfg = client_config("m", KEY, &CipherSuite::ALL);
    let mut client = dtls::OpensslClient::connect(
        cfg,
        pair::SERVER.parse().unwrap(),
        std::time::Instant::now(),
    )
    .unwrap();
    client.poll_transmit().unwrap().payload
}

#[test]
fn first_client_hello_gets_a_hello_verify_request_and_no_state() {
    let mut pair = Pair::new(keys(&[("m", KEY)]));
    let hello = real_client_hello();
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let now = pair.now;
    pair.server.handle_datagram(now, peer, &hello);
    let reply = pair.server.poll_transmit().expect("HelloVerifyRequest");
    assert!(pair.server.poll_transmit().is_none());
    assert_eq!(reply.destination, peer);
    // RFC 6347 §4.2.1: handshake type 3, record sequence copied, DTLS 1.0 version.
    let records = record::parse_records(&reply.payload).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].content_type, ContentType::Handshake);
    assert_eq!(
        records[0].sequence,
        record::parse_client_hello(&hello).unwrap().record_sequence
    );
    assert_eq!(reply.payload[records[0].fragment_start], 3);
    assert_eq!(&reply.payload[25..27], &[0xfe, 0xff]);
    assert_eq!(reply.payload[27], 16, "16-byte cookie");
    let stats = pair.server.stats();
    assert_eq!(
        (
            stats.sessions,
            stats.sessions_created,
            stats.hello_verify_requests
        ),
        (0, 0, 1)
    );
    assert!(pair.server.session(peer).is_none());

    // The full exchange: hello, HVR, hello with cookie, then a session.
    let c = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    pair.drive();
    assert!(pair.is_connected(c));
    let to_client: Vec<&Vec<u8>> = pair
        .log
        .iter()
        .filter(|(d, _, _)| *d == Dir::ToClient)
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(
        to_client[0][13], 3,
        "first server datagram is a HelloVerifyRequest"
    );
    let to_server: Vec<&Vec<u8>> = pair
        .log
        .iter()
        .filter(|(d, _, _)| *d == Dir::ToServer)
        .map(|(_, _, b)| b)
        .collect();
    assert!(record::parse_client_hello(to_server[0])
        .unwrap()
        .cookie
        .is_empty());
    assert_eq!(
        record::parse_client_hello(to_server[1])
            .unwrap()
            .cookie
            .len(),
        16
    );
}

#[test]
fn forged_cookie_is_dropped_without_state() {
    let mut pair = Pair::new(keys(&[("m", KEY)]));
    let now = pair.now;
    // Answer our own HVR from a different port: the cookie is bound to the address.
    let hello = real_client_hello();
    let a: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:50001".parse().unwrap();
    pair.server.handle_datagram(now, a, &hello);
    let hvr = pair.server.poll_transmit().unwrap().payload;
    let mut client = dtls::OpensslClient::connect(
        client_config("m", KEY, &CipherSuite::ALL),
        pair::SERVER.parse().unwrap(),
        now,
    )
    .unwrap();
    let _first = client.poll_transmit();
    client.handle_datagram(now, pair::SERVER.parse().unwrap(), &hvr);
    let with_cookie = client.poll_transmit().unwrap().payload;
    pair.server.handle_datagram(now, b, &with_cookie);
    assert!(pair.server.poll_transmit().is_none());
    assert_eq!(
        pair.server.poll_event(),
        Some(ServerEvent::Dropped {
            peer: b,
            reason: DropReason::BadCookie
        })
    );
    assert_eq!(pair.server.stats().sessions, 0);
}

#[test]
fn flood_of_500_client_hellos_from_distinct_ports_creates_no_session() {
    let mut pair = Pair::new(keys(&[("m", KEY)]));
    let hello = real_client_hello();
    let now = pair.now;
    for port in 0..500u16 {
        let peer: SocketAddr = format!("127.0.0.1:{}", 20000 + port).parse().unwrap();
        pair.server.handle_datagram(now, peer, &hello);
    }
    let mut replies = 0;
    while let Some(t) = pair.server.poll_transmit() {
        assert!(
            t.payload.len() < 60,
            "a HelloVerifyRequest is small: no amplification"
        );
        replies += 1;
    }
    assert_eq!(replies, 500);
    let stats = pair.server.stats();
    assert_eq!(
        (stats.sessions, stats.half_open, stats.sessions_created),
        (0, 0, 0)
    );
    assert_eq!(pair.server.poll_timeout(), None, "no timers either");
    // A genuine client is unaffected.
    let c = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    pair.drive();
    assert!(pair.is_connected(c));
}

#[test]
fn half_open_sessions_are_capped_with_oldest_evicted() {
    let mut config = keys(&[("m", KEY)]);
    config.max_half_open = 3;
    let mut pair = Pair::new(config);
    // Clients whose flight 5 never arrives stay half-open on the server.
    pair.filter = Box::new(|dir, bytes| {
        let is_flight5 = dir == Dir::ToServer
            && record::parse_records(bytes)
                .map(|r| {
                    r.iter()
                        .any(|r| r.content_type == ContentType::ChangeCipherSpec)
                })
                .unwrap_or(false);
        if is_flight5 {
            pair::Fate::Drop
        } else {
            pair::Fate::Deliver
        }
    });
    for _ in 0..5 {
        pair.connect(client_config("m", KEY, &CipherSuite::ALL));
        pair.now += Duration::from_millis(10);
        pair.drive();
    }
    let stats = pair.server.stats();
    assert_eq!(stats.half_open, 3);
    assert_eq!(stats.half_open_evicted, 2);
    let evicted: Vec<SocketAddr> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::HandshakeFailed {
                peer,
                reason: HandshakeFailure::Evicted,
                ..
            } => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(
        evicted,
        vec![pair.client_addr(0), pair.client_addr(1)],
        "oldest first"
    );
}

fn established() -> (Pair, usize, SocketAddr) {
    let mut pair = Pair::new(keys(&[("m", KEY)]));
    let c = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    pair.drive();
    assert!(pair.is_connected(c));
    let peer = pair.client_addr(c);
    pair.server_events.clear();
    (pair, c, peer)
}

/// Sends one application datagram from the client and returns its bytes.
fn client_datagram(pair: &mut Pair, c: usize, payload: &[u8]) -> Vec<u8> {
    let now = pair.now;
    pair.client(c).send(now, payload).unwrap();
    pair.client(c).poll_transmit().unwrap().payload
}

fn dropped(pair: &mut Pair) -> Vec<DropReason> {
    pair.collect();
    pair.server_events
        .drain(..)
        .filter_map(|e| match e {
            ServerEvent::Dropped { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn truncated_garbage_and_replayed_records_are_dropped_and_the_session_keeps_working() {
    let (mut pair, c, peer) = established();
    let now = pair.now;
    let datagram = client_datagram(&mut pair, c, b"first");
    pair.server.handle_datagram(now, peer, &datagram);
    // Replay of the same record.
    pair.server.handle_datagram(now, peer, &datagram);
    // Truncated: framing broken.
    pair.server
        .handle_datagram(now, peer, &datagram[..datagram.len() - 3]);
    // Garbage.
    pair.server.handle_datagram(now, peer, &[0xff; 40]);
    pair.server.handle_datagram(now, peer, &[]);
    // Framing intact, ciphertext flipped: fails authentication.
    let mut flipped = client_datagram(&mut pair, c, b"tampered");
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    pair.server.handle_datagram(now, peer, &flipped);
    // Epoch-0 garbage handshake record claiming to be from the peer.
    pair.server.handle_datagram(
        now,
        peer,
        &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0],
    );

    let reasons = dropped(&mut pair);
    assert_eq!(
        reasons[0],
        DropReason::RecordsRejected { count: 1 },
        "replay"
    );
    assert!(
        matches!(
            reasons[1],
            DropReason::Malformed(record::RecordError::Truncated { .. })
        ),
        "{:?}",
        reasons[1]
    );
    assert!(matches!(
        reasons[2],
        DropReason::Malformed(record::RecordError::ContentType { value: 0xff, .. })
    ));
    assert!(matches!(
        reasons[3],
        DropReason::Malformed(record::RecordError::Truncated { .. })
    ));
    assert_eq!(
        reasons[4],
        DropReason::RecordsRejected { count: 1 },
        "tampered"
    );
    assert_eq!(
        reasons.len(),
        5,
        "the epoch-0 record is discarded by OpenSSL without a count"
    );
    assert_eq!(
        pair.server_received,
        vec![(peer, b"first".to_vec())],
        "delivered exactly once"
    );

    // Still working both ways.
    let fresh = client_datagram(&mut pair, c, b"second");
    pair.server.handle_datagram(now, peer, &fresh);
    pair.server.send(now, peer, b"reply").unwrap();
    pair.drive();
    assert_eq!(pair.server_received.last().unwrap().1, b"second");
    assert_eq!(pair.client_received[c], vec![b"reply".to_vec()]);

    // The client side drops garbage too.
    let server_addr = pair.server_addr;
    pair.client(c).handle_datagram(now, server_addr, &[1, 2, 3]);
    pair.client(c)
        .handle_datagram(now, "127.0.0.1:9".parse().unwrap(), &[1, 2, 3]);
    pair.collect();
    assert!(
        matches!(
            pair.client_events[c][1..],
            [
                ClientEvent::Dropped {
                    reason: DropReason::Malformed(_)
                },
                ClientEvent::Dropped {
                    reason: DropReason::WrongSource
                }
            ]
        ),
        "{:?}",
        pair.client_events[c]
    );
}

#[test]
fn records_from_unknown_peers_are_dropped_with_an_event() {
    let (mut pair, c, _peer) = established();
    let now = pair.now;
    let datagram = client_datagram(&mut pair, c, b"hello");
    let stranger: SocketAddr = "127.0.0.1:61000".parse().unwrap();
    pair.server.handle_datagram(now, stranger, &datagram);
    assert_eq!(dropped(&mut pair), vec![DropReason::UnknownPeer]);
    assert!(pair.server.poll_transmit().is_none());
}

#[test]
fn idle_sessions_expire_with_close_notify() {
    let mut config = keys(&[("m", KEY)]);
    config.idle_timeout = Some(Duration::from_secs(60));
    let mut pair = Pair::new(config);
    let c = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    pair.drive();
    let peer = pair.client_addr(c);
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.now + Duration::from_secs(60))
    );
    pair.advance(Duration::from_secs(30));
    let now = pair.now;
    pair.client(c).send(now, b"keepalive").unwrap();
    pair.drive();
    pair.advance(Duration::from_secs(45));
    assert!(
        pair.server.session(peer).is_some(),
        "activity at 30 s postponed expiry"
    );
    pair.advance(Duration::from_secs(20));
    assert!(pair.server.session(peer).is_none());
    assert!(pair.server_events.contains(&ServerEvent::SessionClosed {
        peer,
        identity: "m".into(),
        reason: CloseReason::IdleTimeout
    }));
    assert!(pair.client_events[c].contains(&ClientEvent::Closed {
        reason: CloseReason::PeerClosed
    }));
}

#[test]
fn shutdown_sends_close_notify_to_every_session() {
    let mut pair = Pair::new(keys(&[("m", KEY)]));
    let a = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    let b = pair.connect(client_config("m", KEY, &[CipherSuite::PskAes128CbcSha256]));
    pair.drive();
    let now = pair.now;
    pair.server.shutdown(now);
    pair.drive();
    for c in [a, b] {
        assert!(pair.client_events[c].contains(&ClientEvent::Closed {
            reason: CloseReason::PeerClosed
        }));
    }
    assert_eq!(pair.server.stats().sessions, 0);
}

#[test]
fn client_close_notify_ends_the_server_session() {
    let (mut pair, c, peer) = established();
    let now = pair.now;
    pair.client(c).close(now);
    pair.drive();
    assert!(pair.server.session(peer).is_none());
    assert!(pair.server_events.contains(&ServerEvent::SessionClosed {
        peer,
        identity: "m".into(),
        reason: CloseReason::PeerClosed
    }));
    assert!(pair.client(c).send(now, b"x").is_err());
}

#[test]
fn rebooted_client_on_the_same_port_replaces_its_session() {
    let (mut pair, c, peer) = established();
    // The meter reboots and handshakes again from the same address.
    let now = pair.now;
    let again = dtls::OpensslClient::connect(
        client_config("m", KEY, &CipherSuite::ALL),
        pair.server_addr,
        now,
    )
    .unwrap();
    pair.clients[c].1 = again;
    pair.drive();
    assert!(pair.is_connected(c));
    assert!(pair.server_events.contains(&ServerEvent::SessionClosed {
        peer,
        identity: "m".into(),
        reason: CloseReason::Replaced
    }));
    assert_eq!(pair.server.stats().sessions, 1);
}

/// identity -> key, shared by the test and the server's lookup.
type KeyTable = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>;

/// A server whose key table the test can change, as a credential store does.
fn revocable(entries: &[(&str, &[u8])]) -> (Pair, KeyTable) {
    let table: std::collections::HashMap<String, Vec<u8>> = entries
        .iter()
        .map(|(i, k)| (i.to_string(), k.to_vec()))
        .collect();
    let table = std::sync::Arc::new(std::sync::Mutex::new(table));
    let lookup = std::sync::Arc::clone(&table);
    let config = dtls::ServerConfig::new(std::sync::Arc::new(move |identity: &str| {
        let k = lookup.lock().unwrap().get(identity).cloned()?;
        dtls::SecretKey::new(k).ok()
    }));
    (Pair::new(config), table)
}

#[test]
fn revoking_a_key_ends_its_sessions_with_close_notify_and_only_those() {
    const NEW: &[u8] = b"fedcba9876543210";
    let (mut pair, table) = revocable(&[("m", KEY), ("n", KEY)]);
    let a = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    let b = pair.connect(client_config("n", KEY, &CipherSuite::ALL));
    pair.drive();
    assert!(pair.is_connected(a) && pair.is_connected(b));
    let (peer_a, peer_b) = (pair.client_addr(a), pair.client_addr(b));
    // A datagram of the old session, still on its way when the key goes.
    let late = client_datagram(&mut pair, a, b"late");

    // "m" gets a new key: its session with the old key ends; "n" is untouched.
    table.lock().unwrap().insert("m".into(), NEW.to_vec());
    let now = pair.now;
    let new_key = dtls::SecretKey::new(NEW.to_vec()).unwrap();
    assert_eq!(pair.server.revoke(now, "m", Some(&new_key)), [peer_a]);
    let kept = dtls::SecretKey::new(KEY.to_vec()).unwrap();
    assert!(pair.server.revoke(now, "n", Some(&kept)).is_empty());
    pair.drive();
    assert!(pair.server_events.contains(&ServerEvent::SessionClosed {
        peer: peer_a,
        identity: "m".into(),
        reason: CloseReason::KeyRevoked
    }));
    // close_notify (RFC 5246 §7.2.1) reached the client.
    assert!(pair.client_events[a].contains(&ClientEvent::Closed {
        reason: CloseReason::PeerClosed
    }));
    assert!(pair.server.session(peer_a).is_none());
    assert!(pair.is_connected(b) && pair.server.session(peer_b).is_some());

    // The old session's datagram now comes from a peer without a session.
    pair.server.handle_datagram(now, peer_a, &late);
    pair.collect();
    assert!(!pair.server_received.iter().any(|(_, p)| p == b"late"));
    assert!(pair.server_events.contains(&ServerEvent::Dropped {
        peer: peer_a,
        reason: DropReason::UnknownPeer
    }));

    // A new handshake from the same address with the old key fails; the
    // identity removed altogether ends "n" too.
    pair.clients[a].1 = dtls::OpensslClient::connect(
        client_config("m", KEY, &CipherSuite::ALL),
        pair.server_addr,
        now,
    )
    .unwrap();
    pair.drive();
    assert!(matches!(
        pair.client(a).state(),
        dtls::ClientState::Failed(reason) if reason.is_wrong_key()
    ));
    table.lock().unwrap().remove("n");
    assert_eq!(pair.server.revoke(now, "n", None), [peer_b]);
    pair.drive();
    assert!(pair.client_events[b].contains(&ClientEvent::Closed {
        reason: CloseReason::PeerClosed
    }));
    assert_eq!(pair.server.stats().sessions, 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary bytes, and mutations of real records, from a known and an
    /// unknown peer: no panic, and the established session still works.
    #[test]
    fn arbitrary_datagrams_never_break_the_endpoints(
        noise in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), 1..8),
        flip in 0usize..64,
    ) {
        let (mut pair, c, peer) = established();
        let now = pair.now;
        let real = client_datagram(&mut pair, c, b"payload");
        let mut mutated = real.clone();
        let i = flip % mutated.len();
        mutated[i] ^= 0x40;
        let stranger: SocketAddr = "127.0.0.1:61001".parse().unwrap();
        for bytes in noise.iter().chain([&mutated]) {
            pair.server.handle_datagram(now, peer, bytes);
            pair.server.handle_datagram(now, stranger, bytes);
            let server_addr = pair.server_addr;
            pair.client(c).handle_datagram(now, server_addr, bytes);
        }
        while pair.server.poll_transmit().is_some() {}
        pair.server_received.clear();
        pair.collect();
        pair.server_received.clear();
        let fresh = client_datagram(&mut pair, c, b"still works");
        pair.server.handle_datagram(now, peer, &fresh);
        pair.collect();
        proptest::prop_assert_eq!(&pair.server_received, &vec![(peer, b"still works".to_vec())]);
        proptest::prop_assert!(pair.is_connected(c));
    }
}
