//! `SerialModem` and the AT engine against a real PTY pair with a scripted
//! modem on the master side.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::scripted_modem::{framed, ScriptedModem};
use rig::wrap::TranscriptRecorder;
use rig::{Dialect, Direction, FinalResult, Modem, RigError, SerialModem};

fn dialect() -> Dialect {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut d = Dialect::find("meterbench-virtual", &fixtures).unwrap();
    d.boot_timeout = Duration::from_secs(3);
    d
}

const T: Duration = Duration::from_secs(2);

/// A modem with echo off that knows a few commands.
fn plain(line: &str) -> Vec<u8> {
    match line {
        "AT" | "ATE0" => framed(&["OK"]),
        "AT+CGMI" => framed(&["meterbench", "OK"]),
        "AT+CGMM" => framed(&["virtual-meter", "rev 1", "OK"]),
        "AT+CCID" => framed(&["+CME ERROR: 10"]),
        "AT+BAD" => framed(&["ERROR"]),
        "AT+CSQ" => framed(&["+CEREG: 5", "+CSQ: 20,99", "+LWM2M: registered", "OK"]),
        "AT+CEREG?" => framed(&["+CEREG: 0,1", "OK"]),
        "AT+SLOW" => b"\r\nWORKING\r\npartial".to_vec(),
        "AT+GARBAGE" => {
            let mut v = b"\xff\xfe\x00\x80junk\r\n".to_vec();
            v.extend(framed(&["OK"]));
            v
        }
        _ => framed(&["ERROR"]),
    }
}

/// The driver with its line recorded, as a bench builds it.
fn open(script: fn(&str) -> Vec<u8>) -> (ScriptedModem, TranscriptRecorder<SerialModem>) {
    let sm = ScriptedModem::start(Box::new(script));
    let mut modem = TranscriptRecorder::new(SerialModem::new(sm.path.clone(), 115_200, dialect()));
    modem.open().expect("open");
    (sm, modem)
}

#[test]
fn command_returns_info_lines_and_ok() {
    let (sm, mut modem) = open(plain);
    let r = modem.command("AT+CGMM", T).unwrap();
    assert_eq!(r.result, FinalResult::Ok);
    assert_eq!(r.lines, vec!["virtual-meter", "rev 1"]);
    let r = modem.command("AT+CGMI", T).unwrap();
    assert!(r.is_ok());
    assert_eq!(r.lines, vec!["meterbench"]);
    modem.close();
    // Each line went out `\r`-terminated, exactly once.
    assert_eq!(sm.finish(), vec!["AT", "AT+CGMM", "AT+CGMI"]);
}

#[test]
fn echo_is_stripped() {
    fn echoing(line: &str) -> Vec<u8> {
        // Echo on (ATE1, the V.250 default): the line comes back first.
        let mut v = format!("{line}\r").into_bytes();
        v.extend(plain(line));
        v
    }
    let (_sm, mut modem) = open(echoing);
    let r = modem.command("AT+CGMI", T).unwrap();
    assert_eq!(r.lines, vec!["meterbench"]);
    let t = modem.transcript();
    assert!(t
        .entries()
        .iter()
        .any(|e| e.direction == Direction::Echo && e.text == "AT+CGMI"));
}

#[test]
fn cme_error_and_error_are_results_not_errors() {
    let (_sm, mut modem) = open(plain);
    let r = modem.command("AT+CCID", T).unwrap();
    assert_eq!(r.result, FinalResult::CmeError(10));
    assert!(r.lines.is_empty());
    let r = modem.command("AT+BAD", T).unwrap();
    assert_eq!(r.result, FinalResult::Error);
    let err = r.expect_ok("pty").unwrap_err();
    assert!(
        err.to_string().contains("`AT+BAD` ended with ERROR"),
        "{err}"
    );
}

