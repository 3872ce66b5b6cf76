//! The LwM2M message log: every datagram the server received or sent, with
//! its wall-clock time, so a failed case's artifacts show the exchange as it
//! happened on the wire (hex bytes plus a decoded one-line summary).

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

/// Which way a datagram went, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from a client.
    In,
    /// Sent to a client.
    Out,
    /// Not a datagram: a line about the secure transport (a DTLS handshake
    /// completing or failing, records dropped). `bytes` is empty; the pcap
    /// leaves these out.
    Note,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "in ",
            Direction::Out => "out",
            Direction::Note => "tls",
        })
    }
}

/// One datagram in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the log since the server started (0-based; never reused).
    pub index: usize,
    /// Wall-clock time, UTC.
    pub time: DateTime<Utc>,
    pub direction: Direction,
    /// The client's address (source of an `In`, destination of an `Out`).
    pub peer: SocketAddr,
    /// The decoded one-line summary (`CON POST /rd?ep=... mid=...`), or why it
    /// could not be decoded.
    pub summary: String,
    pub bytes: Vec<u8>,
    /// Set when sending failed; the datagram was not on the wire.
    pub send_error: Option<String>,
}

impl LogEntry {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// One line for the artifact file:
    /// `2024-05-01T12:00:00.123Z in  127.0.0.1:56830 37B CON POST /rd ... | 4402...`
    pub fn to_line(&self) -> String {
        let arrow = match self.direction {
            Direction::In => "<-",
            Direction::Out => "->",
            Direction::Note => "**",
        };
        if self.direction == Direction::Note {
            return format!(
                "{} {} {} {} {}",
                self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
                self.direction,
                arrow,
                self.peer,
                self.summary
            );
        }
        let failed = match &self.send_error {
            Some(e) => format!(" [NOT SENT: {e}]"),
            None => String::new(),
        };
        format!(
            "{} {} {} {} {}B {}{} | {}",
            self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.direction,
            arrow,
            self.peer,
            self.bytes.len(),
            self.summary,
            failed,
            hex::encode(&self.bytes)
        )
    }

    /// The entry as one JSON object, for a JSON-lines artifact that tools can read back.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "index": self.index,
            "time": self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "direction": match self.direction { Direction::In => "in", Direction::Out => "out", Direction::Note => "note" },
            "peer": self.peer.to_string(),
            "len": self.bytes.len(),
            "summary": self.summary,
            "hex": hex::encode(&self.bytes),
            "send_error": self.send_error,
        })
    }
}

/// Counters over the whole run (not bounded by the log's capacity), for the
/// closing note's "N datagrams exchanged".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Datagrams the core could not understand (its `Malformed` events).
    pub malformed: u64,
    /// Datagrams that could not be sent (socket errors, or no DTLS session
    /// with the peer).
    pub send_errors: u64,
    /// DTLS handshakes completed (coaps only).
    pub handshakes_completed: u64,
    /// DTLS handshakes failed (wrong key, unknown identity, timeout, ...).
    pub handshakes_failed: u64,
    /// DTLS datagrams (or records) dropped: malformed, replayed, unknown peer, bad cookie.
    pub dtls_dropped: u64,
    /// Log entries dropped, oldest first, because the log was at its
    /// capacity ([`ServerOptions::log_capacity`](crate::ServerOptions)):
    /// what a reader of the log no longer sees.
    pub log_dropped: u64,
    /// Events dropped from the history at its capacity
    /// ([`ServerOptions::event_capacity`](crate::ServerOptions)).
    pub events_dropped: u64,
    /// Datagrams the kernel dropped before the server read them, its
    /// socket's receive buffer full; `None` where the system does not say
    /// (see `receive_drops`).
    pub receive_buffer_drops: Option<u64>,
}

impl Stats {
    pub fn datagrams(&self) -> u64 {
        self.datagrams_in + self.datagrams_out
    }
}

/// An entry as held: the datagram's summary is made when the log is read,
/// not on the datagram path (issue 16: formatting a summary and a UTC date
/// for every datagram cost the server loop more than the protocol did).
/// Notes carry theirs, as they have no datagram to decode.
#[derive(Debug)]
struct Held {
    time: SystemTime,
    direction: Direction,
    peer: SocketAddr,
    summary: Option<String>,
    bytes: Vec<u8>,
    send_error: Option<String>,
}

/// A bounded log: when full, the oldest entries are dropped (and counted in
/// [`Stats::log_dropped`]), but indices keep counting so `since(index)`
/// stays meaningful for a reader that keeps up.
#[derive(Debug)]
pub(crate) struct MessageLog {
    entries: VecDeque<Held>,
    /// Index of `entries[0]`.
    first: usize,
    capacity: usize,
    stats: Stats,
}

impl MessageLog {
    pub(crate) fn new(capacity: usize) -> Self {
        MessageLog {
            entries: VecDeque::new(),
            first: 0,
            capacity: capacity.max(1),
            stats: Stats::default(),
        }
    }

    pub(crate) fn push(
        &mut self,
        direction: Direction,
        peer: SocketAddr,
        bytes: &[u8],
        summary: String,
        send_error: Option<String>,
    ) {
        self.hold(direction, peer, bytes, Some(summary), send_error);
    }

    /// A datagram whose summary is decoded from `bytes` when the log is read.
    pub(crate) fn push_datagram(
        &mut self,
        direction: Direction,
        peer: SocketAddr,
        bytes: &[u8],
        send_error: Option<String>,
    ) {
        self.hold(direction, peer, bytes, None, send_error);
    }

