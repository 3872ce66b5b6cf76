//! The vendor dialects (fixtures/modems/) run through the real SerialModem
//! against a scripted modem on a PTY that replays each manual's answers
//! (fixtures/modems/replay/): the whole bring-up, byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rig::action::{is_action, UnsupportedAction};
use rig::at::FinalResult;
use rig::dialect::LineEnding;
use rig::port::PortSelector;
use rig::scripted_modem::{ReplayScript, ScriptedModem};
use rig::serial::SerialOptions;
use rig::wrap::TranscriptRecorder;
use rig::{bring_up, Dialect, Direction, Modem, RigError, SerialModem};

const T: Duration = Duration::from_secs(3);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn dialect(name: &str) -> Dialect {
    let mut d = Dialect::find(name, &fixtures()).unwrap();
    d.boot_timeout = Duration::from_secs(5);
    d.command_timeout = T;
    d
}

fn replay(name: &str) -> ScriptedModem {
    let path = fixtures()
        .join("modems/replay")
        .join(format!("{name}.yaml"));
    ScriptedModem::start(ReplayScript::load(&path).unwrap()).unwrap()
}

/// The driver with its line recorded, as a bench builds it.
type Recorded = TranscriptRecorder<SerialModem>;

fn open(name: &str) -> (ScriptedModem, Recorded) {
    let sm = replay(name);
    let mut modem =
        TranscriptRecorder::new(SerialModem::new(sm.path.clone(), 115_200, dialect(name)));
    modem.open().expect("modem answers AT once booted");
    (sm, modem)
}

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("uri".to_string(), "coap://127.0.0.1:5683".to_string()),
        ("endpoint".to_string(), "meter-1".to_string()),
        ("lifetime".to_string(), "30".to_string()),
    ])
}

/// The transcript from the first `ATE0` on, as (direction, text).
fn after_echo_off(modem: &Recorded) -> Vec<(Direction, String)> {
    let entries: Vec<(Direction, String)> = modem
        .transcript()
        .entries()
        .iter()
        .map(|e| (e.direction, e.text.clone()))
        .collect();
    let start = entries
        .iter()
        .position(|(d, t)| *d == Direction::Sent && t == "ATE0")
        .expect("ATE0 sent");
    // Before it: only the power-on wait (AT probes, their echo, OK, notes).
    for (d, t) in &entries[..start] {
        assert!(
            *d == Direction::Note || t == "AT" || t == "OK",
            "unexpected {d:?} {t:?} while waiting for the modem"
        );
    }
    entries[start..].to_vec()
}

fn s(d: Direction, t: &str) -> (Direction, String) {
    (d, t.to_string())
}

/// Everything the modem received after the power-on probes.
fn sent_after_probes(sm: &ScriptedModem) -> String {
    let raw = String::from_utf8(sm.received()).unwrap();
    let i = raw.find("ATE0").expect("ATE0 received");
    assert!(raw[..i].split('\r').all(|l| l.is_empty() || l == "AT"));
    raw[i..].to_string()
}

