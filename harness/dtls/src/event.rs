//! What an endpoint reports to its caller: datagrams to send, decrypted
//! application datagrams, and events.

use std::fmt;
use std::net::SocketAddr;

use crate::record::{alert, RecordError};
use crate::suite::CipherSuite;

/// A datagram for the caller to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// A decrypted application datagram (one DTLS record's payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Who sent it.
    pub peer: SocketAddr,
    /// The plaintext.
    pub payload: Vec<u8>,
}

/// Why a handshake did not complete. The `Display` text is meant for a test
/// report ("what did the meter see").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Server: the PSK lookup knew no key for the identity the client sent.
    UnknownIdentity,
    /// Server: the client's Finished did not authenticate under the key the
    /// lookup returned — the two sides hold different keys for the identity.
    /// The server answers with a plaintext decrypt_error alert.
    FinishedNotVerified,
    /// The peer sent a fatal alert (RFC 5246 §7.2).
    AlertReceived {
        /// Alert description code.
        description: u8,
    },
    /// The flight was retransmitted the configured number of times without
    /// an answer (RFC 6347 §4.2.4).
    Timeout {
        /// Retransmissions made.
        retransmissions: u32,
    },
    /// Server: a newer half-open handshake evicted this one (half-open cap).
    Evicted,
    /// Server: the key the client is handshaking with was revoked
    /// ([`crate::DtlsServer::revoke`]) before the handshake completed.
    KeyRevoked,
    /// OpenSSL ended the handshake for another reason (no shared cipher
    /// suite, protocol error, ...).
    Protocol(String),
}

impl HandshakeFailure {
    /// Whether the cause is most likely a key mismatch (wrong PSK).
    pub fn is_wrong_key(&self) -> bool {
        matches!(
            self,
            Self::FinishedNotVerified
                | Self::AlertReceived {
                    description: alert::DECRYPT_ERROR | alert::BAD_RECORD_MAC
                }
        )
    }

    /// Whether the peer did not know the identity.
    pub fn is_unknown_identity(&self) -> bool {
        matches!(
            self,
            Self::UnknownIdentity
                | Self::AlertReceived {
                    description: alert::UNKNOWN_PSK_IDENTITY
                }
        )
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownIdentity => f.write_str("unknown PSK identity"),
            Self::FinishedNotVerified => {
                f.write_str("peer's Finished failed to authenticate: the PSKs differ (wrong key)")
            }
            Self::AlertReceived { description } => {
                write!(
                    f,
                    "peer sent fatal alert {} ({description})",
                    alert::name(*description)
                )?;
                if self.is_wrong_key() {
                    f.write_str(": the PSKs differ (wrong key)")?;
                }
                Ok(())
            }
            Self::Timeout { retransmissions } => {
                write!(f, "no answer after {retransmissions} retransmissions")
            }
            Self::Evicted => f.write_str("evicted by newer half-open handshakes"),
            Self::KeyRevoked => f.write_str("the PSK was revoked during the handshake"),
            Self::Protocol(reason) => write!(f, "protocol error: {reason}"),
        }
    }
}

/// Why an established session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer sent close_notify.
    PeerClosed,
    /// The peer sent a fatal alert.
    Alert {
        /// Alert description code.
        description: u8,
    },
    /// Nothing authenticated arrived for the idle timeout.
    IdleTimeout,
    /// The local side closed it (`close` or `shutdown`).
    Local,
    /// The local side closed it because the PSK it authenticated with was
    /// revoked or replaced ([`crate::DtlsServer::revoke`]).
    KeyRevoked,
    /// The peer started a new handshake from the same address (a rebooted
    /// client, RFC 6347 §4.2.8); the old session was dropped when the new
    /// one was created.
    Replaced,
    /// OpenSSL ended the session for another reason.
    Error(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed => f.write_str("peer sent close_notify"),
            Self::Alert { description } => {
                write!(
                    f,
                    "peer sent fatal alert {} ({description})",
                    alert::name(*description)
                )
            }
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::Local => f.write_str("closed locally"),
            Self::KeyRevoked => f.write_str("closed locally: its PSK was revoked"),
            Self::Replaced => f.write_str("replaced by a new handshake from the same address"),
            Self::Error(reason) => write!(f, "protocol error: {reason}"),
        }
    }
}

/// Why a received datagram (or part of it) was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// The record framing is broken (truncated, unknown type, bad version).
    Malformed(RecordError),
    /// Server: not a ClientHello and no session with this address.
    UnknownPeer,
    /// Server: a ClientHello whose cookie this endpoint did not issue.
    BadCookie,
    /// Server: a ClientHello the stateless path cannot read.
    UnusableClientHello(RecordError),
    /// Records the record layer rejected: failed authentication (bad MAC or
    /// tag), replayed sequence number, or an unexpected epoch
    /// (RFC 6347 §4.1.2.6–7 says discard silently; we count them).
    RecordsRejected {
        /// How many records of the datagram were discarded.
        count: usize,
    },
    /// Client: a datagram from an address other than the server's.
    WrongSource,
    /// The session is closed or failed.
    SessionClosed,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed datagram: {e}"),
            Self::UnknownPeer => f.write_str("no session with this peer and not a ClientHello"),
            Self::BadCookie => f.write_str("ClientHello with a cookie this server did not issue"),
            Self::UnusableClientHello(e) => write!(f, "unusable ClientHello: {e}"),
            Self::RecordsRejected { count } => write!(
                f,
                "{count} record(s) rejected (bad authentication tag, replay or wrong epoch)"
            ),
            Self::WrongSource => f.write_str("datagram not from the server's address"),
            Self::SessionClosed => f.write_str("session already closed"),
        }
    }
}

/// Server events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A handshake completed; `identity` is the authenticated PSK identity.
    HandshakeCompleted {
        /// Peer address.
        peer: SocketAddr,
        /// The PSK identity the peer proved it holds the key for.
        identity: String,
        /// Negotiated suite.
        suite: CipherSuite,
    },
    /// A handshake failed; other sessions are unaffected.
    HandshakeFailed {
        /// Peer address.
        peer: SocketAddr,
        /// The identity the client claimed, if it got that far.
        identity: Option<String>,
        /// Why.
        reason: HandshakeFailure,
    },
    /// An established session ended.
    SessionClosed {
        /// Peer address.
        peer: SocketAddr,
        /// Its identity.
        identity: String,
        /// Why.
        reason: CloseReason,
    },
    /// A datagram (or some of its records) was discarded.
    Dropped {
        /// Source address.
        peer: SocketAddr,
        /// Why.
        reason: DropReason,
    },
}

/// Client events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The handshake completed.
    Connected {
        /// Negotiated suite.
        suite: CipherSuite,
    },
    /// The handshake failed; the client is finished.
    HandshakeFailed {
        /// Why (a wrong key shows as `AlertReceived { decrypt_error }`).
        reason: HandshakeFailure,
    },
    /// The established session ended.
    Closed {
        /// Why.
        reason: CloseReason,
    },
    /// A datagram (or some of its records) was discarded.
    Dropped {
        /// Why.
        reason: DropReason,
    },
}
