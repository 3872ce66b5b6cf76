//! Current recording around a measuring supply: samples on its own thread
//! while the supply stays usable, summary and CSV from what was measured.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::scpi_spec;
use rig::power::scpi_sim::{Fault, Load, ScpiSupplySim};
use rig::power::{CurrentSampler, ScpiSupply};
use rig::Power;

fn supply(addr: SocketAddr, timeout: Duration) -> ScpiSupply {
    ScpiSupply::new(scpi_spec(addr, timeout))
}

/// Waits (bounded) until the sampler has measured `n` currents.
fn wait_for_measurements(sim: &ScpiSupplySim, n: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    while sim.received().iter().filter(|l| *l == "MEAS:CURR?").count() < n {
        assert!(Instant::now() < end, "sampler did not measure {n} times");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn samples_give_peak_mean_and_a_csv_of_what_was_measured() {
    let sim = ScpiSupplySim::start().unwrap();
    // A meter idling at 20 mA that transmits at 180 mA every fourth sample.
    sim.set_load(1, Load::Amps(vec![0.02, 0.02, 0.02, 0.18]));
    let psu = Arc::new(Mutex::new(supply(sim.addr(), Duration::from_secs(2))));
    psu.lock().unwrap().on().unwrap();
    let sampler = CurrentSampler::start(psu.clone(), Duration::from_millis(10)).unwrap();
    wait_for_measurements(&sim, 8);
    // The supply stays usable by the case while sampling.
    assert!(psu.lock().unwrap().is_on());
    let record = sampler.stop();
    assert_eq!(record.failures, 0);
    let n = record.samples.len();
    assert!(n >= 8, "{n} samples");
    let summary = record.summary().unwrap();
    assert_eq!(summary.count, n);
    assert_eq!(summary.peak_amps, 0.18);
    // Every sample is one of the load's currents at 3.6 V, in load order.
    for (i, s) in record.samples.iter().enumerate() {
        assert_eq!(s.volts, 3.6);
        assert_eq!(s.amps, if i % 4 == 3 { 0.18 } else { 0.02 }, "sample {i}");
    }
    let expected_mean = record.samples.iter().map(|s| s.amps).sum::<f64>() / n as f64;
    assert!((summary.mean_amps - expected_mean).abs() < 1e-12);
    assert!(summary.mean_amps > 0.02 && summary.mean_amps < 0.18);
    assert!(record.samples.windows(2).all(|w| w[0].t <= w[1].t));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("current.csv");
    record.write_csv(&path).unwrap();
    let csv = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "t_s,volts,amps");
    assert_eq!(lines.len(), n + 1);
    assert!(lines[1].ends_with(",3.6,0.02"), "{}", lines[1]);
    assert!(lines[4].ends_with(",3.6,0.18"), "{}", lines[4]);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left beside the CSV");
}

#[test]
fn a_silent_supply_yields_failures_and_stop_stays_bounded() {
    let sim = ScpiSupplySim::start().unwrap();
    let timeout = Duration::from_millis(100);
    let psu = Arc::new(Mutex::new(supply(sim.addr(), timeout)));
    sim.set_fault(Fault::Silent);
    let sampler = CurrentSampler::start(psu, Duration::from_millis(10)).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while sim
        .received()
        .iter()
        .filter(|l| l.starts_with("MEAS:VOLT?"))
        .count()
        < 2
    {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let record = sampler.stop();
    assert!(
        started.elapsed() < timeout * 3,
        "stop waits at most one measurement"
    );
    assert!(record.samples.is_empty());
    assert!(record.failures >= 1);
    let first = record.first_failure.clone().unwrap();
    assert!(first.contains("no answer to `MEAS:VOLT?`"), "{first}");
    assert!(first.contains(&sim.addr().to_string()), "{first}");
    assert_eq!(record.summary(), None);
}

#[test]
fn csv_write_to_a_missing_folder_names_the_file() {
    let record = rig::power::CurrentRecord::default();
    let err = record
        .write_csv(std::path::Path::new("/nonexistent/dir/current.csv"))
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/dir/current.csv"),
        "{err}"
    );
}
