//! CBOR (content format 60, `application/cbor`, LwM2M 1.1 Core §7.4.6): one
//! resource or resource-instance value as a single CBOR data item (RFC 8949),
//! for Read and Write of a single resource, as plain text and opaque are.
//!
//! Data types (Core §7.4.6, Table 7.4.6-1): Integer as major type 0 or 1,
//! Unsigned Integer as major type 0, Float as major type 7 (half, single or
//! double precision), Boolean as simple values 20/21, String and Corelnk as
//! a text string (major type 3), Opaque as a byte string (major type 2),
//! Time as an epoch-based date/time (tag 1, RFC 8949 §3.4.2) over an
//! integer, and Objlnk as the text string `"object:instance"`.
//!
//! The decoder takes what a correct peer may send and no more than the type
//! allows: a Time with or without tag 1 (an untagged integer is the same
//! number of seconds), a Float written as an integer (exact for the values a
//! peer can mean), any float width. The encoder writes RFC 8949 §4.2.2
//! preferred serialization (shortest lossless float, shortest integer head),
//! so its output is byte-for-byte predictable.

use ciborium::Value as Cbor;

use crate::format::text::{check_single_target, single_value};
use crate::format::{cbor, ContentFormat, FormatError, Record};
use crate::model::{Registry, ResourceType};
use crate::path::Path;
use crate::value::{parse_objlnk, Value};

const FORMAT: ContentFormat = ContentFormat::Cbor;

/// The epoch-based date/time tag (RFC 8949 §3.4.2).
const EPOCH_TIME_TAG: u64 = 1;

