//! The virtual meter as a factory-provisioned device process: no modem, its
//! LwM2M account given on the command line and its PSK key in the
//! environment, against meterbench's embedded servers (the `server` crate)
//! on loopback. Registers with the given endpoint and lifetime over DTLS;
//! bootstraps from a bootstrap server at a fixed port; a wrong key fails the
//! handshake; a power cut (SIGKILL) and restart with the same image keeps NV.
//! The key never shows in the device's log, its NV stamp or its errors.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lwm2m::bootstrap::{BootstrapScript, ServerAccount};
use lwm2m::server::{Content, SecurityEvent};
use lwm2m::{Path as LwPath, Value};
use server::{EventSeq, Psk, SecretKey};

use crate::support::{bootstrap_server, coaps_server, root};

const WAIT: Duration = Duration::from_secs(30);
const KEY_ENV: &str = sim::factory::PSK_KEY_ENV;

fn fresh_key() -> Vec<u8> {
    SecretKey::generate(16).unwrap().expose().to_vec()
}

fn psk(identity: &str, key: &[u8]) -> Psk {
    Psk::new(identity, SecretKey::new(key.to_vec()).unwrap()).unwrap()
}

/// A device process started with factory arguments; killed (a power cut)
/// when dropped.
struct Device {
    child: Child,
    log: PathBuf,
}

