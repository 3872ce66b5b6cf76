//! `in_range: {RES: [min, max]}` and `one_of: {RES: [v, ...]}` in a `read`:
//! the values a resource may take, by its object's definition (the
//! RangeEnumeration of the OMA object, e.g. Delivery Method 0..2, Core
//! Appendix E.6) or by what a procedure allows at that moment (a State
//! that is not Downloaded). ETS tests such as 1.0-int-751 and 1.0-int-772
//! pass only when the values read lie in those sets, which a type check
//! alone cannot tell. Each value of the resource in the answer is checked,
//! every instance of a multiple one (Protocol Support /5/x/8), and a
//! resource the answer lacks fails: a case that reads an optional resource
//! names it in `needs:` so that a device without it is skipped instead.

use std::collections::BTreeMap;
use std::fmt;

use lwm2m::{Path, Record, Value};
use serde::Deserialize;

use crate::case::model::ScalarValue;
use crate::steps::error::{device, StepError};
use crate::steps::exchange::records_text;
use crate::steps::value::matches;

/// An inclusive range of numbers, written `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "(f64, f64)")]
pub struct InRange {
    pub min: f64,
    pub max: f64,
}

/// A range written with its bounds the wrong way round.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("in_range [{min}, {max}]: the first bound must not exceed the second")]
pub struct RangeError {
    min: f64,
    max: f64,
}

impl TryFrom<(f64, f64)> for InRange {
    type Error = RangeError;
    fn try_from((min, max): (f64, f64)) -> Result<Self, RangeError> {
        if min <= max {
            Ok(InRange { min, max })
        } else {
            Err(RangeError { min, max })
        }
    }
}

impl InRange {
    /// Whether `v` is a number within the range; a value of another type
    /// (a string, a link) never is.
    pub fn contains(&self, v: &Value) -> bool {
        !matches!(v, Value::Boolean(_))
            && v.as_f64().is_some_and(|x| self.min <= x && x <= self.max)
    }
}

impl fmt::Display for InRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in [{}, {}]", self.min, self.max)
    }
}

/// What a `read` step allows its resources to hold.
#[derive(Debug, Clone, Copy)]
pub struct Allowed<'a> {
    pub in_range: &'a BTreeMap<u16, InRange>,
    pub one_of: &'a BTreeMap<u16, Vec<ScalarValue>>,
}

