//! Every shipped case is about the device, not the rig: run on
//! `rigs/virtual-differing.yaml` — the virtual meter playing another device
//! (another registration lifetime, its Server object account at /1/1, no
//! /3/0/14 and /3/0/15, no network control, firmware roles only for what it
//! ships) — each case passes or is skipped with its reason, and none fails
//! or errors for the rig's sake.

use std::time::Instant;

use crate::support::{case_files, outcomes, root, run_sharded, Outcome};

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
