//! `CommandPower`: a supply switched by shell commands from the rig file
//! (a USB relay's CLI, a lab supply's SCPI one-liner, a smart plug's curl).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::error::RigError;
use crate::model::CommandPowerSpec;
use crate::traits::Power;

/// How much of a command's stderr an error quotes.
const STDERR_LIMIT: usize = 2048;

/// Power via `sh -c` commands: `on`, `off` and optionally `status` (exit 0 =
/// on). Each command runs in its own process group and is killed, with its
/// children, when it overruns the timeout.
pub struct CommandPower {
    spec: CommandPowerSpec,
    /// The last state commanded successfully, for `is_on` without `status`.
    assumed_on: bool,
}

/// What a finished command left behind.
struct Finished {
    success: bool,
    outcome: String,
    stderr: String,
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

/// Runs `sh -c command`, waiting at most `timeout`.
fn run(command: &str, timeout: Duration) -> Result<Finished, RigError> {
    debug!(command, "power command");
    let spawn_err = |e: std::io::Error| RigError::PowerCommand {
        command: command.into(),
        outcome: format!("could not start: {e}"),
        stderr: String::new(),
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;

    // Read stderr on a thread so a chatty command cannot fill the pipe and
    // stall; the thread ends when the pipe closes.
    let (tx, rx) = mpsc::channel();
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.by_ref().take(64 * 1024).read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                warn!(command, "power command timed out; killed");
                return Err(RigError::PowerTimeout {
                    command: command.into(),
                    waited: timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(spawn_err(e)),
        }
    };
    // A grandchild may still hold stderr open; do not wait on it for long.
    let stderr = rx
        .recv_timeout(Duration::from_millis(200))
        .map(|b| {
            let mut s = String::from_utf8_lossy(&b).into_owned();
            if s.len() > STDERR_LIMIT {
                let mut cut = STDERR_LIMIT;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
            }
            s.trim().to_owned()
        })
        .unwrap_or_default();
    let outcome = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(0), _) => "succeeded".to_string(),
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended abnormally".to_string(),
    };
    Ok(Finished {
        success: status.success(),
        outcome,
        stderr,
    })
}

/// Kills the process group we created for one command (its id is the
/// child's pid, `process_group(0)`).
fn kill_group(pid: u32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
