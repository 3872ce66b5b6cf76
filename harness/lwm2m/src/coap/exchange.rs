//! The CoAP message layer of one endpoint (RFC 7252 §4, §5.3): what both
//! LwM2M roles share below the request/response semantics.
//!
//! [`MessageLayer`] allocates message ids and tokens, retransmits Confirmable
//! messages with exponential back-off until they are acknowledged (§4.2),
//! matches ACK/RST by message id and responses by token (piggybacked in the
//! ACK or separate, §5.2), acknowledges separate responses, detects duplicate
//! CON/NON messages by (peer, message id) for EXCHANGE_LIFETIME / NON_LIFETIME
//! and answers a duplicate CON with the reply it got the first time (§4.5),
//! and rejects undecodable CONs with a Reset (§4.2). It is sans-IO: the caller
//! passes `now` into every call and drains `poll_transmit` / `poll_event`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageType, Packet};

use super::dedup::{DuplicateCache, DuplicateCacheStats};
use super::xorshift::Xorshift64;
use super::{code, wire, Transmit};

/// ACK_TIMEOUT (RFC 7252 §4.8).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// ACK_RANDOM_FACTOR (RFC 7252 §4.8).
pub const ACK_RANDOM_FACTOR: f64 = 1.5;
/// MAX_RETRANSMIT (RFC 7252 §4.8).
pub const MAX_RETRANSMIT: u32 = 4;
/// MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2): how long after the first transmission
/// of a CON request we wait for its (possibly separate) response.
pub const MAX_TRANSMIT_WAIT: Duration = Duration::from_secs(93);
/// MAX_TRANSMIT_SPAN (RFC 7252 §4.8.2): the longest time from the first
/// transmission of a CON to its last retransmission.
pub const MAX_TRANSMIT_SPAN: Duration = Duration::from_secs(45);
/// MAX_LATENCY (RFC 7252 §4.8.2): the longest a datagram is assumed to
/// take from its sender to its receiver.
pub const MAX_LATENCY: Duration = Duration::from_secs(100);
/// EXCHANGE_LIFETIME (RFC 7252 §4.8.2): how long a CON's message id is remembered.
pub const EXCHANGE_LIFETIME: Duration = Duration::from_secs(247);
/// NON_LIFETIME (RFC 7252 §4.8.2): how long a NON's message id is remembered.
pub const NON_LIFETIME: Duration = Duration::from_secs(145);
/// Length of the tokens this layer allocates (RFC 7252 §5.3.1 allows 0..=8).
pub const TOKEN_LENGTH: usize = 4;

/// Identifies one outgoing message tracked by the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub u64);

/// What the layer tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum ExchangeEvent {
    /// A new (not duplicate) request. Answer it with [`MessageLayer::respond`].
    Request { peer: SocketAddr, message: Packet },
    /// The response to a request sent with [`MessageLayer::send`] (piggybacked or separate).
    Response {
        id: ExchangeId,
        peer: SocketAddr,
        message: Packet,
    },
    /// A response whose token matches no outstanding request: typically an
    /// Observe notification (RFC 7641 §3.2). If Confirmable, the owner must
    /// call [`MessageLayer::acknowledge`] or [`MessageLayer::reject`].
    Unsolicited { peer: SocketAddr, message: Packet },
    /// A Confirmable message that was not a request (a notification) was acknowledged.
    Acknowledged { id: ExchangeId },
    /// The peer answered a message of ours with Reset. `id` is set when it was
    /// a tracked CON; `token` when the message is still remembered (CONs and recent NONs).
    Reset {
        id: Option<ExchangeId>,
        peer: SocketAddr,
        token: Option<Vec<u8>>,
    },
    /// No ACK after MAX_RETRANSMIT retransmissions, or no separate response
    /// within MAX_TRANSMIT_WAIT.
    Timeout {
        id: ExchangeId,
        peer: SocketAddr,
        token: Vec<u8>,
        transmissions: u32,
    },
    /// The datagram was not a valid CoAP message (answered with Reset if it was a CON).
    Malformed { peer: SocketAddr, reason: String },
}

