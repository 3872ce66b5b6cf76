//! The virtual meter's modem: a PTY that the harness opens like a serial
//! port, a V.250 line framer and the AT command interpreter.

pub mod commands;
pub mod line;
pub mod psm;
pub mod pty;
pub mod security_commands;

pub use commands::{handle_line, Action, Csq, Final, ModemState, Response};
pub use line::{Frame, LineFramer};
pub use pty::Pty;
