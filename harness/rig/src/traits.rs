//! The small traits every bench driver implements, so that the virtual rig and a
//! real bench run the same case code (the probe-rs `DebugProbe` idea).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::at::{AtResponse, Transcript};
use crate::dialect::Dialect;
use crate::error::RigError;
use crate::network::NetworkAction;

/// Switches the device's supply.
pub trait Power: Send {
    fn on(&mut self) -> Result<(), RigError>;
    /// Cuts power at once: on the virtual rig a SIGKILL of the meter process.
    fn off(&mut self) -> Result<(), RigError>;
    fn is_on(&mut self) -> bool;
    /// What this supply is, for logs and reports ("virtual meter process", "command: ...").
    fn describe(&self) -> String;
}

/// The device's modem on a serial line, spoken to with AT commands.
pub trait Modem: Send {
    /// (Re)opens the serial port, e.g. after power-on, and waits for the modem
    /// to answer `AT` (or print its boot URC) within the dialect's boot timeout.
    fn open(&mut self) -> Result<(), RigError>;
    /// Closes the port; the transcript is kept.
    fn close(&mut self);
    /// Sends one command line and waits for its final result code. A final
    /// ERROR / +CME ERROR is an `Ok(AtResponse)` with that result; `Err` is
    /// for the line itself failing (port closed, timeout).
    fn command(&mut self, line: &str, timeout: Duration) -> Result<AtResponse, RigError>;
    /// Like [`Modem::command`], but `shown` stands for `line` in the
    /// transcript, logs and errors: for lines that carry a key or PSK
    /// ([`Dialect::render_shown`]). Implementations that record anything
    /// must override this; the default sends `line` via `command`.
    fn command_shown(
        &mut self,
        line: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<AtResponse, RigError> {
        let _ = shown;
        self.command(line, timeout)
    }
    /// Waits until a line starting with `prefix` arrives (URC or otherwise) and returns it.
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, RigError>;
    /// Unsolicited result codes received since the last call.
    fn take_urcs(&mut self) -> Vec<String>;
    /// Everything sent and received, with times, as a recording wrapper
    /// kept it ([`crate::wrap::TranscriptRecorder`]); a driver records
    /// nothing itself, so the default is empty.
    fn transcript(&self) -> Transcript {
        Transcript::new()
    }
    /// Publishes what crosses the line to `tap` from now on (echo, URCs and
    /// notes included). `false` when this driver has no line to tap: a
    /// recorder then records the calls made to it.
    fn attach_tap(&mut self, tap: crate::at::SharedTap) -> bool {
        let _ = tap;
        false
    }
    fn dialect(&self) -> &Dialect;
}

/// The device's debug port (SWD on a real bench): what the device holds
/// independently of what it says over LwM2M.
pub trait Debug: Send {
    /// Named facts read from the device (active slot, boot count, registers...).
    fn read_state(&mut self) -> Result<BTreeMap<String, String>, RigError>;
    fn describe(&self) -> String;
    /// One typed fact, or [`RigError::FactUnavailable`] when this port
    /// cannot give it. The default types the keys of [`Debug::read_state`].
    fn fact(&mut self, fact: &crate::facts::Fact) -> Result<crate::facts::FactValue, RigError> {
        let state = self.read_state()?;
        crate::facts::from_state(&state, fact, &self.describe())
    }
    /// Flash, reset, halt/run and memory reads, on a port that reaches the
    /// MCU (SWD); `None` on a port that only reports facts.
    fn control(&mut self) -> Option<&mut dyn crate::target_control::TargetControl> {
        None
    }
    /// What the device's firmware printed since the last call (RTT over
    /// SWD), as lines for the case's artifacts: the firmware's own account
    /// of a failure, which neither the modem nor the server sees. Empty on
    /// a port that has no such channel.
    fn take_log(&mut self) -> Result<Vec<String>, RigError> {
        Ok(Vec::new())
    }
}

/// The device's cellular network as the lab controls it (a network
/// emulator, the virtual meter's network model): never the device itself.
pub trait Network: Send {
    /// Whether this bench can do `action` (a lab may bar only some profiles).
    fn supports(&self, action: &NetworkAction) -> bool;
    fn apply(&mut self, action: &NetworkAction) -> Result<(), RigError>;
    fn describe(&self) -> String;
}

/// Default wait for a command's final result when the dialect gives none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