pub(crate) fn encode(base: &Path, records: &[Record]) -> Result<Vec<u8>, FormatError> {
    let item = match single_value(FORMAT, base, records)? {
        Value::Integer(i) => Cbor::from(*i),
        Value::Unsigned(u) => Cbor::from(*u),
        Value::Float(f) => Cbor::Float(*f),
        Value::Boolean(b) => Cbor::Bool(*b),
        Value::String(s) | Value::Corelnk(s) => Cbor::Text(s.clone()),
        Value::Opaque(d) => Cbor::Bytes(d.clone()),
        Value::Time(t) => Cbor::Tag(EPOCH_TIME_TAG, Box::new(Cbor::from(*t))),
        Value::Objlnk(o, i) => Cbor::Text(format!("{o}:{i}")),
    };
    let mut out = Vec::new();
    ciborium::ser::into_writer(&item, &mut out)
        .map_err(|e| FormatError::new(FORMAT, 0, e.to_string()))?;
    Ok(out)
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<Record>, FormatError> {
    check_single_target(FORMAT, base)?;
    let (item, end) =
        cbor::item(payload, 0).map_err(|(at, reason)| FormatError::new(FORMAT, at, reason))?;
    if end != payload.len() {
        return Err(FormatError::new(
            FORMAT,
            end,
            "trailing bytes after the single CBOR data item",
        ));
    }
    let kind = registry.resource(base).map(|r| r.kind);
    let value = typed(kind, item).map_err(|reason| FormatError::new(FORMAT, 0, reason))?;
    Ok(vec![Record::new(*base, value)])
}

/// The item as the resource's type; an unknown resource (or an executable's
/// `None`) keeps the item's natural type.
fn typed(kind: Option<ResourceType>, item: Cbor) -> Result<Value, String> {
    use ResourceType as T;
    let kind = kind.filter(|k| *k != T::None);
    let found = describe(&item);
    let mismatch = |want: &str| {
        format!(
            "a resource of type {} needs {want}, found {found}",
            kind.map_or("unknown", |k| k.ddf_name())
        )
    };
    Ok(match (kind, item) {
        (Some(T::Integer), Cbor::Integer(i)) => Value::Integer(
            i64::try_from(i128::from(i))
                .map_err(|_| format!("integer {} exceeds 64 bits", i128::from(i)))?,
        ),
        (Some(T::Integer), _) => return Err(mismatch("an integer (major type 0 or 1)")),
        (Some(T::UnsignedInteger), Cbor::Integer(i)) => Value::Unsigned(
            u64::try_from(i128::from(i))
                .map_err(|_| format!("{} is not an unsigned 64-bit integer", i128::from(i)))?,
        ),
        (Some(T::UnsignedInteger), _) => {
            return Err(mismatch("an unsigned integer (major type 0)"))
        }
        (Some(T::Float), Cbor::Float(f)) => Value::Float(f),
        (Some(T::Float), Cbor::Integer(i)) => Value::Float(i128::from(i) as f64),
        (Some(T::Float), _) => return Err(mismatch("a float (major type 7)")),
        (Some(T::Boolean), Cbor::Bool(b)) => Value::Boolean(b),
        (Some(T::Boolean), _) => return Err(mismatch("a boolean (simple value 20 or 21)")),
        (Some(T::String), Cbor::Text(s)) => Value::String(s),
        (Some(T::Corelnk), Cbor::Text(s)) => Value::Corelnk(s),
        (Some(T::String | T::Corelnk), _) => return Err(mismatch("a text string (major type 3)")),
        (Some(T::Opaque), Cbor::Bytes(d)) => Value::Opaque(d),
        (Some(T::Opaque), _) => return Err(mismatch("a byte string (major type 2)")),
        (Some(T::Time), item) => Value::Time(
            time(item).ok_or_else(|| mismatch("a time (tag 1 over an integer, or an integer)"))?,
        ),
        (Some(T::Objlnk), Cbor::Text(s)) => {
            let (o, i) = parse_objlnk(&s)
                .ok_or_else(|| format!("object link {s:?} is not object:instance"))?;
            Value::Objlnk(o, i)
        }
        (Some(T::Objlnk), _) => return Err(mismatch("a text string \"object:instance\"")),
        (Some(T::None) | None, item) => natural(item)?,
    })
}

/// Seconds since the epoch: tag 1 over an integer, or the bare integer.
fn time(item: Cbor) -> Option<i64> {
    match item {
        Cbor::Tag(EPOCH_TIME_TAG, inner) => match *inner {
            Cbor::Integer(i) => i64::try_from(i128::from(i)).ok(),
            _ => None,
        },
        Cbor::Integer(i) => i64::try_from(i128::from(i)).ok(),
        _ => None,
    }
}

fn natural(item: Cbor) -> Result<Value, String> {
    Ok(match item {
        Cbor::Integer(i) => {
            let i = i128::from(i);
            match (i64::try_from(i), u64::try_from(i)) {
                (Ok(s), _) => Value::Integer(s),
                (_, Ok(u)) => Value::Unsigned(u),
                _ => return Err(format!("integer {i} does not fit 64 bits")),
            }
        }
        Cbor::Float(f) => Value::Float(f),
        Cbor::Bool(b) => Value::Boolean(b),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(d) => Value::Opaque(d),
        tagged @ Cbor::Tag(EPOCH_TIME_TAG, _) => {
            Value::Time(time(tagged).ok_or("tag 1 must hold an integer number of seconds")?)
        }
        other => return Err(format!("{} is not a resource value", describe(&other))),
    })
}

fn describe(item: &Cbor) -> String {
    match item {
        Cbor::Integer(_) => "an integer".into(),
        Cbor::Bytes(_) => "a byte string".into(),
        Cbor::Float(_) => "a float".into(),
        Cbor::Text(_) => "a text string".into(),
        Cbor::Bool(_) => "a boolean".into(),
        Cbor::Null => "null".into(),
        Cbor::Tag(t, _) => format!("an item with tag {t}"),
        Cbor::Array(_) => "an array".into(),
        Cbor::Map(_) => "a map".into(),
        _ => "an undefined simple value".into(),
    }
}
