//! JUnit XML with quick-junit: a testsuite per rig with the rig's facts as
//! properties, a testcase per case with its time, `<failure>` for a device at
//! fault, `<error>` for a bench that could not do its part, `<skipped>` with the
//! reason, and the step log as system-out.
//!
//! A case rerun after bench errors (`--retries`) uses Maven Surefire's rerun
//! elements: a pass after them carries a `<flakyError>` per failed attempt
//! (flaky, never a plain pass); a case that kept failing carries its first
//! error as `<error>` and each rerun as `<rerunError>`. They are `Error`
//! kinds because only bench errors are retried.

use std::path::Path;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use crate::report::{write_atomically, CaseOutcome, EarlierAttempt, RigInfo, Verdict};

/// Builds the report for everything that has an outcome so far; called after
/// each case and at the end, so an interrupted run still leaves valid XML.
pub fn render(
    run_id: &str,
    seed: Option<u64>,
    rigs: &[RigInfo],
    outcomes: &[CaseOutcome],
) -> String {
    let mut report = Report::new(format!("meterbench {run_id}"));
    report.set_timestamp(chrono::Local::now().fixed_offset());
    for rig in rigs {
        // A device of a pool that ran nothing has nothing to report; a rig
        // of one device keeps its suite, empty or not.
        if rig.device.is_some()
            && !outcomes
                .iter()
                .any(|o| o.rig == rig.name && o.device == rig.device)
        {
            continue;
        }
        let mut suite = TestSuite::new(rig.suite_name());
        suite.add_property(Property::new("rig", rig.name.clone()));
        if let Some(d) = &rig.device {
            suite.add_property(Property::new("device", d.clone()));
        }
        suite.add_property(Property::new("rig_file", rig.file.display().to_string()));
        // Which rig file exactly, for a report kept as evidence (the HTML page shows it).
        if let Ok(bytes) = std::fs::read(&rig.file) {
            use sha2::Digest;
            suite.add_property(Property::new(
                "rig_file_sha256",
                hex::encode(sha2::Sha256::digest(bytes)),
            ));
        }
        suite.add_property(Property::new(
            "meterbench_version",
            env!("CARGO_PKG_VERSION"),
        ));
        suite.add_property(Property::new("endpoint", rig.endpoint.clone()));
        if let Some(v) = &rig.firmware_version {
            suite.add_property(Property::new("device_firmware_version", v.clone()));
        }
        if let Some(v) = &rig.modem_revision {
            suite.add_property(Property::new("modem_revision", v.clone()));
        }
        for (name, value) in [
            ("imei", &rig.imei),
            ("iccid", &rig.iccid),
            ("device_firmware_version_after", &rig.firmware_version_after),
        ] {
            if let Some(v) = value {
                suite.add_property(Property::new(name, v.clone()));
            }
        }
        if let Some(a) = &rig.server_address {
            suite.add_property(Property::new("server_address", a.clone()));
        }
        suite.add_property(Property::new("datagrams_in", rig.datagrams_in.to_string()));
        suite.add_property(Property::new(
            "datagrams_out",
            rig.datagrams_out.to_string(),
        ));
        if let Some(n) = rig.receive_buffer_drops {
            suite.add_property(Property::new(
                "datagrams_dropped_receive_buffer_full",
                n.to_string(),
            ));
        }
        if let Some(s) = seed {
            suite.add_property(Property::new("seed", s.to_string()));
        }
        let mut time = std::time::Duration::ZERO;
        for o in outcomes
            .iter()
            .filter(|o| o.rig == rig.name && o.device == rig.device)
        {
            time += o.duration;
            suite.add_test_case(test_case(o));
        }
        suite.set_time(time);
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- report could not be serialized: {e} -->"))
}

pub fn write(path: &Path, xml: &str) -> std::io::Result<()> {
    write_atomically(path, xml.as_bytes())
}

fn test_case(o: &CaseOutcome) -> TestCase {
    let mut status = final_status(o);
    match (&o.verdict, o.earlier_attempts.split_first()) {
        (Verdict::Error { message }, Some((first, later))) => {
            // Surefire's order: the first error is the element, the later
            // attempts (this last one included) its reruns.
            let last = EarlierAttempt {
                message: message.clone(),
                started: o.started,
                duration: o.duration,
                step_log: o.step_log.clone(),
            };
            status.set_message(first.message.clone());
            status.add_reruns(later.iter().chain([&last]).map(rerun).collect::<Vec<_>>());
        }
        _ => {
            status.add_reruns(o.earlier_attempts.iter().map(rerun));
        }
    }
    let mut tc = case_with_status(o, status);
    if !o.earlier_attempts.is_empty() {
        tc.add_property(Property::new(
            "attempts",
            (o.earlier_attempts.len() + 1).to_string(),
        ));
    }
    tc
}

/// One attempt that ended in a bench error.
fn rerun(a: &EarlierAttempt) -> TestRerun {
    let mut r = TestRerun::new(NonSuccessKind::Error);
    r.set_message(a.message.clone())
        .set_type("bench")
        .set_timestamp(a.started.fixed_offset())
        .set_time(a.duration)
        .set_system_out(a.step_log.clone());
    r
}

/// The verdict of the last attempt.
fn final_status(o: &CaseOutcome) -> TestCaseStatus {
    match &o.verdict {
        Verdict::Passed => TestCaseStatus::success(),
        Verdict::Failed { message, detail } => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(message.clone())
                .set_type("device")
                .set_description(detail.clone());
            s
        }
        Verdict::Error { message } => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(message.clone()).set_type("bench");
            s
        }
        Verdict::Interrupted => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(
                "interrupted: the run was stopped (Ctrl-C or SIGTERM) while this case ran",
            )
            .set_type("interrupted");
            s
        }
        Verdict::Skipped { reason } => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(reason.clone());
            s
        }
    }
}

