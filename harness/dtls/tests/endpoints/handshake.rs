//! In-memory handshakes between `OpensslClient` and `OpensslServer`.

use std::time::Duration;

use crate::pair;
use crate::pair::{client_config, keys, Pair};
use dtls::{
    CipherSuite, ClientEvent, ClientState, DtlsClient, DtlsServer, HandshakeFailure, ServerEvent,
    SessionState,
};

const KEY: &[u8] = b"0123456789abcdef";

fn handshake_and_exchange(suite: CipherSuite) {
    let mut pair = Pair::new(keys(&[("urn:imei:1", KEY)]));
    let c = pair.connect(client_config("urn:imei:1", KEY, &[suite]));
    pair.drive();
    assert_eq!(pair.client(c).state(), &ClientState::Connected(suite));
    assert_eq!(
        pair.client_events[c],
        vec![ClientEvent::Connected { suite }]
    );
    let peer = pair.client_addr(c);
    assert_eq!(
        pair.server_events,
        vec![ServerEvent::HandshakeCompleted {
            peer,
            identity: "urn:imei:1".into(),
            suite
        }]
    );
    let info = pair.server.session(peer).unwrap();
    assert_eq!(info.identity.as_deref(), Some("urn:imei:1"));
    assert_eq!(info.state, SessionState::Established);
    assert_eq!(info.suite, Some(suite));

    let now = pair.now;
    pair.client(c).send(now, b"POST /rd").unwrap();
    pair.drive();
    assert_eq!(pair.server_received, vec![(peer, b"POST /rd".to_vec())]);
    pair.server.send(now, peer, b"2.01 Created").unwrap();
    pair.drive();
    assert_eq!(pair.client_received[c], vec![b"2.01 Created".to_vec()]);
    // Several datagrams each way keep their boundaries.
    for i in 0..5u8 {
        pair.client(c).send(now, &[i; 100]).unwrap();
        pair.server.send(now, peer, &[i; 1000]).unwrap();
    }
    pair.drive();
    assert_eq!(pair.server_received.len(), 6);
    assert_eq!(pair.server_received[5].1, vec![4; 100]);
    assert_eq!(pair.client_received[c].len(), 6);
    assert_eq!(pair.client_received[c][3], vec![2; 1000]);
}

#[test]
fn handshake_with_aes_128_ccm_8_and_data_both_ways() {
    handshake_and_exchange(CipherSuite::PskAes128Ccm8);
}

#[test]
fn handshake_with_aes_128_cbc_sha256_and_data_both_ways() {
    handshake_and_exchange(CipherSuite::PskAes128CbcSha256);
}

#[test]
fn wrong_key_fails_that_handshake_and_a_correct_client_still_connects() {
    let mut pair = Pair::new(keys(&[("meter-a", KEY), ("meter-b", b"another key!")]));
    let good = pair.connect(client_config("meter-a", KEY, &CipherSuite::ALL));
    pair.drive();
    assert!(pair.is_connected(good));
    let bad = pair.connect(client_config("meter-b", b"not the key", &CipherSuite::ALL));
    pair.drive();
    let bad_addr = pair.client_addr(bad);
    let failed: Vec<_> = pair
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::HandshakeFailed { .. }))
        .collect();
    assert_eq!(
        failed,
        vec![&ServerEvent::HandshakeFailed {
            peer: bad_addr,
            identity: Some("meter-b".into()),
            reason: HandshakeFailure::FinishedNotVerified
        }]
    );
    match pair.client(bad).state() {
        ClientState::Failed(reason) => {
            assert!(reason.is_wrong_key(), "{reason:?}");
            assert!(reason.to_string().contains("wrong key"), "{reason}");
        }
        other => panic!("bad client not failed: {other:?}"),
    }
    assert!(pair.server.session(bad_addr).is_none());
    // The established session is untouched and a correct client still connects.
    let now = pair.now;
    let good_addr = pair.client_addr(good);
    pair.server.send(now, good_addr, b"still here").unwrap();
    let late = pair.connect(client_config("meter-b", b"another key!", &CipherSuite::ALL));
    pair.drive();
    assert!(pair.is_connected(late));
    assert_eq!(pair.client_received[good], vec![b"still here".to_vec()]);
    assert_eq!(pair.server.stats().sessions, 2);
}

