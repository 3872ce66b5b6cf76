//! A case's `cleanup:`: the steps that put the device back as the case
//! found it (a setting the steps changed, PSM timers the modem keeps in NV
//! across a power cycle, a network the lab made refuse a profile). A case
//! that fails part-way must not leave the next case a changed device, so
//! the cleanup runs after the steps however they ended: passed, failed,
//! errored (a step that panicked too), skipped part-way, or cut off by the
//! case's `timeout`.
//!
//! What it does, and why:
//!
//! - It runs as if its steps followed the step that ended the case: the
//!   same event cursors and saved values (`{saved:NAME}`), so a cleanup can
//!   write back what a `read: {save}` found.
//! - A cleanup step that names a value the steps never saved (the case
//!   ended before the `read` that saves it) is left out, with the cleanup
//!   steps after it: the case reads a value before it changes it, so
//!   nothing was changed that the value would put back, and the steps after
//!   it build on it (a write, then the Update it causes). Restores that
//!   need no saved value go first. After steps that all passed, a value
//!   never saved is a mistake in the case, and the step runs to say so.
//! - It has its own time, `cleanup_timeout` (default 60 s), apart from the
//!   case's `timeout`, which may be what ended the steps; a step waits its
//!   `within`, or what its kind asks (a reboot: the rig's wait, even beyond
//!   the limit), cut to what is left of the cleanup's time.
//! - It stops at its first step that goes wrong, as the steps do.
//! - It does not run when no step ran (the case was skipped before it
//!   touched the device), nor after Ctrl-C or SIGTERM: a run asked to stop
//!   ends at once and leaves the bench as the rig file says (power, the
//!   network back to accept-all); the JUnit says the cleanup did not run.
//!   A signal during the cleanup stops it the same way.
//! - Its outcome is never silent: the JUnit property `cleanup` and a line
//!   in the step log (the testcase's system-out) say it passed, or
//!   `cleanup failed at file:line: ...`. A passed case whose cleanup fails
//!   is a failure (the device was left changed), or an error when the bench
//!   could not do its part; a case that already failed, errored or was
//!   skipped keeps its verdict (the first thing that went wrong is the
//!   news), with the cleanup's failure added to its detail, message or
//!   reason.
//!
//! A group case's cleanup ([`run_group`]) follows the same rules, with
//! the group's steps: a step that acts on the group (`group`, `campaign`)
//! runs on the group, any other on every member at once, each member with
//! its own saved values. A member that never saved a value a step names is
//! left out of that step and the rest (the other members go on), and a
//! group step after it is left out (it would act on that member too). The
//! first step that goes wrong on any member ends the cleanup, named with
//! the member (`... on meter-2`).

use std::fmt::Write as _;
use std::time::Instant;

use tokio::sync::watch;

use crate::case::{Case, CaseStep};
use crate::report::Verdict;
use crate::session::Session;
use crate::steps::context::{CaseContext, Marks};
use crate::steps::engine::{
    cut_off, default_wait, ensure_powered, log_step_start, run_step, stopped, under_limit,
};
use crate::steps::error::{timed_out, StepError};
use crate::steps::judge::judge;
use crate::steps::kinds::group_case::{
    acts_on_group, at_most, decisive, judge_group_at, run_group_step, show_member_logs, Member,
    MemberFuture, Went, MEMBERS_AT_ONCE,
};
use crate::steps::panic_guard::{panicked, CatchUnwind};
use crate::steps::Wait;

/// The JUnit testcase property that says how the cleanup went.
pub const PROPERTY: &str = "cleanup";

/// How the cleanup ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CleanupEnd {
    /// Every step ran; `left_out` says from which step on it stopped
    /// because a value was never saved.
    Passed { left_out: Option<String> },
    /// A step went wrong: `failure` is `file:line: cleanup step ...`.
    Failed { failure: String, detail: String },
    /// The bench could not do its part, or a step panicked.
    Error { failure: String },
    /// The run was asked to stop while the cleanup ran.
    Interrupted { line: u32 },
}

