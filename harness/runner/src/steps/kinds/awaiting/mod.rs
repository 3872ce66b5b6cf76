//! `await`: waits for the device to do something — register, update,
//! deregister, finish a bootstrap, be refused, send notifications, print a
//! line, or make a resource reach a value.

mod disabled;
mod registration;
mod security;
mod value;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use crate::case::fields::{CasePath, Span};
use crate::case::model::{ScalarValue, StringOr};
use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{serial_wait_error, StepError};
use crate::steps::kinds::expect_value::{ConditionError, ValueCondition};
use crate::steps::{wait, CaseContext, Step, StepFuture, Turn, Wait};

/// `await: {path | notification | line | handshake_refused, ...}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwaitValue {
    /// Await a resource value (polled by Read).
    path: Option<CasePath>,
    /// Await notifications of an observation started by an `observe` step.
    notification: Option<CasePath>,
    /// Number of notifications to await (default 1).
    count: Option<u32>,
    equals: Option<ScalarValue>,
    not_equals: Option<ScalarValue>,
    /// The value differs from the first one read.
    changes: Option<bool>,
    /// Await a line on the modem's serial port starting with this text.
    line: Option<String>,
    /// Await a modem event (`profile_switched`): the URC the rig's modem
    /// dialect maps it to, so the case names no vendor's line.
    event: Option<String>,
    /// Await a DTLS handshake the server refused (`true`), for this device's identity.
    handshake_refused: Option<bool>,
    /// Await a DTLS handshake the LwM2M server completed in certificate
    /// mode (`true`) with a client certificate whose CN is this device's
    /// endpoint name (LwM2M Security Mode 2).
    certificate_handshake: Option<bool>,
    /// Await a Register after a Disable: none for this many seconds (less
    /// `margin`), then one. A number, or `{saved:NAME}` read from the device.
    registers_after: Option<ScalarValue>,
    /// How much earlier than `registers_after` a Register may come (default 2s).
    margin: Option<Span>,
    within: Option<Span>,
}

/// `await: registered|deregistered|updated|...`, or a map for values,
/// notifications and serial lines.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "StringOr<AwaitValue>")]
pub struct Await {
    #[schemars(skip)] // parsed from its `try_from` type
    pub target: AwaitTarget,
    /// The map's own `within`; the step takes it as its limit.
    pub within: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum AwaitTarget {
    Registered,
    Deregistered,
    Updated,
    Value {
        path: CasePath,
        condition: ValueCondition,
    },
    Notifications {
        path: CasePath,
        count: u32,
    },
    SerialLine(String),
    /// A modem event by its abstract name ([`rig::action::EVENTS`]).
    ModemEvent(String),
    Bootstrapped,
    HandshakeRefused,
    /// A certificate-mode handshake by this device's certificate.
    CertificateHandshake,
    Forbidden,
    /// A new registration since the previous step began (after an AT
    /// command that makes the device re-attach, say).
    Reregistered,
    /// After a Disable: no Register for `away` less `margin`, then one.
    RegistersAfter {
        away: ScalarValue,
        margin: Duration,
    },
}

/// An `await` payload that names nothing the harness can wait for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwaitError {
    #[error("await {0:?}: expected registered, reregistered, deregistered, updated, bootstrapped, forbidden or a map with path/notification/line/handshake_refused")]
    UnknownTarget(String),
    #[error("await event {event:?}: not a modem event (known: {known})")]
    UnknownEvent { event: String, known: String },
    #[error(
        "await: give `path`, `notification`, `line`, `handshake_refused` or `registers_after`"
    )]
    NoTarget,
    #[error(transparent)]
    Condition(#[from] ConditionError),
}

