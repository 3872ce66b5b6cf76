//! `SerialModem`: the [`Modem`] trait over a serial port (a USB modem's
//! `/dev/ttyUSBn`, or the virtual meter's PTY), using the [`AtEngine`].
//!
//! The port is chosen by a [`PortSelector`] resolved at every open, because
//! a USB modem re-enumerates (and may get another ttyACM number) after each
//! power-on; flow control and line ending come from the rig's `modem:` part.
//!
//! It keeps no transcript: what crosses the line goes to the taps attached
//! ([`Modem::attach_tap`]), which outlive each opening of the port.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serialport::SerialPort;
use tracing::{debug, info};

use crate::at::{AtEngine, AtResponse, AtTaps, SharedTap};
use crate::dialect::{Dialect, LineEnding};
use crate::error::RigError;
use crate::model::ModemSpec;
use crate::port::PortSelector;
use crate::traits::Modem;

/// Read timeout of the port: the engine's polling granularity.
const READ_TIMEOUT: Duration = Duration::from_millis(20);
/// Wait between attempts to open a port that does not exist yet.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long one `AT` probe waits during [`Modem::open`].
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Flow control on the serial line (a rig's `modem.flow_control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    #[default]
    None,
    /// RTS/CTS: most USB-less modem UARTs want it at high baud rates.
    Hardware,
    /// XON/XOFF.
    Software,
}

impl From<FlowControl> for serialport::FlowControl {
    fn from(f: FlowControl) -> Self {
        match f {
            FlowControl::None => serialport::FlowControl::None,
            FlowControl::Hardware => serialport::FlowControl::Hardware,
            FlowControl::Software => serialport::FlowControl::Software,
        }
    }
}

/// How the line is driven beyond its baud rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SerialOptions {
    pub flow_control: FlowControl,
    /// Overrides the dialect's line ending.
    pub line_ending: Option<LineEnding>,
}

/// A modem on a serial line.
pub struct SerialModem {
    path: PathBuf,
    selector: PortSelector,
    baud: u32,
    options: SerialOptions,
    dialect: Dialect,
    engine: Option<AtEngine<Box<dyn SerialPort>>>,
    /// Given to each engine, so that a recording spans power cycles.
    taps: AtTaps,
    urcs: Vec<String>,
}

impl SerialModem {
    /// A modem at `path` (for the virtual rig, the PTY path its power
    /// driver reports). Nothing is opened until [`Modem::open`].
    /// `path` may also select a USB device by serial number
    /// (`usb:<serial>[:<interface>]`, see [`PortSelector::parse`]).
    pub fn new(path: impl Into<PathBuf>, baud: u32, dialect: Dialect) -> Self {
        let path = path.into();
        SerialModem {
            selector: PortSelector::parse(&path),
            path,
            baud,
            options: SerialOptions::default(),
            dialect,
            engine: None,
            taps: AtTaps::default(),
            urcs: Vec::new(),
        }
    }

    /// A modem as a rig file's `modem:` part describes it; `port` is the
    /// path or selection to use (for `port: virtual`, the PTY's path).
    pub fn from_spec(spec: &ModemSpec, port: impl Into<PathBuf>, dialect: Dialect) -> Self {
        SerialModem::new(port, spec.baud, dialect).with_options(SerialOptions {
            flow_control: spec.flow_control,
            line_ending: spec.line_ending,
        })
    }