impl Allowed<'_> {
    /// Checks every value of each named resource of `path`'s object in
    /// `records` (the answer to a Read of `path`); the first value outside
    /// its set fails, naming it and the set.
    pub fn check(&self, path: &Path, records: &[Record]) -> Result<(), StepError> {
        for (id, range) in self.in_range {
            for (p, v) in values_of(path, *id, records)? {
                if !range.contains(v) {
                    return Err(device(
                        format!("{} {range}", resource_path(path, *id)),
                        format!("{p} = {v}"),
                    ));
                }
            }
        }
        for (id, set) in self.one_of {
            for (p, v) in values_of(path, *id, records)? {
                if !set.iter().any(|e| matches(v, e)) {
                    let shown: Vec<String> = set.iter().map(|e| e.to_string()).collect();
                    return Err(device(
                        format!("{} one of {}", resource_path(path, *id), shown.join(", ")),
                        format!("{p} = {v}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The path of resource `id` in the instance `path` names (or the resource
/// itself when `path` names it), for messages.
fn resource_path(path: &Path, id: u16) -> String {
    match (path.object_id(), path.instance_id()) {
        (Some(o), Some(i)) => Path::resource(o, i, id).to_string(),
        (Some(o), None) => format!("/{o}/*/{id}"),
        _ => format!("resource {id}"),
    }
}

/// Each value of resource `id` of `path`'s object in `records`, with its
/// path; a failure when there is none.
fn values_of<'r>(
    path: &Path,
    id: u16,
    records: &'r [Record],
) -> Result<Vec<(&'r Path, &'r Value)>, StepError> {
    let found: Vec<_> = records
        .iter()
        .filter(|r| r.path.object_id() == path.object_id() && r.path.resource_id() == Some(id))
        .map(|r| (&r.path, &r.value))
        .collect();
    if found.is_empty() {
        return Err(device(
            format!("{} in the answer", resource_path(path, id)),
            format!("none in {}", records_text(records)),
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firmware_instance() -> Vec<Record> {
        vec![
            Record::new(Path::resource(5, 1, 3), Value::Integer(0)),
            Record::new(Path::resource(5, 1, 5), Value::Integer(0)),
            Record::new(Path::resource_instance(5, 1, 8, 0), Value::Integer(0)),
            Record::new(Path::resource_instance(5, 1, 8, 1), Value::Integer(2)),
            Record::new(Path::resource(5, 1, 9), Value::Integer(2)),
        ]
    }

    fn ranges(yaml: &str) -> BTreeMap<u16, InRange> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn sets(yaml: &str) -> BTreeMap<u16, Vec<ScalarValue>> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn values_within_the_object_ranges_pass_every_instance_of_a_multiple_resource() {
        // Core Appendix E.6: Protocol Support 0..5, Delivery Method 0..2.
        let in_range = ranges("{ 8: [0, 5], 9: [0, 2] }");
        let one_of = sets("{ 3: [0, 1, 3] }");
        let allowed = Allowed {
            in_range: &in_range,
            one_of: &one_of,
        };
        allowed
            .check(&Path::instance(5, 1), &firmware_instance())
            .unwrap();
    }

    #[test]
    fn a_value_outside_its_range_fails_naming_the_value_read() {
        let in_range = ranges("{ 8: [0, 1] }");
        let allowed = Allowed {
            in_range: &in_range,
            one_of: &BTreeMap::new(),
        };
        let e = allowed
            .check(&Path::instance(5, 1), &firmware_instance())
            .unwrap_err();
        assert!(matches!(e, StepError::Device { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("/5/1/8 in [0, 1]"), "{text}");
        assert!(text.contains("/5/1/8/1 = 2"), "{text}");
    }

    #[test]
    fn a_value_not_in_its_set_fails_naming_the_set_and_the_value() {
        let one_of = sets("{ 3: [0, 1, 3] }");
        let allowed = Allowed {
            in_range: &BTreeMap::new(),
            one_of: &one_of,
        };
        let mut records = firmware_instance();
        records[0].value = Value::Integer(2);
        let text = allowed
            .check(&Path::instance(5, 1), &records)
            .unwrap_err()
            .to_string();
        assert!(text.contains("/5/1/3 one of 0, 1, 3"), "{text}");
        assert!(text.contains("/5/1/3 = 2"), "{text}");
    }

    #[test]
    fn a_resource_missing_from_the_answer_fails_instead_of_passing_unchecked() {
        let in_range = ranges("{ 7: [0, 1] }");
        let allowed = Allowed {
            in_range: &in_range,
            one_of: &BTreeMap::new(),
        };
        let text = allowed
            .check(&Path::resource(5, 1, 7), &firmware_instance()[..1])
            .unwrap_err()
            .to_string();
        assert!(text.contains("/5/1/7 in the answer"), "{text}");
    }

    #[test]
    fn only_numbers_lie_in_a_range() {
        let r = InRange { min: 0.0, max: 5.0 };
        assert!(r.contains(&Value::Integer(5)));
        assert!(r.contains(&Value::Unsigned(0)));
        assert!(r.contains(&Value::Float(2.5)));
        assert!(!r.contains(&Value::Integer(-1)));
        assert!(!r.contains(&Value::Integer(6)));
        assert!(!r.contains(&Value::Boolean(true)));
        assert!(!r.contains(&Value::String("1".into())));
    }

    #[test]
    fn a_range_written_backwards_is_refused() {
        let e = serde_saphyr::from_str::<InRange>("[5, 0]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must not exceed"), "{e}");
    }
}
