//! The AT transcript as a wrapper: a scripted modem's bootstrap bring-up,
//! recorded from the engine's events, reads byte for byte as the transcript
//! the serial driver used to keep itself (the stored expectation
//! `transcript_recorder/bootstrap_bring_up.txt`, times and PTY path aside),
//! with the bootstrap key masked in the command and in its echo. A driver
//! without an AT engine is recorded from its calls, and a bench built from
//! a rig file records its modem without being asked.
//! About 1 s in all (300 ms command timeouts, PTY polling).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rig::bench::{Bench, BenchParts};
use rig::scripted_modem::{ReplayScript, ScriptedModem};
use rig::wrap::{Fault, FaultAction, TranscriptRecorder};
use rig::{bring_up, AtResponse, Dialect, Direction, FinalResult, Modem, RigError, RigFile};
use rig::{SerialModem, Transcript};

const KEY: &str = "00112233445566778899aabbccddeeff";

/// A modem that keeps its echo on (so the keyed command comes back), answers
/// the virtual dialect's bootstrap bring-up, reports bootstrap as a URC, and
/// never answers `AT+LWM2MBOOT` (a timeout, noted).
const SCRIPT: &str = r#"
modem: scripted stand-in for the virtual meter's modem
echo: true
unknown: ["ERROR"]
exchanges:
  - { command: "AT", answer: ["OK"] }
  - { command: "ATE0", answer: ["OK"] }
  - { command: "AT+CFUN=1", answer: ["OK"] }
  - { command: "AT+LWM2MBS=*", answer: ["OK"] }
  - { command: "AT+LWM2MBSPSK=*", answer: ["OK"] }
  - { command: "AT+LWM2MBSPSK?", answer: ['+LWM2MBSPSK: "bs-meter-1","5f1c"', "OK"] }
  - { command: "AT+LWM2MEP=*", answer: ["OK"] }
  - { command: "AT+LWM2MLT=*", answer: ["OK"] }
  - { command: "AT+LWM2MSTART", answer: ["OK"], urcs: [{ after_ms: 50, line: "+LWM2M: bootstrapped" }] }
  - { command: "AT+LWM2MBOOT", answer: [] }
"#;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn scripted() -> ScriptedModem {
    let script = ReplayScript::parse(SCRIPT, Path::new("transcript_recorder.rs")).unwrap();
    ScriptedModem::start(script).unwrap()
}

fn dialect() -> Dialect {
    let mut d = Dialect::find("meterbench-virtual", &fixtures()).unwrap();
    d.boot_timeout = Duration::from_secs(5);
    d.command_timeout = Duration::from_secs(3);
    d
}

fn vars() -> BTreeMap<String, String> {
    [
        ("bootstrap_uri", "coaps://127.0.0.1:5784"),
        ("identity", "bs-meter-1"),
        ("key", KEY),
        ("endpoint", "meter-1"),
        ("lifetime", "30"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Drives the whole session: open, bootstrap bring-up, the bootstrap
/// URC, a query, a command that times out, close.
fn bring_up_session(modem: &mut dyn Modem) {
    modem.open().unwrap();
    let sequence = modem.dialect().bring_up_bootstrap.clone();
    bring_up::run(modem, &sequence, &vars()).unwrap();
    // Waited for before the next command, so that it lands in the same
    // place however late it comes.
    let urc = modem
        .wait_for_line("+LWM2M: bootstrapped", Duration::from_secs(3))
        .unwrap();
    assert_eq!(urc, "+LWM2M: bootstrapped");
    let r = modem
        .command("AT+LWM2MBSPSK?", Duration::from_secs(3))
        .unwrap();
    assert!(r.is_ok());
    let silent = modem.command("AT+LWM2MBOOT", Duration::from_millis(300));
    assert!(silent.is_err(), "{silent:?}");
    modem.close();
}

/// The transcript's text with each line's time checked and cut off, and
/// the PTY's path (new each run) shown as `{pty}`.
fn without_times(text: &str, pty: &Path) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let (at, rest) = line.split_once(' ').expect("time, then the entry");
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z') && at.len() == 24,
            "not a UTC millisecond time: {line}"
        );
        out.push_str(&rest.replace(&pty.display().to_string(), "{pty}"));
        out.push('\n');
    }
    out
}

