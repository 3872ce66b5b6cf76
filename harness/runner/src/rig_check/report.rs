//! The doctor's answer: one row per part of the rig, printed as a table a
//! lab engineer reads at a glance (or JSON for a CI job to keep).

use std::fmt::Write as _;

/// How one part answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    /// The rig has no such part, or the check depends on one that failed.
    Skip,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub part: &'static str,
    pub driver: String,
    pub outcome: Outcome,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn push(
        &mut self,
        part: &'static str,
        driver: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
    ) {
        // A part that failed to build was left out of the bench; the check
        // that later finds it absent must not put "skipped" beside its
        // failure.
        if outcome == Outcome::Skip
            && self
                .rows
                .iter()
                .any(|r| r.part == part && r.outcome == Outcome::Fail)
        {
            return;
        }
        self.rows.push(Row {
            part,
            driver: driver.into(),
            outcome,
            detail: detail.into(),
        });
    }

    pub fn ok(&mut self, part: &'static str, driver: impl Into<String>, detail: impl Into<String>) {
        self.push(part, driver, Outcome::Ok, detail);
    }

    pub fn fail(
        &mut self,
        part: &'static str,
        driver: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(part, driver, Outcome::Fail, detail);
    }

    pub fn skip(
        &mut self,
        part: &'static str,
        driver: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(part, driver, Outcome::Skip, detail);
    }

    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.outcome == Outcome::Fail)
    }

    /// Fixed-width columns; the detail column takes the rest of the line.
    pub fn table(&self) -> String {
        let headers = ["part", "driver", "result"];
        let width = |i: usize, pick: fn(&Row) -> &str| {
            self.rows
                .iter()
                .map(|r| pick(r).chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        };
        let w_part = width(0, |r| r.part);
        let w_driver = width(1, |r| &r.driver);
        let w_result = width(2, |r| r.outcome.label());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:w_part$}  {:w_driver$}  {:w_result$}  detail",
            "part", "driver", "result"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:w_part$}  {:w_driver$}  {:w_result$}  {}",
                r.part,
                r.driver,
                r.outcome.label(),
                r.detail
            );
        }
        out
    }

    pub fn json(&self, rig: &str, file: &std::path::Path) -> String {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "part": r.part,
                    "driver": r.driver,
                    "result": r.outcome.label(),
                    "detail": r.detail,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "rig": rig,
            "file": file.display().to_string(),
            "passed": !self.failed(),
            "parts": rows,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_failed_part_fails_the_report_and_skips_do_not() {
        let mut r = Report::default();
        r.ok("power", "virtual", "on");
        r.skip("network", "-", "no network part");
        assert!(!r.failed());
        r.fail("modem", "serial", "port missing");
        assert!(r.failed());
    }

    #[test]
    fn table_aligns_columns_and_keeps_details() {
        let mut r = Report::default();
        r.ok("power", "virtual meter", "on");
        r.fail("modem", "serial", "/dev/x does not exist");
        let t = r.table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("result").unwrap();
        assert_eq!(&lines[1][col..col + 2], "ok");
        assert_eq!(&lines[2][col..col + 4], "FAIL");
        assert!(lines[2].ends_with("/dev/x does not exist"));
    }
}
