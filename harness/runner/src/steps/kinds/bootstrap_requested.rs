//! `bootstrap_requested: false`: whether the device has asked the bootstrap
//! server for a bootstrap since the case last set a bootstrap script (or
//! awaited a bootstrap) — without waiting: what it checks has happened.
//!
//! The Bootstrap Sequence (LwM2M 1.1 Core §6.1.4; ETS
//! LightweightM2M-1.1-int-6) makes a device that holds a server account
//! register with it first and bootstrap only when it has none or registering
//! with every one fails: after a restart with a working account, a
//! Bootstrap-Request is a failure. `true` asks the opposite (at least one).
//! A Bootstrap-Request counts whether the bootstrap server took it, refused
//! it (4.00) or forbade it (4.03).

use std::fmt::Write as _;

use lwm2m::bootstrap::BootstrapEvent;
use serde::Deserialize;
use server::{BootstrapServerEvent, EventSeq};

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{device, StepError};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
pub struct BootstrapRequested(bool);

impl BootstrapRequested {
    pub fn wanted(&self) -> bool {
        self.0
    }
}

/// The Bootstrap-Requests of `endpoint` among `events`, described.
fn requests(endpoint: &str, events: &[(EventSeq, BootstrapServerEvent)]) -> Vec<String> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            BootstrapServerEvent::Bootstrap(BootstrapEvent::Requested {
                endpoint: ep,
                peer,
                ..
            }) if ep == endpoint => Some(format!("a Bootstrap-Request from {peer}")),
            BootstrapServerEvent::Bootstrap(BootstrapEvent::Rejected {
                endpoint: Some(ep),
                peer,
                reason,
            }) if ep == endpoint => Some(format!(
                "a Bootstrap-Request from {peer}, refused: {reason}"
            )),
            BootstrapServerEvent::Forbidden {
                endpoint: ep,
                peer,
                reason,
                ..
            } if ep == endpoint => Some(format!(
                "a Bootstrap-Request from {peer}, forbidden: {reason}"
            )),
            _ => None,
        })
        .collect()
}

/// `Ok` when what was seen is what the case wants; the failure otherwise.
fn judge(wanted: bool, endpoint: &str, seen: &[String]) -> Result<(), StepError> {
    match (wanted, seen.is_empty()) {
        (false, true) | (true, false) => Ok(()),
        (false, false) => Err(device(
            format!("no Bootstrap-Request from {endpoint} (it holds a server account to register with, Core §6.1.4)"),
            seen.join("; "),
        )),
        (true, true) => Err(device(
            format!("a Bootstrap-Request from {endpoint}"),
            "none since the bootstrap script was set",
        )),
    }
}

impl Step for BootstrapRequested {
    fn describe(&self) -> String {
        if self.wanted() {
            "a Bootstrap-Request since the bootstrap script was set".into()
        } else {
            "no Bootstrap-Request since the bootstrap script was set".into()
        }
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Bootstrap]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let bs = crate::steps::kinds::bootstrap::bootstrap_server(rig)?;
            let seen = requests(&rig.endpoint, &bs.events_since(ctx.bootstrap_cursor));
            for s in &seen {
                let _ = writeln!(ctx.log, "  -> {s}");
            }
            judge(self.wanted(), &rig.endpoint, &seen)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(ep: &str) -> (EventSeq, BootstrapServerEvent) {
        (
            EventSeq(1),
            BootstrapServerEvent::Bootstrap(BootstrapEvent::Requested {
                endpoint: ep.into(),
                peer: "127.0.0.1:5000".parse().unwrap(),
                preferred_format: None,
            }),
        )
    }

    #[test]
    fn parses_a_bare_boolean() {
        let s: BootstrapRequested = serde_saphyr::from_str("false").unwrap();
        assert!(!s.wanted());
        assert!(serde_saphyr::from_str::<BootstrapRequested>("maybe").is_err());
    }

    #[test]
    fn only_this_endpoints_requests_count() {
        let events = [requested("other-meter"), requested("meter-1")];
        let seen = requests("meter-1", &events);
        assert_eq!(seen, ["a Bootstrap-Request from 127.0.0.1:5000"]);
        assert!(requests("meter-9", &events).is_empty());
    }

    #[test]
    fn a_request_fails_a_case_that_wants_none_and_names_it() {
        let seen = vec!["a Bootstrap-Request from 127.0.0.1:5000".to_string()];
        let e = judge(false, "meter-1", &seen).unwrap_err().to_string();
        assert!(e.contains("no Bootstrap-Request from meter-1"), "{e}");
        assert!(
            e.contains("saw a Bootstrap-Request from 127.0.0.1:5000"),
            "{e}"
        );
        assert!(judge(false, "meter-1", &[]).is_ok());
        assert!(judge(true, "meter-1", &seen).is_ok());
        assert!(judge(true, "meter-1", &[]).is_err());
    }
}
