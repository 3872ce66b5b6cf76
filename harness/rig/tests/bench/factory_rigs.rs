//! Rigs of factory-provisioned devices: the example rigs load and their
//! power commands use only known placeholders; `server.bootstrap_bind` and
//! the factory account's credentials parse; a typo is refused with
//! file:line:column. The example rig's commands start, report and kill a
//! stand-in device process with real `sh`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rig::command_power::{check_placeholders, DeviceValues, SecretEnv};
use rig::model::{CredentialSource, PowerSpec, SecurityMode};
use rig::{CommandPower, Power, RigError, RigFile};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn command_power(rig: &RigFile) -> rig::model::CommandPowerSpec {
    match &rig.power {
        Some(PowerSpec::Command(c)) => c.clone(),
        other => panic!("expected command power, got {other:?}"),
    }
}

#[test]
fn factory_psk_rig_holds_a_server_account_and_a_device_process() {
    let path = repo().join("rigs/factory-psk-device.yaml");
    let rig = RigFile::load(&path).unwrap();
    assert!(!rig.device.bootstrap);
    assert_eq!(rig.device.security, SecurityMode::Psk);
    assert!(matches!(
        rig.device.credentials,
        CredentialSource::Env { .. }
    ));
    assert!(rig.modem.is_none() && rig.debug.is_none() && rig.network.is_none());
    assert_eq!(rig.server.bootstrap_bind, None);
    let power = command_power(&rig);
    check_placeholders(&power, &path).unwrap();
    assert!(power.on.contains("--server {server_uri}"), "{}", power.on);
    assert!(
        !power.on.contains("KEY"),
        "the key is never on a command line"
    );
}

#[test]
fn factory_bootstrap_rig_names_the_fixed_bootstrap_address() {
    let path = repo().join("rigs/factory-bootstrap-device.yaml");
    let rig = RigFile::load(&path).unwrap();
    assert!(rig.device.bootstrap);
    assert_eq!(rig.device.security, SecurityMode::Psk);
    let bind = rig.server.bootstrap_bind.unwrap();
    assert_eq!(bind, "127.0.0.1:5784".parse::<SocketAddr>().unwrap());
    let power = command_power(&rig);
    check_placeholders(&power, &path).unwrap();
    // The device's own fixed URI is the address the rig binds.
    assert!(
        power.on.contains(&format!("--bootstrap coaps://{bind}")),
        "{}",
        power.on
    );
}

#[test]
fn bootstrap_bind_and_factory_credentials_parse() {
    let rig = RigFile::parse(
        "name: r\n\
         device:\n  endpoint: e\n  lifetime: 60s\n  security: psk\n  bootstrap: true\n  \
         credentials: { from: file, path: /etc/meter/secrets.yaml }\n\
         server:\n  bind: 0.0.0.0:0\n  advertise: harness.lab\n  bootstrap_bind: 0.0.0.0:5784\n",
        Path::new("inline.yaml"),
    )
    .unwrap();
    assert_eq!(
        rig.server.bootstrap_bind,
        Some("0.0.0.0:5784".parse().unwrap())
    );
    assert_eq!(rig.server.advertise.as_deref(), Some("harness.lab"));
    assert_eq!(
        rig.device.credentials,
        CredentialSource::File {
            path: "/etc/meter/secrets.yaml".into()
        }
    );
}

#[test]
fn a_typo_in_the_server_part_is_refused_with_line_and_column() {
    let e = RigFile::parse(
        "name: r\ndevice: { endpoint: e, lifetime: 60s }\nserver:\n  bind: 127.0.0.1:0\n  bootstrap_bnd: 127.0.0.1:5784\n",
        Path::new("typo.yaml"),
    )
    .unwrap_err();
    let RigError::File {
        line,
        column,
        message,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*line, *column), (5, 3), "{e}");
    assert!(message.contains("bootstrap_bnd"), "{e}");
    assert!(e.to_string().starts_with("typo.yaml:5:3:"), "{e}");
    let e = RigFile::parse(
        "name: r\ndevice: { endpoint: e, lifetime: 60s }\nserver:\n  bootstrap_bind: localhost:5784\n",
        Path::new("addr.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("addr.yaml:4:"), "{e}");
}

/// Whether process `pid` is a (stand-in) device: `sim-meter` in its command line.
fn is_device(pid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.windows(9).any(|w| w == b"sim-meter"))
}

