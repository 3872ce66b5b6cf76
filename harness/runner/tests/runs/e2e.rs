//! End to end: the `meterbench` binary runs real cases on the virtual rig (a
//! real meter process, a real PTY, real UDP) and we check the JUnit it wrote.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{
    case_files, junit, junit_of_run, meterbench, one_meter, parse, property, root, run, testcases,
    text, virtual_rig_with_keys, ShardedRun,
};

/// Cases that need a part rigs/virtual.yaml does not have on purpose, each
/// with the words its skip must give and the test that runs it where the
/// part is: a smartcard with bootstrap information would, by the Bootstrap
/// Sequence (Core §6.1.4), change how every default meter onboards.
const SKIPPED_BY_DESIGN: &[(&str, &str, &str)] = &[(
    "bs-smartcard",
    "device.smartcard",
    "smartcard_bootstrap.rs, on rigs/virtual-smartcard.yaml",
)];

/// The default run in one process: rigs/virtual.yaml is a pool of meters
/// that run the cases side by side (the sharded pipeline, `--shard` and
/// `junit merge`, is run by differing_rig.rs on its rig). Every case passes
/// but those [`SKIPPED_BY_DESIGN`], which are skipped saying why.
#[test]
fn default_run_passes_every_case_on_the_virtual_rig() {
    let t0 = Instant::now();
    let reports = tempfile::tempdir().unwrap();
    let o = run(&["run", "--report-dir", reports.path().to_str().unwrap()]);
    let output = text(&o);
    let junit = junit_of_run(reports.path(), &output);
    let run = ShardedRun {
        reports: vec![reports],
        output,
        success: o.status.success(),
        junit,
    };
    let wall = t0.elapsed();
    assert!(run.success, "default run failed:\n{}", run.output);
    let doc = parse(&run.junit);
    let tcs = testcases(&doc);
    let case_files = case_files(&root().join("testcases"));
    assert_eq!(tcs.len(), case_files, "one testcase per case file");
    for (name, verdict, message) in &tcs {
        match SKIPPED_BY_DESIGN.iter().find(|(id, ..)| name.ends_with(id)) {
            Some((_, why, runs_in)) => assert!(
                verdict.as_deref() == Some("skipped")
                    && message.as_deref().is_some_and(|m| m.contains(why)),
                "{name} is skipped naming {why} (it runs in {runs_in}): {verdict:?} {message:?}"
            ),
            None => assert_eq!(verdict, &None, "{name}: {verdict:?} {message:?}"),
        }
    }
    assert_eq!(property(&doc, "rig"), Some("virtual"));
    // The pool shared the cases out: more than one meter ran some.
    let meters: std::collections::BTreeSet<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|tc| {
            tc.descendants()
                .find(|p| p.has_tag_name("property") && p.attribute("name") == Some("device"))
                .and_then(|p| p.attribute("value"))
        })
        .collect();
    assert!(meters.len() > 1, "meters used: {meters:?}");
    assert!(property(&doc, "endpoint").is_some_and(|e| e.starts_with("virtual-meter")));
    assert!(
        property(&doc, "device_firmware_version").is_some(),
        "firmware version property"
    );
    assert!(
        property(&doc, "modem_revision").is_some(),
        "modem revision property"
    );
    let datagrams: u64 = property(&doc, "datagrams_in").unwrap().parse().unwrap();
    assert!(datagrams > 10);
    // Linux counts what it dropped for the server socket's full buffer; the
    // report carries the count (a number, whatever the run's luck).
    if cfg!(target_os = "linux") {
        let dropped = property(&doc, "datagrams_dropped_receive_buffer_full")
            .expect("the receive-buffer drop count");
        assert!(dropped.parse::<u64>().is_ok(), "{dropped}");
    }
    // Artifacts of a case: the AT transcript and the LwM2M message log.
    let reg = run.case_dir("virtual", "reg-initial");
    let messages = std::fs::read_to_string(reg.join("lwm2m-messages.log")).unwrap();
    assert!(
        messages.contains("/rd?"),
        "message log holds the Register:\n{messages}"
    );
    let transcript = std::fs::read_to_string(reg.join("at-transcript.txt")).unwrap();
    assert!(
        transcript.contains("AT+LWM2MBS=\"coaps://"),
        "transcript holds the bring-up:\n{transcript}"
    );
    assert!(
        transcript.contains("\"***\""),
        "the bootstrap key is masked:\n{transcript}"
    );
    // Every case's captures decode in tshark with no preference set: the
    // requests with their paths, the responses with their codes.
    let t_tshark = Instant::now();
    // Each tshark spends most of its time loading its dissectors: four
    // checks at a time keep the cores busy.
    let dirs = run.case_dirs("virtual");
    let with_coap: usize = std::thread::scope(|s| {
        let checks: Vec<_> = dirs
            .chunks(dirs.len().div_ceil(4).max(1))
            .map(|chunk| s.spawn(move || chunk.iter().filter(|d| case_capture_ok(d)).count()))
            .collect();
        checks.into_iter().map(|c| c.join().unwrap()).sum()
    });
    assert!(with_coap > case_files / 2, "{with_coap} cases with CoAP");
    let (page, captures) = run.report_sizes();
    eprintln!(
        "default run: index.html {page} B in all shards, captures {captures} B; tshark checked {with_coap} cases' captures in {:.1}s",
        t_tshark.elapsed().as_secs_f64()
    );
    eprintln!(
        "default run: {:.1}s wall, {} cases on {} meters, {datagrams} datagrams in",
        wall.as_secs_f64(),
        tcs.len(),
        meters.len()
    );
}

