//! Lab commands run with `sh -c`: a relay's CLI for power, a network
//! emulator's CLI for the network. Each runs in its own process group and is
//! killed, with its children, when it overruns its timeout.
//!
//! A command may be given extra environment variables: the way a secret (a
//! device's PSK key) reaches a command without being on its command line,
//! which any user of the machine can read in `ps` and which logs quote.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

/// How much of a command's stderr an error quotes.
const STDERR_LIMIT: usize = 2048;

/// What a finished command left behind.
pub(crate) struct Finished {
    pub success: bool,
    /// "succeeded", "exited with status 3", "was killed by signal 9".
    pub outcome: String,
    pub stderr: String,
}

/// Why a command did not finish.
pub(crate) enum NotFinished {
    /// `sh` could not be started (the message says why).
    Spawn(String),
    /// It ran past the timeout and was killed.
    Timeout,
}

/// Runs `sh -c command`, waiting at most `timeout`.
pub(crate) fn run(command: &str, timeout: Duration) -> Result<Finished, NotFinished> {
    run_with_env(command, timeout, &[])
}

/// Runs `sh -c command` with `env` added to its environment, waiting at most
/// `timeout`. Only the variables' names are logged.
pub(crate) fn run_with_env(
    command: &str,
    timeout: Duration,
    env: &[(&str, &str)],
) -> Result<Finished, NotFinished> {
    let names: Vec<&str> = env.iter().map(|(n, _)| *n).collect();
    debug!(command, env = ?names, "lab command");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| NotFinished::Spawn(format!("could not start: {e}")))?;

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
                warn!(command, "lab command timed out; killed");
                return Err(NotFinished::Timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(NotFinished::Spawn(format!("could not wait for it: {e}"))),
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
