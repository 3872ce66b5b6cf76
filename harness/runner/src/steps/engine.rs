//! The loop that runs a case: checks that it applies, runs each step within
//! its time, and turns the first step that goes wrong into the verdict;
//! then runs the case's `cleanup:` (see [`crate::steps::cleanup`]) if any
//! step ran. However the case ends — a verdict, a panic in a step, the run being
//! interrupted — the engine returns, so the runner can go on and leave the
//! bench as the rig file says.

use std::any::Any;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use lwm2m::server::DmRequest;

use crate::case::{Case, CaseStep};
use crate::cli::InjectedFault;
use crate::report::Verdict;
use crate::session::{BenchError, RoleError, Session};
use crate::steps::context::{CaseContext, Marks};
use crate::steps::error::{timed_out, StepError};
use crate::steps::judge::{failure, judge};
use crate::steps::kinds::classify::Recovery;
use crate::steps::panic_guard::{install_panic_location_hook, panicked, CatchUnwind};
use crate::steps::{needs, StepFuture, Turn, Wait};

/// What a case run produced.
pub struct CaseRun {
    pub verdict: Verdict,
    pub step_log: String,
    /// Facts for the JUnit testcase, e.g. the seed of each random power cut.
    pub properties: Vec<(String, String)>,
}

/// What the run asks of every case besides its steps.
#[derive(Debug, Clone, Default)]
pub struct CaseControl {
    /// Becomes true when the run is interrupted: the running case ends at
    /// once as interrupted.
    pub stop: Option<watch::Receiver<bool>>,
    /// `--inject-fault`: a fault provoked on purpose, for the safe-end tests.
    pub fault: Option<InjectedFault>,
    /// Where this case's events go (one per case: they carry its rig and id).
    pub events: crate::events::CaseEvents,
}

/// How the steps ended.
enum Ended {
    Verdict(Verdict),
    Panicked(Box<dyn Any + Send>),
    Interrupted,
}

/// Runs `case` on the rig. Never panics on device behaviour; the case's
/// own timeout bounds the whole run. A panic in a step ends the case as a
/// bench error naming the step and the panic; an interrupted run ends it as
/// interrupted.
pub async fn run_case(rig: &mut Session, case: &Case, control: &CaseControl) -> CaseRun {
    install_panic_location_hook();
    let mut ctx = CaseContext::new(rig, &case.id);
    ctx.events = control.events.clone();
    // A case's own bootstrap script does not outlive it.
    if let Err(e) = rig.reset_bootstrap_script().await {
        return CaseRun {
            verdict: Verdict::Error {
                message: format!("bench setup: {e}"),
            },
            step_log: String::new(),
            properties: Vec::new(),
        };
    }
    let mut running: Option<usize> = None;
    // Whether a step began to run: only then may the device be changed,
    // and the cleanup run.
    let mut began = false;
    let ended = {
        let steps = CatchUnwind(Box::pin(run_steps(
            rig,
            &mut ctx,
            case,
            control.fault,
            &mut running,
            &mut began,
        )));
        tokio::select! {
            biased;
            () = stopped(control.stop.clone()) => Ended::Interrupted,
            r = steps => match r {
                Ok(v) => Ended::Verdict(v),
                Err(payload) => Ended::Panicked(payload),
            },
        }
    };
    for task in ctx.progress_tasks.drain(..) {
        task.abort();
    }
    let mut verdict = match ended {
        Ended::Verdict(v) => v,
        Ended::Panicked(payload) => panicked(case, running, payload.as_ref(), &mut ctx.log),
        Ended::Interrupted => {
            let _ = writeln!(ctx.log, "interrupted: the run was asked to stop");
            // A run asked to stop ends at once: the safe end (power as the
            // rig says, the network restored below) is all that runs.
            crate::steps::cleanup::not_run(&mut ctx, case, "the run was asked to stop");
            restore_network(rig, &mut ctx);
            finish_power_cuts(&mut ctx);
            return CaseRun {
                verdict: Verdict::Interrupted,
                step_log: std::mem::take(&mut ctx.log),
                properties: std::mem::take(&mut ctx.properties),
            };
        }
    };
    if matches!(verdict, Verdict::Passed) {
        // The status after the case's last restart (Idle/8 after a rollback)
        // is seen only once object 5 is observed again: wait for it, so the
        // recorder judges the whole sequence.
        if let Some(watch) = &ctx.firmware_watch {
            watch.settle(&rig.server, &rig.endpoint).await;
        }
    }
    finish_firmware(rig, &mut ctx, case, &mut verdict);
    if began && !case.cleanup.is_empty() {
        verdict =
            crate::steps::cleanup::run(rig, &mut ctx, case, verdict, control.stop.clone()).await;
    } else {
        crate::steps::cleanup::not_run(&mut ctx, case, "no step ran, so the device is as it was");
    }
    tally_recoveries(&mut ctx);
    finish_power_cuts(&mut ctx);
    cancel_observations(rig, &mut ctx).await;
    restore_network(rig, &mut ctx);
    CaseRun {
        verdict,
        step_log: std::mem::take(&mut ctx.log),
        properties: std::mem::take(&mut ctx.properties),
    }
}

