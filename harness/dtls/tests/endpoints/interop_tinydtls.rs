//! Interop with tinydtls (the DTLS stack of many constrained LwM2M clients,
//! e.g. Wakaama and Contiki): aiocoap's tinydtls transport (Python packages
//! `aiocoap` and `DTLSSocket`) GETs a resource over coaps from
//! `OpensslServer`. tinydtls offers only TLS_PSK_WITH_AES_128_CCM_8 and no
//! Extended Master Secret — the case that rules out dimpl.
//!
//! Skipped (with a message) when python3 cannot import both packages:
//! `pip install aiocoap DTLSSocket` needs autoconf, automake and libtool to
//! build tinydtls.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pair;
use crate::pair::keys;
use crate::udp_endpoint::{serve, COAP_PAYLOAD};
use dtls::{CipherSuite, OpensslServer, ServerEvent};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/endpoints/tinydtls_client.py"
);
const IDENTITY: &str = "urn:imei:490154203237518";
const KEY: &[u8] = b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10";

fn tinydtls_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiocoap, DTLSSocket"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn aiocoap_tinydtls_client_completes_handshake_with_aes_128_ccm_8() {
    if !tinydtls_available() {
        // .ci/run installs them: in CI a missing peer is a broken setup, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "aiocoap/DTLSSocket missing in CI"
        );
        eprintln!("skipping: python3 cannot import aiocoap and DTLSSocket (pip install aiocoap DTLSSocket)");
        return;
    }
    pair::init_tracing();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut config = keys(&[(IDENTITY, KEY)]);
    config.suites = vec![CipherSuite::PskAes128Ccm8];
    let server = OpensslServer::new(config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30);
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(socket, server, stop, deadline))
    };
    let output = Command::new("python3")
        .arg(SCRIPT)
        .arg(format!("coaps://127.0.0.1:{port}/x"))
        .arg(IDENTITY)
        .arg(hex::encode(KEY))
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let events = handle.join().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(std::str::from_utf8(COAP_PAYLOAD).unwrap()),
        "stdout: {stdout}\nstderr: {stderr}\nevents: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e,
            ServerEvent::HandshakeCompleted { identity, suite: CipherSuite::PskAes128Ccm8, .. } if identity == IDENTITY)),
        "{events:?}"
    );
}
