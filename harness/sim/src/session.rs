//! One run of the LwM2M client: the sans-IO [`Client`] plus the UDP socket
//! that carries its datagrams. The socket's receive side runs on a thread
//! that forwards each datagram to the meter's inbox; everything else (the
//! client, timers, sends) happens on the meter's loop.
//!
//! Datagrams to a peer whose account asks for PSK security (the
//! Bootstrap-Server account or an LwM2M Server account with Security Mode 0,
//! `coaps://`) go through a DTLS link ([`crate::security::link`]); a failed
//! handshake is reported to the client as a transport failure
//! ([`Client::registration_failed_transport`]), so its retry policy and the
//! fall-back to bootstrap (LwM2M 1.1 Core §6.2.1.1) apply. Plain `coap://`
//! peers are served as before.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dtls::ClientCredential;
use lwm2m::bootstrap::{resolve_uri, SecurityMode, ServerAccount};
use lwm2m::client::{Client, ClientConfig, ClientEvent, ObjectStore, RegistrationState};

use crate::error::SimError;
use crate::meter::Input;
use crate::security::{DtlsLinks, LinkEvent, PskCredential};

/// How often the receive thread looks at its stop flag.
const RECV_POLL: Duration = Duration::from_millis(100);
/// Largest datagram accepted (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// The settings a session was started with, to tell whether `AT+LWM2MSTART`
/// asks for anything new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// The LwM2M server URI (`AT+LWM2MSRV`); empty when the device only has
    /// a Bootstrap-Server.
    pub server_uri: String,
    pub endpoint: String,
    pub lifetime_s: u32,
    /// The Bootstrap-Server URI (`AT+LWM2MBS`).
    pub bootstrap_uri: Option<String>,
    /// The Bootstrap-Server account's credential (`AT+LWM2MBSPSK`).
    pub bootstrap_psk: Option<PskCredential>,
    /// The directly configured server's credential (`AT+LWM2MPSK`).
    pub server_psk: Option<PskCredential>,
}

pub struct Session {
    pub id: u64,
    pub settings: SessionSettings,
    client: Client,
    socket: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
    links: DtlsLinks,
    link_events: Vec<LinkEvent>,
    /// Datagrams sent, for the radio's sleep model (meter/sleep.rs).
    sent: std::cell::Cell<u64>,
}

/// How the datagrams to one peer travel.
enum Security {
    Plain,
    /// DTLS with a PSK (Security Mode 0) or a certificate (Mode 2).
    Dtls(ClientCredential),
    /// The account asks for something the meter cannot do.
    Unusable(String),
}

