//! `composite_notified: {notifications}`: more notifications of the
//! Observe-Composite an `observe_composite` step with `keep` left open,
//! each carrying a value at or below every observed path and nothing else.
//! ETS int-310 writes `pmax` on an observed object and then expects the
//! notifications it paces (LwM2M 1.1 Core §5.1.2: a notification is sent at
//! the latest `pmax` after the last one); ETS int-304 does the same with
//! `pmin`/`pmax` on one observed resource. How soon they come is bounded by
//! `within`; a notification that is missing a path or carries another one
//! fails the step, naming it.

use serde::Deserialize;

use crate::session::Session;
use crate::steps::error::bench;
use crate::steps::kinds::observe_composite;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompositeNotified {
    /// How many notifications to wait for (default 1).
    #[serde(default = "one")]
    pub notifications: u32,
}

fn one() -> u32 {
    1
}

impl Step for CompositeNotified {
    fn describe(&self) -> String {
        format!(
            "{} notification(s) of the open Observe-Composite, each with every observed path",
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
            let mut open = ctx.composite_observation.clone().ok_or_else(|| {
                bench("composite_notified: no Observe-Composite is open; an observe_composite step with `keep: true` must start it")
            })?;
            for n in 1..=self.notifications {
                let what = format!(
                    "notification {n} of {} of the Observe-Composite of {}",
                    self.notifications,
                    lwm2m::server::composite::path_list(&open.paths)
                );
                observe_composite::notification(rig, ctx, &mut open, turn, &what).await?;
            }
            Ok(())
        })
    }
}
