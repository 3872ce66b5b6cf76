//! Awaiting values: a resource polled by Read until it meets its condition,
//! and notifications of an observation an `observe` step started.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use lwm2m::server::ServerEvent;

use crate::case::fields::CasePath;
use crate::session::Session;
use crate::steps::error::{bench, server_error, timed_out, StepError};
use crate::steps::exchange::{check_condition, read_value, records_text};
use crate::steps::kinds::expect_value::ValueCondition;
use crate::steps::{instances, CaseContext};

/// How often a value is read again while awaited.
const POLL: Duration = Duration::from_millis(500);

pub async fn value(
    ctx: &mut CaseContext,
    rig: &mut Session,
    path: CasePath,
    condition: &ValueCondition,
    within: Duration,
) -> Result<(), StepError> {
    let path = instances::resolve(rig, path)?;
    let condition = &condition.with_role_versions(rig).await?;
    let end = Instant::now() + within;
    let first = loop {
        let left = end.saturating_duration_since(Instant::now());
        let asked = Instant::now();
        match read_value(rig, path, left).await {
            Ok(v) => break v,
            // A device between registrations (a profile switch re-attaches
            // it) answers once registered again: the wait goes on.
            Err(e) if Instant::now() < end && between_registrations(rig, asked) => {
                let _ = writeln!(ctx.log, "  -> not answered while re-registering: {e}");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e),
        }
    };
    let _ = writeln!(ctx.log, "  -> {first}");
    let mut last = first.clone();
    loop {
        if check_condition(path, &last, condition, Some(&first)).is_ok() {
            let _ = writeln!(ctx.log, "  -> {last}");
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(timed_out(
                format!("{path} {condition} within {within:?}"),
                format!("{path} = {last} at the end of the wait"),
            ));
        }
        tokio::time::sleep(POLL.min(end.saturating_duration_since(Instant::now()))).await;
        let left = end
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        last = read_value(rig, path, left).await?;
    }
}

pub async fn notifications(
    ctx: &mut CaseContext,
    rig: &mut Session,
    path: CasePath,
    count: u32,
    within: Duration,
) -> Result<(), StepError> {
    let path = instances::resolve(rig, path)?;
    let id = *ctx.observations.get(&path).ok_or_else(|| {
        bench(format!(
            "no observe step started an observation of {path} in this case"
        ))
    })?;
    let mut seen = 0;
    while seen < count {
        let (seq, event) = rig
            .server
            .await_event(ctx.cursor, within, move |e| {
                matches!(e, ServerEvent::Notification { observation, .. } if *observation == id)
            })
            .await
            .map_err(|e| {
                server_error(
                    format!("{count} notification(s) of {path} within {within:?}"),
                    e,
                )
            })
            .map_err(|e| match e {
                StepError::Timeout {
                    expected,
                    seen: why,
                } => timed_out(expected, format!("{seen} arrived ({why})")),
                other => other,
            })?;
        ctx.cursor = seq;
        seen += 1;
        if let ServerEvent::Notification { records, .. } = &event {
            let _ = writeln!(
                ctx.log,
                "  -> notification {seen}: {}",
                records_text(records)
            );
        }
    }
    Ok(())
}

/// Whether the device's registration ended, or was replaced, since `asked`.
fn between_registrations(rig: &Session, asked: Instant) -> bool {
    rig.server
        .registration(&rig.endpoint)
        .is_none_or(|r| r.registered_at >= asked)
}
