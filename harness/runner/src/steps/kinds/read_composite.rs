//! `read_composite: {paths, absent, format, code, values}`: a Read-Composite
//! (LwM2M 1.1 Core §6.3.8: FETCH / with the paths as a SenML list), its
//! answer in SenML JSON or CBOR with a value at or below every path of
//! `paths` and nothing else, each typed by the object model, and (with
//! `values`) the values compared by meaning. `absent` paths are asked for
//! too and must be left out of the answer: what the device does not have
//! or cannot read ("Partial Presence", ETS int-236 and int-281). `present`
//! is its counterpart: paths at or below those asked for (an object under
//! `/`) that must have at least one value in the answer, whatever the
//! values are, so that a case can prove an object is there without naming
//! the device's own configuration (ETS int-235 expects objects 1 and 3 in
//! a Read-Composite of `/`). Skipped on a device without Read-Composite
//! (see `composite.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lwm2m::server::{composite::is_composite_format, Content, DmRequest};
use serde::Deserialize;

use crate::case::fields::{CasePath, Code, Format};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::device;
use crate::steps::exchange::{expect_code, records_text, request_on};
use crate::steps::kinds::composite;
use crate::steps::value::matches;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

/// The payload as a case writes it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadCompositeSpec {
    /// The paths to read (objects, instances, resources, resource instances).
    pub paths: Vec<CasePath>,
    /// Paths asked for too, which the answer must leave out (not on the
    /// device, or not readable).
    #[serde(default)]
    pub absent: Vec<CasePath>,
    /// Paths at or below one of `paths` that must have at least one value
    /// in the answer (any value: the device's own configuration).
    #[serde(default)]
    pub present: Vec<CasePath>,
    /// `senml-json` or `senml-cbor`; default: one the device listed.
    pub format: Option<Format>,
    /// Expected response code; default 2.05.
    pub code: Option<Code>,
    /// Values resources (by path) must read.
    #[serde(default)]
    pub values: BTreeMap<String, ScalarValue>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ReadCompositeSpec")]
pub struct ReadComposite {
    pub paths: Vec<CasePath>,
    pub absent: Vec<CasePath>,
    pub present: Vec<CasePath>,
    pub format: Option<Format>,
    pub code: Option<Code>,
    pub values: Vec<(CasePath, ScalarValue)>,
}

impl TryFrom<ReadCompositeSpec> for ReadComposite {
    type Error = composite::CompositeError;
    fn try_from(s: ReadCompositeSpec) -> Result<Self, composite::CompositeError> {
        if s.paths.is_empty() {
            return Err(composite::CompositeError::Empty("read_composite", "paths"));
        }
        Ok(ReadComposite {
            paths: s.paths,
            absent: s.absent,
            present: s.present,
            format: s.format,
            code: s.code,
            values: composite::parse_values(s.values)?,
        })
    }
}

impl Step for ReadComposite {
    fn describe(&self) -> String {
        format!("read-composite {}", composite::listed(&self.paths))
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            composite::require_version(rig, "Read-Composite")?;
            let paths = composite::resolve(rig, &self.paths)?;
            let absent = composite::resolve(rig, &self.absent)?;
            let present = composite::resolve(rig, &self.present)?;
            composite::present_within("read_composite", &paths, &present)?;
            let format = composite::request_format("read_composite", self.format, "a path list")?;
            let request = DmRequest::ReadComposite {
                paths: paths.iter().chain(&absent).copied().collect(),
                format,
            };
            let text = server::describe_request(&request);
            let r = request_on(rig, request, turn.within).await?;
            let code = self.code.unwrap_or(Code::CONTENT);
            if r.code != code.0 {
                if let Some(skip) = composite::unsupported("Read-Composite", r.code) {
                    return Err(skip);
                }
            }
            expect_code(rig, lwm2m::Path::ROOT, &text, &r, code)?;
            if code != Code::CONTENT {
                return Ok(());
            }
            match (format, r.format) {
                (Some(asked), Some(got)) if asked != got => {
                    return Err(device(format!("a {} answer", asked.name()), got.name()))
                }
                (_, Some(got)) if !is_composite_format(got) => {
                    return Err(device("a SenML JSON or CBOR answer", got.name()))
                }
                _ => {}
            }
            let Content::Records(records) = &r.content else {
                return Err(device("resource values", format!("{:?}", r.content)));
            };
            let _ = writeln!(ctx.log, "  -> {}", records_text(records));
            composite::check_records(rig, &paths, records)?;
            composite::check_present(&present, records)?;
            for (path, expected) in &self.values {
                let path = instances::resolve(rig, *path)?;
                match records.iter().find(|r| r.path == path) {
                    Some(r) if matches(&r.value, expected) => {}
                    Some(r) => {
                        return Err(device(
                            format!("{path} = {expected}"),
                            format!("{path} = {}", r.value),
                        ))
                    }
                    None => {
                        return Err(device(
                            format!("{path} = {expected} in the answer"),
                            records_text(records),
                        ))
                    }
                }
            }
            Ok(())
        })
    }
}
