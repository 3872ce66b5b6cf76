//! Queue Mode on the server side (LwM2M 1.1 Core §6.5, Transport §6.2.1
//! "Q"; 1.0 binding `UQ`): a client in queue mode is reachable only for a
//! while after it last sent something, and sleeps (its radio off, in PSM)
//! the rest of the time. The server must not send to it while it sleeps —
//! the datagram would be lost and, Confirmable, retransmitted into the void
//! until it times out — so it holds its requests and sends them, in the
//! order they were made, when the client next talks (Core §6.5: "the LwM2M
//! Server ... MUST queue all the requests to the LwM2M Client and send them
//! when the LwM2M Client is online", which the client announces by an
//! Update or any other message).
//!
//! How long the client stays awake after a message is its own setting; the
//! TS says MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2, 93 s) by default, so that is
//! this server's belief too unless told otherwise
//! ([`super::Server::set_queue_awake_window`]): a rig whose device keeps a
//! shorter awake time says so, and the server's belief matches the device.
//!
//! A request held until the registration expires (the client never came
//! back within its lifetime, Core §6.2.2) fails with
//! [`super::RequestError::NeverWoke`], naming how long it waited.
//!
//! Cost: the next "falls asleep" instant comes from a deadline-ordered set
//! (lazy deletion: a stale entry is skipped when its instant passes); the
//! device a datagram came from is found by its address in a map. Nothing
//! walks every registration.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{DmRequest, Registration, RequestError, RequestId, Server, ServerEvent};
use crate::coap::exchange::MAX_TRANSMIT_WAIT;
use crate::path::Path;

/// How long the server believes a queue-mode client awake after a message
/// from it unless configured: MAX_TRANSMIT_WAIT (LwM2M 1.1 Core §6.5,
/// RFC 7252 §4.8.2).
pub const DEFAULT_AWAKE_WINDOW: Duration = MAX_TRANSMIT_WAIT;

/// What queue mode did, for a case (or a lab engineer) to see.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEvent {
    /// The awake window after the client's last message passed: the server
    /// now believes it asleep and holds what it is asked to send.
    Asleep {
        endpoint: String,
        /// When the client woke: its first message after the last sleep
        /// (or its Register).
        awake_since: Instant,
        /// When the client was last heard from.
        last_heard: Instant,
        /// How long it was awake: from `awake_since` to the end of the
        /// window after `last_heard`. With the window set to the device's
        /// own awake time, the time its radio was on.
        awake: Duration,
    },
    /// A request made while the client sleeps was held, not sent.
    Held {
        id: RequestId,
        endpoint: String,
        path: Path,
        /// Requests held for this client, this one included.
        queued: usize,
    },
    /// A held request was sent because the client talked again.
    Delivered {
        id: RequestId,
        endpoint: String,
        path: Path,
        held_for: Duration,
    },
}

impl fmt::Display for QueueEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueEvent::Asleep {
                endpoint, awake, ..
            } => write!(
                f,
                "queue mode: {endpoint} is asleep (awake window passed after {:.3} s awake)",
                awake.as_secs_f64()
            ),
            QueueEvent::Held {
                id,
                endpoint,
                path,
                queued,
            } => write!(
                f,
                "queue mode: request #{} for {path} held while {endpoint} sleeps ({queued} held)",
                id.0
            ),
            QueueEvent::Delivered {
                id,
                endpoint,
                path,
                held_for,
            } => write!(
                f,
                "queue mode: request #{} for {path} sent to {endpoint} after {:.3} s held",
                id.0,
                held_for.as_secs_f64()
            ),
        }
    }
}

/// A request waiting for its client to wake.
#[derive(Debug)]
pub(super) struct Held {
    pub id: RequestId,
    pub request: DmRequest,
    pub since: Instant,
}

/// One queue-mode client.
#[derive(Debug)]
struct Device {
    peer: SocketAddr,
    /// When a message from it last arrived.
    last_heard: Instant,
    /// When it woke (its first message after a sleep).
    awake_since: Instant,
    /// Until when the server believes it awake.
    awake_until: Instant,
    /// Set once the `Asleep` event for the current sleep was published.
    asleep_announced: bool,
    held: VecDeque<Held>,
}

/// The server's picture of its queue-mode clients.
///
/// `released` holds requests of a client that left queue mode by an
/// Update: they go out right after the answer to that Update, like those
/// of a client that woke.
#[derive(Debug)]
pub(super) struct QueueMode {
    window: Duration,
    devices: HashMap<String, Device>,
    /// Queue-mode clients by the address they last sent from.
    peers: HashMap<SocketAddr, String>,
    /// (falls asleep at, endpoint); entries whose instant no longer matches
    /// the device's `awake_until` are stale and skipped.
    sleeps: BTreeSet<(Instant, String)>,
    released: Vec<(String, Held)>,
}

