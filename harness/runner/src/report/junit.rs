//! JUnit XML with quick-junit: a testsuite per rig with the rig's facts as
//! properties, a testcase per case with its time, `<failure>` for a device at
//! fault, `<error>` for a bench that could not do its part, `<skipped>` with the
//! reason, and the step log as system-out.

use std::path::Path;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report::{write_atomically, CaseOutcome, RigInfo, Verdict};

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
        let mut suite = TestSuite::new(rig.name.clone());
        suite.add_property(Property::new("rig", rig.name.clone()));
        suite.add_property(Property::new("rig_file", rig.file.display().to_string()));
        suite.add_property(Property::new("endpoint", rig.endpoint.clone()));
        if let Some(v) = &rig.firmware_version {
            suite.add_property(Property::new("device_firmware_version", v.clone()));
        }
        if let Some(v) = &rig.modem_revision {
            suite.add_property(Property::new("modem_revision", v.clone()));
        }
        if let Some(a) = &rig.server_address {
            suite.add_property(Property::new("server_address", a.clone()));
        }
        suite.add_property(Property::new("datagrams_in", rig.datagrams_in.to_string()));
        suite.add_property(Property::new(
            "datagrams_out",
            rig.datagrams_out.to_string(),
        ));
        if let Some(s) = seed {
            suite.add_property(Property::new("seed", s.to_string()));
        }
        let mut time = std::time::Duration::ZERO;
        for o in outcomes.iter().filter(|o| o.rig == rig.name) {
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
    let status = match &o.verdict {
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
    };
    let mut tc = TestCase::new(o.case_id.clone(), status);
    tc.set_classname(format!("{}.{}", o.rig, o.file.display()));
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