/// attention, echo off, identity, then the rest of the dialect's bring-up.
fn full_bring_up(modem: &mut Recorded) -> BTreeMap<String, String> {
    let identity = ["manufacturer", "model", "revision", "imei"];
    let mut first: Vec<String> = ["attention", "echo_off", "error_verbosity"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    first.extend(identity.iter().map(|s| s.to_string()));
    let answers = bring_up::run(modem, &first, &vars()).unwrap();
    let d = modem.dialect().clone();
    let values = identity
        .iter()
        .zip(&answers[3..])
        .map(|(a, r)| (a.to_string(), d.value(a, r).unwrap()))
        .collect();
    let rest: Vec<String> = d
        .bring_up
        .iter()
        .filter(|n| !first.contains(n))
        .cloned()
        .collect();
    bring_up::run(modem, &rest, &vars()).unwrap();
    values
}

#[test]
fn ublox_sara_r5_bring_up_replays_byte_exact() {
    let (sm, mut modem) = open("ublox-sara-r5");
    let ids = full_bring_up(&mut modem);
    let urc = bring_up::wait_for_event(&mut modem, "lwm2m_registered", T).unwrap();
    // The first server to register is u-blox's own (721): the event names any.
    assert_eq!(urc, "+ULWM2MSTAT: 1,721,3");
    assert_eq!(ids["manufacturer"], "u-blox");
    assert_eq!(ids["model"], "SARA-R510M8S");
    assert_eq!(ids["imei"], "004999010640000");
    use Direction::*;
    assert_eq!(
        after_echo_off(&modem),
        vec![
            s(Sent, "ATE0"),
            s(Echo, "ATE0"),
            s(Received, "OK"),
            s(Sent, "AT+CMEE=1"),
            s(Received, "OK"),
            s(Sent, "AT+CGMI"),
            s(Received, "u-blox"),
            s(Received, "OK"),
            s(Sent, "AT+CGMM"),
            s(Received, "SARA-R510M8S"),
            s(Received, "OK"),
            s(Sent, "AT+CGMR"),
            s(Received, "03.15"),
            s(Received, "OK"),
            s(Sent, "AT+CGSN"),
            s(Received, "004999010640000"),
            s(Received, "OK"),
            s(Sent, "AT+ULWM2MSTAT=1"),
            s(Received, "OK"),
            s(Sent, "AT+ULWM2M=0"),
            s(Received, "OK"),
            s(Urc, "+ULWM2MSTAT: 1,721,2"),
            s(Urc, "+ULWM2MSTAT: 1,721,3"),
        ]
    );
    assert_eq!(
        sent_after_probes(&sm),
        "ATE0\rAT+CMEE=1\rAT+CGMI\rAT+CGMM\rAT+CGMR\rAT+CGSN\rAT+ULWM2MSTAT=1\rAT+ULWM2M=0\r"
    );
}

#[test]
fn quectel_bc66_bring_up_replays_byte_exact() {
    let (sm, mut modem) = open("quectel-bc66");
    let ids = full_bring_up(&mut modem);
    let urc = bring_up::wait_for_event(&mut modem, "lwm2m_registered", T).unwrap();
    assert_eq!(urc, "+QLWREG: 0");
    assert_eq!(ids["model"], "Quectel_BC66");
    assert_eq!(ids["imei"], "866971030000710");
    use Direction::*;
    let t = after_echo_off(&modem);
    assert_eq!(
        t[t.len() - 5..],
        [
            s(Sent, "AT+QLWCONFIG=0,\"127.0.0.1\",5683,\"meter-1\",30,3"),
            s(Received, "OK"),
            s(Sent, "AT+QLWREG"),
            s(Received, "OK"),
            s(Urc, "+QLWREG: 0"),
        ]
    );
    assert_eq!(
        sent_after_probes(&sm),
        "ATE0\rAT+CMEE=1\rAT+CGMI\rAT+CGMM\rAT+CGMR\rAT+CGSN\r\
         AT+QLWCONFIG=0,\"127.0.0.1\",5683,\"meter-1\",30,3\rAT+QLWREG\r"
    );
    // Reconfiguring a registered client: the manual's +CME ERROR.
    let r = modem
        .command("AT+QLWCONFIG=1,\"10.0.0.1\",5683,\"x\",30,3", T)
        .unwrap();
    assert_eq!(r.result, FinalResult::CmeError(3));
}

#[test]
fn generic_27007_bring_up_and_values() {
    let (_sm, mut modem) = open("3gpp-27007");
    let ids = full_bring_up(&mut modem);
    assert_eq!(ids["manufacturer"], "ACME");
    let d = modem.dialect().clone();
    let r = modem.command("AT+CEREG?", T).unwrap();
    assert_eq!(d.value("registration_status", &r).unwrap(), "home");
    // radio_on's +CEREG URC arrives after OK and is kept apart.
    assert_eq!(modem.wait_for_line("+CEREG: ", T).unwrap(), "+CEREG: 1");
    let last = modem.transcript().entries().last().cloned().unwrap();
    assert_eq!(
        (last.direction, last.text.as_str()),
        (Direction::Urc, "+CEREG: 1")
    );
    // No LwM2M client in the standard: the event is not supported.
    let e = bring_up::wait_for_event(&mut modem, "lwm2m_registered", T).unwrap_err();
    assert!(matches!(e, RigError::Unsupported(_)), "{e}");
}

#[test]
fn unknown_command_gets_the_manual_error_form() {
    let (_sm, mut modem) = open("ublox-sara-r5");
    let r = modem.command("AT+NOSUCHCOMMAND", T).unwrap();
    assert_eq!(r.result, FinalResult::Error);
    assert!(
        r.lines.is_empty(),
        "echo stripped, nothing else: {:?}",
        r.lines
    );
    let r = modem.command("AT+CIMI", T).unwrap();
    assert_eq!(r.result, FinalResult::CmeError(10));
}

#[test]
fn echo_on_is_stripped_from_the_response() {
    let (sm, mut modem) = open("ublox-sara-r5");
    // Echo stays on (no ATE0): the modem repeats each line first.
    let r = modem.command("AT+CGMI", T).unwrap();
    assert_eq!(r.lines, vec!["u-blox"]);
    let t = modem.transcript();
    let e = t.entries();
    let i = e.iter().rposition(|x| x.text == "AT+CGMI").unwrap();
    assert_eq!(e[i - 1].direction, Direction::Sent);
    assert_eq!(e[i].direction, Direction::Echo);
    assert!(String::from_utf8(sm.received())
        .unwrap()
        .ends_with("AT+CGMI\r"));
}

#[test]
fn urc_inside_a_response_is_kept_as_a_urc() {
    let script = ReplayScript::parse(
        r#"
modem: test
echo: false
unknown: ["ERROR"]
exchanges:
  - { command: "AT", answer: ["OK"] }
  - { command: "AT+CGMI", answer: ["u-blox", "+ULWM2MSTAT: 4,7", "OK"] }
"#,
        Path::new("inline.yaml"),
    )
    .unwrap();
    let sm = ScriptedModem::start(script).unwrap();
    let mut modem = SerialModem::new(sm.path.clone(), 115_200, dialect("ublox-sara-r5"));
    modem.open().unwrap();
    let r = modem.command("AT+CGMI", T).unwrap();
    assert_eq!(r.lines, vec!["u-blox"]);
    assert_eq!(modem.take_urcs(), vec!["+ULWM2MSTAT: 4,7"]);
}

#[test]
fn unsupported_action_names_action_and_modem() {
    let d = dialect("quectel-bc66");
    assert!(d.supports("lwm2m_start"));
    assert!(!d.supports("lwm2m_endpoint"));
    let e = d.require("lwm2m_endpoint").unwrap_err();
    assert_eq!(
        e,
        UnsupportedAction {
            action: "lwm2m_endpoint".into(),
            modem: "Quectel BC66/BC26".into()
        }
    );
    let text = e.to_string();
    assert!(text.starts_with("not supported by this modem"), "{text}");
    assert!(text.contains("lwm2m_endpoint") && text.contains("Quectel BC66/BC26"));
    // Through the bring-up: the typed error, before anything is sent.
    let (sm, mut modem) = open("quectel-bc66");
    let before = sm.received().len();
    let e = bring_up::run(&mut modem, &["lwm2m_endpoint".to_string()], &vars()).unwrap_err();
    assert!(
        matches!(&e, RigError::Unsupported(u) if u.action == "lwm2m_endpoint"),
        "{e}"
    );
    assert_eq!(
        sm.received().len(),
        before,
        "nothing sent for an unsupported action"
    );
}

#[test]
fn rig_line_ending_overrides_the_dialect() {
    let sm = replay("3gpp-27007");
    let mut modem = SerialModem::new(sm.path.clone(), 115_200, dialect("3gpp-27007")).with_options(
        SerialOptions {
            line_ending: Some(LineEnding::CrLf),
            ..SerialOptions::default()
        },
    );
    modem.open().unwrap();
    assert!(modem.command("AT+CGMI", T).unwrap().is_ok());
    assert!(String::from_utf8(sm.received())
        .unwrap()
        .ends_with("AT+CGMI\r\n"));
}

#[test]
fn every_shipped_dialect_maps_only_vocabulary_actions_and_cites_its_sources() {
    let dir = fixtures().join("modems");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let d = Dialect::load(&path).unwrap();
        for name in d.commands.keys() {
            assert!(
                is_action(name),
                "{}: `{name}` is not in rig::action::ACTIONS",
                path.display()
            );
        }
        for name in d.bring_up.iter().chain(&d.bring_up_bootstrap) {
            assert!(d.supports(name));
        }
        if path.file_name().unwrap() == "meterbench-virtual.yaml" {
            continue;
        }
        // A vendor command line carries its citation on the line or just above.
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.iter().position(|l| *l == "commands:").unwrap();
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            if !l.starts_with("  ") {
                break;
            }
            let t = l.trim_start();
            if t.starts_with('#') {
                continue;
            }
            assert!(
                t.contains('#') || lines[i - 1].trim_start().starts_with('#'),
                "{}:{}: `{t}` cites no manual",
                path.display(),
                i + 1
            );
        }
    }
    assert!(seen >= 4, "dialects found: {seen}");
}

