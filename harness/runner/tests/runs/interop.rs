//! A third-party CoAP client registers with `meterbench serve`: libcoap's
//! coap-client (Debian's libcoap3-bin) sends a Register and must get 2.01 with
//! a Location-Path under /rd.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

fn coap_client() -> Option<&'static str> {
    [
        "/usr/bin/coap-client-notls",
        "/usr/bin/coap-client-openssl",
        "/usr/bin/coap-client-gnutls",
        "/usr/bin/coap-client",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn coap_client_registers_with_meterbench_serve() {
    let Some(client) = coap_client() else {
        // CI installs libcoap3-bin; there its absence is a broken setup, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "coap-client is missing: install libcoap3-bin"
        );
        eprintln!("coap-client not installed; skipping (install libcoap3-bin)");
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let port = free_udp_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_meterbench"))
        .current_dir(&root)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.contains("listening"), "{banner}");

    let out = Command::new(client)
        .args([
            "-m",
            "post",
            "-t",
            "40",
            "-e",
            "</1/0>,</3/0>,</4/0>",
            "-B",
            "10",
            "-v",
            "7",
            &format!("coap://127.0.0.1:{port}/rd?ep=interop-coap-client&lt=60&lwm2m=1.1&b=U"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("2.01"),
        "coap-client saw 2.01 Created:\n{text}"
    );
    let location = text
        .lines()
        .filter(|l| l.contains("2.01"))
        .find_map(|l| {
            l.split("Location-Path:")
                .nth(1)
                .map(|rest| rest.to_string())
        })
        .unwrap_or_else(|| panic!("no Location-Path in the answer:\n{text}"));
    assert!(
        location.starts_with("rd"),
        "Location-Path starts with rd: {location}"
    );

    // meterbench serve printed the registration.
    let printed = std::thread::spawn(move || {
        lines
            .take(5)
            .map_while(Result::ok)
            .find(|l| l.contains("interop-coap-client"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = serve.kill();
    let _ = serve.wait();
    let line = printed.join().unwrap();
    assert!(
        line.is_some_and(|l| l.contains("registered")),
        "serve printed the registration"
    );
}

/// A fixed test credential: written to a secrets file for `serve`, handed to
/// the third-party clients. It exists only inside this test.
const TEST_KEY_HEX: &str = "6d657465726265746368746573746b31";

/// Starts `meterbench serve --secure` with one device and returns it with its port.
fn serve_secure(endpoint: &str) -> (std::process::Child, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("devices.yaml");
    std::fs::write(
        &secrets,
        format!("- endpoint: {endpoint}\n  identity: {endpoint}-id\n  key: {TEST_KEY_HEX}\n"),
    )
    .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let port = free_udp_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_meterbench"))
        .current_dir(&root)
        .args([
            "serve",
            "--secure",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--credentials",
            secrets.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.contains("coaps://"), "{banner}");
    let device = lines.next().unwrap().unwrap();
    assert!(device.contains(&format!("{endpoint}-id")), "{device}");
    assert!(
        !device.contains(TEST_KEY_HEX),
        "serve never prints a key: {device}"
    );
    // Keep draining stdout so serve never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (serve, port, dir)
}

#[test]
fn coap_client_openssl_registers_over_dtls_psk_with_meterbench_serve() {
    let client = "/usr/bin/coap-client-openssl";
    if !std::path::Path::new(client).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{client} is missing: install libcoap3-bin"
        );
        eprintln!("{client} not installed; skipping");
        return;
    }
    let (mut serve, port, _dir) = serve_secure("interop-openssl");
    let out = Command::new(client)
        .args([
            "-m",
            "post",
            "-t",
            "40",
            "-e",
            "</1/0>,</3/0>",
            "-B",
            "10",
            "-v",
            "7",
            "-u",
            "interop-openssl-id",
            "-k",
        ])
        .arg(hex_to_text(TEST_KEY_HEX))
        .arg(format!(
            "coaps://127.0.0.1:{port}/rd?ep=interop-openssl&lt=60&lwm2m=1.1&b=U"
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("2.01"))
        .unwrap_or_else(|| panic!("no 2.01 over coaps:\n{text}"));
    assert!(line.contains("Location-Path:rd"), "{line}");
}

#[test]
fn tinydtls_client_registers_with_meterbench_serve() {
    let ok = Command::new("python3")
        .args(["-c", "import aiocoap, DTLSSocket"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "aiocoap and DTLSSocket are missing: pip install aiocoap DTLSSocket"
        );
        eprintln!("aiocoap/DTLSSocket not installed; skipping");
        return;
    }
    let (mut serve, port, _dir) = serve_secure("interop-tinydtls");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/runs/support/tinydtls_register.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "127.0.0.1",
            &port.to_string(),
            "interop-tinydtls",
            "interop-tinydtls-id",
            TEST_KEY_HEX,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "tinydtls client did not register:\n{text}"
    );
    assert!(text.contains("location=rd/"), "{text}");
}

/// coap-client's `-k` takes the key as text; our test key is printable ASCII.
fn hex_to_text(hex: &str) -> String {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap() as char)
        .collect()
}
