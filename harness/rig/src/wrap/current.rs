//! Current recording as a wrapper around a measuring supply, like
//! [`super::PowerTracer`] around a power switch: the supply driver knows
//! nothing of recording, and the recorder is still a [`Power`] and a
//! [`Supply`], so a case switches the device through it while it samples.
//!
//! What a recording keeps ([`CurrentRecord`]) is a case's evidence of what
//! the device cost: peak and mean for the report, every sample as a CSV.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bench::SupplyHandle;
use crate::error::RigError;
use crate::power::{CurrentRecord, CurrentSampler, Identity, Reading, Supply};
use crate::traits::Power;

/// A measuring supply that can record its output current in the background.
/// Clones share the driver: one SCPI command at a time, whoever sends it.
#[derive(Clone)]
pub struct CurrentRecorder {
    supply: SupplyHandle,
}

/// A recording in progress; [`CurrentRecording::stop`] ends it. Dropped
/// without stopping (a case that panicked), its thread ends by itself.
pub struct CurrentRecording {
    sampler: CurrentSampler,
}

impl CurrentRecorder {
    pub fn new(supply: SupplyHandle) -> CurrentRecorder {
        CurrentRecorder { supply }
    }

    /// Starts measuring now and then every `interval` on a thread of its
    /// own; the supply stays usable between samples.
    pub fn start(&self, interval: Duration) -> std::io::Result<CurrentRecording> {
        let sampler = CurrentSampler::start(Arc::new(Mutex::new(self.supply.clone())), interval)?;
        Ok(CurrentRecording { sampler })
    }
}

impl CurrentRecording {
    /// Ends the recording. Waits at most for the measurement in progress,
    /// which the supply's own timeout bounds.
    pub fn stop(self) -> CurrentRecord {
        self.sampler.stop()
    }
}

impl Power for CurrentRecorder {
    fn on(&mut self) -> Result<(), RigError> {
        self.supply.on()
    }
    fn off(&mut self) -> Result<(), RigError> {
        self.supply.off()
    }
    fn is_on(&mut self) -> bool {
        self.supply.is_on()
    }
    fn describe(&self) -> String {
        self.supply.describe()
    }
}

impl Supply for CurrentRecorder {
    fn identify(&mut self) -> Result<Identity, RigError> {
        self.supply.identify()
    }
    fn measure(&mut self) -> Result<Reading, RigError> {
        self.supply.measure()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::model::{ScpiAddress, ScpiCommands, ScpiPowerSpec};
    use crate::power::scpi_sim::{Load, ScpiSupplySim};
    use crate::power::{Amps, ScpiSupply, Volts};

    use super::*;

    fn recorder(sim: &ScpiSupplySim) -> CurrentRecorder {
        let addr = sim.addr();
        CurrentRecorder::new(SupplyHandle::new(Box::new(ScpiSupply::new(
            ScpiPowerSpec {
                address: ScpiAddress::Tcp {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                },
                channel: None,
                voltage: Volts::from_milli(3600),
                current_limit: Amps::from_milli(500),
                timeout: Duration::from_millis(500),
                check_errors: true,
                commands: ScpiCommands::default(),
            },
        ))))
    }

    fn measured(sim: &ScpiSupplySim) -> usize {
        sim.received().iter().filter(|l| *l == "MEAS:CURR?").count()
    }

    #[test]
    fn the_device_is_switched_through_the_recorder_while_it_samples() {
        let sim = ScpiSupplySim::start().unwrap();
        sim.set_load(1, Load::Amps(vec![0.05, 0.25]));
        let mut power: Box<dyn Power> = Box::new(recorder(&sim));
        power.on().unwrap();
        let recording = recorder(&sim).start(Duration::from_millis(5)).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while measured(&sim) < 6 {
            assert!(Instant::now() < end, "the recorder did not sample");
            // The case's commands interleave with the samples.
            power.on().unwrap();
            assert!(power.is_on());
            std::thread::sleep(Duration::from_millis(2));
        }
        let record = recording.stop();
        let after = measured(&sim);
        power.off().unwrap();
        assert!(!power.is_on());
        assert_eq!(record.failures, 0);
        assert_eq!(record.samples.len(), after, "one sample per measurement");
        // Samples follow the load in order, whoever switched in between.
        for (i, s) in record.samples.iter().enumerate() {
            assert_eq!(s.amps, if i % 2 == 1 { 0.25 } else { 0.05 }, "sample {i}");
        }
        // Stopped means stopped: no measurement after `stop` returns.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(measured(&sim), after);
    }

    #[test]
    fn a_dropped_recording_stops_sampling() {
        let sim = ScpiSupplySim::start().unwrap();
        let recording = recorder(&sim).start(Duration::from_millis(5)).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while measured(&sim) < 2 {
            assert!(Instant::now() < end, "the recorder did not sample");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(recording);
        // Bounded: the thread sees the drop at its next tick at the latest.
        std::thread::sleep(Duration::from_millis(100));
        let settled = measured(&sim);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(measured(&sim), settled, "sampling went on after the drop");
    }
}
