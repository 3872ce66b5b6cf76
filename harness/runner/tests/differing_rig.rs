//! Every shipped case is about the device, not the rig: run on
//! `rigs/virtual-differing.yaml` — the virtual meter playing another device
//! (another registration lifetime, its Server object account at /1/1, no
//! /3/0/14 and /3/0/15, no network control, firmware roles only for what it
//! ships) — each case passes or is skipped with its reason, and none fails
//! or errors for the rig's sake.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RIG: &str = "rigs/virtual-differing.yaml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One testcase of the JUnit: its name, its verdict element (none: passed)
/// and that element's message.
struct Outcome {
    name: String,
    verdict: Option<String>,
    message: String,
}

fn outcomes(xml: &str) -> Vec<Outcome> {
    let doc = roxmltree::Document::parse(xml).expect("junit.xml is well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|tc| {
            let verdict = tc.children().find(|c| {
                c.is_element() && ["failure", "error", "skipped"].contains(&c.tag_name().name())
            });
            Outcome {
                name: tc.attribute("name").unwrap_or_default().to_string(),
                verdict: verdict.map(|v| v.tag_name().name().to_string()),
                message: verdict
                    .and_then(|v| v.attribute("message"))
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect()
}

fn case_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                case_files(&p)
            } else {
                usize::from(p.extension().is_some_and(|e| e == "yaml"))
            }
        })
        .sum()
}

fn find<'a>(all: &'a [Outcome], case: &str) -> &'a Outcome {
    all.iter()
        .find(|o| o.name == case)
        .unwrap_or_else(|| panic!("no testcase {case}"))
}

#[test]
fn every_shipped_case_passes_or_is_skipped_with_its_reason_on_a_differing_rig() {
    let reports = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_meterbench"))
        .current_dir(root())
        .args([
            "run",
            "--rig",
            RIG,
            "--report-dir",
            reports.path().to_str().unwrap(),
            // Two rounds of the soak are enough to show it holds here.
            "--var",
            "SOAK_CUTS=2",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("meterbench starts");
    let wall = t0.elapsed();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(reports.path().join("latest/junit.xml"))
        .unwrap_or_else(|e| panic!("junit.xml written ({e}):\n{text}"));
    let all = outcomes(&xml);
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
    let case = reports.path().join("latest/virtual-differing/reg-initial");
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
