//! The AT engine: sends a command line, frames what comes back into lines and
//! sorts them into echo, information response, final result code and
//! unsolicited result codes (ITU-T V.250 §5.7; 3GPP TS 27.007 §9.2).
//!
//! It is generic over any `Read + Write` byte stream whose reads return after
//! a short timeout (a serial port opened with a timeout, a PTY, an in-memory
//! fake), so a command's deadline is checked between reads. Keep the
//! stream's read timeout short (tens of milliseconds): before each command the
//! engine reads until the line is quiet, which costs one read timeout.
//!
//! The engine keeps no record of what it saw: it publishes each line as an
//! [`AtEvent`] to its taps ([`AtEngine::add_tap`]), and the transcript is
//! one of them ([`crate::wrap::TranscriptRecorder`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::tap::{AtEvent, AtTaps, SharedTap};
use super::AtResponse;
use crate::dialect::{Dialect, LineEnding};
use crate::error::RigError;

/// Lines longer than this are cut (a modem babbling binary must not grow memory).
pub const DEFAULT_MAX_LINE: usize = 4096;
/// How many recent lines an error quotes.
const RECENT_LINES: usize = 8;
/// Reads per quiet-check before a command; bounds a modem that never stops talking.
const MAX_DRAIN_READS: usize = 64;
/// Back-off when a read returns nothing at once (non-blocking or EOF streams).
const IDLE_SLEEP: Duration = Duration::from_millis(5);

/// AT command engine over a byte stream `S`.
pub struct AtEngine<S> {
    stream: S,
    port: String,
    dialect: Dialect,
    taps: AtTaps,
    urcs: VecDeque<String>,
    /// Bytes after the last line end.
    rx: Vec<u8>,
    /// An overlong line was cut; drop bytes until the next line end.
    discarding: bool,
    /// Framed lines not yet looked at.
    lines: VecDeque<String>,
    recent: VecDeque<String>,
    max_line: usize,
    /// What ends each command line sent.
    line_ending: LineEnding,
}

impl<S: Read + Write> AtEngine<S> {
    /// `port` names the stream in errors and logs (a device path).
    pub fn new(stream: S, port: impl Into<String>, dialect: Dialect) -> Self {
        Self::with_taps(stream, port, dialect, AtTaps::default())
    }

    /// Publishes to `taps` from the start (a port reopened after a power
    /// cycle keeps its listeners).
    pub fn with_taps(stream: S, port: impl Into<String>, dialect: Dialect, taps: AtTaps) -> Self {
        AtEngine {
            stream,
            port: port.into(),
            line_ending: dialect.line_ending,
            dialect,
            taps,
            urcs: VecDeque::new(),
            rx: Vec::new(),
            discarding: false,
            lines: VecDeque::new(),
            recent: VecDeque::new(),
            max_line: DEFAULT_MAX_LINE,
        }
    }

    /// Lines longer than `max` bytes are cut there (minimum 16).
    pub fn set_max_line_len(&mut self, max: usize) {
        self.max_line = max.max(16);
    }

    /// Ends command lines with `ending` instead of the dialect's (a rig's
    /// `modem.line_ending`).
    pub fn set_line_ending(&mut self, ending: LineEnding) {
        self.line_ending = ending;
    }

    pub fn port(&self) -> &str {
        &self.port
    }

    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// Publishes what crosses the line from now on to `tap` as well.
    pub fn add_tap(&mut self, tap: SharedTap) {
        self.taps.add(tap);
    }

