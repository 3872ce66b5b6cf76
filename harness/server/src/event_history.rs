//! The history of server events, numbered, so a test step can wait for "the
//! first registration after I power-cycled" without missing one that arrived
//! while it was busy elsewhere: waiters name the sequence number they start
//! after, and events that already happened count.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use lwm2m::server::ServerEvent;

/// Position in the event history. `EventSeq::START` is before every event;
/// the first event gets 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventSeq(pub u64);

impl EventSeq {
    pub const START: EventSeq = EventSeq(0);
}

impl fmt::Display for EventSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a history holds: the LwM2M server's [`ServerEvent`]s or the
/// bootstrap server's [`crate::BootstrapServerEvent`]s.
pub(crate) trait HistoryEvent: Clone + Send + 'static {
    /// Counted in [`crate::Stats::malformed`].
    fn is_malformed(&self) -> bool;
}

impl HistoryEvent for ServerEvent {
    fn is_malformed(&self) -> bool {
        matches!(self, ServerEvent::Malformed { .. })
    }
}

/// A bounded, numbered list of events (oldest dropped first when full).
#[derive(Debug)]
pub(crate) struct EventHistory<E = ServerEvent> {
    /// Each event with when it was published: a waiter that must tell
    /// "before" from "after" across two servers (a Register against the end
    /// of a bootstrap) compares times, not sequence numbers.
    events: VecDeque<(EventSeq, Instant, E)>,
    last: EventSeq,
    capacity: usize,
}

impl<E: Clone> EventHistory<E> {
    pub(crate) fn new(capacity: usize) -> Self {
        EventHistory {
            events: VecDeque::new(),
            last: EventSeq::START,
            capacity: capacity.max(1),
        }
    }

    /// Whether the next push drops the oldest event.
    pub(crate) fn is_full(&self) -> bool {
        self.events.len() == self.capacity
    }

    pub(crate) fn push(&mut self, event: E) -> EventSeq {
        self.last = EventSeq(self.last.0 + 1);
        if self.events.len() == self.capacity {
            self.events.pop_front();
        } else if self.events.len() == self.events.capacity() {
            // Doubling as VecDeque does, but never past the bound: a
            // history of 10,000 would otherwise sit in 16,384 slots of
            // 152 bytes, 1 MB that no event ever uses (issue 16).
            let len = self.events.len();
            self.events
                .reserve_exact(len.max(4).min(self.capacity - len));
        }
        self.events.push_back((self.last, Instant::now(), event));
        self.last
    }

    /// When event `seq` was published, while the history still holds it.
    pub(crate) fn time_of(&self, seq: EventSeq) -> Option<Instant> {
        let index = self.events.partition_point(|(s, _, _)| *s < seq);
        match self.events.get(index) {
            Some((s, at, _)) if *s == seq => Some(*at),
            _ => None,
        }
    }

    pub(crate) fn last(&self) -> EventSeq {
        self.last
    }

    /// The first held event with a sequence number above `after` that `pred` accepts.
    pub(crate) fn find<F: Fn(&E) -> bool + ?Sized>(
        &self,
        after: EventSeq,
        pred: &F,
    ) -> Option<(EventSeq, E)> {
        self.find_map(after, &|e: &E| pred(e).then(|| e.clone()))
    }

    /// The first held event with a sequence number above `after` that `pick`
    /// maps to `Some`, with what it mapped it to: a waiter takes just the
    /// part of the event it wants, without matching the event again.
    pub(crate) fn find_map<T, F: Fn(&E) -> Option<T> + ?Sized>(
        &self,
        after: EventSeq,
        pick: &F,
    ) -> Option<(EventSeq, T)> {
        let start = self.events.partition_point(|(seq, _, _)| *seq <= after);
        self.events
            .range(start..)
            .find_map(|(seq, _, e)| pick(e).map(|t| (*seq, t)))
    }

    /// Held events with a sequence number above `after`.
    pub(crate) fn since(&self, after: EventSeq) -> Vec<(EventSeq, E)> {
        let start = self.events.partition_point(|(seq, _, _)| *seq <= after);
        self.events
            .range(start..)
            .map(|(seq, _, e)| (*seq, e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dereg(ep: &str) -> ServerEvent {
        ServerEvent::Deregistered {
            endpoint: ep.into(),
        }
    }

    #[test]
    fn each_held_event_keeps_the_time_it_was_published() {
        let mut h: EventHistory = EventHistory::new(2);
        let before = Instant::now();
        let first = h.push(dereg("a"));
        let second = h.push(dereg("b"));
        let t1 = h.time_of(first).unwrap();
        let t2 = h.time_of(second).unwrap();
        assert!(before <= t1 && t1 <= t2);
        // The oldest goes with its time when the history is full.
        let third = h.push(dereg("c"));
        assert_eq!(h.time_of(first), None);
        assert_eq!(h.time_of(second), Some(t2));
        assert!(h.time_of(third).unwrap() >= t2);
        assert_eq!(h.time_of(EventSeq(third.0 + 1)), None);
    }

    #[test]
    fn find_starts_strictly_after_the_given_sequence_number() {
        let mut h: EventHistory = EventHistory::new(10);
        assert_eq!(h.push(dereg("a")), EventSeq(1));
        assert_eq!(h.push(dereg("b")), EventSeq(2));
        assert_eq!(h.push(dereg("a")), EventSeq(3));
        let is_a = |e: &ServerEvent| matches!(e, ServerEvent::Deregistered { endpoint } if endpoint == "a");
        assert_eq!(h.find(EventSeq::START, &is_a).unwrap().0, EventSeq(1));
        assert_eq!(h.find(EventSeq(1), &is_a).unwrap().0, EventSeq(3));
        assert!(h.find(EventSeq(3), &is_a).is_none());
        let endpoint = |e: &ServerEvent| match e {
            ServerEvent::Deregistered { endpoint } if endpoint != "a" => Some(endpoint.clone()),
            _ => None,
        };
        assert_eq!(
            h.find_map(EventSeq::START, &endpoint),
            Some((EventSeq(2), "b".to_owned()))
        );
        assert!(h.find_map(EventSeq(2), &endpoint).is_none());
        assert_eq!(h.since(EventSeq(1)).len(), 2);
    }

    #[test]
    fn the_history_grows_to_its_bound_and_no_further() {
        let mut h: EventHistory = EventHistory::new(10_000);
        for i in 0..12_000 {
            h.push(dereg("a"));
            assert!(
                h.events.capacity() <= 10_000,
                "{} after {i}",
                h.events.capacity()
            );
        }
        assert_eq!(h.events.len(), 10_000);
    }

    #[test]
    fn a_full_history_drops_the_oldest_but_keeps_numbering() {
        let mut h: EventHistory = EventHistory::new(2);
        for _ in 0..4 {
            h.push(dereg("a"));
        }
        assert_eq!(h.last(), EventSeq(4));
        let held: Vec<_> = h
            .since(EventSeq::START)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(held, vec![EventSeq(3), EventSeq(4)]);
        assert!(h.is_full());
    }
}
