//! Checking a device's object 5 (or 9) state machine from the outside: the
//! server observes State and Update Result, and this module turns those
//! notifications into the sequence the device went through and the first
//! step the state diagram does not allow.
//!
//! Two things make raw notifications unlike the diagram's steps:
//! - State and Update Result are separate resources, notified separately, in
//!   either order: Downloading → Idle/ConnectionLost arrives as State=Idle
//!   then Result=4 (or the other way round), and the point in between
//!   (Idle/Initial, or Downloading/ConnectionLost) never existed on the
//!   device. Such a half-step is merged with its other half when the merged
//!   step is allowed.
//! - Observation may coalesce: a device with pmin, or one that replaces a
//!   pending notification by a newer one (RFC 7641 §4.5.2), skips states.
//!   A jump is accepted when a path of allowed steps with at most
//!   `max_skipped` unseen statuses explains it; the inferred statuses are
//!   shown in the sequence. [`TransitionRecorder::strict`] sets it to 0.

use std::fmt;
use std::hash::Hash;
use std::time::Instant;

use super::software::{self, SoftwareResult, SoftwareState, SoftwareStatus};
use super::state::{self, FirmwareState, FirmwareStatus, TransitionError, UpdateResult};
use super::{resource, FirmwareError};

/// An update state machine observed through two resources: object 5's
/// State/Update Result or object 9's Update State/Update Result.
pub trait UpdateMachine {
    type Status: Copy + Eq + Hash + fmt::Display + fmt::Debug;
    type State: Copy + Eq + fmt::Debug;
    type Result: Copy + Eq + fmt::Debug;
    /// Object id, for messages.
    const OBJECT: u16;
    const STATE_RESOURCE: u16;
    const RESULT_RESOURCE: u16;
    fn status(state: Self::State, result: Self::Result) -> Self::Status;
    fn parts(status: Self::Status) -> (Self::State, Self::Result);
    fn parse_state(value: i64) -> Result<Self::State, FirmwareError>;
    fn parse_result(value: i64) -> Result<Self::Result, FirmwareError>;
    fn check(from: Self::Status, to: Self::Status) -> Result<(), TransitionError>;
    /// Every status that may be reported (for path search).
    fn all() -> Vec<Self::Status>;
}

/// Object 5, Firmware Update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware;

/// Object 9, Software Management.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Software;

impl UpdateMachine for Firmware {
    type Status = FirmwareStatus;
    type State = FirmwareState;
    type Result = UpdateResult;
    const OBJECT: u16 = 5;
    const STATE_RESOURCE: u16 = resource::STATE;
    const RESULT_RESOURCE: u16 = resource::UPDATE_RESULT;
    fn status(state: FirmwareState, result: UpdateResult) -> FirmwareStatus {
        FirmwareStatus::new(state, result)
    }
    fn parts(s: FirmwareStatus) -> (FirmwareState, UpdateResult) {
        (s.state, s.result)
    }
    fn parse_state(value: i64) -> Result<FirmwareState, FirmwareError> {
        FirmwareState::from_code(value)
    }
    fn parse_result(value: i64) -> Result<UpdateResult, FirmwareError> {
        UpdateResult::from_code(value)
    }
    fn check(from: FirmwareStatus, to: FirmwareStatus) -> Result<(), TransitionError> {
        state::check_transition(from, to)
    }
    fn all() -> Vec<FirmwareStatus> {
        FirmwareState::ALL
            .iter()
            .flat_map(|s| {
                UpdateResult::ALL
                    .iter()
                    .map(|r| FirmwareStatus::new(*s, *r))
            })
            .filter(|st| state::is_consistent(st.state, st.result))
            .collect()
    }
}

impl UpdateMachine for Software {
    type Status = SoftwareStatus;
    type State = SoftwareState;
    type Result = SoftwareResult;
    const OBJECT: u16 = 9;
    const STATE_RESOURCE: u16 = software::resource::UPDATE_STATE;
    const RESULT_RESOURCE: u16 = software::resource::UPDATE_RESULT;
    fn status(state: SoftwareState, result: SoftwareResult) -> SoftwareStatus {
        SoftwareStatus::new(state, result)
    }
    fn parts(s: SoftwareStatus) -> (SoftwareState, SoftwareResult) {
        (s.state, s.result)
    }
    fn parse_state(value: i64) -> Result<SoftwareState, FirmwareError> {
        SoftwareState::from_code(value)
    }
    fn parse_result(value: i64) -> Result<SoftwareResult, FirmwareError> {
        SoftwareResult::from_code(value)
    }
    fn check(from: SoftwareStatus, to: SoftwareStatus) -> Result<(), TransitionError> {
        software::check_transition(from, to)
    }
    fn all() -> Vec<SoftwareStatus> {
        SoftwareState::ALL
            .iter()
            .flat_map(|s| {
                SoftwareResult::ALL
                    .iter()
                    .map(|r| SoftwareStatus::new(*s, *r))
            })
            .filter(|st| software::is_consistent(st.state, st.result))
            .collect()
    }
}

