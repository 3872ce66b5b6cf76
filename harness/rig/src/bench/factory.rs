//! The drivers this crate cannot build itself. `rig` knows neither the
//! virtual meter (the `sim` crate owns that process) nor probe-rs (the
//! `probe` crate, which takes minutes to build): those crates implement
//! these traits, and the binary hands them to [`super::Bench::build`]. A rig
//! built without them can still use every real part rig drives itself.

use std::path::{Path, PathBuf};

use crate::model::VirtualMeterOptions;
use crate::swd::SwdSpec;
use crate::traits::{Debug, Network, Power};

/// Why a factory could not make a driver; shown with the rig file and part.
pub type PartError = Box<dyn std::error::Error + Send + Sync>;

/// The `kind: virtual` parts (and `port: virtual`): all of them play one
/// simulated meter, so one factory answers for all.
pub trait VirtualParts {
    /// The meter's power switch, playing the device `options` describe.
    fn power(&self, options: &VirtualMeterOptions) -> Result<Box<dyn Power>, PartError>;
    /// Where the meter's modem appears (its PTY), for `modem.port: virtual`.
    fn modem_port(&self) -> PathBuf;
    /// The meter's state as a debug port reads it.
    fn debug(&self) -> Box<dyn Debug>;
    /// The meter's network as the lab controls it.
    fn network(&self) -> Box<dyn Network>;
    /// The log the meter process writes.
    fn device_log(&self) -> PathBuf;
}

/// `debug: { kind: swd }`: a probe-rs session on the device's MCU.
pub trait SwdParts {
    /// Prepares the driver (ELF, symbol map); relative paths are taken
    /// from `rig_dir`. No probe needs to be attached yet.
    fn debug(&self, spec: &SwdSpec, rig_dir: &Path) -> Result<Box<dyn Debug>, PartError>;
}

/// A closure is an [`SwdParts`]: tests hand in a stand-in this way.
impl<F> SwdParts for F
where
    F: Fn(&SwdSpec, &Path) -> Result<Box<dyn Debug>, PartError>,
{
    fn debug(&self, spec: &SwdSpec, rig_dir: &Path) -> Result<Box<dyn Debug>, PartError> {
        self(spec, rig_dir)
    }
}
