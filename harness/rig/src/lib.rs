//! rig — the bench.
//!
//! Where a bench's parts are (the rig file, [`model`]), how its modem speaks
//! (the dialect file, [`dialect`], and the AT engine, [`at`]), and the drivers
//! behind the small traits in [`traits`]: [`serial::SerialModem`] for a modem
//! on a serial line, [`command_power::CommandPower`] for a supply switched by
//! shell commands, [`network::CommandNetwork`] for a network emulator driven
//! by shell commands. [`lock::RigLock`] keeps two jobs off one bench.
//! [`bench::Bench`] builds all of a rig's drivers from its file (the virtual
//! meter's and the SWD driver through factories other crates supply), and
//! [`wrap`] holds the wrappers around a driver: a tracer, a fault injector.
//!
//! This crate never speaks LwM2M: it gets the device to a state and lets the
//! `server` crate talk to it.

pub mod action;
pub mod at;
pub mod bench;
pub mod bring_up;
pub mod command_power;
pub mod devices;
pub mod dialect;
pub mod duration;
pub mod error;
pub mod facts;
pub mod lease;
pub mod link;
pub mod lock;
pub mod model;
pub mod network;
pub mod port;
pub mod power;
pub mod schema;
pub mod scripted_modem;
pub mod serial;
mod shell;
pub mod swd;
pub mod target_control;
pub mod traits;
pub mod wrap;
mod yaml;

pub use at::{AtEngine, AtResponse, Direction, FinalResult, Transcript, TranscriptEntry};
pub use bench::{Bench, BenchBuildError, BenchParts, SharedPower, SupplyHandle};
pub use command_power::CommandPower;
pub use dialect::Dialect;
pub use error::RigError;
pub use lock::RigLock;
pub use model::RigFile;
pub use network::{CommandNetwork, NetworkAction, ProfileSlot};
pub use power::{ScpiSupply, Supply};
pub use serial::SerialModem;
pub use traits::{Debug, Modem, Network, Power, DEFAULT_COMMAND_TIMEOUT};
