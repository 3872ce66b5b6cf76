//! What sits between the UDP socket and a sans-IO protocol core: nothing
//! (plain CoAP, `coap://`) or a DTLS 1.2 PSK endpoint (`coaps://`, LwM2M 1.1
//! Transport §5.2.8; RFC 7925 profiles the suites).
//!
//! For coaps, datagrams in go through [`dtls::DtlsServer`]; what comes out
//! decrypted goes to the core with the peer's authenticated PSK identity,
//! and what the core sends is encrypted for the peer's session. The DTLS
//! endpoint's own reports (handshakes, drops) become
//! [`SecurityEvent`]s. A datagram for a peer without an established session
//! cannot be sent; the caller logs it as a send error. A key revoked in the
//! [`CredentialStore`] ends the sessions that authenticated with it
//! ([`Transport::close_revoked`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dtls::{CipherSuite, DtlsServer, OpensslServer, RetransmitPolicy};
use lwm2m::coap::Transmit;
use lwm2m::server::SecurityEvent;

use crate::credentials::{CredentialStore, CredentialWatch, Revocation};
use crate::error::ServerError;

/// How a server's socket is secured.
#[derive(Debug, Clone, Default)]
pub enum SecurityConfig {
    /// Plain CoAP (Security Mode 3, NoSec).
    #[default]
    NoSec,
    /// DTLS 1.2 with pre-shared keys (Security Mode 0) from the server's
    /// [`CredentialStore`].
    Psk(DtlsSettings),
}

impl SecurityConfig {
    /// DTLS PSK with default settings.
    pub fn psk() -> Self {
        SecurityConfig::Psk(DtlsSettings::default())
    }

    /// `coap` or `coaps`: the URI scheme a client uses for this server.
    pub fn scheme(&self) -> &'static str {
        match self {
            SecurityConfig::NoSec => "coap",
            SecurityConfig::Psk(_) => "coaps",
        }
    }
}

/// The DTLS endpoint's knobs (see [`dtls::ServerConfig`]).
#[derive(Debug, Clone)]
pub struct DtlsSettings {
    /// Suites accepted, in preference order; default both
    /// (TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256).
    pub suites: Vec<CipherSuite>,
    pub mtu: u16,
    pub retransmit: RetransmitPolicy,
    pub max_half_open: usize,
    pub max_sessions: usize,
    pub idle_timeout: Option<Duration>,
}

impl Default for DtlsSettings {
    fn default() -> Self {
        let d = dtls::ServerConfig::new(std::sync::Arc::new(|_: &str| None));
        DtlsSettings {
            suites: d.suites,
            mtu: d.mtu,
            retransmit: d.retransmit,
            max_half_open: d.max_half_open,
            max_sessions: d.max_sessions,
            idle_timeout: d.idle_timeout,
        }
    }
}

