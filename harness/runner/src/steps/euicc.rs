//! `{euicc:PROFILE.FIELD}` placeholders: a case names "the second profile's
//! ICCID" or "the first profile's operator", and the rig's `euicc:` part
//! supplies the value. An eUICC case thereby carries no operator's ICCIDs,
//! names or APNs, and runs unchanged on any device whose rig describes its
//! profiles; a rig that does not know a value skips the case saying which.
//!
//! PROFILE is `first`, `second` or `profile-<n>` (n from 1, eUICC order, the
//! order of the rig's list); FIELD is `iccid`, `operator` or `apn`.

use rig::model::{EuiccProfile, EuiccSpec};

const MARKER: &str = "{euicc:";

/// The placeholders `text` holds, as written between `{euicc:` and `}`.
pub fn refs_in(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(MARKER) {
        let after = &rest[start + MARKER.len()..];
        let Some(end) = after.find('}') else { break };
        refs.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    refs
}

/// Why a placeholder cannot be filled from this rig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EuiccError {
    /// The placeholder is not `PROFILE.FIELD`: the case is wrong.
    Malformed(String),
    /// The rig does not know the value: the case does not apply to it.
    Unknown(String),
}

impl std::fmt::Display for EuiccError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EuiccError::Malformed(m) | EuiccError::Unknown(m) => f.write_str(m),
        }
    }
}

/// A value the rig does not know: the case does not apply (a skip); a
/// misspelt placeholder: the case cannot be run as written (an error).
impl From<EuiccError> for crate::session::RoleError {
    fn from(e: EuiccError) -> Self {
        match e {
            EuiccError::Unknown(m) => crate::session::RoleError::NotMapped(m),
            EuiccError::Malformed(m) => crate::session::RoleError::Store(m),
        }
    }
}

/// The value of placeholder `reference` (`second.iccid`) on rig `rig_name`.
pub fn value(
    rig_name: &str,
    spec: Option<&EuiccSpec>,
    reference: &str,
) -> Result<String, EuiccError> {
    let malformed = |why: &str| {
        EuiccError::Malformed(format!(
            "{{euicc:{reference}}}: {why} (expected PROFILE.FIELD: PROFILE first, second or profile-<n>, FIELD iccid, operator or apn)"
        ))
    };
    let (profile, field) = reference
        .split_once('.')
        .ok_or_else(|| malformed("no `.`"))?;
    let index = match profile {
        "first" => 0,
        "second" => 1,
        other => match other.strip_prefix("profile-").map(str::parse::<usize>) {
            Some(Ok(n)) if n >= 1 => n - 1,
            _ => return Err(malformed("unknown profile")),
        },
    };
    let pick: fn(&EuiccProfile) -> Option<&String> = match field {
        "iccid" => |p| p.iccid.as_ref(),
        "operator" => |p| p.operator.as_ref(),
        "apn" => |p| p.apn.as_ref(),
        _ => return Err(malformed("unknown field")),
    };
    let spec = spec.ok_or_else(|| {
        EuiccError::Unknown(format!(
            "rig {rig_name} does not describe the device's eUICC (no `euicc:` part), for {{euicc:{reference}}}"
        ))
    })?;
    let p = spec.profiles.get(index).ok_or_else(|| {
        EuiccError::Unknown(format!(
            "rig {rig_name}'s eUICC lists {} profile(s), so not profile {} for {{euicc:{reference}}}",
            spec.profiles.len(),
            index + 1
        ))
    })?;
    pick(p).cloned().ok_or_else(|| {
        EuiccError::Unknown(format!(
            "rig {rig_name} does not give the {field} of its eUICC's profile {}, for {{euicc:{reference}}}",
            index + 1
        ))
    })
}

/// `text` with every `{euicc:...}` placeholder replaced by the rig's value.
pub fn expand(rig_name: &str, spec: Option<&EuiccSpec>, text: &str) -> Result<String, EuiccError> {
    let mut out = text.to_string();
    for reference in refs_in(text) {
        let v = value(rig_name, spec, &reference)?;
        out = out.replacen(&format!("{MARKER}{reference}}}"), &v, 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EuiccSpec {
        EuiccSpec {
            profiles: vec![
                EuiccProfile {
                    iccid: None,
                    operator: Some("home-op".into()),
                    apn: Some("home.apn".into()),
                },
                EuiccProfile {
                    iccid: Some("8900000000000000001".into()),
                    operator: Some("roam-op".into()),
                    apn: None,
                },
            ],
        }
    }

    #[test]
    fn placeholders_take_the_rigs_profile_values() {
        let s = spec();
        assert_eq!(
            expand(
                "r",
                Some(&s),
                "{euicc:second.iccid} on {euicc:first.operator}"
            ),
            Ok("8900000000000000001 on home-op".into())
        );
        assert_eq!(value("r", Some(&s), "profile-1.apn"), Ok("home.apn".into()));
        assert_eq!(
            expand("r", Some(&s), "no placeholder"),
            Ok("no placeholder".into())
        );
    }

    #[test]
    fn a_value_the_rig_does_not_know_names_what_is_missing() {
        let s = spec();
        let Err(EuiccError::Unknown(m)) = value("bench-7", Some(&s), "second.apn") else {
            panic!("an unknown APN must be Unknown");
        };
        assert!(
            m.contains("bench-7") && m.contains("apn") && m.contains("profile 2"),
            "{m}"
        );
        let Err(EuiccError::Unknown(m)) = value("bench-7", Some(&s), "profile-3.iccid") else {
            panic!("a third profile must be Unknown");
        };
        assert!(m.contains("2 profile(s)"), "{m}");
        let Err(EuiccError::Unknown(m)) = value("bench-7", None, "first.iccid") else {
            panic!("no euicc part must be Unknown");
        };
        assert!(m.contains("no `euicc:` part"), "{m}");
    }

    #[test]
    fn a_misspelt_placeholder_is_malformed_not_unknown() {
        for bad in ["second", "third.iccid", "second.imsi", "profile-0.apn"] {
            assert!(
                matches!(
                    value("r", Some(&spec()), bad),
                    Err(EuiccError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn refs_are_found_in_any_text() {
        assert_eq!(
            refs_in(r#"Text("x {euicc:second.iccid} {euicc:first.apn}")"#),
            vec!["second.iccid".to_string(), "first.apn".to_string()]
        );
        assert!(refs_in("{euicc:unclosed").is_empty());
    }
}
