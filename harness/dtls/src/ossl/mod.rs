//! The OpenSSL implementation of [`crate::DtlsServer`] and [`crate::DtlsClient`].
//!
//! OpenSSL does the cryptography, the handshake state machine, record
//! protection and replay detection; this module feeds it datagrams through an
//! in-memory BIO ([`pipe`]), runs the retransmission timer on the caller's
//! clock ([`crate::flight`]) and does the stateless cookie exchange in front
//! of it ([`crate::cookie`]).

mod client;
mod connection;
mod context;
mod ffi;
mod pipe;
mod server;

pub use client::OpensslClient;
pub use server::OpensslServer;
