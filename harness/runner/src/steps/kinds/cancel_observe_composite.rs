//! `cancel_observe_composite: {quiet}`: ends the Observe-Composite an
//! `observe_composite` step with `keep` left open, with Cancel
//! Observation-Composite (LwM2M 1.1 Core §6.4.4: the FETCH of the same
//! paths with Observe 1 and the observation's token), answered 2.05; with
//! `quiet`, checks that it ended: the device sends no notification with the
//! observation's token for that long after its answer (ETS int-305: the
//! client removes the observer of every path). `quiet` must exceed the
//! `pmax` in force, or a device that kept observing would not be caught.

use std::time::Duration;

use serde::Deserialize;

use crate::case::fields::Span;
use crate::session::Session;
use crate::steps::error::bench;
use crate::steps::kinds::{cancel_observe, observe_composite};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelObserveCompositeSpec {
    /// How long after the cancel no notification of it may come.
    quiet: Option<Span>,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(from = "CancelObserveCompositeSpec")]
pub struct CancelObserveComposite {
    pub quiet: Option<Duration>,
}

impl From<CancelObserveCompositeSpec> for CancelObserveComposite {
    fn from(s: CancelObserveCompositeSpec) -> Self {
        CancelObserveComposite {
            quiet: s.quiet.map(|s| s.0),
        }
    }
}

impl Step for CancelObserveComposite {
    fn describe(&self) -> String {
        match self.quiet {
            Some(q) => {
                format!("cancel the open Observe-Composite, then no notification of it for {q:?}")
            }
            None => "cancel the open Observe-Composite".into(),
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let open = ctx.composite_observation.take().ok_or_else(|| {
                bench("cancel_observe_composite: no Observe-Composite is open; an observe_composite step with `keep: true` must start it")
            })?;
            observe_composite::cancel(rig, ctx, &open, turn).await?;
            let Some(quiet) = self.quiet else {
                return Ok(());
            };
            cancel_observe::quiet_after(rig, ctx, lwm2m::Path::ROOT, &open.token, quiet).await
        })
    }
}
