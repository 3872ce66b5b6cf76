//! Group cases (`group:` in the case file): once per rig, on all its
//! devices at once. The shipped cases of testcases/group/ on the four
//! meters of `rigs/virtual-4.yaml` — group read, write and execute,
//! observe, a firmware campaign two downloads at a time, and a campaign in
//! which one meter loses power and one gets an unbootable image — each one
//! testcase `<rig>::group::<case-id>`, with the campaign's tally as JUnit
//! properties and its per-member report in `campaign.csv`; a group case
//! that fails names the member; a rig of one device skips them all.

use std::path::Path;

use crate::support::{parse, root, run_cases, CaseRun};

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
    for entry in std::fs::read_dir(root().join("testcases/group")).unwrap() {
        let from = entry.unwrap().path();
        std::fs::copy(&from, cases.join(from.file_name().unwrap())).unwrap();
    }
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
            "virtual-4::group::group-firmware-campaign",
            "virtual-4::group::group-observe",
            "virtual-4::group::group-read-device-info",
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
        } else {
            assert_eq!(o.verdict, None, "{}: {}\n{output}", o.name, o.message);
        }
    }

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