#[test]
fn a_bootstrap_bring_up_transcript_reads_as_the_drivers_own_did_with_the_key_masked() {
    let sm = scripted();
    let mut modem = TranscriptRecorder::new(SerialModem::new(sm.path.clone(), 115_200, dialect()));
    let log = modem.log();
    bring_up_session(&mut modem);
    // The driver keeps nothing; the recorder, and its shared log, all.
    assert!(modem.inner().transcript().is_empty());
    let text = modem.transcript().to_text();
    assert_eq!(log.transcript().to_text(), text);
    assert!(
        !text.contains(KEY),
        "the key reached the transcript:\n{text}"
    );
    // The modem itself got the real key, in the command it was sent.
    let received = String::from_utf8_lossy(&sm.received()).into_owned();
    assert!(received.contains(KEY));
    assert_eq!(without_times(&text, &sm.path), expected());
}

/// What the serial driver's own transcript held for [`bring_up_session`],
/// written by that driver before the transcript became a wrapper.
fn expected() -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bench/transcript_recorder/bootstrap_bring_up.txt");
    std::fs::read_to_string(file).unwrap()
}

/// A driver with no line to tap (no AT engine): answers every command
/// with OK and one line, reports one URC.
struct CallOnlyModem(Dialect);

impl Modem for CallOnlyModem {
    fn open(&mut self) -> Result<(), RigError> {
        Ok(())
    }
    fn close(&mut self) {}
    fn command(&mut self, line: &str, _timeout: Duration) -> Result<AtResponse, RigError> {
        if line == "AT+SLOW" {
            return Err(RigError::Timeout {
                port: "call-only".into(),
                command: line.into(),
                waited: Duration::from_millis(1),
                last_lines: Vec::new(),
                partial: String::new(),
            });
        }
        Ok(AtResponse {
            command: line.into(),
            lines: vec![format!("+ECHO: {line}")],
            result: FinalResult::Ok,
        })
    }
    fn wait_for_line(&mut self, prefix: &str, _timeout: Duration) -> Result<String, RigError> {
        Ok(format!("{prefix} ready"))
    }
    fn take_urcs(&mut self) -> Vec<String> {
        vec!["+LWM2M: registered".into()]
    }
    fn dialect(&self) -> &Dialect {
        &self.0
    }
}

fn entries(t: &Transcript) -> Vec<(Direction, String)> {
    t.entries()
        .iter()
        .map(|e| (e.direction, e.text.clone()))
        .collect()
}

#[test]
fn a_driver_without_an_engine_is_recorded_from_its_calls() {
    let mut modem = TranscriptRecorder::new(CallOnlyModem(dialect()));
    // The default command_shown passes `line` on: the recorder shows `shown`.
    let r = modem
        .command_shown(
            "AT+KEY=\"s3cr3t\"",
            "AT+KEY=\"***\"",
            Duration::from_secs(1),
        )
        .unwrap();
    assert!(r.is_ok());
    assert!(modem.command("AT+SLOW", Duration::from_secs(1)).is_err());
    assert_eq!(modem.take_urcs(), vec!["+LWM2M: registered"]);
    let d = |d: Direction, t: &str| (d, t.to_string());
    assert_eq!(
        entries(&modem.transcript()),
        [
            d(Direction::Sent, "AT+KEY=\"***\""),
            d(Direction::Received, "+ECHO: AT+KEY=\"s3cr3t\""),
            d(Direction::Received, "OK"),
            d(Direction::Sent, "AT+SLOW"),
            d(Direction::Note, "timeout: no final result for `AT+SLOW`"),
            d(Direction::Urc, "+LWM2M: registered"),
        ]
    );
}

fn rig_file(text: &str) -> Result<RigFile, RigError> {
    RigFile::parse(
        &format!("name: t\ndevice: {{ endpoint: meter-1, lifetime: 1m }}\n{text}"),
        Path::new("rigs/t.yaml"),
    )
}

fn modem_rig(port: &Path, faults: &str) -> RigFile {
    rig_file(&format!(
        "modem: {{ port: {}, baud: 115200, dialect: meterbench-virtual }}\n{faults}",
        port.display()
    ))
    .unwrap()
}