impl TryFrom<StringOr<AwaitValue>> for Await {
    type Error = AwaitError;
    fn try_from(a: StringOr<AwaitValue>) -> Result<Self, AwaitError> {
        let v = match a {
            StringOr::Short(e) => {
                let target = match e.as_str() {
                    "registered" => AwaitTarget::Registered,
                    "deregistered" => AwaitTarget::Deregistered,
                    "updated" => AwaitTarget::Updated,
                    "bootstrapped" => AwaitTarget::Bootstrapped,
                    "forbidden" => AwaitTarget::Forbidden,
                    "reregistered" => AwaitTarget::Reregistered,
                    other => return Err(AwaitError::UnknownTarget(other.to_owned())),
                };
                return Ok(Await {
                    target,
                    within: None,
                });
            }
            StringOr::Long(v) => v,
        };
        let within = v.within.map(|w| w.0);
        let target = if let Some(line) = v.line {
            AwaitTarget::SerialLine(line)
        } else if let Some(event) = v.event {
            if !rig::action::is_event(&event) {
                let known: Vec<&str> = rig::action::EVENTS.iter().map(|e| e.name).collect();
                return Err(AwaitError::UnknownEvent {
                    event,
                    known: known.join(", "),
                });
            }
            AwaitTarget::ModemEvent(event)
        } else if v.handshake_refused == Some(true) {
            AwaitTarget::HandshakeRefused
        } else if v.certificate_handshake == Some(true) {
            AwaitTarget::CertificateHandshake
        } else if let Some(away) = v.registers_after {
            AwaitTarget::RegistersAfter {
                away,
                margin: v.margin.map_or(disabled::DEFAULT_MARGIN, |m| m.0),
            }
        } else if let Some(path) = v.notification {
            AwaitTarget::Notifications {
                path,
                count: v.count.unwrap_or(1),
            }
        } else {
            let path = v.path.ok_or(AwaitError::NoTarget)?;
            let condition =
                ValueCondition::from_fields(v.equals, v.not_equals, v.changes.unwrap_or(false))?;
            AwaitTarget::Value { path, condition }
        };
        Ok(Await { target, within })
    }
}

impl Step for Await {
    fn describe(&self) -> String {
        let what = match &self.target {
            AwaitTarget::Registered => "registered".into(),
            AwaitTarget::Deregistered => "deregistered".into(),
            AwaitTarget::Updated => "registration update".into(),
            AwaitTarget::Value { path, condition } => format!("{path} {condition}"),
            AwaitTarget::Notifications { path, count } => {
                format!("{count} notification(s) of {path}")
            }
            AwaitTarget::SerialLine(l) => format!("serial line {l:?}"),
            AwaitTarget::ModemEvent(e) => format!("modem event {e}"),
            AwaitTarget::Bootstrapped => "bootstrap finished".into(),
            AwaitTarget::HandshakeRefused => "a refused DTLS handshake".into(),
            AwaitTarget::CertificateHandshake => {
                "a DTLS handshake with the device's certificate".into()
            }
            AwaitTarget::Forbidden => "a 4.03 Forbidden".into(),
            AwaitTarget::Reregistered => "a new registration since the previous step".into(),
            AwaitTarget::RegistersAfter { away, margin } => {
                format!("no registration for {away}s (less {margin:?}), then a registration")
            }
        };
        format!("await {what}")
    }

    fn needs(&self) -> Vec<Need> {
        match self.target {
            AwaitTarget::SerialLine(_) => vec![Need::Modem],
            AwaitTarget::ModemEvent(ref e) => vec![Need::Modem, Need::ModemEvent(e.clone())],
            AwaitTarget::Bootstrapped => vec![Need::Bootstrap],
            AwaitTarget::CertificateHandshake => vec![Need::CertificateMode],
            _ => Vec::new(),
        }
    }

    fn firmware_roles(&self) -> Vec<String> {
        match &self.target {
            AwaitTarget::Value { condition, .. } => condition.firmware_roles(),
            _ => Vec::new(),
        }
    }

