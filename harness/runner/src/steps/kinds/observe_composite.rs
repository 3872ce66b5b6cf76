//! `observe_composite: {paths, format, notifications, keep}`: an
//! Observe-Composite (LwM2M 1.1 Core §6.4.3: the Read-Composite FETCH with
//! Observe 0), its first answer and then `notifications` notifications
//! (default 1; 0 with `keep`), each carrying a value at or below every path
//! observed and nothing else (ETS int-304's pass criteria: the first answer
//! and each notification hold the observed values and no others).
//!
//! Without `keep` the step ends with the Cancel Observation-Composite
//! (§6.4.4: the FETCH again with Observe 1 and the observation's token),
//! answered 2.05. With `keep` the observation stays open for the steps that
//! follow — `composite_notified` (more notifications, e.g. after a
//! write-attributes on an observed path, ETS int-310) and
//! `cancel_observe_composite` (ETS int-305) — and the case end cancels it if
//! no step did, so no observation outlives its case. The values must change,
//! or a `pmax` apply, for notifications to come; `within` bounds each wait.
//! Skipped on a device without it (see `composite.rs`).

use std::fmt::Write as _;

use lwm2m::coap::{options, wire};
use lwm2m::server::{Content, DmRequest, ServerEvent};
use lwm2m::Path;
use serde::Deserialize;
use server::{Direction, EventSeq, LogEntry, Observation};

use crate::case::fields::{CasePath, Code, Format};
use crate::session::Session;
use crate::steps::error::{bench, device, server_error, StepError};
use crate::steps::exchange::{expect_code, records_text};
use crate::steps::kinds::composite;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

/// The payload as a case writes it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObserveCompositeSpec {
    /// The paths observed together.
    pub paths: Vec<CasePath>,
    /// `senml-json` or `senml-cbor`; default: one the device listed.
    pub format: Option<Format>,
    /// Notifications to wait for in this step (default 1, or 0 with `keep`).
    pub notifications: Option<u32>,
    /// Leave the observation open for `composite_notified` and
    /// `cancel_observe_composite` steps (default: cancel it at the end of
    /// this step).
    #[serde(default)]
    pub keep: bool,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ObserveCompositeSpec")]
pub struct ObserveComposite {
    pub paths: Vec<CasePath>,
    pub format: Option<Format>,
    pub notifications: u32,
    pub keep: bool,
}

impl TryFrom<ObserveCompositeSpec> for ObserveComposite {
    type Error = composite::CompositeError;
    fn try_from(s: ObserveCompositeSpec) -> Result<Self, composite::CompositeError> {
        if s.paths.is_empty() {
            return Err(composite::CompositeError::Empty(
                "observe_composite",
                "paths",
            ));
        }
        Ok(ObserveComposite {
            paths: s.paths,
            format: s.format,
            notifications: s.notifications.unwrap_or(if s.keep { 0 } else { 1 }),
            keep: s.keep,
        })
    }
}

/// An Observe-Composite a step left open: what its later steps need.
#[derive(Debug, Clone)]
pub struct OpenComposite {
    /// The observation as the server knows it (its request id).
    pub observation: Observation,
    /// The paths observed, instances resolved.
    pub paths: Vec<Path>,
    /// The token of the FETCH that started it: the device's notifications
    /// carry it (RFC 7641 §3.2), also after a cancel the server no longer
    /// matches them to the observation.
    pub token: Vec<u8>,
    /// Notifications up to this event have been taken by earlier steps.
    pub cursor: EventSeq,
}

impl Step for ObserveComposite {
    fn describe(&self) -> String {
        let kept = if self.keep { ", kept open" } else { "" };
        format!(
            "observe-composite {} for {} notification(s){kept}",
            composite::listed(&self.paths),
            self.notifications
        )
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            if ctx.composite_observation.is_some() {
                return Err(bench(
                    "observe_composite: an Observe-Composite is still open; cancel it first (cancel_observe_composite)",
                ));
            }
            composite::require_version(rig, "Observe-Composite")?;
            let paths = composite::resolve(rig, &self.paths)?;
            let format =
                composite::request_format("observe_composite", self.format, "a path list")?;
            let mut open = start(rig, paths, format, turn).await?;
            let _ = writeln!(
                ctx.log,
                "  -> {}",
                match &open.observation.first.content {
                    Content::Records(r) => records_text(r),
                    other => format!("{other:?}"),
                }
            );
            if let Content::Records(records) = &open.observation.first.content {
                composite::check_records(rig, &open.paths, records)?;
            }
            // Kept from here on: a failing notification check still leaves
            // the case end to cancel it.
            ctx.composite_observation = Some(open.clone());
            let text = composite::listed(&self.paths);
            for n in 1..=self.notifications {
                notification(
                    rig,
                    ctx,
                    &mut open,
                    turn,
                    &format!(
                        "notification {n} of {} of the Observe-Composite of {text}",
                        self.notifications
                    ),
                )
                .await?;
            }
            if self.keep {
                return Ok(());
            }
            ctx.composite_observation = None;
            cancel(rig, ctx, &open, turn).await
        })
    }
}