fn case_with_status(o: &CaseOutcome, status: TestCaseStatus) -> TestCase {
    let mut tc = TestCase::new(o.testcase_name(), status);
    tc.set_classname(format!("{}.{}", o.rig, o.file.display()));
    if let Some(d) = &o.device {
        tc.add_property(Property::new("device", d.clone()));
    }
    tc.set_time(o.duration);
    tc.set_timestamp(o.started.fixed_offset());
    tc.add_property(Property::new("title", o.title.clone()));
    tc.add_property(Property::new("file", o.file.display().to_string()));
    if !o.ets.is_empty() {
        tc.add_property(Property::new("ets", o.ets.join(" ")));
    }
    tc.add_property(Property::new(
        "artifacts",
        o.artifacts.display().to_string(),
    ));
    for (name, value) in &o.properties {
        tc.add_property(Property::new(name.clone(), value.clone()));
    }
    tc.set_system_out(o.step_log.clone());
    tc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::EarlierAttempt;

    fn outcome(verdict: Verdict, attempts: &[&str]) -> CaseOutcome {
        CaseOutcome {
            rig: "bench-01".into(),
            device: None,
            pooled: false,
            case_id: "dm-reboot".into(),
            title: "Reboot".into(),
            file: "testcases/device-management/reboot.yaml".into(),
            ets: vec![],
            verdict,
            started: chrono::Local::now(),
            duration: std::time::Duration::from_millis(1500),
            step_log: "last attempt".into(),
            artifacts: "reports/x".into(),
            properties: vec![],
            earlier_attempts: attempts
                .iter()
                .map(|m| EarlierAttempt {
                    message: m.to_string(),
                    started: chrono::Local::now(),
                    duration: std::time::Duration::from_millis(200),
                    step_log: format!("log of {m}"),
                })
                .collect(),
        }
    }

    /// (element, message) of each child of the only testcase, in order.
    fn children(o: CaseOutcome) -> Vec<(String, Option<String>)> {
        let xml = render(
            "r",
            None,
            &[RigInfo {
                name: "bench-01".into(),
                ..Default::default()
            }],
            &[o],
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let tc = doc
            .descendants()
            .find(|n| n.has_tag_name("testcase"))
            .unwrap();
        tc.children()
            .filter(|c| {
                c.is_element() && !["properties", "system-out"].contains(&c.tag_name().name())
            })
            .map(|c| {
                (
                    c.tag_name().name().to_string(),
                    c.attribute("message").map(str::to_string),
                )
            })
            .collect()
    }

    fn el(name: &str, message: &str) -> (String, Option<String>) {
        (name.to_string(), Some(message.to_string()))
    }

    #[test]
    fn measured_current_is_a_testcase_property_with_its_unit() {
        let record = rig::power::CurrentRecord {
            samples: [(0, 0.02), (100, 0.18), (200, 0.04)]
                .iter()
                .map(|&(ms, amps)| rig::power::Sample {
                    t: std::time::Duration::from_millis(ms),
                    volts: 3.6,
                    amps,
                })
                .collect(),
            ..Default::default()
        };
        let mut o = outcome(Verdict::Passed, &[]);
        o.properties = record.summary().unwrap().properties();
        let rig = RigInfo {
            name: "bench-01".into(),
            ..Default::default()
        };
        let xml = render("r", None, &[rig], &[o]);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let tc = doc
            .descendants()
            .find(|n| n.has_tag_name("testcase"))
            .unwrap();
        let prop = |name: &str| {
            tc.descendants()
                .find(|p| p.has_tag_name("property") && p.attribute("name") == Some(name))
                .and_then(|p| p.attribute("value"))
                .map(str::to_owned)
        };
        assert_eq!(prop("power.current.peak").as_deref(), Some("0.180000 A"));
        assert_eq!(prop("power.current.mean").as_deref(), Some("0.080000 A"));
        assert_eq!(prop("power.current.samples").as_deref(), Some("3"));
        assert_eq!(prop("power.current.span").as_deref(), Some("0.200 s"));
    }

    #[test]
    fn a_pass_after_bench_errors_is_flaky_with_each_failed_attempt() {
        assert_eq!(
            children(outcome(Verdict::Passed, &["port closed", "supply timeout"])),
            vec![
                el("flakyError", "port closed"),
                el("flakyError", "supply timeout")
            ]
        );
        // Without earlier attempts a pass is a plain pass.
        assert_eq!(children(outcome(Verdict::Passed, &[])), vec![]);
    }

    #[test]
    fn a_case_that_kept_erring_has_its_first_error_and_the_reruns() {
        let o = outcome(
            Verdict::Error {
                message: "third".into(),
            },
            &["first", "second"],
        );
        assert_eq!(
            children(o),
            vec![
                el("error", "first"),
                el("rerunError", "second"),
                el("rerunError", "third")
            ]
        );
    }

    #[test]
    fn a_device_failure_after_a_bench_error_is_a_failure_with_the_rerun() {
        let o = outcome(
            Verdict::Failed {
                message: "expected 2, saw 1".into(),
                detail: String::new(),
            },
            &["port closed"],
        );
        assert_eq!(
            children(o),
            vec![
                el("failure", "expected 2, saw 1"),
                el("rerunError", "port closed")
            ]
        );
    }
}
