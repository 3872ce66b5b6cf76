//! Every shipped case is about the device, not the rig: run on
//! `rigs/virtual-differing.yaml` — the virtual meter playing another device
//! (another registration lifetime, its Server object account at /1/1, no
//! /3/0/14 and /3/0/15, no network control, firmware roles only for what it
//! ships) — each case passes or is skipped with its reason, and none fails
//! or errors for the rig's sake.

use std::time::Instant;

use std::path::Path;

use crate::support::{case_files, outcomes, root, run, run_sharded, Outcome, ShardedRun};

const RIG: &str = "rigs/virtual-differing.yaml";

fn find<'a>(all: &'a [Outcome], case: &str) -> &'a Outcome {
    all.iter()
        .find(|o| o.name == case)
        .unwrap_or_else(|| panic!("no testcase {case}"))
}

#[test]
fn every_shipped_case_passes_or_is_skipped_with_its_reason_on_a_differing_rig() {
    let t0 = Instant::now();
    // Two rounds of the soak are enough to show it holds here.
    let run = run_sharded(&["--rig", RIG, "--var", "SOAK_CUTS=2"], 3);
    let wall = t0.elapsed();
    let text = &run.output;
    let all = outcomes(&run.junit);
    assert_eq!(
        all.len(),
        case_files(&root().join("testcases")),
        "one testcase per case file:\n{text}"
    );

    let mut wrong = Vec::new();
    for o in &all {
        match o.verdict.as_deref() {
            None => {}
            Some("skipped") if !o.message.trim().is_empty() => {}
            Some(v) => wrong.push(format!("{}: {v}: {}", o.name, o.message)),
        }
    }
    assert!(
        wrong.is_empty(),
        "on {RIG} every case must pass or be skipped with its reason:\n  {}\n\nrun output:\n{text}",
        wrong.join("\n  ")
    );

    // Each difference is met by a skip naming it, not by a failure...
    for (case, reason) in [
        ("euicc-switch-fails-falls-back", "no network control"),
        ("dm-write-read-back", "/3/0/14"),
        ("power-brownout", "/3/0/15"),
        ("fw-result-not-enough-storage", "`too-large`"),
        ("sw-install-activate-uninstall", "`software`"),
    ] {
        let o = find(&all, case);
        assert_eq!(
            o.verdict.as_deref(),
            Some("skipped"),
            "{case}: {}",
            o.message
        );
        assert!(o.message.contains(reason), "{case}: {}", o.message);
    }
    // ...and the cases that only had to find ids and waits pass.
    for case in [
        "reg-initial",
        "reg-update",
        "dm-reboot",
        "fw-pull-coap-1024",
        "fw-broken-image-rolled-back",
        "power-cut-during-update",
        "power-soak-firmware-update",
        "euicc-switch-profile",
        "obj-binary-app-data",
    ] {
        let o = find(&all, case);
        assert_eq!(o.verdict, None, "{case} should pass here: {}", o.message);
    }

    // The device really was another one: it registered its /1/1 account
    // with the rig's lifetime.
    let case = run.case_dir("virtual-differing", "reg-initial");
    let messages = std::fs::read_to_string(case.join("lwm2m-messages.log")).unwrap();
    assert!(
        messages.contains("lt=42"),
        "Register with lt=42:\n{messages}"
    );
    let steps = std::fs::read_to_string(case.join("steps.log")).unwrap();
    assert!(steps.contains("</1/1>"), "Server object /1/1:\n{steps}");
    assert!(!steps.contains("</1/0>"), "no /1/0:\n{steps}");

    one_page_for_the_shards(&run, &all);

    let passed = all.iter().filter(|o| o.verdict.is_none()).count();
    eprintln!(
        "{RIG}: {passed} passed, {} skipped in {:.0}s",
        all.len() - passed,
        wall.as_secs_f64()
    );
    for o in all.iter().filter(|o| o.verdict.is_some()) {
        eprintln!("  skipped {}: {}", o.name, o.message);
    }
}

/// A lab's way to one page for a run split over benches or shards (as
/// docs/ci does): every shard's case folders copied into one folder, the
/// merged JUnit as its junit.xml, then `meterbench report` on it. Every case
/// is on the page with its evidence read from that folder, not from the
/// shards' own (the JUnit's `artifacts` property names those).
fn one_page_for_the_shards(shards: &ShardedRun, all: &[Outcome]) {
    let merged = tempfile::tempdir().unwrap();
    for shard in &shards.reports {
        copy_case_folders(&shard.path().join("latest"), merged.path());
    }
    std::fs::write(merged.path().join("junit.xml"), &shards.junit).unwrap();
    let out = run(&["report", merged.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "meterbench report on the merged folder: {:?}\n{stderr}",
        out.status
    );
    let page = std::fs::read_to_string(merged.path().join("index.html")).unwrap();
    for o in all {
        let case = o.name.rsplit("::").next().unwrap();
        // A section's id ends in its case id, after `-` (`case-2-reg-initial`)
        // or, for a group trial, after its rig and `group` (`…__group__<id>`).
        assert!(
            ["-", "_"]
                .iter()
                .any(|sep| page.contains(&format!("{sep}{case}\" data-verdict="))),
            "{case} has its section on the merged page"
        );
    }
    for shard in &shards.reports {
        let shard = shard.path().to_str().unwrap();
        assert!(
            !page.contains(shard),
            "evidence read from the merged folder, not from shard {shard}"
        );
    }
    let steps_logs = page.matches("steps.log (").count();
    assert!(
        steps_logs >= all.iter().filter(|o| o.verdict.is_none()).count(),
        "every passed case shows its steps.log from the merged folder ({steps_logs} shown)"
    );
}

/// Copies a run folder's rig folders, with everything in them (the run's
/// own junit.xml, events and page stay behind: the merge replaces them).
fn copy_case_folders(run_dir: &Path, into: &Path) {
    for rig in std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
    {
        if rig.is_dir() {
            copy_tree(&rig, &into.join(rig.file_name().unwrap()));
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map(|e| e.unwrap()) {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
