//! State the UDP task publishes and every `ServerHandle` reads: the event
//! history, the message log, and a snapshot of the registrations.
//!
//! The sans-IO `Server` itself stays inside the task (it is the only writer);
//! handles see copies, so a slow test step never blocks the protocol.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lwm2m::path::Path;
use lwm2m::server::{DmRequest, Registration, RequestError, RequestId, ServerEvent};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::ServerError;
use crate::event_history::{EventHistory, EventSeq, HistoryEvent};
use crate::message_log::{Direction, MessageLog};

/// What a handle asks the task to do.
pub(crate) enum Command {
    Request {
        endpoint: String,
        request: DmRequest,
        reply: oneshot::Sender<Result<RequestId, RequestError>>,
    },
    /// Forget an observation without telling the client; the answer is its
    /// token, if there was one (see `ServerHandle::forget_observation`).
    ForgetObservation {
        endpoint: String,
        path: Path,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// How long queue-mode clients are believed awake after each message
    /// (see `lwm2m::server::Server::set_queue_awake_window`).
    SetQueueAwakeWindow(std::time::Duration),
    /// Send `trigger` (if any), then forget the registration without telling
    /// the client, in one turn of the loop so that the trigger's datagram is
    /// out before, and nothing from the client is handled between; the
    /// answer is the location it had (see
    /// `ServerHandle::discard_registration`).
    DiscardRegistration {
        endpoint: String,
        trigger: Option<DmRequest>,
        reply: oneshot::Sender<Result<String, RequestError>>,
    },
    Shutdown,
}

pub(crate) struct State<E = ServerEvent> {
    pub(crate) events: EventHistory<E>,
    pub(crate) log: MessageLog,
    /// Shared with the core's own (see `Server::registration_shared`).
    /// Keyed by the core's own endpoint name, shared too.
    pub(crate) registrations: BTreeMap<Arc<str>, Arc<Registration>>,
}

pub(crate) struct Shared<E = ServerEvent> {
    state: Mutex<State<E>>,
    /// The datagrams as the network saw them (its own lock: the firmware
    /// file servers record into the LwM2M server's capture too).
    pub(crate) capture: crate::Capture,
    /// Carries the latest event sequence number; bumped (also with no new
    /// event) to wake waiters, e.g. when the task stops.
    wake: watch::Sender<u64>,
    closed: AtomicBool,
    /// Set once the socket is known (`udp_loop::spawn`).
    receive_drops: std::sync::OnceLock<crate::receive_drops::ReceiveDrops>,
}

impl<E: HistoryEvent> Shared<E> {
    pub(crate) fn new(log_capacity: usize, event_capacity: usize) -> Self {
        Shared {
            state: Mutex::new(State {
                events: EventHistory::new(event_capacity),
                log: MessageLog::new(log_capacity),
                registrations: BTreeMap::new(),
            }),
            capture: crate::Capture::new(log_capacity),
            wake: watch::Sender::new(0),
            closed: AtomicBool::new(false),
            receive_drops: std::sync::OnceLock::new(),
        }
    }

    /// Counts from now on what the kernel drops for `socket`'s full buffer.
    pub(crate) fn watch_receive_drops(&self, socket: &std::net::UdpSocket) {
        let _ = self
            .receive_drops
            .set(crate::receive_drops::ReceiveDrops::of(socket));
    }

    /// See [`crate::Stats::receive_buffer_drops`].
    pub(crate) fn receive_drops(&self) -> Option<u64> {
        self.receive_drops.get().and_then(|d| d.count())
    }

    /// The state, even if a thread panicked while holding the lock (the data
    /// are append-only logs and a snapshot; a half-done push is harmless).
    pub(crate) fn state(&self) -> MutexGuard<'_, State<E>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// A datagram in or out, summarized only when the log is read.
    pub(crate) fn log_datagram(
        &self,
        direction: Direction,
        peer: SocketAddr,
        bytes: &[u8],
        send_error: Option<String>,
    ) {
        self.state()
            .log
            .push_datagram(direction, peer, bytes, send_error);
    }