    fn hold(
        &mut self,
        direction: Direction,
        peer: SocketAddr,
        bytes: &[u8],
        summary: Option<String>,
        send_error: Option<String>,
    ) {
        let n = bytes.len() as u64;
        match (direction, &send_error) {
            (Direction::In, _) => {
                self.stats.datagrams_in += 1;
                self.stats.bytes_in += n;
            }
            (Direction::Out, None) => {
                self.stats.datagrams_out += 1;
                self.stats.bytes_out += n;
            }
            (Direction::Out, Some(_)) => self.stats.send_errors += 1,
            (Direction::Note, _) => {}
        }
        let dropped = if self.entries.len() == self.capacity {
            self.first += 1;
            self.stats.log_dropped += 1;
            self.entries.pop_front().map(|held| held.bytes)
        } else {
            None
        };
        self.entries.push_back(Held {
            time: SystemTime::now(),
            direction,
            peer,
            summary,
            bytes: crate::capture::refill(dropped, bytes),
            send_error,
        });
    }

    /// Counts an event the history dropped at its capacity.
    pub(crate) fn count_event_dropped(&mut self) {
        self.stats.events_dropped += 1;
    }

    pub(crate) fn count_malformed(&mut self) {
        self.stats.malformed += 1;
    }

    /// Counts a secure-transport report in [`Stats`].
    pub(crate) fn count_security(&mut self, event: &lwm2m::server::SecurityEvent) {
        use lwm2m::server::SecurityEvent as S;
        match event {
            S::HandshakeCompleted { .. } => self.stats.handshakes_completed += 1,
            S::HandshakeFailed { .. } => self.stats.handshakes_failed += 1,
            S::Dropped { .. } => self.stats.dtls_dropped += 1,
            S::SessionClosed { .. } => {}
        }
    }

    /// Index the next entry will get.
    pub(crate) fn len(&self) -> usize {
        self.first + self.entries.len()
    }

    /// Entries with `index >= from` that are still held.
    pub(crate) fn since(&self, from: usize) -> Vec<LogEntry> {
        let skip = from.saturating_sub(self.first);
        self.entries
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, held)| LogEntry {
                index: self.first + i,
                time: held.time.into(),
                direction: held.direction,
                peer: held.peer,
                summary: held
                    .summary
                    .clone()
                    .unwrap_or_else(|| lwm2m::coap::summarize(&held.bytes)),
                bytes: held.bytes.clone(),
                send_error: held.send_error.clone(),
            })
            .collect()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:5683".parse().unwrap()
    }

    #[test]
    fn indices_keep_counting_when_the_oldest_entries_are_dropped() {
        let mut log = MessageLog::new(2);
        for i in 0..5u8 {
            log.push(Direction::In, peer(), &[i], format!("d{i}"), None);
        }
        assert_eq!(log.len(), 5);
        let held = log.since(0);
        assert_eq!(held.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(log.since(4).len(), 1);
        assert!(log.since(5).is_empty());
        assert_eq!(log.stats().datagrams_in, 5);
        assert_eq!(log.stats().log_dropped, 3);
    }

    #[test]
    fn a_datagram_is_summarized_when_the_log_is_read() {
        let mut log = MessageLog::new(4);
        // RFC 7252 §3: version 1, CON, no token; code 0.01 GET; message id 0x1234.
        log.push_datagram(Direction::In, peer(), &[0x40, 0x01, 0x12, 0x34], None);
        log.push(Direction::Note, peer(), &[], "handshake done".into(), None);
        let held = log.since(0);
        assert_eq!(
            held[0].summary,
            lwm2m::coap::summarize(&[0x40, 0x01, 0x12, 0x34])
        );
        assert!(
            held[0].summary.starts_with("CON GET mid=0x1234"),
            "{}",
            held[0].summary
        );
        assert_eq!(held[1].summary, "handshake done");
        assert_eq!((held[0].index, held[1].index), (0, 1));
        assert_eq!(log.stats().log_dropped, 0);
    }

    #[test]
    fn failed_sends_are_logged_but_not_counted_as_sent() {
        let mut log = MessageLog::new(10);
        log.push(
            Direction::Out,
            peer(),
            &[1, 2],
            "x".into(),
            Some("unreachable".into()),
        );
        log.push(Direction::Out, peer(), &[1, 2, 3], "y".into(), None);
        let s = log.stats();
        assert_eq!((s.datagrams_out, s.bytes_out, s.send_errors), (1, 3, 1));
        assert!(log.since(0)[0].to_line().contains("NOT SENT: unreachable"));
    }

    #[test]
    fn a_line_has_time_direction_peer_length_summary_and_hex() {
        let mut log = MessageLog::new(10);
        log.push(
            Direction::In,
            peer(),
            &[0x40, 0x01, 0x12, 0x34],
            "CON GET mid=4660".into(),
            None,
        );
        let line = log.since(0)[0].to_line();
        // e.g. 2024-05-01T12:00:00.123Z in  <- 127.0.0.1:5683 4B CON GET mid=4660 | 40011234
        assert!(
            line.ends_with("in  <- 127.0.0.1:5683 4B CON GET mid=4660 | 40011234"),
            "{line}"
        );
        assert_eq!(&line[23..24], "Z", "{line}");
        let json = log.since(0)[0].to_json();
        assert_eq!(json["direction"], "in");
        assert_eq!(json["hex"], "40011234");
        assert_eq!(json["len"], 4);
    }
}
