//! The run's page, end to end: `meterbench run` writes one self-contained
//! index.html beside junit.xml with a verdict row per case, no key of the
//! run in it, and `meterbench report` rebuilds the same page from the folder.

use crate::support::{run, text, virtual_rig_with_keys};

const PASSING: &str = "id: html-pass\ntitle: registers\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n";

/// Fails on any correct device: no meter is made by this manufacturer. The
/// expected value is markup, so the failure message carries it to the page.
const FAILING: &str = "id: html-fail\ntitle: expects a manufacturer the device does not have\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - expect: { path: /3/0/0, equals: \"<script>alert(1)</script>\" }\n";

const BOOTSTRAP_KEY: &str = "5a6b7c8d9e0f1a2b3c4d5e6f708192a3";
const SERVER_KEY: &str = "c3d2e1f00f1e2d3c4b5a69788796a5b4";

#[test]
fn a_run_writes_one_self_contained_page_that_report_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    std::fs::write(cases.join("pass.yaml"), PASSING).unwrap();
    std::fs::write(cases.join("fail.yaml"), FAILING).unwrap();
    let rig = virtual_rig_with_keys(dir.path(), "html", BOOTSTRAP_KEY, SERVER_KEY);
    let reports = dir.path().join("reports");
    let out = run(&[
        "run",
        "--rig",
        rig.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "one case fails:\n{}", text(&out));
    let run_dir = reports.join("latest").canonicalize().unwrap();
    let page_path = run_dir.join("index.html");
    let page = std::fs::read_to_string(&page_path)
        .unwrap_or_else(|e| panic!("index.html written ({e}):\n{}", text(&out)));

    // Self-contained: nothing fetched, style and script inline.
    for outside in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "<link rel=stylesheet",
        "<link rel=\"stylesheet",
        "@import",
    ] {
        assert!(!page.contains(outside), "the page fetches: {outside}");
    }
    assert!(page.contains("<style>") && page.contains("<script>"));

    // A verdict-table row per case, with its verdict.
    assert_eq!(page.matches("<tr class=\"case\"").count(), 2, "{page}");
    assert_eq!(row_verdict(&page, "html-pass"), "passed");
    assert_eq!(row_verdict(&page, "html-fail"), "failed");

    // The failure message is shown, escaped.
    assert!(!page.contains("<script>alert(1)"), "unescaped markup");
    assert!(page.contains("&lt;script&gt;alert(1)"), "message shown");

    // The run and the device: version, rig file hash, endpoint, steps, transcript.
    assert!(page.contains(concat!("meterbench ", env!("CARGO_PKG_VERSION"))));
    assert!(page.contains("sha256 "), "rig file hash");
    assert!(page.contains("virtual-meter-"), "device endpoint");
    assert!(page.contains("await registered"), "steps");
    assert!(page.contains("AT transcript"), "transcript");

    // No key of the run, in any form the test knows.
    for key in [BOOTSTRAP_KEY, SERVER_KEY] {
        for form in [key.to_string(), key.to_uppercase()] {
            assert!(!page.contains(&form), "the page holds a key");
        }
    }

    // `meterbench report` rebuilds the same page but for its date line.
    let before = without_generated_line(&page);
    std::fs::remove_file(&page_path).unwrap();
    let rebuilt = run(&["report", run_dir.to_str().unwrap()]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    let again = std::fs::read_to_string(&page_path).unwrap();
    assert_eq!(without_generated_line(&again), before);
}

#[test]
fn report_on_a_folder_without_junit_writes_a_page_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("junit.xml is missing"),
        "{}",
        text(&out)
    );
    let page = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(page.contains("junit.xml is missing from"), "{page}");

    let nowhere = dir.path().join("no-such-run");
    let out = run(&["report", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not a run folder"), "{}", text(&out));
}

/// The verdict cell of the case's row in the verdict table.
fn row_verdict<'a>(page: &'a str, case: &str) -> &'a str {
    let row = page
        .lines()
        .find(|l| l.starts_with("<tr class=\"case\"") && l.contains(&format!(">{case}</a>")))
        .unwrap_or_else(|| panic!("a row for {case}"));
    let start = row.find("data-verdict=\"").unwrap() + "data-verdict=\"".len();
    let rest = &row[start..];
    &rest[..rest.find('"').unwrap()]
}

fn without_generated_line(page: &str) -> String {
    page.lines()
        .filter(|l| !l.starts_with("<p class=\"generated\">"))
        .collect::<Vec<_>>()
        .join("\n")
}