#[test]
fn urcs_during_a_command_are_kept_apart() {
    let (sm, mut modem) = open(plain);
    let r = modem.command("AT+CSQ", T).unwrap();
    assert_eq!(r.lines, vec!["+CSQ: 20,99"]);
    assert_eq!(r.value("+CSQ:"), Some("20,99"));
    assert_eq!(modem.take_urcs(), vec!["+CEREG: 5", "+LWM2M: registered"]);
    assert!(modem.take_urcs().is_empty());

    // The command's own answer shares the URC prefix: it is a response.
    let r = modem.command("AT+CEREG?", T).unwrap();
    assert_eq!(r.lines, vec!["+CEREG: 0,1"]);
    assert!(modem.take_urcs().is_empty());

    // A line arriving while no command runs is unsolicited, whatever it says.
    sm.inject(&framed(&["+CFUN: 1", "RING"]));
    let line = modem.wait_for_line("RING", T).unwrap();
    assert_eq!(line, "RING");
    assert_eq!(modem.take_urcs(), vec!["+CFUN: 1"]);
}

#[test]
fn timeout_names_the_command_and_last_bytes() {
    let (_sm, mut modem) = open(plain);
    let started = Instant::now();
    let err = modem
        .command("AT+SLOW", Duration::from_millis(300))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let RigError::Timeout {
        command,
        last_lines,
        partial,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(command, "AT+SLOW");
    assert_eq!(last_lines.last().map(String::as_str), Some("WORKING"));
    assert_eq!(partial, "partial");
    let text = err.to_string();
    assert!(
        text.contains("`AT+SLOW`") && text.contains("\"WORKING\"") && text.contains("partial"),
        "{text}"
    );
    assert!(
        text.contains(&modem.inner().path().display().to_string()),
        "{text}"
    );
}

#[test]
fn garbage_bytes_are_survived() {
    let (_sm, mut modem) = open(plain);
    let r = modem.command("AT+GARBAGE", T).unwrap();
    assert!(r.is_ok());
    assert_eq!(r.lines.len(), 1);
    assert!(r.lines[0].ends_with("junk"), "{:?}", r.lines);
    // The next command is unaffected.
    assert_eq!(
        modem.command("AT+CGMI", T).unwrap().lines,
        vec!["meterbench"]
    );
    let text = modem.transcript().to_text();
    assert!(
        text.contains("non-UTF-8 bytes received: \\xff\\xfe\\x00\\x80junk"),
        "{text}"
    );
}

#[test]
fn transcript_records_both_directions_with_times() {
    let (_sm, mut modem) = open(plain);
    modem.command("AT+CGMI", T).unwrap();
    let t = modem.transcript();
    let sent = t
        .entries()
        .iter()
        .position(|e| e.direction == Direction::Sent && e.text == "AT+CGMI")
        .unwrap();
    let e = &t.entries()[sent + 1..];
    assert_eq!(
        (e[0].direction, e[0].text.as_str()),
        (Direction::Received, "meterbench")
    );
    assert_eq!(
        (e[1].direction, e[1].text.as_str()),
        (Direction::Received, "OK")
    );
    assert!(e[0].at >= t.entries()[sent].at);
    let text = t.to_text();
    assert!(text.contains(" >> AT+CGMI\n"), "{text}");
    assert!(text.contains(" << meterbench\n"), "{text}");
    assert!(text.contains(" -- opened "), "{text}");
    // Every line starts with an RFC 3339 UTC timestamp.
    for line in text.lines() {
        assert!(line.as_bytes()[4] == b'-' && line.contains("Z "), "{line}");
    }
    // Closing keeps the transcript.
    modem.close();
    assert!(modem.transcript().to_text().contains(" >> AT+CGMI\n"));
}

#[test]
fn open_accepts_the_boot_urc() {
    fn silent_until_booted(line: &str) -> Vec<u8> {
        match line {
            "AT" => Vec::new(), // never answers AT
            other => plain(other),
        }
    }
    let sm = ScriptedModem::start(Box::new(silent_until_booted));
    let mut modem = SerialModem::new(sm.path.clone(), 115_200, dialect());
    let inject_after = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            sm.inject(&framed(&["+SYSSTART"]));
        });
        modem.open()
    });
    inject_after.unwrap();
    assert_eq!(modem.wait_for_line("+SYSSTART", T).unwrap(), "+SYSSTART");
}

