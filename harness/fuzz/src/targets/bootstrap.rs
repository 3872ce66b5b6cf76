//! The Bootstrap-Server core (`lwm2m::bootstrap::BootstrapServer`), whose
//! `handle_datagram` the embedded bootstrap server's loop calls: a device
//! asks to be bootstrapped and the server runs its script of Discover,
//! Read, Delete, Write and Finish against it.
//!
//! Input: a [`frames`](crate::frames) script; the primary peer is the
//! meter, the secondary another device. An action frame starts a
//! server-initiated session (`data[0]` even: for `meter-1`, which has a
//! script; odd: for an endpoint that gets the default script).

use std::net::SocketAddr;
use std::time::Instant;

use lwm2m::bootstrap::{BootstrapOp, BootstrapScript, BootstrapServer, BootstrapServerConfig};
use lwm2m::format::ContentFormat;
use lwm2m::Path;

use super::driver::{Driver, Endpoint};
use super::format::registry;
use super::testbed::{self, BOOTSTRAP_SEED, ENDPOINT};

/// The server with `meter-1`'s script (discover, read, then the standard
/// provisioning of a plain and a PSK account) and a default script for
/// everyone else.
pub fn new_bootstrap_server() -> BootstrapServer {
    let mut bs = BootstrapServer::new(BootstrapServerConfig {
        registry: registry().clone(),
        default_format: ContentFormat::Tlv,
        seed: BOOTSTRAP_SEED,
    });
    let mut script = BootstrapScript::new()
        .then(BootstrapOp::Discover { path: Path::ROOT })
        .then(BootstrapOp::Read {
            path: Path::object(1),
        });
    script
        .steps
        .extend(BootstrapScript::provision(&[testbed::account(), testbed::psk_account()]).steps);
    bs.set_script(ENDPOINT, script);
    bs.set_default_script(Some(BootstrapScript::standard(&testbed::account())));
    bs
}

pub fn peers() -> [SocketAddr; 2] {
    [testbed::client_addr(), testbed::other_client_addr()]
}

pub struct BootstrapEndpoint(pub BootstrapServer);

impl Endpoint for BootstrapEndpoint {
    fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.0.handle_datagram(now, peer, datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.0.poll_transmit().map(|t| (t.destination, t.payload))
    }

    fn handle_events(&mut self, _now: Instant) -> bool {
        let mut any = false;
        while self.0.poll_event().is_some() {
            any = true;
        }
        any
    }

    fn action(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) {
        let endpoint = match data.first() {
            Some(b) if b % 2 == 1 => "meter-2",
            _ => ENDPOINT,
        };
        let _ = self.0.start(now, endpoint, peer);
        let _ = self.0.in_session(endpoint);
    }
}

pub fn run(input: &[u8]) {
    Driver::new(
        BootstrapEndpoint(new_bootstrap_server()),
        peers(),
        Instant::now(),
    )
    .run(input);
}
