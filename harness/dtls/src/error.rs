//! The crate's error type. No variant ever carries key bytes: OpenSSL error
//! strings name operations and reasons, and PSK identities are public (they
//! travel in the clear in ClientKeyExchange, RFC 4279 §2).

use std::net::SocketAddr;

use crate::secret::KeyError;

/// What went wrong, with the operation and peer involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// OpenSSL refused an operation (context setup, HMAC, write).
    #[error("OpenSSL failed {during}: {detail}")]
    OpenSsl {
        /// The operation, e.g. "setting the cipher list".
        during: &'static str,
        /// OpenSSL's error stack, rendered.
        detail: String,
    },
    /// A key or identity was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No cipher suite configured.
    #[error("no cipher suite configured")]
    NoCipherSuite,
    /// `send` to a peer without an established session.
    #[error("no established DTLS session with {0}")]
    NoSession(SocketAddr),
    /// `send` before the client's handshake completed or after it ended.
    #[error("DTLS session with {0} is not established")]
    NotEstablished(SocketAddr),
    /// Application datagram larger than a DTLS record can carry.
    #[error("application datagram of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Offered length.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
}

impl Error {
    pub(crate) fn openssl(during: &'static str, err: impl std::fmt::Display) -> Self {
        Self::OpenSsl {
            during,
            detail: err.to_string(),
        }
    }
}