    /// Publishes `events` in order under one lock and wakes the
    /// subscribers once, after the last: a wake per event made each reader
    /// thread park and be woken (an eventfd write and a context switch) up
    /// to 64 times per turn of the datagram loop, the largest cost of the
    /// server's own in a 100,000-meter profile (docs/perf/figures.md).
    pub(crate) fn publish_all(&self, events: impl IntoIterator<Item = E>) {
        let last = {
            let mut state = self.state();
            let mut last = None;
            for event in events {
                if event.is_malformed() {
                    state.log.count_malformed();
                }
                if state.events.is_full() {
                    state.log.count_event_dropped();
                }
                last = Some(state.events.push(event));
            }
            last
        };
        if let Some(seq) = last {
            self.wake.send_replace(seq.0);
        }
    }

    pub(crate) fn publish(&self, event: E) -> EventSeq {
        let seq = {
            let mut state = self.state();
            if event.is_malformed() {
                state.log.count_malformed();
            }
            if state.events.is_full() {
                state.log.count_event_dropped();
            }
            state.events.push(event)
        };
        self.wake.send_replace(seq.0);
        seq
    }

    /// Brings the registrations snapshot up to date with `events`, in their
    /// order. Each such event changes one registration, so the snapshot is
    /// patched rather than rebuilt: a rebuild cloned every registration on
    /// every Register, O(n) each, which made a 10,000-meter fleet register
    /// at a tenth of the rate of 1,000 (issue 16).
    ///
    /// `current` gives the core's own registration, shared: the snapshot
    /// holds that, not a copy (issue 16: a copy per reader doubled the
    /// memory per device).
    pub(crate) fn apply_registration_events<'a>(
        &self,
        events: impl IntoIterator<Item = &'a ServerEvent>,
        current: impl Fn(&str) -> Option<(Arc<str>, Arc<Registration>)>,
    ) {
        let mut state = self.state();
        for event in events {
            match event {
                ServerEvent::Registered(r) | ServerEvent::Updated(r) => {
                    let (key, shared) = current(&r.endpoint)
                        .unwrap_or_else(|| (Arc::from(r.endpoint.as_str()), r.clone()));
                    state.registrations.insert(key, shared);
                }
                ServerEvent::Deregistered { endpoint } | ServerEvent::Expired { endpoint } => {
                    state.registrations.remove(endpoint.as_str());
                }
                ServerEvent::Discarded { endpoint, .. } => {
                    state.registrations.remove(endpoint.as_str());
                }
                _ => {}
            }
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.send_modify(|_| {});
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The first event numbered above `after` that `pick` maps to `Some`,
    /// including events that happened before this call; what every
    /// `await_*` of both server handles waits with. `ServerError::Timeout`
    /// (saying `what()` was awaited) if none comes within `timeout`;
    /// `Shutdown` if the server stops first.
    pub(crate) async fn await_event<T>(
        &self,
        after: EventSeq,
        timeout: Duration,
        pick: impl Fn(&E) -> Option<T>,
        what: impl Fn() -> String,
    ) -> Result<(EventSeq, T), ServerError> {
        let deadline = Instant::now() + timeout;
        // Subscribe before looking, so an event published in between wakes us.
        let mut wake = self.subscribe();
        let mut scanned = after;
        loop {
            wake.borrow_and_update();
            {
                let state = self.state();
                if let Some(found) = state.events.find_map(scanned, &pick) {
                    return Ok(found);
                }
                scanned = scanned.max(state.events.last());
            }
            if self.is_closed() {
                return Err(ServerError::Shutdown);
            }
            match tokio::time::timeout_at(deadline, wake.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(ServerError::Shutdown),
                Err(_) => {
                    return Err(ServerError::Timeout {
                        what: what(),
                        after: timeout,
                    })
                }
            }
        }
    }
}

/// Waits for a server's task after it was told to stop: the first caller
/// takes and awaits the handle, later ones (and clones of the handle) return
/// at once, which makes `shutdown` idempotent. A panic of the task is logged
/// as an error naming `server`.
pub(crate) async fn join_task(task: &Mutex<Option<JoinHandle<()>>>, server: &str) {
    let task = task.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(task) = task {
        if let Err(e) = task.await {
            if e.is_panic() {
                tracing::error!(error = %e, "{server} task panicked");
            }
        }
    }
}
