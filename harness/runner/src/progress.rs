//! What a person watching the run sees while it goes. On a terminal: one
//! live display (indicatif) with the case, its current step, elapsed time
//! against the case's timeout and the step's limit, and transfer or flash
//! progress. On a pipe or in CI (`CI` set): plain lines with no control
//! characters, because CI logs keep every byte and show escape codes as
//! noise. The display is fed by the events writer ([`crate::events`]).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, Scope};

/// Whether output must be plain text: stderr is not a terminal, or CI is
/// set (a CI runner may give the job a pseudo-terminal). `NO_COLOR` asks
/// for no colour as well (no-color.org).
pub fn plain_output() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || !std::io::stderr().is_terminal()
}

/// The display; built once per run and handed to the events writer.
pub enum Display {
    Live(Live),
    Plain(Plain),
    /// Shows nothing (unit tests).
    #[cfg(test)]
    Silent,
}

impl Display {
    /// Live on a terminal, plain lines otherwise.
    pub fn for_stderr() -> Display {
        if plain_output() {
            Display::Plain(Plain::default())
        } else {
            Display::Live(Live::new())
        }
    }

    #[cfg(test)]
    pub fn silent() -> Display {
        Display::Silent
    }

    pub fn show(&mut self, scope: Option<&Scope>, event: &Event) {
        match self {
            Display::Live(l) => l.show(scope, event),
            Display::Plain(p) => {
                if let Some(line) = p.line(scope, event) {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
            }
            #[cfg(test)]
            Display::Silent => {}
        }
    }

    /// Removes what is drawn (the run has ended).
    pub fn clear(&mut self) {
        if let Display::Live(l) = self {
            l.clear_case();
        }
    }
}

/// Text from a case file or a device as one printable line: control
/// characters (an AT step's `\r`, an escape in a device string) become
/// spaces, so they cannot move the cursor or colour the log.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn name(scope: Option<&Scope>) -> String {
    match scope {
        Some(s) => printable(&s.trial_name()),
        None => "run".into(),
    }
}

fn human(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    match ms {
        0..=9_999 => format!("{:.1}s", d.as_secs_f64()),
        10_000..=599_999 => format!("{}s", d.as_secs()),
        _ => format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60),
    }
}

/// Plain lines: the case's start, each step as it starts, transfers by
/// quarters, power cuts, flash phases.
#[derive(Default)]
pub struct Plain {
    /// The last quarter of a transfer printed, per image.
    quarters: Vec<(String, u64)>,
    flash_phase: Option<&'static str>,
}

impl Plain {
    pub fn line(&mut self, scope: Option<&Scope>, event: &Event) -> Option<String> {
        let who = name(scope);
        let text = match event {
            Event::CaseStart { timeout_ms, .. } => {
                self.quarters.clear();
                self.flash_phase = None;
                format!("[{who}] started (timeout {})", human(*timeout_ms))
            }
            Event::CaseRetry { attempt, .. } => format!("[{who}] attempt {attempt}"),
            Event::StepStart {
                line,
                step,
                round,
                within_ms,
                ..
            } => {
                let round = match round {
                    0 => String::new(),
                    r => format!(" (round {r})"),
                };
                format!(
                    "[{who}] line {line}{round}: {} (within {})",
                    printable(step),
                    human(*within_ms)
                )
            }
            Event::Transfer {
                image,
                offset,
                size,
                elapsed_ms,
                complete,
                ..
            } => {
                let quarter = if *size == 0 {
                    4
                } else {
                    (offset * 4 / size).min(4)
                };
                let last = self.quarters.iter_mut().find(|(i, _)| i == image);
                match last {
                    Some((_, q)) if *q >= quarter && !complete => return None,
                    Some((_, q)) => *q = quarter,
                    None => self.quarters.push((image.clone(), quarter)),
                }
                format!(
                    "[{who}] {}: {offset}/{size} bytes in {}{}",
                    printable(image),
                    human(*elapsed_ms),
                    if *complete { ", complete" } else { "" }
                )
            }
            Event::Flash { phase, done, total } => {
                let finished = total.is_some_and(|t| *done >= t);
                if self.flash_phase == Some(*phase) && !finished {
                    return None;
                }
                self.flash_phase = Some(*phase);
                match total {
                    Some(t) => format!("[{who}] flash {phase}: {done}/{t} bytes"),
                    None => format!("[{who}] flash {phase}"),
                }
            }
            Event::PowerCut(c) => format!(
                "[{who}] power cut at line {} round {}: {} ms, {}",
                c.line,
                c.round,
                c.at_ms,
                printable(&c.outcome)
            ),
            _ => return None,
        };
        Some(text)
    }
}

