//! State the UDP task publishes and every `ServerHandle` reads: the event
//! history, the message log, and a snapshot of the registrations.
//!
//! The sans-IO `Server` itself stays inside the task (it is the only writer);
//! handles see copies, so a slow test step never blocks the protocol.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use lwm2m::server::{DmRequest, Registration, RequestError, RequestId, ServerEvent};
use tokio::sync::{oneshot, watch};

use crate::event_history::{EventHistory, EventSeq, HistoryEvent};
use crate::message_log::{Direction, MessageLog};

/// What a handle asks the task to do.
pub(crate) enum Command {
    Request {
        endpoint: String,
        request: DmRequest,
        reply: oneshot::Sender<Result<RequestId, RequestError>>,
    },
    Shutdown,
}

pub(crate) struct State<E = ServerEvent> {
    pub(crate) events: EventHistory<E>,
    pub(crate) log: MessageLog,
    pub(crate) registrations: BTreeMap<String, Registration>,
}

pub(crate) struct Shared<E = ServerEvent> {
    state: Mutex<State<E>>,
    /// Carries the latest event sequence number; bumped (also with no new
    /// event) to wake waiters, e.g. when the task stops.
    wake: watch::Sender<u64>,
    closed: AtomicBool,
}

impl<E: HistoryEvent> Shared<E> {
    pub(crate) fn new(log_capacity: usize, event_capacity: usize) -> Self {
        Shared {
            state: Mutex::new(State {
                events: EventHistory::new(event_capacity),
                log: MessageLog::new(log_capacity),
                registrations: BTreeMap::new(),
            }),
            wake: watch::Sender::new(0),
            closed: AtomicBool::new(false),
        }
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

    pub(crate) fn log(
        &self,
        direction: Direction,
        peer: SocketAddr,
        bytes: &[u8],
        summary: String,
        send_error: Option<String>,
    ) {
        self.state()
            .log
            .push(direction, peer, bytes, summary, send_error);
    }

    pub(crate) fn publish(&self, event: E) -> EventSeq {
        let seq = {
            let mut state = self.state();
            if event.is_malformed() {
                state.log.count_malformed();
            }
            state.events.push(event)
        };
        self.wake.send_replace(seq.0);
        seq
    }

    pub(crate) fn set_registrations(&self, registrations: impl IntoIterator<Item = Registration>) {
        self.state().registrations = registrations
            .into_iter()
            .map(|r| (r.endpoint.clone(), r))
            .collect();
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.send_modify(|_| {});
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}
