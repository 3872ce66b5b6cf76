//! `power: on | off | cycle | brownout`: switching the device's supply.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{bench, StepError};
use crate::steps::{CaseContext, Restart, Step, StepFuture, Turn};

/// Power-off time of a brown-out.
pub const BROWNOUT: Duration = Duration::from_millis(50);

/// How long `cycle` keeps power off: long enough for a real board's supply
/// rails to fall.
const CYCLE_OFF: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerStep {
    /// On, and the device pointed at our server (the dialect's bring-up).
    On,
    Off,
    /// Off, then on with bring-up.
    Cycle,
    /// A short dip: off for [`BROWNOUT`], then on; the device is not re-configured.
    Brownout,
}

impl Step for PowerStep {
    fn describe(&self) -> String {
        format!("power {self:?}").to_lowercase()
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Power]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            ctx.device_restarting(rig, Restart::Reboot);
            match self {
                PowerStep::Off => switch_off(rig)?,
                PowerStep::On => {}
                PowerStep::Cycle => {
                    switch_off(rig)?;
                    tokio::time::sleep(CYCLE_OFF).await;
                }
                PowerStep::Brownout => {
                    switch_off(rig)?;
                    tokio::time::sleep(BROWNOUT).await;
                    return restore(rig, &mut ctx.log);
                }
            }
            if matches!(self, PowerStep::On | PowerStep::Cycle) {
                rig.set_power(true).map_err(bench)?;
                rig.bring_up().map_err(bench)?;
                let _ = writeln!(ctx.log, "  -> device on, pointed at {}", rig.server_uri());
            }
            Ok(())
        })
    }
}

/// Power off; the modem port closes with the device.
pub(crate) fn switch_off(rig: &mut Session) -> Result<(), StepError> {
    rig.set_power(false).map_err(bench)?;
    if let Some(m) = rig.modem.as_mut() {
        m.close();
    }
    Ok(())
}

/// Power back on after a cut: the modem port is reopened (the device boots)
/// but nothing is configured, so the device must recover on its own.
pub(crate) fn restore(rig: &mut Session, log: &mut String) -> Result<(), StepError> {
    rig.set_power(true).map_err(bench)?;
    if let Some(m) = rig.modem.as_mut() {
        crate::blocking::off_runtime(|| m.open()).map_err(bench)?;
    }
    let _ = writeln!(log, "  -> power restored; the device is on its own");
    Ok(())
}
