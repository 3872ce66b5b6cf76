//! `write: {path, value, format, mode, code}`: a Write, the value typed by
//! the object model (`{fw_url:ROLE}` becomes the role's Package URI).

use std::fmt::Write as _;

use lwm2m::server::{DmRequest, WriteMode};
use lwm2m::Record;
use serde::Deserialize;
use server::code_text;

use crate::case::fields::{content_format, CasePath, Code, Format};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::bench;
use crate::steps::exchange::exchange;
use crate::steps::value::typed_value;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    pub path: CasePath,
    pub value: ScalarValue,
    pub format: Option<Format>,
    /// `replace` (PUT, default) or `partial` (POST): LwM2M 1.1 Core §5.4.3.
    #[serde(default)]
    pub mode: Mode,
    /// Expected response code; default 2.04.
    pub code: Option<Code>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Replace,
    Partial,
}

impl From<Mode> for WriteMode {
    fn from(m: Mode) -> WriteMode {
        match m {
            Mode::Replace => WriteMode::Replace,
            Mode::Partial => WriteMode::PartialUpdate,
        }
    }
}

impl Step for Write {
    fn describe(&self) -> String {
        format!("write {} = {}", self.path, self.value)
    }

    fn firmware_roles(&self) -> Vec<String> {
        match &self.value {
            ScalarValue::Text(t) => crate::steps::firmware::roles_in(t),
            _ => Vec::new(),
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = instances::resolve(rig, self.path)?;
            let value = crate::steps::firmware::expand_urls(rig, &self.value).await?;
            let value = typed_value(&rig.registry, &path, &value).map_err(bench)?;
            let request = DmRequest::Write {
                path,
                mode: self.mode.into(),
                records: vec![Record::new(path, value)],
                format: content_format(self.format),
            };
            let code = self.code.unwrap_or(Code::CHANGED);
            let r = exchange(rig, request, turn.within, code).await?;
            let _ = writeln!(ctx.log, "  -> {}", code_text(r.code));
            Ok(())
        })
    }
}
