//! `observe_composite: {paths, format, notifications}`: an Observe-Composite
//! (LwM2M 1.1 Core §6.4.3: the Read-Composite FETCH with Observe 0), its
//! first answer and then `notifications` notifications (default 1), each
//! carrying a value at or below every path observed and nothing else, then
//! its Cancel Observation-Composite (§6.4.4: the FETCH again with Observe 1
//! and the observation's token), answered 2.05. The case leaves no
//! observation behind. The values must change for notifications to come
//! (a meter's reading frame does, every few seconds); `within` bounds the
//! wait. Skipped on a device without it (see `composite.rs`).

use std::fmt::Write as _;

use lwm2m::server::{Content, DmRequest, ServerEvent};
use serde::Deserialize;
use server::Observation;

use crate::case::fields::{CasePath, Code, Format};
use crate::session::Session;
use crate::steps::error::{bench, device, server_error};
use crate::steps::exchange::{expect_code, records_text, request_on};
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
    /// Notifications to wait for before cancelling (default 1).
    pub notifications: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ObserveCompositeSpec")]
pub struct ObserveComposite {
    pub paths: Vec<CasePath>,
    pub format: Option<Format>,
    pub notifications: u32,
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
            notifications: s.notifications.unwrap_or(1),
        })
    }
}

impl Step for ObserveComposite {
    fn describe(&self) -> String {
        format!(
            "observe-composite {} for {} notification(s)",
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
            composite::require_version(rig, "Observe-Composite")?;
            let paths = composite::resolve(rig, &self.paths)?;
            let format =
                composite::request_format("observe_composite", self.format, "a path list")?;
            let request = DmRequest::ObserveComposite {
                paths: paths.clone(),
                format,
            };
            let text = server::describe_request(&request);
            let after = rig.server.current_seq();
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
            expect_code(rig, lwm2m::Path::ROOT, &text, &first, Code::CONTENT)?;
            let Content::Records(records) = &first.content else {
                return Err(device("resource values", format!("{:?}", first.content)));
            };
            let _ = writeln!(ctx.log, "  -> {}", records_text(records));
            composite::check_records(rig, &paths, records)?;
            let observation = Observation {
                id,
                endpoint: rig.endpoint.clone(),
                path: lwm2m::Path::ROOT,
                first: first.clone(),
                seq,
            };
            let mut cursor = seq;
            for n in 1..=self.notifications {
                let got = rig
                    .server
                    .await_notification(&observation, cursor, turn.within)
                    .await
                    .map_err(|e| {
                        server_error(
                            format!("notification {n} of {} of {text}", self.notifications),
                            e,
                        )
                    })?;
                let _ = writeln!(
                    ctx.log,
                    "  notification {n}: {}",
                    records_text(&got.records)
                );
                composite::check_records(rig, &paths, &got.records)?;
                cursor = got.seq;
            }
            let cancel = DmRequest::CancelObserveComposite { paths };
            let cancel_text = server::describe_request(&cancel);
            let r = request_on(rig, cancel, turn.within).await?;
            expect_code(rig, lwm2m::Path::ROOT, &cancel_text, &r, Code::CONTENT)?;
            Ok(())
        })
    }
}
