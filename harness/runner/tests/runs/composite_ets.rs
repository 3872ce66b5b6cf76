//! The cases that cover the OMA ETS's composite and Send tests in full
//! (int-229, 235, 257, 304-311; docs/ets-coverage.md) run end to end on the
//! virtual rig and pass, each named in the JUnit with the ETS ids it
//! covers; and a device that ignores Mute Send fails the Muting Send case
//! (int-307) with the Send it should not have made as the evidence.

use crate::support::{assert_all_passed, ets_of_case, parse, root, run_cases, CaseRun};

/// Case file (under testcases/composite) and the ETS id it covers.
const ETS_CASES: &[(&str, &str, &str)] = &[
    ("observe-composite.yaml", "composite-observe", "int-304"),
    (
        "observe-composite-cancel.yaml",
        "composite-observe-cancel",
        "int-305",
    ),
    ("send-objects.yaml", "composite-send-objects", "int-306"),
    ("send-muted.yaml", "composite-send-muted", "int-307"),
    (
        "observe-composite-create.yaml",
        "composite-observe-create",
        "int-308",
    ),
    (
        "observe-composite-delete.yaml",
        "composite-observe-delete",
        "int-309",
    ),
    (
        "observe-composite-pmax.yaml",
        "composite-observe-pmax",
        "int-310",
    ),
    ("send-paths.yaml", "composite-send-paths", "int-311"),
    (
        "write-composite-server.yaml",
        "composite-write-server",
        "int-257",
    ),
];

#[test]
fn the_ets_composite_and_send_cases_pass_and_name_their_ets_ids() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    for (file, _, _) in ETS_CASES {
        std::fs::copy(
            root().join("testcases/composite").join(file),
            cases.join(file),
        )
        .unwrap();
    }
    let report = dir.path().join("reports");
    let CaseRun {
        out,
        output,
        xml,
        all,
    } = run_cases(&[], cases.to_str().unwrap(), &report);
    assert_eq!(all.len(), ETS_CASES.len(), "{output}");
    assert_all_passed(&all, &output);
    let doc = parse(&xml);
    for (_, id, ets) in ETS_CASES {
        let ids = ets_of_case(&doc, id, &output);
        assert!(
            ids.contains(&format!("LightweightM2M-1.1-{ets}")),
            "{id} names {ets} in its ets property: {ids:?}"
        );
    }
    assert!(out.status.success(), "{output}");
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
/// back what it read, not the virtual meter's default. Three cases on a
/// one-meter rig, one at a time, in order of their timeouts (a pool starts
/// its longest first): the vendor's setting (false) is written, the shipped
/// case (60 s) runs, the setting is read back.
#[test]
fn the_muting_send_case_puts_back_the_mute_send_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    let case = |id: &str, timeout: &str, step: &str| {
        format!(
            "id: {id}\ntitle: {id}\nets_none: a fixture of this test\ntimeout: {timeout}\nsteps:\n  - await: registered\n    within: 20s\n{step}"
        )
    };
    std::fs::write(
        cases.join("unmuted-by-the-vendor.yaml"),
        case(
            "unmuted-by-the-vendor",
            "90s",
            "  - write: { path: /1/*/23, value: false }\n",
        ),
    )
    .unwrap();
    let shipped =
        std::fs::read_to_string(root().join("testcases/composite/send-muted.yaml")).unwrap();
    assert!(
        shipped.contains("timeout: 60s\n"),
        "ordered between the two"
    );
    std::fs::write(cases.join("send-muted.yaml"), shipped).unwrap();
    std::fs::write(
        cases.join("still-unmuted.yaml"),
        case(
            "still-unmuted",
            "30s",
            "  - read: { path: /1/*/23, equals: false }\n",
        ),
    )
    .unwrap();
    let rig = dir.path().join("one-meter.yaml");
    let one_meter = std::fs::read_to_string(root().join("rigs/virtual.yaml"))
        .unwrap()
        .replacen("count: 5 ", "count: 1 ", 1)
        .replacen("parallel: 5 ", "parallel: 1 ", 1);
    assert!(one_meter.contains("count: 1 ") && one_meter.contains("parallel: 1 "));
    std::fs::write(&rig, one_meter).unwrap();
    let report = dir.path().join("reports");
    let CaseRun { output, all, .. } = run_cases(
        &["--rig", rig.to_str().unwrap()],
        cases.to_str().unwrap(),
        &report,
    );
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
