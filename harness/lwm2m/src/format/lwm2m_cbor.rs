//! lwm2m_cbor content format.

use crate::format::{FormatError, Record};
use crate::model::Registry;
use crate::path::Path;

pub(crate) fn encode(_base: &Path, _records: &[Record]) -> Result<Vec<u8>, FormatError> {
    todo!()
}

pub(crate) fn decode(_base: &Path, _payload: &[u8], _registry: &Registry) -> Result<Vec<Record>, FormatError> {
    todo!()
}
