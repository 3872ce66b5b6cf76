//! The queue-mode and PSM cases (testcases/queue/) end to end on the
//! virtual rig: the meter, given short PSM timers over AT, registers in
//! queue mode, sleeps and wakes by them; the server holds a Read while it
//! sleeps and sends it after the Update. The JUnit carries what was
//! measured (time awake, time asleep, time held) with its unit. A modem
//! whose dialect cannot set PSM timers skips both cases with the reason.

use std::path::Path;

use crate::support::{assert_all_passed, case_files, parse, root, run_cases, CaseRun};

const CASES: &str = "testcases/queue";

/// `name` `value` pairs of the testcase whose name ends with `case`.
fn properties_of(xml: &str, case: &str) -> Vec<(String, String)> {
    let doc = parse(xml);
    let tc = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase") && n.attribute("name").is_some_and(|a| a.ends_with(case))
        })
        .unwrap_or_else(|| panic!("no testcase {case}"));
    tc.descendants()
        .filter(|n| n.has_tag_name("property"))
        .map(|n| {
            (
                n.attribute("name").unwrap_or_default().to_owned(),
                n.attribute("value").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// "2.001 s" as seconds; the unit must be there.
fn seconds(value: &str) -> f64 {
    value
        .strip_suffix(" s")
        .unwrap_or_else(|| panic!("{value:?} has its unit, s"))
        .parse()
        .unwrap()
}

#[test]
fn the_queue_cases_pass_on_the_virtual_rig_and_report_what_they_measured() {
    let report = tempfile::tempdir().unwrap();
    let CaseRun {
        out,
        output,
        xml,
        all,
    } = run_cases(&[], CASES, report.path());
    assert_eq!(all.len(), case_files(&root().join(CASES)), "{output}");
    assert_all_passed(&all, &output);
    assert!(out.status.success(), "{output}");

    // Held from the sleep until the wake at T3412 (6 s after the last
    // exchange, 2 s of which were awake): seconds, not more than T3412 and
    // the slack the case gives a loaded host.
    let held = properties_of(&xml, "queue-held-request");
    let held_time = held
        .iter()
        .find(|(n, _)| n == "queue.held_time")
        .map(|(_, v)| seconds(v))
        .unwrap_or_else(|| panic!("queue.held_time in {held:?}"));
    assert!(held_time > 1.0 && held_time < 9.0, "{held:?}");

    // Awake for T3324 (2 s) each time; asleep until T3412 (6 s) after the
    // last exchange, twice.
    let psm = properties_of(&xml, "queue-psm-wakes-within-timers");
    let awake: Vec<f64> = psm
        .iter()
        .filter(|(n, _)| n.starts_with("queue.awake_time"))
        .map(|(_, v)| seconds(v))
        .collect();
    let asleep: Vec<f64> = psm
        .iter()
        .filter(|(n, _)| n.starts_with("queue.sleep_time"))
        .map(|(_, v)| seconds(v))
        .collect();
    assert_eq!(awake.len(), 3, "{psm:?}");
    assert_eq!(asleep.len(), 2, "{psm:?}");
    for a in awake {
        assert!(
            (1.9..4.0).contains(&a),
            "awake {a} s, T3324 is 2 s: {psm:?}"
        );
    }
    for s in asleep {
        assert!(
            (5.5..9.0).contains(&s),
            "asleep {s} s, T3412 is 6 s: {psm:?}"
        );
    }
}

/// A fixtures folder like the shipped one whose virtual modem dialect has
/// no PSM timer command (as a modem without PSM).
fn fixtures_without_psm(dir: &Path) {
    let fixtures = root().join("fixtures");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "modems" {
            std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let modems = dir.join("modems");
    std::fs::create_dir(&modems).unwrap();
    for entry in std::fs::read_dir(fixtures.join("modems")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            std::os::unix::fs::symlink(entry.path(), modems.join(entry.file_name())).unwrap();
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let text = if entry.file_name() == "meterbench-virtual.yaml" {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !l.trim_start().starts_with("psm_") && !l.trim_start().starts_with("edrx_")
                })
                .collect();
            assert!(
                kept.len() < text.lines().count(),
                "the virtual dialect maps PSM"
            );
            kept.join("\n") + "\n"
        } else {
            text
        };
        std::fs::write(modems.join(entry.file_name()), text).unwrap();
    }
}

#[test]
fn a_modem_without_psm_timers_skips_the_queue_cases_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).unwrap();
    fixtures_without_psm(&fixtures);
    let report = dir.path().join("reports");
    let CaseRun {
        out, output, all, ..
    } = run_cases(&["--fixtures", fixtures.to_str().unwrap()], CASES, &report);
    assert_eq!(all.len(), case_files(&root().join(CASES)), "{output}");
    for o in &all {
        assert_eq!(
            o.verdict.as_deref(),
            Some("skipped"),
            "{}: {}\n{output}",
            o.name,
            o.message
        );
        assert!(
            o.message.contains("psm_timers"),
            "the reason names the command: {}",
            o.message
        );
    }
    assert!(out.status.success(), "a skip is not a failure:\n{output}");
}
