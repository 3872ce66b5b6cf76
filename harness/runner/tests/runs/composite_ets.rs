//! The cases that cover the OMA ETS's composite and Send tests in full
//! (int-229, 235, 257, 304-311; docs/ets-coverage.md) run end to end on the
//! virtual rig and pass, each named in the JUnit with the ETS ids it
//! covers; and a device that ignores Mute Send fails the Muting Send case
//! (int-307) with the Send it should not have made as the evidence.

use crate::support::{assert_all_passed, one_meter_rig, root, run_cases, run_ets_cases, CaseRun};

/// (case file under testcases/, case id, ETS id it covers).
const ETS_CASES: &[(&str, &str, &str)] = &[
    (
        "composite/observe-composite.yaml",
        "composite-observe",
        "LightweightM2M-1.1-int-304",
    ),
    (
        "composite/observe-composite-cancel.yaml",
        "composite-observe-cancel",
        "LightweightM2M-1.1-int-305",
    ),
    (
        "composite/send-objects.yaml",
        "composite-send-objects",
        "LightweightM2M-1.1-int-306",
    ),
    (
        "composite/send-muted.yaml",
        "composite-send-muted",
        "LightweightM2M-1.1-int-307",
    ),
    (
        "composite/observe-composite-create.yaml",
        "composite-observe-create",
        "LightweightM2M-1.1-int-308",
    ),
    (
        "composite/observe-composite-delete.yaml",
        "composite-observe-delete",
        "LightweightM2M-1.1-int-309",
    ),
    (
        "composite/observe-composite-pmax.yaml",
        "composite-observe-pmax",
        "LightweightM2M-1.1-int-310",
    ),
    (
        "composite/send-paths.yaml",
        "composite-send-paths",
        "LightweightM2M-1.1-int-311",
    ),
    (
        "composite/write-composite-server.yaml",
        "composite-write-server",
        "LightweightM2M-1.1-int-257",
    ),
];

#[test]
fn the_ets_composite_and_send_cases_pass_and_name_their_ets_ids() {
    run_ets_cases(ETS_CASES);
}

/// int-307 on a device that Sends although muted: the case, with the step
/// that mutes Send taken out (as if the device ignored the write), fails at
/// its `none_for` check, quoting the Send that came.
#[test]
fn a_device_that_sends_while_muted_fails_the_muting_send_case() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(root().join("testcases/composite/send-muted.yaml")).unwrap();
    let mute = "  - write: { path: /1/*/23, value: true }\n  - sent:";
    assert!(
        shipped.contains(mute),
        "the case mutes Send before its first `sent`"
    );
    let unmuted = shipped.replacen(
        mute,
        "  - write: { path: /1/*/23, value: false }\n  - sent:",
        1,
    );
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    std::fs::write(cases.join("send-not-muted.yaml"), unmuted).unwrap();
    let report = dir.path().join("reports");
    let CaseRun { output, all, .. } = run_cases(&[], cases.to_str().unwrap(), &report);
    assert_eq!(all.len(), 1, "{output}");
    let o = &all[0];
    assert_eq!(o.verdict.as_deref(), Some("failure"), "{output}");
    assert!(
        o.message.contains("no Send of /3/0") && o.message.contains("/3/0/0="),
        "the failure names the check and quotes the Send: {:?}",
        o.message
    );
}

/// A meter shipped with Send unmuted keeps it unmuted after the Muting Send
/// case: the case reads /1/x/23 before it writes it and its cleanup puts
/// back what it read, not the virtual meter's default. Three cases on one
/// meter, one after the other in file order: the vendor's setting (false)
/// is written, the shipped case runs, the setting is read back.
#[test]
fn the_muting_send_case_puts_back_the_mute_send_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    let case = |id: &str, step: &str| {
        format!(
            "id: {id}\ntitle: {id}\nets_none: a fixture of this test\ntimeout: 30s\nsteps:\n  - await: registered\n    within: 20s\n{step}"
        )
    };
    std::fs::write(
        cases.join("a-unmuted-by-the-vendor.yaml"),
        case(
            "unmuted-by-the-vendor",
            "  - write: { path: /1/*/23, value: false }\n",
        ),
    )
    .unwrap();
    std::fs::copy(
        root().join("testcases/composite/send-muted.yaml"),
        cases.join("b-send-muted.yaml"),
    )
    .unwrap();
    std::fs::write(
        cases.join("c-still-unmuted.yaml"),
        case(
            "still-unmuted",
            "  - read: { path: /1/*/23, equals: false }\n",
        ),
    )
    .unwrap();
    let rig = one_meter_rig(dir.path());
    let report = dir.path().join("reports");
    let CaseRun { output, all, .. } = run_cases(&["--rig", &rig], cases.to_str().unwrap(), &report);
    assert_eq!(all.len(), 3, "{output}");
    assert_all_passed(&all, &output);
    let order: Vec<usize> = [
        "unmuted-by-the-vendor",
        "composite-send-muted",
        "still-unmuted",
    ]
    .iter()
    .map(|id| output.find(&format!("::{id}] line")).expect(id))
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "run one after another in this order:\n{output}"
    );
}
