//! `CommandPower`: a supply switched by shell commands from the rig file
//! (a USB relay's CLI, a lab supply's SCPI one-liner, a smart plug's curl).

use std::time::Duration;

use tracing::warn;

use crate::error::RigError;
use crate::model::CommandPowerSpec;
use crate::shell::{self, Finished, NotFinished};
use crate::traits::Power;

/// Power via `sh -c` commands: `on`, `off` and optionally `status` (exit 0 =
/// on). Each command runs in its own process group and is killed, with its
/// children, when it overruns the timeout.
pub struct CommandPower {
    spec: CommandPowerSpec,
    /// The last state commanded successfully, for `is_on` without `status`.
    assumed_on: bool,
}

impl CommandPower {
    pub fn new(spec: CommandPowerSpec) -> Self {
        CommandPower {
            spec,
            assumed_on: false,
        }
    }

    pub fn spec(&self) -> &CommandPowerSpec {
        &self.spec
    }

    fn run_checked(&self, command: &str) -> Result<(), RigError> {
        let f = run(command, self.spec.timeout)?;
        if f.success {
            Ok(())
        } else {
            Err(RigError::PowerCommand {
                command: command.into(),
                outcome: f.outcome,
                stderr: f.stderr,
            })
        }
    }
}

impl Power for CommandPower {
    fn on(&mut self) -> Result<(), RigError> {
        self.run_checked(&self.spec.on.clone())?;
        self.assumed_on = true;
        Ok(())
    }

    fn off(&mut self) -> Result<(), RigError> {
        self.run_checked(&self.spec.off.clone())?;
        self.assumed_on = false;
        Ok(())
    }

    /// Runs `status` if the rig file gives one; if it is absent or cannot
    /// run, the last commanded state.
    fn is_on(&mut self) -> bool {
        let Some(status) = self.spec.status.clone() else {
            return self.assumed_on;
        };
        match run(&status, self.spec.timeout) {
            Ok(f) => f.success,
            Err(e) => {
                warn!(error = %e, "power status command failed; assuming last commanded state");
                self.assumed_on
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "command power (on: `{}`, off: `{}`)",
            self.spec.on, self.spec.off
        )
    }
}

/// Runs a power command, its failures as the power errors.
fn run(command: &str, timeout: Duration) -> Result<Finished, RigError> {
    shell::run(command, timeout).map_err(|e| match e {
        NotFinished::Spawn(outcome) => RigError::PowerCommand {
            command: command.into(),
            outcome,
            stderr: String::new(),
        },
        NotFinished::Timeout => RigError::PowerTimeout {
            command: command.into(),
            waited: timeout,
        },
    })
}
