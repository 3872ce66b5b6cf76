//! A bench built from its rig file: every driver a run uses, made from the
//! parts the rig file describes (labgrid's resources to drivers). The real
//! parts — a serial modem, command or SCPI power, a command-driven network
//! — are built here; the virtual meter's parts and the SWD driver come from
//! factories ([`VirtualParts`], [`SwdParts`]) that the binary wires in, so
//! that this crate, and the runner's session code, never name the simulator.
//!
//! Power is always wrapped in a [`PowerTracer`] (the case's `power.log`),
//! and, when a [`FaultPlan`] is given, power and modem in fault injectors.

mod error;
mod factory;
mod shared;

use std::path::{Path, PathBuf};

use crate::command_power::{CommandPower, DeviceValues, SecretEnv};
use crate::model::{DebugSpec, ModemPort, NetworkSpec, PowerSpec, RigFile};
use crate::network::CommandNetwork;
use crate::serial::SerialModem;
use crate::traits::{Debug, Modem, Network, Power};
use crate::wrap::{FaultPlan, FaultyModem, FaultyPower, PowerTrace, PowerTracer};

pub use error::{BenchBuildError, Part};
pub use factory::{PartError, SwdParts, VirtualParts};
pub use shared::{share, SharedPower, SharedSupply, SupplyHandle};

/// The drivers of one rig, ready to use (nothing is opened or switched yet).
pub struct Bench {
    pub power: Option<SharedPower>,
    /// The same supply as `power` when it measures (SCPI): each case samples
    /// its current through it.
    pub supply: Option<SupplyHandle>,
    pub modem: Option<Box<dyn Modem>>,
    pub debug: Option<Box<dyn Debug>>,
    /// The lab's control of the device's network (rigs with `network:`).
    pub network: Option<Box<dyn Network>>,
    /// The device's own log: the virtual meter's, or `{state_dir}/device.log`
    /// that a command-power rig's device process writes (read if it exists).
    pub device_log: Option<PathBuf>,
    /// Every call made to `power`, with its outcome.
    pub power_trace: Option<PowerTrace>,
}

/// What building a bench needs besides the rig file.
pub struct BenchParts<'a> {
    /// Where named modem dialects are (`<fixtures>/modems/<name>.yaml`).
    pub fixtures: &'a Path,
    /// The run's folder for this rig (a command-power device's log is
    /// `device.log` in it).
    pub state_dir: &'a Path,
    /// What command power's placeholders stand for, and the key its
    /// commands get in the environment.
    pub device_values: DeviceValues,
    pub secret: Option<SecretEnv>,
    /// The virtual meter's drivers; `None`: a rig naming a virtual part is refused.
    pub virtual_parts: Option<&'a dyn VirtualParts>,
    /// The SWD driver; `None`: a rig naming `kind: swd` is refused.
    pub swd: Option<&'a dyn SwdParts>,
    /// Faults to inject (testing the harness itself); empty: none.
    pub faults: FaultPlan,
}

impl<'a> BenchParts<'a> {
    /// Parts with no factories, no device values and no faults.
    pub fn new(fixtures: &'a Path, state_dir: &'a Path) -> BenchParts<'a> {
        BenchParts {
            fixtures,
            state_dir,
            device_values: DeviceValues::default(),
            secret: None,
            virtual_parts: None,
            swd: None,
            faults: FaultPlan::default(),
        }
    }
}

impl Bench {
    /// Builds each part `rig` describes. Relative paths in the rig are taken
    /// from its folder.
    pub fn build(rig: &RigFile, parts: &BenchParts<'_>) -> Result<Bench, BenchBuildError> {
        let file = || rig.source.clone();
        let virtual_parts = |part: Part, what: &'static str| {
            parts
                .virtual_parts
                .ok_or_else(|| BenchBuildError::NoVirtualParts {
                    file: file(),
                    part,
                    what,
                })
        };
        let rig_err = |part: Part| {
            move |source| BenchBuildError::Rig {
                file: rig.source.clone(),
                part,
                source: Box::new(source),
            }
        };
        let factory_err = |part: Part| {
            move |source| BenchBuildError::Factory {
                file: rig.source.clone(),
                part,
                source,
            }
        };

        let mut device_log = None;
        let mut supply = None;
        let power: Option<Box<dyn Power>> = match &rig.power {
            None => None,
            Some(PowerSpec::Virtual(options)) => {
                let v = virtual_parts(Part::Power, "kind: virtual")?;
                device_log = Some(v.device_log());
                Some(v.power(options).map_err(factory_err(Part::Power))?)
            }
            Some(PowerSpec::Command(spec)) => {
                let mut power = CommandPower::new(spec.clone());
                power
                    .set_device_values(parts.device_values.clone(), parts.secret.clone())
                    .map_err(rig_err(Part::Power))?;
                device_log = Some(parts.state_dir.join("device.log"));
                Some(Box::new(power))
            }
            Some(spec @ PowerSpec::Scpi(_)) => {
                supply = crate::power::supply_from_spec(spec, rig.dir())
                    .map_err(rig_err(Part::Power))?
                    .map(SupplyHandle::new);
                supply.clone().map(|s| -> Box<dyn Power> { Box::new(s) })
            }
        };
        let modem: Option<Box<dyn Modem>> = match &rig.modem {
            None => None,
            Some(spec) => {
                let dialect = spec
                    .load_dialect(parts.fixtures, rig.dir())
                    .map_err(rig_err(Part::Modem))?;
                let port = match &spec.port {
                    ModemPort::Virtual => virtual_parts(Part::Modem, "port: virtual")?.modem_port(),
                    ModemPort::Path(p) => p.clone(),
                };
                Some(Box::new(SerialModem::from_spec(spec, port, dialect)))
            }
        };
        let debug: Option<Box<dyn Debug>> = match &rig.debug {
            None => None,
            Some(DebugSpec::Virtual) => Some(virtual_parts(Part::Debug, "kind: virtual")?.debug()),
            Some(DebugSpec::Swd(spec)) => {
                let swd = parts
                    .swd
                    .ok_or_else(|| BenchBuildError::NoSwdParts { file: file() })?;
                Some(
                    swd.debug(spec, rig.dir())
                        .map_err(factory_err(Part::Debug))?,
                )
            }
        };
        let network: Option<Box<dyn Network>> = match &rig.network {
            None => None,
            Some(NetworkSpec::Virtual) => {
                Some(virtual_parts(Part::Network, "kind: virtual")?.network())
            }
            Some(NetworkSpec::Command(spec)) => Some(Box::new(CommandNetwork::new(spec.clone()))),
        };

        let faults = &parts.faults;
        let power = power.map(|p| -> Box<dyn Power> {
            if faults.power.is_empty() {
                p
            } else {
                Box::new(FaultyPower::new(p, faults.power.clone()))
            }
        });
        let modem = modem.map(|m| -> Box<dyn Modem> {
            if faults.modem.is_empty() {
                m
            } else {
                Box::new(FaultyModem::new(m, faults.modem.clone()))
            }
        });
        // The tracer is outermost: it records what the harness saw.
        let (power, power_trace) = match power {
            Some(p) => {
                let (tracer, trace) = PowerTracer::new(p);
                (Some(share(Box::new(tracer))), Some(trace))
            }
            None => (None, None),
        };
        Ok(Bench {
            power,
            supply,
            modem,
            debug,
            network,
            device_log,
            power_trace,
        })
    }
}
