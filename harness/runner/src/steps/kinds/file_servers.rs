//! `firmware_server: stop`: meterbench's firmware file servers stop
//! answering, as a connection lost in the middle of a download; the next
//! `firmware` step starts them anew.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::session::Session;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileServers {
    Stop,
}

impl Step for FileServers {
    fn describe(&self) -> String {
        "firmware file servers stop answering".into()
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            if let Some(delivery) = rig.firmware.take() {
                // The figures of what was delivered so far, before the
                // servers (and their counters) go.
                let images = std::mem::take(&mut ctx.firmware_images);
                let figures =
                    crate::steps::firmware::transfer_report(&delivery, &images, &mut ctx.log);
                ctx.properties.extend(figures);
                delivery.shutdown().await;
            }
            let _ = writeln!(ctx.log, "  -> file servers stopped");
            Ok(())
        })
    }
}
