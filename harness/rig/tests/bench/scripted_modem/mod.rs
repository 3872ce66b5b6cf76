//! A scripted modem on the master side of a real PTY pair: the faithful
//! stand-in for a serial modem. The test gives a function from each command
//! line received to the raw bytes to answer; the thread ends when dropped or
//! after a bounded time.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Longest a scripted modem thread lives (tests are bounded).
const LIFETIME: Duration = Duration::from_secs(30);

pub type Script = Box<dyn FnMut(&str) -> Vec<u8> + Send>;

pub struct ScriptedModem {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
    /// Raw bytes to send unprompted.
    inject: mpsc::Sender<Vec<u8>>,
    _slave: OwnedFd,
}

impl ScriptedModem {
    pub fn start(mut script: Script) -> ScriptedModem {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
        let flags = fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL).unwrap();
        fcntl(
            pty.master.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .unwrap();
        let mut master = File::from(pty.master);
        let stop = Arc::new(AtomicBool::new(false));
        let (inject, injected) = mpsc::channel::<Vec<u8>>();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut received = Vec::new();
            let mut line = Vec::new();
            let end = Instant::now() + LIFETIME;
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                while let Ok(bytes) = injected.try_recv() {
                    let _ = master.write_all(&bytes);
                }
                let mut buf = [0u8; 256];
                match master.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(2)),
                    Ok(n) => {
                        for &b in &buf[..n] {
                            if b == b'\r' {
                                let text = String::from_utf8_lossy(&line).into_owned();
                                line.clear();
                                let answer = script(&text);
                                received.push(text);
                                let _ = master.write_all(&answer);
                            } else if b != b'\n' {
                                line.push(b);
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    // EIO: no slave open right now (between closes and opens).
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            received
        });
        ScriptedModem {
            path,
            stop,
            thread: Some(thread),
            inject,
            _slave: pty.slave,
        }
    }

    /// Sends raw bytes to the harness side, unprompted (a URC).
    pub fn inject(&self, bytes: &[u8]) {
        self.inject.send(bytes.to_vec()).unwrap();
    }

    /// Stops the thread and returns every command line it received.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for ScriptedModem {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `\r\n<line>\r\n` for each line: V.250 response framing.
pub fn framed(lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("\r\n{l}\r\n").into_bytes())
        .collect()
}
