//! Endpoint configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::certificate::CertificateCredential;
use crate::secret::{Psk, SecretKey};
use crate::suite::CipherSuite;

/// Handshake retransmission timing (RFC 6347 §4.2.4.1: start at 1 s, double
/// on each retransmission, cap at 60 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitPolicy {
    /// First timeout.
    pub initial: Duration,
    /// Largest timeout.
    pub max: Duration,
    /// Retransmissions of one flight before the handshake fails.
    pub max_retransmissions: u32,
}

impl Default for RetransmitPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_retransmissions: 6,
        }
    }
}

/// Maps a PSK identity to its key; `None` rejects the identity
/// (unknown_psk_identity). Called from inside the handshake.
pub type PskLookup = Arc<dyn Fn(&str) -> Option<SecretKey> + Send + Sync>;

/// Server endpoint settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// Key lookup by identity.
    pub psk_lookup: PskLookup,
    /// Suites accepted, in preference order.
    pub suites: Vec<CipherSuite>,
    /// Certificate mode (LwM2M Security Mode 2) beside PSK: the server's
    /// certificate and key, and the trust anchors client certificates must
    /// chain to. With one, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 is accepted
    /// too (after `suites`), a client certificate is required in that suite
    /// and verified, and the session's identity is the certificate's
    /// subject CN. `None`: PSK only.
    pub certificate: Option<CertificateCredential>,
    /// Path MTU for handshake fragmentation.
    pub mtu: u16,
    /// Handshake retransmission.
    pub retransmit: RetransmitPolicy,
    /// Most half-open (cookie-verified, handshake unfinished) sessions; the
    /// oldest is evicted to admit a new one.
    pub max_half_open: usize,
    /// Most sessions overall (established + half-open); a new handshake is
    /// refused (ClientHello dropped) when full of established sessions.
    pub max_sessions: usize,
    /// A session with no authenticated datagram for this long is dropped
    /// (after a close_notify). `None` keeps sessions until closed.
    pub idle_timeout: Option<Duration>,
}

impl ServerConfig {
    /// Defaults: both suites, MTU 1280, RFC timers, 64 half-open, 4096
    /// sessions, 30 min idle.
    pub fn new(psk_lookup: PskLookup) -> Self {
        Self {
            psk_lookup,
            suites: CipherSuite::ALL.to_vec(),
            certificate: None,
            mtu: 1280,
            retransmit: RetransmitPolicy::default(),
            max_half_open: 64,
            max_sessions: 4096,
            idle_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("suites", &self.suites)
            .field("certificate", &self.certificate)
            .field("mtu", &self.mtu)
            .field("retransmit", &self.retransmit)
            .field("max_half_open", &self.max_half_open)
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// How a client authenticates.
#[derive(Debug, Clone)]
pub enum ClientCredential {
    /// DTLS PSK (LwM2M Security Mode 0): identity and key.
    Psk(Psk),
    /// X.509 certificate (Security Mode 2): own certificate and key, and
    /// the server's certificate (or its CA) to verify it against.
    Certificate(CertificateCredential),
}

impl ClientCredential {
    /// What the session authenticates as, for logs: the PSK identity, or
    /// `CN=<subject CN>` of the certificate.
    pub fn identity(&self) -> String {
        match self {
            Self::Psk(psk) => psk.identity.clone(),
            Self::Certificate(c) => {
                format!("CN={}", c.certificate.subject_cn().unwrap_or_default())
            }
        }
    }
}

/// Client endpoint settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// PSK or certificate.
    pub credential: ClientCredential,
    /// Suites offered, in preference order.
    pub suites: Vec<CipherSuite>,
    /// Path MTU.
    pub mtu: u16,
    /// Handshake retransmission.
    pub retransmit: RetransmitPolicy,
}

impl ClientConfig {
    /// PSK client. Defaults: both PSK suites (CCM_8 first), MTU 1280, RFC
    /// timers.
    pub fn new(psk: Psk) -> Self {
        Self {
            credential: ClientCredential::Psk(psk),
            suites: CipherSuite::ALL.to_vec(),
            mtu: 1280,
            retransmit: RetransmitPolicy::default(),
        }
    }

    /// Certificate client: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, MTU 1280,
    /// RFC timers.
    pub fn with_certificate(certificate: CertificateCredential) -> Self {
        Self {
            credential: ClientCredential::Certificate(certificate),
            suites: CipherSuite::CERTIFICATE.to_vec(),
            mtu: 1280,
            retransmit: RetransmitPolicy::default(),
        }
    }
}