    pub fn with_options(mut self, options: SerialOptions) -> Self {
        self.options = options;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Points at another port (the virtual meter's PTY path changes per boot).
    /// Closes the current one.
    pub fn set_path(&mut self, path: impl Into<PathBuf>) {
        self.close();
        self.path = path.into();
        self.selector = PortSelector::parse(&self.path);
    }

    pub fn is_open(&self) -> bool {
        self.engine.is_some()
    }

    fn port_name(&self) -> String {
        self.path.display().to_string()
    }

    fn engine(&mut self, command: &str) -> Result<&mut AtEngine<Box<dyn SerialPort>>, RigError> {
        let port = self.port_name();
        self.engine.as_mut().ok_or(RigError::PortClosed {
            port,
            command: command.into(),
        })
    }

    /// Resolves the selection and opens the device; the error says which
    /// step failed. Returns the device path opened.
    fn open_port(&self) -> Result<(Box<dyn SerialPort>, PathBuf), String> {
        let device = self.selector.resolve().map_err(|e| e.to_string())?;
        let port = serialport::new(device.to_string_lossy(), self.baud)
            .timeout(READ_TIMEOUT)
            .flow_control(self.options.flow_control.into())
            .open()
            .map_err(|e| e.to_string())?;
        Ok((port, device))
    }
}

impl Modem for SerialModem {
    /// Retries until the port exists and the modem answers `AT` with OK or
    /// prints the dialect's boot URC, within the dialect's `boot_timeout`.
    /// The boot URC, if seen, stays in the URC queue.
    fn open(&mut self) -> Result<(), RigError> {
        self.close();
        let port = self.port_name();
        let boot_timeout = self.dialect.boot_timeout;
        let boot_urc = self.dialect.boot_urc.clone();
        let deadline = Instant::now() + boot_timeout;
        let mut last_open_error = String::new();
        let mut last_lines = Vec::new();
        let mut opened = false;
        while Instant::now() < deadline {
            let (stream, device) = match self.open_port() {
                Ok(s) => s,
                Err(e) => {
                    debug!(port = %port, error = %e, "serial port not ready");
                    last_open_error = e;
                    std::thread::sleep(RETRY_PAUSE);
                    continue;
                }
            };
            opened = true;
            let mut engine = AtEngine::with_taps(
                stream,
                port.clone(),
                self.dialect.clone(),
                self.taps.clone(),
            );
            if let Some(ending) = self.options.line_ending {
                engine.set_line_ending(ending);
            }
            // A stable link or a serial number names the device; the note
            // says which tty it was this time.
            let real = std::fs::canonicalize(&device).unwrap_or(device);
            let shown = if real.as_path() == Path::new(&port) {
                port.clone()
            } else {
                format!("{port} ({})", real.display())
            };
            engine.note(format!("opened {shown} at {} baud", self.baud));
            while Instant::now() < deadline {
                let probe = engine.command("AT", PROBE_TIMEOUT);
                let booted = boot_urc
                    .as_deref()
                    .is_some_and(|b| engine.pending_urcs().any(|u| u.starts_with(b)));
                match probe {
                    Ok(r) if r.is_ok() => {
                        info!(port = %port, "modem ready");
                        self.engine = Some(engine);
                        return Ok(());
                    }
                    _ if booted => {
                        info!(port = %port, "modem booted");
                        self.engine = Some(engine);
                        return Ok(());
                    }
                    Ok(_) | Err(RigError::Timeout { .. }) => {}
                    Err(e) => {
                        // The port went away (modem rebooting): reopen it.
                        debug!(port = %port, error = %e, "probe failed; reopening");
                        last_open_error = e.to_string();
                        std::thread::sleep(RETRY_PAUSE);
                        break;
                    }
                }
            }
            last_lines = engine.recent_lines();
            self.urcs.extend(engine.into_urcs());
        }
        if !opened {
            return Err(RigError::Open {
                port,
                message: format!(
                    "still failing after {}: {last_open_error}",
                    crate::duration::format_duration(boot_timeout)
                ),
            });
        }
        Err(RigError::NotReady {
            port,
            boot_urc: boot_urc.unwrap_or_else(|| "(no boot URC in dialect)".into()),
            waited: boot_timeout,
            last_lines,
        })
    }

    fn close(&mut self) {
        if let Some(mut engine) = self.engine.take() {
            engine.note(format!("closed {}", self.path.display()));
            self.urcs.extend(engine.into_urcs());
        }
    }

    fn command(&mut self, line: &str, timeout: Duration) -> Result<AtResponse, RigError> {
        self.engine(line)?.command(line, timeout)
    }

    fn command_shown(
        &mut self,
        line: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<AtResponse, RigError> {
        self.engine(shown)?.command_shown(line, shown, timeout)
    }

    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, RigError> {
        if let Some(i) = self.urcs.iter().position(|u| u.starts_with(prefix)) {
            return Ok(self.urcs.remove(i));
        }
        self.engine(prefix)?.wait_for_line(prefix, timeout)
    }

    fn take_urcs(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.urcs);
        if let Some(e) = self.engine.as_mut() {
            out.extend(e.take_urcs());
        }
        out
    }

    fn attach_tap(&mut self, tap: SharedTap) -> bool {
        if let Some(e) = self.engine.as_mut() {
            e.add_tap(tap.clone());
        }
        self.taps.add(tap);
        true
    }

    fn dialect(&self) -> &Dialect {
        &self.dialect
    }
}

impl Drop for SerialModem {
    fn drop(&mut self) {
        self.close();
    }
}
