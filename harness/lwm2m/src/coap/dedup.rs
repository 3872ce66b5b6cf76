//! The duplicate cache of RFC 7252 §4.5: every CON and NON a peer sent,
//! remembered by (peer, message id) with what we answered, so that a
//! duplicate CON gets the same answer and no message is acted on twice.
//!
//! A server holds this for every meter that spoke within EXCHANGE_LIFETIME
//! (issue 16: 100,000 meters sending Register, a notification, Update and
//! De-register are 400,000 entries), so the layout is what it is for size:
//!
//! - Peers are interned: each address is stored once in a peer table and
//!   the entries name it by a 4-byte slot (a `SocketAddr` is 32 bytes; it
//!   was in every entry and every deadline). A peer's slot is freed with
//!   its last entry.
//! - An entry is its answer ([`Seen`], 24 bytes, the answer in place when
//!   it is short), a 32-bit stamp of when it came and the message ids of
//!   the peer's previous and next entries: each peer's entries form a
//!   doubly linked chain in arrival order (32 bytes in all), so that one
//!   peer's entries are found without a scan of all, and an entry that
//!   goes from the middle (a NON outlives no CON) is unlinked in O(1).
//! - Deadlines are FIFOs (every entry of one queue lives the same time, so
//!   arrival order is expiry order) of 16-byte records.
//!
//! ## A peer whose session ended
//!
//! When the owner tells the cache that a peer's session ended (the server
//! answered its De-register 2.02 Deleted), the peer's earlier entries are
//! dropped once no copy of those messages can still arrive, instead of at
//! EXCHANGE_LIFETIME. The bound (RFC 7252 §4.8.2): a sender retransmits a
//! CON for at most MAX_TRANSMIT_SPAN (45 s) after its first transmission,
//! and a datagram is assumed to live at most MAX_LATENCY (100 s) in the
//! network, so the last copy of a message arrives at most 145 s
//! (MAX_TRANSMIT_SPAN plus MAX_LATENCY) after it was first sent — hence after we first
//! received it. Every earlier entry of the peer was received before the
//! De-register, so 145 s after the De-register all of them are past that
//! bound. (MAX_TRANSMIT_WAIT, 93 s, is how long the sender waits for an
//! answer; it does not bound when the network delivers a late copy.) The
//! De-register's own entry stays for its full EXCHANGE_LIFETIME: a
//! retransmitted De-register keeps getting the very 2.02 (§4.5), and so do
//! entries the peer made after it (a new registration from the same
//! address). This is the only place the cache forgets early; every other
//! entry keeps EXCHANGE_LIFETIME / NON_LIFETIME as before.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::MessageType;

use super::exchange::{EXCHANGE_LIFETIME, MAX_LATENCY, MAX_TRANSMIT_SPAN, NON_LIFETIME};
use super::wire;

/// How long after we received it a copy of a message can still arrive:
/// MAX_TRANSMIT_SPAN + MAX_LATENCY (RFC 7252 §4.8.2; module docs).
pub const LAST_COPY_WINDOW: Duration = MAX_TRANSMIT_SPAN.saturating_add(MAX_LATENCY);

/// What the cache holds, for tests and the fleet benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DuplicateCacheStats {
    /// Messages remembered.
    pub entries: usize,
    /// Peers with at least one message remembered.
    pub peers: usize,
    /// Peers whose session ended and whose earlier messages are still held
    /// until [`LAST_COPY_WINDOW`] after the end.
    pub ended_peers: usize,
    /// Bytes the tables have reserved (capacity x slot size, without the
    /// allocator's own overhead and without boxed long answers).
    pub table_bytes: usize,
}

