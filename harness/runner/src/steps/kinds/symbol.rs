//! `read_symbol: { symbol, type?, save }`: a variable of the firmware's ELF read from
//! the MCU's memory over SWD (a boot counter, an energy register, the
//! version string), independent of what the device says over LwM2M.
//! `type` is as in the rig file (`u32`, `string(16)`...); without it the
//! symbol's size decides.

use std::fmt::Write as _;

use rig::facts::{FactType, FactValue};
use serde::Deserialize;

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::StepError;
use crate::steps::kinds::target::on_target;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadSymbol {
    pub symbol: String,
    #[serde(default, rename = "type")]
    pub ty: Option<FactType>,
    /// Remember the value under this name (for `at_least` and `debug`).
    pub save: String,
}

/// Reads `symbol` as `ty` on the blocking pool.
pub(super) async fn read(
    rig: &mut Session,
    symbol: &str,
    ty: Option<FactType>,
) -> Result<FactValue, StepError> {
    let symbol = symbol.to_owned();
    let what = format!("read symbol {symbol}");
    on_target(rig, &what, move |control| {
        control.read_symbol(&symbol, ty.map(|t| t.to_string()).as_deref())
    })
    .await
}

/// A check on a value read over the debug port (a `debug` fact, an
/// `expect_symbol` variable) whose `equals` form may name a firmware role's
/// version (`{fw_version:ROLE}`): which version a bench runs as comes from
/// the rig when the step runs, not from the case.
pub(super) trait EqualsCheck: Clone {
    /// The text an `equals` check compares with, as the case wrote it.
    fn equals(&self) -> Option<&str>;
    /// The `equals` check with this text.
    fn equals_with(text: String) -> Self;
}

/// The firmware roles an `equals` check names, so that the rig check finds
/// an unmapped role before the first case runs.
pub(super) fn equals_roles(check: &impl EqualsCheck) -> Vec<String> {
    check
        .equals()
        .map(crate::steps::firmware::roles_in)
        .unwrap_or_default()
}

/// The check with the rig's versions in place of `{fw_version:ROLE}`.
pub(super) async fn with_role_versions<C: EqualsCheck + Sync>(
    check: &C,
    rig: &mut Session,
) -> Result<C, StepError> {
    match check.equals() {
        Some(text) => Ok(C::equals_with(
            crate::steps::firmware::expand_versions(rig, text).await?,
        )),
        None => Ok(check.clone()),
    }
}

pub(super) fn typed(symbol: &str, ty: Option<FactType>) -> String {
    match ty {
        Some(t) => format!("{symbol} ({t})"),
        None => symbol.to_owned(),
    }
}

impl Step for ReadSymbol {
    fn describe(&self) -> String {
        format!(
            "read symbol {} as {}",
            typed(&self.symbol, self.ty),
            self.save
        )
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Swd]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let value = read(rig, &self.symbol, self.ty).await?;
            let _ = writeln!(ctx.log, "  -> {} = {value}", self.symbol);
            ctx.saved.insert(self.save.clone(), value.to_string());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_symbol_parses_its_type_and_needs_swd() {
        let r: ReadSymbol =
            serde_saphyr::from_str("{ symbol: BOOT_COUNT, type: u32, save: boots }").unwrap();
        assert_eq!(r.ty, Some(FactType::U32));
        assert_eq!(r.describe(), "read symbol BOOT_COUNT (u32) as boots");
        assert_eq!(r.needs(), [Need::Swd]);
        let e = serde_saphyr::from_str::<ReadSymbol>("{ symbol: X, type: u128, save: x }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown type `u128`"), "{e}");
        assert!(serde_saphyr::from_str::<ReadSymbol>("{ symbol: X }").is_err());
    }
}