impl QueueMode {
    pub fn new() -> Self {
        QueueMode {
            window: DEFAULT_AWAKE_WINDOW,
            devices: HashMap::new(),
            peers: HashMap::new(),
            sleeps: BTreeSet::new(),
            released: Vec::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Applies at once: a device believed awake is now awake until the new
    /// window after the last message from it (a case sets the window after
    /// the device registered, and must not wait out the old one).
    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
        for (endpoint, device) in &mut self.devices {
            if device.asleep_announced {
                continue;
            }
            device.awake_until = device.last_heard + window;
            self.sleeps.insert((device.awake_until, endpoint.clone()));
        }
    }

    /// After a Register or Update: a queue-mode client is tracked (at the
    /// address it now uses) and awake; one that left queue mode is not, and
    /// what was held for it is released, to be sent with the next
    /// [`QueueMode::heard_from`].
    pub fn track(&mut self, now: Instant, reg: &Registration) {
        if !reg.queue_mode {
            let held = self.forget(&reg.endpoint);
            self.released
                .extend(held.into_iter().map(|h| (reg.endpoint.clone(), h)));
            return;
        }
        let device = self
            .devices
            .entry(reg.endpoint.clone())
            .or_insert_with(|| Device {
                peer: reg.peer,
                last_heard: now,
                awake_since: now,
                awake_until: now,
                asleep_announced: false,
                held: VecDeque::new(),
            });
        if device.peer != reg.peer {
            self.peers.remove(&device.peer);
            device.peer = reg.peer;
        }
        self.peers.insert(reg.peer, reg.endpoint.clone());
        self.heard(now, &reg.endpoint);
    }

    /// A datagram came from `peer`: if it is a queue-mode client, it is
    /// awake now. Returns what may be sent now, in the order it was asked
    /// for: what was held for that client, and what was released.
    pub fn heard_from(&mut self, now: Instant, peer: SocketAddr) -> Vec<(String, Held)> {
        let mut ready = std::mem::take(&mut self.released);
        if let Some(endpoint) = self.peers.get(&peer).cloned() {
            self.heard(now, &endpoint);
            if let Some(device) = self.devices.get_mut(&endpoint) {
                ready.extend(device.held.drain(..).map(|h| (endpoint.clone(), h)));
            }
        }
        ready
    }

    /// Marks `endpoint` awake from `now` for the window.
    fn heard(&mut self, now: Instant, endpoint: &str) {
        let Some(device) = self.devices.get_mut(endpoint) else {
            return;
        };
        if device.asleep_announced || device.awake_until <= now {
            device.awake_since = now;
        }
        device.last_heard = now;
        let until = now + self.window;
        if until > device.awake_until || device.asleep_announced {
            device.awake_until = until;
            self.sleeps.insert((until, endpoint.to_owned()));
        }
        device.asleep_announced = false;
    }

    /// Whether the server believes `endpoint` asleep at `now`: a queue-mode
    /// client whose awake window has passed.
    pub fn is_asleep(&self, endpoint: &str, now: Instant) -> bool {
        self.devices
            .get(endpoint)
            .is_some_and(|d| d.awake_until <= now)
    }

    /// Holds a request for a sleeping client; returns how many are held.
    pub fn hold(&mut self, endpoint: &str, held: Held) -> usize {
        match self.devices.get_mut(endpoint) {
            Some(d) => {
                d.held.push_back(held);
                d.held.len()
            }
            None => 0,
        }
    }

    /// The registration ended: stops tracking the client and returns what
    /// was still held for it.
    pub fn forget(&mut self, endpoint: &str) -> Vec<Held> {
        let Some(device) = self.devices.remove(endpoint) else {
            return Vec::new();
        };
        if self.peers.get(&device.peer).is_some_and(|e| e == endpoint) {
            self.peers.remove(&device.peer);
        }
        device.held.into_iter().collect()
    }

    /// The next instant a client falls asleep (stale entries included: a
    /// timeout that finds nothing due costs one look).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sleeps.first().map(|(at, _)| *at)
    }

    /// Clients whose awake window has passed by `now`, each reported once
    /// per sleep.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<QueueEvent> {
        let mut asleep = Vec::new();
        while let Some((at, endpoint)) = self.sleeps.first().cloned() {
            if at > now {
                break;
            }
            self.sleeps.pop_first();
            let Some(device) = self.devices.get_mut(&endpoint) else {
                continue;
            };
            if device.awake_until != at || device.asleep_announced {
                continue;
            }
            device.asleep_announced = true;
            tracing::debug!(%endpoint, "queue mode: awake window passed; the client is asleep");
            asleep.push(QueueEvent::Asleep {
                endpoint,
                awake_since: device.awake_since,
                last_heard: device.last_heard,
                awake: at.saturating_duration_since(device.awake_since),
            });
        }
        asleep
    }
}

