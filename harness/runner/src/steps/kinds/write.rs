//! `write: {path, value | values, format, mode, code}`: a Write, each value
//! typed by the object model (`{fw_url:ROLE}` becomes the role's Package
//! URI, `{saved:NAME}` a value an earlier `read` saved). `values` writes
//! several resources of the instance `path` in one request (ETS int-215,
//! int-226: a Write on an Object Instance, LwM2M 1.1 Core §6.3.3).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lwm2m::server::{DmRequest, WriteMode};
use lwm2m::Record;
use serde::Deserialize;
use server::code_text;
use thiserror::Error;

use crate::case::fields::{content_format, CasePath, Code, Format};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::{bench, StepError};
use crate::steps::exchange::{expect_code, request_on};
use crate::steps::kinds::saved;
use crate::steps::value::typed_value;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    path: CasePath,
    value: Option<ScalarValue>,
    values: Option<BTreeMap<u16, ScalarValue>>,
    format: Option<Format>,
    #[serde(default)]
    mode: Mode,
    code: Option<Code>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "WriteSpec")]
pub struct Write {
    pub path: CasePath,
    #[schemars(skip)] // parsed from its `try_from` type
    pub value: Payload,
    pub format: Option<Format>,
    /// `replace` (PUT, default) or `partial` (POST): LwM2M 1.1 Core §5.4.3.
    #[serde(default)]
    pub mode: Mode,
    /// Expected response code; default 2.04.
    pub code: Option<Code>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Replace,
    Partial,
}

/// What a Write carries: one value at `path`, or values of resources
/// (by id) of the instance `path`.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    One(ScalarValue),
    Resources(BTreeMap<u16, ScalarValue>),
}

/// A `write` payload that cannot make one Write request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WriteSpecError {
    #[error("write: give exactly one of `value` and `values`")]
    ValueOrValues,
    #[error(
        "write {0}: `values` (resource id: value) needs an object instance path such as /1/*, and at least one value"
    )]
    ValuesNeedInstance(String),
    /// Plain text, opaque and CBOR carry one resource value (LwM2M 1.1 Core
    /// §7.4.1, §7.4.2, §7.4.6): a Write of several in one of them could
    /// only fail on the device, for the case's sake.
    #[error("write {path}: format {format} carries a single resource value; `values` needs tlv, senml-json, senml-cbor or lwm2m-cbor")]
    SingleValueFormat { path: String, format: &'static str },
}

