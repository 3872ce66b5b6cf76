//! A case's `cleanup:` on the virtual rig: it runs after steps that ran out
//! of the case's time and puts the device back (a later case on the same
//! meter reads the setting as it was), it leaves out what names a value the
//! steps never saved, and a passed case whose cleanup fails is a failure
//! that says so. One meter, one case at a time, so the cases see each
//! other's device.

use std::path::Path;

use crate::support::{one_meter_rig, parse, run_cases, CaseRun};

fn write_case(dir: &Path, file: &str, id: &str, body: &str) {
    let text = format!(
        "id: {id}\ntitle: cleanup check {id}\nets: []\nets_none: a harness check, not a device test\n{body}"
    );
    std::fs::write(dir.join(file), text).unwrap();
}

/// The testcase named `id`: its verdict element's name (none: passed),
/// message, `cleanup` property and system-out.
fn testcase(xml: &str, id: &str) -> (Option<String>, String, Option<String>, String) {
    let doc = parse(xml);
    let tc = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name")
                    .is_some_and(|a| a == id || a.ends_with(&format!("::{id}")))
        })
        .unwrap_or_else(|| panic!("no testcase {id} in\n{xml}"));
    let verdict = tc
        .children()
        .find(|c| c.is_element() && ["failure", "error", "skipped"].contains(&c.tag_name().name()));
    let cleanup = tc
        .descendants()
        .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("cleanup"))
        .and_then(|n| n.attribute("value"))
        .map(str::to_string);
    let out = tc
        .descendants()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string();
    (
        verdict.map(|v| v.tag_name().name().to_string()),
        verdict
            .and_then(|v| v.attribute("message"))
            .unwrap_or_default()
            .to_string(),
        cleanup,
        out,
    )
}

#[test]
fn a_cleanup_runs_however_the_steps_end_and_a_failed_one_fails_a_passed_case() {
    let dir = tempfile::tempdir().unwrap();
    let rig = one_meter_rig(dir.path());
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    // Brings the meter up, so that the next case's short timeout is spent
    // on its own steps (a step's `within` keeps the rig's reboot wait from
    // stretching it).
    write_case(
        &cases,
        "0-up.yaml",
        "cleanup-0-up",
        "steps:\n  - await: registered\n    within: 45s\n",
    );
    // Changes Notification Storing, then runs out of its 3 s awaiting a
    // De-register that does not come: the cleanup,
    // with its own time, writes back the value the steps saved.
    write_case(
        &cases,
        "1-out-of-time.yaml",
        "cleanup-1-out-of-time",
        "timeout: 3s\nsteps:\n  - await: registered\n    within: 2s\n  - write: { path: /1/*/6, value: false }\n  - read: { path: /1/*/6, save: storing }\n  - write: { path: /1/*/6, value: true }\n  - await: deregistered\ncleanup:\n  - write: { path: /1/*/6, value: \"{saved:storing}\" }\n  - read: { path: /1/*/6, equals: \"{saved:storing}\" }\n",
    );
    // The same meter, next: the setting is back (without the cleanup it
    // would read true).
    write_case(
        &cases,
        "2-put-back.yaml",
        "cleanup-2-put-back",
        "steps:\n  - await: registered\n  - read: { path: /1/*/6, equals: false }\n",
    );
    // Passed steps, a cleanup that finds the device other than it expects.
    write_case(
        &cases,
        "3-cleanup-fails.yaml",
        "cleanup-3-cleanup-fails",
        "steps:\n  - await: registered\ncleanup:\n  - sleep: 1ms\n  - expect: { path: /3/0/0, equals: \"not the maker\" }\n",
    );
    // Fails before its `read` saves: the cleanup's write of that value is
    // left out, with the step after it.
    write_case(
        &cases,
        "4-never-saved.yaml",
        "cleanup-4-never-saved",
        "steps:\n  - await: registered\n  - expect: { path: /3/0/0, equals: \"not the maker\" }\n  - read: { path: /1/*/6, save: storing }\ncleanup:\n  - write: { path: /1/*/6, value: \"{saved:storing}\" }\n  - sleep: 30s\n",
    );
    // A step that ignores its bound (a sleep longer than the case): the
    // case's guard cuts it off, and the cleanup's guard its cleanup's.
    write_case(
        &cases,
        "5-sleeps-past.yaml",
        "cleanup-5-sleeps-past",
        "timeout: 2s\ncleanup_timeout: 2s\nsteps:\n  - sleep: 600s\ncleanup:\n  - sleep: 600s\n",
    );
    let report = dir.path().join("reports");
    let CaseRun { output, xml, .. } = run_cases(
        &["--rig", &rig, "--test-threads", "1"],
        cases.to_str().unwrap(),
        &report,
    );

    let (verdict, message, cleanup, _) = testcase(&xml, "cleanup-0-up");
    assert_eq!(verdict, None, "{message}\n{output}");
    assert_eq!(cleanup, None, "a case without cleanup has no such property");

    let (verdict, message, cleanup, out) = testcase(&xml, "cleanup-1-out-of-time");
    assert_eq!(verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        message.contains("1-out-of-time.yaml:12: step `await deregistered`")
            && message.contains("timed out"),
        "the verdict is the steps' own, at the step that ran out of time: {message}"
    );
    assert_eq!(cleanup.as_deref(), Some("passed"), "{out}");
    assert!(
        out.contains("cleanup line  14: write /1/*/6")
            && out.contains("cleanup line  15: read /1/*/6")
            && out.contains("cleanup passed"),
        "the step log shows the cleanup:\n{out}"
    );

    let (verdict, message, _, _) = testcase(&xml, "cleanup-2-put-back");
    assert_eq!(
        verdict, None,
        "the cleanup put Notification Storing back: {message}\n{output}"
    );

    let (verdict, message, cleanup, out) = testcase(&xml, "cleanup-3-cleanup-fails");
    assert_eq!(verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        message.starts_with("cleanup failed at ")
            && message.contains("3-cleanup-fails.yaml:9: cleanup step `expect /3/0/0")
            && message.ends_with("the device was left changed"),
        "{message}"
    );
    let cleanup = cleanup.unwrap_or_default();
    assert!(
        cleanup.starts_with("failed at ") && cleanup.contains("3-cleanup-fails.yaml:9:"),
        "{cleanup}"
    );
    assert!(out.contains("cleanup failed at "), "{out}");

    let (verdict, message, cleanup, out) = testcase(&xml, "cleanup-4-never-saved");
    assert_eq!(verdict.as_deref(), Some("failure"), "{output}");
    assert!(message.contains("4-never-saved.yaml:7:"), "{message}");
    let cleanup = cleanup.unwrap_or_default();
    assert!(
        cleanup.starts_with("passed (from line 10 on left out") && cleanup.contains("\"storing\""),
        "{cleanup}"
    );
    assert!(
        !out.contains("cleanup line  11"),
        "the steps after the left-out one do not run:\n{out}"
    );

    let (verdict, message, cleanup, _) = testcase(&xml, "cleanup-5-sleeps-past");
    assert_eq!(verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        message.contains("5-sleeps-past.yaml:8: step `sleep")
            && message.contains("the case to finish within its timeout of 2s")
            && message.contains("it was still running this step at the timeout"),
        "{message}"
    );
    let cleanup = cleanup.unwrap_or_default();
    assert!(
        cleanup.contains("5-sleeps-past.yaml:10:")
            && cleanup.contains("it was still running this step at the limit"),
        "{cleanup}"
    );
}
