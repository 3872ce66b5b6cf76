//! Checking a device's object 5 (or 9) state machine from the outside: the
//! server observes State and Update Result, and this module turns those
//! notifications into the sequence the device went through and the first
//! step the state diagram of the device's object version does not allow.
//!
//! State and Update Result are separate resources, notified separately, in
//! either order: Downloading → Idle/ConnectionLost arrives as State=Idle then
//! Result=4 (or the other way round), and the point in between (Idle/Initial,
//! or Downloading/ConnectionLost) never existed on the device. Such a
//! half-step is merged with its other half when the merged step is allowed.
//!
//! # What the recorder infers, and why
//!
//! A notification carries the state a resource has when the device may
//! notify, not every state it passed through: Observe gives only eventual
//! consistency (RFC 7641 §1.3 and §4.5: a newer state replaces one whose
//! notification is still waiting, e.g. behind a confirmable notification in
//! flight), the device must not notify more often than `pmin` (LwM2M 1.1
//! Core §5.1.2, Table 5.1.2-1: a status that lasts less than pmin is never
//! notified), and a new registration ends the observations (Core §6.2), so
//! Updating, which ends in a restart, may never be notified at all. A
//! correct device can therefore show the server Idle → Downloaded (pmin=2
//! over a short download, ETS int-760) or Downloaded → Idle/Success
//! (Updating coalesced by the restart).
//!
//! The recorder infers exactly one kind of thing: **one** unseen status
//! between two seen ones, when the step between them is not allowed, the
//! diagram of the declared version leaves **exactly one** status that fills
//! the gap (both steps allowed), and that status is one the device leaves
//! by itself ([`UpdateMachine::is_transient`]: object 5 Downloading and
//! Updating), so it can begin and end within one pmin. In object 5 these
//! are: Downloading/0 between Idle and Downloaded/0 or a download failure
//! in Idle (Idle/4); Updating/0 between Downloaded and the update's outcome
//! (Idle/1; Downloaded/failure; v1.1's Idle/failure). The inferred status is
//! marked ([`Observed::inferred`]) and shown in brackets in the verdict, so
//! a reader sees what the device did not report.
//!
//! Nothing else is explained away. Idle and Downloaded last until the
//! server acts (a Write, an Execute), so one of them unseen (Downloading →
//! Updating) would need the server to act twice within one pmin: not
//! inferred. A gap that needs two unseen statuses (Idle → Updating: a whole
//! download unseen; Idle/0 → Idle/1: a whole update) or that several
//! statuses could fill (Updating → Idle/0: which failure was kept, then
//! reset?) is a violation: there the notifications do not say what the
//! device did, and a verdict may rest only on them. A status the version
//! does not allow, seen or needed, is a violation too.
//! [`TransitionRecorder::strict`] turns inference off altogether.
//!
//! The diagram depends on the object version ([`ObjectVersion`]): object 5
//! v1.0 returns a failed update to Downloaded only, v1.1 also to Idle and
//! adds Cancel (10) and deferral (11). The caller passes the version the
//! device registered with ([`TransitionRecorder::with_version`],
//! [`ObjectVersion::declared`]); without it the recorder assumes 1.0, as a
//! registration without `ver` means.

use std::fmt;
use std::fmt::Write as _;
use std::hash::Hash;
use std::time::Instant;