    /// An Update is due within the registration's lifetime; a restart takes
    /// the rig's reboot or update wait; a download's progress its download wait.
    fn default_wait(&self, rig: &Session, ctx: &CaseContext) -> Option<Wait> {
        match &self.target {
            AwaitTarget::Updated => wait::lifetime_left(rig),
            AwaitTarget::Registered | AwaitTarget::Reregistered => Some(wait::restart(rig, ctx)),
            // The Disable Timeout, then as long as a registration takes.
            AwaitTarget::RegistersAfter { away, margin } => {
                let away = disabled::away_for(away, &ctx.saved).ok()?;
                let restart = wait::restart(rig, ctx);
                Some(Wait {
                    limit: away + *margin + restart.limit,
                    why: format!(
                        "the Disable Timeout ({}s) + {margin:?} + {}",
                        away.as_secs(),
                        restart.why
                    ),
                })
            }
            AwaitTarget::Value { path, .. } if wait::is_delivery_status(&path.0) => {
                wait::download(rig)
            }
            _ => None,
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        let within = turn.within;
        Box::pin(async move {
            match &self.target {
                AwaitTarget::Registered => registration::registered(ctx, rig, within).await,
                AwaitTarget::Reregistered => registration::reregistered(ctx, rig, within).await,
                AwaitTarget::RegistersAfter { away, margin } => {
                    let away = disabled::away_for(away, &ctx.saved)?;
                    disabled::registers_after(ctx, rig, away, *margin, within).await
                }
                AwaitTarget::Deregistered => registration::deregistered(ctx, rig, within).await,
                AwaitTarget::Updated => registration::updated(ctx, rig, within).await,
                AwaitTarget::Value { path, condition } => {
                    value::value(ctx, rig, *path, condition, within).await
                }
                AwaitTarget::Notifications { path, count } => {
                    value::notifications(ctx, rig, *path, *count, within).await
                }
                AwaitTarget::Bootstrapped => security::bootstrapped(ctx, rig, within).await,
                AwaitTarget::HandshakeRefused => {
                    security::handshake_refused(ctx, rig, within).await
                }
                AwaitTarget::Forbidden => security::forbidden(ctx, rig, within).await,
                AwaitTarget::CertificateHandshake => {
                    security::certificate_handshake(ctx, rig, within).await
                }
                AwaitTarget::SerialLine(prefix) => serial_line(ctx, rig, prefix, within),
                AwaitTarget::ModemEvent(event) => modem_event(ctx, rig, event, within),
            }
        })
    }
}

fn serial_line(
    ctx: &mut CaseContext,
    rig: &mut Session,
    prefix: &str,
    within: Duration,
) -> Result<(), StepError> {
    let rig_name = rig.rig.name.clone();
    let modem = rig
        .modem
        .as_mut()
        .ok_or_else(|| StepError::Skip(format!("rig {rig_name} has no modem")))?;
    let line =
        crate::blocking::off_runtime(|| modem.wait_for_line(prefix, within)).map_err(|e| {
            serial_wait_error(
                format!("a line starting {prefix:?} on the serial port within {within:?}"),
                e,
            )
        })?;
    let _ = writeln!(ctx.log, "  -> {line}");
    Ok(())
}

fn modem_event(
    ctx: &mut CaseContext,
    rig: &mut Session,
    event: &str,
    within: Duration,
) -> Result<(), StepError> {
    let rig_name = rig.rig.name.clone();
    let modem = rig
        .modem
        .as_mut()
        .ok_or_else(|| StepError::Skip(format!("rig {rig_name} has no modem")))?;
    let line = crate::blocking::off_runtime(|| {
        rig::bring_up::wait_for_event(modem.as_mut(), event, within)
    })
    .map_err(|e| match e {
        rig::RigError::Unsupported(u) => StepError::Skip(u.to_string()),
        e => serial_wait_error(format!("modem event {event} within {within:?}"), e),
    })?;
    let _ = writeln!(ctx.log, "  -> {line}");
    Ok(())
}