#[test]
fn open_waits_for_the_port_to_appear() {
    let sm = ScriptedModem::start(Box::new(plain));
    let dir = tempfile::tempdir().unwrap();
    let link: PathBuf = dir.path().join("modem");
    let mut modem = SerialModem::new(link.clone(), 115_200, dialect());
    let target = sm.path.clone();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(400));
            std::os::unix::fs::symlink(&target, &link).unwrap();
        });
        modem.open()
    });
    result.unwrap();
    assert!(modem.command("AT+CGMI", T).unwrap().is_ok());
}

#[test]
fn silent_modem_is_not_ready_in_time() {
    let sm = ScriptedModem::start(Box::new(|_| Vec::new()));
    let mut d = dialect();
    d.boot_timeout = Duration::from_secs(1);
    let mut modem = SerialModem::new(sm.path.clone(), 115_200, d);
    let err = modem.open().unwrap_err();
    assert!(matches!(err, RigError::NotReady { .. }), "{err:?}");
    assert!(err.to_string().contains("+SYSSTART"), "{err}");
}

#[test]
fn missing_port_fails_open_with_the_path() {
    let mut d = dialect();
    d.boot_timeout = Duration::from_millis(300);
    let mut modem = SerialModem::new("/dev/does-not-exist-meterbench", 115_200, d);
    let err = modem.open().unwrap_err();
    assert!(matches!(err, RigError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/dev/does-not-exist-meterbench"),
        "{err}"
    );
}

#[test]
fn command_on_a_closed_modem_is_an_error() {
    let (_sm, mut modem) = open(plain);
    modem.close();
    let err = modem.command("AT", T).unwrap_err();
    assert!(matches!(err, RigError::PortClosed { .. }), "{err:?}");
    // And it reopens.
    modem.open().unwrap();
    assert!(modem.command("AT+CGMI", T).unwrap().is_ok());
}

#[test]
fn secret_values_stay_out_of_transcript_and_errors() {
    fn echoing_psk(line: &str) -> Vec<u8> {
        let mut v = format!("{line}\r").into_bytes();
        if line.starts_with("AT+PSK=") {
            v.extend(b"\r\nstoring".to_vec()); // then hangs: no final result
        } else {
            v.extend(plain(line));
        }
        v
    }
    let sm = ScriptedModem::start(Box::new(echoing_psk));
    let mut d = dialect();
    d.commands
        .insert("psk".into(), r#"AT+PSK="{id}","{psk}""#.into());
    d.secret_vars.push("psk".into());
    let vars = [("id", "ep-1"), ("psk", "00112233445566778899aabbccddeeff")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (line, shown) = d.render_shown("psk", &vars).unwrap();
    assert_eq!(line, r#"AT+PSK="ep-1","00112233445566778899aabbccddeeff""#);
    assert_eq!(shown, r#"AT+PSK="ep-1","***""#);

    let mut modem = TranscriptRecorder::new(SerialModem::new(sm.path.clone(), 115_200, d));
    modem.open().unwrap();
    let err = modem
        .command_shown(&line, &shown, Duration::from_millis(300))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(r#"AT+PSK="ep-1","***""#), "{text}");
    assert!(!text.contains("00112233"), "{text}");
    let transcript = modem.transcript().to_text();
    assert!(!transcript.contains("00112233"), "{transcript}");
    assert!(
        transcript.contains(" <e AT+PSK=\"ep-1\",\"***\"\n"),
        "{transcript}"
    );
    modem.close();
    // The modem did get the real key.
    assert!(sm.finish().contains(&line));
}