/// Runs the case's cleanup after its steps ended with `verdict`, and
/// gives the case's verdict with the cleanup's outcome in it. Records the
/// outcome in the step log and the JUnit properties.
pub async fn run(
    rig: &mut Session,
    ctx: &mut CaseContext,
    case: &Case,
    verdict: Verdict,
    stop: Option<watch::Receiver<bool>>,
) -> Verdict {
    let _ = writeln!(
        ctx.log,
        "cleanup ({} steps, within {:?}):",
        case.cleanup.len(),
        case.cleanup_timeout
    );
    let steps_passed = verdict == Verdict::Passed;
    let mut running: Option<usize> = None;
    let end = {
        let steps = CatchUnwind(Box::pin(cleanup_steps(
            rig,
            ctx,
            case,
            steps_passed,
            &mut running,
        )));
        tokio::select! {
            biased;
            () = stopped(stop) => Err(None),
            r = steps => r.map_err(Some),
        }
    };
    let line_of = |running: Option<usize>| {
        running
            .and_then(|i| case.cleanup.get(i))
            .map_or(0, |s| s.line)
    };
    let end = match end {
        Ok(end) => end,
        Err(None) => CleanupEnd::Interrupted {
            line: line_of(running),
        },
        Err(Some(payload)) => {
            // The panic's message names the step as `panicked` names a
            // step of the case: the cleanup's steps stand in for them.
            let cleanup = Case {
                steps: case.cleanup.clone(),
                ..case.clone()
            };
            let mut log = String::new();
            let Verdict::Error { message } =
                panicked(&cleanup, running, payload.as_ref(), &mut log)
            else {
                unreachable!("a panic is a bench error")
            };
            ctx.log.push_str(&log);
            CleanupEnd::Error { failure: message }
        }
    };
    record(ctx, case, &end);
    merged(verdict, end)
}

/// Records that the case's cleanup did not run, and why.
pub fn not_run(ctx: &mut CaseContext, case: &Case, why: &str) {
    if case.cleanup.is_empty() {
        return;
    }
    let _ = writeln!(ctx.log, "cleanup not run: {why}");
    ctx.properties
        .push((PROPERTY.into(), format!("not run: {why}")));
}

/// The cleanup's steps, one after the other; the first that goes wrong ends it.
async fn cleanup_steps(
    rig: &mut Session,
    ctx: &mut CaseContext,
    case: &Case,
    steps_passed: bool,
    running: &mut Option<usize>,
) -> CleanupEnd {
    let file = case.file.display();
    let started = Instant::now();
    let mut deadline = started + case.cleanup_timeout;
    // A timeout that cut a `repeat` off named its step; the cleanup is past it.
    ctx.repeat_position = None;
    // A case that ended with the device off (its power cut, say) leaves a
    // device that can take no cleanup: power it as a case start does.
    if let Err(e) = ensure_powered(rig, ctx) {
        let _ = writeln!(ctx.log, "  ERROR: {e}");
        return CleanupEnd::Error {
            failure: format!("{file}: cleanup: bench setup: {e}"),
        };
    }
    for (index, step) in case.cleanup.iter().enumerate() {
        *running = Some(index);
        log_step_start(ctx, started, "cleanup line", step);
        if !steps_passed {
            if let Some(name) = unsaved(step, ctx) {
                let left_out = format!(
                    "from line {} on left out: nothing was saved as {name:?} (the case ended before the step that saves it, so it changed nothing this would put back)",
                    step.line
                );
                let _ = writeln!(ctx.log, "  {left_out}");
                return CleanupEnd::Passed {
                    left_out: Some(left_out),
                };
            }
        }
        let mut remaining = deadline.saturating_duration_since(Instant::now());
        let wait = default_wait(step, rig, ctx);
        Wait::stretch(
            wait.into_iter(),
            &mut deadline,
            &mut remaining,
            &mut ctx.log,
        );
        let marks = Marks::now(rig);
        let result = match under_limit(remaining, run_step(step, remaining, ctx, rig)).await {
            Some(r) => r,
            None => Err(cut_off(
                ctx,
                format!(
                    "the cleanup to finish within its limit of {:?}",
                    case.cleanup_timeout
                ),
                "it was still running this step at the limit",
            )),
        };
        if let Err(e) = result {
            rig.take_rtt();
            let at = format!("cleanup step `{}`", step.describe());
            return ended(judge(rig, ctx, case, step.line, at, e), case, step);
        }
        ctx.previous_step = marks;
    }
    CleanupEnd::Passed { left_out: None }
}

