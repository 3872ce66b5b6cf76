//! `sent: {paths, trigger, exactly, none_for}`: the device pushed its values
//! with Send (LwM2M 1.1 Core §6.4.6: POST /dp with SenML records; the server
//! answers 2.04) — a Send from the case's device since the previous step
//! began (the step that caused it, e.g. a write of Mute Send /1/x/23 false),
//! carrying a value at or below every path and each typed by the object
//! model. A device pushes Sends of its own (a meter its readings), so the
//! step takes the first Send that carries a value under one of `paths`.
//!
//! The ETS's Send tests have the device's own application or shell start
//! the Send (int-306 Send of /1 and /3, int-307 Send while muted, int-311
//! Send of /1/x/1 and /3/0/11): with `trigger`, the step first asks the
//! device to Send `paths` through the rig's modem dialect command of that
//! name, given the paths (instances resolved) as `{paths}`; a rig whose
//! dialect lacks it skips the case before its first step. With `exactly`,
//! the Send must carry nothing but values at or below `paths` (int-311's
//! pass criterion: the server receives exactly what was sent). With
//! `none_for`, the opposite: no Send with a value under `paths` may come for
//! that long (int-307: Send is muted).
//!
//! Waits up to `within`. A device registered with LwM2M 1.0 has no Send:
//! the step is skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::server::ServerEvent;
use lwm2m::{Path, Record};
use serde::Deserialize;

use crate::case::fields::{CasePath, Span};
use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{device, server_error};
use crate::steps::exchange::records_text;
use crate::steps::kinds::at::{AtFinal, AtLine, AtStep};
use crate::steps::kinds::composite;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentSpec {
    /// Paths the Send must carry values at (or below).
    pub paths: Vec<CasePath>,
    /// A modem dialect command (e.g. `lwm2m_send`) that asks the device to
    /// Send `{paths}`, sent first.
    pub trigger: Option<String>,
    /// The Send carries values at or below `paths` and nothing else.
    #[serde(default)]
    pub exactly: bool,
    /// No Send with a value under `paths` may come for this long (Send muted).
    pub none_for: Option<Span>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "SentSpec")]
pub struct Sent {
    pub paths: Vec<CasePath>,
    pub trigger: Option<String>,
    pub exactly: bool,
    pub none_for: Option<Duration>,
}

impl TryFrom<SentSpec> for Sent {
    type Error = composite::CompositeError;
    fn try_from(s: SentSpec) -> Result<Self, composite::CompositeError> {
        if s.paths.is_empty() {
            return Err(composite::CompositeError::Empty("sent", "paths"));
        }
        Ok(Sent {
            paths: s.paths,
            trigger: s.trigger,
            exactly: s.exactly,
            none_for: s.none_for.map(|s| s.0),
        })
    }
}

impl Step for Sent {
    fn describe(&self) -> String {
        let asked = match &self.trigger {
            Some(t) => format!(" (asked for with <{t}>)"),
            None => String::new(),
        };
        match self.none_for {
            Some(q) => format!(
                "no Send of {} for {q:?}{asked}",
                composite::listed(&self.paths)
            ),
            None if self.exactly => format!(
                "a Send of exactly {}{asked}",
                composite::listed(&self.paths)
            ),
            None => format!("a Send of {}{asked}", composite::listed(&self.paths)),
        }
    }

    fn needs(&self) -> Vec<Need> {
        match &self.trigger {
            Some(t) => vec![Need::Modem, Need::ModemAction(t.clone())],
            None => Vec::new(),
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            composite::require_version(rig, "Send")?;
            let paths = composite::resolve(rig, &self.paths)?;
            let mut from = ctx.previous_step.seq;
            if let Some(command) = &self.trigger {
                from = rig.server.current_seq();
                let list: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                let at = AtStep {
                    line: AtLine::Named(
                        command.clone(),
                        BTreeMap::from([("paths".to_string(), list.join(","))]),
                    ),
                    expect: AtFinal::Ok,
                    contains: None,
                };
                at.run(turn, ctx, rig).await?;
            }
            let endpoint = rig.endpoint.clone();
            let wanted = |e: &ServerEvent| match e {
                ServerEvent::Sent {
                    endpoint: ep,
                    records,
                } => *ep == endpoint && carries_any(&paths, records),
                _ => false,
            };
            if let Some(quiet) = self.none_for {
                return match rig.server.await_event(from, quiet, wanted).await {
                    Ok((_, ServerEvent::Sent { records, .. })) => Err(device(
                        format!(
                            "no Send of {} for {quiet:?}",
                            lwm2m::server::composite::path_list(&paths)
                        ),
                        format!("a Send of {}", records_text(&records)),
                    )),
                    Ok(_) => Ok(()),
                    Err(server::ServerError::Timeout { .. }) => {
                        let _ = writeln!(ctx.log, "  -> no Send for {quiet:?}");
                        Ok(())
                    }
                    Err(e) => Err(server_error("the server's events", e)),
                };
            }
            let (seq, event) = rig
                .server
                .await_event(from, turn.within, wanted)
                .await
                .map_err(|e| {
                    server_error(
                        format!(
                            "a Send (POST /dp) from {endpoint} with {}",
                            lwm2m::server::composite::path_list(&paths)
                        ),
                        e,
                    )
                })?;
            let ServerEvent::Sent { records, .. } = event else {
                return Ok(());
            };
            let _ = writeln!(ctx.log, "  -> {}", records_text(&records));
            ctx.cursor = ctx.cursor.max(seq);
            if self.exactly {
                return composite::check_records(rig, &paths, &records);
            }
            // A meter may push more than was asked about: only what is listed is checked.
            let listed: Vec<_> = records
                .iter()
                .filter(|r| paths.iter().any(|p| p.contains(&r.path)))
                .cloned()
                .collect();
            composite::check_records(rig, &paths, &listed)
        })
    }
}

/// Whether a Send's records hold a value at or below one of `paths`.
fn carries_any(paths: &[Path], records: &[Record]) -> bool {
    records
        .iter()
        .any(|r| paths.iter().any(|p| p.contains(&r.path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwm2m::Value;

    /// A meter's own reading pushes (object 19) are not the Send a case
    /// asked for of /1/0/1 and /3/0/11 (ETS int-311); a Send with either is.
    #[test]
    fn only_a_send_with_a_listed_path_is_taken() {
        let paths: Vec<Path> = ["/1/0/1", "/3/0/11"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let reading = [Record::new(
            "/19/0/0/0".parse().unwrap(),
            Value::Opaque(vec![1]),
        )];
        assert!(!carries_any(&paths, &reading));
        let asked = [Record::new("/3/0/11/0".parse().unwrap(), Value::Integer(0))];
        assert!(carries_any(&paths, &asked));
    }
}