use super::software::{self, SoftwareResult, SoftwareState, SoftwareStatus};
use super::state::{self, FirmwareState, FirmwareStatus, TransitionError, UpdateResult};
use super::version::ObjectVersion;
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
    /// One step, for a device implementing `version` of the object.
    fn check(
        version: ObjectVersion,
        from: Self::Status,
        to: Self::Status,
    ) -> Result<(), TransitionError>;
    /// Whether a device implementing `version` may report `status` at all
    /// (checked for the first status observed; later ones by [`Self::check`]).
    fn is_consistent(version: ObjectVersion, status: Self::Status) -> bool;
    /// Every (state, result) pair of the object, consistent or not: the
    /// statuses an unseen gap is searched for.
    fn every_status() -> Vec<Self::Status>;
    /// Whether the device leaves `status` by itself, without a request from
    /// the server (object 5: Downloading, Updating): only such a status may
    /// begin and end unseen between two notifications.
    fn is_transient(status: Self::Status) -> bool;
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
    fn check(
        version: ObjectVersion,
        from: FirmwareStatus,
        to: FirmwareStatus,
    ) -> Result<(), TransitionError> {
        state::check_transition_for(version, from, to)
    }
    fn is_consistent(version: ObjectVersion, s: FirmwareStatus) -> bool {
        state::is_consistent_for(version, s.state, s.result)
    }
    /// Downloading ends when the download completes or fails, Updating when
    /// the update does (Fig. E.6.1-1); Idle and Downloaded wait for the
    /// server's Write or Execute.
    fn is_transient(s: FirmwareStatus) -> bool {
        matches!(
            s.state,
            FirmwareState::Downloading | FirmwareState::Updating
        )
    }
    fn every_status() -> Vec<FirmwareStatus> {
        FirmwareState::ALL
            .iter()
            .flat_map(|s| {
                UpdateResult::ALL
                    .iter()
                    .map(|r| FirmwareStatus::new(*s, *r))
            })
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
    /// Object 9 has one version (1.0); `version` is not consulted.
    fn check(
        _version: ObjectVersion,
        from: SoftwareStatus,
        to: SoftwareStatus,
    ) -> Result<(), TransitionError> {
        software::check_transition(from, to)
    }
    fn is_consistent(_version: ObjectVersion, s: SoftwareStatus) -> bool {
        software::is_consistent(s.state, s.result)
    }
    /// DOWNLOAD STARTED ends when the download completes or fails; every
    /// other Update State waits for the server (or, DOWNLOADED, for the
    /// device's verification, which the recorder does not count on).
    fn is_transient(s: SoftwareStatus) -> bool {
        s.state == SoftwareState::DownloadStarted
    }
    fn every_status() -> Vec<SoftwareStatus> {
        SoftwareState::ALL
            .iter()
            .flat_map(|s| {
                SoftwareResult::ALL
                    .iter()
                    .map(|r| SoftwareStatus::new(*s, *r))
            })
            .collect()
    }
}

/// One status in the observed sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed<S> {
    /// When the notification completing this status arrived.
    pub at: Instant,
    pub status: S,
    /// Whether State and Update Result arrived in separate notifications
    /// and were merged into this one step.
    pub merged: bool,
    /// Whether no notification or read showed this status: it is the one
    /// status the diagram allows between the statuses before and after it
    /// (module documentation). `at` is then when the status after it came.
    pub inferred: bool,
}

/// The first step of a sequence that the state diagram does not allow,
/// displayed with the whole sequence of raw points.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("object {object} v{version}: {error} (at +{at_secs:.3}s)\nobserved: {sequence}")]
pub struct SequenceError {
    pub object: u16,
    /// The object version whose state diagram was applied.
    pub version: ObjectVersion,
    pub error: TransitionError,
    /// Seconds after the first sample.
    pub at_secs: f64,
    /// Every raw point, the offending one marked with `✗`.
    pub sequence: String,
}

/// What the recorder concluded: the sequence (half-steps merged) up to the
/// first disallowed step, and that step, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording<S> {
    pub sequence: Vec<Observed<S>>,
    pub violation: Option<SequenceError>,
}

/// Collects State / Update Result samples of one object instance. See the
/// module documentation for how separate notifications are read.
#[derive(Debug, Clone)]
pub struct TransitionRecorder<M: UpdateMachine> {
    state: Option<M::State>,
    result: Option<M::Result>,
    /// Every distinct (state, result) point, once both are known.
    points: Vec<(Instant, M::Status)>,
    /// The first notified value outside its resource's range: where in
    /// `points` it arrived, when, and why it is refused. A device that
    /// reports it fails, even though it is no status.
    rejected: Option<(usize, Instant, FirmwareError)>,
    first_at: Option<Instant>,
    version: ObjectVersion,
    /// Whether one unseen status may be inferred (module documentation).
    infer: bool,
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
    /// A recorder for an object declared without `ver`, i.e. version 1.0.
    pub fn new() -> Self {
        TransitionRecorder {
            state: None,
            result: None,
            points: Vec::new(),
            rejected: None,
            first_at: None,
            version: ObjectVersion::V1_0,
            infer: true,
        }
    }

    /// Infers no unseen status at all: every change must be notified. For
    /// a caller that knows notifications cannot have been coalesced.
    pub fn strict(mut self) -> Self {
        self.infer = false;
        self
    }

    /// Checks against the state diagram of `version`, the object version the
    /// device declared in its registration ([`ObjectVersion::declared`]).
    pub fn with_version(mut self, version: ObjectVersion) -> Self {
        self.version = version;
        self
    }

