//! The DTLS record path (RFC 6347) of the `dtls` crate: the record and
//! ClientHello parsers meterbench runs itself before OpenSSL sees a byte,
//! and the sans-IO server's `handle_datagram` around OpenSSL (cookies,
//! session table, flight timer, alerts).
//!
//! `dtls-record` input: one datagram.
//!
//! `dtls-server` input: a [`frames`](crate::frames) script against a fresh
//! `OpensslServer` with a live `OpensslClient` (identity `meter-1`) beside
//! it, so that the script can reach every handshake state, not only the
//! cookie exchange. The primary peer is the live client's address.
//! Deliver frames inject raw datagrams at the server (Reply frames too,
//! after the driver's CoAP id patch, which here is one more mutation).
//! Action frames, by
//! `data[0] % 8`:
//!
//! - 0: forward the client's pending datagrams to the server, the first
//!   one with `data[3..]` written over it at offset `data[1..3]`;
//! - 1: the same from the server to the client;
//! - 2: the client sends `data[1..]` as application data;
//! - 3: the server sends `data[1..]` to the client;
//! - 4: the server closes the session, 5: the client closes, 6: the server
//!   shuts down;
//! - 7: forward both ways, unchanged, until quiet (the handshake goes on).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dtls::record::{self, ContentType};
use dtls::{
    ClientConfig, DtlsClient, DtlsServer, OpensslClient, OpensslServer, Psk, SecretKey,
    ServerConfig,
};

use super::driver::{Driver, Endpoint};
use super::testbed::{self, ENDPOINT, PSK_KEY};

pub fn record(input: &[u8]) {
    if let Ok(records) = record::parse_records(input) {
        for r in &records {
            let fragment = &input[r.fragment_start..r.fragment_start + r.length];
            if r.content_type == ContentType::Alert && fragment.len() >= 2 {
                let _ = record::alert::name(fragment[1]);
            }
        }
    }
    if let Ok(hello) = record::parse_client_hello(input) {
        let cookie = &hello.cookie[..hello.cookie.len().min(255)];
        let hvr = record::hello_verify_request(hello.record_sequence, cookie);
        let _ = record::parse_records(&hvr);
    }
}

pub fn server_config() -> ServerConfig {
    ServerConfig::new(Arc::new(|identity: &str| {
        (identity == ENDPOINT)
            .then(|| SecretKey::new(PSK_KEY.to_vec()).ok())
            .flatten()
    }))
}

pub fn client_config() -> ClientConfig {
    let key = SecretKey::new(PSK_KEY.to_vec()).expect("test key");
    ClientConfig::new(Psk::new(ENDPOINT, key).expect("test identity"))
}

/// The server under test and a live client at the primary peer's address.
pub struct DtlsEndpoint {
    pub server: OpensslServer,
    /// Connected at the first action that needs it (restarted from the
    /// thread's template, which is cheap, but still a ClientHello).
    client: Option<OpensslClient>,
    client_addr: SocketAddr,
    /// What the server sent to the live client, not yet delivered.
    to_client: VecDeque<Vec<u8>>,
}

/// The server and client an input starts from, built once per thread:
/// building their OpenSSL contexts (about half a millisecond) used to be
/// most of an input's cost. Inputs get `restarted` copies, which share the
/// contexts (no session cache, no tickets) but no state: no sessions, no
/// queued datagrams, a fresh cookie secret, so every input starts clean
/// and replays by seed.
struct Templates {
    server: OpensslServer,
    client: OpensslClient,
}

thread_local! {
    /// `None` when OpenSSL cannot build a context: the machine's problem,
    /// and then the target does nothing.
    static TEMPLATES: Option<Templates> = Templates::build();
}

impl Templates {
    fn build() -> Option<Self> {
        Some(Templates {
            server: OpensslServer::new(server_config()).ok()?,
            client: OpensslClient::connect(client_config(), testbed::server_addr(), Instant::now())
                .ok()?,
        })
    }
}

impl DtlsEndpoint {
    /// A clean endpoint, or `None` when OpenSSL does not work here.
    pub fn fresh() -> Option<Self> {
        let server = TEMPLATES.with(|t| t.as_ref()?.server.restarted().ok())?;
        Some(DtlsEndpoint {
            server,
            client: None,
            client_addr: testbed::client_addr(),
            to_client: VecDeque::new(),
        })
    }

    pub fn new() -> Self {
        Self::fresh().expect("OpenSSL server context")
    }

    fn client(&mut self, now: Instant) -> &mut OpensslClient {
        self.client.get_or_insert_with(|| {
            TEMPLATES
                .with(|t| t.as_ref().map(|t| t.client.restarted(now)))
                .expect("OpenSSL client context")
                .expect("OpenSSL client restart")
        })
    }

