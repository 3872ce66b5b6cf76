//! A step that went wrong, turned into the case's verdict: a failure names
//! file:line, the step, what was expected and seen, and what the servers and
//! the device reported meanwhile; a bench error and a skip keep their reason.

use std::fmt::Write as _;

use crate::case::Case;
use crate::report::Verdict;
use crate::session::Session;
use crate::steps::context::CaseContext;
use crate::steps::error::StepError;
use crate::steps::evidence::Evidence;

/// The verdict of a step that went wrong at `line` (`at` says which step).
pub fn judge(
    rig: &Session,
    ctx: &mut CaseContext,
    case: &Case,
    line: u32,
    at: String,
    error: StepError,
) -> Verdict {
    match error {
        StepError::InRepeat {
            line: inner,
            step,
            round,
            times,
            error,
        } => {
            let at = format!("step `{step}` (round {round}/{times} of the repeat at line {line})");
            judge(rig, ctx, case, inner, at, *error)
        }
        StepError::Device { expected, seen } => {
            let seen = with_evidence(rig, seen, &Evidence::gather(rig, ctx));
            let _ = writeln!(ctx.log, "  FAILED: expected {expected}\n  saw: {seen}");
            failure(case, line, &at, &expected, &seen, None, &ctx.log)
        }
        StepError::Timeout { expected, seen } => {
            // Waiting ran out: what happened meanwhile is the news.
            let evidence = Evidence::gather(rig, ctx);
            let seen = with_evidence(rig, seen, &evidence);
            let _ = writeln!(ctx.log, "  FAILED: expected {expected}\n  saw: {seen}");
            let meanwhile = evidence.headline();
            failure(
                case,
                line,
                &at,
                &expected,
                &seen,
                meanwhile.as_deref(),
                &ctx.log,
            )
        }
        StepError::Bench(e) => {
            let message = format!("{}:{line}: {at}: bench error: {e}", case.file.display());
            let _ = writeln!(ctx.log, "  ERROR: {e}");
            Verdict::Error { message }
        }
        StepError::Skip(reason) => {
            let _ = writeln!(ctx.log, "  skipped: {reason}");
            Verdict::Skipped { reason }
        }
    }
}

/// `seen` with the servers' reports and the device's last lines under it.
fn with_evidence(rig: &Session, mut seen: String, evidence: &Evidence) -> String {
    if !evidence.is_empty() {
        seen.push_str("\nmeanwhile on the servers:\n  ");
        seen.push_str(&evidence.lines().join("\n  "));
    }
    let last = rig.last_device_lines(8);
    if !last.is_empty() {
        seen.push_str("\nlast lines from the device:\n  ");
        seen.push_str(&last.join("\n  "));
    }
    seen
}

/// A failure at `line`: the message names file:line, the step, what was
/// expected and seen, and (for a wait that ran out) the telling report of
/// what happened meanwhile; the detail holds it all and the step log.
pub fn failure(
    case: &Case,
    line: u32,
    at: &str,
    expected: &str,
    seen: &str,
    meanwhile: Option<&str>,
    log: &str,
) -> Verdict {
    let mut message = format!(
        "{}:{line}: {at}: expected {expected}; saw {}",
        case.file.display(),
        seen.lines().next().unwrap_or_default()
    );
    if let Some(m) = meanwhile {
        message.push_str("; meanwhile: ");
        message.push_str(m);
    }
    let detail = format!("{message}\n\nexpected: {expected}\nseen: {seen}\n\nsteps:\n{log}");
    Verdict::Failed { message, detail }
}
