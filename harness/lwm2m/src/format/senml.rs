//! SenML records shared by the JSON and CBOR encodings (RFC 8428), with the
//! LwM2M rules on top (LwM2M 1.1 Core §7.4.4, §7.4.5): names are LwM2M paths
//! (base name + name, concatenated as strings), numbers go in `v`, strings
//! in `vs`, booleans in `vb`, opaque in `vd`, object links in `vlo` as
//! `"object:instance"`, and Time as a number of seconds in `v`.
//!
//! Records are resolved the RFC 8428 §4.6 way before the object model types
//! them: a base field (`bn`, `bt`, `bv`, `bs`) applies to its own record and
//! every later one until a record carries that base field again (§4.1); the
//! name is base name + name (§4.5.1), the time base time + time, the value
//! base value + value and the sum base sum + sum (§4.2). The LwM2M 1.0 JSON
//! format (11543) shares the resolution, with its own value fields.

use crate::format::{base64, ContentFormat, FormatError, Record, TimedRecord};
use crate::model::{Registry, ResourceType};
use crate::path::Path;
use crate::value::{parse_objlnk, Value};

/// A SenML number before the object model types it: CBOR integers reach
/// -2^64..2^64, so i128 holds every integer either encoding can carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// `self + other`, staying an integer while both are and the sum fits.
    fn add(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a
                .checked_add(b)
                .map_or(Number::Float(a as f64 + b as f64), Number::Int),
            (a, b) => Number::Float(a.as_f64() + b.as_f64()),
        }
    }
}

/// The value fields of one SenML record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SenmlValue {
    Number(Number),
    String(String),
    Bool(bool),
    Data(Vec<u8>),
    ObjLink(String),
    /// LwM2M 1.0 JSON's `sv`: a String, a Corelnk, or an Opaque value in
    /// base64, whichever the resource's type says (OMA LwM2M 1.0 TS §6.4.4).
    StringOrBase64(String),
}

/// One SenML record as read off the wire, base fields not yet applied.
#[derive(Debug, Default)]
pub(crate) struct RawRecord {
    pub base_name: Option<String>,
    pub base_time: Option<Number>,
    pub base_value: Option<Number>,
    pub base_sum: Option<Number>,
    pub name: Option<String>,
    pub time: Option<Number>,
    pub sum: Option<Number>,
    pub value: Option<SenmlValue>,
    /// Byte offset of the record in the payload, for errors.
    pub offset: usize,
}

/// Resolves each record (RFC 8428 §4.6: base fields carry over to later
/// records until replaced, §4.1), checks each path lies under `base` and
/// types values by the model.
pub(crate) fn to_records(
    format: ContentFormat,
    base: &Path,
    raw: Vec<RawRecord>,
    registry: &Registry,
) -> Result<Vec<TimedRecord>, FormatError> {
    let mut base_name = String::new();
    let mut base_time: Option<Number> = None;
    let mut base_value: Option<Number> = None;
    let mut base_sum: Option<Number> = None;
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let err = |reason: String| FormatError::new(format, r.offset, reason);
        if let Some(bn) = r.base_name {
            base_name = bn;
        }
        base_time = r.base_time.or(base_time);
        base_value = r.base_value.or(base_value);
        base_sum = r.base_sum.or(base_sum);
        let name = format!("{base_name}{}", r.name.as_deref().unwrap_or(""));
        if name.is_empty() {
            return Err(err("record has neither base name nor name".into()));
        }
        let path: Path = name
            .parse()
            .map_err(|e| err(format!("name {name:?} is not an LwM2M path: {e}")))?;
        if !base.contains(&path) {
            return Err(err(format!(
                "record {path} lies outside the request path {base}"
            )));
        }
        // §4.2: the base value is added to a numeric value, never stands in for a missing one.
        let value = match (r.value, base_value) {
            (Some(SenmlValue::Number(v)), Some(bv)) => Some(SenmlValue::Number(bv.add(v))),
            (v, _) => v,
        };
        let Some(value) = value else {
            let what = if r.sum.is_some() {
                "only a sum (s), which no LwM2M resource holds"
            } else {
                "no value (v, vs, vb, vd or vlo)"
            };
            return Err(err(format!("record {path} has {what}")));
        };
        let def = registry.resource(&path);
        let kind = def.map(|d| d.kind);
        let typed = typed_value(kind, value).map_err(|reason| err(format!("{path}: {reason}")))?;
        let resolve = |b: Option<Number>, v: Option<Number>| match (b, v) {
            (None, None) => None,
            (b, v) => Some(
                b.unwrap_or(Number::Int(0))
                    .add(v.unwrap_or(Number::Int(0)))
                    .as_f64(),
            ),
        };
        out.push(TimedRecord {
            record: Record::new(path, typed),
            time: resolve(base_time, r.time),
            // Like the value, a sum needs its own `s` for the base sum to add to.
            sum: r.sum.and_then(|s| resolve(base_sum, Some(s))),
        });
    }
    Ok(out)
}

