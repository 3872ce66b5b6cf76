//! The power cuts of one case: a soak makes dozens, too many for JUnit
//! properties. Each cut goes to events.jsonl as it happens and, when the
//! case ends, to `power-cuts.csv` in the case folder (what the HTML report
//! reads); the JUnit keeps a summary and the seed that replays them.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::events::{CaseEvents, Event};

/// The file in each case folder that lists the case's cuts.
pub const FILE_NAME: &str = "power-cuts.csv";

/// One cut: where in the case, when, what triggered it, and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct PowerCutRecord {
    /// The `power_cut` step's line in the case file.
    pub line: u32,
    /// The `repeat` round (0 outside one).
    pub round: u32,
    /// From the step's start to the cut.
    pub at_ms: u64,
    /// What the step waited for, in the case's words.
    pub trigger: String,
    /// The cut's own seed (`random_within` only).
    #[serde(serialize_with = "optional_text")]
    pub seed: Option<u64>,
    /// The run's seed: `--seed` with it replays every random cut.
    #[serde(serialize_with = "crate::events::as_text")]
    pub run_seed: u64,
    /// `restored`, or why power could not be restored.
    pub outcome: String,
    /// How the device came back, once a `classify` step judged it.
    pub recovery: Option<&'static str>,
}

impl PowerCutRecord {
    /// One line for the end of the run's stderr, for a random cut: what
    /// replays it.
    pub fn replay_line(&self) -> Option<String> {
        let seed = self.seed?;
        Some(format!(
            "line {} round {}: cut at {} ms, seed {seed} (replay: --seed {})",
            self.line, self.round, self.at_ms, self.run_seed
        ))
    }

    /// Restored and, if judged, not broken.
    pub fn passed(&self) -> bool {
        self.outcome == "restored" && self.recovery != Some("broken")
    }
}

/// The cuts a case made so far.
#[derive(Debug, Default)]
pub struct PowerCuts {
    cuts: Vec<PowerCutRecord>,
}

impl PowerCuts {
    pub fn record(&mut self, cut: PowerCutRecord, events: &CaseEvents) {
        events.emit(Event::PowerCut(cut.clone()));
        self.cuts.push(cut);
    }

    /// A `classify` step judged how the device came back from the latest cut.
    pub fn recovered(&mut self, class: &'static str, events: &CaseEvents) {
        if let Some(cut) = self.cuts.last_mut() {
            if cut.recovery.is_none() {
                cut.recovery = Some(class);
                events.emit(Event::Recovery {
                    round: cut.round,
                    class,
                });
            }
        }
    }

    /// The table as CSV, a header and one row per cut.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("line,round,at_ms,trigger,seed,run_seed,outcome,recovery\n");
        for c in &self.cuts {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                c.line,
                c.round,
                c.at_ms,
                csv_field(&c.trigger),
                c.seed.map(|s| s.to_string()).unwrap_or_default(),
                c.run_seed,
                csv_field(&c.outcome),
                c.recovery.unwrap_or("")
            );
        }
        out
    }

    /// Writes `power-cuts.csv` into `dir` (when the case cut power) and
    /// returns the JUnit summary: how many cuts, how many passed, the seed
    /// to replay them, and the file holding the table.
    pub fn finish(&self, dir: Option<&Path>) -> Vec<(String, String)> {
        if self.cuts.is_empty() {
            return Vec::new();
        }
        let mut props = vec![
            ("power_cuts.count".to_string(), self.cuts.len().to_string()),
            (
                "power_cuts.passed".to_string(),
                self.cuts.iter().filter(|c| c.passed()).count().to_string(),
            ),
            (
                "power_cuts.random".to_string(),
                self.cuts
                    .iter()
                    .filter(|c| c.seed.is_some())
                    .count()
                    .to_string(),
            ),
            (
                "power_cuts.replay_seed".to_string(),
                self.cuts[0].run_seed.to_string(),
            ),
        ];
        if let Some(dir) = dir {
            match std::fs::write(dir.join(FILE_NAME), self.to_csv()) {
                Ok(()) => props.push(("power_cuts.file".into(), FILE_NAME.into())),
                Err(e) => props.push((
                    "power_cuts.file_error".into(),
                    format!("{}: {e}", dir.join(FILE_NAME).display()),
                )),
            }
        }
        props
    }
}

/// A seed as a decimal string, or null (see [`crate::events::as_text`]).
fn optional_text<S: serde::Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        Some(n) => s.collect_str(n),
        None => s.serialize_none(),
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(round: u32, seed: Option<u64>, outcome: &str) -> PowerCutRecord {
        PowerCutRecord {
            line: 16,
            round,
            at_ms: 840,
            trigger: "at a random moment in 0ns..2s".into(),
            seed,
            run_seed: 7,
            outcome: outcome.into(),
            recovery: None,
        }
    }

    #[test]
    fn a_soak_leaves_a_csv_table_and_a_junit_summary() {
        let events = CaseEvents::default();
        let mut cuts = PowerCuts::default();
        cuts.record(cut(1, Some(11), "restored"), &events);
        cuts.recovered("recovered", &events);
        cuts.record(cut(2, Some(22), "restored"), &events);
        cuts.recovered("broken", &events);
        cuts.record(cut(3, None, "power on failed: \"no, answer\""), &events);
        let dir = std::env::temp_dir().join(format!("meterbench-cuts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let props = cuts.finish(Some(&dir));
        let get = |n: &str| props.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("power_cuts.count"), Some("3"));
        assert_eq!(get("power_cuts.passed"), Some("1"));
        assert_eq!(get("power_cuts.random"), Some("2"));
        assert_eq!(get("power_cuts.replay_seed"), Some("7"));
        assert_eq!(get("power_cuts.file"), Some(FILE_NAME));
        let csv = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert_eq!(
            csv,
            "line,round,at_ms,trigger,seed,run_seed,outcome,recovery\n\
             16,1,840,at a random moment in 0ns..2s,11,7,restored,recovered\n\
             16,2,840,at a random moment in 0ns..2s,22,7,restored,broken\n\
             16,3,840,at a random moment in 0ns..2s,,7,\"power on failed: \"\"no, answer\"\"\",\n"
        );
        assert_eq!(
            cut(4, Some(44), "restored").replay_line().as_deref(),
            Some("line 16 round 4: cut at 840 ms, seed 44 (replay: --seed 7)")
        );
        assert_eq!(cut(5, None, "restored").replay_line(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
