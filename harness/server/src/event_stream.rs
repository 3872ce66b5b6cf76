//! Following the server's events as they come, for `meterbench serve` and
//! anything else that reports rather than waits for one thing.

use std::future::Future;
use std::sync::Arc;

use lwm2m::server::ServerEvent;
use tokio::sync::watch;

use crate::event_history::EventSeq;
use crate::handle::ServerHandle;
use crate::shared::Shared;

/// Yields every event after the point it was created, in order. A reader that
/// falls more than the history's capacity behind misses the oldest ones.
pub struct EventStream {
    shared: Arc<Shared>,
    wake: watch::Receiver<u64>,
    last: EventSeq,
}

impl EventStream {
    pub(crate) fn new(shared: Arc<Shared>, after: EventSeq) -> Self {
        let wake = shared.subscribe();
        EventStream {
            shared,
            wake,
            last: after,
        }
    }

    /// The next event, or `None` once the server has stopped and every event
    /// has been yielded.
    pub async fn next(&mut self) -> Option<(EventSeq, ServerEvent)> {
        loop {
            self.wake.borrow_and_update();
            if let Some(found) = self.shared.state().events.find(self.last, &|_| true) {
                self.last = found.0;
                return Some(found);
            }
            if self.shared.is_closed() {
                return None;
            }
            if self.wake.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Hands every event to `on_event` until `stop` completes (e.g. Ctrl-C) or the
/// server stops; then shuts the server down. What `meterbench serve` runs:
///
/// ```ignore
/// server::serve_until(&handle, async { let _ = tokio::signal::ctrl_c().await; }, |_, e| {
///     println!("{}", server::describe_event(e))
/// }).await;
/// ```
pub async fn serve_until(
    handle: &ServerHandle,
    stop: impl Future<Output = ()>,
    mut on_event: impl FnMut(EventSeq, &ServerEvent),
) {
    let mut events = handle.subscribe();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            next = events.next() => match next {
                Some((seq, event)) => on_event(seq, &event),
                None => break,
            },
        }
    }
    handle.shutdown().await;
}
