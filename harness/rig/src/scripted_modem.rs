//! A scripted modem on a real PTY: the faithful stand-in for a vendor modem
//! that no test machine has. It replays a script
//! (`fixtures/modems/replay/<dialect>.yaml`) built from the examples of the
//! modem's manual — for each command line, the lines the manual shows in
//! answer, the URCs that follow after a delay, the manual's error form for
//! anything else — so that the real [`crate::SerialModem`] and a dialect's
//! whole bring-up run against it byte for byte.
//!
//! The thread stops when the modem is dropped or after [`LIFETIME`]: a test
//! that forgets it cannot hang.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde::Deserialize;

use crate::dialect::glob;
use crate::error::RigError;

/// Longest a scripted modem thread lives.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// Poll pause of the modem thread.
const TICK: Duration = Duration::from_millis(2);

/// A replay script (schema of `fixtures/modems/replay/*.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayScript {
    /// The modem family and the manual the answers come from.
    pub modem: String,
    /// Echo at power-on (V.250 §6.2.4: `E1` is the factory default).
    #[serde(default = "yes")]
    pub echo: bool,
    /// For this long after start the modem ignores what it is sent, as a
    /// booting modem does; the harness must keep probing.
    #[serde(default)]
    pub ready_after_ms: u64,
    /// Lines printed once ready (a boot URC), before any command.
    #[serde(default)]
    pub boot: Vec<String>,
    /// The answer to a command line no exchange matches.
    pub unknown: Vec<String>,
    pub exchanges: Vec<Exchange>,
    #[serde(skip)]
    pub source: PathBuf,
}

fn yes() -> bool {
    true
}

/// One command and the modem's reaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// The command line as received (no line ending); `*` matches any text.
    pub command: String,
    /// Lines answered at once, each framed `\r\n<line>\r\n` (V.250 §5.7.1).
    pub answer: Vec<String>,
    /// Echo from now on (`ATE0` -> false).
    #[serde(default)]
    pub echo: Option<bool>,
    /// Unsolicited lines printed later.
    #[serde(default)]
    pub urcs: Vec<DelayedLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayedLine {
    pub after_ms: u64,
    pub line: String,
}

impl ReplayScript {
    pub fn load(path: &Path) -> Result<ReplayScript, RigError> {
        let mut s: ReplayScript = crate::yaml::load(path)?;
        s.source = path.to_path_buf();
        Ok(s)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<ReplayScript, RigError> {
        let mut s: ReplayScript = crate::yaml::parse(text, origin)?;
        s.source = origin.to_path_buf();
        Ok(s)
    }

    /// The first exchange whose pattern matches `line`.
    pub fn exchange(&self, line: &str) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| glob(&e.command, line))
    }
}

fn framed(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("\r\n{l}\r\n").into_bytes())
        .collect()
}

/// A [`ReplayScript`] answering on the master side of a PTY pair; open
/// [`ScriptedModem::path`] as the modem's port.
pub struct ScriptedModem {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<u8>>>,
    inject: Arc<Mutex<VecDeque<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
    _slave: OwnedFd,
}

impl ScriptedModem {
    pub fn start(script: ReplayScript) -> Result<ScriptedModem, RigError> {
        let driver = |message: String| RigError::Driver {
            driver: format!("scripted modem ({})", script.source.display()),
            message,
        };
        let pty = nix::pty::openpty(None, None).map_err(|e| driver(format!("openpty: {e}")))?;
        let path = nix::unistd::ttyname(&pty.slave).map_err(|e| driver(format!("ttyname: {e}")))?;
        // Raw mode on the slave: no echo or CR/LF rewriting by the tty layer,
        // so bytes cross exactly as a UART carries them.
        let mut t = nix::sys::termios::tcgetattr(&pty.slave)
            .map_err(|e| driver(format!("tcgetattr: {e}")))?;
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t)
            .map_err(|e| driver(format!("tcsetattr: {e}")))?;
        let fd = pty.master.as_raw_fd();
        let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| driver(format!("fcntl: {e}")))?;
        fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .map_err(|e| driver(format!("fcntl: {e}")))?;
        let master = File::from(pty.master);
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let inject = Arc::new(Mutex::new(VecDeque::new()));
        let thread = {
            let stop = stop.clone();
            let received = received.clone();
            let inject = inject.clone();
            std::thread::spawn(move || run(script, master, &stop, &received, &inject))
        };
        Ok(ScriptedModem {
            path,
            stop,
            received,
            inject,
            thread: Some(thread),
            _slave: pty.slave,
        })
    }

    /// Prints raw bytes now, unprompted (a URC a test times itself).
    pub fn inject(&self, bytes: &[u8]) {
        self.inject
            .lock()
            .expect("inject queue")
            .push_back(bytes.to_vec());
    }

    /// Every byte the modem received so far, line endings included.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().expect("received bytes").clone()
    }

    /// Stops the modem and returns every byte it received.
    pub fn finish(mut self) -> Vec<u8> {
        self.halt();
        self.received()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ScriptedModem {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(
    script: ReplayScript,
    mut master: File,
    stop: &AtomicBool,
    received: &Mutex<Vec<u8>>,
    inject: &Mutex<VecDeque<Vec<u8>>>,
) {
    let start = Instant::now();
    let ready_at = start + Duration::from_millis(script.ready_after_ms);
    let mut booted = false;
    let mut echo = script.echo;
    let mut line = Vec::new();
    let mut pending: Vec<(Instant, String)> = Vec::new();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < LIFETIME {
        let now = Instant::now();
        let ready = now >= ready_at;
        if ready && !booted {
            booted = true;
            let _ = master.write_all(&framed(&script.boot));
        }
        while let Some(bytes) = inject.lock().expect("inject queue").pop_front() {
            let _ = master.write_all(&bytes);
        }
        pending.sort_by_key(|(due, _)| *due);
        while pending.first().is_some_and(|(due, _)| *due <= now) {
            let (_, urc) = pending.remove(0);
            let _ = master.write_all(&framed(&[urc]));
        }
        let mut buf = [0u8; 256];
        let n = match master.read(&mut buf) {
            Ok(n) if n > 0 => n,
            // EIO: no slave open right now (between a close and an open).
            _ => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        received
            .lock()
            .expect("received bytes")
            .extend_from_slice(&buf[..n]);
        if !ready {
            // Booting: input is lost, as on a modem not yet listening.
            continue;
        }
        for &b in &buf[..n] {
            match b {
                b'\r' => {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    if echo {
                        let _ = master.write_all(format!("{text}\r").as_bytes());
                    }
                    match script.exchange(&text) {
                        Some(ex) => {
                            let _ = master.write_all(&framed(&ex.answer));
                            if let Some(e) = ex.echo {
                                echo = e;
                            }
                            let now = Instant::now();
                            pending.extend(ex.urcs.iter().map(|u| {
                                (now + Duration::from_millis(u.after_ms), u.line.clone())
                            }));
                        }
                        None => {
                            let _ = master.write_all(&framed(&script.unknown));
                        }
                    }
                }
                // LF after CR (a `\r\n` line ending) ends nothing more.
                b'\n' => {}
                _ => line.push(b),
            }
        }
        let _ = master.flush();
    }
}
