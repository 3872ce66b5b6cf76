//! Awaiting what the servers' security does with the device: a finished
//! bootstrap, a refused DTLS handshake, a 4.03 Forbidden.

use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::server::{SecurityEvent, ServerEvent};
use server::code_text;

use crate::session::Session;
use crate::steps::error::{server_error, StepError};
use crate::steps::CaseContext;

pub async fn bootstrapped(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    let ep = rig.endpoint.clone();
    let bs = crate::steps::kinds::bootstrap::bootstrap_server(rig)?;
    let outcome = bs
        .await_bootstrap_finished(&ep, ctx.bootstrap_cursor, within)
        .await
        .map_err(|e| server_error(format!("{ep} to complete bootstrap within {within:?}"), e))?;
    ctx.bootstrap_cursor = outcome.seq;
    // The device registers anew with what it was given; that may already
    // have happened since the step that started the bootstrap.
    ctx.require_new_registration = true;
    ctx.registered_not_before = outcome.finished_at;
    ctx.cursor = ctx.previous_step.seq.min(ctx.cursor);
    for (i, op, code) in &outcome.operations {
        let _ = writeln!(ctx.log, "  -> {i}: {op} {}", code_text(*code));
    }
    Ok(())
}

pub async fn handshake_refused(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    let identity = ctx
        .replaced_server_psk
        .as_ref()
        .map(|p| p.identity.clone())
        .or_else(|| rig.credentials.as_ref().map(|c| c.server.identity.clone()));
    let (seq, event) = rig
        .server
        .await_handshake_failed(identity.as_deref(), ctx.cursor, within)
        .await
        .map_err(|e| server_error(format!("a refused DTLS handshake within {within:?}"), e))?;
    ctx.cursor = seq;
    let _ = writeln!(ctx.log, "  -> {}", server::describe_security_event(&event));
    Ok(())
}

/// A handshake the LwM2M server completed in certificate mode whose
/// client certificate names this device (`x509:CN=<endpoint>`): the
/// device authenticated with the certificate bootstrap gave it, not with an
/// older PSK.
pub async fn certificate_handshake(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    let identity = server::certificate_identity(&rig.endpoint);
    let wanted = identity.clone();
    let (seq, event) = rig
        .server
        .await_event(ctx.cursor, within, move |e| {
            matches!(e, ServerEvent::Security(SecurityEvent::HandshakeCompleted { identity, .. })
                if *identity == wanted)
        })
        .await
        .map_err(|e| {
            server_error(
                format!("a DTLS handshake as {identity} (certificate mode) within {within:?}"),
                e,
            )
        })?;
    ctx.cursor = seq;
    let _ = writeln!(ctx.log, "  -> {}", server::describe_event(&event));
    Ok(())
}

pub async fn forbidden(
    ctx: &mut CaseContext,
    rig: &mut Session,
    within: Duration,
) -> Result<(), StepError> {
    // Refused for this device: its own endpoint, or its identity claiming
    // another endpoint.
    let identity = rig.credentials.as_ref().map(|c| c.server.identity.clone());
    let ep = rig.endpoint.clone();
    let (seq, event) = rig
        .server
        .await_event(ctx.cursor, within, move |e| {
            matches!(e, ServerEvent::Forbidden { endpoint, identity: id, .. }
                if *endpoint == ep || (id.is_some() && *id == identity))
        })
        .await
        .map_err(|e| server_error(format!("a 4.03 Forbidden within {within:?}"), e))?;
    ctx.cursor = seq;
    let _ = writeln!(ctx.log, "  -> {}", server::describe_event(&event));
    Ok(())
}