#[derive(Debug)]
enum Phase {
    /// CON sent `transmissions` times; next retransmission (or give-up) at `next`.
    AwaitingAck {
        transmissions: u32,
        timeout: Duration,
        next: Instant,
    },
    /// Request acknowledged (or sent NON); the response must come by `deadline`.
    AwaitingResponse {
        deadline: Instant,
        transmissions: u32,
    },
}

impl Phase {
    /// When `handle_timeout` must act on the exchange.
    fn due(&self) -> Instant {
        match self {
            Phase::AwaitingAck { next, .. } => *next,
            Phase::AwaitingResponse { deadline, .. } => *deadline,
        }
    }
}

#[derive(Debug)]
struct Outgoing {
    peer: SocketAddr,
    message_id: u16,
    token: Vec<u8>,
    bytes: Vec<u8>,
    is_request: bool,
    /// A GET with Observe=0: the only kind of request whose response may
    /// carry an Observe option (RFC 7641 §2).
    registers_observation: bool,
    phase: Phase,
}

/// The message layer of one CoAP endpoint, towards any number of peers.
#[derive(Debug)]
pub struct MessageLayer {
    rng: Xorshift64,
    next_message_id: u16,
    next_exchange: u64,
    outgoing: HashMap<ExchangeId, Outgoing>,
    /// Indexes of `outgoing`, kept exact by `track` and `untrack`: a server
    /// with a request in flight to each of thousands of clients would
    /// otherwise scan them all per ACK, per notification and per loop turn.
    /// `timers` orders the exchanges by when they are due (RFC 7252 §4.2
    /// retransmission or response deadline).
    timers: BTreeSet<(Instant, ExchangeId)>,
    by_message_id: HashMap<(SocketAddr, u16), ExchangeId>,
    by_token: HashMap<Vec<u8>, Vec<ExchangeId>>,
    /// Every CON and NON from a peer, with our answer (RFC 7252 §4.5).
    seen: DuplicateCache,
    /// NON messages we sent, so a Reset to one can be traced to its token (RFC 7641 §3.6).
    sent_non: HashMap<(SocketAddr, u16), (Vec<u8>, Instant)>,
    /// When each entry of `sent_non` is due to go, in time order: every
    /// datagram expires what is due, and a server with tens of thousands
    /// of clients holds that many entries, so a scan of the map per
    /// datagram made each datagram cost O(clients).
    sent_non_deadlines: BTreeSet<(Instant, SocketAddr, u16)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ExchangeEvent>,
}

impl MessageLayer {
    pub fn new(seed: u64) -> Self {
        let mut rng = Xorshift64::new(seed);
        let next_message_id = rng.next_u64() as u16;
        MessageLayer {
            rng,
            next_message_id,
            next_exchange: 0,
            outgoing: HashMap::new(),
            timers: BTreeSet::new(),
            by_message_id: HashMap::new(),
            by_token: HashMap::new(),
            seen: DuplicateCache::default(),
            sent_non: HashMap::new(),
            sent_non_deadlines: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A fresh token (RFC 7252 §5.3.1).
    pub fn new_token(&mut self) -> Vec<u8> {
        self.rng.next_u64().to_be_bytes()[..TOKEN_LENGTH].to_vec()
    }

    /// Pseudo-random bits from the layer's seeded generator, for owners that
    /// need them (registration location names).
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn next_message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1);
        id
    }

