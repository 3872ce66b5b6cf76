//! What the composite step kinds (`read_composite`, `write_composite`,
//! `observe_composite`) and `sent` share: when they do not apply, and the
//! paths and values a case writes for them.
//!
//! The composite operations and Send are new in LwM2M 1.1 (Core §6.3.8,
//! §6.3.9, §6.4.3, §6.4.6) and optional for a client: a device registered
//! with `lwm2m=1.0`, or one that answers FETCH/iPATCH with 4.05 Method Not
//! Allowed, 4.02 Bad Option, 4.15 Unsupported Content-Format or 5.01 Not
//! Implemented, does not offer them, and the case is skipped as not
//! applicable with that reason rather than failed (a correct 1.0 meter must
//! never fail a 1.1-only case).

use std::collections::BTreeMap;

use lwm2m::server::composite::is_composite_format;
use lwm2m::{ContentFormat, Path, Record};

use crate::case::fields::{self, content_format, CasePath, Format};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::{device, StepError};
use crate::steps::exchange::records_text;
use crate::steps::instances;
use crate::steps::value::has_model_type;

/// Answers that say the device does not offer the operation.
pub const UNSUPPORTED: [u16; 4] = [402, 405, 415, 501];

/// Skips when the device registered a version without composite
/// operations (LwM2M 1.0 has neither them nor Send).
pub fn require_version(rig: &Session, operation: &str) -> Result<(), StepError> {
    let version = rig
        .server
        .registration(&rig.endpoint)
        .map(|r| r.lwm2m_version)
        .unwrap_or_default();
    if version == "1.0" {
        return Err(StepError::Skip(format!(
            "not applicable: the device registered with LwM2M 1.0, which has no {operation} (new in LwM2M 1.1)"
        )));
    }
    Ok(())
}

/// A skip when `code` says the device does not offer `operation`.
pub fn unsupported(operation: &str, code: u16) -> Option<StepError> {
    UNSUPPORTED.contains(&code).then(|| {
        StepError::Skip(format!(
            "not applicable: the device does not offer {operation} (it answered {})",
            server::code_text(code)
        ))
    })
}

/// The case's paths, `*` instances resolved from the registration.
pub fn resolve(rig: &Session, paths: &[CasePath]) -> Result<Vec<Path>, StepError> {
    paths.iter().map(|p| instances::resolve(rig, *p)).collect()
}

/// The case's paths as a step's description lists them: `/3/0/0, /1/*/1`.
pub fn listed(paths: &[CasePath]) -> String {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    paths.join(", ")
}

/// The content format `step` asks for (none: the server's choice). Only the
/// SenML formats can carry what a composite request carries (`what`: a path
/// list, absolute paths; LwM2M 1.1 Core §6.3.8, §6.3.9), so any other is the
/// case's error, named with the step.
pub fn request_format(
    step: &str,
    format: Option<Format>,
    what: &str,
) -> Result<Option<ContentFormat>, StepError> {
    let format = content_format(format);
    if let Some(f) = format.filter(|f| !is_composite_format(*f)) {
        return Err(StepError::Bench(format!(
            "{step}: {} cannot carry {what}; use senml-json or senml-cbor",
            f.name()
        )));
    }
    Ok(format)
}

/// A composite step's payload that cannot be run, found when the case loads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompositeError {
    #[error("{0}: `{1}` lists nothing")]
    Empty(&'static str, &'static str),
    #[error(transparent)]
    Field(#[from] fields::CaseFieldError),
}

/// `{/1/*/1: 120, ...}` as a case writes it, each path checked when the case loads.
pub fn parse_values(
    values: BTreeMap<String, ScalarValue>,
) -> Result<Vec<(CasePath, ScalarValue)>, CompositeError> {
    values
        .into_iter()
        .map(|(p, v)| Ok((CasePath(fields::path(&p)?), v)))
        .collect()
}