#[test]
fn usb_serial_number_is_resolved_among_ports_and_a_miss_lists_them() {
    use serialport::{SerialPortInfo, SerialPortType, UsbPortInfo};
    let usb = |name: &str, serial: &str, interface: u8| SerialPortInfo {
        port_name: name.into(),
        port_type: SerialPortType::UsbPort(UsbPortInfo {
            vid: 0x1546,
            pid: 0x01a8,
            serial_number: Some(serial.into()),
            manufacturer: Some("u-blox".into()),
            product: Some("SARA-R5".into()),
            interface: Some(interface),
        }),
    };
    let ports = vec![
        usb("/dev/ttyACM0", "R5-0001", 0),
        usb("/dev/ttyACM1", "R5-0001", 2),
        SerialPortInfo {
            port_name: "/dev/ttyS0".into(),
            port_type: SerialPortType::Unknown,
        },
    ];
    let sel = PortSelector::parse(Path::new("usb:R5-0001:2"));
    assert_eq!(
        sel,
        PortSelector::UsbSerial {
            serial: "R5-0001".into(),
            interface: Some(2)
        }
    );
    assert_eq!(
        sel.resolve_in(&ports).unwrap(),
        PathBuf::from("/dev/ttyACM1")
    );
    let e = PortSelector::parse(Path::new("usb:NOPE"))
        .resolve_in(&ports)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"NOPE\""), "{e}");
    for p in [
        "/dev/ttyACM0",
        "/dev/ttyACM1",
        "/dev/ttyS0",
        "serial \"R5-0001\", interface 2",
    ] {
        assert!(e.contains(p), "{p} missing from: {e}");
    }
    // Two interfaces of one modem and none chosen: ambiguous, say so.
    let e = PortSelector::parse(Path::new("usb:R5-0001"))
        .resolve_in(&ports)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 match"), "{e}");
    assert_eq!(
        PortSelector::parse(Path::new("/dev/serial/by-id/usb-u-blox-if00")),
        PortSelector::Path("/dev/serial/by-id/usb-u-blox-if00".into())
    );
}

