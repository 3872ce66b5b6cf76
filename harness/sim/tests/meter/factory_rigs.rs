//! The example rigs of factory-provisioned devices, run the way the runner
//! will: the rig file's `command` power starts the real virtual meter (its
//! binary takes `sim-meter` like `meterbench` does) with the placeholders
//! filled once the embedded servers are bound and the key in the commands'
//! environment; the device registers (directly, or after bootstrap at the
//! rig's fixed `server.bootstrap_bind`), answers device management, and a
//! power cycle brings a new registration. Loopback only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lwm2m::bootstrap::{BootstrapScript, ServerAccount};
use lwm2m::Path as LwPath;
use rig::command_power::{DeviceValues, SecretEnv};
use rig::model::PowerSpec;
use rig::{CommandPower, Power, RigFile};
use server::{EventSeq, Psk, SecretKey};

use crate::support::{bootstrap_server, coaps_server, root};

const WAIT: Duration = Duration::from_secs(30);

fn fresh_psk(identity: &str) -> Psk {
    Psk::new(identity, SecretKey::generate(16).unwrap()).unwrap()
}

/// The rig's command power, given what the runner knows once its servers are bound.
fn power(rig: &RigFile, state: &Path, values: DeviceValues, key: &Psk) -> CommandPower {
    let Some(PowerSpec::Command(spec)) = &rig.power else {
        panic!("{}: expected command power", rig.source.display())
    };
    let mut p = CommandPower::new(spec.clone());
    let values = DeviceValues {
        lifetime: Some(rig.device.lifetime),
        state_dir: Some(state.to_owned()),
        rig_dir: Some(rig.dir().to_owned()),
        meterbench: Some(PathBuf::from(env!("CARGO_BIN_EXE_virtual-meter"))),
        ..values
    };
    p.set_device_values(values, Some(SecretEnv::psk_key(key.key.expose())))
        .unwrap();
    p
}

fn device_log(state: &Path) -> String {
    std::fs::read_to_string(state.join("device.log")).unwrap_or_default()
}

/// Keeps the bench safe whatever the test does: power off when dropped.
struct Bench(CommandPower);

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.0.off();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_psk_rig_registers_answers_and_comes_back_after_a_power_cycle() {
    let rig = RigFile::load(&root().join("rigs/factory-psk-device.yaml")).unwrap();
    let endpoint = rig.device.endpoint_for("t1");
    let server = coaps_server(21).await;
    // The factory account's credential (the runner reads it from the rig's env source).
    let account = fresh_psk("factory-psk-t1");
    server.set_psk(&endpoint, account.clone());
    let state = tempfile::tempdir().unwrap();
    let values = DeviceValues {
        endpoint: Some(endpoint.clone()),
        server_uri: Some(server.uri()),
        psk_identity: Some(account.identity.clone()),
        ..DeviceValues::default()
    };
    let mut bench = Bench(power(&rig, state.path(), values, &account));

    bench.0.on().unwrap();
    assert!(bench.0.is_on());
    let (seq, reg) = server
        .await_registered(&endpoint, EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device_log(state.path())));
    assert_eq!(reg.lifetime, rig.device.lifetime);
    let answer = server
        .read(&endpoint, LwPath::resource(3, 0, 3), None)
        .await
        .unwrap();
    assert_eq!(answer.code, 205, "{answer:?}");

    bench.0.off().unwrap();
    assert!(!bench.0.is_on());
    bench.0.on().unwrap();
    server
        .await_registered(&endpoint, seq, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device_log(state.path())));
    bench.0.off().unwrap();
    let log = device_log(state.path());
    assert!(log.contains("already in NV; NV kept"), "{log}");
    let key_hex = hex::encode(account.key.expose());
    assert!(!log.contains(&key_hex[..12]), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_bootstrap_rig_bootstraps_at_the_fixed_address_then_registers() {
    let rig = RigFile::load(&root().join("rigs/factory-bootstrap-device.yaml")).unwrap();
    let endpoint = rig.device.endpoint_for("t2");
    let bind = rig
        .server
        .bootstrap_bind
        .expect("the rig fixes the bootstrap address");
    let bs = bootstrap_server(bind, 22).await;
    let factory = fresh_psk("factory-bs-t2");
    bs.set_psk(&endpoint, factory.clone());
    let server = coaps_server(21).await;
    let provisioned = server.provision_psk(&endpoint).unwrap();
    let mut account = ServerAccount::psk(
        101,
        server.uri(),
        provisioned.identity.as_bytes().to_vec(),
        provisioned.key.expose().to_vec(),
    );
    account.lifetime = rig.device.lifetime;
    bs.set_script(&endpoint, BootstrapScript::standard(&account))
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let values = DeviceValues {
        endpoint: Some(endpoint.clone()),
        bootstrap_uri: Some(bs.uri()),
        psk_identity: Some(factory.identity.clone()),
        ..DeviceValues::default()
    };
    let mut bench = Bench(power(&rig, state.path(), values, &factory));

    bench.0.on().unwrap();
    bs.await_bootstrap_finished(&endpoint, EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device_log(state.path())));
    let (_, reg) = server
        .await_registered(&endpoint, EventSeq::START, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", device_log(state.path())));
    assert_eq!(reg.lifetime, rig.device.lifetime);
    let answer = server
        .read(&endpoint, LwPath::instance(3, 0), None)
        .await
        .unwrap();
    assert_eq!(answer.code, 205, "{answer:?}");
    bench.0.off().unwrap();
    assert!(!bench.0.is_on());
}
