//! `OpensslServer::restarted` and `OpensslClient::restarted`: fresh state on
//! an already-built OpenSSL context, with nothing of the old endpoint left.

use crate::pair::{client_config, keys, Dir, Pair};
use dtls::{
    CipherSuite, ClientEvent, ClientState, DropReason, DtlsClient, DtlsServer, ServerEvent,
    ServerStats, SessionState,
};

const KEY: &[u8] = b"0123456789abcdef";
const SUITE: CipherSuite = CipherSuite::PskAes128Ccm8;

#[test]
fn restarted_server_has_no_old_sessions_and_still_handshakes() {
    let mut pair = Pair::new(keys(&[("urn:imei:1", KEY)]));
    let c = pair.connect(client_config("urn:imei:1", KEY, &[SUITE]));
    pair.drive();
    assert!(pair.is_connected(c));
    let peer = pair.client_addr(c);
    assert_eq!(pair.server.sessions().len(), 1);
    // Leave something queued in the old server: it must not carry over.
    let now = pair.now;
    pair.server.send(now, peer, b"queued").unwrap();
    // The ClientHello that carried the old server's cookie.
    let hello_with_cookie = pair
        .log
        .iter()
        .filter(|(dir, _, _)| *dir == Dir::ToServer)
        .nth(1)
        .map(|(_, _, bytes)| bytes.clone())
        .unwrap();

    let mut fresh = pair.server.restarted().unwrap();
    assert!(fresh.sessions().is_empty());
    assert!(fresh.session(peer).is_none());
    assert_eq!(fresh.stats(), ServerStats::default());
    assert!(fresh.poll_transmit().is_none());
    assert!(fresh.poll_event().is_none());
    assert!(fresh.poll_received().is_none());
    assert!(fresh.poll_timeout().is_none());
    // A new cookie secret: the old server's cookie is refused.
    fresh.handle_datagram(now, peer, &hello_with_cookie);
    assert!(fresh.sessions().is_empty());
    assert_eq!(
        fresh.poll_event(),
        Some(ServerEvent::Dropped {
            peer,
            reason: DropReason::BadCookie
        })
    );
    // The old server is untouched by the restart.
    assert_eq!(pair.server.sessions().len(), 1);

    // The old client's records mean nothing to the fresh server.
    let fresh = pair.server.restarted().unwrap();
    pair.server = fresh;
    pair.server_events.clear();
    pair.client(c).send(now, b"stale").unwrap();
    pair.drive();
    assert!(pair.server_received.is_empty());
    assert!(pair.server.sessions().is_empty());
    assert_eq!(
        pair.server_events,
        vec![ServerEvent::Dropped {
            peer,
            reason: DropReason::UnknownPeer
        }]
    );

    // A restarted client handshakes from scratch with the restarted server.
    pair.server_events.clear();
    pair.client_events[c].clear();
    let client = pair.client(c).restarted(now).unwrap();
    assert_eq!(client.state(), &ClientState::Handshaking);
    pair.clients[c].1 = client;
    pair.drive();
    assert!(pair.is_connected(c));
    assert_eq!(
        pair.client_events[c],
        vec![ClientEvent::Connected { suite: SUITE }]
    );
    assert_eq!(
        pair.server_events,
        vec![ServerEvent::HandshakeCompleted {
            peer,
            identity: "urn:imei:1".into(),
            suite: SUITE
        }]
    );
    let info = pair.server.session(peer).unwrap();
    assert_eq!(info.state, SessionState::Established);
    assert_eq!(pair.server.stats().sessions_created, 1);

    pair.client(c).send(now, b"POST /rd").unwrap();
    pair.drive();
    assert_eq!(pair.server_received, vec![(peer, b"POST /rd".to_vec())]);
}