/// Runs the steps; `running` is kept at the index of the step that runs,
/// so that a panic can name it.
async fn run_steps(
    rig: &mut Session,
    ctx: &mut CaseContext,
    case: &Case,
    fault: Option<InjectedFault>,
    running: &mut Option<usize>,
    began: &mut bool,
) -> Verdict {
    let started = Instant::now();
    let mut deadline = started + case.timeout;
    if let Some(reason) = needs::missing_part(rig, &needs::of_case(case)) {
        let _ = writeln!(ctx.log, "skipped: {reason}");
        return Verdict::Skipped { reason };
    }
    // A firmware role the rig does not map: not applicable; a mapped image
    // that does not exist fails the case before the device is touched.
    match needs::check_roles(rig, case).await {
        Ok(()) => {}
        Err(RoleError::NotMapped(reason)) => {
            let _ = writeln!(ctx.log, "skipped: {reason}");
            return Verdict::Skipped { reason };
        }
        Err(RoleError::Store(message)) => {
            let _ = writeln!(ctx.log, "ERROR: {message}");
            return Verdict::Error {
                message: format!("{}: {message}", case.file.display()),
            };
        }
    }
    if let Err(e) = ensure_powered(rig, ctx) {
        return Verdict::Error {
            message: format!("bench setup: {e}"),
        };
    }

    let mut objects_checked = false;
    for (index, step) in case.steps.iter().enumerate() {
        *running = Some(index);
        // A device that lacks an object the case needs: not applicable.
        // Known once the device is registered (its object list).
        if !objects_checked {
            if let Some(reg) = rig.server.registration(&rig.endpoint) {
                objects_checked = true;
                let missing = match needs::missing_object(&reg, case) {
                    Some(reason) => Some(reason),
                    None => needs::missing_resource(rig, case, &mut ctx.log).await,
                };
                if let Some(reason) = missing {
                    let _ = writeln!(ctx.log, "skipped: {reason}");
                    return Verdict::Skipped { reason };
                }
            }
        }
        log_step_start(ctx, started, "line", step);
        let mut remaining = deadline.saturating_duration_since(Instant::now());
        let wait = default_wait(step, rig, ctx);
        Wait::stretch(
            wait.into_iter(),
            &mut deadline,
            &mut remaining,
            &mut ctx.log,
        );
        let marks = Marks::now(rig);
        *began = true;
        let step_run = async {
            inject(fault, index, step);
            run_step(step, remaining, ctx, rig).await
        };
        let result = match under_limit(remaining, step_run).await {
            Some(r) => r,
            None => Err(cut_off(
                ctx,
                format!(
                    "the case to finish within its timeout of {:?}",
                    case.timeout
                ),
                "it was still running this step at the timeout",
            )),
        };
        match result {
            Ok(()) => ctx.previous_step = marks,
            Err(e) => {
                rig.take_rtt();
                let at = format!("step `{}`", step.describe());
                return judge(rig, ctx, case, step.line, at, e);
            }
        }
    }
    let _ = writeln!(
        ctx.log,
        "[{:>7.3}s] passed",
        started.elapsed().as_secs_f64()
    );
    Verdict::Passed
}

