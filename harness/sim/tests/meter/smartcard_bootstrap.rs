//! The virtual meter with a smartcard (crate::smartcard, LwM2M 1.1 Core
//! §6.1.3.2 and Appendix G.3.3): a device process that also holds a factory
//! Bootstrap-Server account registers with the LwM2M Server account on its
//! card and sends no Bootstrap-Request (Core §6.1.4: the card comes first);
//! with the card pulled, the same device bootstraps (step 4). The card's key
//! never shows in the device's log.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lwm2m::bootstrap::smartcard::SmartcardBootstrap;
use lwm2m::bootstrap::{BootstrapEvent, BootstrapScript, ServerAccount};
use server::{BootstrapServerEvent, EventSeq, Psk, SecretKey};

use crate::support::{bootstrap_server, coaps_server, registry, root};

const WAIT: Duration = Duration::from_secs(30);

fn psk(identity: &str, key: &[u8]) -> Psk {
    Psk::new(identity, SecretKey::new(key.to_vec()).unwrap()).unwrap()
}

/// The meter process with a factory bootstrap account; killed when dropped.
struct Device(Child, std::path::PathBuf);

impl Device {
    fn start(state: &Path, bs_uri: &str, bs_key: &[u8], log_name: &str) -> Device {
        let log = state.join(log_name);
        let child = Command::new(env!("CARGO_BIN_EXE_virtual-meter"))
            .arg("--state-dir")
            .arg(state.join("nv"))
            .arg("--objects")
            .arg(root().join("fixtures/objects"))
            .args(["--exit-with-pid", &std::process::id().to_string()])
            .args([
                "--bootstrap",
                bs_uri,
                "--endpoint",
                "card-ep",
                "--psk-identity",
                "card-bs-dev",
            ])
            .env(sim::factory::PSK_KEY_ENV, hex::encode(bs_key))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Device(child, log)
    }

    fn cut(&mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        std::fs::read_to_string(&self.1).unwrap()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bootstrap_requests(events: &[(EventSeq, BootstrapServerEvent)]) -> usize {
    events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                BootstrapServerEvent::Bootstrap(BootstrapEvent::Requested { .. })
            )
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_comes_before_the_bootstrap_account_and_a_pulled_card_leads_to_bootstrap() {
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let bs_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bs = bootstrap_server(bs_addr, 7).await;
    let bs_key = SecretKey::generate(16).unwrap().expose().to_vec();
    bs.set_psk("card-ep", psk("card-bs-dev", &bs_key));
    let server = coaps_server(13).await;
    let card_psk = server.provision_psk("card-ep").unwrap();
    let mut account = ServerAccount::psk(
        42,
        server.uri(),
        card_psk.identity.as_bytes().to_vec(),
        card_psk.key.expose().to_vec(),
    );
    account.lifetime = Duration::from_secs(55);
    // What the bootstrap server would provision, should the device ask.
    let mut bootstrapped = account.clone();
    bootstrapped.lifetime = Duration::from_secs(66);
    bs.set_script("card-ep", BootstrapScript::standard(&bootstrapped))
        .await
        .unwrap();

    let state = tempfile::tempdir().unwrap();
    let card =
        SmartcardBootstrap::from_accounts(std::slice::from_ref(&account), &registry()).unwrap();
    sim::smartcard::write_card(&state.path().join("nv"), &card).unwrap();
    let bs_uri = format!("coaps://127.0.0.1:{port}");

    let mut device = Device::start(state.path(), &bs_uri, &bs_key, "card.log");
    let (seq, reg) = server
        .await_registered("card-ep", EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device.cut()));
    // The card's Server account (lifetime 55 s), not bootstrap's (66 s).
    assert_eq!(reg.lifetime, Duration::from_secs(55));
    let log = device.cut();
    assert_eq!(
        bootstrap_requests(&bs.events_since(EventSeq::START)),
        0,
        "a Bootstrap-Request although the card holds an account:\n{log}"
    );
    assert!(log.contains("account from the smartcard"), "{log}");
    assert!(log.contains("ssid 42"), "{log}");
    let hex_key = hex::encode(card_psk.key.expose());
    assert!(
        !log.contains(&hex_key[..12]),
        "the card's key in the log:\n{log}"
    );

    // The card pulled: the device has only its Bootstrap-Server account and
    // bootstraps, then registers with what bootstrap gave it.
    sim::smartcard::remove_card(&state.path().join("nv")).unwrap();
    let mut device = Device::start(state.path(), &bs_uri, &bs_key, "no-card.log");
    let (_, reg) = server
        .await_registered("card-ep", seq, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device.cut()));
    assert_eq!(reg.lifetime, Duration::from_secs(66));
    let log = device.cut();
    assert!(
        bootstrap_requests(&bs.events_since(EventSeq::START)) >= 1,
        "no Bootstrap-Request without the card:\n{log}"
    );
}