#[test]
fn a_bench_records_its_modem_without_being_asked() {
    let sm = scripted();
    let dir = tempfile::tempdir().unwrap();
    let rig = modem_rig(&sm.path, "");
    let fixtures = fixtures();
    let bench = Bench::build(&rig, &BenchParts::new(&fixtures, dir.path())).unwrap();
    let mut modem = bench.modem.expect("a modem part");
    modem.open().unwrap();
    assert!(modem
        .command("AT+CFUN=1", Duration::from_secs(3))
        .unwrap()
        .is_ok());
    modem.close();
    let text = without_times(&modem.transcript().to_text(), &sm.path);
    assert!(
        text.starts_with("-- opened {pty} at 115200 baud\n>> AT\n"),
        "{text}"
    );
    assert!(
        text.ends_with(">> AT+CFUN=1\n<e AT+CFUN=1\n<< OK\n-- closed {pty}\n"),
        "{text}"
    );
}

#[test]
fn a_rig_file_fault_fails_the_chosen_command_naming_the_injector() {
    let sm = scripted();
    let dir = tempfile::tempdir().unwrap();
    let rig = modem_rig(
        &sm.path,
        "faults:\n  on_real_parts: true\n  modem: [{ call: 3, action: fail }]\n",
    );
    let fixtures = fixtures();
    let bench = Bench::build(&rig, &BenchParts::new(&fixtures, dir.path())).unwrap();
    let mut modem = bench.modem.unwrap();
    modem.open().unwrap();
    let sequence = modem.dialect().bring_up_bootstrap.clone();
    let e = bring_up::run(&mut *modem, &sequence, &vars()).unwrap_err();
    // Call 3 of the bring-up (the probes of `open` are the driver's own):
    // bootstrap_server.
    let text = e.to_string();
    assert!(text.contains("fault injector"), "{text}");
    assert!(
        text.contains(r#"call 3 (`AT+LWM2MBS="coaps://127.0.0.1:5784"`) failed: injected"#),
        "{text}"
    );
    // An injected failure never crossed the line: the transcript says so.
    let t = modem.transcript().to_text();
    assert!(t.contains(">> AT+CFUN=1\n"), "{t}");
    assert!(!t.contains("AT+LWM2MBS="), "{t}");
}

#[test]
fn rig_file_faults_on_real_parts_are_refused_unless_marked_stand_ins() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let rig = modem_rig(
        Path::new("/dev/null"),
        "faults:\n  modem: [{ call: 1, action: drop_response }]\n",
    );
    let e = Bench::build(&rig, &BenchParts::new(&fixtures, dir.path()))
        .err()
        .expect("refused");
    assert_eq!(e.part(), rig::bench::Part::Modem);
    let text = e.to_string();
    assert!(text.starts_with("rigs/t.yaml: faults: "), "{text}");
    assert!(text.contains("on_real_parts: true"), "{text}");
}

#[test]
fn rig_file_faults_are_checked_strictly_with_their_place() {
    let cases = [
        (
            "faults:\n  power: [{ call: 1, action: explode }]\n",
            "explode",
        ),
        ("faults:\n  power: [{ call: 0, action: fail }]\n", "zero"),
        ("faults:\n  powr: []\n", "powr"),
        (
            "faults:\n  modem: [{ call: 2, action: { delay: soon } }]\n",
            "soon",
        ),
    ];
    for (text, named) in cases {
        match rig_file(text) {
            Err(e @ RigError::File { .. }) => {
                let shown = e.to_string();
                let RigError::File { line, column, .. } = e else {
                    unreachable!()
                };
                // The `faults:` block starts on line 3.
                assert!(line >= 3, "{text}: {shown}");
                assert!(
                    shown.starts_with(&format!("rigs/t.yaml:{line}:{column}: ")),
                    "{text}: {shown}"
                );
                assert!(shown.contains(named), "{text}: {shown}");
            }
            other => panic!("{text}: expected a rig file error, got {other:?}"),
        }
    }
    let ok = rig_file(
        "faults:\n  modem: [{ call: 2, action: { delay: 20ms } }, { call: 4, action: drop_response }]\n",
    )
    .unwrap();
    let plan = ok.faults.unwrap().plan();
    assert_eq!(
        plan.modem,
        [
            Fault::new(2, FaultAction::Delay(Duration::from_millis(20))),
            Fault::new(4, FaultAction::DropResponse),
        ]
    );
    assert!(plan.power.is_empty());
}
