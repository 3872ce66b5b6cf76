//! Drives one sans-IO endpoint through a [`frames`](crate::frames) script
//! the way its tokio shell would: datagrams in with the time, then drain
//! transmits and events, and call `handle_timeout` whenever `poll_timeout`
//! says a deadline has come.
//!
//! One property is checked beyond "does not panic": after the shell has
//! called `handle_timeout`, `poll_timeout` must move past `now`. An endpoint
//! whose deadline stays in the past makes the shell's loop spin (a hang on
//! a real server), so the driver panics with [`BUSY_TIMER`] after
//! [`SPIN_LIMIT`] rounds without rest.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::frames::{self, Frame, Op};

/// What the driver needs of an endpoint. Every role, the message layer and
/// the DTLS server implement it in their target modules.
pub trait Endpoint {
    fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)>;
    /// Drains the endpoint's events, reacting as its owner would (answer a
    /// request, acknowledge a notification). Returns whether there were any.
    fn handle_events(&mut self, now: Instant) -> bool;
    /// An [`Op::Action`] frame: what the owner may call besides datagrams
    /// and timeouts, chosen by `data`.
    fn action(&mut self, now: Instant, peer: SocketAddr, data: &[u8]);
}

/// Rounds of draining and timer firing at one instant before the endpoint
/// is declared unable to settle.
pub const SPIN_LIMIT: usize = 10_000;

/// Start of the panic message for an endpoint whose timer never settles.
pub const BUSY_TIMER: &str = "busy timer";

/// Deadlines followed after the script ends, so retransmissions, response
/// timeouts and expiries run too.
const EPILOGUE_DEADLINES: usize = 8;

pub struct Driver<E> {
    pub endpoint: E,
    pub start: Instant,
    pub now: Instant,
    peers: [SocketAddr; 2],
    /// The last datagram sent to each peer, for [`Op::Reply`].
    last_sent: [Option<Vec<u8>>; 2],
    /// Datagrams the endpoint sent, kept when `keep_sent` (captures).
    pub sent: Vec<(SocketAddr, Vec<u8>)>,
    keep_sent: bool,
}

impl<E: Endpoint> Driver<E> {
    /// `peers`: the primary and secondary peer of the frames.
    pub fn new(endpoint: E, peers: [SocketAddr; 2], now: Instant) -> Self {
        Driver {
            endpoint,
            start: now,
            now,
            peers,
            last_sent: [None, None],
            sent: Vec::new(),
            keep_sent: false,
        }
    }

    /// Keeps what the endpoint sends in [`Driver::sent`].
    pub fn keep_sent(mut self) -> Self {
        self.keep_sent = true;
        self
    }

    pub fn peer(&self, secondary: bool) -> SocketAddr {
        self.peers[usize::from(secondary)]
    }

    /// Runs a whole script, then follows the next deadlines for a while.
    pub fn run(&mut self, input: &[u8]) {
        self.settle();
        for frame in frames::parse(input) {
            self.step(&frame);
        }
        for _ in 0..EPILOGUE_DEADLINES {
            let Some(t) = self.endpoint.poll_timeout() else {
                break;
            };
            self.now = self.now.max(t);
            self.settle();
        }
    }

    /// One frame, then [`Driver::settle`].
    pub fn step(&mut self, frame: &Frame<'_>) {
        let peer = self.peer(frame.secondary);
        match frame.op {
            Op::Deliver => self.endpoint.handle_datagram(self.now, peer, frame.data),
            Op::Reply => {
                let datagram = self.as_reply(frame.secondary, frame.data);
                self.endpoint.handle_datagram(self.now, peer, &datagram);
            }
            Op::Action => self.endpoint.action(self.now, peer, frame.data),
            Op::Advance => match frame.millis() {
                Some(ms) => {
                    if let Some(t) = self.now.checked_add(Duration::from_millis(ms)) {
                        self.now = t;
                    }
                }
                None => {
                    if let Some(t) = self.endpoint.poll_timeout() {
                        self.now = self.now.max(t);
                    }
                }
            },
        }
        self.settle();
    }

    /// `data` with the message id and token of the last datagram sent to that peer.
    pub fn as_reply(&self, secondary: bool, data: &[u8]) -> Vec<u8> {
        match &self.last_sent[usize::from(secondary)] {
            Some(request) => frames::answer_to(request, data),
            None => data.to_vec(),
        }
    }

    /// Drains transmits and events and fires due timers until nothing
    /// moves at the current instant.
    pub fn settle(&mut self) {
        for _ in 0..SPIN_LIMIT {
            let mut progressed = false;
            while let Some((destination, payload)) = self.endpoint.poll_transmit() {
                progressed = true;
                if let Some(i) = self.peers.iter().position(|p| *p == destination) {
                    self.last_sent[i] = Some(payload.clone());
                }
                if self.keep_sent {
                    self.sent.push((destination, payload));
                }
            }
            progressed |= self.endpoint.handle_events(self.now);
            if self.endpoint.poll_timeout().is_some_and(|t| t <= self.now) {
                self.endpoint.handle_timeout(self.now);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
        panic!(
            "{BUSY_TIMER}: after {SPIN_LIMIT} rounds at one instant the endpoint still has work \
             (poll_timeout {:?} past now by {:?}); its shell's loop would spin",
            self.endpoint
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.start)),
            self.endpoint
                .poll_timeout()
                .map(|t| self.now.saturating_duration_since(t)),
        );
    }
}
