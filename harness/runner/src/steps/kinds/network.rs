//! `network: accept-all | {refuse: <profile>}`: what the lab makes the
//! device's network do (rigs with a `network:` part). The case end puts the
//! network back to accept-all.

use std::fmt::Write as _;

use serde::Deserialize;
use thiserror::Error;

use crate::case::model::StringOr;
use crate::case::Need;
use crate::session::Session;
use crate::steps::error::bench;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkFull {
    /// The profile whose attach the network refuses: `first-profile`,
    /// `second-profile`, `profile-<n>` (its place on the eUICC).
    refuse: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "StringOr<NetworkFull>")]
pub struct NetworkStep(pub rig::NetworkAction);

/// A `network` payload that names no action the lab's network can take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetworkStepError {
    #[error("network {0:?}: expected accept-all or {{refuse: <profile>}}")]
    UnknownAction(String),
    #[error("network: give `refuse: <profile>` (first-profile, second-profile, profile-<n>)")]
    NoRefusedProfile,
    /// The profile slot's own message, which names what was written.
    #[error("network refuse {0}")]
    Profile(String),
}

impl TryFrom<StringOr<NetworkFull>> for NetworkStep {
    type Error = NetworkStepError;
    fn try_from(n: StringOr<NetworkFull>) -> Result<Self, NetworkStepError> {
        match n {
            StringOr::Short(s) if s == "accept-all" => {
                Ok(NetworkStep(rig::NetworkAction::AcceptAll))
            }
            StringOr::Short(other) => Err(NetworkStepError::UnknownAction(other)),
            StringOr::Long(l) => {
                let profile = l.refuse.ok_or(NetworkStepError::NoRefusedProfile)?;
                let slot = profile
                    .parse::<rig::ProfileSlot>()
                    .map_err(NetworkStepError::Profile)?;
                Ok(NetworkStep(rig::NetworkAction::Refuse(slot)))
            }
        }
    }
}

impl Step for NetworkStep {
    fn describe(&self) -> String {
        format!("network {}", self.0)
    }

    /// Network control, and one that can do this (even when `needs` forgets it).
    fn needs(&self) -> Vec<Need> {
        vec![Need::Network(self.0)]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let action = &self.0;
            let rig_name = rig.rig.name.clone();
            let network = rig.network.as_mut().ok_or_else(|| {
                crate::steps::StepError::Skip(format!("rig {rig_name} has no network control"))
            })?;
            ctx.network_changed = true;
            crate::blocking::off_runtime(|| network.apply(action)).map_err(bench)?;
            let _ = writeln!(ctx.log, "  -> the network will {action}");
            Ok(())
        })
    }
}