/// The server's side of queue mode: the hooks `mod.rs` calls.
impl Server {
    /// How long the server believes a queue-mode client awake after each
    /// message from it (LwM2M 1.1 Core §6.5; default
    /// [`DEFAULT_AWAKE_WINDOW`]). Set it to the device's own awake time
    /// (the rig knows it) so that the server's belief and the device agree.
    pub fn set_queue_awake_window(&mut self, window: Duration) {
        self.queue.set_window(window);
    }

    pub fn queue_awake_window(&self) -> Duration {
        self.queue.window()
    }

    /// Whether the server believes `endpoint` asleep: registered in queue
    /// mode and not heard from within the awake window.
    pub fn is_asleep(&self, endpoint: &str, now: Instant) -> bool {
        self.registrations.contains_key(endpoint) && self.queue.is_asleep(endpoint, now)
    }

    /// How many requests wait for `endpoint` to wake.
    pub fn held_requests(&self, endpoint: &str) -> usize {
        self.queue.held_count(endpoint)
    }

    /// Holds `request` for a sleeping client under a fresh id; its
    /// `Response` comes once it has been sent and answered.
    pub(super) fn hold_request(
        &mut self,
        now: Instant,
        endpoint: &str,
        request: DmRequest,
    ) -> Result<RequestId, RequestError> {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let path = request.path();
        let queued = self.queue.hold(
            endpoint,
            Held {
                id,
                request,
                since: now,
            },
        );
        tracing::info!(%endpoint, %path, request = id.0, queued, "queue mode: client asleep; request held");
        self.events.push_back(ServerEvent::Queue(QueueEvent::Held {
            id,
            endpoint: endpoint.to_owned(),
            path,
            queued,
        }));
        Ok(id)
    }

    /// After a datagram from `peer`: a queue-mode client is awake again,
    /// and what was held for it goes out now, in order, each under the id
    /// it was given when held.
    pub(super) fn queue_heard_from(&mut self, now: Instant, peer: SocketAddr) {
        for (endpoint, held) in self.queue.heard_from(now, peer) {
            let path = held.request.path();
            let held_for = now.saturating_duration_since(held.since);
            tracing::info!(%endpoint, %path, request = held.id.0, ?held_for, "queue mode: client awake; held request sent");
            self.events
                .push_back(ServerEvent::Queue(QueueEvent::Delivered {
                    id: held.id,
                    endpoint: endpoint.clone(),
                    path,
                    held_for,
                }));
            // `request` numbers what it sends with `next_request`: lend it
            // the held id, so that the answer carries the id the caller
            // was given, and take the counter back after.
            let next = self.next_request;
            self.next_request = held.id.0;
            let sent = self.request(now, &endpoint, held.request);
            self.next_request = next;
            if let Err(error) = sent {
                self.events.push_back(ServerEvent::Response {
                    id: held.id,
                    endpoint,
                    result: Err(error),
                });
            }
        }
    }

    /// Publishes which clients fell asleep by `now`.
    pub(super) fn queue_timeouts(&mut self, now: Instant) {
        for event in self.queue.handle_timeout(now) {
            self.events.push_back(ServerEvent::Queue(event));
        }
    }

    /// The registration of `endpoint` ends: what was held for it fails —
    /// with [`RequestError::NeverWoke`] when it `expired` (the client never
    /// talked again within its lifetime), else as any request of an ended
    /// registration does.
    pub(super) fn queue_fail_held(&mut self, now: Instant, endpoint: &str, expired: bool) {
        let lifetime = self.registrations.get(endpoint).map(|r| r.lifetime);
        for held in self.queue.forget(endpoint) {
            let held_for = now.saturating_duration_since(held.since);
            let error = match (expired, lifetime) {
                (true, Some(lifetime)) => RequestError::NeverWoke { held_for, lifetime },
                _ => RequestError::RegistrationEnded,
            };
            tracing::warn!(%endpoint, request = held.id.0, %error, "queue mode: held request never sent");
            self.events.push_back(ServerEvent::Response {
                id: held.id,
                endpoint: endpoint.to_owned(),
                result: Err(error),
            });
        }
    }

    /// After a Register or Update of `endpoint`.
    pub(super) fn queue_track(&mut self, now: Instant, endpoint: &str) {
        if let Some(reg) = self.registrations.get(endpoint) {
            self.queue.track(now, reg);
        }
    }
}

impl QueueMode {
    /// How many requests are held for `endpoint`.
    pub fn held_count(&self, endpoint: &str) -> usize {
        self.devices.get(endpoint).map_or(0, |d| d.held.len())
    }
}
