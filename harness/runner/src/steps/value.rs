//! Case values meet device values: a value written in YAML is typed by the
//! object model before it is sent, and a value read back is compared by
//! meaning (2 equals 2.0; "1" equals true for a Boolean), not by spelling.

use lwm2m::{Path, Registry, ResourceType, Value};
use thiserror::Error;

use crate::case::model::ScalarValue;

/// A case value the object model's type for its resource cannot hold.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{path} is {kind:?} in the object model; {value} does not fit")]
pub struct ValueError {
    pub path: Path,
    pub kind: ResourceType,
    pub value: ScalarValue,
}

/// Types a case value for `path` by the object model.
pub fn typed_value(registry: &Registry, path: &Path, v: &ScalarValue) -> Result<Value, ValueError> {
    let kind = registry.resource(path).map(|r| r.kind).unwrap_or(match v {
        ScalarValue::Bool(_) => ResourceType::Boolean,
        ScalarValue::Integer(_) => ResourceType::Integer,
        ScalarValue::Float(_) => ResourceType::Float,
        ScalarValue::Text(_) => ResourceType::String,
    });
    let bad = || ValueError {
        path: *path,
        kind,
        value: v.clone(),
    };
    Ok(match (kind, v) {
        (ResourceType::String, v) => Value::String(plain_text(v)),
        (ResourceType::Corelnk, v) => Value::Corelnk(plain_text(v)),
        (ResourceType::Integer, ScalarValue::Integer(i)) => Value::Integer(*i),
        (ResourceType::Integer, ScalarValue::Text(t)) => {
            Value::Integer(t.trim().parse().map_err(|_| bad())?)
        }
        (ResourceType::Time, ScalarValue::Integer(i)) => Value::Time(*i),
        (ResourceType::UnsignedInteger, ScalarValue::Integer(i)) if *i >= 0 => {
            Value::Unsigned(*i as u64)
        }
        (ResourceType::Float, ScalarValue::Float(f)) => Value::Float(*f),
        (ResourceType::Float, ScalarValue::Integer(i)) => Value::Float(*i as f64),
        (ResourceType::Boolean, ScalarValue::Bool(b)) => Value::Boolean(*b),
        (ResourceType::Boolean, ScalarValue::Integer(i @ (0 | 1))) => Value::Boolean(*i == 1),
        (ResourceType::Opaque, ScalarValue::Text(t)) => {
            Value::Opaque(hex::decode(t.trim_start_matches("0x")).map_err(|_| bad())?)
        }
        (ResourceType::Objlnk, ScalarValue::Text(t)) => {
            let (o, i) = t.split_once(':').ok_or_else(bad)?;
            Value::Objlnk(o.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    })
}

fn plain_text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Text(t) => t.clone(),
        other => other.to_string(),
    }
}

/// Whether a device value means the case value.
pub fn matches(device: &Value, expected: &ScalarValue) -> bool {
    match (device, expected) {
        (Value::Boolean(b), ScalarValue::Bool(e)) => b == e,
        (d, ScalarValue::Integer(e)) => d.as_f64() == Some(*e as f64),
        (d, ScalarValue::Float(e)) => d
            .as_f64()
            .is_some_and(|x| (x - e).abs() <= f64::EPSILON * e.abs().max(1.0)),
        (Value::Opaque(b), ScalarValue::Text(t)) => {
            hex::encode(b).eq_ignore_ascii_case(t.trim_start_matches("0x"))
        }
        (d, ScalarValue::Text(t)) => d.to_text() == *t,
        (_, ScalarValue::Bool(_)) => false,
    }
}

/// Whether a device value has the type the object model gives its resource.
pub fn has_model_type(kind: ResourceType, v: &Value) -> bool {
    matches!(
        (kind, v),
        (ResourceType::String, Value::String(_))
            | (ResourceType::Integer, Value::Integer(_))
            | (ResourceType::UnsignedInteger, Value::Unsigned(_))
            | (ResourceType::Float, Value::Float(_))
            | (ResourceType::Boolean, Value::Boolean(_))
            | (ResourceType::Opaque, Value::Opaque(_))
            | (ResourceType::Time, Value::Time(_))
            | (ResourceType::Objlnk, Value::Objlnk(..))
            | (ResourceType::Corelnk, Value::Corelnk(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        assert!(matches(&Value::Integer(2), &ScalarValue::Integer(2)));
        assert!(matches(&Value::Float(2.0), &ScalarValue::Integer(2)));
        assert!(!matches(&Value::Integer(3), &ScalarValue::Integer(2)));
        assert!(matches(
            &Value::String("2.0".into()),
            &ScalarValue::Text("2.0".into())
        ));
        assert!(matches(&Value::Boolean(true), &ScalarValue::Bool(true)));
        assert!(!matches(
            &Value::String("x".into()),
            &ScalarValue::Bool(true)
        ));
    }

    #[test]
    fn untyped_paths_take_the_yaml_type() {
        let r = Registry::default();
        let p = Path::resource(9999, 0, 1);
        assert_eq!(
            typed_value(&r, &p, &ScalarValue::Integer(5)).unwrap(),
            Value::Integer(5)
        );
        assert_eq!(
            typed_value(&r, &p, &ScalarValue::Text("x".into())).unwrap(),
            Value::String("x".into())
        );
    }

    #[test]
    fn a_value_the_model_type_cannot_hold_names_path_type_and_value() {
        // Battery Level (/3/0/9) is an Integer (LwM2M 1.1 Core, Appendix E.4).
        let r = Registry::core();
        let p = Path::resource(3, 0, 9);
        let e = typed_value(&r, &p, &ScalarValue::Text("ten".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/3/0/9 is Integer in the object model; \"ten\" does not fit"
        );
    }
}