fn running(pid_file: &Path) -> bool {
    std::fs::read_to_string(pid_file).is_ok_and(|p| is_device(p.trim()))
}

/// The rig's own on/off/status commands, with a stand-in for `meterbench`
/// that records its arguments and whether the key variable is set, then
/// stays up like a device.
#[test]
fn the_example_rig_starts_reports_and_kills_its_device_process() {
    let rig = RigFile::load(&repo().join("rigs/factory-psk-device.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stand_in = dir.path().join("meterbench");
    let record = dir.path().join("args");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {rec}.tmp\n\
             [ -n \"$METERBENCH_PSK_KEY\" ] && echo key-in-env >> {rec}.tmp\n\
             mv {rec}.tmp {rec}\n\
             while :; do sleep 0.1; done\n",
            rec = record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let state = dir.path().join("device");
    let mut power = CommandPower::new(command_power(&rig));
    power
        .set_device_values(
            DeviceValues {
                endpoint: Some(rig.device.endpoint_for("r1")),
                lifetime: Some(rig.device.lifetime),
                server_uri: Some("coaps://127.0.0.1:40123".into()),
                bootstrap_uri: None,
                psk_identity: Some("factory-id".into()),
                state_dir: Some(state.clone()),
                rig_dir: Some(rig.dir().to_owned()),
                meterbench: Some(stand_in.clone()),
            },
            Some(SecretEnv::psk_key(&[0xa5; 16])),
        )
        .unwrap();
    assert!(!power.is_on());
    power.on().unwrap();
    assert!(power.is_on());
    let pid_file = state.join("meter.pid");
    assert!(running(&pid_file));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !record.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let args = std::fs::read_to_string(&record).unwrap();
    let objects = repo().join("rigs/../fixtures/objects");
    let expected = [
        "sim-meter",
        "--state-dir",
        &format!("{}/nv", state.display()),
        "--objects",
        &objects.display().to_string(),
        "--endpoint",
        "factory-meter-r1",
        "--lifetime",
        "30",
        "--server",
        "coaps://127.0.0.1:40123",
        "--psk-identity",
        "factory-id",
        "--exit-with-pid",
        &std::process::id().to_string(),
        "key-in-env",
    ];
    assert_eq!(args.lines().collect::<Vec<_>>(), expected);
    assert!(!args.contains("a5a5"), "{args}");
    // A second `on` while it runs starts nothing new.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    power.on().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid);
    power.off().unwrap();
    assert!(!power.is_on());
    assert!(!pid_file.exists());
    assert!(
        !is_device(pid.trim()),
        "the device process outlived power off"
    );
    // Off again is harmless.
    power.off().unwrap();
}

#[test]
fn the_example_rig_reports_a_device_that_exits_at_once() {
    let rig = RigFile::load(&repo().join("rigs/factory-psk-device.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stand_in = dir.path().join("meterbench");
    std::fs::write(
        &stand_in,
        "#!/bin/sh\necho 'usage: METERBENCH_PSK_KEY is not set' >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut power = CommandPower::new(command_power(&rig));
    power
        .set_device_values(
            DeviceValues {
                endpoint: Some("e".into()),
                lifetime: Some(Duration::from_secs(30)),
                server_uri: Some("coaps://127.0.0.1:40123".into()),
                psk_identity: Some("id".into()),
                state_dir: Some(dir.path().join("device")),
                rig_dir: Some(rig.dir().to_owned()),
                meterbench: Some(stand_in),
                ..DeviceValues::default()
            },
            None,
        )
        .unwrap();
    let e = power.on().unwrap_err();
    let RigError::PowerCommand { stderr, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(stderr.contains("METERBENCH_PSK_KEY is not set"), "{e}");
    assert!(!power.is_on());
}