#[test]
fn unknown_identity_fails_with_unknown_psk_identity() {
    let mut pair = Pair::new(keys(&[("meter-a", KEY)]));
    let c = pair.connect(client_config("stranger", KEY, &CipherSuite::ALL));
    pair.drive();
    let peer = pair.client_addr(c);
    assert!(pair.server_events.contains(&ServerEvent::HandshakeFailed {
        peer,
        identity: Some("stranger".into()),
        reason: HandshakeFailure::UnknownIdentity
    }));
    match pair.client(c).state() {
        ClientState::Failed(reason) => assert!(reason.is_unknown_identity(), "{reason:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dropped_handshake_datagrams_are_recovered_by_retransmission() {
    // Drop the first copy of every handshake datagram in both directions:
    // only timers can complete the handshake.
    let mut pair = Pair::new(keys(&[("m", KEY)]));
    let mut seen = std::collections::HashSet::new();
    pair.filter = Box::new(move |_dir, bytes| {
        if seen.insert(bytes.to_vec()) {
            pair::Fate::Drop
        } else {
            pair::Fate::Deliver
        }
    });
    let c = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    pair.drive();
    assert!(!pair.is_connected(c));
    let mut waited = Duration::ZERO;
    for _ in 0..10 {
        if pair.is_connected(c) {
            break;
        }
        let deadline = [pair.server.poll_timeout(), pair.client(c).poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer runs while handshaking");
        let step = deadline - pair.now;
        waited += step;
        pair.advance(step);
    }
    assert!(pair.is_connected(c), "not connected after {waited:?}");
    // RFC 6347 §4.2.4.1 timers: 1 s first, then doubling — a few seconds suffice.
    assert!(
        waited >= Duration::from_secs(1) && waited <= Duration::from_secs(15),
        "{waited:?}"
    );
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, ServerEvent::HandshakeCompleted { .. })));
    pair.filter = Box::new(|_, _| pair::Fate::Deliver);
    let now = pair.now;
    pair.client(c).send(now, b"after loss").unwrap();
    pair.drive();
    assert_eq!(pair.server_received.len(), 1);
}

#[test]
fn unanswered_handshake_times_out_with_an_event() {
    let mut pair = Pair::new(keys(&[("m", KEY)]));
    pair.filter = Box::new(|dir, _| match dir {
        pair::Dir::ToServer => pair::Fate::Drop,
        pair::Dir::ToClient => pair::Fate::Deliver,
    });
    let c = pair.connect(client_config("m", KEY, &CipherSuite::ALL));
    for _ in 0..20 {
        pair.advance(Duration::from_secs(60));
    }
    assert_eq!(
        pair.client(c).state(),
        &ClientState::Failed(HandshakeFailure::Timeout { retransmissions: 6 })
    );
    assert_eq!(pair.client(c).poll_timeout(), None);
}

#[test]
fn wrong_key_is_detected_with_either_suite() {
    for suite in CipherSuite::ALL {
        let mut pair = Pair::new(keys(&[("m", KEY)]));
        let c = pair.connect(client_config("m", b"wrong key bytes!", &[suite]));
        pair.drive();
        let peer = pair.client_addr(c);
        assert!(
            pair.server_events.contains(&ServerEvent::HandshakeFailed {
                peer,
                identity: Some("m".into()),
                reason: HandshakeFailure::FinishedNotVerified
            }),
            "{suite}: {:?}",
            pair.server_events
        );
        // CCM_8: our decrypt_error alert; CBC: OpenSSL's own bad_record_mac.
        match pair.client(c).state() {
            ClientState::Failed(reason @ HandshakeFailure::AlertReceived { description }) => {
                assert!(reason.is_wrong_key(), "{suite}: {reason}");
                let expected = match suite {
                    CipherSuite::PskAes128Ccm8 => dtls::record::alert::DECRYPT_ERROR,
                    CipherSuite::PskAes128CbcSha256 => dtls::record::alert::BAD_RECORD_MAC,
                    CipherSuite::EcdheEcdsaAes128Ccm8 => unreachable!("not a PSK suite"),
                };
                assert_eq!(*description, expected, "{suite}");
            }
            other => panic!("{suite}: {other:?}"),
        }
        // Nothing printed about the failure carries the key.
        let shown = format!("{:?} {:?}", pair.server_events, pair.client_events);
        assert!(!shown.contains("wrong key bytes") && !shown.contains(&hex::encode(KEY)));
    }
}

#[test]
fn config_debug_shows_fingerprint_only() {
    let cfg = client_config("m", KEY, &CipherSuite::ALL);
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert!(!shown.contains(&hex::encode(KEY)), "{shown}");
    assert!(shown.contains("sha256:"), "{shown}");
}
