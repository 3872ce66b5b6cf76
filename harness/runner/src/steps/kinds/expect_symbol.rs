//! `expect_symbol: { symbol, type?, equals | at_least }`: checks a variable
//! of the firmware's ELF, read over SWD like `read_symbol`, against a value
//! the case gives or one an earlier step saved (a boot counter that must
//! have grown, an energy register that must not have lost what was saved).

use std::collections::HashMap;
use std::fmt::Write as _;

use rig::facts::{FactType, FactValue};
use serde::Deserialize;

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{device, StepError};
use crate::steps::kinds::symbol::{equals_roles, read, typed, with_role_versions, EqualsCheck};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExpectSpec {
    symbol: String,
    #[serde(default, rename = "type")]
    ty: Option<FactType>,
    #[serde(default)]
    equals: Option<String>,
    #[serde(default)]
    at_least: Option<String>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ExpectSpec")]
pub struct ExpectSymbol {
    pub symbol: String,
    pub ty: Option<FactType>,
    #[schemars(skip)] // parsed from its `try_from` type
    pub check: SymbolCheck,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SymbolCheck {
    /// The value's text (numbers in decimal, bytes in hex) is this
    /// (`{fw_version:ROLE}` allowed).
    Equals(String),
    /// A number at least this one, or at least the value saved under this name.
    AtLeast(String),
}

impl EqualsCheck for SymbolCheck {
    fn equals(&self) -> Option<&str> {
        match self {
            SymbolCheck::Equals(text) => Some(text),
            SymbolCheck::AtLeast(_) => None,
        }
    }

    fn equals_with(text: String) -> Self {
        SymbolCheck::Equals(text)
    }
}

/// An `expect_symbol` payload that gives no check, or two.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expect_symbol: give one of equals, at_least")]
pub struct ExpectSymbolError;

impl TryFrom<ExpectSpec> for ExpectSymbol {
    type Error = ExpectSymbolError;
    fn try_from(e: ExpectSpec) -> Result<Self, ExpectSymbolError> {
        let check = match (e.equals, e.at_least) {
            (Some(v), None) => SymbolCheck::Equals(v),
            (None, Some(v)) => SymbolCheck::AtLeast(v),
            _ => return Err(ExpectSymbolError),
        };
        Ok(ExpectSymbol {
            symbol: e.symbol,
            ty: e.ty,
            check,
        })
    }
}

impl Step for ExpectSymbol {
    fn describe(&self) -> String {
        let s = typed(&self.symbol, self.ty);
        match &self.check {
            SymbolCheck::Equals(v) => format!("expect symbol {s} = {v}"),
            SymbolCheck::AtLeast(v) => format!("expect symbol {s} at least {v}"),
        }
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Swd]
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
            let value = read(rig, &self.symbol, self.ty).await?;
            let _ = writeln!(ctx.log, "  -> {} = {value}", self.symbol);
            judge(&self.symbol, &value, &check, &ctx.saved)
        })
    }
}

/// The verdict on a value read: a value that differs is the device's
/// failure; an `at_least` whose bound is neither a number nor a saved
/// name is a mistake of the case, also reported against the step.
fn judge(
    symbol: &str,
    value: &FactValue,
    check: &SymbolCheck,
    saved: &HashMap<String, String>,
) -> Result<(), StepError> {
    match check {
        SymbolCheck::Equals(want) if value.to_string() == *want => Ok(()),
        SymbolCheck::Equals(want) => Err(device(
            format!("{symbol} = {want}"),
            format!("{symbol} = {value}"),
        )),
        SymbolCheck::AtLeast(bound) => {
            let (floor, from) = match bound.parse::<f64>() {
                Ok(n) => (n, String::new()),
                Err(_) => {
                    let text = saved.get(bound).ok_or_else(|| {
                        device(
                            format!("a number, or a value saved as {bound:?} by an earlier step"),
                            "none",
                        )
                    })?;
                    let n = text.parse::<f64>().map_err(|_| {
                        device(
                            format!("the value saved as {bound} to be a number"),
                            text.clone(),
                        )
                    })?;
                    (n, format!(" (saved as {bound})"))
                }
            };
            let now = match value {
                FactValue::Unsigned(n) => *n as f64,
                FactValue::Signed(n) => *n as f64,
                other => {
                    return Err(device(
                        format!("{symbol} to be a number"),
                        other.to_string(),
                    ))
                }
            };
            if now >= floor {
                Ok(())
            } else {
                Err(device(
                    format!("{symbol} at least {floor}{from}"),
                    format!("{now}: {} less", floor - now),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_symbol_takes_exactly_one_check() {
        let e: ExpectSymbol = serde_saphyr::from_str(
            "{ symbol: FW_VERSION, type: string, equals: \"{fw_version:upgrade}\" }",
        )
        .unwrap();
        assert_eq!(e.firmware_roles(), ["upgrade"]);
        assert_eq!(e.needs(), [Need::Swd]);
        let both = serde_saphyr::from_str::<ExpectSymbol>("{ symbol: X, equals: 1, at_least: 2 }")
            .unwrap_err()
            .to_string();
        assert!(both.contains("one of equals, at_least"), "{both}");
        assert!(serde_saphyr::from_str::<ExpectSymbol>("{ symbol: X }").is_err());
        let bound: ExpectSymbol =
            serde_saphyr::from_str("{ symbol: X, at_least: \"{fw_version:upgrade}\" }").unwrap();
        assert!(bound.firmware_roles().is_empty(), "only equals names roles");
    }

    #[test]
    fn at_least_compares_with_a_number_or_a_saved_value() {
        let mut saved = HashMap::new();
        saved.insert("before".to_owned(), "7".to_owned());
        let v = FactValue::Unsigned(8);
        assert!(judge("N", &v, &SymbolCheck::AtLeast("before".into()), &saved).is_ok());
        assert!(judge("N", &v, &SymbolCheck::AtLeast("8".into()), &saved).is_ok());
        let e = judge("N", &v, &SymbolCheck::AtLeast("9".into()), &saved)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "expected N at least 9; saw 8: 1 less");
        let e = judge("N", &v, &SymbolCheck::AtLeast("missing".into()), &saved)
            .unwrap_err()
            .to_string();
        assert!(e.contains("saved as \"missing\""), "{e}");
        let e = judge(
            "N",
            &FactValue::Text("x".into()),
            &SymbolCheck::AtLeast("1".into()),
            &saved,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("N to be a number"), "{e}");
    }

    #[test]
    fn equals_compares_the_value_as_text() {
        let saved = HashMap::new();
        let v = FactValue::Text("1.4.2".into());
        assert!(judge("FW", &v, &SymbolCheck::Equals("1.4.2".into()), &saved).is_ok());
        let e = judge("FW", &v, &SymbolCheck::Equals("2.0".into()), &saved)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "expected FW = 2.0; saw FW = 1.4.2");
        let bytes = FactValue::Bytes(vec![0xde, 0xad]);
        assert!(judge("B", &bytes, &SymbolCheck::Equals("dead".into()), &saved).is_ok());
    }
}
