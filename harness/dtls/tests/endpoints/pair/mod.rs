//! An in-memory server and clients on a fake clock, quinn-proto `Pair`
//! style: datagrams move through queues the test can filter (deliver or drop
//! each one; hostile bytes are handed to the server directly) and time moves
//! only when the test says so.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtls::{
    CipherSuite, ClientConfig, ClientEvent, ClientState, DtlsClient, DtlsServer, OpensslClient,
    OpensslServer, Psk, SecretKey, ServerConfig, ServerEvent, Transmit,
};

pub const SERVER: &str = "127.0.0.1:5684";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// identity -> key table for the server.
pub fn keys(entries: &[(&str, &[u8])]) -> ServerConfig {
    let table: HashMap<String, Vec<u8>> = entries
        .iter()
        .map(|(i, k)| (i.to_string(), k.to_vec()))
        .collect();
    ServerConfig::new(Arc::new(move |identity: &str| {
        table
            .get(identity)
            .map(|k| SecretKey::new(k.clone()).unwrap())
    }))
}

pub fn client_config(identity: &str, key: &[u8], suites: &[CipherSuite]) -> ClientConfig {
    let mut cfg =
        ClientConfig::new(Psk::new(identity, SecretKey::new(key.to_vec()).unwrap()).unwrap());
    cfg.suites = suites.to_vec();
    cfg
}

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// What the link does with one datagram.
pub enum Fate {
    Deliver,
    Drop,
}

/// Decides each datagram's fate on the link.
pub type LinkFilter = Box<dyn FnMut(Dir, &[u8]) -> Fate>;

pub struct Pair {
    pub now: Instant,
    pub server: OpensslServer,
    pub server_addr: SocketAddr,
    pub clients: Vec<(SocketAddr, OpensslClient)>,
    pub server_events: Vec<ServerEvent>,
    pub client_events: Vec<Vec<ClientEvent>>,
    pub server_received: Vec<(SocketAddr, Vec<u8>)>,
    pub client_received: Vec<Vec<Vec<u8>>>,
    /// Every datagram that crossed the link (after the filter).
    pub log: Vec<(Dir, SocketAddr, Vec<u8>)>,
    pub filter: LinkFilter,
}

impl Pair {
    pub fn new(config: ServerConfig) -> Self {
        init_tracing();
        Self {
            now: Instant::now(),
            server: OpensslServer::new(config).unwrap(),
            server_addr: SERVER.parse().unwrap(),
            clients: Vec::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            server_received: Vec::new(),
            client_received: Vec::new(),
            log: Vec::new(),
            filter: Box::new(|_, _| Fate::Deliver),
        }
    }

    /// Adds a client at 127.0.0.1:(40000 + index) and starts its handshake.
    pub fn connect(&mut self, config: ClientConfig) -> usize {
        let idx = self.clients.len();
        let addr: SocketAddr = format!("127.0.0.1:{}", 40000 + idx).parse().unwrap();
        let client = OpensslClient::connect(config, self.server_addr, self.now).unwrap();
        self.clients.push((addr, client));
        self.client_events.push(Vec::new());
        self.client_received.push(Vec::new());
        idx
    }

    pub fn client(&mut self, idx: usize) -> &mut OpensslClient {
        &mut self.clients[idx].1
    }

    pub fn client_addr(&self, idx: usize) -> SocketAddr {
        self.clients[idx].0
    }

    /// Moves datagrams until nothing is in flight (bounded).
    pub fn drive(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                let from = self.clients[i].0;
                while let Some(t) = self.clients[i].1.poll_transmit() {
                    moved = true;
                    assert_eq!(t.destination, self.server_addr);
                    if let Some(bytes) = self.pass(Dir::ToServer, from, t.payload) {
                        self.server.handle_datagram(self.now, from, &bytes);
                    }
                }
            }
            while let Some(Transmit {
                destination,
                payload,
            }) = self.server.poll_transmit()
            {
                moved = true;
                if let Some(bytes) = self.pass(Dir::ToClient, destination, payload) {
                    if let Some(i) = self.clients.iter().position(|(a, _)| *a == destination) {
                        let server_addr = self.server_addr;
                        self.clients[i]
                            .1
                            .handle_datagram(self.now, server_addr, &bytes);
                    }
                }
            }
            self.collect();
            if !moved {
                return;
            }
        }
        panic!("datagrams still moving after 100 rounds");
    }

    fn pass(&mut self, dir: Dir, addr: SocketAddr, payload: Vec<u8>) -> Option<Vec<u8>> {
        let bytes = match (self.filter)(dir, &payload) {
            Fate::Deliver => payload,
            Fate::Drop => return None,
        };
        self.log.push((dir, addr, bytes.clone()));
        Some(bytes)
    }

    pub fn collect(&mut self) {
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
        while let Some(r) = self.server.poll_received() {
            self.server_received.push((r.peer, r.payload));
        }
        for (i, (_, c)) in self.clients.iter_mut().enumerate() {
            while let Some(e) = c.poll_event() {
                self.client_events[i].push(e);
            }
            while let Some(r) = c.poll_received() {
                self.client_received[i].push(r);
            }
        }
    }

    /// Advances the fake clock and fires every endpoint's timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.server.handle_timeout(self.now);
        for (_, c) in &mut self.clients {
            c.handle_timeout(self.now);
        }
        self.drive();
    }

    pub fn is_connected(&self, idx: usize) -> bool {
        matches!(self.clients[idx].1.state(), ClientState::Connected(_))
    }
}
