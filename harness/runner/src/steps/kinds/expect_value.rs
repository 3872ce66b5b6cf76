//! `expect: {path, equals | not_equals}`: one Read, one comparison by
//! meaning (see [`crate::steps::value::matches`]).

use std::fmt::{self, Write as _};

use crate::case::fields::CasePath;
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::StepError;
use crate::steps::exchange::{check_condition, read_value};
use crate::steps::{instances, CaseContext, Turn};

/// A value check that states no condition, or more than one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("give exactly one of `equals`, `not_equals`, `changes: true`")]
pub struct ConditionError;

#[derive(Debug, Clone, PartialEq)]
pub enum ValueCondition {
    Equals(ScalarValue),
    NotEquals(ScalarValue),
    Changes,
}

impl ValueCondition {
    /// Exactly one of the three ways a case states a condition.
    pub fn from_fields(
        equals: Option<ScalarValue>,
        not_equals: Option<ScalarValue>,
        changes: bool,
    ) -> Result<ValueCondition, ConditionError> {
        match (equals, not_equals, changes) {
            (Some(v), None, false) => Ok(ValueCondition::Equals(v)),
            (None, Some(v), false) => Ok(ValueCondition::NotEquals(v)),
            (None, None, true) => Ok(ValueCondition::Changes),
            _ => Err(ConditionError),
        }
    }

    /// Firmware roles the expected value names (`{fw_version:upgrade}`).
    pub fn firmware_roles(&self) -> Vec<String> {
        match self {
            ValueCondition::Equals(ScalarValue::Text(t))
            | ValueCondition::NotEquals(ScalarValue::Text(t)) => {
                crate::steps::firmware::roles_in(t)
            }
            _ => Vec::new(),
        }
    }

    /// The condition with `{fw_version:ROLE}` replaced by the version the
    /// rig's firmware role runs as: what the device must report comes from
    /// the rig, not the case.
    pub async fn with_role_versions(&self, rig: &mut Session) -> Result<Self, StepError> {
        let text = match self {
            ValueCondition::Equals(ScalarValue::Text(t))
            | ValueCondition::NotEquals(ScalarValue::Text(t)) => t,
            other => return Ok(other.clone()),
        };
        let version = ScalarValue::Text(crate::steps::firmware::expand_versions(rig, text).await?);
        Ok(match self {
            ValueCondition::Equals(_) => ValueCondition::Equals(version),
            _ => ValueCondition::NotEquals(version),
        })
    }
}

impl fmt::Display for ValueCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueCondition::Equals(v) => write!(f, "equals {v}"),
            ValueCondition::NotEquals(v) => write!(f, "differs from {v}"),
            ValueCondition::Changes => f.write_str("changes"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExpectValue {
    pub path: CasePath,
    pub condition: ValueCondition,
}

impl ExpectValue {
    pub fn describe(&self) -> String {
        format!("expect {} {}", self.path, self.condition)
    }

    pub async fn run(
        &self,
        turn: Turn,
        ctx: &mut CaseContext,
        rig: &mut Session,
    ) -> Result<(), StepError> {
        let path = instances::resolve(rig, self.path)?;
        let condition = self.condition.with_role_versions(rig).await?;
        let v = read_value(rig, path, turn.within).await?;
        let _ = writeln!(ctx.log, "  -> {v}");
        check_condition(path, &v, &condition, None)
    }
}
