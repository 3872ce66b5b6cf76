//! `write_composite: {values, format, code}`: a Write-Composite (LwM2M 1.1
//! Core §6.3.9: iPATCH / with SenML records at absolute paths) of
//! resources of several objects at once, answered 2.04 Changed (or `code`).
//! The operation is all or nothing at the device; a case reads back with
//! `read_composite`. Skipped on a device without it (see `composite.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lwm2m::server::DmRequest;
use lwm2m::Record;
use serde::Deserialize;

use crate::case::fields::{CasePath, Code, Format};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::bench;
use crate::steps::exchange::{expect_code, records_text, request_on};
use crate::steps::kinds::{composite, saved};
use crate::steps::value::typed_value;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

/// The payload as a case writes it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteCompositeSpec {
    /// The values to write, by resource path (`/1/*/1: 120`).
    pub values: BTreeMap<String, ScalarValue>,
    /// `senml-json` or `senml-cbor`; default: one the device listed.
    pub format: Option<Format>,
    /// Expected response code; default 2.04.
    pub code: Option<Code>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "WriteCompositeSpec")]
pub struct WriteComposite {
    pub values: Vec<(CasePath, ScalarValue)>,
    pub format: Option<Format>,
    pub code: Option<Code>,
}

impl TryFrom<WriteCompositeSpec> for WriteComposite {
    type Error = composite::CompositeError;
    fn try_from(s: WriteCompositeSpec) -> Result<Self, composite::CompositeError> {
        if s.values.is_empty() {
            return Err(composite::CompositeError::Empty(
                "write_composite",
                "values",
            ));
        }
        Ok(WriteComposite {
            values: composite::parse_values(s.values)?,
            format: s.format,
            code: s.code,
        })
    }
}

impl Step for WriteComposite {
    fn describe(&self) -> String {
        let values: Vec<String> = self
            .values
            .iter()
            .map(|(p, v)| format!("{p}={v}"))
            .collect();
        format!("write-composite {}", values.join(", "))
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            composite::require_version(rig, "Write-Composite")?;
            let format =
                composite::request_format("write_composite", self.format, "absolute paths")?;
            let mut records = Vec::with_capacity(self.values.len());
            for (path, value) in &self.values {
                let path = instances::resolve(rig, *path)?;
                let value = saved::expand(value, &ctx.saved)?;
                let value = typed_value(&rig.registry, &path, &value)
                    .map_err(|e| bench(format!("write_composite {path}: {e}")))?;
                records.push(Record::new(path, value));
            }
            let _ = writeln!(ctx.log, "  <- {}", records_text(&records));
            let request = DmRequest::WriteComposite { records, format };
            let text = server::describe_request(&request);
            let r = request_on(rig, request, turn.within).await?;
            let code = self.code.unwrap_or(Code::CHANGED);
            if r.code != code.0 {
                if let Some(skip) = composite::unsupported("Write-Composite", r.code) {
                    return Err(skip);
                }
            }
            expect_code(rig, lwm2m::Path::ROOT, &text, &r, code)?;
            Ok(())
        })
    }
}
