//! The files a case leaves in its folder, as the page shows them. The
//! artifacts are already scrubbed of keys when written (the transcript masks
//! them, the message logs redact the Security object), so they are shown
//! as they are; a file the page expects but cannot find is named, not fatal.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Shown for every case, named as missing when absent.
const EXPECTED: &[(&str, &str)] = &[
    ("steps.log", "Step log"),
    ("at-transcript.txt", "AT transcript"),
    ("device.log", "Device log"),
];

/// Shown when the rig produced them.
const OPTIONAL: &[(&str, &str)] = &[
    ("rtt.log", "RTT log"),
    ("power.log", "Power log"),
    ("current.csv", "Current samples"),
    ("lwm2m-messages.log", "LwM2M messages"),
    ("bootstrap-messages.log", "Bootstrap messages"),
    ("debug-state.txt", "Debug port state"),
];

/// A page must stay openable: longer files are shown by their end (where
/// a failure usually is) and the rest named by its size.
const MAX_SHOWN: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub title: &'static str,
    /// Relative to the run folder, so the page names the same path wherever
    /// the run was copied to.
    pub path: String,
    pub present: bool,
    pub size: u64,
    pub text: Option<String>,
    /// Bytes at the start of the file that the page leaves out.
    pub omitted: usize,
    /// For current.csv: the measurement, not the samples.
    pub summary: Vec<(String, String)>,
    /// Why a present file could not be read or summarised.
    pub problem: Option<String>,
}

/// The case's folder: `<run>/<rig>/<case>` as RunDir lays it out (this
/// survives moving the run), else the folder the JUnit names.
pub fn case_dir(run_dir: &Path, rig: &str, case: &str, named: Option<&str>) -> PathBuf {
    let laid_out = run_dir.join(rig).join(case);
    match named.map(PathBuf::from) {
        Some(p) if !laid_out.is_dir() && p.is_dir() => p,
        _ => laid_out,
    }
}

pub fn collect(run_dir: &Path, dir: &Path) -> Vec<Artifact> {
    let mut out = Vec::new();
    for &(name, title) in EXPECTED.iter().chain(OPTIONAL) {
        let path = dir.join(name);
        let expected = EXPECTED.iter().any(|(n, _)| *n == name);
        if !path.exists() && !expected {
            continue;
        }
        out.push(read(run_dir, &path, title));
    }
    out
}

fn read(run_dir: &Path, path: &Path, title: &'static str) -> Artifact {
    let shown = path
        .strip_prefix(run_dir)
        .unwrap_or(path)
        .display()
        .to_string();
    let mut a = Artifact {
        title,
        path: shown,
        present: false,
        size: 0,
        text: None,
        omitted: 0,
        summary: Vec::new(),
        problem: None,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return a,
        Err(e) => {
            a.problem = Some(format!("{}: {e}", a.path));
            return a;
        }
    };
    a.present = true;
    a.size = bytes.len() as u64;
    if path.extension().is_some_and(|e| e == "csv") {
        match current_summary(&String::from_utf8_lossy(&bytes)) {
            Ok(s) => a.summary = s,
            Err(e) => a.problem = Some(format!("{}: {e}", a.path)),
        }
        return a;
    }
    let from = bytes.len().saturating_sub(MAX_SHOWN);
    // Start on a line, not inside a UTF-8 sequence.
    let from = match from {
        0 => 0,
        f => bytes[f..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| f + p + 1)
            .unwrap_or(f),
    };
    a.omitted = from;
    a.text = Some(String::from_utf8_lossy(&bytes[from..]).into_owned());
    a
}

/// A current.csv the page cannot summarise, by its line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum CurrentCsvError {
    #[error("line 1: expected the header t_s,volts,amps, found {0:?}")]
    Header(String),
    #[error("line {line}: expected three numbers, found {text:?}")]
    Row { line: usize, text: String },
}

