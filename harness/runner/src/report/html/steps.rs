//! The steps of a case, read back from its step log (steps.log or the
//! JUnit system-out). The engine writes one `[  t s] line  N: step` line per
//! step it starts and indented lines for what the step saw; a step's outcome
//! is not written, it follows from the log: a step followed by another
//! passed, and the last one ended the case with the case's verdict.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Seconds since the case's steps began, as the engine wrote them.
    pub at: String,
    /// The step's line in the case file; none for setup and end lines.
    pub line: Option<u32>,
    pub text: String,
    /// The indented lines under it (results, notes, waits).
    pub details: Vec<String>,
    pub outcome: &'static str,
}

/// `verdict` is the case's verdict as the page names it (`passed`, `failed`...).
pub fn parse(log: &str, verdict: &'static str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for raw in log.lines() {
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        if raw.starts_with(' ') {
            if let Some(last) = steps.last_mut() {
                last.details.push(line.trim_start().to_string());
                continue;
            }
        }
        steps.push(step_line(line));
    }
    // Every step the engine started and left for another one passed.
    let numbered: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.line.is_some())
        .map(|(i, _)| i)
        .collect();
    for (n, &i) in numbered.iter().enumerate() {
        let last = n + 1 == numbered.len();
        steps[i].outcome = match (last, verdict) {
            (false, _) | (true, "passed") | (true, "flaky") => "passed",
            (true, other) => other,
        };
    }
    steps
}

fn step_line(line: &str) -> Step {
    let mut step = Step {
        at: String::new(),
        line: None,
        text: line.to_string(),
        details: Vec::new(),
        outcome: "",
    };
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((at, rest)) = rest.split_once(']') {
            step.at = at.trim().to_string();
            let rest = rest.trim_start();
            step.text = rest.to_string();
            if let Some(numbered) = rest.strip_prefix("line") {
                if let Some((n, text)) = numbered.split_once(':') {
                    if let Ok(n) = n.trim().parse() {
                        step.line = Some(n);
                        step.text = text.trim().to_string();
                    }
                }
            }
        }
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "setup: power on and bring-up
[  0.236s] line  12: await registered
  -> already registered at /rd/ddc6
[  0.300s] line  18: expect /3/0/0 equals \"Nobody\"
  -> saw \"meterbench\"
";

    #[test]
    fn steps_carry_time_line_and_what_they_saw() {
        let steps = parse(LOG, "failed");
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].text, "setup: power on and bring-up");
        assert_eq!(steps[0].line, None);
        assert_eq!(steps[1].at, "0.236s");
        assert_eq!(steps[1].line, Some(12));
        assert_eq!(steps[1].text, "await registered");
        assert_eq!(steps[1].details, vec!["-> already registered at /rd/ddc6"]);
    }

    #[test]
    fn the_last_step_takes_the_cases_verdict_and_the_others_passed() {
        let outcomes: Vec<&str> = parse(LOG, "failed").iter().map(|s| s.outcome).collect();
        assert_eq!(outcomes, vec!["", "passed", "failed"]);
        let outcomes: Vec<&str> = parse(LOG, "passed").iter().map(|s| s.outcome).collect();
        assert_eq!(outcomes, vec!["", "passed", "passed"]);
    }
}
