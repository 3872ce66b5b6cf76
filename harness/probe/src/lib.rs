//! probe — the SWD debug port through probe-rs.
//!
//! [`SwdDebug`] implements `rig::Debug` (typed device facts read from the
//! symbols a rig maps, and the key/value map `debug:` steps check) and
//! `rig::target_control::TargetControl` (flash ELF/HEX/BIN with progress,
//! reset, halt/run, memory and symbol reads); RTT output is polled on a
//! thread and given out as lines ([`rtt`]); the chip's ID is read on
//! attach ([`chip_id`]).
//!
//! A crate of its own because probe-rs with its builtin target list takes
//! minutes to build on two cores: rig, sim and fuzz stay without it, and
//! only the binary pays. No system USB library is needed (probe-rs talks
//! USB through nusb; its HID CMSIS-DAP v1 driver, which needs hidapi, is off).
//!
//! Below the driver everything is plain data and tested without hardware:
//! probe selection ([`select`]), ELF symbols and the ELF's memory image
//! ([`elf`]), fact decoding over the [`memory::TargetMemory`] trait
//! ([`fact_map`]).

pub mod chip_id;
pub mod driver;
pub mod elf;
pub mod error;
pub mod fact_map;
pub mod memory;
pub mod parts;
pub mod rtt;
pub mod select;

pub use chip_id::{ChipId, DeviceId};
pub use driver::{check_chip, list_probes, symbol_location, ProgressTracker, SwdDebug};
pub use elf::{Elf, ElfImage, Symbol};
pub use error::ProbeError;
pub use fact_map::{FactMap, Location};
pub use memory::TargetMemory;
pub use parts::ProbeParts;
pub use select::{select, ProbeSeen, ProbeWanted};
