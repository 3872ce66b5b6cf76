//! How long each case took in the last run, read back from
//! `<reports>/latest/junit.xml`, so that the next run can start its longest
//! cases first.
//!
//! A case's timeout is a poor guess at its length: a read that answers in
//! 5 ms and a 20-cut soak that takes 35 s may both allow minutes. Scheduled
//! by timeout, a pool of meters can end with one meter running a long case
//! alone while the others idle. The last run's measured times are the
//! estimate that batch schedulers use for the same reason (longest
//! processing time first). Without a last run, or for a case it did not
//! run, the timeout stays the estimate.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Measured case times of one earlier run, by rig and case id.
#[derive(Debug, Default, Clone)]
pub struct PreviousTimes {
    times: HashMap<(String, String), Duration>,
}

impl PreviousTimes {
    /// The times in `<reports>/latest/junit.xml`. A missing or unreadable
    /// report is no history (the first run on a clone has none); it only
    /// changes the order cases start in, never a verdict.
    pub fn load(reports: &Path) -> PreviousTimes {
        std::fs::read_to_string(reports.join("latest").join("junit.xml"))
            .map(|text| PreviousTimes::parse(&text))
            .unwrap_or_default()
    }

    /// Parses JUnit text: testsuites are named `<rig>` or `<rig>::<device>`
    /// (`<rig>::group` for group cases), testcases by case id. A case run on
    /// several devices keeps its longest time.
    pub fn parse(text: &str) -> PreviousTimes {
        let mut times: HashMap<(String, String), Duration> = HashMap::new();
        let Ok(doc) = roxmltree::Document::parse(text) else {
            return PreviousTimes::default();
        };
        for suite in doc.descendants().filter(|n| n.has_tag_name("testsuite")) {
            let rig = suite
                .attribute("name")
                .and_then(|n| n.split("::").next())
                .unwrap_or_default();
            for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
                let (Some(id), Some(secs)) = (
                    case.attribute("name"),
                    case.attribute("time").and_then(|t| t.parse::<f64>().ok()),
                ) else {
                    continue;
                };
                let Ok(took) = Duration::try_from_secs_f64(secs) else {
                    continue;
                };
                let slot = times.entry((rig.to_owned(), id.to_owned())).or_default();
                *slot = (*slot).max(took);
            }
        }
        PreviousTimes { times }
    }

    /// How long `case` took on `rig` last time, if it ran there.
    pub fn of(&self, rig: &str, case: &str) -> Option<Duration> {
        self.times.get(&(rig.to_owned(), case.to_owned())).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="meterbench" tests="4">
<testsuite name="virtual::meter-1" tests="2">
<testcase name="reg-update" classname="virtual.testcases/registration/registration-update.yaml" time="14.994"/>
<testcase name="dm-read-object" classname="virtual.x" time="0.012"/>
</testsuite>
<testsuite name="virtual::meter-2" tests="1">
<testcase name="reg-update" classname="virtual.x" time="15.5"><failure message="x"/></testcase>
</testsuite>
<testsuite name="bench" tests="1">
<testcase name="reg-update" classname="bench.x" time="61"/>
<testcase name="no-time" classname="bench.x"/>
<testcase name="bad-time" classname="bench.x" time="-3"/>
</testsuite>
</testsuites>"#;

    #[test]
    fn each_rig_keeps_a_case_longest_time_over_its_devices() {
        let t = PreviousTimes::parse(REPORT);
        assert_eq!(
            t.of("virtual", "reg-update"),
            Some(Duration::from_millis(15_500))
        );
        assert_eq!(
            t.of("virtual", "dm-read-object"),
            Some(Duration::from_millis(12))
        );
        assert_eq!(t.of("bench", "reg-update"), Some(Duration::from_secs(61)));
    }

    #[test]
    fn a_case_without_a_usable_time_or_not_run_has_none() {
        let t = PreviousTimes::parse(REPORT);
        assert_eq!(t.of("bench", "no-time"), None);
        assert_eq!(t.of("bench", "bad-time"), None);
        assert_eq!(t.of("bench", "dm-read-object"), None);
        assert_eq!(t.of("other", "reg-update"), None);
    }

    #[test]
    fn a_broken_or_missing_report_is_no_history() {
        assert_eq!(
            PreviousTimes::parse("<testsuites><testsuite").times.len(),
            0
        );
        let dir = std::env::temp_dir().join(format!("meterbench-prev-{}", std::process::id()));
        assert_eq!(PreviousTimes::load(&dir).times.len(), 0);
    }
}