#[test]
fn unknown_serial_number_fails_open_with_the_ports_seen() {
    let mut d = dialect("3gpp-27007");
    d.boot_timeout = Duration::from_millis(300);
    let mut modem = SerialModem::new("usb:no-such-serial-meterbench", 115_200, d);
    let e = modem.open().unwrap_err().to_string();
    assert!(
        e.contains("no serial port matches USB serial number \"no-such-serial-meterbench\""),
        "{e}"
    );
    assert!(e.contains("ports seen"), "{e}");
}

#[test]
fn response_values_and_their_errors() {
    let d = dialect("ublox-sara-r5");
    let resp = |lines: &[&str]| rig::AtResponse {
        command: "x".into(),
        lines: lines.iter().map(|s| s.to_string()).collect(),
        result: FinalResult::Ok,
    };
    assert_eq!(
        d.value("registration_status", &resp(&["+CEREG: 0,5"]))
            .unwrap(),
        "roaming"
    );
    assert_eq!(
        d.value("lwm2m_status", &resp(&["+ULWM2M: 1"])).unwrap(),
        "disabled"
    );
    assert_eq!(
        d.value("iccid", &resp(&["+CCID: 8939107800023416395"]))
            .unwrap(),
        "8939107800023416395"
    );
    let e = d
        .value("registration_status", &resp(&["+CEREG: 0,9"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`9`") && e.contains("registration_status"),
        "{e}"
    );
    let e = d
        .value("iccid", &resp(&["+CME ERROR: 10"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("+CCID:"), "{e}");
}
