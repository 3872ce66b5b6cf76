//! `cancel_observe: /3/0/13`: ends an observation (RFC 7641 §3.6, a GET with
//! Observe=1).

use std::fmt::Write as _;

use lwm2m::server::DmRequest;
use serde::Deserialize;
use server::code_text;

use crate::case::fields::CasePath;
use crate::session::Session;
use crate::steps::exchange::request_on;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct CancelObserve(pub CasePath);

impl Step for CancelObserve {
    fn describe(&self) -> String {
        format!("cancel observe {}", self.0)
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = instances::resolve(rig, self.0)?;
            let r = request_on(rig, DmRequest::CancelObserve { path }, turn.within).await?;
            ctx.observations.remove(&path);
            let _ = writeln!(ctx.log, "  -> {}", code_text(r.code));
            Ok(())
        })
    }
}
