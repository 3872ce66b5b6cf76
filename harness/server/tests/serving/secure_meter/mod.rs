//! A meter for the coaps tests: the sans-IO `lwm2m::client::Client` with one
//! `dtls::OpensslClient` per server it talks to (bootstrap server, LwM2M
//! server), on one blocking 127.0.0.1 socket, driven on a thread until a
//! condition or a deadline.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dtls::{ClientConfig as DtlsConfig, ClientState, DtlsClient, OpensslClient, Psk, SecretKey};
use lwm2m::client::{Client, ClientEvent};

struct Link {
    psk: Psk,
    dtls: Option<OpensslClient>,
    pending: Vec<Vec<u8>>,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub events: Vec<ClientEvent>,
    /// DTLS client events by server.
    pub dtls: Vec<(SocketAddr, dtls::ClientEvent)>,
    pub done: bool,
}

pub struct SecureMeter {
    pub socket: UdpSocket,
    pub client: Client,
    links: HashMap<SocketAddr, Link>,
}

pub fn psk(identity: &str, key: &[u8]) -> Psk {
    Psk::new(identity, SecretKey::new(key.to_vec()).unwrap()).unwrap()
}

impl SecureMeter {
    pub fn new(client: Client) -> Self {
        SecureMeter {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            client,
            links: HashMap::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Datagrams to `server` go through DTLS with `psk`.
    pub fn secure(&mut self, server: SocketAddr, psk: Psk) {
        self.links.insert(
            server,
            Link {
                psk,
                dtls: None,
                pending: Vec::new(),
            },
        );
    }

    /// Forgets the DTLS association with `server` (e.g. one the server
    /// closed): the next datagram for it starts a new handshake from the
    /// same address, as a device reconnecting does.
    pub fn reconnect(&mut self, server: SocketAddr) {
        if let Some(link) = self.links.get_mut(&server) {
            link.dtls = None;
        }
    }

    pub fn dtls_state(&self, server: SocketAddr) -> Option<ClientState> {
        self.links
            .get(&server)
            .and_then(|l| l.dtls.as_ref())
            .map(|d| d.state().clone())
    }

    /// Runs until `until` accepts a client event (true) or `within` passes.
    pub fn run(&mut self, within: Duration, mut until: impl FnMut(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + within;
        let mut seen = Seen::default();
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            while let Some(t) = self.client.poll_transmit() {
                match self.links.get_mut(&t.destination) {
                    Some(link) => link.pending.push(t.payload),
                    None => {
                        let _ = self.socket.send_to(&t.payload, t.destination);
                    }
                }
            }
            for (server, link) in self.links.iter_mut() {
                if link.dtls.is_none() && !link.pending.is_empty() {
                    let config = DtlsConfig::new(link.psk.clone());
                    link.dtls = Some(OpensslClient::connect(config, *server, now).unwrap());
                }
                let Some(dtls) = link.dtls.as_mut() else {
                    continue;
                };
                if matches!(dtls.state(), ClientState::Connected(_)) {
                    for p in link.pending.drain(..) {
                        let _ = dtls.send(now, &p);
                    }
                }
                if matches!(
                    dtls.state(),
                    ClientState::Failed(_) | ClientState::Closed(_)
                ) {
                    link.pending.clear();
                }
                while let Some(t) = dtls.poll_transmit() {
                    let _ = self.socket.send_to(&t.payload, t.destination);
                }
                while let Some(e) = dtls.poll_event() {
                    seen.dtls.push((*server, e));
                }
            }
            while let Some(e) = self.client.poll_event() {
                seen.events.push(e);
            }
            if until(&seen) {
                seen.done = true;
                return seen;
            }
            if now >= deadline {
                return seen;
            }
            let next = self
                .links
                .values()
                .filter_map(|l| l.dtls.as_ref().and_then(|d| d.poll_timeout()))
                .chain(self.client.poll_timeout())
                .min();
            let wait = next
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(20))
                .clamp(Duration::from_millis(1), Duration::from_millis(20));
            self.socket.set_read_timeout(Some(wait)).unwrap();
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let at = Instant::now();
                    match self.links.get_mut(&from).and_then(|l| l.dtls.as_mut()) {
                        Some(dtls) => {
                            dtls.handle_datagram(at, from, &buf[..n]);
                            while let Some(p) = dtls.poll_received() {
                                self.client.handle_datagram(at, from, &p);
                            }
                        }
                        None => self.client.handle_datagram(at, from, &buf[..n]),
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("recv_from: {e}"),
            }
            let at = Instant::now();
            self.client.handle_timeout(at);
            for link in self.links.values_mut() {
                if let Some(d) = link.dtls.as_mut() {
                    d.handle_timeout(at);
                }
            }
        }
    }
}

pub fn registered(seen: &Seen) -> bool {
    seen.events
        .iter()
        .any(|e| matches!(e, ClientEvent::Registered { .. }))
}
