//! `read: {path, format, mandatory, code}`: a Read, its answer typed by the
//! object model, and (with `mandatory`) every readable Mandatory resource of
//! the object present.

use std::fmt::Write as _;

use lwm2m::server::{Content, DmRequest};
use serde::Deserialize;

use crate::case::fields::{content_format, CasePath, Code, Format};
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::exchange::{exchange, records_text};
use crate::steps::value::has_model_type;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub path: CasePath,
    /// `tlv`, `senml-json`, `senml-cbor`, `lwm2m-cbor`, `text`, `opaque`.
    pub format: Option<Format>,
    /// Every mandatory resource of the object model must be present.
    #[serde(default)]
    pub mandatory: bool,
    /// Expected response code (e.g. `4.04`); default: 2.05.
    pub code: Option<Code>,
}

impl Step for Read {
    fn describe(&self) -> String {
        let format = content_format(self.format)
            .map(|f| format!(" as {}", f.name()))
            .unwrap_or_default();
        format!("read {}{format}", self.path)
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move { self.read(turn, ctx, rig).await })
    }
}

impl Read {
    async fn read(
        &self,
        turn: Turn,
        ctx: &mut CaseContext,
        rig: &Session,
    ) -> Result<(), StepError> {
        let path = instances::resolve(rig, self.path)?;
        let format = content_format(self.format);
        let code = self.code.unwrap_or(Code::CONTENT);
        let r = exchange(rig, DmRequest::Read { path, format }, turn.within, code).await?;
        if code != Code::CONTENT {
            return Ok(());
        }
        if let Some(f) = format {
            if r.format != Some(f) {
                return Err(device(
                    format!("a {} answer", f.name()),
                    format!("{:?}", r.format),
                ));
            }
        }
        let Content::Records(records) = &r.content else {
            return Err(device("resource values", format!("{:?}", r.content)));
        };
        let _ = writeln!(ctx.log, "  -> {}", records_text(records));
        for rec in records {
            if let Some(def) = rig.registry.resource(&rec.path) {
                if !has_model_type(def.kind, &rec.value) {
                    return Err(device(
                        format!("{} ({}) of type {:?}", rec.path, def.name, def.kind),
                        format!("{} {}", rec.value.type_name(), rec.value),
                    ));
                }
            }
        }
        if self.mandatory {
            let object = path
                .object_id()
                .and_then(|o| rig.registry.object(o))
                .ok_or_else(|| bench(format!("{path} is not in the object model")))?;
            for def in object.mandatory_resources().filter(|d| d.operations.read) {
                let present = records.iter().any(|r| {
                    r.path.object_id() == path.object_id() && r.path.resource_id() == Some(def.id)
                });
                if !present {
                    return Err(device(
                        format!("mandatory resource {}/{} ({})", path, def.id, def.name),
                        "absent from the answer",
                    ));
                }
            }
        }
        Ok(())
    }
}
