//! The table of a power case's cuts: each cut's round, the step that made
//! it (its line and trigger), when it fell, the seed that replays it and
//! what became of the device. A 20-round soak is 20 rows, not 40 JUnit
//! properties. Read from the step log, which the engine writes for every
//! cut; the `cut_line_L[_round_R]_seed|at_ms` properties of older runs
//! fill in a seed the log lacks.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cut {
    /// `3/20` inside a repeat.
    pub round: Option<String>,
    /// The cut step's line in the case file.
    pub line: Option<u32>,
    /// What made it: `when 50% of the image has been delivered, restored
    /// after 500ms`, `at a random moment in 0ns..1.5s, ...`, `brownout`.
    pub trigger: String,
    /// When the power went: the step log's `power cut at`, and the time the
    /// cut was planned for (random cuts).
    pub when: String,
    pub seed: Option<String>,
    pub outcome: String,
    /// `recovered`, `rolled-back`, `broken`, `passed`...: the colour.
    pub class: String,
}

/// `verdict` is the case's: the outcome of a cut nothing classified.
pub fn parse(step_log: &str, properties: &[(String, String)], verdict: &str) -> Vec<Cut> {
    let mut cuts: Vec<Cut> = Vec::new();
    let mut round: Option<String> = None;
    for raw in step_log.lines() {
        let text = raw.trim();
        if let Some(r) = text.strip_prefix("round ") {
            round = Some(r.to_string());
            continue;
        }
        let (line, step) = step_text(text);
        if let Some(step) = step {
            let trigger = step
                .strip_prefix("power cut ")
                .or_else(|| (step == "power brownout").then_some("brownout"));
            if let Some(trigger) = trigger {
                cuts.push(Cut {
                    round: round.clone(),
                    line,
                    trigger: trigger.to_string(),
                    when: String::new(),
                    seed: None,
                    outcome: String::new(),
                    class: String::new(),
                });
            }
            continue;
        }
        let Some(cut) = cuts.last_mut() else { continue };
        if let Some(rest) = text.strip_prefix("cut planned at ") {
            let planned = rest.split(' ').next().unwrap_or(rest);
            cut.when = format!("planned at {planned}");
            if let Some(seed) = rest
                .split_once("cut seed ")
                .and_then(|(_, s)| s.split([',', ')']).next())
            {
                cut.seed = Some(seed.to_string());
            }
        } else if let Some(at) = text.strip_prefix("power cut at ") {
            cut.when = if cut.when.is_empty() {
                format!("{at} into the step")
            } else {
                format!("{at} into the step ({})", cut.when)
            };
        } else if let Some(result) = text.strip_prefix("-> ") {
            for class in ["recovered", "rolled back", "broken"] {
                if result.starts_with(class) && cut.class.is_empty() {
                    cut.outcome = result.to_string();
                    cut.class = class.replace(' ', "-");
                }
            }
            if result.starts_with("power restored") && cut.outcome.is_empty() {
                cut.outcome = result.to_string();
            }
        }
    }
    let n = cuts.len();
    for (i, cut) in cuts.iter_mut().enumerate() {
        if cut.seed.is_none() {
            cut.seed = property_seed(properties, cut);
        }
        if cut.when.is_empty() {
            cut.when = "not reached: the power was not cut".into();
        }
        if cut.class.is_empty() {
            // Unclassified: the case's verdict says what followed the last cut.
            let after = if i + 1 == n {
                format!("case {verdict}")
            } else {
                "the case went on".to_string()
            };
            cut.outcome = if cut.outcome.is_empty() {
                after
            } else {
                format!("{}; {after}", cut.outcome)
            };
            cut.class = if i + 1 == n {
                verdict.to_string()
            } else {
                String::new()
            };
        }
    }
    cuts
}

/// `[  0.043s] line  12: power cut ...` or, inside a repeat, `line  18: ...`.
fn step_text(text: &str) -> (Option<u32>, Option<&str>) {
    let text = match text.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(_, r)| r.trim_start()),
        None => text,
    };
    let Some(numbered) = text.strip_prefix("line") else {
        return (None, None);
    };
    match numbered.split_once(':') {
        Some((n, step)) => match n.trim().parse() {
            Ok(n) => (Some(n), Some(step.trim())),
            Err(_) => (None, None),
        },
        None => (None, None),
    }
}

