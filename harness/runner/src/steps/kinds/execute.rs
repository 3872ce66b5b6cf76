//! `execute: /3/0/4` or `{path, args, code}`: an Execute. A reboot or a
//! firmware update follows, so the old registration no longer proves
//! anything, and the rig's matching wait applies to the next registration.

use std::fmt::Write as _;

use lwm2m::server::DmRequest;
use serde::Deserialize;
use server::code_text;

use crate::case::fields::{CaseFieldError, CasePath, Code};
use crate::case::model::StringOr;
use crate::session::Session;
use crate::steps::exchange::exchange;
use crate::steps::{instances, CaseContext, Restart, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteFull {
    path: CasePath,
    args: Option<String>,
    code: Option<Code>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "StringOr<ExecuteFull>")]
pub struct Execute {
    pub path: CasePath,
    pub args: Option<String>,
    pub code: Code,
}

impl TryFrom<StringOr<ExecuteFull>> for Execute {
    type Error = CaseFieldError;
    fn try_from(e: StringOr<ExecuteFull>) -> Result<Self, CaseFieldError> {
        Ok(match e {
            StringOr::Short(p) => Execute {
                path: CasePath::try_from(p)?,
                args: None,
                code: Code::CHANGED,
            },
            StringOr::Long(f) => Execute {
                path: f.path,
                args: f.args,
                code: f.code.unwrap_or(Code::CHANGED),
            },
        })
    }
}

impl Step for Execute {
    fn describe(&self) -> String {
        format!("execute {}", self.path)
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = instances::resolve(rig, self.path)?;
            // Execute Update (/5/x/2) restarts into new firmware: the rig's update wait.
            let update = path.object_id() == Some(lwm2m::firmware::OBJECT_ID)
                && path.resource_id() == Some(lwm2m::firmware::resource::UPDATE);
            ctx.skip_to_now(rig);
            ctx.restart = Some(if update {
                Restart::FirmwareUpdate
            } else {
                Restart::Reboot
            });
            let request = DmRequest::Execute {
                path,
                arguments: self.args.clone(),
            };
            let r = exchange(rig, request, turn.within, self.code).await?;
            // After an Execute (reboot, update) the old registration no longer proves anything.
            ctx.require_new_registration = true;
            let _ = writeln!(ctx.log, "  -> {}", code_text(r.code));
            Ok(())
        })
    }
}
