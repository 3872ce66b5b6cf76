//! The typed fields step payloads are made of: a case path (`/5/*/3`), a
//! response code (`"2.04"`), a content format name. Each checks itself where
//! serde reads it, so a mistake is reported at its own line and column.

use std::fmt;

use lwm2m::{ContentFormat, Path, PathError};
use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// A typed field of a step payload that does not read as its type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CaseFieldError {
    /// A path with `*` for its instance whose other segments are wrong.
    #[error("{text}: {error}")]
    AnyInstancePath { text: String, error: PathError },
    #[error("{0}: not a path")]
    NotAPath(String),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("response code {0:?}: expected class.detail like 2.04 or 4.05")]
    Code(String),
}

/// The instance id a case path holds where it was written `*` (`/5/*/3`):
/// "the instance the device registered", found in its registration when the
/// step runs ([`crate::steps::instances::resolve`]). 65535 is reserved by the
/// TS (LwM2M 1.1 Core §7.2.1), so no device instance is ever mistaken for it.
pub const ANY_INSTANCE: u16 = u16::MAX;

/// A case path: `/obj[/inst[/res[/ri]]]`, where the instance may be `*`.
pub fn path(text: &str) -> Result<Path, CaseFieldError> {
    let segments: Vec<&str> = text.trim_start_matches('/').split('/').collect();
    if segments.len() >= 2 && segments[1] == "*" {
        let mut concrete = segments.clone();
        concrete[1] = "0";
        let p: Path = format!("/{}", concrete.join("/"))
            .parse()
            .map_err(|error| CaseFieldError::AnyInstancePath {
                text: text.to_owned(),
                error,
            })?;
        let mut ids = p.ids().to_vec();
        ids[1] = ANY_INSTANCE;
        return Path::from_ids(&ids).ok_or_else(|| CaseFieldError::NotAPath(text.to_owned()));
    }
    Ok(text.parse()?)
}

/// A case path as written: `*` for [`ANY_INSTANCE`].
pub fn shown(path: &Path) -> String {
    if path.instance_id() == Some(ANY_INSTANCE) {
        let mut segments = path.segments();
        segments[1] = "*".into();
        format!("/{}", segments.join("/"))
    } else {
        path.to_string()
    }
}

/// A path as a case writes it, checked when the case loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CasePath(pub Path);

impl CasePath {
    pub fn has_any_instance(&self) -> bool {
        self.0.instance_id() == Some(ANY_INSTANCE)
    }
}

impl fmt::Display for CasePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown(&self.0))
    }
}

impl<'de> Deserialize<'de> for CasePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        path(&text).map(CasePath).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<String> for CasePath {
    type Error = CaseFieldError;
    fn try_from(text: String) -> Result<Self, CaseFieldError> {
        path(&text).map(CasePath)
    }
}

/// The RFC 7959 SZX of a block `size` in bytes (16, 32, ..., 1024:
/// `2^(SZX+4)`, §2.2), or `None` for any other size.
pub fn szx_of(size: u32) -> Option<u8> {
    (0..=6u8).find(|szx| 16u32 << szx == size)
}

/// A CoAP response code as a case writes it, `"2.04"` (RFC 7252 §3: class
/// and detail), held as `class * 100 + detail` like the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub u16);

impl Code {
    pub const CHANGED: Code = Code(204);
    pub const CONTENT: Code = Code(205);
    pub const NOT_FOUND: Code = Code(404);
}

impl std::str::FromStr for Code {
    type Err = CaseFieldError;
    fn from_str(t: &str) -> Result<Self, CaseFieldError> {
        t.split_once('.')
            .and_then(|(c, d)| Some((c.parse::<u16>().ok()?, d.parse::<u16>().ok()?)))
            .filter(|(c, d)| (2..=5).contains(c) && *d < 32)
            .map(|(class, detail)| Code(class * 100 + detail))
            .ok_or_else(|| CaseFieldError::Code(t.to_owned()))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&server::code_text(self.0))
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A content format by its name in the case (`tlv`, `senml-json`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format(pub ContentFormat);

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ContentFormat::from_name(&name).map(Format).ok_or_else(|| {
            let names: Vec<_> = ContentFormat::ALL.iter().map(|f| f.name()).collect();
            serde::de::Error::custom(format!(
                "unknown format {name:?}: expected one of {}",
                names.join(", ")
            ))
        })
    }
}

/// The format a step asks for, if it names one.
pub fn content_format(f: Option<Format>) -> Option<ContentFormat> {
    f.map(|f| f.0)
}

/// A duration written `30s`, `5m`, `1h30m`, `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Span(#[serde(deserialize_with = "rig::duration::deserialize")] pub std::time::Duration);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_class_and_detail() {
        assert_eq!("2.04".parse::<Code>(), Ok(Code(204)));
        assert_eq!("4.05".parse::<Code>(), Ok(Code(405)));
        assert!("4.5x".parse::<Code>().is_err());
        assert!("6.00".parse::<Code>().is_err());
        assert!("2.32".parse::<Code>().is_err());
        assert_eq!(Code(404).to_string(), server::code_text(404));
    }

    #[test]
    fn a_star_instance_is_kept_and_shown_as_written() {
        let p = path("/5/*/3").unwrap();
        assert_eq!(p.instance_id(), Some(ANY_INSTANCE));
        assert_eq!(shown(&p), "/5/*/3");
        assert_eq!(CasePath(p).to_string(), "/5/*/3");
        assert!(path("/*/0").is_err());
        assert_eq!(
            path("/5/*/x").unwrap_err().to_string(),
            "/5/*/x: path \"/5/0/x\": segment \"x\" is not an id in 0..=65534"
        );
        assert_eq!(
            "4.5x".parse::<Code>().unwrap_err().to_string(),
            "response code \"4.5x\": expected class.detail like 2.04 or 4.05"
        );
        assert_eq!(shown(&path("/3/0/1").unwrap()), "/3/0/1");
    }
}
