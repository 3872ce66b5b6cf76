//! Opaque (content format 42, LwM2M 1.1 Core §7.4.2): the raw bytes of one
//! Opaque resource, e.g. a firmware Package written to /5/0/0.

use crate::format::text::{check_single_target, single_value};
use crate::format::{ContentFormat, FormatError, Record};
use crate::model::{Registry, ResourceType};
use crate::path::Path;
use crate::value::Value;

const FORMAT: ContentFormat = ContentFormat::Opaque;

pub(crate) fn encode(base: &Path, records: &[Record]) -> Result<Vec<u8>, FormatError> {
    match single_value(FORMAT, base, records)? {
        Value::Opaque(bytes) => Ok(bytes.clone()),
        other => Err(FormatError::new(
            FORMAT,
            0,
            format!(
                "opaque carries only Opaque values, {base} holds {}",
                other.type_name()
            ),
        )),
    }
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<Record>, FormatError> {
    check_single_target(FORMAT, base)?;
    if let Some(def) = registry.resource(base) {
        if !matches!(def.kind, ResourceType::Opaque | ResourceType::None) {
            return Err(FormatError::new(
                FORMAT,
                0,
                format!(
                    "{base} ({}) is of type {}, not Opaque",
                    def.name,
                    def.kind.ddf_name()
                ),
            ));
        }
    }
    Ok(vec![Record::new(*base, Value::Opaque(payload.to_vec()))])
}
