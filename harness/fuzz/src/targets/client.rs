//! The LwM2M client role (`lwm2m::client::Client`), which the virtual meter
//! runs: its `handle_datagram` takes what the server (and Bootstrap-Server)
//! sends — Register answers, Reads, Writes, Executes, Observes, Block1
//! firmware pushes, bootstrap operations.
//!
//! Input: a [`frames`](crate::frames) script; the primary peer is the LwM2M
//! server, the secondary the Bootstrap-Server. Two targets share this
//! module: `client` registers with the server at once; `client-bootstrap`
//! starts with a Bootstrap-Request. An action frame is a device-side call,
//! by `data[0]`: 0 trigger an Update, 1 a new battery level (a notification),
//! 2 stop (De-register), 3 start, 4 a new value on a new instance (the
//! object list changes), 5 make Execute of /5/0/2 refuse.

use std::net::SocketAddr;
use std::time::Instant;

use lwm2m::client::Client;
use lwm2m::{Path, Value};

use super::driver::{Driver, Endpoint};
use super::testbed;

/// Largest Block1 body the meter takes into /5/0/0.
pub const PACKAGE_LIMIT: usize = 64 * 1024;

/// The meter, started at `now`.
pub fn new_client(now: Instant, bootstrap: bool) -> Client {
    let mut client = Client::new(testbed::client_config(bootstrap), testbed::meter_store());
    client.accept_block1(Path::resource(5, 0, 0), PACKAGE_LIMIT, 6);
    client.start(now);
    client
}

pub fn peers() -> [SocketAddr; 2] {
    [testbed::server_addr(), testbed::bootstrap_addr()]
}

pub struct ClientEndpoint(pub Client);

impl Endpoint for ClientEndpoint {
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

    fn action(&mut self, now: Instant, _peer: SocketAddr, data: &[u8]) {
        let arg = data.get(1).copied().unwrap_or(0);
        match data.first().map(|b| b % 6) {
            Some(0) => self.0.trigger_update(now),
            Some(1) => {
                let _ =
                    self.0
                        .set_value(now, Path::resource(3, 0, 9), Value::Integer(i64::from(arg)));
            }
            Some(2) => self.0.stop(now),
            Some(3) => self.0.start(now),
            Some(4) => {
                let _ = self.0.set_value(
                    now,
                    Path::resource_instance(19, u16::from(arg), 0, 0),
                    Value::Opaque(vec![arg; 4]),
                );
            }
            Some(5) => self.0.set_execute_refusal(
                Path::resource(5, 0, 2),
                (arg % 2 == 0).then(|| (405, "not downloaded".to_string())),
            ),
            _ => {}
        }
    }
}

fn run_with(input: &[u8], bootstrap: bool) {
    let now = Instant::now();
    Driver::new(ClientEndpoint(new_client(now, bootstrap)), peers(), now).run(input);
}

pub fn run(input: &[u8]) {
    run_with(input, false);
}

pub fn run_bootstrap(input: &[u8]) {
    run_with(input, true);
}
