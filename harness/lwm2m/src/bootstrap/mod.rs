//! The Bootstrap Interface (LwM2M 1.1 Core §6.1): the Bootstrap-Server role
//! meterbench embeds ([`BootstrapServer`], running a caller-chosen
//! [`BootstrapScript`] per endpoint), the server accounts bootstrap provisions
//! ([`ServerAccount`], Security /0 and Server /1 instances, Core §E.1/§E.2),
//! and redaction of their secrets from logged datagrams ([`redact`]).
//!
//! The client side — Bootstrap-Request, serving Discover/Read/Write/Delete/
//! Finish, staging writes until Finish, falling back to bootstrap when
//! registration keeps failing — lives in [`crate::client`], configured by
//! [`crate::client::BootstrapConfig`].

pub mod account;
pub mod redact;
pub mod script;
pub mod server;
pub mod smartcard;

pub use account::{resolve_uri, ConfigError, SecurityMode, ServerAccount};
pub use redact::{redact_datagram, Redactor};
pub use script::{AnswerCheck, BootstrapOp, BootstrapScript, BootstrapStep};
pub use server::{BootstrapEvent, BootstrapServer, BootstrapServerConfig};
