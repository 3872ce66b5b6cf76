//! `sent: {paths, after}`: the device pushed its values with Send (LwM2M
//! 1.1 Core §6.4.6: POST /dp with SenML records; the server answers 2.04)
//! — a Send from the case's device since the previous step began (the
//! step that caused it, e.g. a write of Mute Send /1/x/23 false), carrying
//! a value at or below every path and each typed by the object model.
//! Waits up to `within`. A device registered with LwM2M 1.0 has no Send:
//! the step is skipped.

use std::fmt::Write as _;

use lwm2m::server::ServerEvent;
use serde::Deserialize;

use crate::case::fields::CasePath;
use crate::session::Session;
use crate::steps::error::server_error;
use crate::steps::exchange::records_text;
use crate::steps::kinds::composite;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sent {
    /// Paths the Send must carry values at (or below).
    pub paths: Vec<CasePath>,
}

impl Step for Sent {
    fn describe(&self) -> String {
        format!("a Send of {}", composite::listed(&self.paths))
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            composite::require_version(rig, "Send")?;
            let paths = composite::resolve(rig, &self.paths)?;
            let endpoint = rig.endpoint.clone();
            let (seq, event) = rig
                .server
                .await_event(
                    ctx.previous_step.seq,
                    turn.within,
                    |e| matches!(e, ServerEvent::Sent { endpoint: ep, .. } if *ep == endpoint),
                )
                .await
                .map_err(|e| {
                    server_error(
                        format!(
                            "a Send (POST /dp) from {endpoint} with {}",
                            lwm2m::server::composite::path_list(&paths)
                        ),
                        e,
                    )
                })?;
            let ServerEvent::Sent { records, .. } = event else {
                return Ok(());
            };
            let _ = writeln!(ctx.log, "  -> {}", records_text(&records));
            // A meter may push more than was asked about: only what is listed is checked.
            let listed: Vec<_> = records
                .iter()
                .filter(|r| paths.iter().any(|p| p.contains(&r.path)))
                .cloned()
                .collect();
            composite::check_records(rig, &paths, &listed)?;
            ctx.cursor = ctx.cursor.max(seq);
            Ok(())
        })
    }
}