/// One status in the observed sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed<S> {
    /// When the notification completing this status arrived.
    pub at: Instant,
    pub status: S,
    /// Statuses the device must have passed through unseen just before this
    /// one (coalesced notifications), in order.
    pub inferred: Vec<S>,
    /// Whether State and Update Result arrived in separate notifications
    /// and were merged into this one step.
    pub merged: bool,
}

/// The first step of a sequence that the state diagram does not allow,
/// displayed with the whole sequence of raw points.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("object {object}: {error} (at +{at_secs:.3}s)\nobserved: {sequence}")]
pub struct SequenceError {
    pub object: u16,
    pub error: TransitionError,
    /// Seconds after the first sample.
    pub at_secs: f64,
    /// Every raw point, the offending one marked with `✗`.
    pub sequence: String,
}

/// What the recorder concluded: the sequence (merged, with inferred
/// statuses) and the first disallowed step, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording<S> {
    pub sequence: Vec<Observed<S>>,
    pub violation: Option<SequenceError>,
}

/// Collects State / Update Result samples of one object instance. See the
/// module documentation for how separate and coalesced notifications are read.
#[derive(Debug, Clone)]
pub struct TransitionRecorder<M: UpdateMachine> {
    state: Option<M::State>,
    result: Option<M::Result>,
    /// Every distinct (state, result) point, once both are known.
    points: Vec<(Instant, M::Status)>,
    first_at: Option<Instant>,
    max_skipped: usize,
}

/// The recorder for object 5.
pub type FirmwareRecorder = TransitionRecorder<Firmware>;
/// The recorder for object 9.
pub type SoftwareRecorder = TransitionRecorder<Software>;

impl<M: UpdateMachine> Default for TransitionRecorder<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: UpdateMachine> TransitionRecorder<M> {
    /// A recorder that accepts one unseen status per jump.
    pub fn new() -> Self {
        TransitionRecorder {
            state: None,
            result: None,
            points: Vec::new(),
            first_at: None,
            max_skipped: 1,
        }
    }

    /// Accepts jumps over at most `n` unseen statuses.
    pub fn allow_skipped(mut self, n: usize) -> Self {
        self.max_skipped = n;
        self
    }

    /// Every step must be seen (separate State/Result notifications are still merged).
    pub fn strict(self) -> Self {
        self.allow_skipped(0)
    }

    /// The last known status.
    pub fn current(&self) -> Option<M::Status> {
        self.points.last().map(|(_, s)| *s)
    }

    pub fn record_state(&mut self, at: Instant, state: M::State) {
        self.state = Some(state);
        self.push(at);
    }

    pub fn record_result(&mut self, at: Instant, result: M::Result) {
        self.result = Some(result);
        self.push(at);
    }

    /// Both resources from one notification (an instance observation or a Read).
    pub fn record_both(&mut self, at: Instant, state: M::State, result: M::Result) {
        self.state = Some(state);
        self.result = Some(result);
        self.push(at);
    }

    /// A notified resource value: the state resource (object 5: 3) or the
    /// result resource (object 5: 5). Other resources are ignored; values out
    /// of range are an error and change nothing.
    pub fn record_resource(
        &mut self,
        at: Instant,
        resource: u16,
        value: i64,
    ) -> Result<(), FirmwareError> {
        if resource == M::STATE_RESOURCE {
            let s = M::parse_state(value)?;
            self.record_state(at, s);
        } else if resource == M::RESULT_RESOURCE {
            let r = M::parse_result(value)?;
            self.record_result(at, r);
        }
        Ok(())
    }

    fn push(&mut self, at: Instant) {
        self.first_at.get_or_insert(at);
        let (Some(s), Some(r)) = (self.state, self.result) else {
            return;
        };
        let status = M::status(s, r);
        if self.current() != Some(status) {
            self.points.push((at, status));
        }
    }

