//! DTLS links of one client session: one [`dtls::OpensslClient`] per peer
//! whose account asks for DTLS (`coaps://`, Security Mode 0 PSK or 2
//! Certificate), so
//! CoAP datagrams to that peer travel as DTLS application data (LwM2M 1.1
//! Transport §5.2.8) while plain `coap://` peers share the same UDP socket
//! unchanged.
//!
//! Sans-IO like the endpoints it wraps: the session feeds datagrams and time
//! in and drains datagrams to send, decrypted datagrams and [`LinkEvent`]s.
//! CoAP datagrams sent before the handshake completes wait in the link
//! (identical CoAP retransmissions are kept once) and go out once connected.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dtls::{
    CipherSuite, ClientConfig, ClientCredential, ClientEvent, DtlsClient, OpensslClient,
    RetransmitPolicy, Transmit,
};

/// Datagrams one link holds while its handshake runs; older ones are dropped
/// (CoAP retransmits what matters).
const MAX_PENDING: usize = 16;
/// After a failed handshake, datagrams to that peer are dropped this long
/// instead of starting a new handshake at once: the client's retry policy,
/// not every queued CoAP retransmission, decides when to try again.
const HOLD_DOWN: Duration = Duration::from_secs(1);

/// Handshake retransmission of the virtual meter: RFC 6347 §4.2.4.1 timers
/// (1 s, doubling) capped low so an unanswered handshake fails within
/// about 15 s instead of the RFC's minutes, as constrained devices do.
pub fn retransmit_policy() -> RetransmitPolicy {
    RetransmitPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(4),
        max_retransmissions: 4,
    }
}

/// What happened on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The handshake with `peer` completed.
    Connected {
        peer: SocketAddr,
        identity: String,
        suite: CipherSuite,
        /// From the first ClientHello to Finished.
        handshake: Duration,
    },
    /// The handshake with `peer` failed (or could not start); queued
    /// datagrams are dropped. `reason` names no key material.
    Failed { peer: SocketAddr, reason: String },
    /// The established session with `peer` ended; the next datagram to it
    /// starts a new handshake.
    Closed { peer: SocketAddr, reason: String },
}

struct Link {
    client: OpensslClient,
    identity: String,
    started: Instant,
    connected: bool,
    pending: VecDeque<Vec<u8>>,
}

/// The DTLS links of one session, by peer.
#[derive(Default)]
pub struct DtlsLinks {
    links: HashMap<SocketAddr, Link>,
    failed_at: HashMap<SocketAddr, Instant>,
    out: VecDeque<Transmit>,
    events: VecDeque<LinkEvent>,
}

