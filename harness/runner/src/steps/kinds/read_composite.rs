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
    /// Like `present`, for objects a device may lack: each path whose
    /// object the device's registration lists must have a value in the
    /// answer; one whose object it does not list is only noted.
    #[serde(default)]
    pub present_if_registered: Vec<CasePath>,
    /// `senml-json` or `senml-cbor`; default: one the device listed.
    pub format: Option<Format>,
    /// Expected response code; default 2.05.
    pub code: Option<Code>,
    /// Values resources (by path) must read.
    #[serde(default)]
    pub values: BTreeMap<String, ScalarValue>,
    /// Each path is also read alone (Read, Core §6.3.1, in the same format)
    /// and the composite answer must hold values at the same resources
    /// under it as that Read: the device's own resource count, not one a
    /// case assumes (ETS int-229 counts 15 of /3/0 and 11 of /1/0 on its
    /// device).
    #[serde(default)]
    pub same_as_read: bool,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ReadCompositeSpec")]
pub struct ReadComposite {
    pub paths: Vec<CasePath>,
    pub absent: Vec<CasePath>,
    pub present: Vec<CasePath>,
    pub present_if_registered: Vec<CasePath>,
    pub format: Option<Format>,
    pub code: Option<Code>,
    pub values: Vec<(CasePath, ScalarValue)>,
    pub same_as_read: bool,
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
            present_if_registered: s.present_if_registered,
            format: s.format,
            code: s.code,
            values: composite::parse_values(s.values)?,
            same_as_read: s.same_as_read,
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
            let mut present = composite::resolve(rig, &self.present)?;
            for path in &self.present_if_registered {
                let object = path.0.object_id().unwrap_or_default();
                let listed = rig
                    .server
                    .registration(&rig.endpoint)
                    .is_some_and(|r| r.has_object(object));
                if listed {
                    present.push(instances::resolve(rig, *path)?);
                } else {
                    let _ = writeln!(
                        ctx.log,
                        "  (object {object} is not in the registration: {path} is not required)"
                    );
                }
            }
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
            if self.same_as_read {
                for path in &paths {
                    same_as_read(rig, ctx, *path, format.or(r.format), records, turn).await?;
                }
            }
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

/// A Read of `path` alone answers values at the same resources as the
/// composite answer holds under it (values may differ: a clock moves).
async fn same_as_read(
    rig: &Session,
    ctx: &mut CaseContext,
    path: lwm2m::Path,
    format: Option<lwm2m::ContentFormat>,
    composite: &[lwm2m::Record],
    turn: Turn,
) -> Result<(), crate::steps::StepError> {
    let request = DmRequest::Read { path, format };
    let text = server::describe_request(&request);
    let r = request_on(rig, request, turn.within).await?;
    expect_code(rig, path, &text, &r, Code::CONTENT)?;
    let Content::Records(read) = &r.content else {
        return Err(device(
            format!("resource values to {text}"),
            format!("{:?}", r.content),
        ));
    };
    let _ = writeln!(ctx.log, "  read {path} alone -> {} value(s)", read.len());
    compare_paths(path, read, composite)
}

/// The resource paths under `path` in both answers, compared: a failure
/// names what one has and the other lacks.
fn compare_paths(
    path: lwm2m::Path,
    read: &[lwm2m::Record],
    composite: &[lwm2m::Record],
) -> Result<(), crate::steps::StepError> {
    use std::collections::BTreeSet;
    let under = |records: &[lwm2m::Record]| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| path.contains(&r.path))
            .map(|r| r.path.to_string())
            .collect()
    };
    let (alone, together) = (under(read), under(composite));
    if alone == together {
        return Ok(());
    }
    let missing: Vec<&String> = alone.difference(&together).collect();
    let extra: Vec<&String> = together.difference(&alone).collect();
    Err(device(
        format!(
            "the Read-Composite's values under {path} at the {} resource(s) a Read of {path} answers",
            alone.len()
        ),
        format!("missing {missing:?}, not in the Read {extra:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwm2m::{Record, Value};

    fn rec(p: &str) -> Record {
        Record::new(p.parse().unwrap(), Value::Integer(1))
    }

    /// ETS int-229 on the device's own counts: a composite answer that
    /// leaves out a resource a Read of the same instance gives fails,
    /// naming it; other objects' values do not count.
    #[test]
    fn a_composite_answer_must_hold_what_a_read_of_the_path_holds() {
        let path: lwm2m::Path = "/3/0".parse().unwrap();
        let read = [rec("/3/0/0"), rec("/3/0/11/0"), rec("/3/0/16")];
        let whole = [
            rec("/3/0/0"),
            rec("/3/0/11/0"),
            rec("/3/0/16"),
            rec("/1/0/1"),
        ];
        compare_paths(path, &read, &whole).unwrap();
        let short = [rec("/3/0/0"), rec("/3/0/16"), rec("/1/0/1")];
        match compare_paths(path, &read, &short) {
            Err(crate::steps::StepError::Device { expected, seen }) => {
                assert!(expected.contains("3 resource(s)"), "{expected}");
                assert!(seen.contains("/3/0/11/0"), "{seen}");
            }
            other => panic!("expected the device's failure, got {other:?}"),
        }
    }
}
