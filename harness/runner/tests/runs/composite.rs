//! The LwM2M 1.1 composite cases (testcases/composite/: Read-Composite,
//! Write-Composite, Observe-Composite and Send) run end to end: on the
//! virtual rig, whose meter offers them, every one passes; on a meter that
//! lacks them (`without_composite`, as a 1.0-era firmware: 4.05 to FETCH
//! and iPATCH, no Send) every one is skipped as not applicable, with the
//! device's answer as the reason, and none fails.

use crate::support::{assert_all_passed, case_files, root, run_cases, CaseRun};

const CASES: &str = "testcases/composite";

#[test]
fn the_composite_cases_pass_on_the_virtual_rig() {
    let report = tempfile::tempdir().unwrap();
    let CaseRun {
        out, output, all, ..
    } = run_cases(&[], CASES, report.path());
    assert_eq!(all.len(), case_files(&root().join(CASES)), "{output}");
    assert_all_passed(&all, &output);
    for case in [
        "composite-read",
        "composite-read-partial",
        "composite-read-root",
        "composite-write",
        "composite-observe",
        "composite-send",
    ] {
        assert!(
            all.iter()
                .any(|o| o.name == case || o.name.ends_with(&format!("::{case}"))),
            "no testcase {case}:\n{output}"
        );
    }
    assert!(out.status.success(), "{output}");
}

#[test]
fn a_meter_without_composite_operations_skips_every_composite_case_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rig_text = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
    let without = rig_text.replace(
        "power: { kind: virtual }",
        "power: { kind: virtual, without_composite: true }",
    );
    assert_ne!(without, rig_text, "the virtual rig names its power driver");
    let rig = dir.path().join("virtual-without-composite.yaml");
    std::fs::write(&rig, without).unwrap();
    let report = dir.path().join("reports");
    let CaseRun {
        out, output, all, ..
    } = run_cases(&["--rig", rig.to_str().unwrap()], CASES, &report);
    assert_eq!(all.len(), case_files(&root().join(CASES)), "{output}");
    for o in &all {
        assert_eq!(
            o.verdict.as_deref(),
            Some("skipped"),
            "{} must be skipped on a meter without composite operations:\n{output}",
            o.name
        );
        assert!(
            o.message.contains("not applicable") && o.message.contains("4.05"),
            "{}: the skip says why (the device answered 4.05): {:?}",
            o.name,
            o.message
        );
    }
    assert!(out.status.success(), "skips do not fail the run:\n{output}");
}

/// composite-write changes Notification Storing (/1/x/6) and must leave the
/// device's own setting as it found it, not the value a virtual meter
/// happens to start with: run on a meter whose setting is `true` (written
/// just before the shipped steps), /1/x/6 reads `true` after them.
#[test]
fn the_write_composite_case_puts_back_the_setting_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(root().join(CASES).join("write-composite.yaml")).unwrap();
    let registered = "    within: 30s\n";
    assert!(shipped.contains(registered), "the case awaits registration");
    let case = shipped.replacen(
        registered,
        &format!("{registered}  - write: {{ path: /1/*/6, value: true }}\n"),
        1,
    ) + "  - read: { path: /1/*/6, equals: true }\n";
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    std::fs::write(cases.join("write-composite-from-true.yaml"), case).unwrap();
    let report = dir.path().join("reports");
    let CaseRun {
        out, output, all, ..
    } = run_cases(&[], cases.to_str().unwrap(), &report);
    assert_eq!(all.len(), 1, "{output}");
    assert_all_passed(&all, &output);
    assert!(out.status.success(), "{output}");
}
