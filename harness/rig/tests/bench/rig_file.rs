//! Rig files: the shipped examples load; mistakes name file:line:column.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rig::model::{
    AccountInstances, DebugSpec, FirmwareRole, ModemPort, NetworkSpec, PowerSpec, PowerState,
    VirtualMeterOptions,
};
use rig::{RigError, RigFile};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn virtual_rig_loads_with_every_part() {
    let rig = RigFile::load(&repo().join("rigs/virtual.yaml")).unwrap();
    assert_eq!(rig.name, "virtual");
    assert_eq!(rig.device.endpoint_for("r42"), "virtual-meter-r42");
    assert_eq!(rig.device.lifetime, Duration::from_secs(20));
    let modem = rig.modem.as_ref().unwrap();
    assert_eq!(modem.port, ModemPort::Virtual);
    assert_eq!(modem.baud, 115_200);
    let dialect = modem
        .load_dialect(&repo().join("fixtures"), rig.dir())
        .unwrap();
    assert_eq!(dialect.name, "meterbench virtual modem");
    assert_eq!(
        rig.power,
        Some(PowerSpec::Virtual(VirtualMeterOptions::default()))
    );
    assert_eq!(rig.debug, Some(DebugSpec::Virtual));
    assert_eq!(rig.network, Some(NetworkSpec::Virtual));
    assert_eq!(rig.device.reboot_within, Duration::from_secs(45));
    let firmware = rig.firmware.as_ref().unwrap();
    assert_eq!(firmware.store, None);
    assert_eq!(
        firmware.roles.get("upgrade"),
        Some(&FirmwareRole {
            image: "meter-2.0.bin".into(),
            version: None
        })
    );
    assert_eq!(
        firmware.store_dir(rig.dir(), Path::new("fixtures/firmware")),
        Path::new("fixtures/firmware")
    );
    assert_eq!(rig.server.account, AccountInstances::default());
    assert_eq!(
        rig.server.bind,
        "127.0.0.1:0".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(rig.server.advertise, None);
    assert_eq!(rig.after_run.power, PowerState::Off);
}

#[test]
fn live_device_rig_has_identity_and_server_only() {
    let rig = RigFile::load(&repo().join("rigs/live-device.yaml")).unwrap();
    assert!(rig.modem.is_none() && rig.power.is_none() && rig.debug.is_none());
    assert!(rig.network.is_none() && rig.firmware.is_none());
    assert_eq!(rig.device.lifetime, Duration::from_secs(300));
    assert_eq!(rig.server.advertise.as_deref(), Some("harness.lab.example"));
}

#[test]
fn bench_example_rig_has_serial_port_and_command_power() {
    let rig = RigFile::load(&repo().join("rigs/bench-example.yaml")).unwrap();
    let modem = rig.modem.unwrap();
    assert_eq!(
        modem.port,
        ModemPort::Path("/dev/serial/by-id/usb-Quectel_EG91-if02-port0".into())
    );
    let Some(PowerSpec::Command(cmd)) = rig.power else {
        panic!("expected command power, got {:?}", rig.power)
    };
    assert_eq!(cmd.on, "usbrelay BITFT_1=1");
    assert!(cmd.status.is_some());
    assert_eq!(cmd.timeout, Duration::from_secs(5));
    let Some(NetworkSpec::Command(net)) = rig.network else {
        panic!("expected command network, got {:?}", rig.network)
    };
    assert!(net.refuse.contains_key("second-profile"));
    let firmware = rig.firmware.unwrap();
    assert_eq!(
        firmware.store_dir(Path::new("/lab/rigs"), Path::new("fixtures/firmware")),
        Path::new("/lab/rigs/firmware-bench-01")
    );
    assert_eq!(firmware.roles["upgrade"].version.as_deref(), Some("3.2.1"));
    assert_eq!(rig.device.reboot_within, Duration::from_secs(120));
}

#[test]
fn differing_rig_configures_the_virtual_meter_and_the_bootstrap_account() {
    let rig = RigFile::load(&repo().join("rigs/virtual-differing.yaml")).unwrap();
    let Some(PowerSpec::Virtual(options)) = &rig.power else {
        panic!("{:?}", rig.power)
    };
    assert!(options.without.iter().any(|p| p == "/3/0/15"));
    assert_eq!(options.server_instance, 1);
    assert_eq!(rig.server.account.server_instance, 1);
    assert_ne!(rig.device.lifetime, Duration::from_secs(20));
    assert!(rig.network.is_none(), "no network control");
}

#[test]
fn firmware_roles_take_an_image_or_an_image_and_its_version() {
    let rig = RigFile::parse(
        "name: m\ndevice: { endpoint: ep, lifetime: 1m }\nfirmware:\n  store: images\n  download_within: 10m\n  roles:\n    upgrade: { image: acme-3.2.bin, version: \"3.2.0\" }\n    corrupted: acme-bad.bin\n",
        Path::new("/lab/rigs/m.yaml"),
    )
    .unwrap();
    let f = rig.firmware.unwrap();
    assert_eq!(f.download_within, Duration::from_secs(600));
    assert_eq!(f.update_within, None);
    assert_eq!(
        f.roles["upgrade"],
        FirmwareRole {
            image: "acme-3.2.bin".into(),
            version: Some("3.2.0".into())
        }
    );
    assert_eq!(f.roles["corrupted"].image, "acme-bad.bin");
    assert_eq!(
        f.store_dir(Path::new("/lab/rigs"), Path::new("fixtures/firmware")),
        Path::new("/lab/rigs/images")
    );
    let err = RigFile::parse(
        "name: m\ndevice: { endpoint: ep, lifetime: 1m }\nfirmware: { roles: { Upgrade: a.bin } }\n",
        Path::new("m.yaml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("firmware.roles"), "{err}");
}

#[test]
fn a_command_network_names_profiles_by_their_place() {
    let rig = RigFile::parse(
        "name: m\ndevice: { endpoint: ep, lifetime: 1m }\nnetwork:\n  kind: command\n  refuse: { second-profile: \"netem bar 00102\" }\n  accept_all: \"netem clear\"\n",
        Path::new("m.yaml"),
    )
    .unwrap();
    let Some(NetworkSpec::Command(c)) = rig.network else {
        panic!("{:?}", rig.network)
    };
    assert_eq!(c.refuse["second-profile"], "netem bar 00102");
    assert_eq!(c.timeout, Duration::from_secs(10));
    let err = RigFile::parse(
        "name: m\ndevice: { endpoint: ep, lifetime: 1m }\nnetwork: { kind: command, refuse: { roaming: x }, accept_all: y }\n",
        Path::new("m.yaml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("network.refuse"), "{err}");
}

#[test]
fn minimal_rig_takes_defaults() {
    let rig = RigFile::parse(
        "name: m\ndevice: { endpoint: ep, lifetime: 1m }\n",
        Path::new("m.yaml"),
    )
    .unwrap();
    assert_eq!(rig.server.bind.port(), 0);
    assert_eq!(rig.after_run.power, PowerState::Off);
    assert_eq!(rig.device.reboot_within, Duration::from_secs(60));
    assert_eq!(rig.server.account.server_instance, 0);
}

fn file_error(text: &str) -> (u64, u64, String, String) {
    match RigFile::parse(text, Path::new("rigs/broken.yaml")) {
        Err(e @ RigError::File { line, column, .. }) => {
            let RigError::File { ref message, .. } = e else {
                unreachable!()
            };
            eprintln!("{e}");
            (line, column, message.clone(), e.to_string())
        }
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn wrong_type_names_file_line_and_column() {
    let text = "name: x\ndevice:\n  endpoint: ep\n  lifetime: 30s\nmodem:\n  port: /dev/ttyUSB0\n  baud: fast\n  dialect: d\n";
    let (line, column, message, shown) = file_error(text);
    assert_eq!((line, column), (7, 9), "{shown}");
    assert!(shown.starts_with("rigs/broken.yaml:7:9: "), "{shown}");
    assert!(
        message.contains("fast") || message.contains("u32") || message.contains("integer"),
        "{message}"
    );
}

#[test]
fn unknown_field_names_file_line_and_column() {
    let text = "name: x\ndevice:\n  endpoint: ep\n  lifetime: 30s\n  lifetim: 5s\n";
    let (line, column, message, shown) = file_error(text);
    assert_eq!(line, 5, "{shown}");
    assert_eq!(column, 3, "{shown}");
    assert!(message.contains("lifetim"), "{message}");
}

#[test]
fn unknown_field_in_power_command_is_an_error() {
    let text = "name: x\ndevice: { endpoint: ep, lifetime: 30s }\npower:\n  kind: command\n  on: a\n  off: b\n  stauts: c\n";
    let (line, _, message, shown) = file_error(text);
    assert!(line >= 3, "{shown}");
    assert!(message.contains("stauts"), "{message}");
}

#[test]
fn bad_duration_says_what_was_expected() {
    let text = "name: x\ndevice:\n  endpoint: ep\n  lifetime: 30\n";
    let (line, column, message, shown) = file_error(text);
    assert_eq!((line, column), (4, 13), "{shown}");
    assert!(message.contains("unit"), "{message}");
}

#[test]
fn missing_field_is_named() {
    let (_, _, message, _) = file_error("name: x\ndevice: { endpoint: ep }\n");
    assert!(message.contains("lifetime"), "{message}");
}

#[test]
fn rig_name_must_be_a_file_name() {
    let err = RigFile::parse(
        "name: ../etc\ndevice: { endpoint: ep, lifetime: 1m }\n",
        Path::new("r.yaml"),
    )
    .unwrap_err();
    assert!(
        matches!(err, RigError::Invalid { ref field, .. } if field == "name"),
        "{err}"
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = RigFile::load(Path::new("/nonexistent/rig.yaml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/rig.yaml"), "{err}");
}