/// A message seen from a peer: what we answered, replayed for a duplicate
/// CON, or nothing while unanswered (and for NONs).
///
/// The answer is held without a heap allocation of its own when it can be:
/// an Empty ACK or RST (each notification's) is rebuilt from the message id,
/// and a piggybacked response up to [`INLINE_REPLY`] bytes (a Register's
/// 2.01 with its Location-Path, an Update's 2.04, a De-register's 2.02,
/// with an 8-byte token) is kept in place. A small boxed reply per message
/// cost 32 bytes of heap, and 400,000 of them strewn among a de-registered
/// fleet's freed pages kept those pages resident after `malloc_trim` until
/// the entries expired (docs/perf/figures.md). Only a longer answer is boxed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    Unanswered,
    /// An Empty ACK (`true`) or RST (`false`) with the message's own id.
    Empty {
        ack: bool,
    },
    Inline {
        len: u8,
        bytes: [u8; INLINE_REPLY],
    },
    Boxed(Box<[u8]>),
}

/// The longest answer [`Seen`] holds in place: 22 bytes keeps `Seen` at 24
/// bytes, the size of its boxed form with the tag.
const INLINE_REPLY: usize = 22;

impl Seen {
    pub(crate) fn of_reply(bytes: &[u8]) -> Seen {
        // RFC 7252 §3: Ver=1, T, TKL=0, Code 0.00 — an Empty message.
        if let [first, 0, _, _] = bytes {
            if first & 0xcf == 0x40 {
                match (first >> 4) & 0x3 {
                    2 => return Seen::Empty { ack: true },
                    3 => return Seen::Empty { ack: false },
                    _ => {}
                }
            }
        }
        if bytes.len() <= INLINE_REPLY {
            let mut inline = [0; INLINE_REPLY];
            inline[..bytes.len()].copy_from_slice(bytes);
            return Seen::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            };
        }
        Seen::Boxed(bytes.into())
    }

    /// The answer to replay for a duplicate of message `message_id`.
    pub(crate) fn replay(&self, message_id: u16) -> Option<Vec<u8>> {
        match self {
            Seen::Unanswered => None,
            Seen::Empty { ack: true } => {
                Some(wire::empty(MessageType::Acknowledgement, message_id))
            }
            Seen::Empty { ack: false } => Some(wire::empty(MessageType::Reset, message_id)),
            Seen::Inline { len, bytes } => Some(bytes[..*len as usize].to_vec()),
            Seen::Boxed(bytes) => Some(bytes.to_vec()),
        }
    }
}

/// A peer's index in the peer table.
type Slot = u32;

#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    /// Its entries in `entries`.
    live: u32,
    /// The message id of its newest entry: the head of its chain.
    newest: u16,
}

#[derive(Debug)]
struct Entry {
    seen: Seen,
    /// When it came: [`stamp`] of the cache's clock. Tells a deadline or a
    /// chain link that names this key apart from a later entry that reused it.
    born: u32,
    /// The message ids of the peer's entries before and after this one
    /// (the chain); its own id where there is none.
    older: u16,
    newer: u16,
}

/// When the entry of `(peer, message_id)` goes, on the cache's clock.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: u64,
    peer: Slot,
    message_id: u16,
}

/// A peer whose session ended: its entries older than `keep` go at `forget_at`.
#[derive(Debug, Clone, Copy)]
struct Ended {
    forget_at: u64,
    keep: u16,
}

