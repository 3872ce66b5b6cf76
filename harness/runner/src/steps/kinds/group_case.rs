//! Running a group case (`group:` in the case file): one case on all the
//! devices of a rig at once, each device with its own session (its own
//! embedded server, bench drivers, credentials) and its own case context.
//!
//! Steps that act on the group (`group`, `campaign`) see every member. Any
//! other step runs on every member, concurrently (at most
//! [`MEMBERS_AT_ONCE`] at a time), exactly as it runs in a case for one
//! device; the step passes when it passed on every member, and a member
//! where it went wrong decides the verdict, named in it (`... on meter-2`).
//! So `await: registered` or `power: cycle` in a group case mean "on every
//! member", and a case reads like the spec: set the group up, act on it,
//! check it.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use lwm2m::server::DmRequest;
use tokio::sync::Semaphore;

use crate::case::{Case, CaseStep};
use crate::report::Verdict;
use crate::session::{RoleError, Session};
use crate::steps::context::Marks;
use crate::steps::engine::{run_step, under_limit, CaseControl, CaseRun};
use crate::steps::error::{timed_out, StepError};
use crate::steps::judge::{failure, judge};
use crate::steps::{needs, CaseContext, Restart, StepKind, Turn, Wait};

/// How many members a step that runs on every member drives at once: a
/// group of a few meters runs in one go, a rack of many does not flood
/// the bench's shared parts (the runtime's 2 workers, the serial ports).
pub const MEMBERS_AT_ONCE: usize = 8;

/// One device of the group: its name in the rig (`meter-2`), its session
/// and what the case remembers about it.
pub struct Member<'s> {
    pub name: String,
    pub session: &'s mut Session,
    pub ctx: CaseContext,
    /// How much of `ctx.log` the group's step log already shows.
    shown: usize,
}

impl<'s> Member<'s> {
    pub fn new(name: String, session: &'s mut Session, case: &Case, control: &CaseControl) -> Self {
        let mut ctx = CaseContext::new(session, &case.id);
        ctx.events = control.events.clone();
        Member {
            name,
            session,
            ctx,
            shown: 0,
        }
    }
}

/// Whether a step acts on the group as a whole (and so only in a group case).
pub fn acts_on_group(kind: &StepKind) -> bool {
    matches!(kind, StepKind::Group(_) | StepKind::Campaign(_))
}

/// Polls every future to its end, side by side on this task, and gives
/// their outputs in order. The futures borrow one member each, so they
/// cannot be spawned.
pub use futures_util::future::join_all;

/// A future of one member's part in a step.
pub type MemberFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs the members' futures, at most `at_once` at a time, and gives the
/// results in the members' order.
pub async fn at_most<'a, T: 'a>(futures: Vec<MemberFuture<'a, T>>, at_once: usize) -> Vec<T> {
    let gate = Semaphore::new(at_once.max(1));
    let gate = &gate;
    let gated: Vec<MemberFuture<'_, T>> = futures
        .into_iter()
        .map(|f| {
            Box::pin(async move {
                let _permit = gate.acquire().await;
                f.await
            }) as MemberFuture<'_, T>
        })
        .collect();
    join_all(gated).await
}

