//! The one error type of the rig crate. Each variant carries what a lab
//! engineer needs to act without re-running: which port, which AT line was
//! sent, what came back last, and file:line:column for YAML mistakes.

use std::path::PathBuf;
use std::time::Duration;

use crate::at::FinalResult;

/// Anything the bench could not do. These are *errors* (bench or harness
/// failed its part), never *failures* (device wrong): a modem answering
/// `ERROR` is an `Ok(AtResponse)`, not a `RigError`, unless the caller asks
/// for [`crate::AtResponse::expect_ok`].
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// A rig or dialect file does not match its schema (or is not YAML).
    #[error("{}:{line}:{column}: {message}{}", file.display(), indent_snippet(snippet))]
    File {
        file: PathBuf,
        line: u64,
        column: u64,
        /// What was wrong and what was expected there.
        message: String,
        /// The offending line and a caret under the column (may be empty).
        snippet: String,
    },

    /// A rig or dialect file whose content is valid YAML but says something
    /// impossible (an unknown command in `bring_up`, a rig name that is no
    /// file name); `field` names where.
    #[error("{}: {field}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `fixtures/modems/<name>.yaml` does not exist.
    #[error("no modem dialect `{name}`: looked for {}", looked_at.display())]
    DialectNotFound { name: String, looked_at: PathBuf },

    /// A dialect has no command of that name.
    #[error("dialect `{dialect}` has no command `{command}` (it has: {})", known.join(", "))]
    UnknownCommand {
        dialect: String,
        command: String,
        known: Vec<String>,
    },

    /// A command template needs a `{placeholder}` the caller did not give,
    /// or the template itself is malformed.
    #[error("dialect `{dialect}`, command `{command}` (`{template}`): {message}")]
    Template {
        dialect: String,
        command: String,
        template: String,
        message: String,
    },

    /// The serial port could not be opened or configured.
    #[error("{port}: cannot open serial port: {message}")]
    Open { port: String, message: String },

    /// The modem did not answer `AT` nor print its boot URC in time.
    #[error("{port}: modem not ready within {}: no OK to `AT` and no `{boot_urc}`; last lines received: {}",
        crate::duration::format_duration(*waited), quote_lines(last_lines))]
    NotReady {
        port: String,
        boot_urc: String,
        waited: Duration,
        last_lines: Vec<String>,
    },

    /// A command got no final result code in time.
    #[error("{port}: no final result for `{command}` within {}; last lines received: {}; unterminated bytes: {partial:?}",
        crate::duration::format_duration(*waited), quote_lines(last_lines))]
    Timeout {
        port: String,
        command: String,
        waited: Duration,
        last_lines: Vec<String>,
        /// Bytes received after the last line end (lossy UTF-8).
        partial: String,
    },

    /// No line with the awaited prefix arrived in time.
    #[error("{port}: no line starting with `{prefix}` within {}; last lines received: {}",
        crate::duration::format_duration(*waited), quote_lines(last_lines))]
    WaitTimeout {
        port: String,
        prefix: String,
        waited: Duration,
        last_lines: Vec<String>,
    },

    /// Reading or writing the port failed (device unplugged, PTY closed).
    #[error("{port}: serial I/O failed{}: {source}", command.as_ref().map(|c| format!(" during `{c}`")).unwrap_or_default())]
    Serial {
        port: String,
        command: Option<String>,
        #[source]
        source: std::io::Error,
    },

    /// The modem is closed (not opened yet, or closed after power-off).
    #[error("{port}: serial port is not open (send `{command}` after open())")]
    PortClosed { port: String, command: String },

    /// A command line that cannot be sent as one AT line.
    #[error("{port}: refusing to send {command:?}: {message}")]
    BadCommand {
        port: String,
        command: String,
        message: String,
    },

    /// The modem answered with something other than OK where OK was required.
    #[error(
        "{port}: `{command}` ended with {result}; lines: {}",
        quote_lines(lines)
    )]
    CommandFailed {
        port: String,
        command: String,
        result: FinalResult,
        lines: Vec<String>,
    },

    /// A power shell command failed or exited non-zero.
    #[error("power command `{command}` {outcome}; stderr: {stderr:?}")]
    PowerCommand {
        command: String,
        outcome: String,
        stderr: String,
    },

    /// A power shell command did not finish in time (it was killed).
    #[error("power command `{command}` did not finish within {}; killed", crate::duration::format_duration(*waited))]
    PowerTimeout { command: String, waited: Duration },

    /// A network control shell command failed or exited non-zero.
    #[error("network command `{command}` {outcome}; stderr: {stderr:?}")]
    NetworkCommand {
        command: String,
        outcome: String,
        stderr: String,
    },

    /// A network control shell command did not finish in time (it was killed).
    #[error("network command `{command}` did not finish within {}; killed", crate::duration::format_duration(*waited))]
    NetworkTimeout { command: String, waited: Duration },

    /// Another job holds this rig.
    #[error("rig `{rig}` is in use by another job (lock {} held{})", path.display(), holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
    Locked {
        rig: String,
        path: PathBuf,
        /// What the holder wrote into the lock file (pid, start time), if readable.
        holder: Option<String>,
    },

    /// A driver outside this crate (the virtual meter's power and debug
    /// drivers, later probe-rs) failed; `driver` says which.
    #[error("{driver}: {message}")]
    Driver { driver: String, message: String },

    /// An SCPI supply could not do its part; names its address and the command.
    #[error(transparent)]
    Supply(#[from] crate::power::SupplyError),

    /// The debug port cannot give a fact a step asked for (not mapped on
    /// this rig, or not readable as that fact): the step must not pass.
    #[error("{port} cannot give {fact}: {reason}")]
    FactUnavailable {
        fact: String,
        port: String,
        reason: String,
    },

    /// A step named an action its modem's dialect does not map: a skip.
    #[error(transparent)]
    Unsupported(#[from] crate::action::UnsupportedAction),

    /// An action's answer does not hold its value where the dialect says.
    #[error(
        "dialect `{dialect}`, action `{action}`: {message}; lines: {}",
        quote_lines(lines)
    )]
    Response {
        dialect: String,
        action: String,
        message: String,
        lines: Vec<String>,
    },

    /// No serial port matches a rig's port selection (a USB serial number).
    #[error("no serial port matches {wanted}; ports seen: {}", if seen.is_empty() { "none".to_string() } else { seen.join("; ") })]
    PortNotFound { wanted: String, seen: Vec<String> },
}

fn quote_lines(lines: &[String]) -> String {
    if lines.is_empty() {
        "(none)".into()
    } else {
        lines
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn indent_snippet(snippet: &str) -> String {
    snippet.lines().map(|l| format!("\n    | {l}")).collect()
}
