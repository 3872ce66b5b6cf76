//! Endpoint configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
            .field("mtu", &self.mtu)
            .field("retransmit", &self.retransmit)
            .field("max_half_open", &self.max_half_open)
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// Client endpoint settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Identity and key.
    pub psk: Psk,
    /// Suites offered, in preference order.
    pub suites: Vec<CipherSuite>,
    /// Path MTU.
    pub mtu: u16,
    /// Handshake retransmission.
    pub retransmit: RetransmitPolicy,
}

impl ClientConfig {
    /// Defaults: both suites (CCM_8 first), MTU 1280, RFC timers.
    pub fn new(psk: Psk) -> Self {
        Self {
            psk,
            suites: CipherSuite::ALL.to_vec(),
            mtu: 1280,
            retransmit: RetransmitPolicy::default(),
        }
    }
}