    /// The sequence and first violation so far.
    pub fn recording(&self) -> Recording<M::Status> {
        let mut out: Vec<Observed<M::Status>> = Vec::new();
        let mut violation = None;
        let mut i = 0;
        while i < self.points.len() {
            let (at, cur) = self.points[i];
            let Some(prev) = out.last().map(|o| o.status) else {
                out.push(observed(at, cur, Vec::new(), false));
                i += 1;
                continue;
            };
            if M::check(prev, cur).is_ok() {
                out.push(observed(at, cur, Vec::new(), false));
                i += 1;
                continue;
            }
            // `cur` is the first half of a step whose other half comes next.
            if let Some(&(next_at, next)) = self.points.get(i + 1) {
                if is_half::<M>(prev, cur, next) && M::check(prev, next).is_ok() {
                    out.push(observed(next_at, next, Vec::new(), true));
                    i += 2;
                    continue;
                }
            }
            // The previous point was the first half of a step completed by `cur`.
            if out.len() >= 2 {
                let before = out[out.len() - 2].status;
                if is_half::<M>(before, prev, cur) && M::check(before, cur).is_ok() {
                    out.pop();
                    out.push(observed(at, cur, Vec::new(), true));
                    i += 1;
                    continue;
                }
            }
            if let Some(path) = shortest_path::<M>(prev, cur, self.max_skipped) {
                out.push(observed(at, cur, path, false));
                i += 1;
                continue;
            }
            // When `prev` looks like half of a step to `cur`, the step the
            // device meant is the one from before it: report that.
            let from = match out.len() {
                n if n >= 2 && is_half::<M>(out[n - 2].status, prev, cur) => out[n - 2].status,
                _ => prev,
            };
            let error = M::check(from, cur)
                .err()
                .unwrap_or_else(|| TransitionError::new(from, cur, "not allowed"));
            violation = Some(SequenceError {
                object: M::OBJECT,
                error,
                at_secs: self.offset_secs(at),
                sequence: self.describe(Some(i)),
            });
            break;
        }
        Recording {
            sequence: out,
            violation,
        }
    }

    /// Ok when every step is allowed; else the first violation with the whole sequence.
    pub fn check(&self) -> Result<Vec<Observed<M::Status>>, SequenceError> {
        let r = self.recording();
        match r.violation {
            Some(v) => Err(v),
            None => Ok(r.sequence),
        }
    }

    fn offset_secs(&self, at: Instant) -> f64 {
        self.first_at
            .map(|t0| at.saturating_duration_since(t0).as_secs_f64())
            .unwrap_or(0.0)
    }

    /// The raw points as `status (+t)` joined by arrows; `mark` is flagged.
    pub fn describe(&self, mark: Option<usize>) -> String {
        self.points
            .iter()
            .enumerate()
            .map(|(i, (at, s))| {
                let flag = if Some(i) == mark { " ✗" } else { "" };
                format!("{s} (+{:.3}s){flag}", self.offset_secs(*at))
            })
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

fn observed<S>(at: Instant, status: S, inferred: Vec<S>, merged: bool) -> Observed<S> {
    Observed {
        at,
        status,
        inferred,
        merged,
    }
}

/// Whether `mid` mixes `a`'s state with `b`'s result or the other way round
/// (one of two separate notifications of the step a -> b).
fn is_half<M: UpdateMachine>(a: M::Status, mid: M::Status, b: M::Status) -> bool {
    let (sa, ra) = M::parts(a);
    let (sm, rm) = M::parts(mid);
    let (sb, rb) = M::parts(b);
    mid != a && mid != b && ((sm == sa && rm == rb) || (sm == sb && rm == ra))
}

/// The shortest chain of unseen statuses (at most `max` of them) through
/// which `from` reaches `to` by allowed steps.
fn shortest_path<M: UpdateMachine>(
    from: M::Status,
    to: M::Status,
    max: usize,
) -> Option<Vec<M::Status>> {
    if max == 0 {
        return None;
    }
    let all = M::all();
    // Breadth-first over paths; the graphs have under 100 nodes.
    let mut frontier: Vec<Vec<M::Status>> = vec![vec![from]];
    for _ in 0..max {
        let mut next = Vec::new();
        for path in &frontier {
            let last = *path.last()?;
            for s in &all {
                if *s == last || path.contains(s) || M::check(last, *s).is_err() {
                    continue;
                }
                if M::check(*s, to).is_ok() && *s != to {
                    return Some(path[1..].iter().copied().chain([*s]).collect());
                }
                let mut p = path.clone();
                p.push(*s);
                next.push(p);
            }
        }
        frontier = next;
    }
    None
}
