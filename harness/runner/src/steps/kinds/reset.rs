//! `reset: run | halt`: resets the device's MCU over SWD and lets the
//! firmware run, or holds it at the reset vector (to read what the last
//! run left before the firmware touches it).

use rig::target_control::ResetMode;
use serde::Deserialize;

use crate::case::Need;
use crate::session::Session;
use crate::steps::kinds::target::on_target;
use crate::steps::{CaseContext, Restart, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reset {
    Run,
    Halt,
}

impl Step for Reset {
    fn describe(&self) -> String {
        match self {
            Reset::Run => "reset the MCU and run".into(),
            Reset::Halt => "reset the MCU and halt".into(),
        }
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Swd]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let mode = match self {
                Reset::Run => ResetMode::Run,
                Reset::Halt => ResetMode::Halt,
            };
            on_target(rig, "reset", move |control| control.reset(mode)).await?;
            if *self == Reset::Run {
                // The firmware starts over: only a new registration proves it is back.
                ctx.device_restarting(rig, Restart::Reboot);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_and_halt_parse_and_need_swd() {
        let r: Reset = serde_saphyr::from_str("halt").unwrap();
        assert_eq!(r, Reset::Halt);
        assert_eq!(r.describe(), "reset the MCU and halt");
        assert_eq!(r.needs(), [Need::Swd]);
        let e = serde_saphyr::from_str::<Reset>("reboot")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reboot"), "{e}");
    }
}