    /// Publishes a note (port opened, power cut...) to the taps.
    pub fn note(&mut self, text: impl AsRef<str>) {
        self.taps.publish(AtEvent::Note(text.as_ref()));
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Ends the engine, returning the URCs not yet taken.
    pub fn into_urcs(mut self) -> Vec<String> {
        self.file_buffered_as_urcs();
        self.urcs.into_iter().collect()
    }

    /// Unsolicited result codes received since the last call.
    pub fn take_urcs(&mut self) -> Vec<String> {
        self.file_buffered_as_urcs();
        self.urcs.drain(..).collect()
    }

    /// The URCs waiting to be taken, without taking them.
    pub fn pending_urcs(&self) -> impl Iterator<Item = &str> {
        self.urcs.iter().map(String::as_str)
    }

    /// The last lines received (for error messages).
    pub fn recent_lines(&self) -> Vec<String> {
        self.recent.iter().cloned().collect()
    }

    /// Reads until the line is quiet and files every complete line as a URC:
    /// anything arriving while no command runs is unsolicited.
    pub fn poll(&mut self) -> Result<(), RigError> {
        for _ in 0..MAX_DRAIN_READS {
            if !self.read_some(None)? {
                break;
            }
        }
        self.file_buffered_as_urcs();
        Ok(())
    }

    /// Sends `line` (terminated with the line ending, `\r` by default) and collects the response until a
    /// final result code. The command's echo is removed; URCs arriving
    /// meanwhile are kept apart ([`AtEngine::take_urcs`]). A line starting
    /// with a URC prefix that answers this command (`AT+CEREG?` ->
    /// `+CEREG: 0,1`) is a response line, not a URC.
    pub fn command(&mut self, line: &str, timeout: Duration) -> Result<AtResponse, RigError> {
        self.command_shown(line, line, timeout)
    }

    /// Like [`AtEngine::command`], but `shown` stands for `line` (and for
    /// its echo) everywhere it would be seen: tap events, logs, errors
    /// and the returned [`AtResponse::command`]. For lines carrying secrets.
    pub fn command_shown(
        &mut self,
        line: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<AtResponse, RigError> {
        let line = line.trim();
        let shown = shown.trim();
        if line.is_empty() || line.chars().any(|c| c.is_control()) {
            return Err(RigError::BadCommand {
                port: self.port.clone(),
                command: shown.into(),
                message: "an AT command is one non-empty line without control characters".into(),
            });
        }
        self.poll()?;
        debug!(port = %self.port, command = shown, "AT send");
        self.taps.publish(AtEvent::Sent(shown));
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(self.line_ending.bytes());
        self.stream
            .write_all(&bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|source| RigError::Serial {
                port: self.port.clone(),
                command: Some(shown.into()),
                source,
            })?;

        let answer_prefix = answer_prefix(line);
        let deadline = Instant::now() + timeout;
        let mut info = Vec::new();
        let mut echo_possible = true;
        loop {
            while let Some(l) = self.lines.pop_front() {
                if echo_possible && l == line {
                    echo_possible = false;
                    if shown != line {
                        // The echo carries the secret too: keep it out of errors.
                        if let Some(r) = self.recent.iter_mut().rev().find(|r| **r == l) {
                            *r = shown.to_owned();
                        }
                    }
                    self.taps.publish(AtEvent::Echo(shown));
                    continue;
                }
                if let Some(result) = self.dialect.is_final(&l) {
                    debug!(port = %self.port, command = shown, result = %result, "AT final");
                    self.taps.publish(AtEvent::Final(&l));
                    // Anything after the final result belongs to no command.
                    self.file_buffered_as_urcs();
                    return Ok(AtResponse {
                        command: shown.into(),
                        lines: info,
                        result,
                    });
                }
                let answers = answer_prefix.is_some_and(|p| answers_command(&l, p));
                if self.dialect.is_urc(&l) && !answers {
                    self.file_urc(l);
                    continue;
                }
                echo_possible = false;
                self.taps.publish(AtEvent::Response(&l));
                info.push(l);
            }
            let now = Instant::now();
            if now >= deadline {
                let err = RigError::Timeout {
                    port: self.port.clone(),
                    command: shown.into(),
                    waited: timeout,
                    last_lines: self.recent_lines(),
                    partial: String::from_utf8_lossy(&self.rx).into_owned(),
                };
                warn!("{err}");
                self.taps.publish(AtEvent::Timeout {
                    command: shown,
                    waited: timeout,
                });
                return Err(err);
            }
            self.read_some(Some(shown))?;
        }
    }

    /// Waits until a line starting with `prefix` arrives and returns it.
    /// URCs already received are searched first (oldest first), so a URC
    /// that came during an earlier command is not missed; other lines that
    /// arrive meanwhile are kept as URCs.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, RigError> {
        self.file_buffered_as_urcs();
        if let Some(i) = self.urcs.iter().position(|u| u.starts_with(prefix)) {
            return Ok(self.urcs.remove(i).expect("index from position"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(l) = self.lines.pop_front() {
                if l.starts_with(prefix) {
                    self.taps.publish(if self.dialect.is_urc(&l) {
                        AtEvent::Urc(&l)
                    } else {
                        AtEvent::Response(&l)
                    });
                    return Ok(l);
                }
                self.file_urc(l);
            }
            if Instant::now() >= deadline {
                return Err(RigError::WaitTimeout {
                    port: self.port.clone(),
                    prefix: prefix.into(),
                    waited: timeout,
                    last_lines: self.recent_lines(),
                });
            }
            self.read_some(None)?;
        }
    }

    fn file_urc(&mut self, l: String) {
        debug!(port = %self.port, urc = %l, "AT URC");
        self.taps.publish(AtEvent::Urc(&l));
        self.urcs.push_back(l);
    }

    fn file_buffered_as_urcs(&mut self) {
        while let Some(l) = self.lines.pop_front() {
            self.file_urc(l);
        }
    }

    /// One read; frames what arrived. Returns whether any byte arrived.
    fn read_some(&mut self, command: Option<&str>) -> Result<bool, RigError> {
        let mut buf = [0u8; 512];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                std::thread::sleep(IDLE_SLEEP);
                Ok(false)
            }
            Ok(n) => {
                self.frame(&buf[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => Ok(false),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(IDLE_SLEEP);
                Ok(false)
            }
            Err(source) => Err(RigError::Serial {
                port: self.port.clone(),
                command: command.map(str::to_owned),
                source,
            }),
        }
    }

    /// Splits bytes into lines at CR or LF (empty lines dropped: responses
    /// are framed `\r\n<text>\r\n`, V.250 §5.7.1).
    fn frame(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                    self.rx.clear();
                } else if !self.rx.is_empty() {
                    self.emit_line(false);
                }
                continue;
            }
            if self.discarding {
                continue;
            }
            self.rx.push(b);
            if self.rx.len() >= self.max_line {
                self.emit_line(true);
                self.discarding = true;
            }
        }
    }

