//! `observe: {path, format, pmin, pmax}`: Write-Attributes when the case
//! gives them, then an Observe (RFC 7641); the case's `await: {notification}`
//! steps count the notifications from here on.

use std::fmt::Write as _;

use lwm2m::server::DmRequest;
use serde::Deserialize;
use server::code_text;

use crate::case::fields::{content_format, CasePath, Code, Format};
use crate::session::Session;
use crate::steps::error::server_error;
use crate::steps::exchange::{exchange, expect_code, values_text};
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Observe {
    pub path: CasePath,
    pub format: Option<Format>,
    /// Write-Attributes sent before the Observe (LwM2M 1.1 Core §5.1.2).
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
}

impl Step for Observe {
    fn describe(&self) -> String {
        format!("observe {}", self.path)
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = instances::resolve(rig, self.path)?;
            if self.pmin.is_some() || self.pmax.is_some() {
                let attributes = lwm2m::server::Attributes {
                    pmin: self.pmin,
                    pmax: self.pmax,
                    ..Default::default()
                };
                let request = DmRequest::WriteAttributes { path, attributes };
                exchange(rig, request, turn.within, Code::CHANGED).await?;
            }
            let before = rig.server.current_seq();
            let r = rig
                .server
                .observe(&rig.endpoint, path, content_format(self.format))
                .await
                .map_err(|e| server_error(format!("an answer to Observe {path}"), e))?;
            expect_code(
                rig,
                path,
                &format!("Observe {path}"),
                &r.first,
                Code::CONTENT,
            )?;
            let _ = writeln!(
                ctx.log,
                "  -> {} {}",
                code_text(r.first.code),
                values_text(&r.first)
            );
            ctx.observations.insert(path, r.id);
            // Notifications are counted from the Observe on.
            ctx.cursor = before;
            Ok(())
        })
    }
}
