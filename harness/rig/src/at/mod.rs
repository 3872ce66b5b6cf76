//! AT commands over a byte stream: the engine that frames lines and tells
//! responses, final result codes and URCs apart, the events it publishes to
//! its taps, and the transcript those events make.
//!
//! Framing and result codes follow ITU-T V.250 §5.7 and 3GPP TS 27.007 §9.2.

pub mod engine;
pub mod tap;
pub mod transcript;

use std::fmt;

pub use engine::AtEngine;
pub use tap::{AtEvent, AtTap, AtTaps, SharedTap};
pub use transcript::{Direction, Transcript, TranscriptEntry};

use crate::error::RigError;

/// The final result code that ended a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalResult {
    Ok,
    Error,
    /// `+CME ERROR: <n>` (numeric, `AT+CMEE=1`); 3GPP TS 27.007 §9.2.
    CmeError(u16),
    /// `+CME ERROR: <text>` (verbose, `AT+CMEE=2`).
    CmeErrorText(String),
}

impl fmt::Display for FinalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinalResult::Ok => f.write_str("OK"),
            FinalResult::Error => f.write_str("ERROR"),
            FinalResult::CmeError(n) => write!(f, "+CME ERROR: {n}"),
            FinalResult::CmeErrorText(t) => write!(f, "+CME ERROR: {t}"),
        }
    }
}

/// A command's answer: the information lines (echo and URCs removed) and the
/// final result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtResponse {
    /// The line that was sent (without `\r`).
    pub command: String,
    pub lines: Vec<String>,
    pub result: FinalResult,
}

impl AtResponse {
    pub fn is_ok(&self) -> bool {
        self.result == FinalResult::Ok
    }

    /// The first information line starting with `prefix`, with the prefix
    /// and following blanks removed (`+CSQ: 20,99` -> `20,99`).
    pub fn value(&self, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(str::trim_start))
    }

    /// The numeric `+CME ERROR: <n>`, if that is how the command ended.
    pub fn cme_error(&self) -> Option<u16> {
        match self.result {
            FinalResult::CmeError(n) => Some(n),
            _ => None,
        }
    }

    /// The answer on one line, for step logs: `+CEREG: 0,1 | OK`.
    pub fn summary(&self) -> String {
        let mut parts = self.lines.clone();
        parts.push(self.result.to_string());
        parts.join(" | ")
    }

    /// `Ok(self)` if the result is OK, else [`RigError::CommandFailed`].
    pub fn expect_ok(self, port: &str) -> Result<AtResponse, RigError> {
        if self.is_ok() {
            Ok(self)
        } else {
            Err(RigError::CommandFailed {
                port: port.into(),
                command: self.command,
                result: self.result,
                lines: self.lines,
            })
        }
    }
}