/// Runs a group case on `members` (the rig's devices, in its order). The
/// case's timeout bounds the whole run; an interrupted run ends it at once.
pub async fn run_group_case(
    members: &mut [Member<'_>],
    case: &Case,
    control: &CaseControl,
) -> CaseRun {
    let mut log = String::new();
    let mut properties = Vec::new();
    let _ = writeln!(
        log,
        "group of {}: {}",
        members.len(),
        members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Whether a step began to run: only then may a device be changed, and
    // the cleanup run.
    let mut began = false;
    let ended = {
        let steps = run_group_steps(members, case, &mut log, &mut properties, &mut began);
        tokio::select! {
            biased;
            () = stopped(control.stop.clone()) => None,
            v = steps => Some(v),
        }
    };
    let mut verdict = match ended {
        Some(v) => v,
        None => {
            let _ = writeln!(log, "interrupted: the run was asked to stop");
            if !case.cleanup.is_empty() {
                let _ = writeln!(log, "cleanup not run: the run was asked to stop");
                properties.push((
                    crate::steps::cleanup::PROPERTY.into(),
                    "not run: the run was asked to stop".into(),
                ));
            }
            Verdict::Interrupted
        }
    };
    if verdict != Verdict::Interrupted && !case.cleanup.is_empty() {
        if began {
            verdict = crate::steps::cleanup::run_group(
                members,
                case,
                verdict,
                &mut log,
                &mut properties,
                control.stop.clone(),
            )
            .await;
        } else {
            let why = "no step ran, so the devices are as they were";
            let _ = writeln!(log, "cleanup not run: {why}");
            properties.push((
                crate::steps::cleanup::PROPERTY.into(),
                format!("not run: {why}"),
            ));
        }
    }
    for m in members.iter_mut() {
        finish_member(m, case, &mut verdict, &mut properties).await;
    }
    CaseRun {
        verdict,
        step_log: log,
        properties,
    }
}

/// A member's end of the case: its object 5 transitions judged (a
/// transition the state diagram forbids fails a case that passed), its
/// observations cancelled, its facts named by it in the JUnit.
async fn finish_member(
    m: &mut Member<'_>,
    case: &Case,
    verdict: &mut Verdict,
    properties: &mut Vec<(String, String)>,
) {
    for task in m.ctx.progress_tasks.drain(..) {
        task.abort();
    }
    if let Some(watch) = m.ctx.firmware_watch.take() {
        if *verdict == Verdict::Passed {
            watch.settle(&m.session.server, &m.session.endpoint).await;
        }
        let sequence = match watch.finish() {
            Ok(sequence) => sequence,
            Err(violation) => {
                let violation = violation.to_string();
                if *verdict == Verdict::Passed {
                    let last = case.steps.last().map(|s| s.line).unwrap_or(1);
                    *verdict = failure(
                        case,
                        last,
                        &format!("step `object 5 state machine` on {}", m.name),
                        "only transitions the specification allows",
                        &violation,
                        None,
                        &m.ctx.log,
                    );
                }
                violation
            }
        };
        let _ = writeln!(m.ctx.log, "  object 5 transitions: {sequence}");
        properties.push((format!("{}.firmware.transitions", m.name), sequence));
    }
    for (path, _) in m.ctx.observations.drain() {
        if m.session.server.registration(&m.session.endpoint).is_some() {
            let _ = m
                .session
                .server
                .request(
                    &m.session.endpoint,
                    DmRequest::CancelObserve { path },
                    Duration::from_secs(5),
                )
                .await;
        }
    }
    for (k, v) in m.ctx.properties.drain(..) {
        properties.push((format!("{}.{k}", m.name), v));
    }
}

async fn stopped(stop: Option<tokio::sync::watch::Receiver<bool>>) {
    if let Some(mut stop) = stop {
        if stop.wait_for(|stop| *stop).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
}

async fn run_group_steps(
    members: &mut [Member<'_>],
    case: &Case,
    log: &mut String,
    properties: &mut Vec<(String, String)>,
    began: &mut bool,
) -> Verdict {
    let started = Instant::now();
    let mut deadline = started + case.timeout;
    let needs = needs::of_case(case);
    for m in members.iter_mut() {
        if let Err(e) = m.session.reset_bootstrap_script().await {
            return Verdict::Error {
                message: format!("bench setup of {}: {e}", m.name),
            };
        }
        if let Some(reason) = needs::missing_part(m.session, &needs) {
            return skipped(log, format!("{}: {reason}", m.name));
        }
        match needs::check_roles(m.session, case).await {
            Ok(()) => {}
            Err(RoleError::NotMapped(reason)) => {
                return skipped(log, format!("{}: {reason}", m.name))
            }
            Err(RoleError::Store(message)) => {
                let _ = writeln!(log, "ERROR: {message}");
                return Verdict::Error {
                    message: format!("{}: {message}", case.file.display()),
                };
            }
        }
        if m.session.power_is_on() == Some(false) {
            let _ = writeln!(log, "setup of {}: power on and bring-up", m.name);
            // A registration from before the power came back (a member an
            // earlier case left off) proves nothing: await one made from now.
            m.ctx.device_restarting(m.session, Restart::Reboot);
            let up = m
                .session
                .set_power(true)
                .and_then(|()| m.session.bring_up());
            if let Err(e) = up {
                return Verdict::Error {
                    message: format!("bench setup of {}: {e}", m.name),
                };
            }
        }
    }
    let mut objects_checked = vec![false; members.len()];
    for step in &case.steps {
        // A member that lacks an object the case needs: not applicable,
        // known once it is registered (its object list).
        for (m, checked) in members.iter_mut().zip(objects_checked.iter_mut()) {
            if *checked {
                continue;
            }
            if let Some(reg) = m.session.server.registration(&m.session.endpoint) {
                *checked = true;
                let missing = match needs::missing_object(&reg, case) {
                    Some(reason) => Some(reason),
                    None => needs::missing_resource(m.session, case, &mut m.ctx.log).await,
                };
                if let Some(reason) = missing {
                    return skipped(log, format!("{}: {reason}", m.name));
                }
            }
        }
        let _ = writeln!(
            log,
            "[{:>7.3}s] line {:>3}: {}",
            started.elapsed().as_secs_f64(),
            step.line,
            step.describe()
        );
        if let Some(note) = &step.note {
            let _ = writeln!(log, "  note: {note}");
        }
        *began = true;
        let mut remaining = deadline.saturating_duration_since(Instant::now());
        // The longest wait any member's device or rig asks for.
        if step.within.is_none() {
            let waits = members
                .iter()
                .filter_map(|m| step.kind.step().default_wait(m.session, &m.ctx));
            Wait::stretch(waits, &mut deadline, &mut remaining, log);
        }
        let ran = under_limit(
            remaining,
            run_group_step(step, remaining, members, log, properties),
        )
        .await;
        let outcome = match ran {
            Some(outcome) => outcome,
            None => Err(Went::Group(timed_out(
                format!(
                    "the case to finish within its timeout of {:?}",
                    case.timeout
                ),
                "it was still running this step at the timeout",
            ))),
        };
        show_member_logs(members, log);
        match outcome {
            Ok(()) => {}
            Err(Went::Member(i, e)) => {
                let m = &mut members[i];
                m.session.take_rtt();
                let at = format!("step `{}` on {}", step.describe(), m.name);
                let verdict = judge(m.session, &mut m.ctx, case, step.line, at, e);
                note_verdict(log, &m.name, &verdict);
                return verdict;
            }
            Err(Went::Group(e)) => return judge_group(case, step, log, e),
        }
    }
    let _ = writeln!(log, "[{:>7.3}s] passed", started.elapsed().as_secs_f64());
    Verdict::Passed
}

fn skipped(log: &mut String, reason: String) -> Verdict {
    let _ = writeln!(log, "skipped: {reason}");
    Verdict::Skipped { reason }
}

/// The first line of a member's verdict in the group's log.
fn note_verdict(log: &mut String, name: &str, verdict: &Verdict) {
    match verdict {
        Verdict::Failed { message, .. } => {
            let _ = writeln!(log, "  FAILED on {name}: {message}");
        }
        Verdict::Error { message } => {
            let _ = writeln!(log, "  ERROR on {name}: {message}");
        }
        Verdict::Skipped { reason } => {
            let _ = writeln!(log, "  skipped on {name}: {reason}");
        }
        _ => {}
    }
}

/// A group step's own verdict (no one member's evidence applies).
fn judge_group(case: &Case, step: &CaseStep, log: &mut String, e: StepError) -> Verdict {
    let at = format!("step `{}`", step.describe());
    judge_group_at(case, step, at, log, e)
}

/// [`judge_group`] with the step named as `at` (a cleanup step says so).
pub(crate) fn judge_group_at(
    case: &Case,
    step: &CaseStep,
    at: String,
    log: &mut String,
    e: StepError,
) -> Verdict {
    match e {
        StepError::Device { expected, seen } | StepError::Timeout { expected, seen } => {
            let _ = writeln!(log, "  FAILED: expected {expected}\n  saw: {seen}");
            failure(case, step.line, &at, &expected, &seen, None, log)
        }
        StepError::Bench(e) => {
            let _ = writeln!(log, "  ERROR: {e}");
            Verdict::Error {
                message: format!(
                    "{}:{}: {at}: bench error: {e}",
                    case.file.display(),
                    step.line
                ),
            }
        }
        StepError::Skip(reason) => skipped(log, reason),
        StepError::InRepeat { error, .. } => judge_group_at(case, step, at, log, *error),
    }
}

/// What each member's context logged since the group's log last showed
/// it, each line under the member's name.
pub fn show_member_logs(members: &mut [Member<'_>], log: &mut String) {
    for m in members.iter_mut() {
        let new = &m.ctx.log[m.shown.min(m.ctx.log.len())..];
        for line in new.lines() {
            let _ = writeln!(log, "  [{}] {}", m.name, line.trim_start());
        }
        m.shown = m.ctx.log.len();
    }
}

/// Where a step went wrong: on one member, or in the group as a whole.
pub enum Went {
    Member(usize, StepError),
    Group(StepError),
}

/// How bad an error is, for picking the one that decides the verdict:
/// the device's failure first, then the bench's, then a skip.
fn weight(e: &StepError) -> u8 {
    match e {
        StepError::Device { .. } | StepError::Timeout { .. } => 0,
        StepError::InRepeat { error, .. } => weight(error),
        StepError::Bench(_) => 1,
        StepError::Skip(_) => 2,
    }
}

/// The member error that decides the step: the worst, the first member's
/// among equals.
pub fn decisive(results: Vec<Result<(), StepError>>) -> Result<(), Went> {
    results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.err().map(|e| (i, e)))
        .min_by_key(|(i, e)| (weight(e), *i))
        .map_or(Ok(()), |(i, e)| Err(Went::Member(i, e)))
}

pub(crate) async fn run_group_step(
    step: &CaseStep,
    remaining: Duration,
    members: &mut [Member<'_>],
    log: &mut String,
    properties: &mut Vec<(String, String)>,
) -> Result<(), Went> {
    let turn = Turn {
        line: step.line,
        within: step.within.unwrap_or(remaining).min(remaining),
        remaining,
    };
    match &step.kind {
        StepKind::Group(g) => g.run_on_group(turn, members, log, properties).await,
        StepKind::Campaign(c) => c.run_on_group(turn, members, log, properties).await,
        _ => {
            let futures = members
                .iter_mut()
                .map(|m| {
                    Box::pin(async move {
                        let marks = Marks::now(m.session);
                        let r = run_step(step, remaining, &mut m.ctx, m.session).await;
                        if r.is_ok() {
                            m.ctx.previous_step = marks;
                        }
                        r
                    }) as MemberFuture<'_, _>
                })
                .collect();
            let results = at_most(futures, MEMBERS_AT_ONCE).await;
            decisive(results)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_member_error_decides_a_step() {
        let skip = || Err(StepError::Skip("no".into()));
        let bench = || Err(StepError::Bench("port".into()));
        let failed = || Err(crate::steps::error::device("a", "b"));
        assert!(decisive(vec![Ok(()), Ok(())]).is_ok());
        let decided = |r| match decisive(r) {
            Err(Went::Member(i, e)) => (i, weight(&e)),
            _ => panic!("no member decided"),
        };
        assert_eq!(decided(vec![skip(), bench(), failed()]), (2, 0));
        assert_eq!(decided(vec![skip(), bench(), bench()]), (1, 1));
        assert_eq!(decided(vec![Ok(()), skip()]), (1, 2));
    }
}