impl TryFrom<WriteSpec> for Write {
    type Error = WriteSpecError;
    fn try_from(w: WriteSpec) -> Result<Self, WriteSpecError> {
        let value = match (w.value, w.values) {
            (Some(v), None) => Payload::One(v),
            (None, Some(_)) if w.format.is_some_and(|f| f.0.carries_single_value()) => {
                return Err(WriteSpecError::SingleValueFormat {
                    path: w.path.to_string(),
                    format: content_format(w.format).map_or("", |f| f.name()),
                })
            }
            (None, Some(vs)) if !vs.is_empty() && w.path.0.depth() == 2 => Payload::Resources(vs),
            (None, Some(_)) => return Err(WriteSpecError::ValuesNeedInstance(w.path.to_string())),
            _ => return Err(WriteSpecError::ValueOrValues),
        };
        Ok(Write {
            path: w.path,
            value,
            format: w.format,
            mode: w.mode,
            code: w.code,
        })
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::One(v) => write!(f, "{v}"),
            Payload::Resources(vs) => {
                let parts: Vec<String> = vs.iter().map(|(id, v)| format!("{id}: {v}")).collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
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
        match content_format(self.format) {
            Some(f) => format!("write {} = {} as {}", self.path, self.value, f.name()),
            None => format!("write {} = {}", self.path, self.value),
        }
    }

    fn firmware_roles(&self) -> Vec<String> {
        match &self.value {
            Payload::One(ScalarValue::Text(t)) => crate::steps::firmware::roles_in(t),
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
            let mut records = Vec::new();
            match &self.value {
                Payload::One(v) => {
                    let v = saved::expand(v, &ctx.saved)?;
                    let v = crate::steps::firmware::expand_urls(rig, &v).await?;
                    let v = typed_value(&rig.registry, &path, &v).map_err(bench)?;
                    records.push(Record::new(path, v));
                }
                Payload::Resources(vs) => {
                    for (id, v) in vs {
                        let p = path
                            .child(*id)
                            .ok_or_else(|| bench(format!("{path} has no resource level")))?;
                        let v = saved::expand(v, &ctx.saved)?;
                        let v = typed_value(&rig.registry, &p, &v).map_err(bench)?;
                        records.push(Record::new(p, v));
                    }
                }
            }
            // A write that changes object 5 (an empty Package URI resets it)
            // waits for the transition watch to observe the current
            // registration, or the status before the write goes unseen.
            if let (Some(watch), Some(lwm2m::firmware::OBJECT_ID)) =
                (&ctx.firmware_watch, path.object_id())
            {
                watch.settle(&rig.server, &rig.endpoint).await;
            }
            let format = content_format(self.format);
            let request = DmRequest::Write {
                path,
                mode: self.mode.into(),
                records,
                format,
            };
            let text = server::describe_request(&request);
            let code = self.code.unwrap_or(Code::CHANGED);
            // What the device does about the Write (an Update after a new
            // Lifetime, a notification) comes after it: later waits count
            // from here.
            ctx.skip_to_now(rig);
            let r = request_on(rig, request, turn.within).await?;
            if let Some(f) =
                format.filter(|_| r.code == UNSUPPORTED_CONTENT_FORMAT && code.0 != r.code)
            {
                let version = rig
                    .server
                    .registration(&rig.endpoint)
                    .map(|reg| reg.lwm2m_version)
                    .unwrap_or_default();
                if !crate::steps::kinds::read::is_mandatory(f, &version) {
                    return Err(StepError::Skip(format!(
                        "device does not accept {} (4.15 to {text}); it is optional for LwM2M {version}",
                        f.name()
                    )));
                }
            }
            expect_code(rig, path, &text, &r, code)?;
            let _ = writeln!(ctx.log, "  -> {}", code_text(r.code));
            Ok(())
        })
    }
}

/// 4.15 Unsupported Content-Format: the device cannot take the Write's format.
const UNSUPPORTED_CONTENT_FORMAT: u16 = 415;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_write_resources_of_an_instance() {
        let w: Write =
            serde_saphyr::from_str("{ path: /1/*, mode: partial, values: { 1: 60, 6: true } }")
                .unwrap();
        let Payload::Resources(vs) = &w.value else {
            panic!("{w:?}");
        };
        assert_eq!(vs.get(&1), Some(&ScalarValue::Integer(60)));
        assert_eq!(vs.get(&6), Some(&ScalarValue::Bool(true)));
        assert_eq!(w.mode, Mode::Partial);
        assert_eq!(w.describe(), "write /1/* = {1: 60, 6: true}");
    }

    #[test]
    fn value_and_values_are_exclusive_and_values_need_an_instance() {
        let e = serde_saphyr::from_str::<Write>("{ path: /1/*/1, value: 1, values: { 1: 2 } }")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("exactly one of `value` and `values`"),
            "{e}"
        );
        let e = serde_saphyr::from_str::<Write>("{ path: /1/*/1, values: { 1: 2 } }").unwrap_err();
        assert!(e.to_string().contains("object instance path"), "{e}");
    }

    #[test]
    fn cbor_format_writes_one_value_and_refuses_values() {
        let w: Write =
            serde_saphyr::from_str("{ path: /1/*/6, value: true, format: cbor }").unwrap();
        assert_eq!(content_format(w.format), Some(lwm2m::ContentFormat::Cbor));
        assert_eq!(w.describe(), "write /1/*/6 = true as cbor");
        let e = serde_saphyr::from_str::<Write>(
            "{ path: /1/*, values: { 2: 101, 3: 1010 }, format: cbor }",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("format cbor carries a single resource value"),
            "{e}"
        );
    }
}
