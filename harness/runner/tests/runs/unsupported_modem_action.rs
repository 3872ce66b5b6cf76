//! A case whose `at` step names an action the rig's modem dialect lacks is
//! skipped before its first step, naming the action: the harness never
//! makes up a command. The rig is rigs/virtual.yaml with a copy of the
//! virtual modem's dialect that has no `profiles` command.

use crate::support::{junit_of_run, meterbench, outcomes, root, text};

#[test]
fn an_at_action_the_dialect_lacks_skips_the_case_before_its_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    let dialect = std::fs::read_to_string(root.join("fixtures/modems/meterbench-virtual.yaml"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("profiles:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!dialect.contains("profiles: \"AT+MBPROF?\""));
    let dialect_path = dir.path().join("no-profiles.yaml");
    std::fs::write(&dialect_path, dialect).unwrap();
    let rig = std::fs::read_to_string(root.join("rigs/virtual.yaml"))
        .unwrap()
        .replace("name: virtual\n", "name: virtual-no-profiles\n")
        .replace(
            "dialect: meterbench-virtual ",
            &format!("dialect: {} ", dialect_path.display()),
        );
    assert!(
        rig.contains("no-profiles.yaml"),
        "the rig points at the copy"
    );
    let rig_path = dir.path().join("rig.yaml");
    std::fs::write(&rig_path, rig).unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    std::fs::copy(
        root.join("testcases/euicc/switch-over-at.yaml"),
        cases.join("switch-over-at.yaml"),
    )
    .unwrap();
    let reports = dir.path().join("reports");
    let out = meterbench(&["run", "--rig"])
        .arg(&rig_path)
        .arg("--cases")
        .arg(&cases)
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .expect("meterbench starts");
    let text = text(&out);
    let xml = junit_of_run(&reports, &text);
    let all = outcomes(&xml);
    let case = all
        .first()
        .unwrap_or_else(|| panic!("one testcase:\n{xml}"));
    assert_eq!(
        case.verdict.as_deref(),
        Some("skipped"),
        "the case is skipped:\n{xml}\n{text}"
    );
    let message = &case.message;
    assert!(
        message.contains("not supported by this modem") && message.contains("`profiles`"),
        "{message}"
    );
    // Skipped before its first step: the step log shows none ran.
    assert!(
        !xml.contains("at <enable_first_profile>"),
        "no step ran:\n{xml}"
    );
}
