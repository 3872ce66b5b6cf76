//! The harness end of a virtual meter process, shared by the process test
//! helpers (`bench`, `firmware_support`): how to launch it (its spec) and
//! its AT port (raw PTY, 100 ms read ticks, every wait bounded).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices};
use sim::VirtualMeterSpec;

/// How long the port waits for a line or a command's final result.
pub const LINE_WAIT: Duration = Duration::from_secs(15);

fn objects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects")
}

/// The meter this crate builds, its state in `state`; `seed` makes its
/// tokens and ids reproducible per test.
pub fn spec(state: &Path, seed: u64) -> VirtualMeterSpec {
    VirtualMeterSpec {
        program: PathBuf::from(env!("CARGO_BIN_EXE_virtual-meter")),
        args_prefix: Vec::new(),
        state_dir: state.to_owned(),
        objects_dir: objects_dir(),
        seed,
    }
}

/// The harness end of the modem's serial port.
pub struct Port {
    file: File,
    pending: Vec<u8>,
    /// Every line read so far, URCs included, for failure messages.
    pub seen: Vec<String>,
}

impl Port {
    pub fn open(path: &Path) -> Port {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open PTY link");
        let mut tio = tcgetattr(file.as_fd()).unwrap();
        cfmakeraw(&mut tio);
        tio.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        tio.control_chars[SpecialCharacterIndices::VTIME as usize] = 1;
        tcsetattr(file.as_fd(), SetArg::TCSANOW, &tio).unwrap();
        Port {
            file,
            pending: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Writes `bytes` as they are (no line ending added).
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    /// The next non-empty line, or None at the deadline. A read error (the
    /// meter restarting behind the PTY) is retried until then.
    pub fn line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(pos) = self.pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
                let raw: Vec<u8> = self.pending.drain(..=pos).collect();
                let l = String::from_utf8_lossy(&raw).trim().to_owned();
                if !l.is_empty() {
                    self.seen.push(l.clone());
                    return Some(l);
                }
                continue;
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 256];
            match self.file.read(&mut buf) {
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Waits up to `within` for a line starting with `prefix`.
    pub fn wait_for_within(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while let Some(l) = self.line(deadline) {
            if l.starts_with(prefix) {
                return l;
            }
        }
        panic!(
            "no line starting with {prefix:?} within {within:?}; seen: {:?}",
            self.seen
        );
    }

    pub fn wait_for(&mut self, prefix: &str) -> String {
        self.wait_for_within(prefix, LINE_WAIT)
    }

    /// Sends a command; the answer's lines up to and including the final
    /// result, without the echo and URCs (`+CEREG: <stat>` unsolicited has
    /// no comma; the answer to `AT+CEREG?` has one and is kept).
    pub fn command(&mut self, cmd: &str) -> Vec<String> {
        self.file.write_all(format!("{cmd}\r").as_bytes()).unwrap();
        let deadline = Instant::now() + LINE_WAIT;
        let mut lines = Vec::new();
        while let Some(l) = self.line(deadline) {
            let urc = l.starts_with("+LWM2M:")
                || l == "+SYSSTART"
                || l.starts_with("+MBSWITCH:")
                || (l.starts_with("+CEREG: ") && !l.contains(','));
            if l == cmd || urc {
                continue;
            }
            let done = l == "OK" || l == "ERROR" || l.starts_with("+CME ERROR:");
            lines.push(l);
            if done {
                return lines;
            }
        }
        panic!(
            "no final result for {cmd:?}; got {lines:?}; seen: {:?}",
            self.seen
        );
    }
}
