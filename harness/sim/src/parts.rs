//! The virtual meter as the bench's driver factory: `rig` builds a bench
//! from its rig file and asks this for each `kind: virtual` part (and
//! `modem.port: virtual`), so that the runner never names the simulator
//! outside the one place that wires factories.

use std::path::PathBuf;

use rig::bench::{PartError, VirtualParts};
use rig::model::VirtualMeterOptions;
use rig::{Debug, Network, Power};

use crate::args::DeviceOptions;
use crate::debug::VirtualDebug;
use crate::network_control::VirtualNetwork;
use crate::power::{VirtualMeterSpec, VirtualPower};

/// One virtual meter's parts: its power (the process), its PTY modem, its
/// NV read as a debug port, its network model and its log, all in one
/// state folder.
#[derive(Debug, Clone)]
pub struct MeterParts {
    pub spec: VirtualMeterSpec,
}

impl MeterParts {
    pub fn new(spec: VirtualMeterSpec) -> MeterParts {
        MeterParts { spec }
    }
}

impl VirtualParts for MeterParts {
    fn power(&self, options: &VirtualMeterOptions) -> Result<Box<dyn Power>, PartError> {
        let device = DeviceOptions::from_rig(options)?;
        Ok(Box::new(VirtualPower::for_device(
            self.spec.clone(),
            device,
        )))
    }

    fn modem_port(&self) -> PathBuf {
        self.spec.pty_path()
    }

    fn debug(&self) -> Box<dyn Debug> {
        Box::new(VirtualDebug::new(&self.spec.state_dir))
    }

    fn network(&self) -> Box<dyn Network> {
        Box::new(VirtualNetwork::new(&self.spec.state_dir))
    }

    fn device_log(&self) -> PathBuf {
        self.spec.device_log_path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(dir: &std::path::Path) -> MeterParts {
        MeterParts::new(VirtualMeterSpec {
            program: PathBuf::from("virtual-meter"),
            args_prefix: Vec::new(),
            state_dir: dir.to_path_buf(),
            objects_dir: PathBuf::from("objects"),
            seed: 7,
        })
    }

    #[test]
    fn every_part_lives_in_the_meters_state_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = parts(dir.path());
        assert!(p.modem_port().starts_with(dir.path()));
        assert!(p.device_log().starts_with(dir.path()));
        assert_ne!(p.modem_port(), p.device_log());
    }

    #[test]
    fn a_resource_path_that_does_not_parse_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let options = VirtualMeterOptions {
            without: vec!["/3/zero".into()],
            server_instance: 0,
            ..VirtualMeterOptions::default()
        };
        let e = parts(dir.path()).power(&options).err().expect("refused");
        assert!(e.to_string().contains("/3/zero"), "{e}");
    }

    #[test]
    fn the_power_switch_starts_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut power = parts(dir.path())
            .power(&VirtualMeterOptions::default())
            .unwrap();
        assert!(!power.is_on());
    }
}
