//! `events.jsonl`: what a run does, one JSON object per line, written and
//! flushed as it happens, so that a dashboard can follow a run that is still
//! going, and large per-case tables (a soak's power cuts, transfer samples)
//! need not crowd the JUnit. The format is documented in docs/events.md:
//! every line has `type` and `at`, case events also `rig` and `case`.
//!
//! Emitters hold an [`EventSink`] or, inside a case, a [`CaseEvents`]: cheap
//! to clone, never blocking (a channel). One writer thread owns the file and
//! the terminal display ([`crate::progress`]), so lines never interleave and
//! a slow disk or terminal never stalls a step.

pub mod power_cuts;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::case::Case;
use crate::report::Verdict;
use crate::steps::StepError;

pub use power_cuts::{PowerCutRecord, PowerCuts};
pub use writer::EventLog;

/// The file every run writes into its folder.
pub const FILE_NAME: &str = "events.jsonl";

/// One thing that happened. Serialized with its variant's name as `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStart {
        run: String,
        version: String,
        #[serde(serialize_with = "as_text")]
        seed: u64,
        rigs: Vec<RigRef>,
        cases: usize,
    },
    CaseStart {
        title: String,
        file: String,
        timeout_ms: u64,
    },
    /// A case that ended in a bench error runs again (`--retries`).
    CaseRetry {
        attempt: u32,
        message: String,
    },
    StepStart {
        source: String,
        line: u32,
        kind: &'static str,
        step: String,
        round: u32,
        within_ms: u64,
    },
    StepEnd {
        source: String,
        line: u32,
        kind: &'static str,
        round: u32,
        outcome: StepOutcome,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Measurement {
        name: String,
        value: f64,
        unit: String,
        limits: Option<Limits>,
    },
    PowerCut(PowerCutRecord),
    /// How the device came back from the latest cut (a `classify` step).
    Recovery {
        round: u32,
        class: &'static str,
    },
    /// A sample of a firmware download from meterbench's file server.
    Transfer {
        image: String,
        peer: String,
        offset: u64,
        size: u64,
        bytes: u64,
        blocks: u32,
        retransmissions: u32,
        elapsed_ms: u64,
        complete: bool,
    },
    /// Progress of flashing the MCU over SWD.
    Flash {
        phase: &'static str,
        done: u64,
        total: Option<u64>,
    },
    /// What one embedded server exchanged with the device during the case.
    Datagrams {
        server: &'static str,
        received: usize,
        sent: usize,
        bytes_received: usize,
        bytes_sent: usize,
        send_errors: usize,
        notes: usize,
    },
    CaseEnd {
        verdict: &'static str,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    RunEnd {
        passed: usize,
        failed: usize,
        errors: usize,
        skipped: usize,
        interrupted: bool,
        duration_ms: u64,
    },
}

/// A seed as a decimal string: seeds use all 64 bits, and a JSON reader
/// in JavaScript keeps integers exact only up to 2^53.
pub(crate) fn as_text<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

/// A rig file of the run: which bench, from which file, and the file's
/// SHA-256, so a dashboard can tell two runs on an edited rig apart.
#[derive(Debug, Clone, Serialize)]
pub struct RigRef {
    pub name: String,
    pub file: String,
    pub sha256: Option<String>,
}

impl RigRef {
    pub fn of(name: &str, file: &Path) -> RigRef {
        use sha2::Digest;
        RigRef {
            name: name.to_string(),
            file: file.display().to_string(),
            sha256: std::fs::read(file)
                .ok()
                .map(|bytes| hex::encode(sha2::Sha256::digest(bytes))),
        }
    }
}

/// The limits a measurement was judged against, when it was.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// How one step ended, in the verdicts' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Passed,
    Failed,
    Error,
    Skipped,
    /// Ended from outside: the case's timeout or the run being interrupted.
    CutOff,
}

impl StepOutcome {
    pub fn of(result: &Result<(), StepError>) -> StepOutcome {
        match result {
            Ok(()) => StepOutcome::Passed,
            Err(e) => Self::of_error(e),
        }
    }

    fn of_error(e: &StepError) -> StepOutcome {
        match e {
            StepError::Device { .. } | StepError::Timeout { .. } => StepOutcome::Failed,
            StepError::Bench(_) => StepOutcome::Error,
            StepError::Skip(_) => StepOutcome::Skipped,
            StepError::InRepeat { error, .. } => Self::of_error(error),
        }
    }
}