    /// Sends a message, assigning its message id (and, for a request without
    /// one, a token). CON messages are retransmitted until acknowledged;
    /// requests are tracked until their response arrives.
    pub fn send(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        mut message: Packet,
        confirmable: bool,
    ) -> ExchangeId {
        let raw: u8 = message.header.code.into();
        let is_request = code::is_request(raw);
        if is_request && message.get_token().is_empty() {
            let token = self.new_token();
            message.set_token(token);
        }
        message.header.set_type(if confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        });
        message.header.message_id = self.next_message_id();
        let bytes = wire::encode(&message);
        let id = ExchangeId(self.next_exchange);
        self.next_exchange += 1;
        let token = message.get_token().to_vec();
        let registers_observation = is_request && super::options::observe(&message) == Some(0);
        tracing::trace!(%peer, summary = %super::summarize(&bytes), "send");
        self.transmits.push_back(Transmit {
            destination: peer,
            payload: bytes.clone(),
        });
        let phase = if confirmable {
            let jitter = 1.0 + self.rng.next_f64() * (ACK_RANDOM_FACTOR - 1.0);
            let timeout = ACK_TIMEOUT.mul_f64(jitter);
            Phase::AwaitingAck {
                transmissions: 1,
                timeout,
                next: now + timeout,
            }
        } else {
            self.sent_non.insert(
                (peer, message.header.message_id),
                (token.clone(), now + NON_LIFETIME),
            );
            self.sent_non_deadlines
                .insert((now + NON_LIFETIME, peer, message.header.message_id));
            Phase::AwaitingResponse {
                deadline: now + MAX_TRANSMIT_WAIT,
                transmissions: 1,
            }
        };
        if confirmable || is_request {
            self.track(
                id,
                Outgoing {
                    peer,
                    message_id: message.header.message_id,
                    token,
                    bytes,
                    is_request,
                    registers_observation,
                    phase,
                },
            );
        }
        id
    }

    /// Starts tracking an outgoing message, with its indexes.
    fn track(&mut self, id: ExchangeId, out: Outgoing) {
        self.timers.insert((out.phase.due(), id));
        self.by_message_id.insert((out.peer, out.message_id), id);
        self.by_token.entry(out.token.clone()).or_default().push(id);
        self.outgoing.insert(id, out);
    }

    /// Stops tracking an outgoing message, with its indexes.
    fn untrack(&mut self, id: ExchangeId) -> Option<Outgoing> {
        let out = self.outgoing.remove(&id)?;
        self.timers.remove(&(out.phase.due(), id));
        let key = (out.peer, out.message_id);
        if self.by_message_id.get(&key) == Some(&id) {
            self.by_message_id.remove(&key);
        }
        if let Some(ids) = self.by_token.get_mut(&out.token) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_token.remove(&out.token);
            }
        }
        Some(out)
    }

    /// Answers a request: piggybacked in the ACK for a CON, as a NON with a new
    /// message id for a NON (RFC 7252 §5.2.1, §5.2.3). The reply is cached so a
    /// duplicate of the request gets it again without reaching the owner.
    pub fn respond(&mut self, peer: SocketAddr, request: &Packet, mut response: Packet) {
        response.set_token(request.get_token().to_vec());
        if request.header.get_type() == MessageType::Confirmable {
            response.header.set_type(MessageType::Acknowledgement);
            response.header.message_id = request.header.message_id;
        } else {
            response.header.set_type(MessageType::NonConfirmable);
            response.header.message_id = self.next_message_id();
        }
        let bytes = wire::encode(&response);
        self.reply(peer, request.header.message_id, bytes);
    }

    /// Acknowledges a CON with an Empty ACK (no-op for other types).
    pub fn acknowledge(&mut self, peer: SocketAddr, message: &Packet) {
        if message.header.get_type() == MessageType::Confirmable {
            let bytes = wire::empty(MessageType::Acknowledgement, message.header.message_id);
            self.reply(peer, message.header.message_id, bytes);
        }
    }

    /// Rejects a CON or NON with a Reset (RFC 7252 §4.2, §4.3; RFC 7641 §3.6).
    pub fn reject(&mut self, peer: SocketAddr, message: &Packet) {
        if matches!(
            message.header.get_type(),
            MessageType::Confirmable | MessageType::NonConfirmable
        ) {
            let bytes = wire::empty(MessageType::Reset, message.header.message_id);
            self.reply(peer, message.header.message_id, bytes);
        }
    }

    fn reply(&mut self, peer: SocketAddr, message_id: u16, bytes: Vec<u8>) {
        self.seen.answer(peer, message_id, &bytes);
        tracing::trace!(%peer, summary = %super::summarize(&bytes), "reply");
        self.transmits.push_back(Transmit {
            destination: peer,
            payload: bytes,
        });
    }

    /// Stops tracking a message: no more retransmissions, no response event.
    pub fn cancel(&mut self, id: ExchangeId) {
        self.untrack(id);
    }

    /// Sends the rest of exchange `id` — its retransmissions — to `peer`,
    /// and matches its ACK and response from there: the peer was seen to
    /// move (NAT rebinding, LwM2M 1.1 Core §6.2.2). Returns whether the
    /// exchange is still tracked.
    pub fn redirect(&mut self, id: ExchangeId, peer: SocketAddr) -> bool {
        match self.outgoing.get_mut(&id) {
            Some(out) => {
                let old = (out.peer, out.message_id);
                if self.by_message_id.get(&old) == Some(&id) {
                    self.by_message_id.remove(&old);
                }
                out.peer = peer;
                self.by_message_id.insert((peer, out.message_id), id);
                true
            }
            None => false,
        }
    }

    /// How many times the message of exchange `id` has been sent so far
    /// (1, then one more per retransmission, RFC 7252 §4.2), while the layer
    /// still tracks it. Lets an owner count retransmissions per exchange,
    /// e.g. for a block-wise transfer's figures.
    pub fn transmissions(&self, id: ExchangeId) -> Option<u32> {
        self.outgoing.get(&id).map(|o| match o.phase {
            Phase::AwaitingAck { transmissions, .. }
            | Phase::AwaitingResponse { transmissions, .. } => transmissions,
        })
    }

    /// The peer's session ended with its message `message_id` (the server
    /// answered its De-register): its earlier messages are forgotten once
    /// no copy of them can still arrive, MAX_TRANSMIT_SPAN + MAX_LATENCY
    /// after now, instead of EXCHANGE_LIFETIME after each; `message_id`'s
    /// own answer stays for its EXCHANGE_LIFETIME (RFC 7252 §4.5, §4.8.2;
    /// `coap/dedup.rs`).
    pub fn end_of_session(&mut self, now: Instant, peer: SocketAddr, message_id: u16) {
        self.seen.end_session(now, peer, message_id);
    }

    /// What the duplicate cache holds.
    pub fn duplicate_cache(&self) -> DuplicateCacheStats {
        self.seen.stats()
    }

    /// When `handle_timeout` would forget something from the duplicate
    /// cache: not a protocol deadline (so not in `poll_timeout`, which
    /// owners run to idle), but an owner that wants a quiet server to give
    /// memory back calls `handle_timeout` then. Rounded up to a whole
    /// second, so that a burst of entries costs one wake-up a second.
    pub fn poll_housekeeping(&self) -> Option<Instant> {
        self.seen.next_due()
    }

    /// Whether a message is still tracked (awaiting its ACK or response).
    pub fn is_pending(&self, id: ExchangeId) -> bool {
        self.outgoing.contains_key(&id)
    }

    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.expire(now);
        let message = match wire::decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                let header = wire::RawHeader::peek(datagram);
                // §4.2/§4.3: a CON with a message format error is rejected
                // with Reset; other types (and wrong versions, §3) are dropped.
                if let Some(h) =
                    header.filter(|h| h.version == 1 && h.message_type == MessageType::Confirmable)
                {
                    self.transmits.push_back(Transmit {
                        destination: peer,
                        payload: wire::empty(MessageType::Reset, h.message_id),
                    });
                }
                tracing::debug!(%peer, error = %e, bytes = %hex::encode(&datagram[..datagram.len().min(64)]), "undecodable datagram");
                self.events.push_back(ExchangeEvent::Malformed {
                    peer,
                    reason: e.to_string(),
                });
                return;
            }
        };
        tracing::trace!(%peer, summary = %super::summarize(datagram), "recv");
        let raw: u8 = message.header.code.into();
        let message_id = message.header.message_id;
        match message.header.get_type() {
            t @ (MessageType::Confirmable | MessageType::NonConfirmable) => {
                let confirmable = t == MessageType::Confirmable;
                if let Some(replay) = self.seen.duplicate(peer, message_id) {
                    // §4.5: duplicate. Replay our answer to a CON; drop a NON.
                    if let (true, Some(reply)) = (confirmable, replay) {
                        tracing::debug!(%peer, message_id, "duplicate CON, replaying the cached reply");
                        self.transmits.push_back(Transmit {
                            destination: peer,
                            payload: reply,
                        });
                    } else {
                        tracing::debug!(%peer, message_id, "duplicate message dropped");
                    }
                    return;
                }
                self.seen.insert(now, peer, message_id, confirmable);
                if raw == 0 {
                    // A CON Empty message is a "CoAP ping", answered with Reset
                    // (§4.3); a NON Empty message is meaningless and dropped.
                    if confirmable {
                        self.reject(peer, &message);
                    }
                } else if code::is_request(raw) {
                    self.events
                        .push_back(ExchangeEvent::Request { peer, message });
                } else if let Some(id) = self.match_response(peer, &message) {
                    self.untrack(id);
                    self.acknowledge(peer, &message);
                    self.events
                        .push_back(ExchangeEvent::Response { id, peer, message });
                } else {
                    self.events
                        .push_back(ExchangeEvent::Unsolicited { peer, message });
                }
            }
            MessageType::Acknowledgement => {
                let Some(id) = self.match_message_id(peer, message_id) else {
                    tracing::debug!(%peer, message_id, "ACK matches nothing outstanding (late or duplicate)");
                    return;
                };
                let Some(out) = self.outgoing.get_mut(&id) else {
                    return;
                };
                if raw == 0 {
                    if out.is_request {
                        // §5.2.2: separate response follows.
                        let transmissions = match out.phase {
                            Phase::AwaitingAck { transmissions, .. } => transmissions,
                            Phase::AwaitingResponse { transmissions, .. } => transmissions,
                        };
                        self.timers.remove(&(out.phase.due(), id));
                        out.phase = Phase::AwaitingResponse {
                            deadline: now + MAX_TRANSMIT_WAIT,
                            transmissions,
                        };
                        self.timers.insert((out.phase.due(), id));
                    } else {
                        self.untrack(id);
                        self.events.push_back(ExchangeEvent::Acknowledged { id });
                    }
                } else if out.is_request && out.token == message.get_token() {
                    self.untrack(id);
                    self.events
                        .push_back(ExchangeEvent::Response { id, peer, message });
                } else {
                    tracing::debug!(%peer, message_id, "ACK carries a response with the wrong token; ignored");
                }
            }
            MessageType::Reset => {
                if let Some(id) = self.match_message_id(peer, message_id) {
                    let out = self.untrack(id);
                    self.events.push_back(ExchangeEvent::Reset {
                        id: Some(id),
                        peer,
                        token: out.map(|o| o.token),
                    });
                } else if let Some((token, _)) = self.sent_non.remove(&(peer, message_id)) {
                    self.events.push_back(ExchangeEvent::Reset {
                        id: None,
                        peer,
                        token: Some(token),
                    });
                } else {
                    tracing::debug!(%peer, message_id, "Reset matches nothing we sent recently");
                }
            }
        }
    }

    fn match_message_id(&self, peer: SocketAddr, message_id: u16) -> Option<ExchangeId> {
        let id = *self.by_message_id.get(&(peer, message_id))?;
        self.outgoing
            .get(&id)
            .is_some_and(|o| matches!(o.phase, Phase::AwaitingAck { .. }))
            .then_some(id)
    }

    /// The request a separate response answers: same peer and token
    /// (RFC 7252 §5.3.2). A response with an Observe option answers only a
    /// request that registers an observation: when a notification crosses a
    /// Cancel-Observe GET, which reuses the observation's token (RFC 7641
    /// §3.6), the notification is not the cancel's answer, and the cancel
    /// goes on being retransmitted until its own answer comes.
    fn match_response(&self, peer: SocketAddr, message: &Packet) -> Option<ExchangeId> {
        let token = message.get_token();
        let notification = message.get_option(CoapOption::Observe).is_some();
        self.by_token
            .get(token)?
            .iter()
            .copied()
            .filter(|id| {
                self.outgoing.get(id).is_some_and(|o| {
                    o.is_request && o.peer == peer && (o.registers_observation || !notification)
                })
            })
            .min()
    }

    /// Retransmits what is due and gives up on what has waited too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        let mut due: Vec<ExchangeId> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        due.sort();
        for id in due {
            let Some(out) = self.outgoing.get_mut(&id) else {
                continue;
            };
            match &mut out.phase {
                Phase::AwaitingAck {
                    transmissions,
                    timeout,
                    next,
                } if *transmissions <= MAX_RETRANSMIT => {
                    self.timers.remove(&(*next, id));
                    *transmissions += 1;
                    *timeout *= 2;
                    *next = now + *timeout;
                    self.timers.insert((*next, id));
                    tracing::debug!(peer = %out.peer, message_id = out.message_id, transmission = *transmissions, "retransmitting");
                    self.transmits.push_back(Transmit {
                        destination: out.peer,
                        payload: out.bytes.clone(),
                    });
                }
                Phase::AwaitingAck { transmissions, .. }
                | Phase::AwaitingResponse { transmissions, .. } => {
                    let transmissions = *transmissions;
                    if let Some(out) = self.untrack(id) {
                        tracing::debug!(peer = %out.peer, message_id = out.message_id, transmissions, "exchange timed out");
                        self.events.push_back(ExchangeEvent::Timeout {
                            id,
                            peer: out.peer,
                            token: out.token,
                            transmissions,
                        });
                    }
                }
            }
        }
    }

    /// Forgets what is past its lifetime (`expires <= now`), visiting only
    /// the due deadlines. A deadline whose entry was replaced or removed
    /// since is dropped without touching the entry.
    fn expire(&mut self, now: Instant) {
        self.seen.expire(now);
        super::shrink::if_sparse(&mut self.sent_non);
        while let Some(&(at, peer, id)) = self.sent_non_deadlines.first() {
            if at > now {
                break;
            }
            self.sent_non_deadlines.pop_first();
            if self
                .sent_non
                .get(&(peer, id))
                .is_some_and(|(_, expires)| *expires == at)
            {
                self.sent_non.remove(&(peer, id));
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ExchangeEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called (retransmissions and response deadlines).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coap_lite::{CoapOption, MessageClass, RequestType, ResponseType};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn get(path: &str) -> Packet {
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(RequestType::Get);
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        p
    }

    fn content(payload: &[u8]) -> Packet {
        let mut p = Packet::new();
        p.header.code = MessageClass::Response(ResponseType::Content);
        p.payload = payload.to_vec();
        p
    }

    fn drain(layer: &mut MessageLayer) -> Vec<Transmit> {
        std::iter::from_fn(|| layer.poll_transmit()).collect()
    }

    fn events(layer: &mut MessageLayer) -> Vec<ExchangeEvent> {
        std::iter::from_fn(|| layer.poll_event()).collect()
    }

    #[test]
    fn con_is_retransmitted_with_doubling_timeouts_then_times_out() {
        // RFC 7252 §4.2: initial timeout in [ACK_TIMEOUT, ACK_TIMEOUT*ACK_RANDOM_FACTOR],
        // doubled on each of MAX_RETRANSMIT retransmissions.
        for seed in 0..20 {
            let t0 = Instant::now();
            let mut layer = MessageLayer::new(seed);
            let id = layer.send(t0, addr(5683), get("/3/0"), true);
            let first = drain(&mut layer);
            assert_eq!(first.len(), 1);
            let mut sent_at = vec![t0];
            let mut now = t0;
            for _ in 0..10 {
                let Some(deadline) = layer.poll_timeout() else {
                    break;
                };
                now = deadline;
                layer.handle_timeout(now);
                let tx = drain(&mut layer);
                assert!(
                    tx.iter().all(|t| t.payload == first[0].payload),
                    "retransmission is byte-identical"
                );
                if !tx.is_empty() {
                    sent_at.push(now);
                }
            }
            assert_eq!(
                sent_at.len(),
                5,
                "1 transmission + MAX_RETRANSMIT retransmissions"
            );
            let initial = sent_at[1] - sent_at[0];
            assert!(
                initial >= ACK_TIMEOUT && initial <= ACK_TIMEOUT.mul_f64(ACK_RANDOM_FACTOR),
                "{initial:?}"
            );
            for (i, w) in sent_at.windows(2).enumerate() {
                assert_eq!(w[1] - w[0], initial * (1 << i), "interval {i} doubles");
            }
            assert_eq!(
                now - t0,
                initial * 31,
                "gives up after the last timeout (31 x initial)"
            );
            let ev = events(&mut layer);
            assert!(
                matches!(&ev[..], [ExchangeEvent::Timeout { id: i, transmissions: 5, .. }] if *i == id),
                "{ev:?}"
            );
            assert_eq!(layer.poll_timeout(), None);
        }
    }

    #[test]
    fn piggybacked_response_completes_the_request() {
        let now = Instant::now();
        let (mut a, mut b) = (MessageLayer::new(1), MessageLayer::new(2));
        let id = a.send(now, addr(2), get("/3/0/0"), true);
        let req = drain(&mut a).remove(0);
        b.handle_datagram(now, addr(1), &req.payload);
        let Some(ExchangeEvent::Request { message, .. }) = b.poll_event() else {
            panic!("no request")
        };
        b.respond(addr(1), &message, content(b"x"));
        let resp = drain(&mut b).remove(0);
        let decoded = wire::decode(&resp.payload).unwrap();
        assert_eq!(decoded.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(decoded.header.message_id, message.header.message_id);
        assert_eq!(decoded.get_token(), message.get_token());
        a.handle_datagram(now, addr(2), &resp.payload);
        assert!(matches!(a.poll_event(), Some(ExchangeEvent::Response { id: i, .. }) if i == id));
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn duplicate_con_gets_the_cached_reply_and_no_second_event() {
        let now = Instant::now();
        let (mut a, mut b) = (MessageLayer::new(1), MessageLayer::new(2));
        a.send(now, addr(2), get("/3/0/0"), true);
        let req = drain(&mut a).remove(0);
        b.handle_datagram(now, addr(1), &req.payload);
        let Some(ExchangeEvent::Request { message, .. }) = b.poll_event() else {
            panic!()
        };
        b.respond(addr(1), &message, content(b"first"));
        let first = drain(&mut b);
        b.handle_datagram(now + Duration::from_secs(3), addr(1), &req.payload);
        assert_eq!(b.poll_event(), None, "duplicate not delivered");
        assert_eq!(drain(&mut b), first, "same reply replayed");
        // After EXCHANGE_LIFETIME the id is forgotten and the message is new again.
        b.handle_datagram(
            now + EXCHANGE_LIFETIME + Duration::from_secs(1),
            addr(1),
            &req.payload,
        );
        assert!(matches!(
            b.poll_event(),
            Some(ExchangeEvent::Request { .. })
        ));
        // The same message id from another peer is a different message.
        b.handle_datagram(now, addr(3), &req.payload);
        assert!(matches!(
            b.poll_event(),
            Some(ExchangeEvent::Request { .. })
        ));
    }

    #[test]
    fn separate_response_is_acknowledged_and_matched_by_token() {
        let now = Instant::now();
        let mut a = MessageLayer::new(1);
        let id = a.send(now, addr(2), get("/5/0/3"), true);
        let req = wire::decode(&drain(&mut a).remove(0).payload).unwrap();
        // Empty ACK: retransmission stops, the response is still awaited.
        a.handle_datagram(
            now,
            addr(2),
            &wire::empty(MessageType::Acknowledgement, req.header.message_id),
        );
        assert_eq!(a.poll_event(), None);
        assert_eq!(a.poll_timeout(), Some(now + MAX_TRANSMIT_WAIT));
        // Separate CON response with a different message id and the same token.
        let mut resp = content(b"2");
        resp.header.set_type(MessageType::Confirmable);
        resp.header.message_id = 0x7777;
        resp.set_token(req.get_token().to_vec());
        a.handle_datagram(now, addr(2), &wire::encode(&resp));
        assert!(matches!(a.poll_event(), Some(ExchangeEvent::Response { id: i, .. }) if i == id));
        assert_eq!(
            drain(&mut a)[0].payload,
            vec![0x60, 0x00, 0x77, 0x77],
            "empty ACK for the separate response"
        );
    }

    #[test]
    fn separate_response_never_coming_times_out() {
        let now = Instant::now();
        let mut a = MessageLayer::new(1);
        a.send(now, addr(2), get("/5/0/3"), true);
        let req = wire::decode(&drain(&mut a).remove(0).payload).unwrap();
        a.handle_datagram(
            now,
            addr(2),
            &wire::empty(MessageType::Acknowledgement, req.header.message_id),
        );
        a.handle_timeout(now + MAX_TRANSMIT_WAIT);
        assert!(matches!(
            a.poll_event(),
            Some(ExchangeEvent::Timeout {
                transmissions: 1,
                ..
            })
        ));
    }

    #[test]
    fn undecodable_con_and_ping_get_reset_others_are_dropped() {
        let now = Instant::now();
        let mut b = MessageLayer::new(2);
        // CON GET with a truncated token (TKL 4, 1 byte): format error -> RST.
        b.handle_datagram(now, addr(1), &[0x44, 0x01, 0x12, 0x34, 0xaa]);
        assert_eq!(drain(&mut b)[0].payload, vec![0x70, 0x00, 0x12, 0x34]);
        assert!(matches!(
            b.poll_event(),
            Some(ExchangeEvent::Malformed { .. })
        ));
        // NON with the same error: silently dropped (still reported).
        b.handle_datagram(now, addr(1), &[0x54, 0x01, 0x12, 0x35, 0xaa]);
        assert!(drain(&mut b).is_empty());
        assert!(matches!(
            b.poll_event(),
            Some(ExchangeEvent::Malformed { .. })
        ));
        // CoAP ping (CON Empty) -> RST, no event.
        b.handle_datagram(now, addr(1), &[0x40, 0x00, 0x00, 0x09]);
        assert_eq!(drain(&mut b)[0].payload, vec![0x70, 0x00, 0x00, 0x09]);
        assert_eq!(b.poll_event(), None);
        // Garbage of every short length never panics.
        for len in 0..8 {
            b.handle_datagram(now, addr(1), &vec![0xff; len]);
        }
    }

    #[test]
    fn reset_of_a_non_is_traced_to_its_token() {
        let now = Instant::now();
        let mut a = MessageLayer::new(1);
        let mut note = content(b"1");
        note.set_token(vec![9, 9]);
        a.send(now, addr(2), note, false);
        let sent = wire::decode(&drain(&mut a).remove(0).payload).unwrap();
        assert_eq!(sent.header.get_type(), MessageType::NonConfirmable);
        a.handle_datagram(
            now,
            addr(2),
            &wire::empty(MessageType::Reset, sent.header.message_id),
        );
        assert_eq!(
            a.poll_event(),
            Some(ExchangeEvent::Reset {
                id: None,
                peer: addr(2),
                token: Some(vec![9, 9])
            })
        );
    }

    #[test]
    fn con_notification_ack_is_reported() {
        let now = Instant::now();
        let mut a = MessageLayer::new(1);
        let mut note = content(b"1");
        note.set_token(vec![1]);
        let id = a.send(now, addr(2), note, true);
        let sent = wire::decode(&drain(&mut a).remove(0).payload).unwrap();
        a.handle_datagram(
            now,
            addr(2),
            &wire::empty(MessageType::Acknowledgement, sent.header.message_id),
        );
        assert_eq!(a.poll_event(), Some(ExchangeEvent::Acknowledged { id }));
        // A second (duplicate) ACK matches nothing and is ignored.
        a.handle_datagram(
            now,
            addr(2),
            &wire::empty(MessageType::Acknowledgement, sent.header.message_id),
        );
        assert_eq!(a.poll_event(), None);
    }
}