impl Session {
    /// Binds a UDP socket on the loopback of the server's family, starts the
    /// receive thread and starts the client (Register, or Bootstrap-Request
    /// when it holds no usable account) with `accounts` restored from NV.
    pub fn start(
        id: u64,
        settings: SessionSettings,
        config: ClientConfig,
        store: ObjectStore,
        accounts: &[ServerAccount],
        inbox: Sender<Input>,
        now: Instant,
    ) -> Result<Self, SimError> {
        let family = config
            .bootstrap
            .as_ref()
            .map_or(config.server, |b| b.server);
        let bind: SocketAddr = if family.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        }
        .parse()
        .expect("literal address");
        let socket = UdpSocket::bind(bind).map_err(SimError::Udp)?;
        socket
            .set_read_timeout(Some(RECV_POLL))
            .map_err(SimError::Udp)?;
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let socket = Arc::clone(&socket);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("udp-recv-{id}"))
                .spawn(move || receive(id, &socket, &stop, &inbox))
                .map_err(SimError::Udp)?
        };
        tracing::info!(
            session = id,
            local = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            server = %config.server,
            bootstrap = ?config.bootstrap.as_ref().map(|b| b.server_uri.clone()),
            accounts = accounts.len(),
            endpoint = %config.endpoint,
            lifetime_s = config.lifetime.as_secs(),
            "LwM2M client starting"
        );
        let mut client = Client::with_accounts(config, store, accounts);
        client.set_account_defaults(crate::objects::server_account_defaults());
        client.start(now);
        let mut session = Session {
            id,
            settings,
            client,
            socket,
            stop,
            receiver: Some(receiver),
            links: DtlsLinks::new(),
            link_events: Vec::new(),
            sent: std::cell::Cell::new(0),
        };
        session.flush();
        Ok(session)
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn state(&self) -> &RegistrationState {
        self.client.state()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.client.poll_timeout(), self.links.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A datagram from `peer`: decrypted first when it belongs to a DTLS
    /// link; a stray record from a secured peer without a link (an old
    /// session's) is dropped.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) {
        if let Some(plain) = self.links.handle_datagram(now, peer, data) {
            for p in plain {
                self.client.handle_datagram(now, peer, &p);
            }
            self.take_link_events(now);
            return;
        }
        if let Security::Dtls(_) = self.security_for(peer) {
            tracing::debug!(session = self.id, %peer, bytes = data.len(), "datagram from a secured peer without a DTLS session dropped");
            return;
        }
        self.client.handle_datagram(now, peer, data);
    }

    /// Runs the client's and the DTLS links' timers if one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        if self.links.poll_timeout().is_some_and(|t| t <= now) {
            self.links.handle_timeout(now);
            self.take_link_events(now);
        }
    }

    /// Sends every datagram the client has queued (through its peer's DTLS
    /// link where the account asks for one) and what the links produced. A
    /// failed send is logged and dropped, as a radio would lose it; CoAP
    /// retransmission recovers.
    pub fn flush(&mut self) {
        let now = Instant::now();
        // Bounded: a transport failure may queue datagrams (a Bootstrap-Request).
        for _ in 0..4 {
            let mut sent = false;
            while let Some(t) = self.client.poll_transmit() {
                sent = true;
                match self.security_for(t.destination) {
                    Security::Plain => self.send_raw(t.destination, &t.payload),
                    Security::Dtls(credential) => {
                        self.links.send(now, t.destination, &credential, t.payload)
                    }
                    Security::Unusable(reason) => {
                        tracing::warn!(session = self.id, destination = %t.destination, %reason, "cannot secure the datagram; not sent");
                        self.client.registration_failed_transport(now, reason);
                    }
                }
            }
            self.take_link_events(now);
            while let Some(t) = self.links.poll_transmit() {
                sent = true;
                self.send_raw(t.destination, &t.payload);
            }
            if !sent {
                break;
            }
        }
    }

    /// How many datagrams this session has sent (sending wakes a radio in PSM).
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    fn send_raw(&self, destination: SocketAddr, payload: &[u8]) {
        self.sent.set(self.sent.get() + 1);
        if let Err(e) = self.socket.send_to(payload, destination) {
            tracing::warn!(session = self.id, %destination, error = %e, "UDP send failed; datagram lost");
        } else {
            tracing::trace!(session = self.id, %destination, bytes = payload.len(), "sent");
        }
    }

    /// Acts on the links' events (a failed handshake is the client's
    /// transport failure) and keeps them for [`Session::link_events`].
    fn take_link_events(&mut self, now: Instant) {
        while let Some(e) = self.links.poll_event() {
            if let LinkEvent::Failed { peer, reason } = &e {
                self.client.registration_failed_transport(
                    now,
                    format!("DTLS handshake with {peer} failed: {reason}"),
                );
            }
            self.link_events.push(e);
        }
    }

    /// What the DTLS links reported since the last call (for URCs and logs).
    pub fn link_events(&mut self) -> Vec<LinkEvent> {
        std::mem::take(&mut self.link_events)
    }

    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        let events: Vec<ClientEvent> = std::iter::from_fn(|| self.client.poll_event()).collect();
        if events
            .iter()
            .any(|e| matches!(e, ClientEvent::BootstrapFinished { .. }))
        {
            // New credentials: sessions under the old ones end; the
            // Bootstrap-Server's stays for the answer to Bootstrap-Finish.
            let keep = self.client.config().bootstrap.as_ref().map(|b| b.server);
            self.links.close_except(Instant::now(), keep);
        }
        events
    }

    /// How datagrams to `peer` travel: the Bootstrap-Server account's or the
    /// matching LwM2M Server account's Security Mode decides (Core §E.1 /0/x/2).
    fn security_for(&self, peer: SocketAddr) -> Security {
        let config = self.client.config();
        if let Some(bs) = config.bootstrap.as_ref().filter(|b| b.server == peer) {
            return security_of(bs.security_mode, &bs.psk_identity, &bs.psk_key, &[]);
        }
        let account = self.client.accounts().into_iter().find(|a| {
            resolve_uri(&a.server_uri).is_ok_and(|(addr, _)| addr == peer)
                || (a.server_uri == self.settings.server_uri && peer == config.server)
        });
        match account {
            Some(a) => security_of(
                a.security_mode,
                &a.psk_identity,
                &a.psk_key,
                &a.server_public_key,
            ),
            None => Security::Plain,
        }
    }
}

/// `identity`, `key` and `server_key` are /0/x/3, /0/x/5 and /0/x/4.
fn security_of(mode: SecurityMode, identity: &[u8], key: &[u8], server_key: &[u8]) -> Security {
    match mode {
        SecurityMode::NoSec => Security::Plain,
        SecurityMode::Psk => {
            let psk = String::from_utf8(identity.to_vec())
                .ok()
                .and_then(|id| PskCredential::new(id, key).ok())
                .and_then(|c| c.psk());
            match psk {
                Some(p) => Security::Dtls(ClientCredential::Psk(p)),
                None => Security::Unusable(
                    "the PSK account's identity or key is not usable for DTLS".into(),
                ),
            }
        }
        SecurityMode::Certificate => {
            match dtls::CertificateCredential::from_security_object(identity, key, server_key) {
                Ok(c) => Security::Dtls(ClientCredential::Certificate(c)),
                Err(e) => Security::Unusable(format!("the certificate account is not usable: {e}")),
            }
        }
        other => Security::Unusable(format!("security mode {other} is not supported")),
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // No close_notify: a session also ends with the radio off, when
        // nothing may be sent; the server's idle timeout ends its side.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
    }
}

fn receive(id: u64, socket: &UdpSocket, stop: &AtomicBool, inbox: &Sender<Input>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if inbox
                    .send(Input::Datagram {
                        session: id,
                        peer,
                        data: buf[..n].to_vec(),
                    })
                    .is_err()
                {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                // ICMP errors surface here on some systems; keep listening.
                tracing::debug!(session = id, error = %e, "UDP receive error");
                std::thread::sleep(RECV_POLL);
            }
        }
    }
}