/// The cache's clock is nanoseconds since its epoch, in a u64 (584 years).
/// An entry's 32-bit stamp is that in units of 2^20 ns (about a
/// millisecond), wrapping after 52 days: it only has to tell apart entries
/// of one key made within one EXCHANGE_LIFETIME of each other.
fn stamp(ns: u64) -> u32 {
    (ns >> 20) as u32
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

#[derive(Debug, Default)]
pub(crate) struct DuplicateCache {
    epoch: Option<Instant>,
    slots: HashMap<SocketAddr, Slot>,
    peers: Vec<Peer>,
    free: Vec<Slot>,
    entries: HashMap<(Slot, u16), Entry>,
    con: VecDeque<Due>,
    non: VecDeque<Due>,
    ended: HashMap<Slot, Ended>,
    /// (forget_at, peer) in time order (every end waits the same window).
    forget: VecDeque<(u64, Slot)>,
}

impl DuplicateCache {
    /// `now` on the cache's clock. The epoch is an hour before the first
    /// instant seen, so an owner that passes a slightly earlier instant
    /// later (tests do) still gets a distinct time.
    fn clock(&mut self, now: Instant) -> u64 {
        let epoch = *self
            .epoch
            .get_or_insert_with(|| now.checked_sub(Duration::from_secs(3600)).unwrap_or(now));
        nanos(now.saturating_duration_since(epoch))
    }

    /// If `(peer, message_id)` is a duplicate: `Some` with the answer to
    /// replay (`None` inside while it is unanswered).
    pub(crate) fn duplicate(&self, peer: SocketAddr, message_id: u16) -> Option<Option<Vec<u8>>> {
        let slot = *self.slots.get(&peer)?;
        self.entries
            .get(&(slot, message_id))
            .map(|e| e.seen.replay(message_id))
    }

    /// Remembers a new message (the caller checked [`Self::duplicate`]).
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message_id: u16,
        confirmable: bool,
    ) {
        let t = self.clock(now);
        let slot = self.intern(peer);
        let key = (slot, message_id);
        if self.entries.contains_key(&key) {
            return;
        }
        let p = &mut self.peers[slot as usize];
        let older = if p.live > 0 { p.newest } else { message_id };
        p.newest = message_id;
        p.live += 1;
        if older != message_id {
            if let Some(previous) = self.entries.get_mut(&(slot, older)) {
                previous.newer = message_id;
            }
        }
        self.entries.insert(
            key,
            Entry {
                seen: Seen::Unanswered,
                born: stamp(t),
                older,
                newer: message_id,
            },
        );
        let (queue, lifetime) = if confirmable {
            (&mut self.con, EXCHANGE_LIFETIME)
        } else {
            (&mut self.non, NON_LIFETIME)
        };
        queue.push_back(Due {
            at: t + nanos(lifetime),
            peer: slot,
            message_id,
        });
    }

    /// Records what we answered to `(peer, message_id)`, if it is remembered.
    pub(crate) fn answer(&mut self, peer: SocketAddr, message_id: u16, bytes: &[u8]) {
        if let Some(slot) = self.slots.get(&peer) {
            if let Some(e) = self.entries.get_mut(&(*slot, message_id)) {
                e.seen = Seen::of_reply(bytes);
            }
        }
    }

    /// `peer`'s session ended with its message `message_id` (module docs):
    /// its entries older than that one go [`LAST_COPY_WINDOW`] from now.
    /// A second end before then moves the forgetting to the later end.
    pub(crate) fn end_session(&mut self, now: Instant, peer: SocketAddr, message_id: u16) {
        let t = self.clock(now);
        let Some(&slot) = self.slots.get(&peer) else {
            return;
        };
        if !self.entries.contains_key(&(slot, message_id)) {
            return;
        }
        let forget_at = t + nanos(LAST_COPY_WINDOW);
        self.ended.insert(
            slot,
            Ended {
                forget_at,
                keep: message_id,
            },
        );
        self.forget.push_back((forget_at, slot));
    }

    fn intern(&mut self, peer: SocketAddr) -> Slot {
        if let Some(&slot) = self.slots.get(&peer) {
            return slot;
        }
        let record = Peer {
            addr: peer,
            live: 0,
            newest: 0,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.peers[slot as usize] = record;
                slot
            }
            None => {
                self.peers.push(record);
                (self.peers.len() - 1) as Slot
            }
        };
        self.slots.insert(peer, slot);
        slot
    }

    /// Removes the entry of `(slot, message_id)`, unlinking it from its
    /// peer's chain, and the peer with its last entry.
    fn remove(&mut self, slot: Slot, message_id: u16) {
        let Some(entry) = self.entries.remove(&(slot, message_id)) else {
            return;
        };
        let has_older = entry.older != message_id;
        let has_newer = entry.newer != message_id;
        if has_newer {
            if let Some(newer) = self.entries.get_mut(&(slot, entry.newer)) {
                newer.older = if has_older { entry.older } else { entry.newer };
            }
        }
        if has_older {
            if let Some(older) = self.entries.get_mut(&(slot, entry.older)) {
                older.newer = if has_newer { entry.newer } else { entry.older };
            }
        }
        let p = &mut self.peers[slot as usize];
        p.live -= 1;
        if p.live == 0 {
            let addr = p.addr;
            self.slots.remove(&addr);
            self.ended.remove(&slot);
            self.free.push(slot);
            if self.slots.is_empty() {
                // Every slot is free: start the table again, so that a
                // departed fleet's peer table does not stay allocated.
                self.peers = Vec::new();
                self.free = Vec::new();
            }
        } else if !has_newer {
            p.newest = entry.older;
        }
    }

    /// Forgets what is due: entries past their lifetime, and ended peers'
    /// earlier entries past [`LAST_COPY_WINDOW`]. Visits only what is due.
    pub(crate) fn expire(&mut self, now: Instant) {
        let t = self.clock(now);
        for confirmable in [true, false] {
            let lifetime = nanos(if confirmable {
                EXCHANGE_LIFETIME
            } else {
                NON_LIFETIME
            });
            loop {
                let queue = if confirmable { &self.con } else { &self.non };
                let Some(&due) = queue.front() else { break };
                if due.at > t {
                    break;
                }
                if confirmable {
                    self.con.pop_front();
                } else {
                    self.non.pop_front();
                }
                // Only the entry this deadline was filed for: not a later
                // one of the same key after an early forget.
                let born = stamp(due.at - lifetime);
                if self
                    .entries
                    .get(&(due.peer, due.message_id))
                    .is_some_and(|e| e.born == born)
                {
                    self.remove(due.peer, due.message_id);
                }
            }
        }
        while let Some(&(at, slot)) = self.forget.front() {
            if at > t {
                break;
            }
            self.forget.pop_front();
            match self.ended.get(&slot) {
                Some(ended) if ended.forget_at == at => {
                    let keep = ended.keep;
                    self.ended.remove(&slot);
                    self.forget_before(slot, keep);
                }
                _ => {}
            }
        }
        super::shrink::if_sparse(&mut self.entries);
        super::shrink::if_sparse(&mut self.slots);
        super::shrink::if_sparse(&mut self.ended);
        for queue in [&mut self.con, &mut self.non] {
            if queue.capacity() > 64 && queue.len() < queue.capacity() / 4 {
                queue.shrink_to(queue.len() * 2);
            }
        }
        if self.forget.capacity() > 64 && self.forget.len() < self.forget.capacity() / 4 {
            self.forget.shrink_to(self.forget.len() * 2);
        }
    }

    /// Drops the entries of peer `slot` older than its entry `keep`: walks
    /// its chain from the newest, at most its `live` links (and, in case,
    /// stops at a link that is gone or names a newer entry).
    fn forget_before(&mut self, slot: Slot, keep: u16) {
        let p = &self.peers[slot as usize];
        let (mut cur, mut left) = (p.newest, p.live);
        let mut newer_born: Option<u32> = None;
        let mut past_keep = false;
        let mut doomed = Vec::new();
        while left > 0 {
            left -= 1;
            let Some(e) = self.entries.get(&(slot, cur)) else {
                break;
            };
            if newer_born.is_some_and(|b| (b.wrapping_sub(e.born) as i32) < 0) {
                break;
            }
            newer_born = Some(e.born);
            if past_keep {
                doomed.push(cur);
            } else if cur == keep {
                past_keep = true;
            }
            cur = e.older;
        }
        for message_id in doomed {
            self.remove(slot, message_id);
        }
    }

    /// The first deadline in the queues (stale ones included), rounded up
    /// to a whole second of the cache's clock.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let epoch = self.epoch?;
        let first = [
            self.con.front().map(|d| d.at),
            self.non.front().map(|d| d.at),
            self.forget.front().map(|f| f.0),
        ]
        .into_iter()
        .flatten()
        .min()?;
        const SECOND: u64 = 1_000_000_000;
        let rounded = first.div_ceil(SECOND) * SECOND;
        Some(epoch + Duration::from_nanos(rounded))
    }

    pub(crate) fn stats(&self) -> DuplicateCacheStats {
        use std::mem::size_of;
        // hashbrown: one control byte per bucket besides the slot.
        let map = |cap: usize, slot: usize| cap * (slot + 1);
        DuplicateCacheStats {
            entries: self.entries.len(),
            peers: self.slots.len(),
            ended_peers: self.ended.len(),
            table_bytes: map(self.entries.capacity(), size_of::<((Slot, u16), Entry)>())
                + map(self.slots.capacity(), size_of::<(SocketAddr, Slot)>())
                + map(self.ended.capacity(), size_of::<(Slot, Ended)>())
                + self.peers.capacity() * size_of::<Peer>()
                + self.free.capacity() * size_of::<Slot>()
                + (self.con.capacity() + self.non.capacity()) * size_of::<Due>()
                + self.forget.capacity() * size_of::<(u64, Slot)>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// RFC 7252 §4.5: a duplicate gets the same answer byte for byte, in
    /// whichever form the cache holds it. Vectors: an Empty ACK and RST for
    /// message id 0x1234 (§3: 0x60/0x70, code 0.00); a 2.01 Created with
    /// token 0x0a and Location-Path rd/5a3f (§5.10.7), 13 bytes, kept in
    /// place; a 2.05 with a 30-byte payload, boxed.
    #[test]
    fn a_cached_reply_replays_byte_for_byte_in_every_form() {
        assert_eq!(std::mem::size_of::<Seen>(), 24);
        let ack = [0x60, 0x00, 0x12, 0x34];
        let rst = [0x70, 0x00, 0x12, 0x34];
        assert_eq!(Seen::of_reply(&ack), Seen::Empty { ack: true });
        assert_eq!(Seen::of_reply(&rst), Seen::Empty { ack: false });
        let created = [
            0x61, 0x41, 0x12, 0x34, 0x0a, 0x82, b'r', b'd', 0x04, b'5', b'a', b'3', b'f',
        ];
        assert!(matches!(
            Seen::of_reply(&created),
            Seen::Inline { len: 13, .. }
        ));
        let mut content = vec![0x61, 0x45, 0x12, 0x34, 0x0a, 0xff];
        content.extend_from_slice(&[b'x'; 30]);
        assert!(matches!(Seen::of_reply(&content), Seen::Boxed(_)));
        for reply in [&ack[..], &rst, &created, &content] {
            assert_eq!(Seen::of_reply(reply).replay(0x1234).as_deref(), Some(reply));
        }
        assert_eq!(Seen::Unanswered.replay(0x1234), None);
        // An ACK with a token is not Empty (TKL != 0): kept as it is.
        let piggy = [0x61, 0x00, 0x12, 0x34, 0x0a];
        assert_eq!(
            Seen::of_reply(&piggy).replay(0x1234).as_deref(),
            Some(&piggy[..])
        );
    }

    /// The layout the module docs promise: an entry with its key in 40
    /// bytes (was 64 with the address in the key), a deadline in 16 (was 56).
    #[test]
    fn entries_and_deadlines_are_compact() {
        assert_eq!(std::mem::size_of::<((Slot, u16), Entry)>(), 40);
        assert_eq!(std::mem::size_of::<Due>(), 16);
    }

    /// The chain survives a NON expiring before an older CON (it is
    /// unlinked from the middle), and a forget after that still finds the
    /// entries behind the end.
    #[test]
    fn an_ended_peers_chain_survives_a_non_expiring_first() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::default();
        let p = addr(1);
        c.insert(t0, p, 1, true); // Register
        c.insert(t0, p, 2, false); // a NON notification
        c.insert(t0 + Duration::from_secs(10), p, 3, true); // De-register
        c.end_session(t0 + Duration::from_secs(10), p, 3);
        let mid = t0 + NON_LIFETIME; // the NON goes
        c.expire(mid);
        assert_eq!(c.stats().entries, 2);
        c.expire(t0 + Duration::from_secs(10) + LAST_COPY_WINDOW);
        assert!(c.duplicate(p, 1).is_none(), "the Register is forgotten");
        assert!(c.duplicate(p, 3).is_some(), "the De-register is kept");
        assert_eq!(c.stats().entries, 1);
        c.expire(t0 + Duration::from_secs(10) + EXCHANGE_LIFETIME);
        let s = c.stats();
        assert_eq!((s.entries, s.peers, s.ended_peers), (0, 0, 0));
    }
}
