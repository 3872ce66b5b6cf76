//! `read: {path, format, mandatory, code}`: a Read, its answer typed by the
//! object model, and (with `mandatory`) every readable Mandatory resource of
//! the object present.

use std::fmt::Write as _;

use lwm2m::server::{Content, DmRequest};
use lwm2m::ContentFormat;
use serde::Deserialize;

use crate::case::fields::{content_format, CasePath, Code, Format};
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::exchange::{expect_code, records_text, request_on};
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
        let request = DmRequest::Read { path, format };
        let text = server::describe_request(&request);
        let r = request_on(rig, request, turn.within).await?;
        if r.code == NOT_ACCEPTABLE && code.0 != NOT_ACCEPTABLE {
            if let Some(f) = format {
                let version = rig
                    .server
                    .registration(&rig.endpoint)
                    .map(|reg| reg.lwm2m_version)
                    .unwrap_or_default();
                if !is_mandatory(f, &version) {
                    return Err(StepError::Skip(format!(
                        "device does not support {} (4.06 to {text}); it is optional for LwM2M {version}",
                        f.name()
                    )));
                }
            }
        }
        expect_code(rig, path, &text, &r, code)?;
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

/// 4.06 Not Acceptable: the device cannot answer in the Accept'ed format.
const NOT_ACCEPTABLE: u16 = 406;

/// Whether a device registered with LwM2M `version` must answer a Read in
/// format `f`, so that a 4.06 to it is a failure and not a skip.
///
/// LwM2M 1.0 (OMA-TS-LightweightM2M-V1_0 §6.4) makes TLV mandatory for all
/// requests, and Plain Text and Opaque for single resources; its JSON is
/// optional. From 1.1 (Core §7.4) Plain Text, Opaque and CoRE Link stay
/// mandatory while TLV, SenML JSON, SenML CBOR and (1.2) LwM2M CBOR are
/// formats a client offers by choice and announces in its `ct` list.
fn is_mandatory(f: ContentFormat, version: &str) -> bool {
    match f {
        ContentFormat::Text | ContentFormat::Opaque | ContentFormat::LinkFormat => true,
        ContentFormat::Tlv => version == "1.0",
        ContentFormat::SenmlJson
        | ContentFormat::SenmlCbor
        | ContentFormat::Lwm2mJson
        | ContentFormat::Lwm2mCbor => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_406_skips_only_formats_the_version_makes_optional() {
        for version in ["1.0", "1.1", "1.2"] {
            for f in [
                ContentFormat::SenmlJson,
                ContentFormat::SenmlCbor,
                ContentFormat::Lwm2mJson,
                ContentFormat::Lwm2mCbor,
            ] {
                assert!(!is_mandatory(f, version), "{f:?} under {version}");
            }
            assert!(
                is_mandatory(ContentFormat::Text, version),
                "text under {version}"
            );
            assert!(
                is_mandatory(ContentFormat::Opaque, version),
                "opaque under {version}"
            );
        }
        assert!(is_mandatory(ContentFormat::Tlv, "1.0"));
        assert!(!is_mandatory(ContentFormat::Tlv, "1.1"));
    }
}