    fn forward_to_server(&mut self, now: Instant, patch: Option<(usize, &[u8])>) -> bool {
        let mut moved = false;
        let mut patch = patch;
        while let Some(t) = self.client(now).poll_transmit() {
            let mut bytes = t.payload;
            if let Some((at, with)) = patch.take() {
                overwrite(&mut bytes, at, with);
            }
            self.server.handle_datagram(now, self.client_addr, &bytes);
            moved = true;
        }
        moved
    }

    fn forward_to_client(&mut self, now: Instant, patch: Option<(usize, &[u8])>) -> bool {
        let mut moved = false;
        let mut patch = patch;
        let from = testbed::server_addr();
        while let Some(mut bytes) = self.to_client.pop_front() {
            if let Some((at, with)) = patch.take() {
                overwrite(&mut bytes, at, with);
            }
            self.client(now).handle_datagram(now, from, &bytes);
            moved = true;
        }
        moved
    }
}

impl Default for DtlsEndpoint {
    fn default() -> Self {
        Self::new()
    }
}

fn overwrite(bytes: &mut [u8], at: usize, with: &[u8]) {
    if at < bytes.len() {
        let end = (at + with.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&with[..end - at]);
    }
}

fn patch(data: &[u8]) -> Option<(usize, &[u8])> {
    let at = usize::from(u16::from_be_bytes([*data.get(1)?, *data.get(2)?]));
    Some((at, data.get(3..).unwrap_or_default()))
}

impl Endpoint for DtlsEndpoint {
    fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.server.handle_datagram(now, peer, datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        if let Some(client) = &mut self.client {
            if client.poll_timeout().is_some_and(|t| t <= now) {
                client.handle_timeout(now);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.server.poll_timeout(),
            self.client.as_ref().and_then(|c| c.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let t = self.server.poll_transmit()?;
        if t.destination == self.client_addr {
            self.to_client.push_back(t.payload.clone());
        }
        Some((t.destination, t.payload))
    }

    fn handle_events(&mut self, _now: Instant) -> bool {
        let mut any = false;
        while self.server.poll_event().is_some() {
            any = true;
        }
        while self.server.poll_received().is_some() {
            any = true;
        }
        if let Some(client) = &mut self.client {
            while client.poll_event().is_some() {
                any = true;
            }
            while client.poll_received().is_some() {
                any = true;
            }
            let _ = client.state();
        }
        if any {
            let _ = self.server.sessions();
            let _ = self.server.stats();
        }
        any
    }

    fn action(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) {
        let payload = data.get(1..).unwrap_or_default();
        match data.first().map_or(7, |b| b % 8) {
            0 => {
                self.forward_to_server(now, patch(data));
            }
            1 => {
                self.forward_to_client(now, patch(data));
            }
            2 => {
                let _ = self.client(now).send(now, payload);
            }
            3 => {
                let _ = self.server.send(now, peer, payload);
            }
            4 => {
                let _ = self.server.close(now, peer);
            }
            5 => self.client(now).close(now),
            6 => self.server.shutdown(now),
            _ => {
                for _ in 0..16 {
                    let up = self.forward_to_server(now, None);
                    while let Some((to, bytes)) = self.poll_transmit() {
                        // Datagrams for other peers go nowhere.
                        let _ = (to, bytes);
                    }
                    let down = self.forward_to_client(now, None);
                    if !up && !down {
                        break;
                    }
                }
            }
        }
    }
}

pub fn server(input: &[u8]) {
    let Some(endpoint) = DtlsEndpoint::fresh() else {
        return;
    };
    let now = Instant::now();
    let peers = [testbed::client_addr(), testbed::other_client_addr()];
    Driver::new(endpoint, peers, now).run(input);
}

pub const DICTIONARY: &[&[u8]] = &[
    b"\x16\xfe\xfd",
    b"\x16\xfe\xff",
    b"\x14\xfe\xfd",
    b"\x15\xfe\xfd",
    b"\x17\xfe\xfd",
    b"\x00\x01",
    b"\x00\x00\x00\x00\x00\x00",
    b"\x01\x00\x00",
    b"\x03\x00\x00",
    b"\x10\x00\x00",
    b"\x14\x00\x00",
    b"\x02\x33",
    b"\x02\x28",
    b"\x48\x00",
    b"\x40\x00",
    b"\xc0\xa8",
    b"\x00\xae",
    b"\x00\x02\xc0\xa8",
    b"\x01\x00",
    b"\xff\xff",
    b"\x20",
];
