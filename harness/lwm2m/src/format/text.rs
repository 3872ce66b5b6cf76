//! Plain text (content format 0, LwM2M 1.1 Core §7.4.1): one resource or
//! resource-instance value, typed by the object model. Integers, floats and
//! times in decimal, booleans as `0`/`1`, object links as `object:instance`,
//! opaque values in base64.

use crate::format::{base64, ContentFormat, FormatError, Record};
use crate::model::{Registry, ResourceType};
use crate::path::Path;
use crate::value::Value;

const FORMAT: ContentFormat = ContentFormat::Text;

pub(crate) fn encode(base: &Path, records: &[Record]) -> Result<Vec<u8>, FormatError> {
    let value = single_value(FORMAT, base, records)?;
    let text = match value {
        Value::Opaque(bytes) => base64::encode_std(bytes),
        other => other.to_text(),
    };
    Ok(text.into_bytes())
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<Record>, FormatError> {
    check_single_target(FORMAT, base)?;
    let kind = registry
        .resource(base)
        .map_or(ResourceType::String, |r| r.kind);
    if kind == ResourceType::Opaque {
        let bytes = base64::decode(payload)
            .map_err(|at| FormatError::new(FORMAT, at, "expected base64 for an Opaque resource"))?;
        return Ok(vec![Record::new(*base, Value::Opaque(bytes))]);
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| FormatError::new(FORMAT, e.valid_up_to(), "payload is not UTF-8"))?;
    let value =
        Value::parse_text(kind, text).map_err(|reason| FormatError::new(FORMAT, 0, reason))?;
    Ok(vec![Record::new(*base, value)])
}

/// Plain text and opaque name one resource (instance): the request path must be
/// at depth 3 or 4 (LwM2M 1.1 Core §7.4.1, §7.4.2).
pub(crate) fn check_single_target(format: ContentFormat, base: &Path) -> Result<(), FormatError> {
    if base.depth() < 3 {
        return Err(FormatError::new(
            format,
            0,
            format!(
                "{} carries a single resource value; {base} is not a resource or resource instance",
                format.name()
            ),
        ));
    }
    Ok(())
}

/// The one value a single-value format encodes: exactly one record, at `base`.
pub(crate) fn single_value<'r>(
    format: ContentFormat,
    base: &Path,
    records: &'r [Record],
) -> Result<&'r Value, FormatError> {
    check_single_target(format, base)?;
    match records {
        [r] if r.path == *base => Ok(&r.value),
        [r] => Err(FormatError::new(
            format,
            0,
            format!("record {} is not the request path {base}", r.path),
        )),
        _ => Err(FormatError::new(
            format,
            0,
            format!(
                "{} carries exactly one value, got {} records",
                format.name(),
                records.len()
            ),
        )),
    }
}