/// `scheme://ip:port`, an unspecified address written as loopback (what a
/// client on this machine would use), IPv6 in brackets.
pub(crate) fn uri(scheme: &str, addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// A decrypted (or plain) datagram for the core.
pub(crate) struct Inbound {
    pub(crate) peer: SocketAddr,
    /// The authenticated PSK identity; `None` over plain CoAP.
    pub(crate) identity: Option<String>,
    pub(crate) payload: Vec<u8>,
}

pub(crate) enum Transport {
    Plain {
        out: VecDeque<Transmit>,
    },
    Dtls {
        endpoint: Box<dyn DtlsServer>,
        store: CredentialStore,
    },
}

impl Transport {
    pub(crate) fn new(
        security: &SecurityConfig,
        store: &CredentialStore,
    ) -> Result<Self, ServerError> {
        match security {
            SecurityConfig::NoSec => Ok(Transport::Plain {
                out: VecDeque::new(),
            }),
            SecurityConfig::Psk(s) => {
                let mut config = dtls::ServerConfig::new(store.psk_lookup());
                config.suites = s.suites.clone();
                config.mtu = s.mtu;
                config.retransmit = s.retransmit;
                config.max_half_open = s.max_half_open;
                config.max_sessions = s.max_sessions;
                config.idle_timeout = s.idle_timeout;
                // Certificate mode beside PSK: the store's per-run CA and
                // server certificate (no certificate is ever shared).
                config.certificate = Some(
                    store
                        .server_certificate()
                        .map_err(|e| ServerError::Dtls(e.to_string()))?,
                );
                let endpoint =
                    OpensslServer::new(config).map_err(|e| ServerError::Dtls(e.to_string()))?;
                Ok(Transport::Dtls {
                    endpoint: Box::new(endpoint),
                    store: store.clone(),
                })
            }
        }
    }

    pub(crate) fn is_secure(&self) -> bool {
        matches!(self, Transport::Dtls { .. })
    }

    /// A datagram from the socket; returns what the core should see.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
    ) -> Vec<Inbound> {
        match self {
            Transport::Plain { .. } => vec![Inbound {
                peer,
                identity: None,
                payload: datagram.to_vec(),
            }],
            Transport::Dtls { endpoint, .. } => {
                endpoint.handle_datagram(now, peer, datagram);
                let mut inbound = Vec::new();
                while let Some(r) = endpoint.poll_received() {
                    let identity = endpoint.session(r.peer).and_then(|s| {
                        let certificate = s.suite.is_some_and(|c| c.is_certificate());
                        s.identity.map(|id| {
                            if certificate {
                                crate::credentials::certificate_identity(&id)
                            } else {
                                id
                            }
                        })
                    });
                    inbound.push(Inbound {
                        peer: r.peer,
                        identity,
                        payload: r.payload,
                    });
                }
                inbound
            }
        }
    }

    /// Queues `payload` for `peer` (encrypted for its session under DTLS).
    pub(crate) fn send(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        payload: &[u8],
    ) -> Result<(), String> {
        match self {
            Transport::Plain { out } => {
                out.push_back(Transmit {
                    destination: peer,
                    payload: payload.to_vec(),
                });
                Ok(())
            }
            Transport::Dtls { endpoint, .. } => endpoint
                .send(now, peer, payload)
                .map_err(|e| format!("DTLS: {e}")),
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Transport::Plain { out } => out.pop_front(),
            Transport::Dtls { endpoint, .. } => endpoint.poll_transmit().map(|t| Transmit {
                destination: t.destination,
                payload: t.payload,
            }),
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<SecurityEvent> {
        match self {
            Transport::Plain { .. } => None,
            Transport::Dtls { endpoint, .. } => endpoint.poll_event().map(security_event),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Transport::Plain { .. } => None,
            Transport::Dtls { endpoint, .. } => endpoint.poll_timeout(),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Transport::Dtls { endpoint, .. } = self {
            endpoint.handle_timeout(now);
        }
    }

    /// Ends the sessions that authenticated with a key `revocation` took
    /// away (removed or replaced in the store): close_notify, state dropped,
    /// so a revoked key stops working at once, not only at the next
    /// handshake, and the peer's next datagram needs a new handshake.
    pub(crate) fn close_revoked(&mut self, now: Instant, revocation: Revocation) {
        if let Transport::Dtls { endpoint, store } = self {
            for peer in store.close_revoked(endpoint.as_mut(), now, revocation) {
                tracing::info!(%peer, "closed the DTLS session of a revoked credential");
            }
        }
    }

    /// Sends close_notify to every session (server shutdown).
    pub(crate) fn shutdown(&mut self, now: Instant) {
        if let Transport::Dtls { endpoint, .. } = self {
            endpoint.shutdown(now);
        }
    }

    /// A subscription to the credential store's revocations, for
    /// [`close_revoked`](Self::close_revoked) (none for plain CoAP). Take it
    /// before serving, so that no change is missed.
    pub(crate) fn revocations(&self) -> Option<CredentialWatch> {
        match self {
            Transport::Plain { .. } => None,
            Transport::Dtls { store, .. } => Some(store.watch()),
        }
    }
}

/// The DTLS endpoint's report as a transport-neutral [`SecurityEvent`].
fn security_event(event: dtls::ServerEvent) -> SecurityEvent {
    match event {
        dtls::ServerEvent::HandshakeCompleted {
            peer,
            identity,
            suite,
        } => SecurityEvent::HandshakeCompleted {
            peer,
            identity: if suite.is_certificate() {
                crate::credentials::certificate_identity(&identity)
            } else {
                identity
            },
            suite: suite.iana_name().to_string(),
        },
        dtls::ServerEvent::HandshakeFailed {
            peer,
            identity,
            reason,
        } => SecurityEvent::HandshakeFailed {
            peer,
            identity,
            wrong_key: reason.is_wrong_key(),
            unknown_identity: reason.is_unknown_identity(),
            reason: reason.to_string(),
        },
        dtls::ServerEvent::SessionClosed {
            peer,
            identity,
            reason,
        } => SecurityEvent::SessionClosed {
            peer,
            identity,
            reason: reason.to_string(),
        },
        dtls::ServerEvent::Dropped { peer, reason } => SecurityEvent::Dropped {
            peer,
            reason: reason.to_string(),
        },
    }
}
