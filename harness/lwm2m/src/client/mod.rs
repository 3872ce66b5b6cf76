//! The LwM2M client role, sans-IO, which the virtual meter runs: registration
//! (Register, Update before the lifetime ends, De-register), device
//! management requests answered from an in-memory object store, and
//! observations with notification attributes (LwM2M 1.1 Core §6.2–§6.4).

mod store;

pub use store::{ObjectStore, StoreError};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::coap::Transmit;
use crate::format::ContentFormat;
use crate::model::Registry;
use crate::path::Path;
use crate::value::Value;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: String,
    pub server: SocketAddr,
    pub lifetime: Duration,
    /// "1.1"
    pub lwm2m_version: String,
    /// "U"
    pub binding: String,
    pub registry: Registry,
    /// Format used for Read responses and notifications when the request has no Accept.
    pub preferred_format: ContentFormat,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    Idle,
    Registering,
    /// Registered; the Location-Path the server gave.
    Registered { location: String },
    Deregistering,
    /// The server refused or never answered; the client waits before trying again.
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Registered { location: String },
    RegistrationFailed { reason: String },
    Updated,
    Deregistered,
    /// A server Write changed this path (the store already holds the new value).
    Written { path: Path },
    /// The server executed a resource; the device acts on it (reboot, ...).
    Executed { path: Path, arguments: Option<String> },
    Created { path: Path },
    Deleted { path: Path },
    Malformed { peer: SocketAddr, reason: String },
}

pub struct Client {
    _config: ClientConfig,
    store: ObjectStore,
}

impl Client {
    pub fn new(config: ClientConfig, store: ObjectStore) -> Self {
        Client { _config: config, store }
    }
    /// Sends Register.
    pub fn start(&mut self, _now: Instant) {
        todo!()
    }
    /// Sends De-register (if registered) and cancels all observations.
    pub fn stop(&mut self, _now: Instant) {
        todo!()
    }
    /// Sends a registration Update now (the client also does so by itself before the lifetime ends).
    pub fn trigger_update(&mut self, _now: Instant) {
        todo!()
    }
    pub fn state(&self) -> &RegistrationState {
        todo!()
    }
    pub fn store(&self) -> &ObjectStore {
        &self.store
    }
    /// A device-side change of a value (a sensor reading, a counter); notifies observers.
    pub fn set_value(&mut self, _now: Instant, _path: Path, _value: Value) -> Result<(), StoreError> {
        todo!()
    }
    pub fn handle_datagram(&mut self, _now: Instant, _peer: SocketAddr, _datagram: &[u8]) {
        todo!()
    }
    pub fn handle_timeout(&mut self, _now: Instant) {
        todo!()
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        todo!()
    }
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        todo!()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
}