/// Sends the Observe-Composite and takes its first answer, which must be
/// 2.05 with resource values (a skip when the device does not offer it).
pub async fn start(
    rig: &Session,
    paths: Vec<Path>,
    format: Option<lwm2m::ContentFormat>,
    turn: Turn,
) -> Result<OpenComposite, StepError> {
    let request = DmRequest::ObserveComposite {
        paths: paths.clone(),
        format,
    };
    let text = server::describe_request(&request);
    let after = rig.server.current_seq();
    let log_from = rig.server.log_len();
    let id = rig
        .server
        .start_request(&rig.endpoint, request)
        .await
        .map_err(|e| server_error(format!("to send {text}"), e))?;
    let timeout = turn.within.min(std::time::Duration::from_secs(60));
    let (seq, result) = rig
        .server
        .await_event(
            after,
            timeout,
            |e| matches!(e, ServerEvent::Response { id: got, .. } if *got == id),
        )
        .await
        .map_err(|e| server_error(format!("an answer to {text}"), e))?;
    let first = match result {
        ServerEvent::Response { result: Ok(r), .. } => r,
        ServerEvent::Response { result: Err(e), .. } => {
            return Err(device(format!("an answer to {text}"), e.to_string()))
        }
        other => return Err(bench(format!("unexpected event {other:?}"))),
    };
    if first.code != Code::CONTENT.0 {
        if let Some(skip) = composite::unsupported("Observe-Composite", first.code) {
            return Err(skip);
        }
    }
    expect_code(rig, Path::ROOT, &text, &first, Code::CONTENT)?;
    if !matches!(first.content, Content::Records(_)) {
        return Err(device("resource values", format!("{:?}", first.content)));
    }
    let token = observe_composite_token(&rig.server.log_since(log_from)).ok_or_else(|| {
        bench(format!(
            "the FETCH with Observe 0 of {text} is not in the server's message log"
        ))
    })?;
    Ok(OpenComposite {
        observation: Observation {
            id,
            endpoint: rig.endpoint.clone(),
            path: Path::ROOT,
            first,
            seq,
        },
        paths,
        token,
        cursor: seq,
    })
}

/// Waits for the next notification of `open` and checks it carries a value
/// at or below every observed path and nothing else; returns its records.
pub async fn notification(
    rig: &Session,
    ctx: &mut CaseContext,
    open: &mut OpenComposite,
    turn: Turn,
    what: &str,
) -> Result<Vec<lwm2m::Record>, StepError> {
    let got = next_notification(rig, ctx, open, turn, what).await?;
    composite::check_records(rig, &open.paths, &got)?;
    Ok(got)
}

/// The next notification of `open` (unchecked), logged.
pub async fn next_notification(
    rig: &Session,
    ctx: &mut CaseContext,
    open: &mut OpenComposite,
    turn: Turn,
    what: &str,
) -> Result<Vec<lwm2m::Record>, StepError> {
    let got = rig
        .server
        .await_notification(&open.observation, open.cursor, turn.within)
        .await
        .map_err(|e| server_error(what.to_string(), e))?;
    open.cursor = got.seq;
    if let Some(o) = ctx.composite_observation.as_mut() {
        o.cursor = got.seq;
    }
    let _ = writeln!(ctx.log, "  notification: {}", records_text(&got.records));
    Ok(got.records)
}

/// Cancel Observation-Composite (Core §6.4.4) of `open`, answered 2.05.
pub async fn cancel(
    rig: &Session,
    ctx: &mut CaseContext,
    open: &OpenComposite,
    turn: Turn,
) -> Result<(), StepError> {
    let cancel = DmRequest::CancelObserveComposite {
        paths: open.paths.clone(),
    };
    let text = server::describe_request(&cancel);
    let r = crate::steps::exchange::request_on(rig, cancel, turn.within).await?;
    let _ = writeln!(ctx.log, "  -> {}", server::code_text(r.code));
    expect_code(rig, Path::ROOT, &text, &r, Code::CONTENT)
}

/// The token of the last Observe-Composite the server sent in `log`: a FETCH
/// with Observe 0 (Core §6.4.3; RFC 8132 §2, RFC 7641 §2).
pub fn observe_composite_token(log: &[LogEntry]) -> Option<Vec<u8>> {
    log.iter()
        .rev()
        .filter(|e| e.direction == Direction::Out)
        .filter_map(|e| wire::decode(&e.bytes).ok())
        .find(|p| {
            p.header.code == coap_lite::MessageClass::Request(coap_lite::RequestType::Fetch)
                && options::observe(p) == Some(0)
        })
        .map(|p| p.get_token().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::logged::entry;
    use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

    fn request(code: RequestType, token: u8, observe: Option<u32>) -> Packet {
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(code);
        p.set_token(vec![token]);
        if let Some(o) = observe {
            options::set_uint(&mut p, CoapOption::Observe, o);
        }
        p
    }

    /// The token is the last FETCH with Observe 0 (Core §6.4.3): not a
    /// Read-Composite (no Observe), not its cancel (Observe 1), not a GET.
    #[test]
    fn the_token_is_the_last_observe_composite_fetch() {
        let log = [
            entry(Direction::Out, &request(RequestType::Fetch, 1, Some(0))),
            entry(Direction::Out, &request(RequestType::Get, 2, Some(0))),
            entry(Direction::Out, &request(RequestType::Fetch, 3, None)),
            entry(Direction::Out, &request(RequestType::Fetch, 4, Some(1))),
        ];
        assert_eq!(observe_composite_token(&log), Some(vec![1]));
        assert_eq!(observe_composite_token(&log[1..]), None);
    }
}
