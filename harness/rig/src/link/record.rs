//! What a relay did with each datagram, kept in order of arrival: the
//! evidence a case's `link.log` shows and what tests read retransmission
//! timers from. Never the payload: a NoSec bootstrap write carries keys,
//! so only the first four bytes (a CoAP header: type, code, message ID;
//! RFC 7252 §3) and a digest that tells copies apart are kept.

use std::fmt::Write as _;
use std::time::Duration;

use super::emulator::Fate;
use super::params::Direction;

/// Datagrams a relay remembers; past this it counts and forgets (a 1 MiB
/// image at 64-byte blocks is about 33 000 datagrams both ways).
pub const MAX_RECORD: usize = 100_000;

/// One datagram through the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// When it reached the relay, since the relay started.
    pub at: Duration,
    pub direction: Direction,
    /// Which device-side peer (0 = the first the relay saw).
    pub peer: usize,
    pub len: usize,
    /// Its first (up to) four bytes.
    pub head: Vec<u8>,
    /// FNV-1a 64 of the whole datagram: equal for a retransmitted copy.
    pub digest: u64,
    pub fate: Fate,
}

impl RecordEntry {
    /// One line of `link.log`: `12.345678s up peer0 87B head=40020001
    /// digest=... delivered +0.420100s`, times in seconds with microseconds.
    pub fn line(&self, label: &str) -> String {
        let mut s = format!(
            "{:.6}s {label} {} peer{} {}B head={} digest={:016x} ",
            self.at.as_secs_f64(),
            self.direction.as_str(),
            self.peer,
            self.len,
            hex(&self.head),
            self.digest
        );
        match &self.fate {
            Fate::Drop(reason) => {
                let _ = write!(s, "dropped {}", reason.as_str());
            }
            Fate::Deliver(times) => {
                s.push_str("delivered");
                for t in times {
                    let _ = write!(s, " +{:.6}s", t.saturating_sub(self.at).as_secs_f64());
                }
            }
        }
        s
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// FNV-1a 64 (the digest of [`RecordEntry::digest`]).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Counts of what a link did, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    pub datagrams: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub lost: u64,
    pub over_mtu: u64,
    pub queue_full: u64,
}

impl LinkCounts {
    pub fn add(&mut self, fate: &Fate) {
        use super::emulator::DropReason;
        self.datagrams += 1;
        match fate {
            Fate::Deliver(t) => {
                self.delivered += 1;
                self.duplicated += u64::from(t.len() > 1);
            }
            Fate::Drop(DropReason::Loss) => self.lost += 1,
            Fate::Drop(DropReason::Mtu) => self.over_mtu += 1,
            Fate::Drop(DropReason::Queue) => self.queue_full += 1,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.lost + self.over_mtu + self.queue_full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // draft-eastlake-fnv §8 test vectors: "" and "a".
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_line_shows_the_header_and_fate_but_no_payload() {
        let e = RecordEntry {
            at: Duration::from_millis(1500),
            direction: Direction::Up,
            peer: 0,
            len: 40,
            head: vec![0x40, 0x02, 0x12, 0x34],
            digest: 0xabc,
            fate: Fate::Deliver(vec![Duration::from_millis(1920)]),
        };
        assert_eq!(
            e.line("lwm2m"),
            "1.500000s lwm2m up peer0 40B head=40021234 digest=0000000000000abc delivered +0.420000s"
        );
    }
}
