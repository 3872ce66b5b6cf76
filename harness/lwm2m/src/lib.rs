//! The LwM2M protocol core of meterbench, sans-IO in the style of quinn-proto.
//!
//! Nothing here opens a socket, reads a clock or spawns a task: the caller feeds
//! datagrams and the current time in, and drains datagrams, events and the next
//! deadline out. That keeps every state machine testable in microseconds with a
//! fake clock and a lossy in-memory link (see `tests/spec/pair.rs`), and lets
//! the same code serve meterbench's server role and the virtual meter's client
//! role.

pub mod bootstrap;
pub mod client;
pub mod coap;
pub mod firmware;
pub mod format;
pub mod model;
pub mod path;
pub mod server;
pub mod value;

pub use format::{ContentFormat, FormatError, Record};
pub use model::{ObjectDef, Operations, Registry, ResourceDef, ResourceType};
pub use path::{Path, PathError};
pub use value::Value;
