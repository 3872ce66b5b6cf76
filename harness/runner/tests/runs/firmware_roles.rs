//! Firmware roles derived from the device's own upgrade image: a copy of
//! the virtual rig that maps only `upgrade` runs the shipped cases that need
//! an image the device must refuse (`corrupted`, `too-large`), and they pass
//! on images meterbench derived for the run — served by the same file
//! servers, the rig's store left as it was.

use std::path::{Path, PathBuf};

use crate::support::{junit_of_run, outcomes, parse, root, run, text};

/// The virtual meter's firmware slot (harness/sim/src/firmware/mod.rs,
/// `DEFAULT_SLOT_SIZE`), as a rig states it.
const VIRTUAL_SLOT: &str = "256KiB";
const VIRTUAL_SLOT_BYTES: u64 = 256 * 1024;
/// server::firmware::derive::OVERSIZE_EXCESS.
const EXCESS: u64 = 4096;

/// rigs/virtual.yaml renamed `name`, with its `firmware:` block replaced.
fn virtual_rig_with(dir: &Path, name: &str, firmware: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
    let start = text
        .find("\nfirmware:\n")
        .expect("virtual rig has a firmware block")
        + 1;
    let end = start
        + text[start..]
            .find("\nserver:\n")
            .expect("then a server block")
        + 1;
    let text = format!("{}{firmware}{}", &text[..start], &text[end..]);
    let text = text.replacen("name: virtual\n", &format!("name: {name}\n"), 1);
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the shipped cases `files` (under testcases/firmware/) on `rig`:
/// the JUnit text and the run's output.
fn run_shipped(rig: &Path, files: &[&str]) -> (String, String) {
    let cases = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::copy(
            root().join("testcases/firmware").join(f),
            cases.path().join(f),
        )
        .unwrap();
    }
    let reports = tempfile::tempdir().unwrap();
    let out = run(&[
        "run",
        "--rig",
        rig.to_str().unwrap(),
        "--cases",
        cases.path().to_str().unwrap(),
        "--report-dir",
        reports.path().to_str().unwrap(),
    ]);
    let text = text(&out);
    (junit_of_run(reports.path(), &text), text)
}

/// The step log (system-out) of testcase `name`.
fn step_log(xml: &str, name: &str) -> String {
    let doc = parse(xml);
    let tc = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testcase {name}"));
    tc.descendants()
        .filter(|n| n.has_tag_name("system-out"))
        .filter_map(|n| n.text())
        .collect()
}

fn fixture_store_listing() -> (Vec<String>, String) {
    let dir = root().join("fixtures/firmware");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let manifest = std::fs::read_to_string(dir.join("manifest.yaml")).unwrap();
    (names, manifest)
}

#[test]
fn shipped_refusal_cases_pass_on_images_derived_from_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let rig = virtual_rig_with(
        dir.path(),
        "virtual-upgrade-only",
        &format!(
            "firmware:\n  download_within: 90s\n  update_within: 60s\n  slot_size: {VIRTUAL_SLOT}\n  roles:\n    upgrade: meter-2.0.bin\n"
        ),
    );
    let (_, manifest_before) = fixture_store_listing();
    let (xml, out) = run_shipped(
        &rig,
        &[
            "result-integrity-failure.yaml",
            "result-not-enough-storage.yaml",
            "pull-coap-block2-1024.yaml",
        ],
    );
    let all = outcomes(&xml);
    assert_eq!(all.len(), 3, "{out}");
    for o in &all {
        assert_eq!(
            o.verdict, None,
            "{} must pass: {}\n{out}",
            o.name, o.message
        );
    }

    // The refusals were provoked by derived images, not the generated ones.
    let log = step_log(&xml, "fw-result-integrity-failure");
    assert!(
        log.contains("role corrupted: image corrupted-meter-2.0.bin (65536 bytes, version 2.0)"),
        "{log}"
    );
    let log = step_log(&xml, "fw-result-not-enough-storage");
    let size = VIRTUAL_SLOT_BYTES + EXCESS;
    assert!(
        log.contains(&format!(
            "role too-large: image oversized-meter-2.0.bin ({size} bytes, version 2.0)"
        )),
        "{log}"
    );
    // The rig's store gained nothing and its manifest is unchanged.
    let (names, manifest_after) = fixture_store_listing();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("corrupted-") || n.starts_with("oversized-")),
        "{names:?}"
    );
    assert_eq!(manifest_before, manifest_after);
}

#[test]
fn an_explicit_derivation_runs_and_oversized_without_a_slot_is_skipped_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let rig = virtual_rig_with(
        dir.path(),
        "virtual-no-slot",
        "firmware:\n  download_within: 90s\n  roles:\n    upgrade: meter-2.0.bin\n    corrupted: { derive: corrupted }\n",
    );
    let (xml, out) = run_shipped(
        &rig,
        &[
            "result-integrity-failure.yaml",
            "result-not-enough-storage.yaml",
        ],
    );
    let all = outcomes(&xml);
    assert_eq!(all.len(), 2, "{out}");
    let integrity = all
        .iter()
        .find(|o| o.name == "fw-result-integrity-failure")
        .unwrap();
    assert_eq!(integrity.verdict, None, "{}\n{out}", integrity.message);
    let storage = all
        .iter()
        .find(|o| o.name == "fw-result-not-enough-storage")
        .unwrap();
    assert_eq!(storage.verdict.as_deref(), Some("skipped"), "{out}");
    assert!(
        storage.message.contains("`too-large`") && storage.message.contains("slot_size"),
        "{}",
        storage.message
    );
}

#[test]
fn rig_check_lists_derived_roles_beside_mapped_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rig = virtual_rig_with(
        dir.path(),
        "virtual-check-derived",
        &format!("firmware:\n  slot_size: {VIRTUAL_SLOT}\n  roles:\n    upgrade: meter-2.0.bin\n"),
    );
    let out = crate::support::meterbench(&["rig", "check", rig.to_str().unwrap()])
        .env("METERBENCH_LOCK_DIR", dir.path())
        .output()
        .unwrap();
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("firmware"))
        .unwrap_or_else(|| panic!("no firmware row:\n{text}"));
    for role in [
        "upgrade=meter-2.0.bin (2.0)",
        "corrupted=corrupted-meter-2.0.bin (2.0)",
        "oversized=oversized-meter-2.0.bin (2.0)",
    ] {
        assert!(line.contains(role), "{role} in {line}");
    }
}