/// Converts a SenML value to the resource's type; an unknown resource keeps
/// the value's natural type (integer numbers as Integer, or Unsigned past i64).
pub(crate) fn typed_value(kind: Option<ResourceType>, value: SenmlValue) -> Result<Value, String> {
    use ResourceType as T;
    let integral = |n: Number| -> Option<i128> {
        match n {
            Number::Int(i) => Some(i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 1.8e19 => Some(f as i128),
            Number::Float(_) => None,
        }
    };
    let type_name = kind.map_or("unknown", |k| {
        if k == T::None {
            "executable"
        } else {
            k.ddf_name()
        }
    });
    let mismatch =
        |field: &str| format!("a {field} value does not fit a resource of type {type_name}");
    Ok(match (value, kind) {
        (SenmlValue::Number(n), Some(T::Integer)) => Value::Integer(
            integral(n)
                .and_then(|i| i64::try_from(i).ok())
                .ok_or("number is not a 64-bit integer")?,
        ),
        (SenmlValue::Number(n), Some(T::Time)) => Value::Time(
            integral(n)
                .and_then(|i| i64::try_from(i).ok())
                .ok_or("time is not a whole number of seconds")?,
        ),
        (SenmlValue::Number(n), Some(T::UnsignedInteger)) => Value::Unsigned(
            integral(n)
                .and_then(|i| u64::try_from(i).ok())
                .ok_or("number is not an unsigned 64-bit integer")?,
        ),
        (SenmlValue::Number(Number::Int(i)), Some(T::Float)) => Value::Float(i as f64),
        (SenmlValue::Number(Number::Float(f)), Some(T::Float)) => Value::Float(f),
        (SenmlValue::Number(n), None) => match n {
            Number::Int(i) => match (i64::try_from(i), u64::try_from(i)) {
                (Ok(s), _) => Value::Integer(s),
                (_, Ok(u)) => Value::Unsigned(u),
                _ => return Err(format!("integer {i} does not fit 64 bits")),
            },
            Number::Float(f) => Value::Float(f),
        },
        (SenmlValue::Number(_), Some(_)) => return Err(mismatch("numeric (v)")),
        (SenmlValue::String(s), Some(T::String) | None) => Value::String(s),
        (SenmlValue::String(s), Some(T::Corelnk)) => Value::Corelnk(s),
        (SenmlValue::String(_), Some(_)) => return Err(mismatch("string (vs)")),
        (SenmlValue::Bool(b), Some(T::Boolean) | None) => Value::Boolean(b),
        (SenmlValue::Bool(_), Some(_)) => return Err(mismatch("boolean (vb)")),
        (SenmlValue::Data(d), Some(T::Opaque | T::None) | None) => Value::Opaque(d),
        (SenmlValue::Data(_), Some(_)) => return Err(mismatch("data (vd)")),
        (SenmlValue::ObjLink(s), Some(T::Objlnk) | None) => {
            let (o, i) = parse_objlnk(&s)
                .ok_or_else(|| format!("object link {s:?} is not object:instance"))?;
            Value::Objlnk(o, i)
        }
        (SenmlValue::ObjLink(_), Some(_)) => return Err(mismatch("object link (vlo)")),
        (SenmlValue::StringOrBase64(s), Some(T::String) | None) => Value::String(s),
        (SenmlValue::StringOrBase64(s), Some(T::Corelnk)) => Value::Corelnk(s),
        (SenmlValue::StringOrBase64(s), Some(T::Opaque)) => Value::Opaque(
            base64::decode(s.as_bytes())
                .map_err(|at| format!("sv is not base64 (character {at})"))?,
        ),
        (SenmlValue::StringOrBase64(_), Some(_)) => return Err(mismatch("string (sv)")),
    })
}

/// One record to write: base name on the first record only, then the name
/// relative to it, as the spec's examples do (`"bn":"/3/0/","n":"0"`).
#[derive(Debug)]
pub(crate) struct OutRecord {
    pub base_name: Option<String>,
    pub name: Option<String>,
    pub value: SenmlValue,
}

pub(crate) fn from_records(
    format: ContentFormat,
    base: &Path,
    records: &[Record],
) -> Result<Vec<OutRecord>, FormatError> {
    let prefix = if base.depth() == 0 {
        "/".to_string()
    } else {
        format!("{base}/")
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        if !base.contains(&r.path) || r.path.depth() < 3 {
            return Err(FormatError::new(
                format,
                0,
                format!(
                    "record {} is not a resource at or below the request path {base}",
                    r.path
                ),
            ));
        }
        let rel: Vec<String> = r.path.ids()[base.depth()..]
            .iter()
            .map(|id| id.to_string())
            .collect();
        let rel = rel.join("/");
        let (base_name, name) = match (i, rel.is_empty()) {
            (0, true) if records.len() == 1 => (Some(base.to_string()), None),
            (0, _) => (Some(prefix.clone()), Some(rel)),
            (_, _) => (None, Some(rel)),
        };
        out.push(OutRecord {
            base_name,
            name,
            value: senml_value(&r.value),
        });
    }
    Ok(out)
}

fn senml_value(v: &Value) -> SenmlValue {
    match v {
        Value::Integer(i) | Value::Time(i) => SenmlValue::Number(Number::Int(i128::from(*i))),
        Value::Unsigned(u) => SenmlValue::Number(Number::Int(i128::from(*u))),
        Value::Float(f) => SenmlValue::Number(Number::Float(*f)),
        Value::Boolean(b) => SenmlValue::Bool(*b),
        Value::String(s) | Value::Corelnk(s) => SenmlValue::String(s.clone()),
        Value::Opaque(d) => SenmlValue::Data(d.clone()),
        Value::Objlnk(o, i) => SenmlValue::ObjLink(format!("{o}:{i}")),
    }
}
