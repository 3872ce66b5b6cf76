//! What a case costs in supply current, measured while it runs: on a rig
//! whose power is a measuring supply (SCPI), the bench put a
//! [`CurrentRecorder`] in its power chain ([`rig::Bench::build`]); the
//! runner only marks the case's start and end on it and reads the result.
//! The case's artifacts get every sample as `current.csv`, its JUnit
//! testcase the peak and mean (with units).
//!
//! The supply is shared: the case's `power` steps switch it through the
//! recorder while it measures through the same driver, one command at a
//! time under its lock.

use std::path::Path;
use std::time::Duration;

use rig::wrap::{CurrentRecorder, CurrentRecording};

/// How often a case's current is sampled: a bench supply answers
/// `MEAS:CURR?` in tens of milliseconds, and a modem's transmit bursts last
/// hundreds.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Current sampling for one case.
pub struct CaseCurrent {
    recording: Option<CurrentRecording>,
}

impl CaseCurrent {
    /// Starts the bench's `recorder` (nothing when the rig has no supply
    /// that measures).
    pub fn start(recorder: Option<&CurrentRecorder>, interval: Duration) -> CaseCurrent {
        let recording = recorder.and_then(|r| {
            r.start(interval)
                .map_err(|e| tracing::warn!(error = %e, "cannot start recording the current"))
                .ok()
        });
        CaseCurrent { recording }
    }

    /// Stops sampling, writes `current.csv` into `artifacts` and returns
    /// the testcase's properties: peak and mean with units, how many
    /// samples over how long, and how many measurements failed.
    pub fn finish(self, artifacts: &Path) -> Vec<(String, String)> {
        let Some(recording) = self.recording else {
            return Vec::new();
        };
        let record = recording.stop();
        let mut properties = match record.summary() {
            Some(summary) => summary.properties(),
            None => Vec::new(),
        };
        if let Err(e) = record.write_csv(&artifacts.join("current.csv")) {
            properties.push(("power.current.csv_error".into(), e.to_string()));
        }
        if record.failures > 0 {
            properties.push((
                "power.current.failed_samples".into(),
                record.failures.to_string(),
            ));
            if let Some(first) = record.first_failure {
                properties.push(("power.current.first_failure".into(), first));
            }
        }
        properties
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use rig::bench::SupplyHandle;
    use rig::model::{ScpiAddress, ScpiCommands, ScpiPowerSpec};
    use rig::power::scpi_sim::{Fault, Load, ScpiSupplySim};
    use rig::power::{Amps, ScpiSupply, Volts};
    use rig::Power;

    use super::*;

    /// The recorder a bench puts around an SCPI supply at `addr`.
    fn handle(addr: SocketAddr) -> CurrentRecorder {
        CurrentRecorder::new(SupplyHandle::new(Box::new(ScpiSupply::new(
            ScpiPowerSpec {
                address: ScpiAddress::Tcp {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                },
                channel: None,
                voltage: Volts::from_milli(3600),
                current_limit: Amps::from_milli(500),
                timeout: Duration::from_millis(300),
                check_errors: true,
                commands: ScpiCommands::default(),
            },
        ))))
    }

    /// Waits (bounded) until the simulator was asked for `n` currents.
    fn measured(sim: &ScpiSupplySim, n: usize) {
        let end = Instant::now() + Duration::from_secs(5);
        while sim.received().iter().filter(|l| *l == "MEAS:CURR?").count() < n {
            assert!(Instant::now() < end, "sampler did not measure {n} times");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn property<'a>(props: &'a [(String, String)], name: &str) -> Option<&'a str> {
        props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_case_on_an_scpi_supply_leaves_a_csv_and_peak_and_mean_with_units() {
        let sim = ScpiSupplySim::start().unwrap();
        sim.set_load(1, Load::Amps(vec![0.02, 0.02, 0.02, 0.18]));
        let supply = handle(sim.addr());
        // The case switches the supply through the session's power handle
        // while the sampler measures through the same driver.
        let mut power: Box<dyn Power> = Box::new(supply.clone());
        power.on().unwrap();
        let current = CaseCurrent::start(Some(&supply), Duration::from_millis(5));
        measured(&sim, 8);
        assert!(power.is_on());
        let dir = tempfile::tempdir().unwrap();
        let props = current.finish(dir.path());

        let csv = std::fs::read_to_string(dir.path().join("current.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], "t_s,volts,amps");
        assert!(rows.len() > 8, "{csv}");
        let amps: Vec<f64> = rows[1..]
            .iter()
            .map(|r| r.rsplit(',').next().unwrap().parse().unwrap())
            .collect();
        // Samples follow the load in order: idle, idle, idle, transmit.
        for (i, a) in amps.iter().enumerate() {
            assert_eq!(*a, if i % 4 == 3 { 0.18 } else { 0.02 }, "row {i}");
        }
        let mean = amps.iter().sum::<f64>() / amps.len() as f64;
        assert_eq!(property(&props, "power.current.peak"), Some("0.180000 A"));
        assert_eq!(
            property(&props, "power.current.mean"),
            Some(format!("{mean:.6} A").as_str())
        );
        assert_eq!(
            property(&props, "power.current.samples"),
            Some(amps.len().to_string().as_str())
        );
        assert_eq!(property(&props, "power.current.failed_samples"), None);
    }

    #[test]
    fn a_supply_that_stops_answering_is_counted_not_hung_on() {
        let sim = ScpiSupplySim::start().unwrap();
        let supply = handle(sim.addr());
        let current = CaseCurrent::start(Some(&supply), Duration::from_millis(5));
        measured(&sim, 2);
        sim.set_fault(Fault::Silent);
        std::thread::sleep(Duration::from_millis(400));
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let props = current.finish(dir.path());
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let failed: usize = property(&props, "power.current.failed_samples")
            .expect("failures are reported")
            .parse()
            .unwrap();
        assert!(failed >= 1);
        assert!(property(&props, "power.current.first_failure").is_some());
        // What was measured before it went silent is kept.
        assert!(property(&props, "power.current.peak").is_some());
    }

    #[test]
    fn a_rig_without_a_measuring_supply_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let props = CaseCurrent::start(None, SAMPLE_INTERVAL).finish(dir.path());
        assert!(props.is_empty());
        assert!(!dir.path().join("current.csv").exists());
    }
}