    fn emit_line(&mut self, cut: bool) {
        let raw = std::mem::take(&mut self.rx);
        let text = String::from_utf8_lossy(&raw);
        if let Cow::Owned(_) = text {
            warn!(port = %self.port, bytes = %escape_bytes(&raw), "non-UTF-8 bytes on the serial line");
            self.note(format!("non-UTF-8 bytes received: {}", escape_bytes(&raw)));
        }
        if cut {
            warn!(port = %self.port, limit = self.max_line, "overlong line cut");
            self.note(format!(
                "line longer than {} bytes cut there",
                self.max_line
            ));
        }
        let clean: String = text
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        let clean = clean.trim();
        if clean.is_empty() {
            return;
        }
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(clean.to_owned());
        self.lines.push_back(clean.to_owned());
    }
}

/// `AT+CEREG?` -> `+CEREG`: the prefix of the command's own response lines.
fn answer_prefix(command: &str) -> Option<&str> {
    let rest = command.get(2..).filter(|_| {
        command
            .get(..2)
            .is_some_and(|a| a.eq_ignore_ascii_case("AT"))
    })?;
    if !rest.starts_with(['+', '%', '^', '$', '#']) {
        return None;
    }
    let end = rest.find(['=', '?', ';']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|p| p.len() > 1)
}

fn answers_command(line: &str, prefix: &str) -> bool {
    line.len() > prefix.len()
        && line.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && line.as_bytes()[prefix.len()] == b':'
}

/// Bytes as text with non-printables escaped (`\xff`), for logs.
fn escape_bytes(raw: &[u8]) -> String {
    raw.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_prefix_is_the_command_name() {
        assert_eq!(answer_prefix("AT+CEREG?"), Some("+CEREG"));
        assert_eq!(answer_prefix("at+cfun=1"), Some("+cfun"));
        assert_eq!(answer_prefix("AT+CGMI"), Some("+CGMI"));
        assert_eq!(answer_prefix("ATE0"), None);
        assert_eq!(answer_prefix("AT"), None);
        assert_eq!(answer_prefix("A"), None);
        assert_eq!(answer_prefix("é"), None);
        assert!(answers_command("+CEREG: 0,1", "+CEREG"));
        assert!(!answers_command("+CEREGX: 1", "+CEREG"));
        assert!(!answers_command("+CEREG", "+CEREG"));
    }
}