impl Device {
    fn start(state: &Path, factory: &[&str], key: Option<&[u8]>) -> Device {
        let log = state.join(format!(
            "device-{}.log",
            std::fs::read_dir(state).unwrap().count()
        ));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtual-meter"));
        cmd.arg("--state-dir")
            .arg(state.join("nv"))
            .arg("--objects")
            .arg(root().join("fixtures/objects"))
            .args(["--exit-with-pid", &std::process::id().to_string()])
            .args(factory)
            .env("RUST_LOG", "debug")
            .env_remove(KEY_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        if let Some(k) = key {
            cmd.env(KEY_ENV, hex::encode(k));
        }
        Device {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    /// Whether the device logs `needle` within `within` (polled).
    async fn await_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(needle) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pulls the plug and returns what the device logged.
    fn cut(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_no_key(text: &str, key: &[u8], what: &str) {
    let hex_key = hex::encode(key);
    assert!(
        !text.contains(&hex_key) && !text.contains(&hex_key[..12]),
        "{what} shows the key:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_psk_meter_registers_with_its_endpoint_and_lifetime_and_survives_a_power_cut() {
    let server = coaps_server(11).await;
    let key = fresh_key();
    server.set_psk("factory-ep-1", psk("factory-dev-1", &key));
    let state = tempfile::tempdir().unwrap();
    let uri = server.uri();
    let args = [
        "--server",
        uri.as_str(),
        "--endpoint",
        "factory-ep-1",
        "--lifetime",
        "45",
        "--psk-identity",
        "factory-dev-1",
    ];
    let mut device = Device::start(state.path(), &args, Some(&key));

    let (seq, reg) = server
        .await_registered("factory-ep-1", EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device.cut()));
    assert_eq!(reg.lifetime, Duration::from_secs(45));
    server
        .await_handshake_completed("factory-dev-1", EventSeq::START, WAIT)
        .await
        .unwrap();
    // Device management over the factory account's DTLS session.
    let answer = server
        .read("factory-ep-1", LwPath::resource(3, 0, 0), None)
        .await
        .unwrap();
    assert_eq!(answer.code, 205);
    let Content::Records(records) = answer.content else {
        panic!("{answer:?}")
    };
    assert!(
        matches!(&records[0].value, Value::String(s) if !s.is_empty()),
        "{records:?}"
    );

    let log = device.cut();
    assert!(log.contains("factory provisioning written to NV"), "{log}");
    assert_no_key(&log, &key, "device log");
    let nv = sim::nv::read(&state.path().join("nv")).unwrap();
    let stamp = nv.factory.clone().unwrap();
    assert!(
        stamp.contains(&uri) && stamp.contains("factory-dev-1"),
        "{stamp}"
    );
    assert_no_key(&stamp, &key, "NV stamp");

    // Power back on with the same image: NV is kept, the meter registers again.
    let mut device = Device::start(state.path(), &args, Some(&key));
    let (_, again) = server
        .await_registered("factory-ep-1", seq, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device.cut()));
    assert_eq!(again.lifetime, Duration::from_secs(45));
    let log = device.cut();
    assert!(log.contains("already in NV; NV kept"), "{log}");
    assert_no_key(&log, &key, "device log after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_bootstrap_meter_bootstraps_at_its_fixed_uri_then_registers() {
    // The port a factory fixed in the device: chosen before the server binds it.
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let bs_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bs = bootstrap_server(bs_addr, 5).await;
    assert_eq!(bs.local_addr(), bs_addr);
    let bs_key = fresh_key();
    bs.set_psk("factory-bs-ep", psk("factory-bs-dev", &bs_key));
    let server = coaps_server(11).await;
    let account_psk = server.provision_psk("factory-bs-ep").unwrap();
    let mut account = ServerAccount::psk(
        101,
        server.uri(),
        account_psk.identity.as_bytes().to_vec(),
        account_psk.key.expose().to_vec(),
    );
    account.lifetime = Duration::from_secs(50);
    bs.set_script("factory-bs-ep", BootstrapScript::standard(&account))
        .await
        .unwrap();

    let state = tempfile::tempdir().unwrap();
    let bs_uri = format!("coaps://127.0.0.1:{port}");
    let mut device = Device::start(
        state.path(),
        &[
            "--bootstrap",
            &bs_uri,
            "--endpoint",
            "factory-bs-ep",
            "--psk-identity",
            "factory-bs-dev",
        ],
        Some(&bs_key),
    );
    bs.await_bootstrap_finished("factory-bs-ep", EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device.cut()));
    let (_, reg) = server
        .await_registered("factory-bs-ep", EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device.cut()));
    assert_eq!(reg.lifetime, Duration::from_secs(50));
    let log = device.cut();
    assert_no_key(&log, &bs_key, "device log");
    assert_no_key(&log, account_psk.key.expose(), "device log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_factory_key_fails_the_handshake_and_never_registers() {
    let server = coaps_server(11).await;
    let right = fresh_key();
    let wrong = fresh_key();
    server.set_psk("factory-ep-2", psk("factory-dev-2", &right));
    let state = tempfile::tempdir().unwrap();
    let uri = server.uri();
    let mut device = Device::start(
        state.path(),
        &[
            "--server",
            &uri,
            "--endpoint",
            "factory-ep-2",
            "--psk-identity",
            "factory-dev-2",
        ],
        Some(&wrong),
    );
    let (_, failed) = server
        .await_handshake_failed(Some("factory-dev-2"), EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device.cut()));
    assert!(
        matches!(failed, SecurityEvent::HandshakeFailed { .. }),
        "{failed:?}"
    );
    assert!(server.registration("factory-ep-2").is_none());
    // The server may see the failure before the device has logged its side.
    assert!(
        device.await_log("DTLS handshake failed", WAIT).await,
        "{}",
        device.cut()
    );
    let log = device.cut();
    assert_no_key(&log, &wrong, "device log");
    assert_no_key(&log, &right, "device log");
}

/// Runs the meter to its exit; (exit code, stderr).
fn run_to_exit(args: &[&str], key: Option<&str>) -> (i32, String) {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtual-meter"));
    cmd.arg("--state-dir")
        .arg(state.path())
        .arg("--objects")
        .arg(root().join("fixtures/objects"))
        .args(args)
        .env_remove(KEY_ENV)
        .stdin(Stdio::null());
    if let Some(k) = key {
        cmd.env(KEY_ENV, k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_or_bad_key_is_refused_naming_the_variable_not_the_key() {
    let server = ["--server", "coaps://127.0.0.1:5684", "--psk-identity", "id"];
    let (code, err) = run_to_exit(&server, None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(KEY_ENV) && err.contains("not set"), "{err}");
    let secretish = "5ec2e75ec2e75ec2e75ec2e7zz";
    let (code, err) = run_to_exit(&server, Some(secretish));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(KEY_ENV) && err.contains("non-hex"), "{err}");
    assert!(!err.contains("5ec2e7"), "{err}");
    let (code, err) = run_to_exit(&["--server", "coaps://127.0.0.1:5684"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--psk-identity"), "{err}");
    let (code, err) = run_to_exit(&["--endpoint", "x"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--endpoint is factory provisioning"), "{err}");
}
