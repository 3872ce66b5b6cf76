//! Interop: libcoap's `coap-client-openssl` (Debian `libcoap3-bin`) completes
//! a DTLS PSK handshake with `OpensslServer` and gets a CoAP answer, for each
//! suite; with a wrong key it fails and the server reports why.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pair;
use crate::pair::keys;
use crate::udp_endpoint::{serve, COAP_PAYLOAD};
use dtls::{CipherSuite, HandshakeFailure, OpensslServer, ServerEvent};

const COAP_CLIENT: &str = "/usr/bin/coap-client-openssl";
const IDENTITY: &str = "urn:imei:490154203237518";
// coap-client's -k takes the key as text.
const KEY: &str = "meterbench-psk-0";

struct Run {
    stdout: String,
    stderr: String,
    events: Vec<ServerEvent>,
}

fn run(suites: &[CipherSuite], client_key: &str) -> Option<Run> {
    if !Path::new(COAP_CLIENT).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{COAP_CLIENT} missing in CI"
        );
        eprintln!("skipping: {COAP_CLIENT} not installed (Debian package libcoap3-bin)");
        return None;
    }
    pair::init_tracing();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut config = keys(&[(IDENTITY, KEY.as_bytes())]);
    config.suites = suites.to_vec();
    let server = OpensslServer::new(config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30);
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(socket, server, stop, deadline))
    };
    let output = Command::new(COAP_CLIENT)
        .args(["-m", "get", "-B", "8", "-k", client_key, "-u", IDENTITY])
        .arg(format!("coaps://127.0.0.1:{port}/x"))
        .stdin(Stdio::null())
        .output()
        .expect("run coap-client-openssl");
    // Let the server see the client's close_notify.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let events = handle.join().unwrap();
    Some(Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        events,
    })
}

fn completes_with(suite: CipherSuite) {
    let Some(run) = run(&[suite], KEY) else {
        return;
    };
    assert!(
        run.stdout
            .contains(std::str::from_utf8(COAP_PAYLOAD).unwrap()),
        "stdout: {}\nstderr: {}\nevents: {:?}",
        run.stdout,
        run.stderr,
        run.events
    );
    assert!(
        run.events.iter().any(|e| matches!(e,
            ServerEvent::HandshakeCompleted { identity, suite: s, .. } if identity == IDENTITY && *s == suite)),
        "{:?}",
        run.events
    );
}

#[test]
fn coap_client_openssl_completes_handshake_with_aes_128_ccm_8() {
    completes_with(CipherSuite::PskAes128Ccm8);
}

#[test]
fn coap_client_openssl_completes_handshake_with_aes_128_cbc_sha256() {
    completes_with(CipherSuite::PskAes128CbcSha256);
}

#[test]
fn coap_client_openssl_with_wrong_key_fails_and_server_says_why() {
    let Some(run) = run(&CipherSuite::ALL, "not-the-right-key") else {
        return;
    };
    assert!(
        !run.stdout
            .contains(std::str::from_utf8(COAP_PAYLOAD).unwrap()),
        "{}",
        run.stdout
    );
    assert!(
        run.events.iter().any(|e| matches!(e,
            ServerEvent::HandshakeFailed { identity: Some(id), reason: HandshakeFailure::FinishedNotVerified, .. }
                if id == IDENTITY)),
        "{:?}\nstderr: {}",
        run.events,
        run.stderr
    );
    // The key never appears in what the server reported.
    assert!(!format!("{:?}", run.events).contains(KEY));
}
