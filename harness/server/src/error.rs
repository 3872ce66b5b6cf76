//! The server crate's one error type.

use std::net::SocketAddr;
use std::time::Duration;

/// What went wrong in the embedded server or in a request made through it.
///
/// A device answering with a non-success CoAP code is *not* an error here: the
/// request methods return the [`lwm2m::server::Response`] with its code, because
/// "the meter said 4.04" is a verdict for the test step to judge. These variants
/// are for the harness not getting an answer at all.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("no registration for endpoint {0:?}")]
    NotRegistered(String),
    #[error("{endpoint} did not answer {request} after {attempts} transmissions")]
    NoResponse {
        endpoint: String,
        request: String,
        attempts: u32,
    },
    #[error("{endpoint} answered {request} with a CoAP Reset")]
    Reset { endpoint: String, request: String },
    #[error("{endpoint}'s response to {request} could not be decoded: {reason}")]
    Decode {
        endpoint: String,
        request: String,
        reason: String,
    },
    #[error("{endpoint}'s registration ended before it answered {request}")]
    RegistrationEnded { endpoint: String, request: String },
    /// Queue mode: the request waited for a sleeping client that never woke.
    #[error("{request} to {endpoint} was {reason}")]
    NeverSent {
        endpoint: String,
        request: String,
        reason: String,
    },
    #[error("invalid request {request}: {reason}")]
    InvalidRequest { request: String, reason: String },
    /// Only from helpers that return decoded content instead of a `Response`
    /// (`discover`): the device answered, but not with success.
    #[error("{endpoint} answered {request} with {code}")]
    Unsuccessful {
        endpoint: String,
        request: String,
        code: String,
    },
    #[error("the embedded LwM2M server has shut down")]
    Shutdown,
    /// The DTLS endpoint could not be set up (OpenSSL context).
    #[error("cannot set up DTLS: {0}")]
    Dtls(String),
    /// A PSK credential could not be made or set (never carries the key).
    #[error("PSK credential for {endpoint}: {reason}")]
    Credential { endpoint: String, reason: String },
    /// A bootstrap session ended at `op` (e.g. `Bootstrap-Write /0/1`): the
    /// client answered `got` (`None`: no answer, a Reset, or the operation
    /// could not be sent) where one of `expected` was wanted.
    #[error("bootstrap of {endpoint} failed at step {index} {op}: {}", crate::describe::bootstrap_outcome(expected, *got, reason))]
    BootstrapFailed {
        endpoint: String,
        index: usize,
        op: String,
        expected: Vec<u16>,
        got: Option<u16>,
        reason: String,
    },
}
