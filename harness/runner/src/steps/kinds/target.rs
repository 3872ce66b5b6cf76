//! Running a blocking call on the device's MCU (rig::target_control) from a
//! step: the probe blocks on USB for up to minutes (a flash), so the call
//! runs on tokio's blocking pool, never on a runtime worker.

use rig::target_control::TargetControl;

use crate::session::Session;
use crate::steps::error::{bench, StepError};

/// Why a step that needs SWD cannot run on a port without it; also the
/// reason a case is skipped before its first step (see `Need::Swd`).
pub const NEEDS_SWD: &str = "needs a debug port that reaches the MCU (SWD)";

/// Runs `op` on the rig's target control on the blocking pool. The debug
/// port is lent to the call and put back whatever it returns; a rig whose
/// port cannot control the MCU makes the step skip, a probe that fails
/// (none attached, a chip that will not attach) is the bench's error.
pub async fn on_target<T, F>(rig: &mut Session, what: &str, op: F) -> Result<T, StepError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn TargetControl) -> Result<T, rig::RigError> + Send + 'static,
{
    let name = rig.rig.name.clone();
    let what = what.to_owned();
    let Some(mut debug) = rig.debug.take() else {
        return Err(StepError::Skip(format!(
            "rig {name} has no debug port: {what} {NEEDS_SWD}"
        )));
    };
    let asked = what.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let result = match debug.control() {
            Some(control) => op(control).map_err(|e| bench(format!("{what}: {e}"))),
            None => Err(StepError::Skip(format!(
                "{what} {NEEDS_SWD}; {} only reports facts",
                debug.describe()
            ))),
        };
        (debug, result)
    })
    .await;
    match joined {
        Ok((debug, result)) => {
            rig.debug = Some(debug);
            result
        }
        // The port went down with the panicking call: later steps see no port.
        Err(e) => Err(bench(format!(
            "{asked}: the probe call did not finish: {e}"
        ))),
    }
}
