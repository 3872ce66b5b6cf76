//! Everything that crossed the serial line, with wall-clock times: the AT
//! transcript artifact of a run, made from the engine's events
//! ([`Transcript::record`]) by [`crate::wrap::TranscriptRecorder`].

use chrono::{DateTime, SecondsFormat, Utc};

use super::tap::AtEvent;

/// Which way a transcript line went, and what the engine made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A command line the harness sent.
    Sent,
    /// The modem's echo of the command.
    Echo,
    /// A response or final result line.
    Received,
    /// An unsolicited result code.
    Urc,
    /// Something the engine noted: port opened or closed, a garbled or
    /// overlong line, a timeout.
    Note,
}

impl Direction {
    fn marker(self) -> &'static str {
        match self {
            Direction::Sent => ">>",
            Direction::Echo => "<e",
            Direction::Received => "<<",
            Direction::Urc => "<u",
            Direction::Note => "--",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptEntry {
    pub at: DateTime<Utc>,
    pub direction: Direction,
    pub text: String,
}

/// An append-only log of a serial session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    entries: Vec<TranscriptEntry>,
}

impl Transcript {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, direction: Direction, text: impl Into<String>) {
        self.entries.push(TranscriptEntry {
            at: Utc::now(),
            direction,
            text: text.into(),
        });
    }

    /// Adds what `event` says crossed the line, in the transcript's terms:
    /// a response and a final result are both received lines, a timeout is
    /// a note.
    pub fn record(&mut self, event: &AtEvent<'_>) {
        match *event {
            AtEvent::Sent(line) => self.push(Direction::Sent, line),
            AtEvent::Echo(line) => self.push(Direction::Echo, line),
            AtEvent::Response(line) | AtEvent::Final(line) => self.push(Direction::Received, line),
            AtEvent::Urc(line) => self.push(Direction::Urc, line),
            AtEvent::Timeout { command, .. } => self.push(
                Direction::Note,
                format!("timeout: no final result for `{command}`"),
            ),
            AtEvent::Note(text) => self.push(Direction::Note, text),
        }
    }

    pub fn entries(&self) -> &[TranscriptEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries from index `start` on (what one case added).
    pub fn since(&self, start: usize) -> Transcript {
        Transcript {
            entries: self.entries.get(start..).unwrap_or_default().to_vec(),
        }
    }

    /// What the device printed (responses and URCs), oldest first: the lines
    /// a failure message quotes.
    pub fn received_lines(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| matches!(e.direction, Direction::Received | Direction::Urc))
            .map(|e| e.text.clone())
            .collect()
    }

    /// One line per entry: `2025-01-02T03:04:05.678Z >> AT+CGMI`; markers
    /// `>>` sent, `<e` echo, `<<` received, `<u` URC, `--` note. Control
    /// characters in the text are escaped so one entry stays one line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&e.at.to_rfc3339_opts(SecondsFormat::Millis, true));
            out.push(' ');
            out.push_str(e.direction.marker());
            out.push(' ');
            for c in e.text.chars() {
                if c.is_control() {
                    out.extend(c.escape_default());
                } else {
                    out.push(c);
                }
            }
            out.push('\n');
        }
        out
    }
}
