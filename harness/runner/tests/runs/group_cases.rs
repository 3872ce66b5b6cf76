//! Group cases (`group:` in the case file): once per rig, on all its
//! devices at once. The shipped cases of testcases/group/ on the four
//! meters of `rigs/virtual-4.yaml` — group read, write and execute,
//! observe, a firmware campaign two downloads at a time, and a campaign in
//! which one meter loses power and one gets an unbootable image — each one
//! testcase `<rig>::group::<case-id>`, with the campaign's tally as JUnit
//! properties and its per-member report in `campaign.csv`; a group case
//! that fails names the member; a rig of one device skips them all. A
//! group step's `where` takes the templates other steps' values take, per
//! member; `--retries` reruns a group case that ended in a bench error, as
//! it does a single device's. A group case's `cleanup:` runs on every
//! member after its steps failed or ran out of time, in its own time, and
//! one that fails fails a passed case, naming its step.

use std::path::Path;

use crate::support::{junit, meterbench, parse, root, run_cases, text, verdict_elements, CaseRun};

/// The value of property `name` of testcase `case`.
fn case_property(doc: &roxmltree::Document, case: &str, name: &str) -> Option<String> {
    doc.descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(case))?
        .descendants()
        .find(|p| p.has_tag_name("property") && p.attribute("name") == Some(name))
        .and_then(|p| p.attribute("value"))
        .map(str::to_string)
}

/// testcases/group/ and one group case that cannot pass, in a folder of their own.
fn cases_with_a_failing_one(dir: &Path) -> std::path::PathBuf {
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    write_cases_with_cleanups(&cases);
    for entry in std::fs::read_dir(root().join("testcases/group")).unwrap() {
        let from = entry.unwrap().path();
        std::fs::copy(&from, cases.join(from.file_name().unwrap())).unwrap();
    }
    // Templates in `where`, each member's own: every member saves its
    // Timezone, one (meter-2) gets another, and `where` with `{saved:zone}`
    // selects the three that kept theirs; `{saved:running}` selects all
    // four; `{fw_version:upgrade}` is the rig's version of the role (the
    // members that run it, whichever earlier case left them so). The
    // Timezones are put back with a template in a group write's value.
    std::fs::write(
        cases.join("where-templates.yaml"),
        "id: group-where-templates\ntitle: a group step's where takes each member's templates\nets_none: a test of the harness\ngroup: all\nneeds: [object/5]\ntimeout: 60s\nsteps:\n  \
         - await: registered\n  \
         - read: { path: /3/0/15, save: zone }\n  \
         - read: { path: /3/0/3, save: running }\n  \
         - group: { write: /3/0/15, value: \"Europe/Paris\", where: { endpoint: \"meter-2-\" } }\n  \
         - group: { read: /3/0/15, where: { path: /3/0/15, equals: \"{saved:zone}\" }, all: { equals: \"{saved:zone}\" } }\n  \
         - group: { read: /3/0/3, where: { path: /3/0/3, equals: \"{saved:running}\" } }\n  \
         - group: { read: /3/0/3, where: { path: /3/0/3, equals: \"{fw_version:upgrade}\" }, at_least: 0 }\n  \
         - group: { write: /3/0/15, value: \"{saved:zone}\" }\n",
    )
    .unwrap();
    std::fs::write(
        cases.join("wrong-manufacturer.yaml"),
        "id: group-wrong-manufacturer\ntitle: every meter made by a manufacturer none is made by\nets_none: a test of the harness\ngroup: all\ntimeout: 60s\nsteps:\n  - await: registered\n  - group: { read: /3/0/0, all: { equals: \"Nobody Inc\" } }\n",
    )
    .unwrap();
    cases
}

