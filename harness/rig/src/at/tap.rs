//! What crosses the serial line, published as it happens: the engine tells
//! command, echo, response, final result and URC apart (it alone knows
//! which is which), and whoever listens — the AT transcript
//! ([`crate::wrap::TranscriptRecorder`]), a test — is a tap, like smoltcp's
//! `Tracer` beside its device. No driver records anything itself.
//!
//! A line that carries a secret is published as shown (`"***"` for the
//! key, [`crate::Dialect::render_shown`]), in the command and in its echo:
//! a tap never sees a key, so no tap can leak one.

use std::sync::Arc;
use std::time::Duration;

/// One thing that crossed the line, or that the engine noted about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEvent<'a> {
    /// A command line sent (as shown: secrets masked).
    Sent(&'a str),
    /// The modem's echo of that command (as shown).
    Echo(&'a str),
    /// An information response line, or the line a wait was for.
    Response(&'a str),
    /// The final result code that ended a command (`OK`, `+CME ERROR: 10`).
    Final(&'a str),
    /// An unsolicited result code.
    Urc(&'a str),
    /// A command got no final result within its timeout.
    Timeout { command: &'a str, waited: Duration },
    /// Something the engine or its driver noted: a port opened or closed, a
    /// garbled or overlong line.
    Note(&'a str),
}

/// Listens to a line's events. Called on the thread driving the modem, in
/// the order things happened; keep it quick (append, count).
pub trait AtTap: Send + Sync {
    fn event(&self, event: &AtEvent<'_>);
}

/// A tap as drivers hold it: shared with whoever reads what it kept.
pub type SharedTap = Arc<dyn AtTap>;

/// The taps of one line; empty: events go nowhere.
#[derive(Clone, Default)]
pub struct AtTaps(Vec<SharedTap>);

impl AtTaps {
    pub fn add(&mut self, tap: SharedTap) {
        self.0.push(tap);
    }

    pub fn publish(&self, event: AtEvent<'_>) {
        for tap in &self.0 {
            tap.event(&event);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for AtTaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AtTaps({})", self.0.len())
    }
}