/// Checks one case folder's captures with tshark (see
/// [`crate::tshark_captures::check_case_captures`]); when the case spoke
/// CoAP, its requests have paths and its responses codes. Whether it did.
fn case_capture_ok(dir: &Path) -> bool {
    let captures = crate::tshark_captures::check_case_captures(dir);
    if captures.coap().next().is_none() {
        return false;
    }
    // A request names its path, but the composite operations (FETCH 0.05,
    // iPATCH 0.07) address the root, `/`, and carry their paths inside.
    assert!(
        captures
            .coap()
            .any(|f| !f.uri_path.is_empty() || matches!(f.code, Some(5) | Some(7))),
        "{}: CoAP without a request",
        dir.display()
    );
    assert!(
        captures.coap().any(|f| f.code.is_some_and(|c| c >= 64)),
        "{}: CoAP without a response code",
        dir.display()
    );
    true
}

/// A case that cannot pass: the failure must name the case file and the line of the failing step.
#[test]
fn a_failing_case_is_reported_with_its_file_and_line() {
    let reports = tempfile::tempdir().unwrap();
    let cases = tempfile::tempdir().unwrap();
    let file = cases.path().join("wrong-manufacturer.yaml");
    std::fs::write(
        &file,
        "id: wrong-manufacturer\ntitle: expects a manufacturer the device does not have\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - expect: { path: /3/0/0, equals: \"Nobody Inc\" }\n",
    )
    .unwrap();
    let out = run(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--cases",
        cases.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a failing case makes the run fail");
    let xml = junit(reports.path());
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs.len(), 1);
    let (_, verdict, message) = &tcs[0];
    assert_eq!(
        verdict.as_deref(),
        Some("failure"),
        "a device fault is a <failure>, not an <error>"
    );
    let message = message.as_deref().unwrap();
    assert!(
        message.contains("wrong-manufacturer.yaml:7"),
        "names file:line: {message}"
    );
    assert!(
        message.contains("Nobody Inc") && message.contains("meterbench"),
        "expected and seen: {message}"
    );
}

