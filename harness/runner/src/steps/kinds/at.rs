//! `at`: one command to the modem, as a literal line or by its name in the
//! modem's dialect file (portable across modems), and the answer it must give.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer};

use crate::case::model::StringOr;
use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

/// `at: {send | command, vars, expect, contains}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AtFull {
    /// A literal command line.
    send: Option<String>,
    /// A command named in the modem's dialect file (portable across modems).
    command: Option<String>,
    /// Values for the named command's `{placeholders}` (besides uri, endpoint, lifetime).
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// Final result expected: `OK` (default), `ERROR`, or `CME n`.
    #[serde(default)]
    expect: AtFinal,
    /// Text that must appear in the information lines.
    contains: Option<String>,
}

/// `at: AT+CGMI` (expects OK) or the long form.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "StringOr<AtFull>")]
pub struct AtStep {
    #[schemars(skip)] // parsed from its `try_from` type
    pub line: AtLine,
    pub expect: AtFinal,
    pub contains: Option<String>,
}

#[derive(Debug, Clone)]
pub enum AtLine {
    Literal(String),
    /// A command from the modem's dialect file, with values for its placeholders.
    Named(String, BTreeMap<String, String>),
}

/// The final result code of a command (3GPP TS 27.007 §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtFinal {
    #[default]
    Ok,
    Error,
    Cme(u16),
}

/// An `at` payload that says neither, or both, of what to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtStepError {
    #[error("at expect {0:?}: expected OK, ERROR or `CME <n>`")]
    UnknownFinal(String),
    #[error("at: give either `send` (a command line) or `command` (a dialect command name)")]
    SendOrCommand,
}

impl std::str::FromStr for AtFinal {
    type Err = AtStepError;
    fn from_str(text: &str) -> Result<Self, AtStepError> {
        match text.trim() {
            "OK" => Ok(AtFinal::Ok),
            "ERROR" => Ok(AtFinal::Error),
            other => other
                .strip_prefix("CME")
                .and_then(|n| n.trim().parse().ok())
                .map(AtFinal::Cme)
                .ok_or_else(|| AtStepError::UnknownFinal(other.to_owned())),
        }
    }
}

impl<'de> Deserialize<'de> for AtFinal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl TryFrom<StringOr<AtFull>> for AtStep {
    type Error = AtStepError;
    fn try_from(at: StringOr<AtFull>) -> Result<Self, AtStepError> {
        let full = match at {
            StringOr::Short(l) => {
                return Ok(AtStep {
                    line: AtLine::Literal(l),
                    expect: AtFinal::Ok,
                    contains: None,
                })
            }
            StringOr::Long(f) => f,
        };
        let line = match (full.send, full.command) {
            (Some(l), None) => AtLine::Literal(l),
            (None, Some(c)) => AtLine::Named(c, full.vars),
            _ => return Err(AtStepError::SendOrCommand),
        };
        Ok(AtStep {
            line,
            expect: full.expect,
            contains: full.contains,
        })
    }
}

impl Step for AtStep {
    fn describe(&self) -> String {
        match &self.line {
            AtLine::Literal(l) => format!("at {l}"),
            AtLine::Named(n, _) => format!("at <{n}>"),
        }
    }

    /// A named command needs a dialect that maps it: a modem without it
    /// skips the case before its first step, never gets a made-up line.
    fn needs(&self) -> Vec<Need> {
        match &self.line {
            AtLine::Literal(_) => vec![Need::Modem],
            AtLine::Named(n, _) => vec![Need::Modem, Need::ModemAction(n.clone())],
        }
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move { self.send(ctx, rig) })
    }
}

impl AtStep {
    fn send(&self, ctx: &mut CaseContext, rig: &mut Session) -> Result<(), StepError> {
        let rig_name = rig.rig.name.clone();
        let vars = rig.device_vars();
        let modem = rig
            .modem
            .as_mut()
            .ok_or_else(|| StepError::Skip(format!("rig {rig_name} has no modem")))?;
        // A dialect's secret variables (keys) reach the modem only: the
        // transcript, the log and any message show them masked.
        let (line, text) = match &self.line {
            AtLine::Literal(l) => (l.clone(), l.clone()),
            AtLine::Named(n, extra) => {
                if let Err(e) = modem.dialect().require(n) {
                    return Err(StepError::Skip(e.to_string()));
                }
                let mut vars = vars;
                vars.extend(extra.clone());
                modem.dialect().render_shown(n, &vars).map_err(rig_error)?
            }
        };
        let timeout = modem.dialect().command_timeout;
        let r = crate::blocking::off_runtime(|| modem.command_shown(&line, &text, timeout))
            .map_err(rig_error)?;
        let _ = writeln!(ctx.log, "  -> {}", r.summary());
        let got = if r.is_ok() {
            AtFinal::Ok
        } else if let Some(n) = r.cme_error() {
            AtFinal::Cme(n)
        } else {
            AtFinal::Error
        };
        if got != self.expect {
            return Err(device(
                format!("{text} to answer {:?}", self.expect),
                r.summary(),
            ));
        }
        if let Some(c) = &self.contains {
            let c =
                crate::steps::euicc::expand(&rig_name, rig.rig.euicc.as_ref(), c).map_err(|e| {
                    match e {
                        crate::steps::euicc::EuiccError::Unknown(m) => StepError::Skip(m),
                        crate::steps::euicc::EuiccError::Malformed(m) => bench(m),
                    }
                })?;
            if !r.lines.iter().any(|l| l.contains(c.as_str())) {
                return Err(device(
                    format!("{text} to answer a line containing {c:?}"),
                    r.summary(),
                ));
            }
        }
        Ok(())
    }
}

/// What the modem could not do: an action its dialect lacks is a skip (the
/// device may be right, the bench cannot ask it), anything else the bench's.
fn rig_error(e: rig::RigError) -> StepError {
    match e {
        rig::RigError::Unsupported(u) => StepError::Skip(u.to_string()),
        other => bench(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> AtStep {
        serde_saphyr::from_str(yaml).expect("an at step")
    }

    #[test]
    fn a_named_command_needs_its_action_from_the_dialect() {
        assert_eq!(
            step("{ command: profiles, contains: x }").needs(),
            vec![Need::Modem, Need::ModemAction("profiles".into())]
        );
        assert_eq!(step("AT+CGMI").needs(), vec![Need::Modem]);
    }

    #[test]
    fn an_action_the_modem_lacks_at_run_time_is_a_skip_naming_it() {
        let e = rig::RigError::Unsupported(rig::action::UnsupportedAction {
            action: "profiles".into(),
            modem: "acme".into(),
        });
        match rig_error(e) {
            StepError::Skip(reason) => {
                assert!(reason.contains("not supported by this modem"), "{reason}");
                assert!(reason.contains("`profiles`"), "{reason}");
            }
            other => panic!("expected a skip, got {other:?}"),
        }
        let port_gone = rig::RigError::Invalid {
            file: "x".into(),
            field: "f".into(),
            message: "m".into(),
        };
        assert!(matches!(rig_error(port_gone), StepError::Bench(_)));
    }
}
