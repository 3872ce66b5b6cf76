//! The LwM2M server role (`lwm2m::server::Server`): `handle_datagram` and
//! `handle_timeout` as the embedded server's UDP loop calls them, with
//! devices registering, updating, answering requests and notifying.
//!
//! Input: a [`frames`](crate::frames) script. The primary peer is the meter
//! (127.0.0.1:56830), the secondary another device over IPv6. An
//! [`Op::Action`](crate::frames::Op::Action) frame makes the server send a
//! request, as a test step would: `data[0]` picks it from [`requests`],
//! `data[1]` (if present) the registration it goes to.

use std::net::SocketAddr;
use std::time::Instant;

use lwm2m::format::{ContentFormat, Record};
use lwm2m::server::{Attributes, DmRequest, Server, ServerConfig, WriteMode};
use lwm2m::{Path, Value};

use super::driver::{Driver, Endpoint};
use super::format::registry;
use super::testbed::{self, ENDPOINT, SERVER_SEED};

pub fn new_server() -> Server {
    Server::new(ServerConfig {
        registry: registry().clone(),
        default_format: ContentFormat::Tlv,
        seed: SERVER_SEED,
    })
}

pub fn peers() -> [SocketAddr; 2] {
    [testbed::client_addr(), testbed::other_client_addr()]
}

/// The requests an action frame can send, the way a case's steps send them.
pub fn requests() -> Vec<DmRequest> {
    let p = |s: &str| s.parse::<Path>().expect("request path");
    let text = |s: &str| Value::String(s.into());
    vec![
        DmRequest::Read {
            path: p("/3/0"),
            format: None,
        },
        DmRequest::Read {
            path: p("/3/0"),
            format: Some(ContentFormat::SenmlJson),
        },
        DmRequest::Read {
            path: p("/3/0"),
            format: Some(ContentFormat::SenmlCbor),
        },
        DmRequest::Read {
            path: p("/3/0"),
            format: Some(ContentFormat::Lwm2mCbor),
        },
        DmRequest::Read {
            path: p("/3/0/0"),
            format: Some(ContentFormat::Text),
        },
        DmRequest::Read {
            path: p("/3"),
            format: None,
        },
        DmRequest::Write {
            path: p("/3/0/14"),
            mode: WriteMode::Replace,
            records: vec![Record::new(p("/3/0/14"), text("+02:00"))],
            format: Some(ContentFormat::Text),
        },
        DmRequest::Write {
            path: p("/3/0"),
            mode: WriteMode::PartialUpdate,
            records: vec![
                Record::new(p("/3/0/14"), text("+01:00")),
                Record::new(p("/3/0/15"), text("Europe/Paris")),
            ],
            format: Some(ContentFormat::Tlv),
        },
        DmRequest::Execute {
            path: p("/3/0/4"),
            arguments: None,
        },
        DmRequest::Discover { path: p("/3/0") },
        DmRequest::Create {
            object: p("/19"),
            records: vec![Record::new(p("/19/1/0/0"), Value::Opaque(vec![9; 8]))],
            format: Some(ContentFormat::Tlv),
        },
        DmRequest::Delete { path: p("/19/1") },
        DmRequest::WriteAttributes {
            path: p("/3/0/9"),
            attributes: Attributes {
                pmin: Some(1),
                pmax: Some(10),
                ..Attributes::default()
            },
        },
        DmRequest::Observe {
            path: p("/3/0/9"),
            format: None,
        },
        DmRequest::CancelObserve { path: p("/3/0/9") },
        DmRequest::WriteBlockwise {
            path: p("/5/0/0"),
            format: ContentFormat::Opaque,
            body: (0..600u32).map(|i| i as u8).collect(),
            szx: 2,
        },
        DmRequest::Read {
            path: p("/5/0/3"),
            format: Some(ContentFormat::Text),
        },
        DmRequest::Observe {
            path: p("/3/0"),
            format: Some(ContentFormat::SenmlCbor),
        },
        DmRequest::Execute {
            path: p("/5/0/2"),
            arguments: Some("0='x'".into()),
        },
    ]
}

/// The server with the request table an action frame picks from.
pub struct ServerEndpoint {
    pub server: Server,
    requests: Vec<DmRequest>,
}

impl ServerEndpoint {
    pub fn new() -> Self {
        ServerEndpoint {
            server: new_server(),
            requests: requests(),
        }
    }
}

impl Default for ServerEndpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Endpoint for ServerEndpoint {
    fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.server.handle_datagram(now, peer, datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.server.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.server.poll_timeout()
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.server
            .poll_transmit()
            .map(|t| (t.destination, t.payload))
    }

    fn handle_events(&mut self, _now: Instant) -> bool {
        let mut any = false;
        while self.server.poll_event().is_some() {
            any = true;
        }
        any
    }

    fn action(&mut self, now: Instant, _peer: SocketAddr, data: &[u8]) {
        let Some(pick) = data.first() else {
            return;
        };
        let request = self.requests[usize::from(*pick) % self.requests.len()].clone();
        let endpoint = match data.get(1) {
            Some(i) => {
                let regs = self.server.registrations();
                if regs.is_empty() {
                    ENDPOINT.to_string()
                } else {
                    regs[usize::from(*i) % regs.len()].endpoint.clone()
                }
            }
            None => ENDPOINT.to_string(),
        };
        let _ = self.server.request(now, &endpoint, request);
        let _ = self.server.observations(&endpoint);
    }
}

pub fn run(input: &[u8]) {
    Driver::new(ServerEndpoint::new(), peers(), Instant::now()).run(input);
}
