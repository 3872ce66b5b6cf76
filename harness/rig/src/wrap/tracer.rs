//! A record of every call made to a power switch, with its time and what
//! came of it: the `power.log` of a case, which tells a lab engineer whether
//! the device was cut when the case thought it was (a relay that did not
//! switch, a supply that answered late).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::RigError;
use crate::traits::Power;

/// The most events a trace keeps: a long run that polls `is_on` must not
/// grow it without bound; what is dropped is counted.
pub const TRACE_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCall {
    On,
    Off,
    IsOn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// `on`/`off` succeeded.
    Done,
    /// `is_on` answered.
    Answered(bool),
    /// The driver's error, as it would be shown.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerEvent {
    /// When the call returned.
    pub at: DateTime<Utc>,
    pub call: PowerCall,
    pub outcome: CallOutcome,
}

impl PowerEvent {
    /// `2025-01-02T03:04:05.678Z off ok`, `... is_on -> true`, `... on FAILED: ...`.
    pub fn to_line(&self) -> String {
        let call = match self.call {
            PowerCall::On => "on",
            PowerCall::Off => "off",
            PowerCall::IsOn => "is_on",
        };
        let outcome = match &self.outcome {
            CallOutcome::Done => "ok".to_string(),
            CallOutcome::Answered(on) => format!("-> {on}"),
            // One event, one line, whatever the driver's message holds.
            CallOutcome::Failed(e) => format!("FAILED: {}", e.replace(['\r', '\n'], " ")),
        };
        format!(
            "{} {call} {outcome}",
            self.at.to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    }
}

#[derive(Debug, Default)]
struct TraceLog {
    /// Events pushed in total, the dropped ones included: `since` marks
    /// stay valid when the oldest are dropped.
    total: usize,
    events: std::collections::VecDeque<PowerEvent>,
}

/// The shared end of a [`PowerTracer`]: the runner keeps it to write each
/// case's part while the tracer sits inside the bench's power lock.
#[derive(Debug, Clone, Default)]
pub struct PowerTrace(Arc<Mutex<TraceLog>>);

impl PowerTrace {
    fn lock(&self) -> std::sync::MutexGuard<'_, TraceLog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, call: PowerCall, outcome: CallOutcome) {
        let mut log = self.lock();
        if log.events.len() == TRACE_CAPACITY {
            log.events.pop_front();
        }
        log.events.push_back(PowerEvent {
            at: Utc::now(),
            call,
            outcome,
        });
        log.total += 1;
    }

    /// How many events were recorded so far: a mark for [`PowerTrace::since`].
    pub fn mark(&self) -> usize {
        self.lock().total
    }

    /// The events recorded after `mark` (those still kept), oldest first.
    pub fn since(&self, mark: usize) -> Vec<PowerEvent> {
        let log = self.lock();
        let first_kept = log.total - log.events.len();
        let skip = mark.saturating_sub(first_kept);
        log.events.iter().skip(skip).cloned().collect()
    }

    /// Everything still kept, oldest first.
    pub fn events(&self) -> Vec<PowerEvent> {
        self.since(0)
    }

    /// The events after `mark`, one line each.
    pub fn text_since(&self, mark: usize) -> String {
        self.since(mark)
            .iter()
            .map(|e| e.to_line() + "\n")
            .collect()
    }
}

/// A [`Power`] that records each call to the one inside it.
pub struct PowerTracer {
    inner: Box<dyn Power>,
    trace: PowerTrace,
}

impl PowerTracer {
    /// Wraps `inner`; the returned trace reads what it records.
    pub fn new(inner: Box<dyn Power>) -> (PowerTracer, PowerTrace) {
        let trace = PowerTrace::default();
        (
            PowerTracer {
                inner,
                trace: trace.clone(),
            },
            trace,
        )
    }

    fn switched(&self, call: PowerCall, r: &Result<(), RigError>) {
        let outcome = match r {
            Ok(()) => CallOutcome::Done,
            Err(e) => CallOutcome::Failed(e.to_string()),
        };
        self.trace.push(call, outcome);
    }
}

impl Power for PowerTracer {
    fn on(&mut self) -> Result<(), RigError> {
        let r = self.inner.on();
        self.switched(PowerCall::On, &r);
        r
    }
    fn off(&mut self) -> Result<(), RigError> {
        let r = self.inner.off();
        self.switched(PowerCall::Off, &r);
        r
    }
    fn is_on(&mut self) -> bool {
        let on = self.inner.is_on();
        self.trace.push(PowerCall::IsOn, CallOutcome::Answered(on));
        on
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}
