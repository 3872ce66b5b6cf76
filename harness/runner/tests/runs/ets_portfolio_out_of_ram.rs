//! The cases for ETS LightweightM2M-1.1-int-230 (Write-Composite of every
//! instance of Portfolio's Identity with two Server resources) and
//! LightweightM2M-1.0-int-774 (a pushed package that runs the device out
//! of RAM, Update Result 3) pass on the virtual rig and name their ETS ids
//! in the JUnit; a device that answers a Write-Composite 2.04 without
//! applying it fails quoting the read-back, and one that reports Update
//! Result 2 where 3 is due fails naming the result it gave.

use crate::support::{root, run_cases, run_ets_cases, CaseRun};

/// (case file under testcases/, case id, ETS id).
const CASES: &[(&str, &str, &str)] = &[
    (
        "composite/write-composite-multi.yaml",
        "composite-write-multi",
        "LightweightM2M-1.1-int-230",
    ),
    (
        "firmware/result-out-of-ram.yaml",
        "fw-result-out-of-ram",
        "LightweightM2M-1.0-int-774",
    ),
];

fn shipped(file: &str) -> String {
    std::fs::read_to_string(root().join("testcases").join(file)).unwrap()
}

/// `text` with `from` (which must be in it) replaced once by `to`.
fn mutated(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the shipped case has {from:?}");
    text.replacen(from, to, 1)
}

#[test]
fn the_portfolio_write_composite_and_out_of_ram_cases_pass_and_name_their_ets_ids() {
    let (dir, _) = run_ets_cases(CASES);
    let report = dir.path().join("reports");
    // The device went through Downloading to Idle with 3, and the case's
    // cleanup put the Identity strings back.
    let steps = |id: &str| {
        let case_dir = report.join("latest/virtual").join(id);
        std::fs::read_to_string(case_dir.join("steps.log")).unwrap_or_else(|e| {
            // A pool names its case folders by rig and case.
            panic!("{id} steps.log under {}: {e}", case_dir.display())
        })
    };
    let ram = steps("fw-result-out-of-ram");
    assert!(
        ram.contains("Downloading(1)/Initial(0)") && ram.contains("Idle(0)/OutOfRam(3)"),
        "object 5 sequence:\n{ram}"
    );
    assert!(ram.contains("4.13"), "the push refused with 4.13:\n{ram}");
    let multi = steps("composite-write-multi");
    assert!(multi.contains("cleanup passed"), "{multi}");
}

#[test]
fn a_write_not_applied_and_a_wrong_update_result_fail_with_their_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    // The device answers 2.04 but Identity instance 1 keeps what it held:
    // the case's write asks for the value the device already has.
    let not_applied = mutated(
        &shipped("composite/write-composite-multi.yaml"),
        "        /16/*/0/1: bb\n",
        "        /16/*/0/1: \"{saved:identity_1}\"\n",
    );
    std::fs::write(cases.join("not-applied.yaml"), not_applied).unwrap();
    // The device's slot (64 KiB) is now smaller than the RAM it holds a push
    // in (128 KiB): it refuses the package as too large for its flash,
    // Update Result 2, where the case waits for 3.
    let ram = mutated(
        &shipped("firmware/result-out-of-ram.yaml"),
        "  - await: registered\n",
        "  - await: registered\n  - at: { command: fw_slot_size, vars: { bytes: \"65536\" } }\n",
    );
    let ram = mutated(
        &ram,
        "  - await: { path: /5/*/5, equals: 3 }",
        "  - await: { path: /5/*/5, equals: 3, within: 3s }",
    );
    std::fs::write(cases.join("result-2.yaml"), ram).unwrap();
    let report = dir.path().join("reports");
    let CaseRun { output, all, .. } = run_cases(&[], cases.to_str().unwrap(), &report);
    assert_eq!(all.len(), 2, "{output}");
    let outcome = |id: &str| {
        all.iter()
            .find(|o| o.name == id || o.name.ends_with(&format!("::{id}")))
            .unwrap_or_else(|| panic!("no testcase {id}:\n{output}"))
    };
    let o = outcome("composite-write-multi");
    assert_eq!(o.verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        o.message.contains("/16/0/0/1 = \"bb\"")
            && o.message.contains("saw /16/0/0/1 = \"meterbench\""),
        "the failure quotes the read-back, the manufacturer still there: {:?}",
        o.message
    );
    let o = outcome("fw-result-out-of-ram");
    assert_eq!(o.verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        o.message.contains("equals 3") && o.message.contains("saw /5/0/5 = 2"),
        "the failure names the Update Result the device gave: {:?}",
        o.message
    );
}
