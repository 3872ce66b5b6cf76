//! `--retries`: a case that ends in a bench error is rerun; a pass on a rerun
//! is reported flaky (`<flakyError>`), never a plain pass, and a case that
//! keeps failing carries its reruns (`<rerunError>`). The bench error here is
//! a lab network command that fails (the first time, or always).

use crate::support::{junit, meterbench, parse, text, verdict_elements};

#[test]
fn a_pass_after_a_bench_error_is_flaky_and_a_lasting_one_lists_its_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("emulator-ready");
    let rig = dir.path().join("netlab.yaml");
    std::fs::write(
        &rig,
        format!(
            "name: netlab\ndevice: {{ endpoint: ep, lifetime: 1m }}\nnetwork:\n  kind: command\n  refuse:\n    \
             profile-1: \"test -e {0} || {{ touch {0}; exit 3; }}\"\n    profile-2: \"exit 3\"\n  accept_all: \"true\"\n",
            marker.display()
        ),
    )
    .unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    for (id, profile) in [("flaky", "profile-1"), ("broken", "profile-2")] {
        std::fs::write(
            cases.join(format!("{id}.yaml")),
            format!(
                "id: bar-{id}\ntitle: bars a profile\nneeds: [network-control]\ntimeout: 10s\nsteps:\n  - network: {{ refuse: {profile} }}\n"
            ),
        )
        .unwrap();
    }
    let reports = dir.path().join("reports");
    let out = meterbench(&["run", "--rig", rig.to_str().unwrap(), "--cases"])
        .arg(&cases)
        .arg("--report-dir")
        .arg(&reports)
        .args(["--retries", "2"])
        .output()
        .unwrap();
    let text = text(&out);
    // The lasting bench error fails the run; the flaky case does not.
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("0 passed, 1 flaky, 0 failed, 1 errors"),
        "{text}"
    );

    let xml = junit(&reports);
    let doc = parse(&xml);
    let verdicts = |id: &str| verdict_elements(&doc, id);
    assert_eq!(verdicts("bar-flaky"), ["flakyError"], "{xml}");
    assert_eq!(
        verdicts("bar-broken"),
        ["error", "rerunError", "rerunError"],
        "{xml}"
    );
    // A flaky pass is a pass in the totals, with its attempts said.
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("errors"), Some("1"), "{xml}");
    assert!(xml.contains(r#"name="attempts" value="2""#), "{xml}");
    assert!(xml.contains(r#"name="attempts" value="3""#), "{xml}");
}
