//! Cases over an emulated link (rigs/virtual-nb-iot.yaml, virtual-lte-m.yaml
//! and variants of the virtual rig with `link:`): a registration, an
//! observation and a firmware pull pass over NB-IoT, and the JUnit holds
//! the transfer's figures; the CoAP retransmission timers of both roles
//! follow RFC 7252 §4.2 on the wire, read from the relay's own record
//! (`link.log`); a link that loses everything fails its case saying so,
//! within its timeout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{junit_of_run, meterbench, outcomes, parse, root, wait_or_kill};

/// RFC 7252 §4.8 ACK_TIMEOUT and ACK_RANDOM_FACTOR.
const ACK_TIMEOUT: f64 = 2.0;
const ACK_RANDOM_FACTOR: f64 = 1.5;

/// Slack for the sender's and the relay's scheduling on a busy machine:
/// every time here is a relay's receive instant, not the sender's clock.
const TOLERANCE: f64 = 0.25;

/// Runs `meterbench run` with `args`, killed if it outlives `limit`.
fn run_within(args: &[&str], limit: Duration) -> (String, bool) {
    let mut child = meterbench(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("meterbench starts");
    // Drain the pipes on threads so a chatty run cannot block on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let status = wait_or_kill(&mut child, limit);
    let output = format!("{}\n{}", o.join().unwrap(), e.join().unwrap());
    assert!(status.is_some(), "meterbench ran past {limit:?}:\n{output}");
    (output, status.unwrap().success())
}

/// Runs `case` alone on rigs/virtual-lte-m.yaml and checks it passed;
/// gives the report folder (kept while the caller holds it) and the JUnit.
fn passes_over_lte_m(case: &str) -> (tempfile::TempDir, String) {
    let reports = tempfile::tempdir().unwrap();
    let (output, ok) = run_within(
        &[
            "run",
            "--rig",
            "rigs/virtual-lte-m.yaml",
            "--report-dir",
            reports.path().to_str().unwrap(),
            case,
        ],
        Duration::from_secs(300),
    );
    assert!(ok, "{output}");
    let xml = junit_of_run(reports.path(), &output);
    let cases = outcomes(&xml);
    assert_eq!(cases.len(), 1, "{xml}");
    assert_eq!(cases[0].verdict, None, "{}", text_of(&cases[0]));
    (reports, xml)
}

/// The `link.log` of case `case` in the run written under `reports`.
fn link_log(reports: &Path, case: &str) -> String {
    let found = walk(&reports.join("latest"))
        .into_iter()
        .find(|p| p.ends_with(format!("{case}/link.log")))
        .unwrap_or_else(|| panic!("no link.log for {case} under {}", reports.display()));
    std::fs::read_to_string(found).unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The virtual rig as a NoSec device (so that CoAP headers are readable on
/// the wire) behind `link`.
fn nosec_rig_with_link(dir: &Path, name: &str, link: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
    let text = text
        .replace("name: virtual\n", &format!("name: {name}\n"))
        .replace("security: psk", "security: nosec")
        .replace("after_run:", &format!("link: {link}\nafter_run:"));
    assert!(text.contains("security: nosec") && text.contains("link: "));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn registration_observe_and_firmware_pass_over_nb_iot_and_report_the_transfer() {
    // One run per case, side by side (each its own virtual meter), so the
    // test takes as long as the firmware case alone. fw-pull-coap-1024:
    // 64 blocks of 1 KiB, about 75 s over NB-IoT's figures
    // (rigs/virtual-nb-iot.yaml); at 64-byte blocks it would take some 15
    // minutes, as it would in the field.
    let runs: Vec<(tempfile::TempDir, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = ["reg-initial", "ir-observe-rssi", "fw-pull-coap-1024"]
            .into_iter()
            .map(|case| {
                s.spawn(move || {
                    let reports = tempfile::tempdir().unwrap();
                    let (output, ok) = run_within(
                        &[
                            "run",
                            "--rig",
                            "rigs/virtual-nb-iot.yaml",
                            "--report-dir",
                            reports.path().to_str().unwrap(),
                            "--seed",
                            "13",
                            case,
                        ],
                        Duration::from_secs(400),
                    );
                    assert!(ok, "{case} over nb-iot:\n{output}");
                    let xml = junit_of_run(reports.path(), &output);
                    (reports, case.to_string(), xml)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (_, case, xml) in &runs {
        let cases = outcomes(xml);
        assert_eq!(cases.len(), 1, "{case}: {xml}");
        assert_eq!(cases[0].verdict, None, "{}", text_of(&cases[0]));
    }
    let (reports, _, xml) = &runs[2];
    // The firmware case's transfer figures: time and retransmissions.
    let doc = parse(xml);
    let fw = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name")
                    .is_some_and(|a| a.contains("fw-pull-coap-1024"))
        })
        .expect("the firmware testcase");
    let props: BTreeMap<&str, &str> = fw
        .descendants()
        .filter(|n| n.has_tag_name("property"))
        .filter_map(|n| Some((n.attribute("name")?, n.attribute("value")?)))
        .collect();
    assert_eq!(props.get("firmware.complete"), Some(&"true"), "{props:?}");
    assert_eq!(props.get("firmware.blocks"), Some(&"64"), "{props:?}");
    assert!(props.contains_key("firmware.retransmissions"), "{props:?}");
    let elapsed: u64 = props["firmware.elapsed_ms"].parse().unwrap();
    // 64 round trips of at least 2 x (420 - 100) ms, plus each block's
    // 0.3 s at 26 kbit/s: the link's figures were applied, whatever the
    // machine's speed (a lower bound on simulated time, not a speed test).
    assert!(
        elapsed >= 64 * (640 + 300),
        "{elapsed} ms: the link's delay and rate did not apply"
    );
    eprintln!(
        "firmware over nb-iot: {elapsed} ms, {} retransmissions",
        props["firmware.retransmissions"]
    );
    // The link's record: the figures and seed, and the file server's relay.
    let log = link_log(reports.path(), "fw-pull-coap-1024");
    assert!(log.starts_with("# link nb-iot: up delay 420ms"), "{log}");
    assert!(log.contains("# seed 13 (replay with --seed 13)"), "{log}");
    assert!(log.contains(" firmware-coap down "), "{log}");
}

#[test]
fn firmware_passes_over_lte_m_and_reports_its_time() {
    let (reports, xml) = passes_over_lte_m("fw-pull-coap-1024");
    let doc = parse(&xml);
    let elapsed: u64 = doc
        .descendants()
        .filter(|n| n.has_tag_name("property"))
        .find(|n| n.attribute("name") == Some("firmware.elapsed_ms"))
        .and_then(|n| n.attribute("value")?.parse().ok())
        .expect("firmware.elapsed_ms");
    // 64 round trips of at least 2 x (15 - 5) ms plus 1 KiB at 300 kbit/s
    // (27 ms) each: the link applied (a lower bound on simulated time).
    assert!(elapsed >= 64 * (20 + 27), "{elapsed} ms");
    eprintln!("firmware over lte-m: {elapsed} ms");
    assert!(link_log(reports.path(), "fw-pull-coap-1024").starts_with("# link lte-m:"));
}

/// Transmissions of each confirmable message, by who sent it: the times
/// the relay received each copy (RFC 7252 §4.2: a retransmission is the
/// same message, so the same bytes).
fn con_series(log: &str) -> Vec<(String, Vec<f64>)> {
    let mut series: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for line in log.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let at: f64 = f[0].trim_end_matches('s').parse().unwrap();
        let head = f[5].trim_start_matches("head=");
        // RFC 7252 §3: Ver (2 bits), Type (2 bits; 0 = CON), TKL.
        let Ok(first) = u8::from_str_radix(head.get(..2).unwrap_or("ff"), 16) else {
            continue;
        };
        if (first >> 6) == 1 && (first >> 4) & 3 == 0 {
            series
                .entry((f[1].to_string(), f[2].to_string(), f[6].to_string()))
                .or_default()
                .push(at);
        }
    }
    series
        .into_iter()
        .filter(|(_, t)| t.len() > 1)
        .map(|((relay, dir, _), t)| (format!("{relay} {dir}"), t))
        .collect()
}

#[test]
fn coap_retransmissions_of_both_roles_follow_rfc_7252_on_a_lossy_link() {
    let reports = tempfile::tempdir().unwrap();
    // `lossy` with its loss raised to 40 %, so that with this seed some
    // confirmable message is lost more than once in each direction and
    // the doubling shows (at 10 % a double loss is one exchange in a hundred).
    let rig = nosec_rig_with_link(
        reports.path(),
        "virtual-lossy",
        "{ profile: lossy, loss: 40% }",
    );
    let (output, _) = run_within(
        &[
            "run",
            "--rig",
            rig.to_str().unwrap(),
            "--report-dir",
            reports.path().to_str().unwrap(),
            "--seed",
            "7",
            "reg-initial",
        ],
        Duration::from_secs(200),
    );
    // The case may pass or fail (40 % loss can exhaust MAX_RETRANSMIT):
    // what counts is what went over the wire.
    let log = link_log(reports.path(), "reg-initial");
    let series = con_series(&log);
    assert!(
        !series.is_empty(),
        "no confirmable message was retransmitted:\n{log}\n{output}"
    );
    let mut doubled = 0;
    for (who, times) in &series {
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        // RFC 7252 §4.2: the initial timeout lies in [ACK_TIMEOUT,
        // ACK_TIMEOUT * ACK_RANDOM_FACTOR], and doubles at each retransmission.
        let first = gaps[0];
        assert!(
            (ACK_TIMEOUT - TOLERANCE..=ACK_TIMEOUT * ACK_RANDOM_FACTOR + TOLERANCE)
                .contains(&first),
            "{who}: first retransmission after {first:.3}s, not within [2, 3] s: {gaps:?}\n{log}"
        );
        for (n, gap) in gaps.iter().enumerate() {
            let want = first * f64::from(1u32 << n);
            assert!(
                (gap - want).abs() <= TOLERANCE,
                "{who}: gap {n} is {gap:.3}s, not 2^{n} x {first:.3}s: {gaps:?}\n{log}"
            );
        }
        doubled += usize::from(gaps.len() >= 2);
    }
    assert!(doubled > 0, "no message retransmitted twice: {series:?}");
    // Both roles: the device's confirmables go up, the servers' come down.
    for dir in [" up", " down"] {
        assert!(
            series.iter().any(|(who, _)| who.ends_with(dir)),
            "no retransmission{dir}: {series:?}\n{log}"
        );
    }
}

#[test]
fn a_link_that_loses_everything_fails_the_case_saying_so() {
    let reports = tempfile::tempdir().unwrap();
    let rig = nosec_rig_with_link(
        reports.path(),
        "virtual-dead-link",
        "{ profile: lte-m, loss: 100% }",
    );
    let cases = reports.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    std::fs::write(
        cases.join("register.yaml"),
        "id: link-register\n\
         title: The device registers after power-on\n\
         ets_none: a harness test of the link emulator, not a conformance case\n\
         needs: [power]\n\
         timeout: 30s\n\
         steps:\n  - power: cycle\n  - await: registered\n    within: 4s\n",
    )
    .unwrap();
    let (output, ok) = run_within(
        &[
            "run",
            "--rig",
            rig.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
            "--report-dir",
            reports.path().to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(!ok, "{output}");
    let xml = junit_of_run(reports.path(), &output);
    let cases = outcomes(&xml);
    assert_eq!(cases.len(), 1, "{output}");
    assert_eq!(
        cases[0].verdict.as_deref(),
        Some("failure"),
        "{}",
        text_of(&cases[0])
    );
    assert!(
        cases[0]
            .message
            .contains("loss 100 % on the link `lte-m (customised)` (both directions)"),
        "{}",
        cases[0].message
    );
}

fn text_of(o: &crate::support::Outcome) -> String {
    format!("{}: {:?} {}", o.name, o.verdict, o.message)
}

/// An HTTP Package URI crosses the link too: the device is given the TCP
/// relay's address, the image comes through it (the relay's line in
/// `link.log` counts the connection and the bytes), and the case passes.
#[test]
fn an_http_firmware_pull_crosses_the_link() {
    let (reports, _) = passes_over_lte_m("fw-pull-http");
    let log = link_log(reports.path(), "fw-pull-http");
    let relay = log
        .lines()
        .find(|l| l.starts_with("# tcp relay firmware-http "))
        .unwrap_or_else(|| panic!("no TCP relay in link.log:\n{log}"));
    let down: u64 = relay
        .split("down ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {relay:?}"));
    // The upgrade image is 64 KiB; HTTP headers come on top.
    assert!(down >= 64 * 1024, "{relay}");
    assert!(!relay.contains(" 0 connections"), "{relay}");
}
