//! `power: { kind: scpi, ... }` in rig files: the example loads, defaults
//! apply, and mistakes name file:line:column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rig::model::{PowerSpec, ScpiAddress, ScpiCommands};
use rig::power::{from_spec, supply_from_spec, Amps, Volts};
use rig::{RigError, RigFile};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rig_with_power(power: &str) -> Result<RigFile, RigError> {
    RigFile::parse(
        &format!("name: s\ndevice: {{ endpoint: ep, lifetime: 1m }}\npower:\n{power}"),
        Path::new("rigs/s.yaml"),
    )
}

fn scpi(rig: &RigFile) -> &rig::model::ScpiPowerSpec {
    match &rig.power {
        Some(PowerSpec::Scpi(s)) => s,
        other => panic!("expected scpi power, got {other:?}"),
    }
}

#[test]
fn example_scpi_rig_loads_with_address_channel_and_levels() {
    let rig = RigFile::load(&repo().join("rigs/bench-scpi-example.yaml")).unwrap();
    let s = scpi(&rig);
    assert_eq!(
        s.address,
        ScpiAddress::Tcp {
            host: "192.168.10.20".into(),
            port: 5025
        }
    );
    assert_eq!(s.channel, Some(2));
    assert_eq!(s.voltage, Volts::from_milli(3600));
    assert_eq!(s.current_limit, Amps::from_milli(500));
    assert_eq!(s.timeout, Duration::from_secs(2));
    assert!(s.check_errors);
    assert_eq!(s.commands, ScpiCommands::default());
    let power = from_spec(rig.power.as_ref().unwrap(), rig.dir())
        .unwrap()
        .expect("scpi power has a driver here");
    assert_eq!(
        power.describe(),
        "scpi supply 192.168.10.20:5025 (3.6V, limit 0.5A, output 2)"
    );
}

#[test]
fn serial_address_takes_baud_and_overrides_replace_single_commands() {
    let rig = rig_with_power(
        "  kind: scpi\n  serial: /dev/ttyUSB3\n  baud: 19200\n  voltage: 5V\n  current_limit: 1A\n  check_errors: false\n  timeout: 500ms\n  commands:\n    output_on: \":OUTP CH{channel},ON\"\n",
    )
    .unwrap();
    let s = scpi(&rig);
    assert_eq!(
        s.address,
        ScpiAddress::Serial {
            path: "/dev/ttyUSB3".into(),
            baud: 19200
        }
    );
    assert!(!s.check_errors);
    assert_eq!(s.timeout, Duration::from_millis(500));
    assert_eq!(s.commands.output_on, ":OUTP CH{channel},ON");
    assert_eq!(
        s.commands.output_off, "OUTP OFF",
        "the others keep their defaults"
    );
    assert_eq!(s.address.to_string(), "/dev/ttyUSB3 at 19200 baud");
}

#[test]
fn relative_serial_path_is_taken_from_the_rig_folder() {
    let rig =
        rig_with_power("  kind: scpi\n  serial: dev/psu\n  voltage: 5V\n  current_limit: 1A\n")
            .unwrap();
    let supply = supply_from_spec(rig.power.as_ref().unwrap(), Path::new("/lab/rigs"))
        .unwrap()
        .unwrap();
    assert!(
        supply.describe().contains("/lab/rigs/dev/psu at 9600 baud"),
        "{}",
        supply.describe()
    );
}

#[test]
fn command_and_virtual_power_do_not_measure() {
    let rig = RigFile::load(&repo().join("rigs/virtual.yaml")).unwrap();
    let spec = rig.power.as_ref().unwrap();
    assert!(
        from_spec(spec, rig.dir()).unwrap().is_none(),
        "the sim crate supplies virtual power"
    );
    assert!(supply_from_spec(spec, rig.dir()).unwrap().is_none());
    let rig = RigFile::load(&repo().join("rigs/bench-example.yaml")).unwrap();
    let spec = rig.power.as_ref().unwrap();
    assert!(from_spec(spec, rig.dir())
        .unwrap()
        .unwrap()
        .describe()
        .starts_with("command power"));
    assert!(supply_from_spec(spec, rig.dir()).unwrap().is_none());
}

fn file_error(power: &str) -> (u64, u64, String) {
    match rig_with_power(power) {
        Err(e @ RigError::File { .. }) => {
            let RigError::File { line, column, .. } = e else {
                unreachable!()
            };
            let shown = e.to_string();
            eprintln!("{shown}");
            assert!(shown.starts_with("rigs/s.yaml:"), "{shown}");
            (line, column, shown)
        }
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn unknown_field_is_refused_with_its_place() {
    let (line, column, shown) =
        file_error("  kind: scpi\n  tcp: psu.lab\n  voltage: 3.6V\n  currnet_limit: 500mA\n");
    assert!(shown.contains("currnet_limit"), "{shown}");
    assert!(line >= 3 && column >= 1, "{shown}");
    assert!(
        shown.starts_with(&format!("rigs/s.yaml:{line}:{column}: ")),
        "{shown}"
    );
}

#[test]
fn unknown_command_override_is_refused_with_its_place() {
    let (line, _, shown) = file_error(
        "  kind: scpi\n  tcp: psu.lab\n  voltage: 3.6V\n  current_limit: 1A\n  commands: { output_onn: \"OUTP 1\" }\n",
    );
    assert!(shown.contains("output_onn"), "{shown}");
    assert!(line >= 3, "{shown}");
}

#[test]
fn an_address_is_required_and_only_one() {
    let (_, _, shown) = file_error("  kind: scpi\n  voltage: 3.6V\n  current_limit: 1A\n");
    assert!(shown.contains("needs an address"), "{shown}");
    let (_, _, shown) = file_error(
        "  kind: scpi\n  tcp: psu\n  serial: /dev/ttyUSB0\n  voltage: 3.6V\n  current_limit: 1A\n",
    );
    assert!(shown.contains("not both"), "{shown}");
    let (_, _, shown) =
        file_error("  kind: scpi\n  tcp: psu:99999\n  voltage: 3.6V\n  current_limit: 1A\n");
    assert!(shown.contains("not a port"), "{shown}");
}

#[test]
fn levels_need_their_units() {
    let (_, _, shown) =
        file_error("  kind: scpi\n  tcp: psu\n  voltage: 3.6\n  current_limit: 1A\n");
    assert!(
        shown.contains("voltage: expected a value with its unit"),
        "{shown}"
    );
    let (_, _, shown) =
        file_error("  kind: scpi\n  tcp: psu\n  voltage: 3.6V\n  current_limit: 500mV\n");
    assert!(
        shown.contains("current_limit: `500mV` needs its unit"),
        "{shown}"
    );
}

#[test]
fn templates_with_unknown_placeholders_are_refused() {
    let (_, _, shown) = file_error(
        "  kind: scpi\n  tcp: psu\n  voltage: 3.6V\n  current_limit: 1A\n  commands: { output_on: \"OUTP {chan},ON\" }\n",
    );
    assert!(shown.contains("{chan}"), "{shown}");
}