/// The live display: a line for the case, one per running step (a
/// `repeat` and the step inside it), one for a transfer or flash.
pub struct Live {
    multi: MultiProgress,
    case: Option<ProgressBar>,
    /// Running steps by (line, round), innermost last.
    steps: Vec<((u32, u32), ProgressBar)>,
    transfer: Option<ProgressBar>,
}

impl Live {
    fn new() -> Live {
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            case: None,
            steps: Vec::new(),
            transfer: None,
        }
    }

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn show(&mut self, scope: Option<&Scope>, event: &Event) {
        match event {
            Event::CaseStart { timeout_ms, .. } => {
                self.clear_case();
                // Below libtest's `test <name> ... `, which the display
                // would otherwise overwrite.
                let _ = writeln!(std::io::stderr());
                // The timeout is fixed per case: part of the template.
                let template = format!(
                    "{{spinner}} {{prefix}} [{{elapsed}} of {}]",
                    human(*timeout_ms).replace(['{', '}'], "")
                );
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(Self::style(&template));
                bar.set_prefix(name(scope));
                bar.enable_steady_tick(Duration::from_millis(200));
                self.case = Some(bar);
            }
            Event::StepStart {
                line,
                step,
                round,
                within_ms,
                ..
            } => {
                let template = format!(
                    "  {{prefix}}: {{wide_msg}} [{{elapsed}} of {}]",
                    human(*within_ms)
                );
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(Self::style(&template));
                bar.set_prefix(match round {
                    0 => format!("line {line}"),
                    r => format!("line {line} round {r}"),
                });
                bar.set_message(printable(step));
                bar.enable_steady_tick(Duration::from_millis(200));
                self.steps.push(((*line, *round), bar));
            }
            Event::StepEnd { line, round, .. } => {
                if let Some(i) = self.steps.iter().rposition(|(k, _)| *k == (*line, *round)) {
                    let (_, bar) = self.steps.remove(i);
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            Event::Transfer {
                image,
                offset,
                size,
                complete,
                ..
            } => {
                let bar = self.progress_bar(
                    "  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    printable(image),
                );
                bar.set_length(*size);
                bar.set_position(*offset);
                if *complete {
                    self.end_transfer();
                }
            }
            Event::Flash { phase, done, total } => {
                let bar = self.progress_bar(
                    "  flash {msg} [{bar:30}] {bytes}/{total_bytes}",
                    phase.to_string(),
                );
                bar.set_message(*phase);
                if let Some(t) = total {
                    bar.set_length(*t);
                }
                bar.set_position(*done);
            }
            Event::CaseEnd { .. } => self.clear_case(),
            _ => {}
        }
    }

    fn progress_bar(&mut self, template: &str, message: String) -> ProgressBar {
        if self.transfer.is_none() {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(Self::style(template));
            bar.set_message(message);
            self.transfer = Some(bar);
        }
        self.transfer.clone().unwrap_or_else(ProgressBar::hidden)
    }

    fn end_transfer(&mut self) {
        if let Some(bar) = self.transfer.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn clear_case(&mut self) {
        self.end_transfer();
        for (_, bar) in self.steps.drain(..) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if let Some(bar) = self.case.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            rig: "virtual".into(),
            device: None,
            pooled: false,
            case: "fw\u{1b}[31m".into(),
        }
    }

    fn transfer(offset: u64, complete: bool) -> Event {
        Event::Transfer {
            image: "meter-2.0.bin".into(),
            peer: "127.0.0.1:5683".into(),
            offset,
            size: 1000,
            bytes: offset,
            blocks: 1,
            retransmissions: 0,
            elapsed_ms: 1500,
            complete,
        }
    }

    #[test]
    fn plain_lines_hold_no_control_characters() {
        let mut p = Plain::default();
        let s = scope();
        let line = p
            .line(
                Some(&s),
                &Event::StepStart {
                    source: "x.yaml:3".into(),
                    line: 3,
                    kind: "at",
                    step: "AT+CFUN=1\r\n\u{1b}[2J".into(),
                    round: 2,
                    within_ms: 65_000,
                },
            )
            .unwrap();
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert_eq!(
            line,
            "[virtual::fw [31m] line 3 (round 2): AT+CFUN=1   [2J (within 65s)"
        );
    }

    #[test]
    fn a_transfer_is_printed_by_quarters_and_at_its_end() {
        let mut p = Plain::default();
        let s = scope();
        let printed: Vec<bool> = [
            (0, false),
            (100, false),
            (260, false),
            (300, false),
            (1000, true),
        ]
        .into_iter()
        .map(|(o, c)| p.line(Some(&s), &transfer(o, c)).is_some())
        .collect();
        assert_eq!(printed, vec![true, false, true, false, true]);
    }
}
