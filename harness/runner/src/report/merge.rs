//! `meterbench junit merge`: one JUnit file from many benches and shards.
//!
//! Each input testsuite (one per rig per run) is kept whole with its
//! properties (rig, endpoint, device firmware, seed...), so the merged file
//! still says which bench and device each verdict came from; a
//! `merged_from` property names the input file. Totals are recounted from
//! the testcases, never copied from the inputs' attributes. A case that
//! appears twice (same rig and case id in two inputs) is refused: it means
//! two shards ran the same case, and counting it twice would hide that.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use quick_junit::{Property, Report, TestCaseStatus, TestSuite};

/// Exit code for an unusable input file, as `meterbench run` uses for bad input.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not well-formed XML: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{}: not a JUnit report: {message}", path.display())]
    NotJunit { path: PathBuf, message: String },
    #[error("testcase `{case}` of suite `{suite}` is in both {} and {}: two shards or jobs ran it", first.display(), second.display())]
    Duplicate {
        suite: String,
        case: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads one JUnit file; a syntax error names its line and column.
pub fn read(path: &Path) -> Result<Report, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // quick-junit's reader says where in the element tree it failed but not
    // on which line; roxmltree gives the line and column of bad XML.
    if let Err(e) = roxmltree::Document::parse(&text) {
        let pos = e.pos();
        return Err(MergeError::Syntax {
            path: path.to_path_buf(),
            line: pos.row,
            column: pos.col,
            message: e.to_string(),
        });
    }
    Report::deserialize_from_str(&text).map_err(|e| MergeError::NotJunit {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Merges reports, each with the file it came from.
pub fn merge(inputs: Vec<(PathBuf, Report)>) -> Result<Report, MergeError> {
    let mut out = Report::new("meterbench merged");
    let mut seen: HashMap<(String, String, String), PathBuf> = HashMap::new();
    let mut suite_names: HashMap<String, usize> = HashMap::new();
    let mut time = std::time::Duration::ZERO;
    let mut earliest = None;
    for (path, report) in inputs {
        time += report.time.unwrap_or_default();
        if let Some(t) = report.timestamp {
            earliest = Some(earliest.map_or(t, |e: chrono::DateTime<_>| e.min(t)));
        }
        for suite in report.test_suites {
            let name = suite.name.as_str().to_string();
            for case in &suite.test_cases {
                let classname = case
                    .classname
                    .as_ref()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default();
                let key = (name.clone(), classname, case.name.as_str().to_string());
                if let Some(first) = seen.insert(key.clone(), path.clone()) {
                    return Err(MergeError::Duplicate {
                        suite: name,
                        case: key.2,
                        first,
                        second: path,
                    });
                }
            }
            // Two shards of one rig each have a suite named after it: the
            // second gets its file's name, so no tool folds them together.
            let count = suite_names.entry(name.clone()).or_default();
            *count += 1;
            let merged_name = if *count == 1 {
                name
            } else {
                format!("{name} [{}]", path.display())
            };
            out.add_test_suite(rebuilt(suite, merged_name, &path));
        }
    }
    out.set_time(time);
    if let Some(t) = earliest {
        out.set_timestamp(t);
    }
    Ok(out)
}

/// The suite with its counts recomputed from its testcases.
fn rebuilt(suite: TestSuite, name: String, source: &Path) -> TestSuite {
    let mut s = TestSuite::new(name);
    s.add_properties(suite.properties);
    s.add_property(Property::new("merged_from", source.display().to_string()));
    if let Some(t) = suite.timestamp {
        s.set_timestamp(t);
    }
    if let Some(t) = suite.time {
        s.set_time(t);
    }
    if let Some(o) = suite.system_out {
        s.set_system_out(o);
    }
    if let Some(e) = suite.system_err {
        s.set_system_err(e);
    }
    s.extra = suite.extra;
    s.add_test_cases(suite.test_cases);
    s
}

/// Passed on a rerun after a failed attempt: counted apart from plain passes.
pub fn flaky_count(report: &Report) -> usize {
    report
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .filter(|c| matches!(&c.status, TestCaseStatus::Success { flaky_runs } if !flaky_runs.is_empty()))
        .count()
}

/// Reads every input, merges, writes `out` atomically.
pub fn merge_files(out: &Path, inputs: &[PathBuf]) -> Result<Report, MergeError> {
    let mut reports = Vec::new();
    for path in inputs {
        reports.push((path.clone(), read(path)?));
    }
    let merged = merge(reports)?;
    let xml = merged.to_string().map_err(|e| MergeError::Write {
        path: out.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| MergeError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    crate::report::write_atomically(out, xml.as_bytes()).map_err(|source| MergeError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(merged)
}

/// The CLI: prints the totals, exits 2 on an unusable input.
pub fn main(out: &Path, inputs: &[PathBuf]) -> ExitCode {
    match merge_files(out, inputs) {
        Ok(r) => {
            let skipped: usize = r.test_suites.iter().map(|s| s.skipped).sum();
            println!(
                "merged {} file(s) into {}: {} tests, {} failures, {} errors, {} skipped, {} flaky",
                inputs.len(),
                out.display(),
                r.tests,
                r.failures,
                r.errors,
                skipped,
                flaky_count(&r)
            );
            ExitCode::SUCCESS
        }
        Err(e @ MergeError::Write { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENCH_A: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="meterbench a" tests="99" failures="0" errors="0">
  <testsuite name="bench-a" tests="99" failures="0" errors="0" skipped="0">
    <properties><property name="rig" value="bench-a"/><property name="seed" value="7"/></properties>
    <testcase name="reg-initial" classname="bench-a.testcases/registration/initial-registration.yaml" time="1.5"/>
    <testcase name="dm-reboot" classname="bench-a.testcases/device-management/reboot.yaml" time="2">
      <flakyError message="bench error: serial port closed" type="bench"/>
    </testcase>
  </testsuite>
</testsuites>
"#;

    const BENCH_B: &str = r#"<testsuites name="meterbench b">
  <testsuite name="bench-b" tests="1" failures="0" errors="0">
    <properties><property name="rig" value="bench-b"/><property name="device_firmware_version" value="1.0"/></properties>
    <testcase name="reg-initial" classname="bench-b.testcases/registration/initial-registration.yaml" time="1">
      <failure message="expected /1 in the object list" type="device">detail</failure>
    </testcase>
    <testcase name="fw-pull" classname="bench-b.testcases/firmware/pull.yaml" time="3">
      <error message="bench error: supply timed out" type="bench"/>
      <rerunError message="bench error: supply timed out" type="bench"/>
    </testcase>
  </testsuite>
</testsuites>
"#;

    fn report(xml: &str) -> Report {
        Report::deserialize_from_str(xml).unwrap()
    }

    #[test]
    fn totals_are_recounted_and_each_benchs_properties_kept() {
        let merged = merge(vec![
            ("a.xml".into(), report(BENCH_A)),
            ("b.xml".into(), report(BENCH_B)),
        ])
        .unwrap();
        assert_eq!((merged.tests, merged.failures, merged.errors), (4, 1, 1));
        assert_eq!(flaky_count(&merged), 1);
        let a = &merged.test_suites[0];
        assert_eq!((a.name.as_str(), a.tests), ("bench-a", 2));
        let props = |s: &TestSuite| -> Vec<(String, String)> {
            s.properties
                .iter()
                .map(|p| (p.name.as_str().into(), p.value.as_str().into()))
                .collect()
        };
        assert_eq!(
            props(a),
            [("rig", "bench-a"), ("seed", "7"), ("merged_from", "a.xml")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        let b = &merged.test_suites[1];
        assert!(props(b).contains(&("device_firmware_version".into(), "1.0".into())));
        // The rerun of a case that kept failing survives the merge.
        let xml = merged.to_string().unwrap();
        assert!(xml.contains("<rerunError"), "{xml}");
        assert!(xml.contains("<flakyError"), "{xml}");
    }

    #[test]
    fn a_case_in_two_inputs_is_refused_naming_both_files() {
        let err = merge(vec![
            ("shard1.xml".into(), report(BENCH_A)),
            ("shard2.xml".into(), report(BENCH_A)),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "testcase `reg-initial` of suite `bench-a` is in both shard1.xml and shard2.xml: two shards or jobs ran it"
        );
    }

    #[test]
    fn bad_xml_is_named_with_its_path_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.xml");
        std::fs::write(
            &path,
            "<testsuites>\n  <testsuite name=\"x\">\n</testsuites>\n",
        )
        .unwrap();
        let err = read(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:3:1: not well-formed XML", path.display())),
            "{text}"
        );
        let missing = dir.path().join("absent.xml");
        assert!(read(&missing)
            .unwrap_err()
            .to_string()
            .starts_with(&missing.display().to_string()));
    }
}
