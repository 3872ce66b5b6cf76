//! `meterbench bench fleet` end to end: 200 meters register, are observed,
//! notify, update and de-register against the server child, and every
//! figure it prints parses. Figures are printed, not judged: no timing is
//! asserted (the machine is shared), only that everything completed.

use std::time::Duration;

use crate::support::{meterbench, text, wait_or_kill};

/// Runs `meterbench bench fleet ARGS` to its end (bounded: six phases of
/// at most their `--timeout` each, and the children's start) and gives its
/// output, having checked it succeeded.
fn fleet(args: &[&str]) -> String {
    let mut child = meterbench(&[&["bench", "fleet"], args].concat())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("meterbench starts");
    let status = wait_or_kill(&mut child, Duration::from_secs(240));
    let output = child.wait_with_output().unwrap();
    let out = text(&output);
    assert!(status.is_some_and(|s| s.success()), "{out}");
    out
}

/// The `done/total` after `label` on the line that starts with it.
fn counts(out: &str, label: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"));
    let rest = line[label.len()..].trim_start();
    let pair = rest.split_whitespace().next().unwrap();
    let (done, total) = pair
        .split_once('/')
        .unwrap_or_else(|| panic!("{line:?}: no done/total"));
    (done.parse().unwrap(), total.parse().unwrap())
}

/// The number just before the first ` unit` on the line starting with `label`.
fn figure(out: &str, label: &str, unit: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"));
    let at = line
        .find(&format!(" {unit}"))
        .unwrap_or_else(|| panic!("{line:?}: no {unit:?}"));
    let number = line[..at]
        .split_whitespace()
        .next_back()
        .unwrap_or_default();
    number
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {number:?} before {unit:?}: {e}"))
}

#[test]
fn a_fleet_of_200_registers_notifies_and_deregisters_and_prints_its_figures() {
    let out = fleet(&[
        "--meters",
        "200",
        "--notifications",
        "2",
        "--timeout",
        "30s",
    ]);

    assert_eq!(counts(&out, "bare UDP echo:"), (200, 200), "{out}");
    assert_eq!(counts(&out, "registered:"), (200, 200), "{out}");
    assert_eq!(counts(&out, "observed:"), (200, 200), "{out}");
    assert_eq!(counts(&out, "notifications:"), (400, 400), "{out}");
    assert_eq!(counts(&out, "updated:"), (200, 200), "{out}");
    assert_eq!(counts(&out, "deregistered:"), (200, 200), "{out}");

    let echo = figure(&out, "bare UDP echo:", "/s");
    let registrations = figure(&out, "registered:", "/s");
    let ratio = figure(&out, "registered:", "x");
    assert!(echo > 0.0 && registrations > 0.0, "{out}");
    assert!(ratio > 0.0, "{out}");
    let p50 = figure(&out, "registration latency:", "ms");
    assert!(p50 > 0.0, "{out}");
    assert!(figure(&out, "observed:", "/s") > 0.0, "{out}");
    assert!(figure(&out, "notifications:", "/s") > 0.0, "{out}");
    // The memory is the child's, read from /proc, and says so.
    assert!(out.contains("memory is its VmRSS from /proc/"), "{out}");
    let per_device = figure(&out, "server memory:", "KiB per registered device");
    assert!(per_device.is_finite() && per_device >= 0.0, "{out}");
    let observed = figure(
        &out,
        "server memory, observed too:",
        "KiB per registered and observed device",
    );
    assert!(observed.is_finite() && observed >= 0.0, "{out}");
}

#[test]
fn a_fleet_that_cannot_reach_its_server_objects_fails_naming_why() {
    let out = crate::support::run(&[
        "bench",
        "fleet",
        "--meters",
        "2",
        "--objects",
        "no/such/objects",
    ]);
    assert!(!out.status.success());
    let text = text(&out);
    assert!(text.contains("no/such/objects"), "{text}");
    assert!(text.contains("the server child did not start"), "{text}");
}

/// A fleet larger than one worker may hold (the open-file limit is per
/// process) runs in several worker processes against the one server, and
/// their figures add up to the whole fleet's; the server's log and history
/// stay bounded and say what they dropped.
#[test]
fn a_fleet_split_over_worker_processes_adds_up_their_figures() {
    let out = fleet(&[
        "--meters",
        "300",
        "--per-worker",
        "100",
        "--server-log",
        "50",
        "--timeout",
        "30s",
    ]);
    assert!(out.contains("300 meters in 3 worker process(es)"), "{out}");
    assert_eq!(counts(&out, "bare UDP echo:"), (300, 300), "{out}");
    assert_eq!(counts(&out, "registered:"), (300, 300), "{out}");
    assert_eq!(counts(&out, "observed:"), (300, 300), "{out}");
    assert_eq!(counts(&out, "notifications:"), (300, 300), "{out}");
    assert_eq!(counts(&out, "deregistered:"), (300, 300), "{out}");
    // 300 meters exchange far more than 50 datagrams: the log dropped some.
    let line = out
        .lines()
        .find(|l| l.starts_with("server memory after malloc_trim:"))
        .unwrap_or_else(|| panic!("no malloc_trim line in:\n{out}"));
    let dropped: u64 = line
        .split("log dropped ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line:?}: no log dropped count"));
    assert!(dropped > 0, "{line}");
}
