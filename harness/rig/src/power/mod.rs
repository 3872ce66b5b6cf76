//! Bench supplies: the SCPI driver ([`scpi::ScpiSupply`]), its loopback
//! stand-in ([`scpi_sim`]), current recording around any measuring supply
//! ([`sampler`]), and [`from_spec`], which turns a rig file's `power:` into
//! a driver. The virtual meter's power comes from the `sim` crate, which
//! owns that process; the shell-command driver is
//! [`crate::command_power::CommandPower`].

pub mod quantity;
pub mod sampler;
pub mod scpi;
mod scpi_link;
pub mod scpi_sim;
pub mod scpi_spec;
pub mod supply;

use std::path::Path;

use crate::command_power::CommandPower;
use crate::error::RigError;
use crate::model::PowerSpec;
use crate::traits::Power;

pub use quantity::{Amps, Volts};
pub use sampler::{CurrentRecord, CurrentSampler, CurrentSummary, Sample};
pub use scpi::ScpiSupply;
pub use scpi_spec::{ScpiAddress, ScpiCommands, ScpiPowerSpec, DEFAULT_SCPI_PORT};
pub use supply::{Identity, Reading, Supply, SupplyError, SupplyProblem};

/// The driver for a rig's `power:`; `None` for `virtual`, whose driver the
/// `sim` crate supplies. Relative paths are taken from `rig_dir`. Nothing
/// is opened or run yet: a driver connects at its first command.
pub fn from_spec(spec: &PowerSpec, rig_dir: &Path) -> Result<Option<Box<dyn Power>>, RigError> {
    Ok(match spec {
        PowerSpec::Virtual(_) => None,
        PowerSpec::Command(c) => Some(Box::new(CommandPower::new(c.clone()))),
        PowerSpec::Scpi(_) => supply_from_spec(spec, rig_dir)?.map(|s| s as Box<dyn Power>),
    })
}

/// Like [`from_spec`], for the kinds that also measure (identity, volts,
/// amps): `None` for those that only switch.
pub fn supply_from_spec(
    spec: &PowerSpec,
    rig_dir: &Path,
) -> Result<Option<Box<dyn Supply>>, RigError> {
    Ok(match spec {
        PowerSpec::Scpi(s) => {
            let mut s = s.clone();
            if let ScpiAddress::Serial { path, .. } = &mut s.address {
                if path.is_relative() {
                    *path = rig_dir.join(&*path);
                }
            }
            Some(Box::new(ScpiSupply::new(*s)))
        }
        PowerSpec::Virtual(_) | PowerSpec::Command(_) => None,
    })
}