/// The name a verdict has in events.jsonl (as in the JUnit: a failure, an
/// error, a skip; an interrupted case is an error there).
pub fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed { .. } => "failed",
        Verdict::Error { .. } => "error",
        Verdict::Skipped { .. } => "skipped",
        Verdict::Interrupted => "interrupted",
    }
}

/// What a verdict says besides its name.
pub fn verdict_message(v: &Verdict) -> Option<String> {
    match v {
        Verdict::Passed | Verdict::Interrupted => None,
        Verdict::Failed { message, .. } | Verdict::Error { message } => Some(message.clone()),
        Verdict::Skipped { reason } => Some(reason.clone()),
    }
}

/// Which rig and case an event belongs to.
#[derive(Debug)]
pub(crate) struct Scope {
    pub rig: String,
    /// The device of a rig with several (`devices:`); `None` otherwise.
    pub device: Option<String>,
    /// The rig's devices are a pool (`each_case: any`): the trial is named
    /// without the device, which events.jsonl still records.
    pub pooled: bool,
    pub case: String,
}

impl Scope {
    /// The trial's name: `<rig>::<case>`, or `<rig>::<device>::<case>` on
    /// a device of a rig with several that each run the case.
    pub fn trial_name(&self) -> String {
        match (&self.device, self.pooled) {
            (Some(d), false) => format!("{}::{d}::{}", self.rig, self.case),
            _ => format!("{}::{}", self.rig, self.case),
        }
    }
}

/// What goes to the writer thread: the event, stamped when it happened.
#[derive(Debug)]
pub(crate) enum Message {
    Event {
        at: chrono::DateTime<chrono::Utc>,
        scope: Option<Arc<Scope>>,
        event: Event,
    },
    /// Answered once everything sent before is written and shown.
    Flush(mpsc::Sender<()>),
    /// Everything sent before has been written: the thread ends.
    Close,
}

/// Where run-wide events go. A sink without a writer (the default, in unit
/// tests) drops what it is given.
#[derive(Debug, Clone, Default)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Message>>,
}

impl EventSink {
    pub fn emit(&self, event: Event) {
        self.send(None, event);
    }

    fn send(&self, scope: Option<Arc<Scope>>, event: Event) {
        if let Some(tx) = &self.tx {
            // The writer ends only after the run's last event: a send that
            // fails has no file left to go to.
            let _ = tx.send(Message::Event {
                at: chrono::Utc::now(),
                scope,
                event,
            });
        }
    }

    /// Waits (up to a second) until what was emitted so far is written
    /// and shown: a case's display is gone before libtest prints its verdict.
    pub fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, shown) = mpsc::channel();
            if tx.send(Message::Flush(done)).is_ok() {
                let _ = shown.recv_timeout(Duration::from_secs(1));
            }
        }
    }

    /// The sink of one case on one rig (on `device` of a rig with
    /// several, `pooled` when they are a pool); `artifacts` is its folder.
    pub fn for_case(
        &self,
        rig: &str,
        device: Option<&str>,
        pooled: bool,
        case: &Case,
        artifacts: &Path,
    ) -> CaseEvents {
        CaseEvents {
            sink: self.clone(),
            scope: Some(Arc::new(Scope {
                rig: rig.to_string(),
                device: device.map(str::to_string),
                pooled,
                case: case.id.clone(),
            })),
            file: case.file.display().to_string(),
            artifacts: Some(artifacts.to_path_buf()),
        }
    }
}

/// The events of one case: each carries its rig and case.
#[derive(Debug, Clone, Default)]
pub struct CaseEvents {
    sink: EventSink,
    scope: Option<Arc<Scope>>,
    file: String,
    artifacts: Option<PathBuf>,
}

impl CaseEvents {
    pub fn emit(&self, event: Event) {
        self.sink.send(self.scope.clone(), event);
    }

    /// The case's artifact folder (none in unit tests).
    pub fn artifacts(&self) -> Option<&Path> {
        self.artifacts.as_deref()
    }

    /// `file:line` of a step of this case.
    pub fn source(&self, line: u32) -> String {
        format!("{}:{line}", self.file)
    }