/// The engine's older JUnit properties: `cut_line_18_round_3_seed`, `cut_line_10_seed`.
fn property_seed(properties: &[(String, String)], cut: &Cut) -> Option<String> {
    let line = cut.line?;
    let key = match cut.round.as_deref().and_then(|r| r.split('/').next()) {
        Some(r) => format!("cut_line_{line}_round_{r}_seed"),
        None => format!("cut_line_{line}_seed"),
    };
    properties
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    // From power-soak-firmware-update of a real run (two rounds of 20).
    const SOAK: &str = "[  0.000s] line  10: await registered
  -> already registered at /rd/e392
[  0.000s] line  11: repeat 20 times (5 steps)
  round 1/20
  line  14: firmware upgrade by pull-coap
  line  18: power cut at a random moment in 0ns..1.5s, restored after 300ms
  cut planned at 1.397s (cut seed 6731625795343616990, run seed 1796628694429548532)
  power cut at 1.402s
  -> power restored; the device is on its own
  line  19: classify the device after the cut
  -> reports version Some(\"2.0\"), /5/0/3 Some(0), /5/0/5 Some(1); debug port: running Some(\"2.0\"), boot count Some(\"27\"), active slot Some(\"b\")
  -> recovered: registered, running 2.0, status consistent
  round 2/20
  line  18: power cut at a random moment in 0ns..1.5s, restored after 300ms
  cut planned at 0.911s (cut seed 13650654521038884685, run seed 1796628694429548532)
  power cut at 0.913s
  -> power restored; the device is on its own
  line  19: classify the device after the cut
  -> rolled back: registered, running 1.0, Update Result 8
[ 35.328s] passed
";

    #[test]
    fn each_round_of_a_soak_is_a_row_with_its_seed_and_classification() {
        let cuts = parse(SOAK, &[], "passed");
        assert_eq!(
            cuts,
            vec![
                Cut {
                    round: Some("1/20".into()),
                    line: Some(18),
                    trigger: "at a random moment in 0ns..1.5s, restored after 300ms".into(),
                    when: "1.402s into the step (planned at 1.397s)".into(),
                    seed: Some("6731625795343616990".into()),
                    outcome: "recovered: registered, running 2.0, status consistent".into(),
                    class: "recovered".into(),
                },
                Cut {
                    round: Some("2/20".into()),
                    line: Some(18),
                    trigger: "at a random moment in 0ns..1.5s, restored after 300ms".into(),
                    when: "0.913s into the step (planned at 0.911s)".into(),
                    seed: Some("13650654521038884685".into()),
                    outcome: "rolled back: registered, running 1.0, Update Result 8".into(),
                    class: "rolled-back".into(),
                },
            ]
        );
    }

    #[test]
    fn a_triggered_cut_takes_the_cases_verdict_and_a_seed_from_old_properties() {
        let log = "[  0.043s] line  12: power cut when 50% of the image has been delivered, restored after 500ms
  50.0% of meter-2.0.bin delivered
  power cut at 0.331s
  -> power restored; the device is on its own
[  0.946s] line  13: await registered
[  2.130s] passed
";
        let props = vec![("cut_line_12_seed".to_string(), "42".to_string())];
        let cuts = parse(log, &props, "passed");
        assert_eq!(cuts.len(), 1);
        assert_eq!(
            cuts[0].trigger,
            "when 50% of the image has been delivered, restored after 500ms"
        );
        assert_eq!(cuts[0].when, "0.331s into the step");
        assert_eq!(cuts[0].seed.as_deref(), Some("42"));
        assert_eq!(
            cuts[0].outcome,
            "power restored; the device is on its own; case passed"
        );
        assert_eq!(cuts[0].class, "passed");
    }

    #[test]
    fn a_cut_that_never_came_and_a_brownout_are_rows_too() {
        let log = "[  0.009s] line  12: power brownout
  -> power restored; the device is on its own
[  0.100s] line  13: power cut when /5/*/3 = 3, restored after 500ms
";
        let cuts = parse(log, &[], "failed");
        assert_eq!(cuts[0].trigger, "brownout");
        assert_eq!(
            cuts[0].outcome,
            "power restored; the device is on its own; the case went on"
        );
        assert_eq!(cuts[1].when, "not reached: the power was not cut");
        assert_eq!(cuts[1].outcome, "case failed");
        assert!(parse("[  0.1s] line 3: power cycle\n", &[], "passed").is_empty());
    }
}