/// Samples, span, peak, mean and least current and the voltage range of a
/// `t_s,volts,amps` file (rig::power::CurrentRecord::to_csv).
fn current_summary(csv: &str) -> Result<Vec<(String, String)>, CurrentCsvError> {
    let mut lines = csv.lines().enumerate();
    match lines.next() {
        Some((_, "t_s,volts,amps")) => {}
        other => {
            return Err(CurrentCsvError::Header(
                other.map(|(_, l)| l).unwrap_or("").to_string(),
            ))
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let values: Result<Vec<f64>, _> =
            line.split(',').map(|v| v.trim().parse::<f64>()).collect();
        match values {
            Ok(v) if v.len() == 3 => rows.push((v[0], v[1], v[2])),
            _ => {
                return Err(CurrentCsvError::Row {
                    line: i + 1,
                    text: line.to_string(),
                })
            }
        }
    }
    if rows.is_empty() {
        return Ok(vec![("samples".into(), "0".into())]);
    }
    let amps = rows.iter().map(|r| r.2);
    let volts = rows.iter().map(|r| r.1);
    let max = |it: &mut dyn Iterator<Item = f64>| it.fold(f64::MIN, f64::max);
    let min = |it: &mut dyn Iterator<Item = f64>| it.fold(f64::MAX, f64::min);
    let mean = rows.iter().map(|r| r.2).sum::<f64>() / rows.len() as f64;
    let span = rows.last().map(|r| r.0).unwrap_or(0.0) - rows[0].0;
    Ok(vec![
        ("samples".into(), rows.len().to_string()),
        ("span".into(), format!("{span:.3} s")),
        (
            "peak current".into(),
            format!("{:.6} A", max(&mut amps.clone())),
        ),
        ("mean current".into(), format!("{mean:.6} A")),
        (
            "least current".into(),
            format!("{:.6} A", min(&mut amps.clone())),
        ),
        (
            "voltage".into(),
            format!(
                "{:.3} V to {:.3} V",
                min(&mut volts.clone()),
                max(&mut volts.clone())
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_expected_artifact_is_named_and_an_absent_optional_one_left_out() {
        let run = tempfile::tempdir().unwrap();
        let dir = run.path().join("bench/dm-read");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("steps.log"), "[  0.000s] passed\n").unwrap();
        let shown = collect(run.path(), &dir);
        let names: Vec<(&str, bool)> = shown.iter().map(|a| (a.path.as_str(), a.present)).collect();
        assert_eq!(
            names,
            vec![
                ("bench/dm-read/steps.log", true),
                ("bench/dm-read/at-transcript.txt", false),
                ("bench/dm-read/device.log", false),
            ]
        );
        assert_eq!(shown[0].text.as_deref(), Some("[  0.000s] passed\n"));
    }

    #[test]
    fn a_long_log_is_shown_by_its_end_from_a_line_start() {
        let run = tempfile::tempdir().unwrap();
        let line = "x".repeat(99) + "\n";
        let text = line.repeat(MAX_SHOWN / 100 + 50) + "LAST\n";
        std::fs::write(run.path().join("device.log"), &text).unwrap();
        let a = read(run.path(), &run.path().join("device.log"), "Device log");
        let shown = a.text.unwrap();
        assert!(shown.ends_with("LAST\n"));
        assert!(shown.starts_with('x'));
        assert_eq!(a.omitted + shown.len(), text.len());
        assert!(a.omitted > 0);
    }

    #[test]
    fn current_csv_is_summarised_with_units() {
        let s =
            current_summary("t_s,volts,amps\n0.0,3.6,0.02\n0.1,3.5,0.18\n0.2,3.6,0.04\n").unwrap();
        let get = |k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("samples"), Some("3"));
        assert_eq!(get("span"), Some("0.200 s"));
        assert_eq!(get("peak current"), Some("0.180000 A"));
        assert_eq!(get("mean current"), Some("0.080000 A"));
        assert_eq!(get("least current"), Some("0.020000 A"));
        assert_eq!(get("voltage"), Some("3.500 V to 3.600 V"));
    }

    #[test]
    fn a_bad_current_csv_row_is_named_by_its_line() {
        let e = current_summary("t_s,volts,amps\n0.0,3.6,0.02\n0.1,oops\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: expected three numbers, found \"0.1,oops\""
        );
    }
}