/// A cleanup step's verdict, as the cleanup's end.
fn ended(verdict: Verdict, case: &Case, step: &CaseStep) -> CleanupEnd {
    match verdict {
        Verdict::Failed { message, detail } => CleanupEnd::Failed {
            failure: message,
            detail,
        },
        Verdict::Error { message } => CleanupEnd::Error { failure: message },
        // A step that does not apply to the device could not put it back.
        Verdict::Skipped { reason } => {
            let failure = format!(
                "{}:{}: cleanup step `{}` could not run: {reason}",
                case.file.display(),
                step.line,
                step.describe()
            );
            CleanupEnd::Failed {
                detail: failure.clone(),
                failure,
            }
        }
        Verdict::Passed | Verdict::Interrupted => CleanupEnd::Passed { left_out: None },
    }
}

/// The first `{saved:NAME}` the step names that the case has not saved.
fn unsaved(step: &CaseStep, ctx: &CaseContext) -> Option<String> {
    // A saved value may sit in any text a step carries: the step's debug
    // form holds every such text, so no kind has to list them.
    saved_names(&format!("{:?}", step.kind))
        .into_iter()
        .find(|name| !ctx.saved.contains_key(name))
}

/// The names of `{saved:NAME}` and `{saved:NAME±N}` in `text`.
fn saved_names(text: &str) -> Vec<String> {
    text.split("{saved:")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(['}', '+', '-'])?;
            let name = rest[..end].trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// The step log's line and the JUnit property of the cleanup's end.
fn record(ctx: &mut CaseContext, case: &Case, end: &CleanupEnd) {
    let text = end_text(case, end);
    let _ = writeln!(ctx.log, "cleanup {text}");
    ctx.properties.push((PROPERTY.into(), text));
}

/// How the cleanup ended, in words: `passed`, `failed at c.yaml:9: ...`.
fn end_text(case: &Case, end: &CleanupEnd) -> String {
    match end {
        CleanupEnd::Passed { left_out: None } => "passed".to_string(),
        CleanupEnd::Passed {
            left_out: Some(left_out),
        } => format!("passed ({left_out})"),
        CleanupEnd::Failed { failure, .. } | CleanupEnd::Error { failure } => {
            format!("failed at {failure}")
        }
        CleanupEnd::Interrupted { line } => format!(
            "interrupted at {}:{line}: the run was asked to stop",
            case.file.display()
        ),
    }
}

/// Runs a group case's cleanup on `members` after its steps ended with
/// `verdict` (see the module's notes), and gives the case's verdict with
/// the cleanup's outcome in it, which the group's step log and the JUnit
/// property [`PROPERTY`] also get.
pub async fn run_group(
    members: &mut [Member<'_>],
    case: &Case,
    verdict: Verdict,
    log: &mut String,
    properties: &mut Vec<(String, String)>,
    stop: Option<watch::Receiver<bool>>,
) -> Verdict {
    let _ = writeln!(
        log,
        "cleanup ({} steps, within {:?}):",
        case.cleanup.len(),
        case.cleanup_timeout
    );
    let steps_passed = verdict == Verdict::Passed;
    let mut running: Option<usize> = None;
    let mut cleanup_log = String::new();
    let end = {
        let steps = group_cleanup_steps(
            members,
            case,
            steps_passed,
            &mut running,
            &mut cleanup_log,
            properties,
        );
        tokio::select! {
            biased;
            () = stopped(stop) => None,
            end = steps => Some(end),
        }
    };
    log.push_str(&cleanup_log);
    let end = end.unwrap_or_else(|| CleanupEnd::Interrupted {
        line: running
            .and_then(|i| case.cleanup.get(i))
            .map_or(0, |s| s.line),
    });
    let text = end_text(case, &end);
    let _ = writeln!(log, "cleanup {text}");
    properties.push((PROPERTY.into(), text));
    merged(verdict, end)
}

/// The group cleanup's steps, one after the other; the first that goes
/// wrong on any member ends it.
async fn group_cleanup_steps(
    members: &mut [Member<'_>],
    case: &Case,
    steps_passed: bool,
    running: &mut Option<usize>,
    log: &mut String,
    properties: &mut Vec<(String, String)>,
) -> CleanupEnd {
    let file = case.file.display();
    let started = Instant::now();
    let mut deadline = started + case.cleanup_timeout;
    for m in members.iter_mut() {
        m.ctx.repeat_position = None;
        if let Err(e) = ensure_powered(m.session, &mut m.ctx) {
            let _ = writeln!(log, "  ERROR on {}: {e}", m.name);
            return CleanupEnd::Error {
                failure: format!("{file}: cleanup: bench setup of {}: {e}", m.name),
            };
        }
    }
    // Per member, why it is out of the cleanup from some step on.
    let mut left_out: Vec<Option<String>> = vec![None; members.len()];
    for (index, step) in case.cleanup.iter().enumerate() {
        *running = Some(index);
        let _ = writeln!(
            log,
            "[{:>7.3}s] cleanup line {:>3}: {}",
            started.elapsed().as_secs_f64(),
            step.line,
            step.describe()
        );
        if !steps_passed {
            for (m, out) in members.iter().zip(left_out.iter_mut()) {
                if out.is_some() {
                    continue;
                }
                if let Some(name) = unsaved(step, &m.ctx) {
                    let why = format!(
                        "{}: from line {} on left out: nothing was saved as {name:?} (the case ended before the step that saves it, so it changed nothing this would put back)",
                        m.name, step.line
                    );
                    let _ = writeln!(log, "  {why}");
                    *out = Some(why);
                }
            }
        }
        let active: Vec<bool> = left_out.iter().map(Option::is_none).collect();
        if !active.contains(&true) {
            break;
        }
        if acts_on_group(&step.kind) && active.contains(&false) {
            let _ = writeln!(
                log,
                "  left out: it acts on the whole group, and a member is out of the cleanup"
            );
            continue;
        }
        let mut remaining = deadline.saturating_duration_since(Instant::now());
        if step.within.is_none() {
            let waits = members
                .iter()
                .zip(&active)
                .filter(|(_, a)| **a)
                .filter_map(|(m, _)| default_wait(step, m.session, &m.ctx));
            Wait::stretch(waits, &mut deadline, &mut remaining, log);
        }
        let ran = under_limit(
            remaining,
            run_cleanup_step(step, remaining, members, &active, log, properties),
        )
        .await;
        show_member_logs(members, log);
        let outcome = ran.unwrap_or_else(|| {
            Err(Went::Group(timed_out(
                format!(
                    "the cleanup to finish within its limit of {:?}",
                    case.cleanup_timeout
                ),
                "it was still running this step at the limit",
            )))
        });
        let verdict = match outcome {
            Ok(()) => continue,
            Err(Went::Member(i, e)) => {
                let m = &mut members[i];
                m.session.take_rtt();
                let at = format!("cleanup step `{}` on {}", step.describe(), m.name);
                judge(m.session, &mut m.ctx, case, step.line, at, e)
            }
            Err(Went::Group(e)) => {
                let at = format!("cleanup step `{}`", step.describe());
                judge_group_at(case, step, at, log, e)
            }
        };
        return ended(verdict, case, step);
    }
    let left_out: Vec<String> = left_out.into_iter().flatten().collect();
    CleanupEnd::Passed {
        left_out: (!left_out.is_empty()).then(|| left_out.join("; ")),
    }
}

/// One cleanup step: on the group, or on each member still in the cleanup.
async fn run_cleanup_step(
    step: &CaseStep,
    remaining: std::time::Duration,
    members: &mut [Member<'_>],
    active: &[bool],
    log: &mut String,
    properties: &mut Vec<(String, String)>,
) -> Result<(), Went> {
    if acts_on_group(&step.kind) {
        return run_group_step(step, remaining, members, log, properties).await;
    }
    let futures = members
        .iter_mut()
        .zip(active)
        .map(|(m, active)| {
            let active = *active;
            Box::pin(async move {
                if !active {
                    return Ok::<(), StepError>(());
                }
                let marks = Marks::now(m.session);
                let r = run_step(step, remaining, &mut m.ctx, m.session).await;
                if r.is_ok() {
                    m.ctx.previous_step = marks;
                }
                r
            }) as MemberFuture<'_, _>
        })
        .collect();
    decisive(at_most(futures, MEMBERS_AT_ONCE).await)
}

/// The case's verdict once its cleanup ended: a passed case whose cleanup
/// went wrong is a failure (the device was left changed), or an error when
/// the bench could not do its part, or interrupted; any other verdict
/// stands, with the cleanup's failure added to it.
pub fn merged(verdict: Verdict, end: CleanupEnd) -> Verdict {
    let (failure, detail, bench) = match end {
        CleanupEnd::Passed { .. } => return verdict,
        CleanupEnd::Interrupted { .. } => {
            return match verdict {
                Verdict::Passed => Verdict::Interrupted,
                other => other,
            }
        }
        CleanupEnd::Failed { failure, detail } => (failure, detail, false),
        CleanupEnd::Error { failure } => (failure.clone(), failure, true),
    };
    let failure = format!("cleanup failed at {failure}");
    match verdict {
        Verdict::Passed if bench => Verdict::Error {
            message: format!("{failure}; the device may be left changed"),
        },
        Verdict::Passed => Verdict::Failed {
            message: format!(
                "{}; the device was left changed",
                failure.lines().next().unwrap_or_default()
            ),
            detail: format!("cleanup failed at {detail}"),
        },
        Verdict::Failed { message, detail } => Verdict::Failed {
            message,
            detail: format!("{detail}\n\n{failure}"),
        },
        Verdict::Error { message } => Verdict::Error {
            message: format!("{message}; then {failure}"),
        },
        Verdict::Skipped { reason } => Verdict::Skipped {
            reason: format!("{reason}; then {failure}"),
        },
        Verdict::Interrupted => Verdict::Interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_cleanup() -> CleanupEnd {
        CleanupEnd::Failed {
            failure: "c.yaml:9: cleanup step `read /1/*/6`: expected true; saw false".into(),
            detail: "c.yaml:9: ...\n\nsteps:\n...".into(),
        }
    }

    #[test]
    fn a_passed_case_whose_cleanup_fails_is_a_failure_naming_the_cleanup_step() {
        let Verdict::Failed { message, detail } = merged(Verdict::Passed, failed_cleanup()) else {
            panic!("a failed cleanup fails a passed case")
        };
        assert_eq!(
            message,
            "cleanup failed at c.yaml:9: cleanup step `read /1/*/6`: expected true; saw false; the device was left changed"
        );
        assert!(detail.starts_with("cleanup failed at c.yaml:9"), "{detail}");
        let bench = CleanupEnd::Error {
            failure: "c.yaml:9: cleanup step `at psm_off`: bench error: port closed".into(),
        };
        assert!(matches!(
            merged(Verdict::Passed, bench),
            Verdict::Error { message } if message.starts_with("cleanup failed at c.yaml:9") && message.contains("port closed")
        ));
        assert_eq!(
            merged(Verdict::Passed, CleanupEnd::Interrupted { line: 9 }),
            Verdict::Interrupted
        );
        assert_eq!(
            merged(Verdict::Passed, CleanupEnd::Passed { left_out: None }),
            Verdict::Passed
        );
    }

    #[test]
    fn a_case_that_went_wrong_keeps_its_verdict_and_gains_the_cleanup_failure() {
        let failed = Verdict::Failed {
            message: "c.yaml:5: step `expect`: expected 1; saw 2".into(),
            detail: "steps".into(),
        };
        let Verdict::Failed { message, detail } = merged(failed, failed_cleanup()) else {
            panic!("still a failure")
        };
        assert_eq!(message, "c.yaml:5: step `expect`: expected 1; saw 2");
        assert!(
            detail.ends_with("\n\ncleanup failed at c.yaml:9: cleanup step `read /1/*/6`: expected true; saw false"),
            "{detail}"
        );
        let skipped = Verdict::Skipped {
            reason: "not applicable".into(),
        };
        assert!(matches!(
            merged(skipped, failed_cleanup()),
            Verdict::Skipped { reason } if reason.starts_with("not applicable; then cleanup failed at c.yaml:9")
        ));
        let error = Verdict::Error {
            message: "bench".into(),
        };
        assert!(matches!(
            merged(error, failed_cleanup()),
            Verdict::Error { message } if message.starts_with("bench; then cleanup failed at c.yaml:9")
        ));
        let failed = Verdict::Failed {
            message: "m".into(),
            detail: "d".into(),
        };
        assert_eq!(
            merged(failed.clone(), CleanupEnd::Interrupted { line: 9 }),
            failed,
            "a verdict the steps reached stands when the run stops in the cleanup"
        );
    }

    #[test]
    fn saved_names_are_found_with_and_without_an_offset() {
        assert_eq!(
            saved_names(
                r#"Write { value: Text("{saved:lifetime+30}"), other: "{saved:ns}", x: "{saved:}" }"#
            ),
            ["lifetime", "ns"]
        );
        assert!(saved_names("Write { value: Text(\"{fw_url:upgrade}\") }").is_empty());
    }
}
