//! The version of an object a device implements, which decides the state
//! diagram its transitions are checked against: object 5 v1.0 and v1.1 allow
//! different steps (see [`check_transition_for`](super::check_transition_for)).
//!
//! A client declares it in its registration's object list with the `ver`
//! attribute of the object's link, `</5>;ver=1.1`; an object listed without
//! `ver` is version 1.0 (LwM2M 1.1 Core §6.2.1, Register: "Objects and Object
//! Instances" and the `ver` attribute; `crate::client::registration` writes
//! it the same way).

use std::fmt;
use std::str::FromStr;

use super::FirmwareError;
use crate::format::{ObjectLink, ObjectLinks};

/// An object version, `major.minor` (OMA registry `<ObjectVersion>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectVersion {
    pub major: u16,
    pub minor: u16,
}

impl ObjectVersion {
    /// 1.0: what an object listed without `ver` is.
    pub const V1_0: ObjectVersion = ObjectVersion { major: 1, minor: 0 };
    /// 1.1: object 5 with Cancel (10), deferred updates (11) and the
    /// Updating → Idle failure (OMA-SUP-XML_5-V1_1).
    pub const V1_1: ObjectVersion = ObjectVersion { major: 1, minor: 1 };

    pub const fn new(major: u16, minor: u16) -> Self {
        ObjectVersion { major, minor }
    }

    /// Parses `"1.1"` (the value of `ver`, or a DDF's `<ObjectVersion>`).
    pub fn parse(text: &str) -> Result<Self, FirmwareError> {
        let bad = || FirmwareError::BadVersion {
            text: text.to_string(),
        };
        let (major, minor) = text.trim().split_once('.').ok_or_else(bad)?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u16>().ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(ObjectVersion::new(number(major)?, number(minor)?))
    }

    /// The version `object` is declared with in a Register or Update object
    /// list: the `ver` of its `</N>` link (or of an `</N/i>` link, which some
    /// clients annotate instead), 1.0 when no link of the object has one.
    /// A `ver` that is not `major.minor` is an error.
    pub fn declared(objects: &ObjectLinks, object: u16) -> Result<Self, FirmwareError> {
        let of_object = |l: &ObjectLink<'_>| {
            l.path()
                .is_some_and(|p| p.object_id() == Some(object) && p.depth() <= 2)
        };
        let mut links: Vec<ObjectLink<'_>> = objects.iter().filter(of_object).collect();
        // The object's own link first, then its instances'.
        links.sort_by_key(|l| l.path().map(|p| p.depth()));
        match links.iter().find_map(|l| l.attribute("ver")) {
            Some(v) => ObjectVersion::parse(v),
            None => Ok(ObjectVersion::V1_0),
        }
    }
}

impl Default for ObjectVersion {
    /// 1.0, the version of an object listed without `ver`.
    fn default() -> Self {
        ObjectVersion::V1_0
    }
}

impl FromStr for ObjectVersion {
    type Err = FirmwareError;
    fn from_str(s: &str) -> Result<Self, FirmwareError> {
        ObjectVersion::parse(s)
    }
}

impl fmt::Display for ObjectVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ver` is `major.minor` (LwM2M 1.1 Core §6.2.1; the registry writes
    /// `<ObjectVersion>1.1</ObjectVersion>`); versions order numerically.
    #[test]
    fn versions_parse_as_major_dot_minor_and_order_numerically() {
        let ok = [
            ("1.0", (1, 0)),
            ("1.1", (1, 1)),
            (" 1.2 ", (1, 2)),
            ("1.10", (1, 10)),
        ];
        for (text, (major, minor)) in ok {
            assert_eq!(
                ObjectVersion::parse(text),
                Ok(ObjectVersion::new(major, minor)),
                "{text:?}"
            );
        }
        for bad in ["", "1", "1.", ".1", "1.x", "-1.0", "1.0.2", "1.+1"] {
            assert!(ObjectVersion::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectVersion::new(1, 10) > ObjectVersion::V1_1);
        assert!(ObjectVersion::V1_1 > ObjectVersion::V1_0);
        assert_eq!(ObjectVersion::new(1, 10).to_string(), "1.10");
    }
}
