//! The embedded LwM2M server and bootstrap server over coaps (DTLS 1.2 PSK,
//! LwM2M 1.1 Transport §5.2.8) on 127.0.0.1: registration with per-device
//! credentials, refusals (wrong key, identity/endpoint mismatch), bootstrap
//! then secure registration, redaction of the provisioned key from every
//! log, hostile datagrams, and libcoap's coap-client as a third-party client.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtls::{DtlsClient, OpensslClient};
use lwm2m::bootstrap::{
    BootstrapOp, BootstrapScript, BootstrapServerConfig, SecurityMode, ServerAccount,
};
use lwm2m::client::{BootstrapConfig, Client, ClientConfig, ClientEvent, ObjectStore, RetryPolicy};
use lwm2m::server::{SecurityEvent, ServerConfig, ServerEvent};
use lwm2m::{ContentFormat, Path, Registry, Value};
use server::{
    BootstrapServerEvent, BootstrapServerHandle, Direction, EmbeddedBootstrapServer, EventSeq,
    LwM2mServer, SecurityConfig, ServerError, ServerHandle,
};

use crate::secure_meter;
use crate::secure_meter::{psk, registered, SecureMeter};

const WITHIN: Duration = Duration::from_secs(10);
/// Nobody listens here: a meter that must bootstrap first has no server yet.
const DEAD: &str = "127.0.0.1:9";

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn server_config() -> ServerConfig {
    ServerConfig {
        registry: Registry::core(),
        default_format: ContentFormat::Tlv,
        seed: 7,
    }
}

async fn coaps_server() -> ServerHandle {
    LwM2mServer::bind_secure(any_port(), server_config(), SecurityConfig::psk())
        .await
        .expect("bind coaps server")
}

fn store() -> ObjectStore {
    let mut s = ObjectStore::new(Registry::core());
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s
}

fn client_config(endpoint: &str, server: SocketAddr) -> ClientConfig {
    ClientConfig {
        endpoint: endpoint.into(),
        server,
        lifetime: Duration::from_secs(60),
        lwm2m_version: "1.1".into(),
        binding: "U".into(),
        registry: Registry::core(),
        preferred_format: ContentFormat::Tlv,
        seed: 3,
        bootstrap: None,
        retry: RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
            bootstrap_after: 3,
        },
    }
}

/// A meter registering with `server` through DTLS with `credential`.
fn meter(endpoint: &str, server: SocketAddr, credential: dtls::Psk) -> SecureMeter {
    let mut m = SecureMeter::new(Client::new(client_config(endpoint, server), store()));
    m.secure(server, credential);
    m.client.start(Instant::now());
    m
}

/// Runs `meter` on a blocking thread until `until` or `within`.
async fn run(
    mut meter: SecureMeter,
    within: Duration,
    until: impl FnMut(&secure_meter::Seen) -> bool + Send + 'static,
) -> (SecureMeter, secure_meter::Seen) {
    tokio::task::spawn_blocking(move || {
        let seen = meter.run(within, until);
        (meter, seen)
    })
    .await
    .unwrap()
}

/// Stop condition for [`run`]: the meter's DTLS handshake failed.
fn handshake_failed(seen: &secure_meter::Seen) -> bool {
    seen.dtls
        .iter()
        .any(|(_, e)| matches!(e, dtls::ClientEvent::HandshakeFailed { .. }))
}

fn session_closed(e: &ServerEvent) -> bool {
    matches!(
        e,
        ServerEvent::Security(SecurityEvent::SessionClosed { .. })
    )
}

async fn bootstrap_server(security: SecurityConfig) -> BootstrapServerHandle {
    EmbeddedBootstrapServer::bind(
        any_port(),
        BootstrapServerConfig {
            registry: Registry::core(),
            default_format: ContentFormat::Tlv,
            seed: 9,
        },
        security,
    )
    .await
    .unwrap()
}

