//! DTLS 1.2 with pre-shared keys (and X.509 certificates) for meterbench's
//! `coaps` endpoints: the embedded LwM2M server and bootstrap server (one
//! [`DtlsServer`] per socket, many meters) and the virtual meter (one
//! [`DtlsClient`]).
//!
//! # Sans-IO
//!
//! Like `lwm2m` (and quinn-proto), nothing here owns a socket or a clock. The
//! caller feeds datagrams with their peer address and the current time in
//! (`handle_datagram`, `handle_timeout`) and drains datagrams to send
//! (`poll_transmit`), decrypted application datagrams (`poll_received`),
//! events (`poll_event`) and the next deadline (`poll_timeout`). Tests run a
//! whole handshake in memory on a fake clock, with loss injected.
//!
//! # Suites
//!
//! - `TLS_PSK_WITH_AES_128_CCM_8` (OpenSSL `PSK-AES128-CCM8`), the suite
//!   LwM2M makes mandatory for PSK mode (LwM2M 1.1 Transport §5.2.8;
//!   RFC 7925 §4.1);
//! - `TLS_PSK_WITH_AES_128_CBC_SHA256` (`PSK-AES128-CBC-SHA256`), which
//!   LwM2M 1.0 listed and many deployed modems still offer.
//!
//! - `TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8` (OpenSSL `ECDHE-ECDSA-AES128-CCM8`),
//!   for certificate mode (LwM2M Security Mode 2; RFC 7251, RFC 7925 §4.4),
//!   ECDSA P-256: a server configured with a certificate
//!   ([`ServerConfig::certificate`]) accepts it beside PSK, requires and
//!   verifies the client's certificate and reports its subject CN as the
//!   session's identity; a client ([`ClientConfig::with_certificate`])
//!   verifies the server against a CA or the pinned server certificate.
//!   The [`certificate`](CertificateAuthority) module makes per-run CAs.
//!
//! DTLS 1.2 only (RFC 6347); no session resumption.
//!
//! # Implementation: OpenSSL
//!
//! [`OpensslServer`] and [`OpensslClient`] use the `openssl` crate over the
//! system OpenSSL 3 (build needs `libssl-dev` and `pkg-config`). OpenSSL was
//! chosen because it negotiates both suites, supports the stateless cookie
//! exchange (`DTLSv1_listen`), and is what most deployed LwM2M servers and
//! libcoap use, so interop findings transfer. The pure-Rust `dimpl` lacks the
//! CBC suite and refuses clients that do not offer Extended Master Secret,
//! which real meters may not. The traits keep the choice replaceable.
//!
//! What this crate does around OpenSSL:
//! - **Cookies before state** (RFC 6347 §4.2.1): a cookie-less ClientHello
//!   is answered with a HelloVerifyRequest built here from an HMAC of the
//!   source address and client random under a per-endpoint secret, without
//!   creating anything; only a ClientHello returning a valid cookie gets an
//!   OpenSSL session. Half-open sessions are capped, the oldest evicted.
//! - **Retransmission on the caller's clock** (RFC 6347 §4.2.4): OpenSSL's
//!   DTLS timer reads the wall clock, so it is parked and the flight timer
//!   runs here (the `flight` module explains why byte-equal resends are
//!   sound).
//! - **Wrong keys fail fast**: a Finished that does not authenticate is
//!   silently dropped by the DTLS record layer (RFC 6347 §4.1.2.7); the
//!   server detects it, reports [`HandshakeFailure::FinishedNotVerified`]
//!   and sends a plaintext decrypt_error alert, so the client fails at once
//!   with a reason instead of timing out.
//! - **Revocation reaches open sessions**: each session remembers the key
//!   the lookup gave it; [`DtlsServer::revoke`] ends, with close_notify, the
//!   sessions of an identity whose key was removed or replaced, so the peer
//!   must handshake again and the lookup decides anew.
//! - **Secrets stay secret**: [`SecretKey`] zeroizes on drop and prints only
//!   a SHA-256 fingerprint; no error or log carries key bytes.

mod certificate;
mod client;
mod config;
mod cookie;
mod error;
mod event;
mod flight;
mod ossl;
pub mod record;
mod secret;
mod server;
mod suite;

pub use certificate::{
    Certificate, CertificateAuthority, CertificateCredential, CertificateError, PrivateKey, Usage,
};
pub use client::{ClientState, DtlsClient};
pub use config::{ClientConfig, ClientCredential, PskLookup, RetransmitPolicy, ServerConfig};
pub use error::Error;
pub use event::{
    ClientEvent, CloseReason, DropReason, HandshakeFailure, Received, ServerEvent, Transmit,
};
pub use ossl::{OpensslClient, OpensslServer};
pub use secret::{KeyError, Psk, SecretKey, MAX_IDENTITY_LEN, MAX_KEY_LEN};
pub use server::{DtlsServer, ServerStats, SessionInfo, SessionState};
pub use suite::CipherSuite;
/// Re-exported so callers hold key bytes (DER private keys) in the same
/// zeroizing buffer [`PrivateKey::to_pkcs8_der`] returns.
pub use zeroize::Zeroizing;
