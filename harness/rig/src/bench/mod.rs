//! A bench built from its rig file: every driver a run uses, made from the
//! parts the rig file describes (labgrid's resources to drivers). The real
//! parts — a serial modem, command or SCPI power, a command-driven network
//! — are built here; the virtual meter's parts and the SWD driver come from
//! factories ([`VirtualParts`], [`SwdParts`]) that the binary wires in, so
//! that this crate, and the runner's session code, never name the simulator.
//!
//! The recording and fault wrappers go on here too, so that no driver and
//! no caller wraps anything itself: power is always wrapped in a
//! [`PowerTracer`] (the case's `power.log`), a measuring supply in a
//! [`CurrentRecorder`] (the case's `current.csv`), the modem in a
//! [`TranscriptRecorder`] (the case's `at-transcript.txt`), and, when the
//! caller's [`FaultPlan`] or the rig file's `faults:` asks, power and modem
//! in fault injectors.

mod error;
mod factory;
mod shared;

use std::path::{Path, PathBuf};

use crate::command_power::{CommandPower, DeviceValues, SecretEnv};
use crate::model::{DebugSpec, ModemPort, NetworkSpec, PowerSpec, RigFile};
use crate::network::CommandNetwork;
use crate::serial::SerialModem;
use crate::traits::{Debug, Modem, Network, Power};
use crate::wrap::{
    CurrentRecorder, FaultPlan, FaultyModem, FaultyPower, PowerTrace, PowerTracer,
    TranscriptRecorder,
};

pub use error::{BenchBuildError, Part};
pub use factory::{PartError, SwdParts, VirtualParts};
pub use shared::{share, SharedPower, SharedSupply, SupplyHandle};

/// The drivers of one rig, ready to use (nothing is opened or switched yet).
pub struct Bench {
    pub power: Option<SharedPower>,
    /// The current recorder in `power`'s chain when the supply measures
    /// (SCPI): a case's recording is started and stopped through it.
    pub current: Option<CurrentRecorder>,
    /// Recorded: [`Modem::transcript`] is what crossed its line.
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
    /// Faults to inject (testing the harness itself), besides those of the
    /// rig file's `faults:`; empty: none.
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

        let faults = rig_faults(rig, &parts.faults)?;
        let mut device_log = None;
        let mut current = None;
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
                current = crate::power::supply_from_spec(spec, rig.dir())
                    .map_err(rig_err(Part::Power))?
                    .map(|s| CurrentRecorder::new(SupplyHandle::new(s)));
                current.clone().map(|c| -> Box<dyn Power> { Box::new(c) })
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

        let power = power.map(|p| -> Box<dyn Power> {
            if faults.power.is_empty() {
                p
            } else {
                Box::new(FaultyPower::new(p, faults.power.clone()))
            }
        });
        let modem = modem.map(|m| -> Box<dyn Modem> {
            let m = if faults.modem.is_empty() {
                m
            } else {
                Box::new(FaultyModem::new(m, faults.modem.clone()))
            };
            Box::new(TranscriptRecorder::new(m))
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
            current,
            modem,
            debug,
            network,
            device_log,
            power_trace,
        })
    }
}

/// The caller's faults and the rig file's together; the rig file's only on
/// a rig of virtual parts, or one that says its parts are stand-ins.
fn rig_faults(rig: &RigFile, given: &FaultPlan) -> Result<FaultPlan, BenchBuildError> {
    let mut plan = given.clone();
    let Some(spec) = &rig.faults else {
        return Ok(plan);
    };
    let from_rig = spec.plan();
    if !from_rig.is_empty() && !spec.on_real_parts {
        if let Some((part, what)) = first_real_part(rig) {
            return Err(BenchBuildError::FaultsOnRealParts {
                file: rig.source.clone(),
                part,
                what,
            });
        }
    }
    plan.power.extend(from_rig.power);
    plan.modem.extend(from_rig.modem);
    Ok(plan)
}

/// A part that may be real hardware: anything the virtual meter does not play.
fn first_real_part(rig: &RigFile) -> Option<(Part, &'static str)> {
    let power = match &rig.power {
        Some(PowerSpec::Command(_)) => Some((Part::Power, "kind: command")),
        Some(PowerSpec::Scpi(_)) => Some((Part::Power, "kind: scpi")),
        _ => None,
    };
    let modem = match rig.modem.as_ref().map(|m| &m.port) {
        Some(ModemPort::Path(_)) => Some((Part::Modem, "a serial port")),
        _ => None,
    };
    let debug = match &rig.debug {
        Some(DebugSpec::Swd(_)) => Some((Part::Debug, "kind: swd")),
        _ => None,
    };
    let network = match &rig.network {
        Some(NetworkSpec::Command(_)) => Some((Part::Network, "kind: command")),
        _ => None,
    };
    power.or(modem).or(debug).or(network)
}