    /// Emits `step_start`; the returned span emits `step_end` when told how
    /// the step ended, or as `cut_off` if the step is dropped unfinished
    /// (the case's timeout, an interrupted run, a panic).
    pub fn step(
        &self,
        line: u32,
        kind: &'static str,
        step: String,
        round: u32,
        within: Duration,
    ) -> StepSpan {
        self.emit(Event::StepStart {
            source: self.source(line),
            line,
            kind,
            step,
            round,
            within_ms: within.as_millis() as u64,
        });
        StepSpan {
            events: self.clone(),
            line,
            kind,
            round,
            started: std::time::Instant::now(),
            ended: false,
        }
    }
}

/// A running step, until its `step_end`.
pub struct StepSpan {
    events: CaseEvents,
    line: u32,
    kind: &'static str,
    round: u32,
    started: std::time::Instant,
    ended: bool,
}

impl StepSpan {
    pub fn end(mut self, result: &Result<(), StepError>) {
        self.ended = true;
        let message = result.as_ref().err().map(|e| e.to_string());
        self.emit_end(StepOutcome::of(result), message);
    }

    fn emit_end(&self, outcome: StepOutcome, message: Option<String>) {
        self.events.emit(Event::StepEnd {
            source: self.events.source(self.line),
            line: self.line,
            kind: self.kind,
            round: self.round,
            outcome,
            duration_ms: self.started.elapsed().as_millis() as u64,
            message,
        });
    }
}

impl Drop for StepSpan {
    fn drop(&mut self) {
        if !self.ended {
            self.emit_end(StepOutcome::CutOff, None);
        }
    }
}

/// Measurements among a case's JUnit properties: a value written as a
/// number and a unit (`0.012000 A`, `1.5 s`).
pub fn measurements(properties: &[(String, String)]) -> Vec<Event> {
    properties
        .iter()
        .filter_map(|(name, value)| {
            let (number, unit) = value.split_once(' ')?;
            let value: f64 = number.parse().ok()?;
            let unit = unit.trim();
            let is_unit = !unit.is_empty()
                && unit.len() <= 8
                && !unit.contains(' ')
                && unit.chars().all(|c| c.is_ascii_alphabetic() || c == '/');
            is_unit.then(|| Event::Measurement {
                name: name.clone(),
                value,
                unit: unit.to_string(),
                limits: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_with_a_number_and_a_unit_is_a_measurement() {
        let props = vec![
            ("power.current.peak".to_string(), "0.012500 A".to_string()),
            ("power.current.samples".to_string(), "42".to_string()),
            ("title".to_string(), "a 2 second wait".to_string()),
            ("power.current.span".to_string(), "1.500 s".to_string()),
        ];
        let found: Vec<(String, f64, String)> = measurements(&props)
            .into_iter()
            .map(|e| match e {
                Event::Measurement {
                    name, value, unit, ..
                } => (name, value, unit),
                other => panic!("not a measurement: {other:?}"),
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("power.current.peak".to_string(), 0.0125, "A".to_string()),
                ("power.current.span".to_string(), 1.5, "s".to_string()),
            ]
        );
    }

    #[test]
    fn a_step_dropped_unfinished_ends_as_cut_off() {
        let (tx, rx) = mpsc::channel();
        let sink = EventSink { tx: Some(tx) };
        let events = CaseEvents {
            sink,
            scope: None,
            file: "testcases/x.yaml".into(),
            artifacts: None,
        };
        let span = events.step(7, "sleep", "sleep 1s".into(), 0, Duration::from_secs(1));
        drop(span);
        events
            .step(9, "sleep", "sleep 1s".into(), 2, Duration::from_secs(1))
            .end(&Err(StepError::Bench("port gone".into())));
        let ends: Vec<(String, StepOutcome, u32)> = rx
            .try_iter()
            .filter_map(|m| match m {
                Message::Event {
                    event:
                        Event::StepEnd {
                            source,
                            outcome,
                            round,
                            ..
                        },
                    ..
                } => Some((source, outcome, round)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ends,
            vec![
                ("testcases/x.yaml:7".to_string(), StepOutcome::CutOff, 0),
                ("testcases/x.yaml:9".to_string(), StepOutcome::Error, 2),
            ]
        );
    }
}