#[test]
fn group_cases_run_once_on_all_four_meters_and_report_the_campaign_per_member() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_with_a_failing_one(dir.path());
    let reports = dir.path().join("reports");
    let CaseRun {
        out,
        output,
        xml,
        all,
        ..
    } = run_cases(
        &["--rig", "rigs/virtual-4.yaml"],
        cases.to_str().unwrap(),
        &reports,
    );
    assert!(!out.status.success(), "a case failed on purpose:\n{output}");
    let mut names: Vec<&str> = all.iter().map(|o| o.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "virtual-4::group::group-campaign-member-drops-out",
            "virtual-4::group::group-cleanup-after-failure",
            "virtual-4::group::group-cleanup-after-timeout",
            "virtual-4::group::group-cleanup-fails",
            "virtual-4::group::group-firmware-campaign",
            "virtual-4::group::group-observe",
            "virtual-4::group::group-read-device-info",
            "virtual-4::group::group-where-templates",
            "virtual-4::group::group-write-execute",
            "virtual-4::group::group-wrong-manufacturer",
        ],
        "one testcase per group case, none per meter:\n{output}"
    );
    for o in &all {
        if o.name.ends_with("group-wrong-manufacturer") {
            // The failure names the file, the step's line and each member's answer.
            assert_eq!(o.verdict.as_deref(), Some("failure"), "{output}");
            assert!(
                o.message.contains("wrong-manufacturer.yaml:8:"),
                "{}",
                o.message
            );
            assert!(o.message.contains("0 of 4 selected"), "{}", o.message);
            assert!(o.message.contains("meter-3: expected"), "{}", o.message);
        } else if o.name.contains("group-cleanup-") {
            // Checked below, by check_group_cleanups.
        } else {
            assert_eq!(o.verdict, None, "{}: {}\n{output}", o.name, o.message);
        }
    }

    check_group_cleanups(&xml, &all, &reports, &output);
    let doc = parse(&xml);
    let prop = |case: &str, name: &str| {
        case_property(&doc, &format!("virtual-4::group::{case}"), name)
            .unwrap_or_else(|| panic!("{case}: no property {name}"))
    };
    let campaign = "group-firmware-campaign";
    assert_eq!(prop(campaign, "campaign.members"), "4");
    assert_eq!(prop(campaign, "campaign.succeeded"), "4");
    assert_eq!(prop(campaign, "campaign.failed"), "0");
    assert_eq!(prop(campaign, "campaign.rolled_back"), "0");
    let peak: usize = prop(campaign, "campaign.peak_downloads").parse().unwrap();
    assert!(
        (1..=2).contains(&peak),
        "at most 2 downloads at once: {peak}"
    );
    // Each member's object 5 transitions, judged by the state diagram.
    assert!(prop(campaign, "meter-4.firmware.transitions").contains("Success(1)"));

    let drops = "group-campaign-member-drops-out";
    assert_eq!(prop(drops, "campaign.succeeded"), "2");
    assert_eq!(prop(drops, "campaign.failed"), "1");
    assert_eq!(prop(drops, "campaign.rolled_back"), "1");
    assert_eq!(prop(drops, "campaign.meter-1.result"), "rolled_back");
    assert_eq!(prop(drops, "campaign.meter-2.result"), "failed");
    assert!(
        prop(drops, "campaign.meter-2.detail").starts_with("dropped out"),
        "{}",
        prop(drops, "campaign.meter-2.detail")
    );

    // The per-member report and each member's own evidence.
    let folder = reports.join("latest/virtual-4/group").join(drops);
    let csv = std::fs::read_to_string(folder.join("campaign.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[1].starts_with("meter-1,") && rows[1].contains(",unbootable,rolled_back,"));
    assert!(rows[2].starts_with("meter-2,") && rows[2].contains(",upgrade,failed,"));
    for m in 1..=4 {
        let messages = folder.join(format!("meter-{m}/lwm2m-messages.log"));
        assert!(messages.is_file(), "{} missing", messages.display());
    }
    let steps = std::fs::read_to_string(folder.join("steps.log")).unwrap();
    assert!(
        steps.contains("[meter-2] -> power cut mid-download"),
        "{steps}"
    );

    // `where` with templates: meter-2's Timezone was changed, so
    // `{saved:zone}` (line 12) selects the other three, each by its own
    // saved value; `{saved:running}` (line 13) selects all four.
    let templates = "group-where-templates";
    assert_eq!(prop(templates, "group.line12.selected"), "3");
    assert_eq!(prop(templates, "group.line12.succeeded"), "3");
    assert_eq!(prop(templates, "group.line13.selected"), "4");
    let folder = reports.join("latest/virtual-4/group").join(templates);
    let steps = std::fs::read_to_string(folder.join("steps.log")).unwrap();
    assert!(
        steps.contains("[meter-2] -> not selected: /3/0/15 = \"Europe/Paris\""),
        "{steps}"
    );
    // `{fw_version:upgrade}` (line 14) is the rig's version of the role,
    // "2.0" (fixtures/firmware/manifest.yaml): each member shows the `where`
    // it was judged by, and one running 2.0 is never left out.
    let line14 = steps
        .split("line  14:")
        .nth(1)
        .and_then(|rest| rest.split("line  15:").next())
        .unwrap_or_else(|| panic!("no line 14 in {steps}"));
    for m in 1..=4 {
        assert!(
            line14.contains(&format!("[meter-{m}] where /3/0/3 = \"2.0\"")),
            "{line14}"
        );
        assert!(
            !line14.contains(&format!("[meter-{m}] -> not selected: /3/0/3 = \"2.0\"")),
            "{line14}"
        );
    }
    let selected: usize = prop(templates, "group.line14.selected").parse().unwrap();
    assert_eq!(selected, line14.matches("-> ok: 2.05").count(), "{line14}");
}

/// A rig of two devices whose lab network command fails the first time
/// (`profile-1`) or always (`profile-2`), and a group case per profile
/// that bars it on both devices at once.
fn netlab_group(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let marker = dir.join("emulator-ready");
    let rig = dir.join("netlab.yaml");
    std::fs::write(
        &rig,
        format!(
            "name: netlab\ndevice: {{ endpoint: \"ep-{{device}}\", lifetime: 1m }}\ndevices:\n  list:\n    - {{ name: a }}\n    - {{ name: b }}\n\
             network:\n  kind: command\n  refuse:\n    \
             profile-1: \"test -e {0} || {{ touch {0}; exit 3; }}\"\n    profile-2: \"exit 3\"\n  accept_all: \"true\"\n",
            marker.display()
        ),
    )
    .unwrap();
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    for (id, profile) in [("flaky", "profile-1"), ("broken", "profile-2")] {
        std::fs::write(
            cases.join(format!("{id}.yaml")),
            format!(
                "id: bar-{id}\ntitle: bars a profile on every device\ngroup: all\nneeds: [network-control]\ntimeout: 10s\nsteps:\n  - network: {{ refuse: {profile} }}\n"
            ),
        )
        .unwrap();
    }
    (rig, cases)
}

#[test]
fn retries_rerun_a_group_case_after_a_bench_error_and_report_it_as_single_cases_are() {
    let dir = tempfile::tempdir().unwrap();
    let (rig, cases) = netlab_group(dir.path());
    let reports = dir.path().join("reports");
    let out = meterbench(&["run", "--rig", rig.to_str().unwrap(), "--cases"])
        .arg(&cases)
        .arg("--report-dir")
        .arg(&reports)
        .args(["--retries", "2"])
        .output()
        .unwrap();
    let text = text(&out);
    // The lasting bench error fails the run; the flaky group case does not.
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("0 passed, 1 flaky, 0 failed, 1 errors"),
        "{text}"
    );
    assert!(
        text.contains("netlab::group::bar-broken bench error, rerun 2 of 2"),
        "{text}"
    );
    let xml = junit(&reports);
    let doc = parse(&xml);
    let verdicts = |name: &str| verdict_elements(&doc, name);
    assert_eq!(
        verdicts("netlab::group::bar-flaky"),
        ["flakyError"],
        "{xml}"
    );
    assert_eq!(
        verdicts("netlab::group::bar-broken"),
        ["error", "rerunError", "rerunError"],
        "{xml}"
    );
    assert!(xml.contains(r#"name="attempts" value="2""#), "{xml}");
    assert!(xml.contains(r#"name="attempts" value="3""#), "{xml}");
}

#[test]
fn a_rig_of_one_device_skips_every_group_case_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let CaseRun {
        out, output, all, ..
    } = run_cases(
        &["--rig", "rigs/virtual-differing.yaml"],
        root().join("testcases/group").to_str().unwrap(),
        &dir.path().join("reports"),
    );
    assert!(out.status.success(), "{output}");
    assert_eq!(all.len(), 5, "{output}");
    for o in &all {
        assert!(
            o.name.starts_with("virtual-differing::group::"),
            "{}",
            o.name
        );
        assert_eq!(o.verdict.as_deref(), Some("skipped"), "{}", o.name);
        assert!(
            o.message
                .contains("has 1 device(s); the case needs a group of at least"),
            "{}: {}",
            o.name,
            o.message
        );
    }
}

/// Three group cases with a `cleanup:`: one whose steps fail after
/// changing every member's Timezone, one cut off by its `timeout` after
/// the change, and one that passes but whose cleanup finds a device it
/// cannot put back.
fn write_cases_with_cleanups(cases: &Path) {
    let change = "steps:\n  \
         - await: registered\n  \
         - read: { path: /3/0/15, save: zone }\n  \
         - group: { write: /3/0/15, value: \"Europe/Paris\" }\n";
    // Each member's own zone written back, then checked on the group.
    let restore = "cleanup:\n  \
         - write: { path: /3/0/15, value: \"{saved:zone}\" }\n  \
         - group: { read: /3/0/15, all: { equals: \"{saved:zone}\" } }\n";
    std::fs::write(
        cases.join("fails.yaml"),
        format!(
            "id: group-cleanup-after-failure\ntitle: t\nets_none: a test of the harness\ngroup: all\ntimeout: 60s\n{change}  \
             - group: {{ read: /3/0/0, all: {{ equals: \"Nobody Inc\" }} }}\n{restore}"
        ),
    )
    .unwrap();
    std::fs::write(
        cases.join("times-out.yaml"),
        format!(
            "id: group-cleanup-after-timeout\ntitle: t\nets_none: a test of the harness\ngroup: all\ntimeout: 8s\n{change}  \
             - sleep: 60s\n{restore}cleanup_timeout: 30s\n"
        ),
    )
    .unwrap();
    std::fs::write(
        cases.join("cleanup-fails.yaml"),
        format!(
            "id: group-cleanup-fails\ntitle: t\nets_none: a test of the harness\ngroup: all\ntimeout: 60s\n{change}\
             cleanup:\n  \
             - write: {{ path: /3/0/15, value: \"{{saved:zone}}\" }}\n  \
             - group: {{ read: /3/0/0, all: {{ equals: \"Nobody Inc\" }} }}\n"
        ),
    )
    .unwrap();
}

/// The group cases of [`write_cases_with_cleanups`], as the run of
/// [`group_cases_run_once_on_all_four_meters_and_report_the_campaign_per_member`]
/// reported them (they share its run, so its four meters start once): a
/// group case's cleanup runs on every member after a failure and after a
/// timeout, in its own time, and a cleanup that fails fails a passed case,
/// naming its step.
fn check_group_cleanups(xml: &str, all: &[crate::support::Outcome], reports: &Path, output: &str) {
    let doc = parse(xml);
    let prop = |case: &str| {
        case_property(&doc, &format!("virtual-4::group::{case}"), "cleanup")
            .unwrap_or_else(|| panic!("{case}: no cleanup property\n{output}"))
    };
    let outcome = |case: &str| {
        all.iter()
            .find(|o| o.name == format!("virtual-4::group::{case}"))
            .unwrap_or_else(|| panic!("no {case}\n{output}"))
    };
    // Failed steps: the failure stands, the cleanup put every member back.
    let failed = outcome("group-cleanup-after-failure");
    assert_eq!(failed.verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        failed.message.contains("fails.yaml:10:"),
        "{}",
        failed.message
    );
    assert_eq!(prop("group-cleanup-after-failure"), "passed");
    let steps = std::fs::read_to_string(
        reports.join("latest/virtual-4/group/group-cleanup-after-failure/steps.log"),
    )
    .unwrap();
    assert!(steps.contains("cleanup line  12:"), "{steps}");
    for m in 1..=4 {
        assert!(steps.contains(&format!("[meter-{m}] ")), "{steps}");
    }
    // Out of time: the cleanup still ran, in its own time.
    let timed_out = outcome("group-cleanup-after-timeout");
    assert_eq!(timed_out.verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        timed_out.message.contains("timeout of 8s"),
        "{}",
        timed_out.message
    );
    assert_eq!(prop("group-cleanup-after-timeout"), "passed");
    // Steps that passed and a cleanup that could not put the device back:
    // a failure naming the cleanup's step and line.
    let cleanup_failed = outcome("group-cleanup-fails");
    assert_eq!(
        cleanup_failed.verdict.as_deref(),
        Some("failure"),
        "{output}"
    );
    assert!(
        cleanup_failed.message.starts_with("cleanup failed at ")
            && cleanup_failed
                .message
                .contains("cleanup-fails.yaml:12: cleanup step `group read /3/0/0")
            && cleanup_failed
                .message
                .ends_with("the device was left changed"),
        "{}",
        cleanup_failed.message
    );
    assert!(
        prop("group-cleanup-fails").starts_with("failed at "),
        "{}",
        prop("group-cleanup-fails")
    );
}
