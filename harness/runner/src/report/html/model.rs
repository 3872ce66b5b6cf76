//! What the page shows, read back from a run's junit.xml rather than from the
//! runner's memory: `meterbench report` must rebuild the same page from a
//! finished (or merged) run, so the JUnit is the one source for both.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::artifacts::{self, Artifact};
use super::firmware_plot::{self, FirmwarePlot};
use super::message_log;
use super::power_cuts::{self, Cut};
use super::sequence::{self, Chart};
use super::steps::{self, Step};

/// Suite properties that describe the run or the rig file, not the device.
const RUN_PROPERTIES: &[&str] = &[
    "rig",
    "rig_file",
    "rig_file_sha256",
    "meterbench_version",
    "seed",
];

/// Testcase properties the page shows in their own place.
const CASE_PROPERTIES: &[&str] = &["title", "file", "ets", "artifacts"];

/// The verdicts in the order the table's filter offers them.
pub const VERDICTS: &[&str] = &[
    "passed",
    "failed",
    "error",
    "skipped",
    "flaky",
    "interrupted",
];

#[derive(Debug, Serialize)]
pub struct Page {
    pub title: String,
    pub run: RunFacts,
    pub rigs: Vec<RigSection>,
    /// Case groups, sorted, for the group filter.
    pub groups: Vec<String>,
    pub counts: Vec<VerdictCount>,
    /// What the run folder lacks or could not be read (junit.xml missing...).
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct RunFacts {
    pub run_id: String,
    pub meterbench_version: Option<String>,
    pub start: Option<String>,
    pub duration: Option<String>,
    /// Distinct seeds (a merged run may hold several).
    pub seeds: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RigSection {
    pub name: String,
    pub file: Option<String>,
    pub file_sha256: Option<String>,
    /// Who the device is: endpoint, IMEI, ICCID, firmware before and after
    /// the run, each `None` when the run did not record it.
    pub device: Vec<DeviceFact>,
    /// Every other suite property: modem revision, server address...
    pub identity: Vec<(String, String)>,
    pub cases: Vec<CaseView>,
}

#[derive(Debug, Serialize)]
pub struct DeviceFact {
    pub name: &'static str,
    pub value: Option<String>,
}

/// The identity block's rows and the suite properties that hold them
/// (report/junit.rs writes them).
const DEVICE_FACTS: &[(&str, &str)] = &[
    ("endpoint", "endpoint"),
    ("IMEI", "imei"),
    ("ICCID", "iccid"),
    ("firmware before", "device_firmware_version"),
    ("firmware after", "device_firmware_version_after"),
];

#[derive(Debug, Serialize)]
pub struct VerdictCount {
    pub verdict: &'static str,
    pub count: usize,
}

#[derive(Debug, Serialize)]
pub struct CaseView {
    /// Unique within the page, for links from the table to the case.
    pub anchor: String,
    pub id: String,
    pub title: String,
    pub file: String,
    pub group: String,
    pub verdict: &'static str,
    pub message: Option<String>,
    pub detail: Option<String>,
    pub time: String,
    pub started: Option<String>,
    pub ets: Option<String>,
    pub properties: Vec<(String, String)>,
    /// Earlier attempts (`--retries`): flaky and rerun elements.
    pub attempts: Vec<Attempt>,
    pub steps: Vec<Step>,
    pub artifacts: Vec<Artifact>,
    /// The message sequence chart; none when the case left no message log.
    pub chart: Option<Chart>,
    /// Bytes delivered and object 5 states against time, for a firmware case.
    pub firmware: Option<FirmwarePlot>,
    /// Every power cut of the case, in order.
    pub cuts: Vec<Cut>,
    /// Lines of the case's message logs the page could not read.
    pub evidence_problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Attempt {
    pub kind: String,
    pub message: String,
    pub time: Option<String>,
    pub log: String,
}

/// Reads `run_dir/junit.xml` and each case's artifacts. Never fails: what
/// is missing or unreadable becomes a line of `problems` on the page.
pub fn load(run_dir: &Path) -> Page {
    let junit = run_dir.join("junit.xml");
    let run_id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut page = Page {
        title: format!("meterbench {run_id}"),
        run: RunFacts {
            run_id,
            ..Default::default()
        },
        rigs: Vec::new(),
        groups: Vec::new(),
        counts: Vec::new(),
        problems: Vec::new(),
    };
    match std::fs::read_to_string(&junit) {
        Ok(xml) => match roxmltree::Document::parse(&xml) {
            Ok(doc) => fill(&mut page, &doc, run_dir),
            Err(e) => page
                .problems
                .push(format!("junit.xml:{}: not well-formed XML: {e}", e.pos())),
        },
        Err(e) => page.problems.push(format!(
            "junit.xml is missing from {}: {e}",
            run_dir.display()
        )),
    }
    page.counts = VERDICTS
        .iter()
        .map(|&verdict| VerdictCount {
            verdict,
            count: page
                .rigs
                .iter()
                .flat_map(|r| &r.cases)
                .filter(|c| c.verdict == verdict)
                .count(),
        })
        .collect();
    page
}

fn fill(page: &mut Page, doc: &roxmltree::Document<'_>, run_dir: &Path) {
    let root = doc.root_element();
    if let Some(name) = root.attribute("name") {
        page.title = name.to_string();
        if let Some(id) = name.strip_prefix("meterbench ") {
            page.run.run_id = id.to_string();
        }
    }
    let mut seeds = BTreeSet::new();
    let mut groups = BTreeSet::new();
    let mut span: Option<(
        chrono::DateTime<chrono::FixedOffset>,
        chrono::DateTime<chrono::FixedOffset>,
    )> = None;
    for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
        let props = properties(suite);
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let Some(s) = get("seed") {
            seeds.insert(s);
        }
        if page.run.meterbench_version.is_none() {
            page.run.meterbench_version = get("meterbench_version");
        }
        let name = suite.attribute("name").unwrap_or("rig").to_string();
        let mut section = RigSection {
            file: get("rig_file"),
            file_sha256: get("rig_file_sha256"),
            device: DEVICE_FACTS
                .iter()
                .map(|&(name, key)| DeviceFact {
                    name,
                    value: get(key),
                })
                .collect(),
            identity: props
                .iter()
                .filter(|(k, _)| !RUN_PROPERTIES.contains(&k.as_str()))
                .filter(|(k, _)| !DEVICE_FACTS.iter().any(|(_, p)| p == k))
                .cloned()
                .collect(),
            cases: Vec::new(),
            name,
        };
        for tc in suite.children().filter(|n| n.has_tag_name("testcase")) {
            let case = case_view(tc, &section.name, run_dir, page.rigs.len());
            if let (Some(start), Some(secs)) = (
                tc.attribute("timestamp")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
                tc.attribute("time").and_then(|t| t.parse::<f64>().ok()),
            ) {
                let end = start + chrono::Duration::milliseconds((secs * 1000.0) as i64);
                span = Some(match span {
                    None => (start, end),
                    Some((a, b)) => (a.min(start), b.max(end)),
                });
            }
            groups.insert(case.group.clone());
            section.cases.push(case);
        }
        page.rigs.push(section);
    }
    if let Some((start, end)) = span {
        page.run.start = Some(start.format("%Y-%m-%d %H:%M:%S %:z").to_string());
        page.run.duration = Some(seconds((end - start).num_milliseconds() as f64 / 1000.0));
    }
    page.run.seeds = seeds.into_iter().collect();
    page.groups = groups.into_iter().collect();
}

fn case_view(tc: roxmltree::Node<'_, '_>, rig: &str, run_dir: &Path, rig_index: usize) -> CaseView {
    let id = tc.attribute("name").unwrap_or("case").to_string();
    let props = properties(tc);
    let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let file = get("file").unwrap_or_default();
    let (verdict, status) = verdict(tc);
    let message = status
        .and_then(|s| s.attribute("message"))
        .map(str::to_string);
    // The engine's detail starts with the message; the page shows it once.
    let detail = status
        .and_then(|s| s.text())
        .map(|t| {
            message
                .as_deref()
                .and_then(|m| t.trim_start().strip_prefix(m))
                .unwrap_or(t)
                .trim()
        })
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let system_out = tc
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text())
        .unwrap_or_default();
    let attempts = tc
        .children()
        .filter(|n| {
            n.is_element()
                && (n.tag_name().name().starts_with("flaky")
                    || n.tag_name().name().starts_with("rerun"))
        })
        .map(|n| Attempt {
            kind: n.tag_name().name().to_string(),
            message: n.attribute("message").unwrap_or_default().to_string(),
            time: n.attribute("time").map(|t| format!("{t} s")),
            log: n
                .children()
                .find(|c| c.has_tag_name("system-out"))
                .and_then(|c| c.text())
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    let dir = artifacts::case_dir(run_dir, rig, &id, get("artifacts").as_deref());
    let step_log = std::fs::read_to_string(dir.join("steps.log"))
        .ok()
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| system_out.to_string());
    let (logs, evidence_problems) = message_log::read_case_logs(run_dir, &dir);
    let cuts = power_cuts::parse(&step_log, &props, verdict);
    CaseView {
        chart: sequence::build(&logs),
        firmware: firmware_plot::build(&logs, &step_log),
        evidence_problems,
        anchor: format!("case-{rig_index}-{}", anchor_safe(&id)),
        group: group(&file, &id),
        title: get("title").unwrap_or_default(),
        steps: steps::parse(&step_log, verdict),
        artifacts: artifacts::collect(run_dir, &dir),
        time: tc
            .attribute("time")
            .and_then(|t| t.parse::<f64>().ok())
            .map(seconds)
            .unwrap_or_default(),
        started: tc.attribute("timestamp").map(str::to_string),
        ets: get("ets"),
        properties: props
            .iter()
            .filter(|(k, _)| !CASE_PROPERTIES.contains(&k.as_str()))
            // The cut table shows these.
            .filter(|(k, _)| cuts.is_empty() || !k.starts_with("cut_line_"))
            .cloned()
            .collect(),
        cuts,
        file,
        id,
        verdict,
        message,
        detail,
        attempts,
    }
}

/// The verdict and the element that says it, as junit.rs writes them:
/// `<error type="interrupted">` for a stopped run, a pass with
/// `<flakyError>`s for a pass on a rerun.
fn verdict<'a, 'i>(tc: roxmltree::Node<'a, 'i>) -> (&'static str, Option<roxmltree::Node<'a, 'i>>) {
    let child = |name: &str| tc.children().find(|n| n.has_tag_name(name));
    if let Some(f) = child("failure") {
        return ("failed", Some(f));
    }
    if let Some(e) = child("error") {
        let kind = if e.attribute("type") == Some("interrupted") {
            "interrupted"
        } else {
            "error"
        };
        return (kind, Some(e));
    }
    if let Some(s) = child("skipped") {
        return ("skipped", Some(s));
    }
    if let Some(f) = child("flakyFailure").or_else(|| child("flakyError")) {
        return ("flaky", Some(f));
    }
    ("passed", None)
}

/// The case's folder under testcases/ (`device-management`), else the id's
/// prefix (`dm` of `dm-reboot`), so cases outside testcases/ still group.
fn group(file: &str, id: &str) -> String {
    let parts: Vec<&str> = file.split('/').collect();
    if let Some(i) = parts.iter().position(|p| *p == "testcases") {
        if parts.len() > i + 2 {
            return parts[i + 1].to_string();
        }
    }
    id.split(['-', '_', '.']).next().unwrap_or(id).to_string()
}

fn properties(node: roxmltree::Node<'_, '_>) -> Vec<(String, String)> {
    node.children()
        .filter(|n| n.has_tag_name("properties"))
        .flat_map(|p| p.children().filter(|n| n.has_tag_name("property")))
        .filter_map(|p| {
            Some((
                p.attribute("name")?.to_string(),
                p.attribute("value")?.to_string(),
            ))
        })
        .collect()
}

fn anchor_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn seconds(s: f64) -> String {
    format!("{s:.3} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="meterbench 20261207-1" tests="6">
  <testsuite name="bench-a" tests="6">
    <properties>
      <property name="rig" value="bench-a"/>
      <property name="rig_file" value="rigs/bench-a.yaml"/>
      <property name="rig_file_sha256" value="ab12"/>
      <property name="meterbench_version" value="0.1.0"/>
      <property name="endpoint" value="meter-7"/>
      <property name="device_firmware_version" value="1.0"/>
      <property name="device_firmware_version_after" value="2.0"/>
      <property name="modem_revision" value="R1"/>
      <property name="seed" value="42"/>
    </properties>
    <testcase name="dm-read" timestamp="2026-12-07T03:02:24.000+00:00" time="1.5">
      <properties><property name="file" value="testcases/device-management/read.yaml"/></properties>
      <system-out>[  0.000s] line   9: await registered
  -&gt; already registered
[  0.001s] passed
</system-out>
    </testcase>
    <testcase name="dm-write" timestamp="2026-12-07T03:02:26.000+00:00" time="2">
      <failure message="expected 2, saw 1" type="device">expected 2, saw 1
at line 12</failure>
      <system-out>[  0.000s] line   9: await registered
[  0.100s] line  12: expect /3/0/0 equals 2
</system-out>
    </testcase>
    <testcase name="bs-psk" time="0"><error message="supply timeout" type="bench"/></testcase>
    <testcase name="fw-pull" time="0"><skipped message="no object 5"/></testcase>
    <testcase name="reg-flaky" time="1">
      <flakyError message="port closed" type="bench" time="0.2"><system-out>log of try 1</system-out></flakyError>
    </testcase>
    <testcase name="soak" time="0"><error message="interrupted: stopped" type="interrupted"/></testcase>
  </testsuite>
</testsuites>"#;

    fn run_dir_with(junit: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junit.xml"), junit).unwrap();
        dir
    }

    #[test]
    fn each_junit_status_becomes_its_verdict() {
        let dir = run_dir_with(JUNIT);
        let page = load(dir.path());
        assert!(page.problems.is_empty(), "{:?}", page.problems);
        let verdicts: Vec<(&str, &str)> = page.rigs[0]
            .cases
            .iter()
            .map(|c| (c.id.as_str(), c.verdict))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                ("dm-read", "passed"),
                ("dm-write", "failed"),
                ("bs-psk", "error"),
                ("fw-pull", "skipped"),
                ("reg-flaky", "flaky"),
                ("soak", "interrupted"),
            ]
        );
        let failed = &page.rigs[0].cases[1];
        assert_eq!(failed.message.as_deref(), Some("expected 2, saw 1"));
        assert_eq!(failed.detail.as_deref(), Some("at line 12"));
        let flaky = &page.rigs[0].cases[4];
        assert_eq!(flaky.attempts.len(), 1);
        assert_eq!(flaky.attempts[0].kind, "flakyError");
        assert_eq!(flaky.attempts[0].message, "port closed");
        assert_eq!(flaky.attempts[0].log, "log of try 1");
        let counts: Vec<usize> = page.counts.iter().map(|c| c.count).collect();
        assert_eq!(counts, vec![1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn run_facts_and_identity_come_from_the_suite_properties() {
        let dir = run_dir_with(JUNIT);
        let page = load(dir.path());
        assert_eq!(page.run.run_id, "20261207-1");
        assert_eq!(page.run.meterbench_version.as_deref(), Some("0.1.0"));
        assert_eq!(page.run.seeds, vec!["42".to_string()]);
        assert_eq!(
            page.run.start.as_deref(),
            Some("2026-12-07 03:02:24 +00:00")
        );
        // From the first start to the end of the last timed case.
        assert_eq!(page.run.duration.as_deref(), Some("4.000 s"));
        let rig = &page.rigs[0];
        assert_eq!(rig.file.as_deref(), Some("rigs/bench-a.yaml"));
        assert_eq!(rig.file_sha256.as_deref(), Some("ab12"));
        let device: Vec<(&str, Option<&str>)> = rig
            .device
            .iter()
            .map(|f| (f.name, f.value.as_deref()))
            .collect();
        assert_eq!(
            device,
            vec![
                ("endpoint", Some("meter-7")),
                ("IMEI", None),
                ("ICCID", None),
                ("firmware before", Some("1.0")),
                ("firmware after", Some("2.0")),
            ]
        );
        assert_eq!(
            rig.identity,
            vec![("modem_revision".to_string(), "R1".to_string())]
        );
    }

    #[test]
    fn a_case_groups_by_its_testcases_folder_else_its_id_prefix() {
        assert_eq!(
            group("testcases/device-management/read.yaml", "dm-read"),
            "device-management"
        );
        assert_eq!(group("/tmp/x/wrong.yaml", "bs-psk"), "bs");
        let page = load(run_dir_with(JUNIT).path());
        // dm-write names no file: its id's prefix.
        assert_eq!(
            page.groups,
            vec!["bs", "device-management", "dm", "fw", "reg", "soak"]
        );
    }

    #[test]
    fn a_run_folder_without_junit_says_so_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let page = load(dir.path());
        assert!(page.rigs.is_empty());
        assert_eq!(page.problems.len(), 1);
        assert!(
            page.problems[0].starts_with("junit.xml is missing from"),
            "{:?}",
            page.problems
        );
    }

    #[test]
    fn a_broken_junit_is_named_with_its_line_and_column() {
        let dir = run_dir_with("<testsuites>\n<testsuite name=\"a\">\n</testsuites>");
        let page = load(dir.path());
        assert!(
            page.problems[0].starts_with("junit.xml:3:"),
            "{:?}",
            page.problems
        );
    }
}