/// Every path has a record at or below it, and every record has the type
/// the object model gives its resource. An Optional resource with no value
/// is one this device does not have: the step does not apply (a composite
/// answer leaves out what the device lacks, Core §6.3.8), so it is skipped
/// with that reason, never failed.
pub fn check_records(rig: &Session, paths: &[Path], records: &[Record]) -> Result<(), StepError> {
    for path in paths {
        if !records.iter().any(|r| path.contains(&r.path)) {
            let optional =
                path.depth() >= 3 && rig.registry.resource(path).is_some_and(|d| !d.mandatory);
            if optional {
                return Err(StepError::Skip(format!(
                    "not applicable: the device has no value at {path}, an Optional resource it may lack"
                )));
            }
            return Err(device(
                format!("a value at {path}"),
                format!("none in {}", records_text(records)),
            ));
        }
    }
    for rec in records {
        if !paths.iter().any(|p| p.contains(&rec.path)) {
            return Err(device(
                format!(
                    "values at {} only",
                    lwm2m::server::composite::path_list(paths)
                ),
                format!("{} = {}", rec.path, rec.value),
            ));
        }
        if let Some(def) = rig.registry.resource(&rec.path) {
            if !has_model_type(def.kind, &rec.value) {
                return Err(device(
                    format!("{} ({}) of type {:?}", rec.path, def.name, def.kind),
                    format!("{} {}", rec.value.type_name(), rec.value),
                ));
            }
        }
    }
    Ok(())
}

/// Every `present` path lies at or below a path the step asks for: one
/// outside them could never be in the answer, which is the case's error,
/// not the device's.
pub fn present_within(step: &str, asked: &[Path], present: &[Path]) -> Result<(), StepError> {
    match present
        .iter()
        .find(|p| !asked.iter().any(|a| a.contains(p)))
    {
        Some(p) => Err(StepError::Bench(format!(
            "{step}: `present` {p} is not at or below a path it reads ({})",
            lwm2m::server::composite::path_list(asked)
        ))),
        None => Ok(()),
    }
}

/// Every `present` path has at least one record at or below it, whatever
/// its value: the object (instance, resource) is on the device and readable.
pub fn check_present(present: &[Path], records: &[Record]) -> Result<(), StepError> {
    for path in present {
        if !records.iter().any(|r| path.contains(&r.path)) {
            return Err(device(
                format!("a value at or below {path}"),
                format!("none in {}", records_text(records)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three composite steps share this check; what they ask for other
    /// than SenML is the case's error, named with the step.
    #[test]
    fn only_senml_carries_a_composite_request() {
        for f in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor] {
            assert_eq!(
                request_format("read_composite", Some(Format(f)), "a path list").unwrap(),
                Some(f)
            );
        }
        assert_eq!(request_format("sent", None, "a path list").unwrap(), None);
        match request_format(
            "write_composite",
            Some(Format(ContentFormat::Tlv)),
            "absolute paths",
        ) {
            Err(StepError::Bench(m)) => assert_eq!(
                m,
                "write_composite: tlv cannot carry absolute paths; use senml-json or senml-cbor"
            ),
            other => panic!("expected the case's error, got {other:?}"),
        }
    }

    fn path(text: &str) -> Path {
        text.parse().unwrap()
    }

    /// `present: [/1, /3]` on a Read-Composite of `/` (ETS int-235): an
    /// answer with values of both passes, one without object 1 fails
    /// naming it, whatever the values are.
    #[test]
    fn present_needs_a_value_at_or_below_each_path() {
        let records = vec![
            Record::new(path("/1/0/1"), lwm2m::Value::Integer(300)),
            Record::new(path("/3/0/16"), lwm2m::Value::String("UQ".into())),
        ];
        let present = [path("/1"), path("/3")];
        present_within("read_composite", &[Path::ROOT], &present).unwrap();
        check_present(&present, &records).unwrap();
        match check_present(&present, &records[1..]) {
            Err(StepError::Device { expected, seen }) => {
                assert_eq!(expected, "a value at or below /1");
                assert!(seen.starts_with("none in "), "{seen}");
            }
            other => panic!("expected the device's failure, got {other:?}"),
        }
    }

    /// A `present` path outside every path read could never be answered:
    /// the case's error, naming the step and both.
    #[test]
    fn present_outside_the_paths_read_is_the_cases_error() {
        match present_within("read_composite", &[path("/3")], &[path("/1")]) {
            Err(StepError::Bench(m)) => {
                assert!(m.contains("read_composite: `present` /1"), "{m}");
                assert!(m.contains("/3"), "{m}");
            }
            other => panic!("expected the case's error, got {other:?}"),
        }
    }
}
