//! Certificate mode (LwM2M Security Mode 2): TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
//! (RFC 7251 §2) with ECDSA P-256 certificates made in each test by a
//! per-test CA, in memory on the fake clock and over real loopback sockets.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pair;
use crate::pair::{client_config, keys, Pair};
use crate::udp_endpoint::{run_client, serve, COAP_PAYLOAD};
use dtls::{
    CertificateAuthority, CertificateCredential, CipherSuite, ClientConfig, ClientEvent,
    ClientState, DtlsClient, DtlsServer, HandshakeFailure, OpensslClient, OpensslServer,
    ServerConfig, ServerEvent, SessionState, Usage,
};

const SUITE: CipherSuite = CipherSuite::EcdheEcdsaAes128Ccm8;
const PSK: &[u8] = b"0123456789abcdef";

/// A run's PKI: the CA, the server's credential (trusting the CA for
/// clients) and a PSK table beside it.
struct Pki {
    ca: CertificateAuthority,
    server: CertificateCredential,
}

impl Pki {
    fn new() -> Self {
        let ca = CertificateAuthority::generate("meterbench test CA").unwrap();
        let (cert, key) = ca.issue("lwm2m-server", Usage::Server).unwrap();
        let server = CertificateCredential::new(cert, key, vec![ca.certificate().clone()]).unwrap();
        Pki { ca, server }
    }

    fn server_config(&self) -> ServerConfig {
        let mut config = keys(&[("psk-meter", PSK)]);
        config.certificate = Some(self.server.clone());
        config
    }

    /// A device credential `CN=<cn>` that pins the server's certificate, as
    /// the Security object's /0/x/4 gives it.
    fn device(&self, cn: &str) -> ClientConfig {
        let (cert, key) = self.ca.issue(cn, Usage::Client).unwrap();
        ClientConfig::with_certificate(
            CertificateCredential::new(cert, key, vec![self.server.certificate.clone()]).unwrap(),
        )
    }
}

#[test]
fn certificate_handshake_reports_the_subject_cn_and_carries_data() {
    let pki = Pki::new();
    let mut pair = Pair::new(pki.server_config());
    let c = pair.connect(pki.device("meter-1"));
    pair.drive();
    assert_eq!(pair.client(c).state(), &ClientState::Connected(SUITE));
    let peer = pair.client_addr(c);
    assert_eq!(
        pair.server_events,
        vec![ServerEvent::HandshakeCompleted {
            peer,
            identity: "meter-1".into(),
            suite: SUITE
        }]
    );
    let info = pair.server.session(peer).unwrap();
    assert_eq!(info.state, SessionState::Established);
    assert_eq!(info.identity.as_deref(), Some("meter-1"));
    assert!(info.suite.unwrap().is_certificate());

    let now = pair.now;
    pair.client(c).send(now, b"POST /rd?ep=meter-1").unwrap();
    pair.server.send(now, peer, b"2.01 Created").unwrap();
    pair.drive();
    assert_eq!(
        pair.server_received,
        vec![(peer, b"POST /rd?ep=meter-1".to_vec())]
    );
    assert_eq!(pair.client_received[c], vec![b"2.01 Created".to_vec()]);
}

#[test]
fn the_same_server_still_accepts_psk_clients() {
    let pki = Pki::new();
    let mut pair = Pair::new(pki.server_config());
    let psk = pair.connect(client_config("psk-meter", PSK, &CipherSuite::ALL));
    let cert = pair.connect(pki.device("meter-2"));
    pair.drive();
    assert_eq!(
        pair.client(psk).state(),
        &ClientState::Connected(CipherSuite::PskAes128Ccm8)
    );
    assert_eq!(pair.client(cert).state(), &ClientState::Connected(SUITE));
    let identities: Vec<_> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::HandshakeCompleted {
                identity, suite, ..
            } => Some((identity.as_str(), *suite)),
            _ => None,
        })
        .collect();
    assert_eq!(
        identities,
        [
            ("psk-meter", CipherSuite::PskAes128Ccm8),
            ("meter-2", SUITE)
        ]
    );
}

#[test]
fn a_cn_that_differs_from_the_endpoint_name_is_reported_as_it_is() {
    // The DTLS layer authenticates; whether CN "other-meter" may act as
    // endpoint "meter-1" is the LwM2M server's decision, so it must see
    // the CN the certificate really carries.
    let pki = Pki::new();
    let mut pair = Pair::new(pki.server_config());
    let c = pair.connect(pki.device("other-meter"));
    pair.drive();
    assert!(pair.is_connected(c));
    let info = pair.server.session(pair.client_addr(c)).unwrap();
    assert_eq!(info.identity.as_deref(), Some("other-meter"));
}