/// A client of `endpoint` with no LwM2M Server yet, that bootstraps from
/// `bs` over DTLS with `credential`.
fn bootstrapping_psk_config(
    endpoint: &str,
    bs: &BootstrapServerHandle,
    credential: &dtls::Psk,
) -> ClientConfig {
    let mut config = client_config(endpoint, DEAD.parse().unwrap());
    let mut bootstrap = BootstrapConfig::new(bs.local_addr());
    bootstrap.server_uri = bs.uri();
    bootstrap.security_mode = SecurityMode::Psk;
    bootstrap.psk_identity = credential.identity.as_bytes().to_vec();
    bootstrap.psk_key = credential.key.expose().to_vec();
    config.bootstrap = Some(bootstrap);
    config
}

fn log_text(entries: &[server::LogEntry]) -> String {
    entries.iter().map(|e| e.to_line() + "\n").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_registers_over_coaps_with_its_provisioned_psk() {
    let server = coaps_server().await;
    assert!(server.uri().starts_with("coaps://127.0.0.1:"));
    let credential = server.provision_psk("meter-1").unwrap();
    let m = meter("meter-1", server.local_addr(), credential.clone());
    let (_, seen) = run(m, WITHIN, registered).await;
    assert!(seen.done, "{seen:?}\n{}", log_text(&server.log_since(0)));

    let (_, reg) = server
        .await_registered("meter-1", EventSeq::START, WITHIN)
        .await
        .unwrap();
    assert_eq!(reg.lwm2m_version, "1.1");
    let (_, hs) = server
        .await_handshake_completed(&credential.identity, EventSeq::START, WITHIN)
        .await
        .unwrap();
    assert!(
        matches!(hs, SecurityEvent::HandshakeCompleted { suite, .. } if suite == "TLS_PSK_WITH_AES_128_CCM_8")
    );

    // The log holds the decrypted CoAP and a note for the handshake.
    let log = server.log_since(0);
    assert!(log.iter().any(|e| e.direction == Direction::Note
        && e.summary.contains("handshake")
        && e.summary.contains(&credential.identity)));
    assert!(
        log.iter().any(|e| e.direction == Direction::In
            && e.summary.contains("POST")
            && e.summary.contains("/rd?ep=meter-1")),
        "{}",
        log_text(&log)
    );
    assert!(log
        .iter()
        .any(|e| e.direction == Direction::Out && e.summary.contains("2.01")));
    let stats = server.stats();
    assert_eq!(stats.handshakes_completed, 1);
    assert_eq!(stats.handshakes_failed, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_and_logged_while_another_meter_keeps_working() {
    let server = coaps_server().await;
    let good = server.provision_psk("meter-1").unwrap();
    let victim = server.provision_psk("meter-2").unwrap();
    let wrong_key = b"not-the-provisioned-key".to_vec();
    let wrong = psk(&victim.identity, &wrong_key);

    let after = server.current_seq();
    let m2 = meter("meter-2", server.local_addr(), wrong);
    let (m2, seen2) = run(m2, Duration::from_secs(4), handshake_failed).await;
    assert!(seen2.done, "{seen2:?}");
    assert!(matches!(
        m2.dtls_state(server.local_addr()),
        Some(dtls::ClientState::Failed(_))
    ));
    let (_, failed) = server
        .await_handshake_failed(Some(&victim.identity), after, WITHIN)
        .await
        .unwrap();
    let SecurityEvent::HandshakeFailed {
        wrong_key: true,
        peer,
        ..
    } = &failed
    else {
        panic!("{failed:?}");
    };
    assert_eq!(*peer, m2.local_addr());

    // Everyone else is still served.
    let m1 = meter("meter-1", server.local_addr(), good);
    let (_, seen1) = run(m1, WITHIN, registered).await;
    assert!(seen1.done, "{seen1:?}");
    assert!(server.registration("meter-1").is_some());
    assert!(server.registration("meter-2").is_none());

    let log = log_text(&server.log_since(0));
    assert!(log.contains("failed"), "{log}");
    assert!(log.contains(&victim.identity), "{log}");
    let events = format!("{:?}", server.events_since(EventSeq::START));
    for text in [
        hex::encode(&wrong_key),
        String::from_utf8_lossy(&wrong_key).into_owned(),
        hex::encode(victim.key.expose()),
    ] {
        assert!(!events.contains(&text), "key material in events");
        assert!(!log.contains(&text), "key material in the log");
    }
    assert_eq!(server.stats().handshakes_failed, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_as_another_endpoint_than_the_identity_is_forbidden() {
    let server = coaps_server().await;
    let mine = server.provision_psk("meter-1").unwrap();
    server.provision_psk("meter-2").unwrap();

    // Authenticated as meter-1, registering as meter-2.
    let m = meter("meter-2", server.local_addr(), mine.clone());
    let (_, seen) = run(m, WITHIN, |seen| {
        seen.events
            .iter()
            .any(|e| matches!(e, ClientEvent::RegistrationFailed { .. }))
    })
    .await;
    assert!(seen.done, "{seen:?}");
    let (_, event) = server
        .await_forbidden("meter-2", EventSeq::START, WITHIN)
        .await
        .unwrap();
    let ServerEvent::Forbidden {
        identity,
        operation,
        reason,
        ..
    } = &event
    else {
        panic!("{event:?}");
    };
    assert_eq!(identity.as_deref(), Some(mine.identity.as_str()));
    assert_eq!(operation, "Register");
    assert!(reason.contains("bound to endpoint \"meter-1\""), "{reason}");
    assert!(server.registration("meter-2").is_none());
    let log = server.log_since(0);
    assert!(
        log.iter()
            .any(|e| e.direction == Direction::Out && e.summary.contains("4.03")),
        "{}",
        log_text(&log)
    );
    assert!(server::describe_event(&event).contains("4.03 Forbidden"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_credential_stops_working_at_once() {
    let server = coaps_server().await;
    let old = server.provision_psk("meter-1").unwrap();
    let (_, seen) = run(
        meter("meter-1", server.local_addr(), old.clone()),
        WITHIN,
        registered,
    )
    .await;
    assert!(seen.done);
    let after = server.current_seq();
    let new = server.provision_psk("meter-1").unwrap();
    assert_ne!(new.identity, old.identity);
    // The old session is closed ...
    let (_, closed) = server
        .await_event(after, WITHIN, session_closed)
        .await
        .unwrap();
    assert!(
        matches!(closed, ServerEvent::Security(SecurityEvent::SessionClosed { identity, .. }) if identity == old.identity)
    );
    // ... and the old credential no longer gets a handshake.
    let (_, seen) = run(
        meter("meter-1", server.local_addr(), old.clone()),
        Duration::from_secs(4),
        handshake_failed,
    )
    .await;
    assert!(seen.done, "{seen:?}");
    let (_, failed) = server
        .await_handshake_failed(Some(&old.identity), after, WITHIN)
        .await
        .unwrap();
    assert!(
        matches!(
            failed,
            SecurityEvent::HandshakeFailed {
                unknown_identity: true,
                ..
            }
        ),
        "{failed:?}"
    );
    // The new one does.
    let (_, seen) = run(
        meter("meter-1", server.local_addr(), new),
        WITHIN,
        registered,
    )
    .await;
    assert!(seen.done);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_closes_its_open_session_and_the_next_datagram_needs_a_handshake_that_fails()
{
    let server = coaps_server().await;
    let credential = server.provision_psk("meter-1").unwrap();
    let (mut meter, seen) = run(
        meter("meter-1", server.local_addr(), credential.clone()),
        WITHIN,
        registered,
    )
    .await;
    assert!(seen.done);
    let peer = meter.local_addr();
    let after = server.current_seq();
    // Revoked while the session is open (not replaced: the meter has no key).
    assert!(server.credentials().remove("meter-1"));
    let (_, closed) = server
        .await_event(after, WITHIN, session_closed)
        .await
        .unwrap();
    assert!(
        matches!(&closed, ServerEvent::Security(SecurityEvent::SessionClosed { peer: p, identity, reason })
            if *p == peer && *identity == credential.identity && reason.contains("revoked")),
        "{closed:?}"
    );
    // The meter has not read the close_notify yet: its Update goes out in
    // the old session, and the server, which dropped the session's state,
    // drops it as from a peer without one. Then the close_notify arrives.
    meter.client.trigger_update(Instant::now());
    let (mut meter, seen) = run(meter, WITHIN, |seen| {
        seen.dtls.iter().any(|(_, e)| {
            matches!(
                e,
                dtls::ClientEvent::Closed {
                    reason: dtls::CloseReason::PeerClosed
                }
            )
        })
    })
    .await;
    assert!(seen.done, "no close_notify: {seen:?}");
    server
        .await_event(after, WITHIN, |e| {
            matches!(e, ServerEvent::Security(SecurityEvent::Dropped { peer: p, .. }) if *p == peer)
        })
        .await
        .unwrap();
    assert!(
        !server
            .events_since(after)
            .iter()
            .any(|(_, e)| matches!(e, ServerEvent::Updated(_))),
        "no Update got through"
    );
    // A new handshake from the same address with the revoked key fails.
    meter.reconnect(server.local_addr());
    let (_, seen) = run(meter, WITHIN, handshake_failed).await;
    assert!(seen.done, "{seen:?}");
    let (_, failed) = server
        .await_handshake_failed(Some(&credential.identity), after, WITHIN)
        .await
        .unwrap();
    assert!(
        matches!(failed, SecurityEvent::HandshakeFailed { peer: p, unknown_identity: true, .. } if p == peer),
        "{failed:?}"
    );
    server.shutdown().await;
}

/// RFC 4648 base64, to look for a key written as text.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_then_coaps_registration_and_the_key_is_logged_nowhere() {
    let server = coaps_server().await;
    let bs = bootstrap_server(SecurityConfig::psk()).await;
    let bs_credential = bs.provision_psk("meter-1").unwrap();
    let credential = server.provision_psk("meter-1").unwrap();
    let key = credential.key.expose().to_vec();
    let account = ServerAccount::psk(
        101,
        server.uri(),
        credential.identity.as_bytes().to_vec(),
        key.clone(),
    );
    bs.set_script("meter-1", BootstrapScript::standard(&account))
        .await
        .unwrap();

    let mut config = bootstrapping_psk_config("meter-1", &bs, &bs_credential);
    if let Some(bootstrap) = config.bootstrap.as_mut() {
        bootstrap.finish_timeout = WITHIN;
    }
    let mut m = SecureMeter::new(Client::new(config, store()));
    m.secure(bs.local_addr(), bs_credential.clone());
    m.secure(server.local_addr(), credential.clone());
    m.client.start(Instant::now());
    let (_, seen) = run(m, WITHIN, registered).await;
    assert!(seen.done, "{seen:?}\n{}", log_text(&bs.log_since(0)));

    let outcome = bs
        .await_bootstrap_finished("meter-1", EventSeq::START, WITHIN)
        .await
        .unwrap();
    let ops: Vec<(String, u16)> = outcome
        .operations
        .iter()
        .map(|(_, op, code)| (op.clone(), *code))
        .collect();
    assert_eq!(
        ops,
        [
            ("Bootstrap-Delete /".to_string(), 202),
            ("Bootstrap-Write /0/1".to_string(), 204),
            ("Bootstrap-Write /1/0".to_string(), 204),
            ("Bootstrap-Finish".to_string(), 204),
        ]
    );
    server
        .await_registered("meter-1", EventSeq::START, WITHIN)
        .await
        .unwrap();

    // The Bootstrap-Write /0/1 is in the log, with the key blanked.
    let bs_log = bs.log_since(0);
    assert!(bs_log.iter().any(|e| e.direction == Direction::Out
        && e.summary.contains("PUT")
        && e.summary.contains(" /0/1")));
    let write = bs_log
        .iter()
        .find(|e| e.summary.contains("PUT") && e.summary.contains(" /0/1"))
        .unwrap();
    assert!(
        contains(&write.bytes, credential.identity.as_bytes()),
        "the logged Bootstrap-Write keeps its payload, identity included"
    );
    let mut texts = vec![
        log_text(&bs_log),
        log_text(&server.log_since(0)),
        format!("{:?}", bs.events_since(EventSeq::START)),
        format!("{:?}", server.events_since(EventSeq::START)),
        format!("{bs_log:?}"),
        format!("{bs:?} {server:?} {:?}", bs.credentials()),
    ];
    texts.extend(
        bs.log_since(0)
            .iter()
            .chain(server.log_since(0).iter())
            .map(|e| e.to_json().to_string()),
    );
    let mut pcaps = Vec::new();
    for view in [server::PcapView::Wire, server::PcapView::Decrypted] {
        bs.write_pcap(view, &mut pcaps).unwrap();
        server.write_pcap(view, &mut pcaps).unwrap();
    }
    let raw: Vec<u8> = bs_log
        .iter()
        .flat_map(|e| e.bytes.iter().copied())
        .collect();
    for secret in [&key, &bs_credential.key.expose().to_vec()] {
        for text in &texts {
            for needle in [
                hex::encode(secret),
                hex::encode_upper(secret),
                base64(secret),
            ] {
                assert!(!text.contains(&needle), "key as text in {text}");
            }
            assert!(!contains(text.as_bytes(), secret));
        }
        assert!(!contains(&pcaps, secret), "raw key in a pcap");
        assert!(!contains(&raw, secret), "raw key in the logged bytes");
        assert!(!contains(&pcaps, hex::encode(secret).as_bytes()));
        assert!(!contains(&pcaps, base64(secret).as_bytes()));
    }
    bs.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_failure_names_the_operation_and_the_code() {
    // Plain CoAP this time: the bootstrap server runs either way.
    let bs = bootstrap_server(SecurityConfig::NoSec).await;
    let account = ServerAccount::nosec(101, "coap://127.0.0.1:5683");
    // The case expects the device to refuse the write (it will accept it).
    let script = BootstrapScript::new()
        .then(BootstrapOp::Delete { path: Path::ROOT })
        .then_expect(
            BootstrapOp::Write {
                path: account.security_path(),
                records: account.security_records(),
            },
            &[400],
        )
        .then(BootstrapOp::Finish);
    bs.set_script("meter-9", script).await.unwrap();
    let mut config = client_config("meter-9", DEAD.parse().unwrap());
    let mut bootstrap = BootstrapConfig::new(bs.local_addr());
    bootstrap.finish_timeout = Duration::from_secs(2);
    config.bootstrap = Some(bootstrap);
    let mut m = SecureMeter::new(Client::new(config, store()));
    m.client.start(Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let running = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || m.run(WITHIN, move |_| stop.load(Ordering::Relaxed)))
    };
    let err = bs
        .await_bootstrap_finished("meter-9", EventSeq::START, WITHIN)
        .await
        .unwrap_err();
    stop.store(true, Ordering::Relaxed);
    running.await.unwrap();
    let ServerError::BootstrapFailed {
        index,
        op,
        expected,
        got,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(
        (*index, op.as_str(), expected.as_slice(), *got),
        (1, "Bootstrap-Write /0/1", &[400][..], Some(204))
    );
    assert!(
        err.to_string()
            .contains("failed at step 1 Bootstrap-Write /0/1: expected 4.00, got 2.04"),
        "{err}"
    );

    // An endpoint without a script is refused at the Bootstrap-Request.
    let mut m = SecureMeter::new(Client::new(
        {
            let mut c = client_config("meter-unknown", DEAD.parse().unwrap());
            c.bootstrap = Some(BootstrapConfig::new(bs.local_addr()));
            c
        },
        store(),
    ));
    m.client.start(Instant::now());
    let running = tokio::task::spawn_blocking(move || m.run(Duration::from_secs(2), |_| false));
    let err = bs
        .await_bootstrap_finished("meter-unknown", EventSeq::START, WITHIN)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServerError::BootstrapFailed { op, got: Some(400), .. } if op == "Bootstrap-Request"),
        "{err}"
    );
    running.await.unwrap();
    bs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_request_for_another_devices_endpoint_is_forbidden() {
    let bs = bootstrap_server(SecurityConfig::psk()).await;
    let mine = bs.provision_psk("meter-1").unwrap();
    bs.provision_psk("meter-2").unwrap();
    let account = ServerAccount::nosec(101, "coap://127.0.0.1:5683");
    bs.set_script("meter-2", BootstrapScript::standard(&account))
        .await
        .unwrap();
    let config = bootstrapping_psk_config("meter-2", &bs, &mine);
    let mut m = SecureMeter::new(Client::new(config, store()));
    m.secure(bs.local_addr(), mine.clone());
    m.client.start(Instant::now());
    let running = tokio::task::spawn_blocking(move || m.run(Duration::from_secs(3), |_| false));
    let err = bs
        .await_bootstrap_finished("meter-2", EventSeq::START, WITHIN)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServerError::BootstrapFailed { op, got: Some(403), .. } if op == "Bootstrap-Request"),
        "{err}"
    );
    assert!(bs
        .events_since(EventSeq::START)
        .iter()
        .any(|(_, e)| matches!(e,
        BootstrapServerEvent::Forbidden { identity: Some(id), .. } if *id == mine.identity)));
    running.await.unwrap();
    bs.shutdown().await;
}

/// A ClientHello as a real client sends it first (no cookie).
fn client_hello() -> Vec<u8> {
    let mut c = OpensslClient::connect(
        dtls::ClientConfig::new(psk("flood", b"k")),
        "127.0.0.1:9".parse().unwrap(),
        Instant::now(),
    )
    .unwrap();
    c.poll_transmit().unwrap().payload
}

/// `hello` with a 32-byte cookie this server never issued (RFC 6347
/// §4.2.1): record, handshake and fragment lengths grow by 32.
fn with_forged_cookie(hello: &[u8]) -> Vec<u8> {
    // Record header 13 bytes, handshake header 12; the body starts with
    // version(2) random(32) session_id(1 + 0) and the cookie length.
    let session_id_len_at = 13 + 12 + 2 + 32;
    assert_eq!(
        hello[session_id_len_at], 0,
        "a fresh ClientHello has no session id"
    );
    let cookie_len_at = session_id_len_at + 1;
    assert_eq!(hello[cookie_len_at], 0, "a first ClientHello has no cookie");
    let mut forged = hello[..cookie_len_at].to_vec();
    forged.push(32);
    forged.extend_from_slice(&[0xaa; 32]);
    forged.extend_from_slice(&hello[cookie_len_at + 1..]);
    let grow = |bytes: &mut [u8]| {
        let mut n = 0u32;
        for b in bytes.iter() {
            n = n << 8 | u32::from(*b);
        }
        n += 32;
        for (i, b) in bytes.iter_mut().rev().enumerate() {
            *b = (n >> (8 * i)) as u8;
        }
    };
    grow(&mut forged[11..13]);
    grow(&mut forged[14..17]);
    grow(&mut forged[22..25]);
    forged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_datagrams_are_dropped_logged_and_survived() {
    let server = coaps_server().await;
    let credential = server.provision_psk("meter-1").unwrap();
    let m = meter("meter-1", server.local_addr(), credential);
    let (m, seen) = run(m, WITHIN, registered).await;
    assert!(seen.done);
    let after = server.current_seq();

    let attacker = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    let to = server.local_addr();
    let hostile: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x16],
        vec![0x16, 0xfe, 0xfd, 0, 0], // truncated record header
        vec![0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4], // application data, no session
        vec![0x42; 300],                                                  // not DTLS at all
        b"\x40\x01\x12\x34\xb2rd".to_vec(), // plain CoAP to a coaps port
    ];
    for d in &hostile {
        attacker.send_to(d, to).unwrap();
    }
    // A ClientHello with a forged cookie, and a flood of cookie-less ones from many ports.
    let hello = client_hello();
    attacker.send_to(&with_forged_cookie(&hello), to).unwrap();
    let flood: Vec<StdUdpSocket> = (0..50)
        .map(|_| StdUdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for s in &flood {
        s.send_to(&hello, to).unwrap();
    }

    // The established session still works: a Read gets its answer.
    let stop = Arc::new(AtomicBool::new(false));
    let running = {
        let stop = stop.clone();
        let mut m = m;
        tokio::task::spawn_blocking(move || {
            m.run(WITHIN, move |_| stop.load(Ordering::Relaxed));
        })
    };
    let response = server
        .read("meter-1", Path::resource(3, 0, 0), None)
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    running.await.unwrap();
    assert_eq!(response.code, 205);
    assert!(server.is_running());

    let drops = server
        .events_since(after)
        .into_iter()
        .filter(|(_, e)| matches!(e, ServerEvent::Security(SecurityEvent::Dropped { .. })))
        .count();
    assert!(drops >= 4, "{:?}", server.events_since(after));
    assert!(server.stats().dtls_dropped >= 4);
    assert!(log_text(&server.log_since(0)).contains("dropped"));
    // Cookie-less ClientHellos create nothing: no handshake started or failed.
    assert_eq!(server.stats().handshakes_failed, 0);
    server.shutdown().await;
}

const COAP_CLIENT: &str = "/usr/bin/coap-client-openssl";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcoap_coap_client_registers_over_coaps_with_psk() {
    if !std::path::Path::new(COAP_CLIENT).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{COAP_CLIENT} missing in CI"
        );
        eprintln!("skipping: {COAP_CLIENT} not installed (Debian package libcoap3-bin)");
        return;
    }
    let server = coaps_server().await;
    // coap-client's -k takes the key as text.
    let identity = "libcoap-meter-id";
    let key = "per-run-key-7f3a";
    server.set_psk("libcoap-meter", psk(identity, key.as_bytes()));
    let port = server.local_addr().port();
    let output = tokio::process::Command::new(COAP_CLIENT)
        .args([
            "-m", "post", "-u", identity, "-k", key, "-t", "40", "-e", "</3/0>",
        ])
        .args(["-B", "5", "-v", "7"])
        .arg(format!(
            "coaps://127.0.0.1:{port}/rd?ep=libcoap-meter&lt=60&lwm2m=1.1&b=U"
        ))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .expect("coap-client finished")
        .expect("run coap-client-openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, reg) = server
        .await_registered("libcoap-meter", EventSeq::START, WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{text}\n{}", log_text(&server.log_since(0))));
    assert_eq!(server::links_text(&reg.objects), "</3/0>");
    // coap-client's debug output shows the response: 2.01 with a Location-Path.
    assert!(text.contains("2.01"), "{text}");
    assert!(text.contains("Location-Path"), "{text}");
    assert!(
        text.contains(reg.location.trim_start_matches("/rd/")),
        "{text}"
    );
    assert!(!format!("{:?}", server.events_since(EventSeq::START)).contains(key));
    server.shutdown().await;
}
