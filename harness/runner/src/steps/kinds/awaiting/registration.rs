//! Awaiting the device's registration lifecycle (LwM2M 1.1 Core §6.2):
//! Register, Update, De-register.

use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::server::ServerEvent;
use lwm2m::{Path, Value};
use server::links_text;

use crate::session::Session;
use crate::steps::error::{device, server_error, StepError};
use crate::steps::exchange::read_value;
use crate::steps::CaseContext;

pub async fn registered(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    let ep = rig.endpoint.clone();
    if !ctx.require_new_registration {
        if let Some(r) = rig.server.registration(&ep) {
            let _ = writeln!(ctx.log, "  -> already registered at {}", r.location);
            // What happened before is consumed: a later await wants news.
            ctx.skip_to_now(rig);
            return Ok(());
        }
    }
    let deadline = tokio::time::Instant::now() + within;
    let mut after = ctx.cursor;
    let (seq, reg) = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (seq, reg) = rig
            .server
            .await_registered(&ep, after, left)
            .await
            .map_err(|e| server_error(format!("{ep} to register within {within:?}"), e))?;
        match ctx.registered_not_before {
            Some(finished) if reg.registered_at < finished => {
                let _ = writeln!(
                    ctx.log,
                    "  -> the registration at {} was made before the bootstrap finished; waiting for the next",
                    reg.location
                );
                after = seq;
            }
            _ => break (seq, reg),
        }
    };
    ctx.registered(seq);
    let _ = writeln!(
        ctx.log,
        "  -> registered at {} objects {}",
        reg.location,
        links_text(&reg.objects)
    );
    learn_firmware_version(rig).await;
    Ok(())
}

pub async fn reregistered(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    let ep = rig.endpoint.clone();
    let after = ctx.previous_step.seq.min(ctx.cursor);
    let (seq, reg) = rig
        .server
        .await_registered(&ep, after, within)
        .await
        .map_err(|e| server_error(format!("{ep} to register again within {within:?}"), e))?;
    ctx.registered(seq);
    let _ = writeln!(ctx.log, "  -> registered again at {}", reg.location);
    Ok(())
}

pub async fn deregistered(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    let ep = rig.endpoint.clone();
    if !ctx.require_new_registration && rig.server.registration(&ep).is_none() {
        let _ = writeln!(ctx.log, "  -> not registered");
        ctx.skip_to_now(rig);
        return Ok(());
    }
    let (seq, event) = rig
        .server
        .await_deregistered(&ep, ctx.cursor, within)
        .await
        .map_err(|e| server_error(format!("{ep} to de-register within {within:?}"), e))?;
    ctx.cursor = seq;
    let _ = writeln!(ctx.log, "  -> {}", server::describe_event(&event));
    if matches!(event, ServerEvent::Expired { .. }) {
        return Err(device(
            format!("{ep} to send De-register"),
            "its registration expired instead",
        ));
    }
    Ok(())
}

pub async fn updated(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    let ep = rig.endpoint.clone();
    let ep2 = ep.clone();
    let lifetime = rig.server.registration(&ep).map(|r| r.lifetime);
    let (seq, event) = rig
        .server
        .await_event(ctx.cursor, within, move |e| match e {
            ServerEvent::Updated(r) => r.endpoint == ep2,
            ServerEvent::Expired { endpoint } => *endpoint == ep2,
            _ => false,
        })
        .await
        .map_err(|e| {
            server_error(
                format!("a registration Update from {ep} within {within:?}"),
                e,
            )
        })?;
    ctx.cursor = seq;
    let _ = writeln!(ctx.log, "  -> {}", server::describe_event(&event));
    if matches!(event, ServerEvent::Expired { .. }) {
        // §6.2.2: the Update is due before the lifetime runs out.
        return Err(device(
            format!(
                "a registration Update from {ep} before its lifetime{} ran out",
                lifetime
                    .map(|l| format!(" of {}s", l.as_secs()))
                    .unwrap_or_default()
            ),
            "the registration expired with no Update",
        ));
    }
    Ok(())
}

/// The firmware version the device reports (/3/0/3), for the report, once.
async fn learn_firmware_version(rig: &mut Session) {
    if rig.info.firmware_version.is_none() {
        if let Ok(Value::String(v)) =
            read_value(rig, Path::resource(3, 0, 3), Duration::from_secs(5)).await
        {
            rig.info.firmware_version = Some(v);
        }
    }
}
