//! The virtual rig's power supply: "on" starts the virtual meter process,
//! "off" is a SIGKILL — a power cut, with no chance to flush or say goodbye,
//! which is exactly what power-loss cases need.

use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rig::RigError;

use crate::args::DeviceOptions;

/// Name of the PTY link inside the state directory.
pub const PTY_LINK_NAME: &str = "modem.pty";
/// Name of the device log (the meter's stdout and stderr) inside the state directory.
pub const DEVICE_LOG_NAME: &str = "device.log";
/// How long `on()` waits for the meter to publish its modem port.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

const DRIVER: &str = "virtual power";

/// How to start one virtual meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMeterSpec {
    /// The executable: the `virtual-meter` binary, or `meterbench` itself.
    pub program: PathBuf,
    /// Arguments before the meter's own, e.g. `["sim-meter"]` for `meterbench sim-meter ...`.
    pub args_prefix: Vec<String>,
    /// The meter's "flash" (NV file), its PTY link and its device log.
    pub state_dir: PathBuf,
    /// OMA object definitions (fixtures/objects).
    pub objects_dir: PathBuf,
    pub seed: u64,
}

impl VirtualMeterSpec {
    /// Where the meter publishes its modem's serial port: `<state_dir>/modem.pty`.
    pub fn pty_path(&self) -> PathBuf {
        self.state_dir.join(PTY_LINK_NAME)
    }

    /// Where the meter's stdout/stderr are appended: `<state_dir>/device.log`.
    pub fn device_log_path(&self) -> PathBuf {
        self.state_dir.join(DEVICE_LOG_NAME)
    }

    /// The full argument list after the program, for the default device.
    pub fn command_args(&self) -> Vec<String> {
        self.command_args_for(&DeviceOptions::default())
    }

    /// The full argument list after the program, for the device `device`.
    pub fn command_args_for(&self, device: &DeviceOptions) -> Vec<String> {
        let meter = crate::args::MeterArgs {
            state_dir: self.state_dir.clone(),
            objects_dir: self.objects_dir.clone(),
            pty_link: Some(self.pty_path()),
            seed: self.seed,
            serial: None,
            exit_with_parent: true,
            exit_with_pid: None,
            device: device.clone(),
            factory: Default::default(),
        };
        self.args_prefix
            .iter()
            .cloned()
            .chain(meter.to_args())
            .collect()
    }
}

/// `rig::Power` for the virtual rig.
#[derive(Debug)]
pub struct VirtualPower {
    spec: VirtualMeterSpec,
    /// The device the meter plays (the rig's `power: {kind: virtual, ...}` options).
    device: DeviceOptions,
    child: Option<Child>,
}

impl VirtualPower {
    /// Powers the default virtual meter.
    pub fn new(spec: VirtualMeterSpec) -> Self {
        VirtualPower::for_device(spec, DeviceOptions::default())
    }

    /// Powers a virtual meter that plays `device`.
    pub fn for_device(spec: VirtualMeterSpec, device: DeviceOptions) -> Self {
        VirtualPower {
            spec,
            device,
            child: None,
        }
    }

    pub fn spec(&self) -> &VirtualMeterSpec {
        &self.spec
    }

    /// The meter process id while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        if rig::Power::is_on(self) {
            self.child.as_ref().map(Child::id)
        } else {
            None
        }
    }

    fn err(&self, message: String) -> RigError {
        RigError::Driver {
            driver: DRIVER.to_owned(),
            message,
        }
    }

    /// The last lines of the device log, for error messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.spec.device_log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(5)..];
        if tail.is_empty() {
            "(device log empty)".to_owned()
        } else {
            tail.join(" | ")
        }
    }

    /// Kills and reaps the process, if any.
    fn kill(&mut self) -> Result<(), RigError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        // kill() on an already exited (unreaped) child is fine; an error means it is gone.
        if let Err(e) = child.kill() {
            tracing::debug!(pid, error = %e, "kill");
        }
        child
            .wait()
            .map_err(|e| self.err(format!("reaping meter process {pid}: {e}")))?;
        tracing::info!(pid, "virtual meter powered off");
        Ok(())
    }

    fn remove_link(&self) {
        let _ = fs::remove_file(self.spec.pty_path());
    }
}

impl rig::Power for VirtualPower {
    /// Starts the meter and returns once its modem port is published (or the
    /// process died, or [`READY_TIMEOUT`] passed: both errors, with the device log's tail).
    fn on(&mut self) -> Result<(), RigError> {
        if self.is_on() {
            return Ok(());
        }
        self.kill()?;
        let dir = &self.spec.state_dir;
        fs::create_dir_all(dir).map_err(|e| RigError::Io {
            path: dir.clone(),
            source: e,
        })?;
        // A stale link from the previous power-on would point at a dead (or reused) pts.
        self.remove_link();
        let log_path = self.spec.device_log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| RigError::Io {
                path: log_path.clone(),
                source: e,
            })?;
        let log_err = log.try_clone().map_err(|e| RigError::Io {
            path: log_path.clone(),
            source: e,
        })?;
        let args = self.spec.command_args_for(&self.device);
        let child = Command::new(&self.spec.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| self.err(format!("cannot start {}: {e}", self.spec.program.display())))?;
        tracing::info!(pid = child.id(), program = %self.spec.program.display(), "virtual meter powered on");
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let pty = self.spec.pty_path();
        loop {
            if fs::metadata(&pty).is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(self.err(format!(
                    "meter process exited at power-on ({status}); device log {}: {}",
                    log_path.display(),
                    self.log_tail()
                )));
            }
            if Instant::now() >= deadline {
                self.kill()?;
                return Err(self.err(format!(
                    "meter did not publish its modem port {} within {}s; device log: {}",
                    pty.display(),
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap: nothing the meter has not yet written to NV survives.
    fn off(&mut self) -> Result<(), RigError> {
        self.kill()?;
        self.remove_link();
        Ok(())
    }

    fn is_on(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn describe(&self) -> String {
        let command: Vec<String> = std::iter::once(self.spec.program.display().to_string())
            .chain(self.spec.args_prefix.iter().cloned())
            .collect();
        format!(
            "virtual meter process ({}; state {})",
            command.join(" "),
            self.spec.state_dir.display()
        )
    }
}

impl Drop for VirtualPower {
    fn drop(&mut self) {
        // Leave the bench safe: no meter outlives its driver.
        let _ = self.kill();
        if self.child.is_none() {
            self.remove_link();
        }
    }
}