impl DtlsLinks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether datagrams from `peer` belong to a link.
    pub fn has(&self, peer: SocketAddr) -> bool {
        self.links.contains_key(&peer)
    }

    /// Sends one CoAP datagram to `peer` under `credential` (a PSK or a
    /// certificate): at once on an established link, else after the
    /// handshake this starts (or joins).
    pub fn send(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        credential: &ClientCredential,
        payload: Vec<u8>,
    ) {
        if !self.links.contains_key(&peer) {
            if self
                .failed_at
                .get(&peer)
                .is_some_and(|t| now < *t + HOLD_DOWN)
            {
                tracing::debug!(%peer, "datagram dropped: DTLS handshake just failed");
                return;
            }
            let mut config = match credential {
                ClientCredential::Psk(psk) => {
                    tracing::info!(%peer, identity = %psk.identity, key = %psk.key, "DTLS handshake starting");
                    ClientConfig::new(psk.clone())
                }
                ClientCredential::Certificate(c) => {
                    tracing::info!(%peer, certificate = ?c.certificate, key = %c.key, "DTLS handshake starting (certificate mode)");
                    ClientConfig::with_certificate(c.clone())
                }
            };
            config.retransmit = retransmit_policy();
            match OpensslClient::connect(config, peer, now) {
                Ok(client) => {
                    self.links.insert(
                        peer,
                        Link {
                            client,
                            identity: credential.identity(),
                            started: now,
                            connected: false,
                            pending: VecDeque::new(),
                        },
                    );
                }
                Err(e) => {
                    self.fail(peer, now, format!("cannot start DTLS: {e}"));
                    return;
                }
            }
        }
        let link = self.links.get_mut(&peer).expect("inserted above");
        if link.connected {
            if let Err(e) = link.client.send(now, &payload) {
                tracing::warn!(%peer, error = %e, "DTLS send failed; datagram lost");
            }
        } else if !link.pending.contains(&payload) {
            if link.pending.len() == MAX_PENDING {
                link.pending.pop_front();
            }
            link.pending.push_back(payload);
        }
        self.drive(now, peer);
    }

    /// A datagram from `peer`; `None` when no link has that peer (the
    /// caller treats it as plain CoAP), else the decrypted datagrams.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        data: &[u8],
    ) -> Option<Vec<Vec<u8>>> {
        let link = self.links.get_mut(&peer)?;
        link.client.handle_datagram(now, peer, data);
        let mut plain = Vec::new();
        while let Some(p) = link.client.poll_received() {
            plain.push(p);
        }
        self.drive(now, peer);
        Some(plain)
    }

    /// Runs the handshake timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SocketAddr> = self
            .links
            .iter()
            .filter(|(_, l)| l.client.poll_timeout().is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            if let Some(l) = self.links.get_mut(&peer) {
                l.client.handle_timeout(now);
            }
            self.drive(now, peer);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .filter_map(|l| l.client.poll_timeout())
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Closes every link but `keep` (close_notify on established ones), e.g.
    /// after Bootstrap-Finish replaced the credentials; new credentials are
    /// tried at once, whatever failed before.
    pub fn close_except(&mut self, now: Instant, keep: Option<SocketAddr>) {
        self.failed_at.retain(|p, _| Some(*p) == keep);
        let peers: Vec<SocketAddr> = self
            .links
            .keys()
            .copied()
            .filter(|p| Some(*p) != keep)
            .collect();
        for peer in peers {
            if let Some(mut l) = self.links.remove(&peer) {
                l.client.close(now);
                while let Some(t) = l.client.poll_transmit() {
                    self.out.push_back(t);
                }
                tracing::info!(%peer, "DTLS link closed");
            }
        }
    }

    /// Moves what the link at `peer` produced out and acts on its events.
    fn drive(&mut self, now: Instant, peer: SocketAddr) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let mut ended = None;
        while let Some(e) = link.client.poll_event() {
            match e {
                ClientEvent::Connected { suite } => {
                    link.connected = true;
                    let handshake = now.saturating_duration_since(link.started);
                    tracing::info!(%peer, identity = %link.identity, %suite, ms = handshake.as_millis() as u64, "DTLS connected");
                    self.events.push_back(LinkEvent::Connected {
                        peer,
                        identity: link.identity.clone(),
                        suite,
                        handshake,
                    });
                    while let Some(p) = link.pending.pop_front() {
                        if let Err(e) = link.client.send(now, &p) {
                            tracing::warn!(%peer, error = %e, "DTLS send failed; datagram lost");
                        }
                    }
                }
                ClientEvent::HandshakeFailed { reason } => {
                    ended = Some(Err(reason.to_string()));
                }
                ClientEvent::Closed { reason } => ended = Some(Ok(reason.to_string())),
                ClientEvent::Dropped { reason } => {
                    tracing::debug!(%peer, %reason, "DTLS datagram dropped")
                }
            }
        }
        while let Some(t) = link.client.poll_transmit() {
            self.out.push_back(t);
        }
        match ended {
            Some(Err(reason)) => self.fail(peer, now, reason),
            Some(Ok(reason)) => {
                self.links.remove(&peer);
                tracing::info!(%peer, %reason, "DTLS session ended");
                self.events.push_back(LinkEvent::Closed { peer, reason });
            }
            None => {}
        }
    }

    fn fail(&mut self, peer: SocketAddr, now: Instant, reason: String) {
        self.links.remove(&peer);
        self.failed_at.insert(peer, now);
        tracing::warn!(%peer, %reason, "DTLS handshake failed");
        self.events.push_back(LinkEvent::Failed { peer, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtls::{
        CertificateAuthority, CertificateCredential, DtlsServer, OpensslServer, Psk, SecretKey,
        ServerConfig, Usage,
    };
    use std::sync::Arc;

    const KEY: &[u8] = b"sixteen-byte-key";

    fn server(key: &'static [u8]) -> OpensslServer {
        OpensslServer::new(ServerConfig::new(Arc::new(move |id: &str| {
            (id == "meter").then(|| SecretKey::new(key.to_vec()).unwrap())
        })))
        .unwrap()
    }

    /// Runs datagrams between the links and a server in memory until quiet
    /// or `limit` rounds; returns what the server decrypted.
    fn shuttle(
        links: &mut DtlsLinks,
        srv: &mut OpensslServer,
        me: SocketAddr,
        at: SocketAddr,
        now: &mut Instant,
    ) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for _ in 0..200 {
            let mut moved = false;
            while let Some(t) = links.poll_transmit() {
                srv.handle_datagram(*now, me, &t.payload);
                moved = true;
            }
            while let Some(r) = srv.poll_received() {
                got.push(r.payload);
            }
            while let Some(t) = srv.poll_transmit() {
                links.handle_datagram(*now, at, &t.payload);
                moved = true;
            }
            if !moved {
                *now += Duration::from_millis(500);
                links.handle_timeout(*now);
                srv.handle_timeout(*now);
                if links.poll_timeout().is_none() && links.out.is_empty() {
                    break;
                }
            }
        }
        got
    }

    #[test]
    fn datagrams_wait_for_the_handshake_and_go_out_encrypted_once() {
        let me: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let at: SocketAddr = "127.0.0.1:5684".parse().unwrap();
        let mut srv = server(KEY);
        let mut links = DtlsLinks::new();
        let mut now = Instant::now();
        let psk = Psk::new("meter", SecretKey::new(KEY.to_vec()).unwrap()).unwrap();
        links.send(
            now,
            at,
            &ClientCredential::Psk(psk.clone()),
            b"register".to_vec(),
        );
        links.send(
            now,
            at,
            &ClientCredential::Psk(psk.clone()),
            b"register".to_vec(),
        ); // a CoAP retransmission
        assert!(links.has(at));
        let got = shuttle(&mut links, &mut srv, me, at, &mut now);
        assert_eq!(got, vec![b"register".to_vec()]);
        assert!(matches!(
            links.poll_event(),
            Some(LinkEvent::Connected { identity, .. }) if identity == "meter"
        ));
    }

    #[test]
    fn a_certificate_account_connects_with_the_written_certificate() {
        let me: SocketAddr = "127.0.0.1:40002".parse().unwrap();
        let at: SocketAddr = "127.0.0.1:5684".parse().unwrap();
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (server_cert, server_key) = ca.issue("server", Usage::Server).unwrap();
        let mut config = ServerConfig::new(Arc::new(|_: &str| None));
        config.certificate = Some(
            CertificateCredential::new(
                server_cert.clone(),
                server_key,
                vec![ca.certificate().clone()],
            )
            .unwrap(),
        );
        let mut srv = OpensslServer::new(config).unwrap();
        // What bootstrap wrote: /0/x/3, /0/x/5 (PKCS#8) and /0/x/4.
        let (cert, key) = ca.issue("meter-7", Usage::Client).unwrap();
        let credential = CertificateCredential::from_security_object(
            cert.der(),
            &key.to_pkcs8_der().unwrap(),
            server_cert.der(),
        )
        .unwrap();
        let mut links = DtlsLinks::new();
        let mut now = Instant::now();
        links.send(
            now,
            at,
            &ClientCredential::Certificate(credential),
            b"register".to_vec(),
        );
        let got = shuttle(&mut links, &mut srv, me, at, &mut now);
        assert_eq!(got, vec![b"register".to_vec()]);
        assert!(matches!(
            links.poll_event(),
            Some(LinkEvent::Connected { identity, suite, .. })
                if identity == "CN=meter-7" && suite == CipherSuite::EcdheEcdsaAes128Ccm8
        ));
    }

    #[test]
    fn a_wrong_key_fails_the_link_and_holds_down_new_handshakes() {
        let me: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let at: SocketAddr = "127.0.0.1:5684".parse().unwrap();
        let mut srv = server(KEY);
        let mut links = DtlsLinks::new();
        let mut now = Instant::now();
        let wrong = Psk::new(
            "meter",
            SecretKey::new(b"another-key-16by".to_vec()).unwrap(),
        )
        .unwrap();
        links.send(
            now,
            at,
            &ClientCredential::Psk(wrong.clone()),
            b"register".to_vec(),
        );
        let got = shuttle(&mut links, &mut srv, me, at, &mut now);
        assert!(got.is_empty());
        let failed = std::iter::from_fn(|| links.poll_event())
            .find(|e| matches!(e, LinkEvent::Failed { .. }))
            .expect("the handshake fails");
        let LinkEvent::Failed { reason, .. } = failed else {
            unreachable!()
        };
        assert!(reason.contains("wrong key"), "{reason}");
        assert!(!links.has(at));
        links.send(
            now,
            at,
            &ClientCredential::Psk(wrong.clone()),
            b"again".to_vec(),
        );
        assert!(!links.has(at), "held down right after the failure");
        links.send(
            now + HOLD_DOWN,
            at,
            &ClientCredential::Psk(wrong.clone()),
            b"again".to_vec(),
        );
        assert!(links.has(at), "a later attempt starts a new handshake");
    }
}