#[test]
fn a_server_certificate_from_another_ca_is_refused_by_the_client() {
    let pki = Pki::new();
    let mut pair = Pair::new(pki.server_config());
    // The device pins a certificate the server does not hold.
    let stranger = CertificateAuthority::generate("another CA").unwrap();
    let (other_server, _) = stranger.issue("lwm2m-server", Usage::Server).unwrap();
    let (cert, key) = pki.ca.issue("meter-1", Usage::Client).unwrap();
    let c = pair.connect(ClientConfig::with_certificate(
        CertificateCredential::new(cert, key, vec![other_server]).unwrap(),
    ));
    pair.drive();
    let ClientState::Failed(HandshakeFailure::Protocol(reason)) = pair.client(c).state() else {
        panic!(
            "expected a refused server certificate: {:?}",
            pair.client(c).state()
        );
    };
    assert!(reason.contains("peer certificate rejected"), "{reason}");
    assert!(pair.client_events[c]
        .iter()
        .all(|e| !matches!(e, ClientEvent::Connected { .. })));
    // The server hears the client's fatal alert (unknown_ca or bad_certificate).
    assert!(
        pair.server_events.iter().any(|e| matches!(
            e,
            ServerEvent::HandshakeFailed {
                reason: HandshakeFailure::AlertReceived { .. },
                ..
            }
        )),
        "{:?}",
        pair.server_events
    );
}

#[test]
fn a_client_certificate_from_another_ca_is_refused_by_the_server() {
    let pki = Pki::new();
    let mut pair = Pair::new(pki.server_config());
    let stranger = CertificateAuthority::generate("another CA").unwrap();
    let (cert, key) = stranger.issue("meter-1", Usage::Client).unwrap();
    let c = pair.connect(ClientConfig::with_certificate(
        CertificateCredential::new(cert, key, vec![pki.server.certificate.clone()]).unwrap(),
    ));
    pair.drive();
    let failed: Vec<_> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::HandshakeFailed { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", pair.server_events);
    assert!(
        failed[0].contains("peer certificate rejected"),
        "{failed:?}"
    );
    assert!(pair.server.sessions().is_empty());
    assert!(matches!(pair.client(c).state(), ClientState::Failed(_)));
}

#[test]
fn a_client_without_a_certificate_cannot_use_the_certificate_suite() {
    // A server without certificate mode offers no ECDHE_ECDSA suite: the
    // certificate client finds no shared suite.
    let pki = Pki::new();
    let mut pair = Pair::new(keys(&[("psk-meter", PSK)]));
    let c = pair.connect(pki.device("meter-1"));
    pair.drive();
    assert!(matches!(pair.client(c).state(), ClientState::Failed(_)));
    assert!(pair.server.sessions().is_empty());
}

#[test]
fn certificate_handshake_over_loopback_udp() {
    pair::init_tracing();
    let pki = Pki::new();
    let server_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server_socket.local_addr().unwrap();
    let server = OpensslServer::new(pki.server_config()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(server_socket, server, stop, deadline))
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client =
        OpensslClient::connect(pki.device("meter-udp"), server_addr, Instant::now()).unwrap();
    let connected = run_client(&socket, &mut client, deadline, |c| {
        matches!(c.state(), ClientState::Connected(_))
    });
    assert!(connected, "{:?}", client.state());
    let mut get = coap_lite::Packet::new();
    get.header.set_type(coap_lite::MessageType::Confirmable);
    get.header.message_id = 9;
    get.header.code = coap_lite::MessageClass::Request(coap_lite::RequestType::Get);
    client
        .send(Instant::now(), &get.to_bytes().unwrap())
        .unwrap();
    let mut answer = None;
    run_client(&socket, &mut client, deadline, |c| {
        answer = c.poll_received();
        answer.is_some()
    });
    let answer = coap_lite::Packet::from_bytes(&answer.expect("CoAP answer")).unwrap();
    assert_eq!(answer.payload, COAP_PAYLOAD);
    stop.store(true, Ordering::Relaxed);
    let events = handle.join().unwrap();
    assert!(
        events.iter().any(|e| matches!(e,
            ServerEvent::HandshakeCompleted { identity, suite, .. }
                if identity == "meter-udp" && *suite == SUITE)),
        "{events:?}"
    );
}
