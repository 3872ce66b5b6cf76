//! meterbench's embedded LwM2M server: a tokio UDP shell around the sans-IO
//! [`lwm2m::server::Server`], in the way quinn wraps quinn-proto.
//!
//! One task owns the socket and the protocol core; everything else holds a
//! [`ServerHandle`], which offers what test steps need: numbered events to
//! wait on (so nothing that already happened is missed), typed device
//! management requests, and a message log of every datagram in and out for
//! the case's artifacts. No protocol logic lives here.
//!
//! # Security
//!
//! A server runs plain CoAP ([`LwM2mServer::bind`]) or coaps, DTLS 1.2 with
//! pre-shared keys ([`LwM2mServer::bind_secure`], [`SecurityConfig::Psk`]).
//! Keys come from the server's [`CredentialStore`], filled at run time with
//! fresh per-device credentials ([`ServerHandle::provision_psk`],
//! [`ServerHandle::set_psk`]); the identity a client authenticated with must
//! be bound to the endpoint it registers as, or it gets 4.03
//! ([`ServerEvent::Forbidden`]). Handshake outcomes and DTLS drops are events
//! ([`ServerEvent::Security`]) and note lines in the message log.
//!
//! The embedded bootstrap server ([`EmbeddedBootstrapServer`]) runs
//! [`lwm2m::bootstrap::BootstrapServer`] the same way on its own socket.
//!
//! Every datagram also goes into a [`Capture`] (with the firmware file
//! servers', and as DTLS records under coaps), which [`write_case_captures`]
//! writes as pcap files Wireshark decodes as CoAP.
//!
//! Logged datagrams (message log, captures) pass through
//! [`lwm2m::bootstrap::Redactor`] first: a Bootstrap-Write of /0 carries the
//! Secret Key in clear, and the log must not.

mod bootstrap_server;
mod capture;
mod credentials;
mod describe;
mod error;
mod event_history;
mod event_stream;
pub mod firmware;
mod handle;
mod log_and_lifecycle;
mod message_log;
mod pcap;
mod receive_drops;
mod shared;
mod transport;
mod udp_loop;

pub use bootstrap_server::{
    BootstrapOutcome, BootstrapServerEvent, BootstrapServerHandle, EmbeddedBootstrapServer,
};
pub use capture::{Capture, CapturedDatagram, Carried, Recorded};
pub use credentials::{
    certificate_identity, CredentialStore, DeviceCertificate, CERTIFICATE_IDENTITY_PREFIX,
    GENERATED_KEY_LEN,
};
pub use describe::{
    code_text, describe_bootstrap_event, describe_event, describe_request, describe_response,
    describe_security_event, links_text, LinkList,
};
/// The DTLS types the API speaks.
pub use dtls::{CipherSuite, Psk, SecretKey};
pub use error::ServerError;
pub use event_history::EventSeq;
pub use event_stream::{serve_until, EventStream};
pub use handle::{
    LwM2mServer, Notification, Observation, PushReport, ServerHandle, ServerOptions,
    DEFAULT_REQUEST_TIMEOUT,
};
/// The decoded one-line summary of a datagram the message log uses.
pub use lwm2m::coap::summarize;
pub use message_log::{Direction, LogEntry, Stats};
pub use pcap::{write_case_captures, write_pcap, PcapView, DECRYPTED_CAPTURE, WIRE_CAPTURE};
pub use transport::{DtlsSettings, SecurityConfig};

/// The protocol types the API speaks, re-exported so callers need not name `lwm2m`.
pub use lwm2m::server::{
    Attributes, Content, DmRequest, PushProgress, Registration, RequestId, Response, SecurityEvent,
    ServerConfig, ServerEvent, WriteMode,
};