/// The one place `--inject-fault` acts: the step it names panics instead
/// of running, as a bug in a step kind would.
fn inject(fault: Option<InjectedFault>, index: usize, step: &CaseStep) {
    if fault == Some(InjectedFault::PanicInStep(index + 1)) {
        panic!(
            "injected fault (--inject-fault panic-in-step={}): step at line {} panics",
            index + 1,
            step.line
        );
    }
}

/// Resolves once the run is asked to stop; never without a stop signal
/// (or once nobody can send it any more).
pub(super) async fn stopped(stop: Option<watch::Receiver<bool>>) {
    if let Some(mut stop) = stop {
        if stop.wait_for(|stop| *stop).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
}

/// The step log's line for a step that starts (`label`: `line` for the
/// case's steps, `cleanup line` for its cleanup's), with the step's note.
pub(crate) fn log_step_start(
    ctx: &mut CaseContext,
    started: Instant,
    label: &str,
    step: &CaseStep,
) {
    let _ = writeln!(
        ctx.log,
        "[{:>7.3}s] {label} {:>3}: {}",
        started.elapsed().as_secs_f64(),
        step.line,
        step.describe()
    );
    if let Some(note) = &step.note {
        let _ = writeln!(ctx.log, "  note: {note}");
    }
}

/// How long past the case's (or cleanup's) limit its guard waits before it
/// cuts a step off. A step bounds itself by that same limit and arms its
/// timer a moment after the guard does; without this margin the two timers
/// race, and the guard's "still running" could replace the step's own
/// report of what it awaited. Only a step that ignores its bound is ever
/// cut off, and then at most this much late.
pub(crate) const GUARD_MARGIN: Duration = Duration::from_millis(250);

/// Runs a step under the limit it was given: `None` when it was still
/// running [`GUARD_MARGIN`] after.
pub(crate) async fn under_limit<F: std::future::Future>(
    remaining: Duration,
    step: F,
) -> Option<F::Output> {
    tokio::time::timeout(remaining + GUARD_MARGIN, step)
        .await
        .ok()
}

/// A limit ran out in the middle of a step (inside a `repeat`: the step of
/// it that was running): the case's timeout, or its cleanup's.
pub(crate) fn cut_off(ctx: &mut CaseContext, expected: String, saw: &str) -> StepError {
    let e = timed_out(expected, saw);
    match ctx.repeat_position.take() {
        Some(p) => StepError::InRepeat {
            line: p.line,
            step: p.step,
            round: p.round,
            times: p.times,
            error: Box::new(e),
        },
        None => e,
    }
}

/// The wait the step's kind asks for when the case gives it no `within`.
pub(super) fn default_wait(step: &CaseStep, rig: &Session, ctx: &CaseContext) -> Option<Wait> {
    match step.within {
        Some(_) => None,
        None => step.kind.step().default_wait(rig, ctx),
    }
}

/// Runs one step with what is left of the case's time.
pub fn run_step<'a>(
    step: &'a CaseStep,
    remaining: Duration,
    ctx: &'a mut CaseContext,
    rig: &'a mut Session,
) -> StepFuture<'a> {
    let within = step
        .within
        .or_else(|| default_wait(step, rig, ctx).map(|w| w.limit))
        .unwrap_or(remaining)
        .min(remaining);
    let turn = Turn {
        line: step.line,
        within,
        remaining,
    };
    let span = ctx.events.step(
        step.line,
        step.kind.key(),
        step.describe(),
        ctx.round,
        within,
    );
    let run = step.kind.step().run(turn, ctx, rig);
    Box::pin(async move {
        let result = run.await;
        span.end(&result);
        result
    })
}

/// A rig with power control starts each case with the device on and pointed at our server.
pub(super) fn ensure_powered(rig: &mut Session, ctx: &mut CaseContext) -> Result<(), BenchError> {
    if rig.power_is_on() == Some(false) {
        let _ = writeln!(ctx.log, "setup: power on and bring-up");
        // The server may still hold the registration the device had before
        // an earlier case left it off; that one proves nothing (its
        // observations died with the process): await one made from now.
        ctx.device_restarting(rig, crate::steps::Restart::Reboot);
        rig.set_power(true)?;
        rig.bring_up()?;
    }
    Ok(())
}

