//! meterbench's embedded LwM2M server: a tokio UDP shell around the sans-IO
//! [`lwm2m::server::Server`], in the way quinn wraps quinn-proto.
//!
//! One task owns the socket and the protocol core; everything else holds a
//! [`ServerHandle`], which offers what test steps need: numbered events to
//! wait on (so nothing that already happened is missed), typed device
//! management requests, and a message log of every datagram in and out for
//! the case's artifacts. No protocol logic lives here.

mod describe;
mod error;
pub mod firmware;
mod event_history;
mod event_stream;
mod handle;
mod message_log;
mod pcap;
mod shared;
mod udp_loop;

pub use describe::{code_text, describe_event, describe_request, describe_response, links_text};
pub use error::ServerError;
pub use event_history::EventSeq;
pub use event_stream::{serve_until, EventStream};
pub use handle::{
    LwM2mServer, Notification, Observation, ServerHandle, ServerOptions, DEFAULT_REQUEST_TIMEOUT,
};
/// The decoded one-line summary of a datagram the message log uses.
pub use lwm2m::coap::summarize;
pub use message_log::{Direction, LogEntry, Stats};
pub use pcap::write_pcap;

/// The protocol types the API speaks, re-exported so callers need not name `lwm2m`.
pub use lwm2m::server::{
    Attributes, Content, DmRequest, Registration, RequestId, Response, ServerConfig, ServerEvent,
    WriteMode,
};
