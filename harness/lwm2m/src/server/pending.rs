//! The requests in flight, with the indexes that keep the per-event cost
//! independent of the fleet (issue 16).
//!
//! Three events used to walk every request in flight of every client: a
//! registration ending (its requests end with `RegistrationEnded`), an
//! Update from a new address (LwM2M 1.1 Core §6.2.2: its requests in
//! flight follow the client) and each timer turn (the Block1 pushes learn
//! their retransmission count). With a request in flight to each of
//! 100,000 meters — the fleet benchmark observes every registration — that
//! made each such event O(fleet). Here each is O(requests of that client)
//! or O(pushes): `by_endpoint` maps an endpoint to its exchanges, `pushes`
//! holds the exchanges that carry a Block1 push. Both are kept exact by
//! `insert` and `remove`, the only ways in and out.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::Pending;
use crate::coap::ExchangeId;

#[derive(Debug, Default)]
pub(super) struct PendingTable {
    by_exchange: HashMap<ExchangeId, Pending>,
    by_endpoint: HashMap<Arc<str>, Vec<ExchangeId>>,
    pushes: BTreeSet<ExchangeId>,
}

impl PendingTable {
    pub(super) fn insert(&mut self, exchange: ExchangeId, pending: Pending) {
        if let Some(old) = self.remove(&exchange) {
            // Exchange ids are never reused by the layer; keep the
            // indexes exact all the same.
            drop(old);
        }
        self.by_endpoint
            .entry(pending.endpoint.clone())
            .or_default()
            .push(exchange);
        if pending.push.is_some() {
            self.pushes.insert(exchange);
        }
        self.by_exchange.insert(exchange, pending);
    }

    pub(super) fn remove(&mut self, exchange: &ExchangeId) -> Option<Pending> {
        let pending = self.by_exchange.remove(exchange)?;
        self.pushes.remove(exchange);
        if let Some(list) = self.by_endpoint.get_mut(&*pending.endpoint) {
            list.retain(|e| e != exchange);
            if list.is_empty() {
                self.by_endpoint.remove(&*pending.endpoint);
            }
        }
        crate::coap::shrink::if_sparse(&mut self.by_exchange);
        crate::coap::shrink::if_sparse(&mut self.by_endpoint);
        Some(pending)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Pending> {
        self.by_exchange.values()
    }

    /// The exchanges in flight to `endpoint`, oldest first.
    pub(super) fn of_endpoint(&self, endpoint: &str) -> Vec<ExchangeId> {
        self.by_endpoint.get(endpoint).cloned().unwrap_or_default()
    }

    /// The exchanges that carry a Block1 push.
    pub(super) fn push_exchanges(&self) -> Vec<ExchangeId> {
        self.pushes.iter().copied().collect()
    }

    pub(super) fn get(&self, exchange: &ExchangeId) -> Option<&Pending> {
        self.by_exchange.get(exchange)
    }

    pub(super) fn get_mut(&mut self, exchange: &ExchangeId) -> Option<&mut Pending> {
        self.by_exchange.get_mut(exchange)
    }

    pub(super) fn len(&self) -> usize {
        self.by_exchange.len()
    }

    /// Endpoints with a request in flight (for tests: an ended
    /// registration leaves none behind).
    pub(super) fn endpoints_indexed(&self) -> usize {
        self.by_endpoint.len()
    }
}