    /// The object version the sequence is checked against.
    pub fn version(&self) -> ObjectVersion {
        self.version
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
    /// result resource (object 5: 5). Other resources are ignored. A value
    /// out of range is returned as an error, changes no status, and is kept:
    /// [`check`](Self::check) reports the first one as a violation. (Values a
    /// version does not define, like Update Result 10 from a v1.0 object, are
    /// in range here and refused by the version's state diagram.)
    pub fn record_resource(
        &mut self,
        at: Instant,
        resource: u16,
        value: i64,
    ) -> Result<(), FirmwareError> {
        let parsed = if resource == M::STATE_RESOURCE {
            M::parse_state(value).map(|s| self.record_state(at, s))
        } else if resource == M::RESULT_RESOURCE {
            M::parse_result(value).map(|r| self.record_result(at, r))
        } else {
            Ok(())
        };
        if let Err(e) = &parsed {
            self.first_at.get_or_insert(at);
            if self.rejected.is_none() {
                self.rejected = Some((self.points.len(), at, e.clone()));
            }
        }
        parsed
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
        let v = self.version;
        let mut out: Vec<Observed<M::Status>> = Vec::new();
        let mut i = 0;
        while i < self.points.len() {
            if let Some(r) = self.rejected_before(i, &out) {
                return r;
            }
            let (at, cur) = self.points[i];
            let Some(prev) = out.last().map(|o| o.status) else {
                if !M::is_consistent(v, cur) {
                    let error = TransitionError::new(
                        "(first observed)",
                        cur,
                        format!("not a status object {} v{v} allows", M::OBJECT),
                    );
                    return self.violation(out, error, at, i);
                }
                out.push(observed(at, cur, false));
                i += 1;
                continue;
            };
            if M::check(v, prev, cur).is_ok() {
                out.push(observed(at, cur, false));
                i += 1;
                continue;
            }
            // `cur` is the first half of a step whose other half comes next.
            if let Some(&(next_at, next)) = self.points.get(i + 1) {
                if is_half::<M>(prev, cur, next) && M::check(v, prev, next).is_ok() {
                    out.push(observed(next_at, next, true));
                    i += 2;
                    continue;
                }
            }
            // The previous point was the first half of a step completed by `cur`.
            if out.len() >= 2 {
                let before = out[out.len() - 2].status;
                if is_half::<M>(before, prev, cur) && M::check(v, before, cur).is_ok() {
                    out.pop();
                    out.push(observed(at, cur, true));
                    i += 1;
                    continue;
                }
            }
            // One unseen status the diagram makes certain (module doc):
            // between `prev` and the next point when `cur` is half of that
            // step, or between the status before `prev` and `cur` when
            // `prev` was half of that step, else between `prev` and `cur`.
            // The halves come first: Downloaded/0, Result=5, State=0 is one
            // coalesced update that failed into Idle, not two.
            if let Some(&(next_at, next)) = self.points.get(i + 1) {
                if is_half::<M>(prev, cur, next) {
                    if let Some(mid) = self.only_status_between(prev, next) {
                        out.push(inferred(next_at, mid));
                        out.push(observed(next_at, next, true));
                        i += 2;
                        continue;
                    }
                }
            }
            if out.len() >= 2 && !out[out.len() - 1].inferred {
                let before = out[out.len() - 2].status;
                if is_half::<M>(before, prev, cur) {
                    if let Some(mid) = self.only_status_between(before, cur) {
                        out.pop();
                        out.push(inferred(at, mid));
                        out.push(observed(at, cur, true));
                        i += 1;
                        continue;
                    }
                }
            }
            if let Some(mid) = self.only_status_between(prev, cur) {
                out.push(inferred(at, mid));
                out.push(observed(at, cur, false));
                i += 1;
                continue;
            }
            // Report the step the device meant. A `cur` no device can hold
            // (Updating/8) is half of the step to the next point; a `prev`
            // that looks like half of a step to `cur` was that step's first
            // half, and the step is the one from before it.
            if let Some(&(next_at, next)) = self.points.get(i + 1) {
                if !M::is_consistent(v, cur) && is_half::<M>(prev, cur, next) {
                    if let Err(error) = M::check(v, prev, next) {
                        return self.violation(out, error, next_at, i + 1);
                    }
                }
            }
            let from = match out.len() {
                n if n >= 2 && is_half::<M>(out[n - 2].status, prev, cur) => out[n - 2].status,
                _ => prev,
            };
            let mut error = M::check(v, from, cur)
                .err()
                .or_else(|| M::check(v, prev, cur).err())
                .unwrap_or_else(|| TransitionError::new(prev, cur, "not allowed"));
            if self.infer {
                let fillers = self.statuses_between(from, cur);
                let names: Vec<String> = fillers.iter().map(|s| s.to_string()).collect();
                match fillers[..] {
                    [] => {}
                    [only] => {
                        let _ = write!(
                            error.reason,
                            "; {only} is not inferred between them: the device stays in it until the server acts"
                        );
                    }
                    _ => {
                        let _ = write!(
                            error.reason,
                            "; an unseen status is not inferred, since {} could each fill the gap",
                            names.join(", ")
                        );
                    }
                }
            }
            return self.violation(out, error, at, i);
        }
        if let Some(r) = self.rejected_before(usize::MAX, &out) {
            return r;
        }
        Recording {
            sequence: out,
            violation: None,
        }
    }

    /// The statuses `s` the version allows with `from → s → to` both
    /// allowed steps, when `from → to` itself is not.
    fn statuses_between(&self, from: M::Status, to: M::Status) -> Vec<M::Status> {
        let v = self.version;
        if M::check(v, from, to).is_ok() {
            return Vec::new();
        }
        M::every_status()
            .into_iter()
            .filter(|s| *s != from && *s != to)
            .filter(|s| M::check(v, from, *s).is_ok() && M::check(v, *s, to).is_ok())
            .collect()
    }

    /// The one unseen status the recorder infers between `from` and `to`
    /// (module documentation), if inference is on and there is exactly one.
    fn only_status_between(&self, from: M::Status, to: M::Status) -> Option<M::Status> {
        if !self.infer {
            return None;
        }
        match self.statuses_between(from, to)[..] {
            [only] if M::is_transient(only) => Some(only),
            _ => None,
        }
    }

    /// The violation for a rejected value that arrived before point `i`.
    fn rejected_before(
        &self,
        i: usize,
        out: &[Observed<M::Status>],
    ) -> Option<Recording<M::Status>> {
        let (index, at, e) = self.rejected.as_ref().filter(|(index, ..)| *index <= i)?;
        let from = out
            .last()
            .map(|o| o.status.to_string())
            .unwrap_or_else(|| "(nothing yet)".into());
        let error = TransitionError::new(from, "?", e.to_string());
        let mut r = self.violation(out.to_vec(), error, *at, usize::MAX);
        if let Some(v) = r.violation.as_mut() {
            v.sequence = self.describe_with_rejected(*index);
        }
        Some(r)
    }

    fn violation(
        &self,
        sequence: Vec<Observed<M::Status>>,
        error: TransitionError,
        at: Instant,
        index: usize,
    ) -> Recording<M::Status> {
        Recording {
            sequence,
            violation: Some(SequenceError {
                object: M::OBJECT,
                version: self.version,
                error,
                at_secs: self.offset_secs(at),
                sequence: self.describe(Some(index)),
            }),
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

    /// A concluded sequence ([`check`](Self::check)) as `status (+t)`
    /// joined by arrows, an inferred status in brackets (`[Updating(3)/
    /// Initial(0)] (inferred)`), so a verdict shows what was not notified.
    pub fn describe_sequence(&self, sequence: &[Observed<M::Status>]) -> String {
        sequence
            .iter()
            .map(|o| {
                if o.inferred {
                    format!("[{}] (inferred)", o.status)
                } else {
                    format!("{} (+{:.3}s)", o.status, self.offset_secs(o.at))
                }
            })
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// The raw points as `status (+t)` joined by arrows; `mark` is flagged.
    pub fn describe(&self, mark: Option<usize>) -> String {
        self.point_texts(mark).join(" -> ")
    }

    fn point_texts(&self, mark: Option<usize>) -> Vec<String> {
        self.points
            .iter()
            .enumerate()
            .map(|(i, (at, s))| {
                let flag = if Some(i) == mark { " ✗" } else { "" };
                format!("{s} (+{:.3}s){flag}", self.offset_secs(*at))
            })
            .collect()
    }

    /// [`describe`](Self::describe) with the rejected value shown, flagged,
    /// where it arrived.
    fn describe_with_rejected(&self, index: usize) -> String {
        let mut texts = self.point_texts(None);
        if let Some((_, at, e)) = &self.rejected {
            let value = match e {
                FirmwareError::OutOfRange { what, value } => format!("{what}={value}"),
                other => other.to_string(),
            };
            let text = format!("{value} (+{:.3}s) ✗", self.offset_secs(*at));
            texts.insert(index.min(texts.len()), text);
        }
        texts.join(" -> ")
    }
}

fn observed<S>(at: Instant, status: S, merged: bool) -> Observed<S> {
    Observed {
        at,
        status,
        merged,
        inferred: false,
    }
}

fn inferred<S>(at: Instant, status: S) -> Observed<S> {
    Observed {
        at,
        status,
        merged: false,
        inferred: true,
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