/// Adds the transfer figures and judges object 5's observed transitions: a
/// transition the state diagram does not allow fails a case that otherwise passed.
fn finish_firmware(rig: &Session, ctx: &mut CaseContext, case: &Case, verdict: &mut Verdict) {
    if let Some(delivery) = &rig.firmware {
        let figures =
            crate::steps::firmware::transfer_report(delivery, &ctx.firmware_images, &mut ctx.log);
        ctx.properties.extend(figures);
    }
    let Some(watch) = ctx.firmware_watch.take() else {
        return;
    };
    match watch.finish() {
        Ok(sequence) => {
            let _ = writeln!(ctx.log, "  object 5 transitions: {sequence}");
            ctx.properties
                .push(("firmware.transitions".into(), sequence));
        }
        Err(violation) => {
            let violation = violation.to_string();
            let _ = writeln!(ctx.log, "  object 5 transitions: {violation}");
            ctx.properties
                .push(("firmware.transitions".into(), violation.clone()));
            if *verdict == Verdict::Passed {
                let last = case.steps.last().map(|s| s.line).unwrap_or(1);
                *verdict = failure(
                    case,
                    last,
                    "step `object 5 state machine`",
                    "only transitions the specification allows",
                    &violation,
                    None,
                    &ctx.log,
                );
            }
        }
    }
}

/// The soak's tally: how many cuts ended recovered, rolled back, broken.
fn tally_recoveries(ctx: &mut CaseContext) {
    if ctx.recoveries.is_empty() {
        return;
    }
    for class in [Recovery::Recovered, Recovery::RolledBack, Recovery::Broken] {
        let n = ctx.recoveries.iter().filter(|c| **c == class).count();
        ctx.properties
            .push((format!("recovery.{}", class.name()), n.to_string()));
    }
    let names: Vec<&str> = ctx.recoveries.iter().map(|c| c.name()).collect();
    let _ = writeln!(ctx.log, "  recoveries: {}", names.join(" "));
}

/// The case's power cuts: `power-cuts.csv` in its folder, a summary in the JUnit.
fn finish_power_cuts(ctx: &mut CaseContext) {
    let summary = ctx.power_cuts.finish(ctx.events.artifacts());
    ctx.properties.extend(summary);
}

async fn cancel_observations(rig: &Session, ctx: &mut CaseContext) {
    // An Observe-Composite a step left open (`keep`) ends with its case too.
    if let Some(open) = ctx.composite_observation.take() {
        if rig.server.registration(&rig.endpoint).is_some() {
            let _ = rig
                .server
                .request(
                    &rig.endpoint,
                    DmRequest::CancelObserveComposite { paths: open.paths },
                    Duration::from_secs(5),
                )
                .await;
        }
    }
    for (path, _) in ctx.observations.drain() {
        if rig.server.registration(&rig.endpoint).is_some() {
            let _ = rig
                .server
                .request(
                    &rig.endpoint,
                    DmRequest::CancelObserve { path },
                    Duration::from_secs(5),
                )
                .await;
        }
    }
}

/// After a case that changed the network: the lab accepts every profile
/// again, so the next case starts from an ordinary network.
fn restore_network(rig: &mut Session, ctx: &mut CaseContext) {
    if !ctx.network_changed {
        return;
    }
    if let Some(n) = rig.network.as_mut() {
        let action = rig::NetworkAction::AcceptAll;
        match crate::blocking::off_runtime(|| n.apply(&action)) {
            Ok(()) => {
                let _ = writeln!(ctx.log, "  network: accept-all (restored after the case)");
            }
            Err(e) => {
                tracing::warn!(error = %e, "network not restored");
                let _ = writeln!(ctx.log, "  network: accept-all failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Whether `stopped` resolves within 30 ms.
    fn stops(stop: Option<watch::Receiver<bool>>) -> bool {
        block_on(async {
            tokio::time::timeout(Duration::from_millis(30), stopped(stop))
                .await
                .is_ok()
        })
    }

    #[test]
    fn a_case_stops_only_once_the_run_is_asked_to() {
        let (tx, rx) = watch::channel(false);
        assert!(!stops(Some(rx.clone())), "stopped before the signal");
        tx.send_replace(true);
        assert!(stops(Some(rx)), "not stopped after the signal");
        // No stop signal at all, or nobody left to send it: never stops.
        assert!(!stops(None));
        let (tx, rx) = watch::channel(false);
        drop(tx);
        assert!(!stops(Some(rx)));
    }
}
