//! `read: {path, format, mandatory, code, equals, values, save}`: a Read,
//! its answer typed by the object model, (with `mandatory`) every readable
//! Mandatory resource of the object present, (with `equals` or `values`)
//! the values read back compared by meaning, and (with `save`) the value of
//! a single resource kept for a later `{saved:NAME}`; with `if_absent`, an
//! optional resource the device has not instantiated (4.04) saves what the
//! TS says its absence means, so a case can put back exactly the behaviour
//! it found (LwM2M 1.1 Core Appendix E.2: an absent Mute Send is Send off).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lwm2m::server::{Content, DmRequest};
use lwm2m::ContentFormat;
use serde::Deserialize;

use crate::case::fields::{content_format, CasePath, Code, Format};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::exchange::{expect_code, records_text, request_on};
use crate::steps::kinds::{allowed_values, saved};
use crate::steps::value::{has_model_type, matches};
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
    /// The value a single resource (or resource instance) must read.
    pub equals: Option<ScalarValue>,
    /// Values resources (by id) of the instance read must have.
    pub values: Option<BTreeMap<u16, ScalarValue>>,
    /// Keeps the value read (of a single resource) under this name for
    /// `{saved:NAME}` in later steps of the case.
    pub save: Option<String>,
    /// With `save`: the value to keep when the device answers 4.04 for an
    /// optional resource it has not instantiated, the value the TS gives
    /// the resource's absence. A missing Mandatory resource still fails.
    pub if_absent: Option<ScalarValue>,
    /// Ranges (`[min, max]`) each value of a resource (by id) read must lie in.
    #[serde(default)]
    pub in_range: BTreeMap<u16, allowed_values::InRange>,
    /// Values each value of a resource (by id) read must be one of.
    #[serde(default)]
    pub one_of: BTreeMap<u16, Vec<ScalarValue>>,
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
        if r.code == Code::NOT_FOUND.0 && code != Code::NOT_FOUND {
            if let Some((name, kept)) = self.absent_value(rig, &path)? {
                let _ = writeln!(
                    ctx.log,
                    "  -> 4.04: {path} is not instantiated; {name} = {kept} (what its absence means)"
                );
                ctx.saved.insert(name, kept);
                return Ok(());
            }
        }
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
        } else if !single_value(rig, &path) {
            // No Accept: the device picks the format (LwM2M 1.1 Core
            // §7.4: Plain Text and Opaque carry one value only), so an
            // Object or Instance comes in a format for several values.
            if let Some(f) = r.format.filter(|f| !carries_several_values(*f)) {
                return Err(device(
                    format!("{path} in a format that carries several values (TLV, SenML JSON/CBOR, LwM2M JSON/CBOR)"),
                    f.name(),
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
        self.check_values(&mut ctx.saved, &path, records)?;
        allowed_values::Allowed {
            in_range: &self.in_range,
            one_of: &self.one_of,
        }
        .check(&path, records)?;
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

impl Read {
    /// The name and value `if_absent` keeps for a 4.04 at `path`: only an
    /// optional resource may be absent (a missing Mandatory one is judged as
    /// any other 4.04), and only a saved value can stand in for it.
    fn absent_value(
        &self,
        rig: &Session,
        path: &lwm2m::Path,
    ) -> Result<Option<(String, String)>, StepError> {
        let Some(value) = &self.if_absent else {
            return Ok(None);
        };
        let name = self.save.clone().ok_or_else(|| {
            bench(format!(
                "read {path}: `if_absent` needs `save` (the value it stands for is kept under that name)"
            ))
        })?;
        let optional =
            path.depth() == 3 && rig.registry.resource(path).is_some_and(|d| !d.mandatory);
        Ok(optional.then(|| (name, value.to_string())))
    }

    /// `equals`, `values` and `save` against the records read at `path`.
    fn check_values(
        &self,
        saved: &mut std::collections::HashMap<String, String>,
        path: &lwm2m::Path,
        records: &[lwm2m::Record],
    ) -> Result<(), StepError> {
        let at = |p: &lwm2m::Path| records.iter().find(|r| r.path == *p).map(|r| &r.value);
        if self.equals.is_some() || self.save.is_some() {
            let value = at(path).or(match records {
                [one] if path.contains(&one.path) => Some(&one.value),
                _ => None,
            });
            let value = value
                .ok_or_else(|| device(format!("one value at {path}"), records_text(records)))?;
            if let Some(e) = &self.equals {
                let e = saved::expand(e, saved)?;
                if !matches(value, &e) {
                    return Err(device(format!("{path} = {e}"), format!("{path} = {value}")));
                }
            }
            if let Some(name) = &self.save {
                saved.insert(name.clone(), value.to_text());
            }
        }
        for (id, e) in self.values.iter().flatten() {
            let p = path
                .child(*id)
                .filter(|_| path.depth() == 2)
                .ok_or_else(|| {
                    bench(format!(
                        "read {path}: `values` needs an object instance path"
                    ))
                })?;
            let e = saved::expand(e, saved)?;
            match at(&p) {
                Some(v) if matches(v, &e) => {}
                Some(v) => return Err(device(format!("{p} = {e}"), format!("{p} = {v}"))),
                None => {
                    return Err(device(
                        format!("{p} = {e} in the answer"),
                        format!("no {p} in {}", records_text(records)),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Whether `path` names one value: a Resource Instance, or a Resource the
/// object model says is single.
fn single_value(rig: &Session, path: &lwm2m::Path) -> bool {
    path.depth() == 4
        || (path.depth() == 3 && rig.registry.resource(path).is_some_and(|d| !d.multiple))
}

/// The formats that can carry several values (LwM2M 1.1 Core §7.4).
fn carries_several_values(f: ContentFormat) -> bool {
    !f.carries_single_value() && f != ContentFormat::LinkFormat
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
/// formats a client offers by choice and announces in its `ct` list, as is
/// CBOR (60, Core §7.4.6) for single values.
pub(crate) fn is_mandatory(f: ContentFormat, version: &str) -> bool {
    match f {
        ContentFormat::Text | ContentFormat::Opaque | ContentFormat::LinkFormat => true,
        ContentFormat::Tlv => version == "1.0",
        ContentFormat::SenmlJson
        | ContentFormat::SenmlCbor
        | ContentFormat::Lwm2mJson
        | ContentFormat::Lwm2mCbor
        | ContentFormat::Cbor => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwm2m::{Path, Record, Value};
    use std::collections::HashMap;

    fn read(yaml: &str) -> Read {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn server_instance() -> Vec<Record> {
        vec![
            Record::new(Path::resource(1, 1, 1), Value::Integer(40)),
            Record::new(Path::resource(1, 1, 6), Value::Boolean(true)),
            Record::new(Path::resource(1, 1, 7), Value::String("U".into())),
        ]
    }

    #[test]
    fn values_read_back_are_compared_by_meaning_and_a_mismatch_names_both() {
        let mut saved = HashMap::from([("lt".to_owned(), "30".to_owned())]);
        let r = read("{ path: /1/*, values: { 1: \"{saved:lt+10}\", 6: true, 7: U } }");
        let at = Path::instance(1, 1);
        r.check_values(&mut saved, &at, &server_instance()).unwrap();
        let r = read("{ path: /1/*, values: { 1: 41 } }");
        let e = r
            .check_values(&mut saved, &at, &server_instance())
            .unwrap_err();
        assert!(
            e.to_string().contains("/1/1/1 = 41") && e.to_string().contains("/1/1/1 = 40"),
            "{e}"
        );
        let r = read("{ path: /1/*, values: { 2: 0 } }");
        let e = r
            .check_values(&mut saved, &at, &server_instance())
            .unwrap_err();
        assert!(e.to_string().contains("no /1/1/2"), "{e}");
    }

    #[test]
    fn a_single_value_is_checked_with_equals_and_kept_with_save() {
        let mut saved = HashMap::new();
        let at = Path::resource(1, 1, 1);
        let one = [Record::new(at, Value::Integer(40))];
        read("{ path: /1/*/1, equals: 40, save: lt }")
            .check_values(&mut saved, &at, &one)
            .unwrap();
        assert_eq!(saved.get("lt").map(String::as_str), Some("40"));
        let e = read("{ path: /1/*/1, equals: 41 }")
            .check_values(&mut saved, &at, &one)
            .unwrap_err();
        assert!(matches!(e, StepError::Device { .. }), "{e}");
    }

    #[test]
    fn only_formats_for_several_values_may_answer_a_read_of_an_object() {
        assert!(!carries_several_values(ContentFormat::Text));
        assert!(!carries_several_values(ContentFormat::Opaque));
        assert!(!carries_several_values(ContentFormat::Cbor));
        for f in [
            ContentFormat::Tlv,
            ContentFormat::SenmlJson,
            ContentFormat::SenmlCbor,
            ContentFormat::Lwm2mJson,
            ContentFormat::Lwm2mCbor,
        ] {
            assert!(carries_several_values(f), "{f:?}");
        }
    }

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
