//! `debug: {key, save | at_least | equals}`: what the device holds, read over
//! its debug port (SWD on a real bench, NV storage on the virtual rig),
//! independent of what it says over LwM2M.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::kinds::symbol::{equals_roles, with_role_versions, EqualsCheck};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DebugSpec {
    key: String,
    /// Remember the value under this name.
    save: Option<String>,
    /// The value is a number at least the one saved under this name.
    at_least: Option<String>,
    /// The value equals this text (`{fw_version:ROLE}` allowed).
    equals: Option<String>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "DebugSpec")]
pub struct DebugRead {
    pub key: String,
    #[schemars(skip)] // parsed from its `try_from` type
    pub check: DebugCheck,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DebugCheck {
    Save(String),
    AtLeast(String),
    Equals(String),
}

impl EqualsCheck for DebugCheck {
    fn equals(&self) -> Option<&str> {
        match self {
            DebugCheck::Equals(text) => Some(text),
            DebugCheck::Save(_) | DebugCheck::AtLeast(_) => None,
        }
    }

    fn equals_with(text: String) -> Self {
        DebugCheck::Equals(text)
    }
}

/// A `debug` payload that gives no check, or more than one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("debug: give one of save, at_least, equals")]
pub struct DebugStepError;

impl TryFrom<DebugSpec> for DebugRead {
    type Error = DebugStepError;
    fn try_from(d: DebugSpec) -> Result<Self, DebugStepError> {
        let check = match (d.save, d.at_least, d.equals) {
            (Some(n), None, None) => DebugCheck::Save(n),
            (None, Some(n), None) => DebugCheck::AtLeast(n),
            (None, None, Some(v)) => DebugCheck::Equals(v),
            _ => return Err(DebugStepError),
        };
        Ok(DebugRead { key: d.key, check })
    }
}

impl Step for DebugRead {
    fn describe(&self) -> String {
        format!("debug read {}", self.key)
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Debug]
    }

    fn firmware_roles(&self) -> Vec<String> {
        equals_roles(&self.check)
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let check = with_role_versions(&self.check, rig).await?;
            self.check(&check, ctx, rig)
        })
    }
}

impl DebugRead {
    fn check(
        &self,
        check: &DebugCheck,
        ctx: &mut CaseContext,
        rig: &mut Session,
    ) -> Result<(), StepError> {
        let key = &self.key;
        let value = read_fact(rig, key)?;
        let _ = writeln!(ctx.log, "  -> {key} = {value}");
        match check {
            DebugCheck::Save(name) => {
                ctx.saved.insert(name.clone(), value);
                Ok(())
            }
            DebugCheck::Equals(want) if &value == want => Ok(()),
            DebugCheck::Equals(want) => Err(device(
                format!("{key} = {want}"),
                format!("{key} = {value}"),
            )),
            DebugCheck::AtLeast(name) => {
                let saved = ctx.saved.get(name).cloned().ok_or_else(|| {
                    device(
                        format!("a value saved as {name:?} by an earlier debug step"),
                        "none",
                    )
                })?;
                let (Ok(now), Ok(before)) = (value.parse::<f64>(), saved.parse::<f64>()) else {
                    return Err(device(
                        format!("{key} and {name} to be numbers"),
                        format!("{value} and {saved}"),
                    ));
                };
                if now >= before {
                    Ok(())
                } else {
                    Err(device(
                        format!("{key} at least {before} (saved as {name})"),
                        format!("{now}: lost {}", before - now),
                    ))
                }
            }
        }
    }
}

/// One fact by the key a case names (the virtual rig's names, which a real
/// bench's port maps to symbols): a fact the port cannot give skips the
/// case with the port's reason, never a value that lets a check pass.
fn read_fact(rig: &mut Session, key: &str) -> Result<String, StepError> {
    let name = rig.rig.name.clone();
    let debug = rig
        .debug
        .as_mut()
        .ok_or_else(|| StepError::Skip(format!("rig {name} has no debug port")))?;
    let fact = rig::facts::Fact::from(key);
    match crate::blocking::off_runtime(|| debug.fact(&fact)) {
        Ok(value) => Ok(value.to_string()),
        Err(e @ rig::RigError::FactUnavailable { .. }) => Err(StepError::Skip(e.to_string())),
        Err(e) => Err(bench(format!("debug read {key}: {e}"))),
    }
}

/// Why the debug port gave no facts.
#[derive(Debug, thiserror::Error)]
pub enum DebugReadError {
    #[error("rig {rig} has no debug port")]
    NoDebugPort { rig: String },
    #[error(transparent)]
    Port(#[from] rig::RigError),
}

/// Reads the debug port (SWD on a real bench, NV storage on the virtual rig).
pub fn read_debug(rig: &mut Session) -> Result<BTreeMap<String, String>, DebugReadError> {
    let name = rig.rig.name.clone();
    let debug = rig
        .debug
        .as_mut()
        .ok_or(DebugReadError::NoDebugPort { rig: name })?;
    Ok(crate::blocking::off_runtime(|| debug.read_state())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_takes_exactly_one_check_and_equals_names_roles() {
        let d: DebugRead =
            serde_saphyr::from_str("{ key: fw_version, equals: \"{fw_version:upgrade}\" }")
                .unwrap();
        assert_eq!(d.firmware_roles(), ["upgrade"]);
        assert_eq!(d.needs(), [Need::Debug]);
        let saved: DebugRead =
            serde_saphyr::from_str("{ key: boots, at_least: \"{fw_version:upgrade}\" }").unwrap();
        assert!(saved.firmware_roles().is_empty(), "only equals names roles");
        let two = serde_saphyr::from_str::<DebugRead>("{ key: k, save: a, equals: b }")
            .unwrap_err()
            .to_string();
        assert!(two.contains("give one of save, at_least, equals"), "{two}");
    }
}