#[test]
fn a_malformed_case_file_exits_2_naming_line_and_column() {
    let cases = tempfile::tempdir().unwrap();
    std::fs::write(
        cases.path().join("bad.yaml"),
        "id: bad\ntitle: bad\nsteps:\n  - power: sideways\n",
    )
    .unwrap();
    let out = run(&[
        "run",
        "--cases",
        cases.path().to_str().unwrap(),
        "--report-dir",
        cases.path().join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:4:"), "names file:line:col: {err}");
    assert!(
        !cases.path().join("r").exists(),
        "nothing was run, no report folder made"
    );

    std::fs::write(
        cases.path().join("bad.yaml"),
        "id: bad\ntitle: bad\nsteps:\n  - read: { path: /3/0 }\n    frobnicate: 1\n",
    )
    .unwrap();
    let out = run(&["run", "--cases", cases.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml:"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_malformed_rig_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let rig = dir.path().join("rig.yaml");
    std::fs::write(
        &rig,
        "name: broken\ndevice:\n  endpoint: x\n  lifetime: 30s\npower: { kind: nuclear }\n",
    )
    .unwrap();
    let out = run(&["run", "--rig", rig.to_str().unwrap(), "--list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rig.yaml:5"),
        "{}",
        text(&out)
    );
}

#[test]
fn list_names_trials_rig_and_case() {
    let out = run(&["run", "--list"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("virtual::reg-initial: test"), "{stdout}");
    assert!(
        stdout.contains("virtual::dm-read-device-tlv: test"),
        "{stdout}"
    );
}

/// A rig with only a device identity: cases that need a modem are skipped with the reason.
#[test]
fn cases_needing_a_missing_part_are_skipped_with_the_reason() {
    let reports = tempfile::tempdir().unwrap();
    let out = run(&[
        "run",
        "--rig",
        "rigs/live-device.yaml",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "modem-identity",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let xml = junit(reports.path());
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs.len(), 1, "{xml}");
    assert_eq!(tcs[0].1.as_deref(), Some("skipped"));
    assert!(
        tcs[0].2.as_deref().unwrap_or_default().contains("no modem"),
        "{xml}"
    );
}

/// SIGTERM mid-case: valid JUnit with the running case interrupted, and the meter process gone.
#[test]
fn sigterm_mid_run_leaves_valid_junit_and_no_meter_process() {
    let reports = tempfile::tempdir().unwrap();
    let mut child = meterbench(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        // One case: the pool would start every case the filter names at once.
        "--exact",
        "virtual::reg-update",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Wait until the virtual meter runs (its PTY link appears), then stop the run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let meter = loop {
        if let Some(pid) = meter_pid(child.id()) {
            break pid;
        }
        assert!(Instant::now() < deadline, "virtual meter never started");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    let xml = junit(reports.path());
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs.len(), 1, "{xml}");
    assert_eq!(tcs[0].1.as_deref(), Some("error"), "{xml}");
    assert!(
        tcs[0]
            .2
            .as_deref()
            .unwrap_or_default()
            .contains("interrupted"),
        "{xml}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !Path::new(&format!("/proc/{meter}")).exists() || is_zombie(meter),
        "meter process {meter} still runs"
    );
}

fn meter_pid(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && cmd.contains("sim-meter")
        })
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// A device that stops registering: the case fails at its `within` with the
/// device's last lines quoted, and the run goes on with the next case.
#[test]
fn a_device_that_never_registers_fails_that_case_and_the_run_goes_on() {
    let reports = tempfile::tempdir().unwrap();
    let cases = tempfile::tempdir().unwrap();
    std::fs::write(
        cases.path().join("a-silent.yaml"),
        "id: a-silent\ntitle: client pointed at a dead server never registers\ntimeout: 60s\nneeds: [modem]\nsteps:\n  - await: registered\n    within: 30s\n  - at: { command: lwm2m_stop }\n  - await: deregistered\n    within: 10s\n  - at: 'AT+LWM2MSRV=\"coap://127.0.0.1:9\"'\n  - at: { command: lwm2m_start }\n  - await: registered\n    within: 3s\n",
    )
    .unwrap();
    std::fs::write(
        cases.path().join("b-recovers.yaml"),
        "id: b-recovers\ntitle: next case runs\ntimeout: 60s\nsteps:\n  - power: cycle\n  - await: registered\n    within: 30s\n",
    )
    .unwrap();
    let out = run(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--cases",
        cases.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let xml = junit(reports.path());
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs.len(), 2, "{xml}");
    let silent = tcs.iter().find(|t| t.0 == "a-silent").unwrap();
    assert_eq!(silent.1.as_deref(), Some("failure"), "{xml}");
    let detail = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("last lines from the device"),
        "quotes the device: {detail}"
    );
    let recovers = tcs.iter().find(|t| t.0 == "b-recovers").unwrap();
    assert_eq!(recovers.1, None, "the next case passed: {xml}");
}

/// Keys never reach a report: with credentials the test knows (a secrets
/// file), run bootstrap and security cases over DTLS, then search every file
/// under the report folder for the keys as raw bytes, hex and base64.
#[test]
fn no_key_material_appears_in_any_report_file() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap_key = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let server_key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let rig = virtual_rig_with_keys(dir.path(), "leak-test", bootstrap_key, server_key);
    let reports = dir.path().join("reports");
    let out = run(&[
        "run",
        "--rig",
        rig.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
        "bs-",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for key in [bootstrap_key, server_key] {
        let raw = hex_bytes(key);
        needles.push((format!("raw {key}"), raw.clone()));
        needles.push((format!("hex {key}"), key.as_bytes().to_vec()));
        needles.push((format!("HEX {key}"), key.to_uppercase().into_bytes()));
        needles.push((format!("base64 {key}"), base64(&raw).into_bytes()));
    }
    let mut files = Vec::new();
    all_files(&reports, &mut files);
    assert!(files.len() > 10, "the run wrote its artifacts: {files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("lwm2m-decrypted.pcap")),
        "the decrypted captures (Bootstrap-Writes in clear CoAP) are searched too: {files:?}"
    );
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for (what, needle) in &needles {
            assert!(
                !contains(&bytes, needle),
                "{} holds key material ({what})",
                file.display()
            );
        }
    }
    for (what, needle) in &needles {
        assert!(
            !contains(&out.stdout, needle) && !contains(&out.stderr, needle),
            "the run printed key material ({what})"
        );
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    // Unpadded: a padded encoding contains it.
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_symlink() {
            continue;
        }
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A case needing an object the device does not offer is skipped, not failed.
#[test]
fn a_case_needing_an_object_the_device_lacks_is_skipped() {
    let reports = tempfile::tempdir().unwrap();
    let cases = tempfile::tempdir().unwrap();
    std::fs::write(
        cases.path().join("vendor-object.yaml"),
        "id: vendor-object\ntitle: needs a vendor object\nneeds: [object/26241]\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - read: { path: /26241/0 }\n",
    )
    .unwrap();
    let out = run(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--cases",
        cases.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let xml = junit(reports.path());
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs[0].1.as_deref(), Some("skipped"), "{xml}");
    assert!(
        tcs[0]
            .2
            .as_deref()
            .unwrap_or_default()
            .contains("does not offer object 26241"),
        "{xml}"
    );
}

/// Runs the case files `cases` (name, text) from a temp folder, with extra
/// arguments; returns the JUnit and the run's output.
fn run_cases(cases: &[(&str, &str)], extra: &[&str]) -> (String, Output) {
    let reports = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in cases {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut args = vec![
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--cases",
        dir.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    (junit(reports.path()), out)
}

/// The text of the `<failure>` element (the detail) of the only testcase.
fn failure_detail(doc: &roxmltree::Document<'_>) -> String {
    doc.descendants()
        .find(|n| n.has_tag_name("failure"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string()
}

/// The object model decides what a 4.04 means: the virtual meter has no
/// /3/0/9 (Battery Level). Optional in the OMA definition, so a case reading
/// it is skipped, naming the resource; in a model that makes it Mandatory,
/// the same answer fails the case, naming the path and that it is mandatory.
#[test]
fn a_missing_mandatory_resource_fails_and_a_missing_optional_one_is_skipped() {
    let case = (
        "battery.yaml",
        "id: battery\ntitle: reads the battery level\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - read: { path: /3/0/9 }\n",
    );
    let (xml, out) = run_cases(&[case], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs[0].1.as_deref(), Some("skipped"), "{xml}");
    let reason = tcs[0].2.as_deref().unwrap_or_default();
    assert!(
        reason.contains("optional resource /3/0/9 (Battery Level)"),
        "{reason}"
    );

    // The same fixtures, but a Device object whose Battery Level is Mandatory.
    let fixtures = tempfile::tempdir().unwrap();
    for dir in ["modems", "firmware"] {
        std::os::unix::fs::symlink(root().join("fixtures").join(dir), fixtures.path().join(dir))
            .unwrap();
    }
    let objects = fixtures.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    for e in std::fs::read_dir(root().join("fixtures/objects")).unwrap() {
        let p = e.unwrap().path();
        let mut xml = std::fs::read_to_string(&p).unwrap();
        if p.file_name().unwrap() == "3-device.xml" {
            let battery = xml.find("<Name>Battery Level</Name>").unwrap();
            let at = battery + xml[battery..].find("<Mandatory>Optional").unwrap();
            xml.replace_range(at..at + "<Mandatory>Optional".len(), "<Mandatory>Mandatory");
        }
        std::fs::write(objects.join(p.file_name().unwrap()), xml).unwrap();
    }
    let (xml, out) = run_cases(&[case], &["--fixtures", fixtures.path().to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs[0].1.as_deref(), Some("failure"), "{xml}");
    let message = tcs[0].2.as_deref().unwrap_or_default();
    assert!(message.contains("battery.yaml:7"), "{message}");
    assert!(
        message.contains("/3/0/9 (Battery Level), a Mandatory resource"),
        "{message}"
    );
    assert!(message.contains("4.04"), "{message}");
}

/// A read waits no longer than its step's `within`: with the meter off,
/// the read of a 2 s step gives up after 2 s, not the default 30 s.
#[test]
fn a_read_waits_no_longer_than_its_within() {
    let case = (
        "read-within.yaml",
        "id: read-within\ntitle: a read of a device that is off\nneeds: [power]\ntimeout: 90s\nsteps:\n  - await: registered\n    within: 30s\n  - power: off\n  - read: { path: /3/0/0 }\n    within: 2s\n",
    );
    let (xml, out) = run_cases(&[case], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs[0].1.as_deref(), Some("failure"), "{xml}");
    let message = tcs[0].2.as_deref().unwrap_or_default();
    assert!(message.contains("read-within.yaml:9"), "{message}");
    assert!(message.contains("timed out after 2s"), "{message}");
    let time: f64 = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase"))
        .and_then(|n| n.attribute("time"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(time < 25.0, "the case took {time}s");
}

/// A failure inside `repeat` names the inner step's line, and its round.
#[test]
fn a_failure_inside_repeat_names_the_inner_steps_line() {
    let case = (
        "repeat-inner.yaml",
        "id: repeat-inner\ntitle: the second step of a repeat fails\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - repeat:\n      times: 2\n      steps:\n        - sleep: 10ms\n        - expect: { path: /3/0/0, equals: \"Nobody Inc\" }\n",
    );
    let (xml, out) = run_cases(&[case], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs[0].1.as_deref(), Some("failure"), "{xml}");
    let message = tcs[0].2.as_deref().unwrap_or_default();
    assert!(message.contains("repeat-inner.yaml:11:"), "{message}");
    assert!(!message.contains("repeat-inner.yaml:7:"), "{message}");
    assert!(
        message.contains("round 1/2 of the repeat at line 7"),
        "{message}"
    );
    assert!(message.contains("Nobody Inc"), "{message}");
}

/// A device that offers a PSK identity the server does not know never
/// registers; the failure says why: the refused handshake and the identity
/// it offered (never the key), and the device's last lines.
#[test]
fn a_registration_timeout_quotes_the_refused_handshake_and_its_identity() {
    let key = "5ec0e7a1b2c3d4e5f60718293a4b5c6d";
    let text_of_case = format!(
        "id: unknown-identity\ntitle: a device offering an unknown PSK identity\nneeds: [modem]\ntimeout: 90s\nsteps:\n  - await: registered\n    within: 30s\n  - at: {{ command: lwm2m_stop }}\n  - await: deregistered\n    within: 10s\n  - at: {{ command: lwm2m_server }}\n  - at: {{ command: server_psk, vars: {{ identity: \"intruder-7\", key: \"{key}\" }} }}\n  - at: {{ command: lwm2m_start }}\n  - await: registered\n    within: 8s\n"
    );
    let reports = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("unknown-identity.yaml"), &text_of_case).unwrap();
    let out = run(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--cases",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let xml = junit(reports.path());
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs[0].1.as_deref(), Some("failure"), "{xml}");
    let message = tcs[0].2.as_deref().unwrap_or_default();
    assert!(message.contains("unknown-identity.yaml:14"), "{message}");
    assert!(message.contains("to register within"), "{message}");
    assert!(
        message.contains("DTLS handshake") && message.contains("failed"),
        "the message quotes the refused handshake: {message}"
    );
    assert!(message.contains("PSK identity \"intruder-7\""), "{message}");
    assert!(
        message.to_lowercase().contains("unknown psk identity"),
        "{message}"
    );
    let detail = failure_detail(&doc);
    assert!(detail.contains("meanwhile on the servers"), "{detail}");
    assert!(detail.contains("last lines from the device"), "{detail}");
    // The key the case gave the modem is nowhere in the report.
    let mut files = Vec::new();
    all_files(reports.path(), &mut files);
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, key.as_bytes()),
            "{} holds the key",
            file.display()
        );
    }
    assert!(!contains(&out.stdout, key.as_bytes()) && !contains(&out.stderr, key.as_bytes()));
}

/// A secrets file that cannot be read is the bench's problem: every case on
/// that rig is an `<error>` that says so, never a skip (and no key shown).
#[test]
fn an_unreadable_secrets_file_is_a_bench_error_not_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-secrets.yaml");
    // One meter: a factory account belongs to one device.
    let rig_text = one_meter(&std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap());
    let rig_text = rig_text.replace(
        "{ from: fresh }",
        &format!("{{ from: file, path: {} }}", missing.display()),
    );
    let rig = dir.path().join("virtual-missing-secrets.yaml");
    std::fs::write(&rig, rig_text).unwrap();
    let reports = dir.path().join("reports");
    let out = run(&[
        "run",
        "--rig",
        rig.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
        "reg-initial",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let xml = junit(&reports);
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs.len(), 1, "{xml}");
    assert_eq!(tcs[0].1.as_deref(), Some("error"), "{xml}");
    let message = tcs[0].2.as_deref().unwrap_or_default();
    assert!(
        message.contains("secrets file") && message.contains("no-such-secrets.yaml"),
        "{message}"
    );
}

/// A lab's network emulator behind shell commands: the `network` steps run
/// the rig's commands, the case's end puts the network back to accept-all,
/// and a profile the rig gives no command for skips the case with the reason.
#[test]
fn a_command_network_runs_the_labs_commands_and_is_restored_after_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("emulator.log");
    let rig = dir.path().join("netlab.yaml");
    std::fs::write(
        &rig,
        format!(
            "name: netlab\ndevice: {{ endpoint: ep, lifetime: 1m }}\nnetwork:\n  kind: command\n  refuse: {{ second-profile: \"echo bar-00102 >> {0}\" }}\n  accept_all: \"echo clear >> {0}\"\n",
            record.display()
        ),
    )
    .unwrap();
    let (xml, out) = run_cases(
        &[
            (
                "bar.yaml",
                "id: bar\ntitle: bars the second profile\nneeds: [network-control]\ntimeout: 10s\nsteps:\n  - network: { refuse: second-profile }\n",
            ),
            (
                "bar-first.yaml",
                "id: bar-first\ntitle: bars the first profile\ntimeout: 10s\nsteps:\n  - network: { refuse: first-profile }\n",
            ),
        ],
        &["--rig", rig.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    let bar = tcs.iter().find(|t| t.0 == "bar").unwrap();
    assert_eq!(bar.1, None, "{xml}");
    let first = tcs.iter().find(|t| t.0 == "bar-first").unwrap();
    assert_eq!(first.1.as_deref(), Some("skipped"), "{xml}");
    assert!(
        first
            .2
            .as_deref()
            .unwrap_or_default()
            .contains("cannot refuse first-profile"),
        "{xml}"
    );
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        "bar-00102\nclear\n",
        "refused, then restored at the case's end"
    );
}

/// A case that names no `needs` but whose step uses a part the rig lacks is
/// skipped before its first step runs, never half-way through.
#[test]
fn a_part_a_step_implies_skips_the_case_before_its_first_step() {
    let case = (
        "implied.yaml",
        "id: implied-modem\ntitle: a step needs the modem the case does not name\nsteps:\n  - sleep: 1ms\n  - at: AT+CGMI\n",
    );
    let (xml, out) = run_cases(&[case], &["--rig", "rigs/live-device.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs.len(), 1, "{xml}");
    assert_eq!(tcs[0].1.as_deref(), Some("skipped"), "{xml}");
    let reason = tcs[0].2.as_deref().unwrap_or_default();
    assert!(reason.contains("live-device has no modem"), "{reason}");
    assert!(!xml.contains("sleep 1ms"), "no step ran: {xml}");
}

/// What one case remembers (a value a `debug` step saved) is gone for the
/// next case on the same rig: each case starts from a fresh context.
#[test]
fn a_value_one_case_saved_is_not_seen_by_the_next() {
    let save = (
        "a-save.yaml",
        "id: a-save\ntitle: saves the boot count\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - debug: { key: boot_count, save: boots }\n",
    );
    let use_it = (
        "b-use.yaml",
        "id: b-use\ntitle: compares with a value it never saved\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - debug: { key: boot_count, at_least: boots }\n",
    );
    let (xml, out) = run_cases(&[save, use_it], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let doc = parse(&xml);
    let tcs = testcases(&doc);
    assert_eq!(tcs.len(), 2, "{xml}");
    let case = |id: &str| tcs.iter().find(|t| t.0.ends_with(id)).unwrap().clone();
    assert_eq!(case("a-save").1, None, "the first case passes: {xml}");
    let (_, verdict, message) = case("b-use");
    assert_eq!(verdict.as_deref(), Some("failure"), "{xml}");
    let message = message.unwrap_or_default();
    assert!(message.contains("b-use.yaml:7"), "{message}");
    assert!(
        message.contains("a value saved as \"boots\" by an earlier debug step"),
        "{message}"
    );
}
