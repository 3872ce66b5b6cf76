//! `expect`: one key in the case file for three checks — a value, the
//! registration, a replaced credential refused — each in its own module.

use serde::Deserialize;
use thiserror::Error;

use crate::case::fields::CasePath;
use crate::case::model::ScalarValue;
use crate::case::Need;
use crate::session::Session;
use crate::steps::kinds::expect_registration::ExpectRegistration;
use crate::steps::kinds::expect_value::{ConditionError, ExpectValue, ValueCondition};
use crate::steps::kinds::old_credential::OldCredentialRefused;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    path: Option<CasePath>,
    equals: Option<ScalarValue>,
    not_equals: Option<ScalarValue>,
    /// Checks on the endpoint's current registration.
    registration: Option<ExpectRegistration>,
    /// `refused`: a DTLS handshake with the server credential that a rotation
    /// replaced must fail (no lingering password).
    old_credential: Option<OldCredentialRefused>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ExpectSpec")]
pub enum Expect {
    #[schemars(skip)] // parsed from its `try_from` type
    Value(ExpectValue),
    Registration(ExpectRegistration),
    OldCredentialRefused(OldCredentialRefused),
}

/// An `expect` payload that says no check, or a value check without one condition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpectError {
    #[error("expect: give `path` with `equals`/`not_equals`, or `registration`")]
    NoCheck,
    #[error(transparent)]
    Condition(#[from] ConditionError),
}

impl TryFrom<ExpectSpec> for Expect {
    type Error = ExpectError;
    fn try_from(e: ExpectSpec) -> Result<Self, ExpectError> {
        if let Some(o) = e.old_credential {
            return Ok(Expect::OldCredentialRefused(o));
        }
        if let Some(r) = e.registration {
            return Ok(Expect::Registration(r));
        }
        let path = e.path.ok_or(ExpectError::NoCheck)?;
        let condition = ValueCondition::from_fields(e.equals, e.not_equals, false)?;
        Ok(Expect::Value(ExpectValue { path, condition }))
    }
}

impl Step for Expect {
    fn describe(&self) -> String {
        match self {
            Expect::Value(v) => v.describe(),
            Expect::Registration(r) => r.describe(),
            Expect::OldCredentialRefused(o) => o.describe(),
        }
    }

    fn needs(&self) -> Vec<Need> {
        match self {
            Expect::OldCredentialRefused(_) => vec![Need::Credentials],
            _ => Vec::new(),
        }
    }

    fn firmware_roles(&self) -> Vec<String> {
        match self {
            Expect::Value(v) => v.condition.firmware_roles(),
            _ => Vec::new(),
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            match self {
                Expect::Value(v) => v.run(turn, ctx, rig).await,
                Expect::Registration(r) => r.run(ctx, rig),
                Expect::OldCredentialRefused(o) => o.run(ctx, rig).await,
            }
        })
    }
}
