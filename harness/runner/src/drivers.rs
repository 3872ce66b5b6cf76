//! Where the runner wires the driver factories a bench is built with: the
//! virtual meter (`sim`) for `kind: virtual` parts, probe-rs (`probe`) for
//! `debug: { kind: swd }`. The only place besides `main.rs` that names the
//! simulator; everything else reaches the bench through `rig`'s traits.

use std::path::Path;

use rig::bench::BenchParts;
use rig::command_power::{DeviceValues, SecretEnv};
use rig::wrap::FaultPlan;

use crate::session::SessionConfig;

/// The factories for one rig's bench.
pub struct Drivers {
    meter: sim::parts::MeterParts,
    probe: probe::ProbeParts,
}

impl Drivers {
    /// The virtual meter this run would start for the rig whose state lives
    /// in `state_dir` (NV storage, PTY link, log), and the SWD driver.
    pub fn new(config: &SessionConfig, state_dir: &Path, device: Option<&str>) -> Drivers {
        Drivers {
            meter: sim::parts::MeterParts::new(sim::VirtualMeterSpec {
                program: config.meter_program.clone(),
                args_prefix: config.meter_args.clone(),
                state_dir: state_dir.to_path_buf(),
                objects_dir: config.fixtures.join("objects"),
                seed: meter_seed(config.seed, device),
            }),
            probe: probe::ProbeParts,
        }
    }

    /// What [`rig::Bench::build`] needs, with these factories.
    pub fn parts<'a>(
        &'a self,
        fixtures: &'a Path,
        state_dir: &'a Path,
        device_values: DeviceValues,
        secret: Option<SecretEnv>,
        faults: FaultPlan,
    ) -> BenchParts<'a> {
        BenchParts {
            device_values,
            secret,
            virtual_parts: Some(&self.meter),
            swd: Some(&self.probe),
            faults,
            ..BenchParts::new(fixtures, state_dir)
        }
    }
}

/// The seed a virtual meter derives its IMEI, ICCID and serial from: the
/// run's for a rig of one device, and for each meter of a rig of several
/// one of its own, so that they are as many distinct devices, and the same
/// ones again under `--seed` (FNV-1a of the device name mixed in).
fn meter_seed(run_seed: u64, device: Option<&str>) -> u64 {
    let Some(name) = device else {
        return run_seed;
    };
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    run_seed ^ hash
}

/// The rig doctor's look at an SWD port: attach, read the chip's ID and
/// the facts the rig maps. A driver of its own, detached when it is
/// dropped, so that the run's session then finds the probe free.
pub fn check_swd(
    spec: &rig::swd::SwdSpec,
    rig_dir: &Path,
) -> Result<(String, std::collections::BTreeMap<String, String>), String> {
    let mut d = probe::SwdDebug::new(spec, rig_dir).map_err(|e| e.to_string())?;
    d.connect().map_err(|e| e.to_string())?;
    let chip = d.chip_id().map_err(|e| e.to_string())?;
    let state = rig::Debug::read_state(&mut d).map_err(|e| e.to_string())?;
    Ok((format!("{}, {chip}", rig::Debug::describe(&d)), state))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use rig::wrap::{CallOutcome, Fault, FaultAction, FaultPlan, PowerCall};
    use rig::RigFile;

    use crate::session::{Session, SessionConfig};
    use crate::steps::kinds::power::PowerStep;
    use crate::steps::{CaseContext, Step, StepError, Turn};

    #[test]
    fn each_meter_of_a_rig_gets_its_own_seed_and_one_device_keeps_the_runs() {
        let run = 4242;
        assert_eq!(super::meter_seed(run, None), run);
        let seeds: std::collections::BTreeSet<u64> = ["meter-1", "meter-2", "meter-3", "meter-4"]
            .iter()
            .map(|d| super::meter_seed(run, Some(d)))
            .collect();
        assert_eq!(seeds.len(), 4, "{seeds:?}");
        assert!(!seeds.contains(&run));
    }

    fn config(dir: &Path) -> SessionConfig {
        SessionConfig {
            run_id: "faults".into(),
            fixtures: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
            registry: lwm2m::Registry::core(),
            state_root: dir.join("state"),
            // No virtual part on this rig: the meter is never started.
            meter_program: PathBuf::from("/nonexistent/virtual-meter"),
            meter_args: Vec::new(),
            seed: 1,
        }
    }

    /// A device that is a file: present while powered.
    fn file_powered_rig(dir: &Path) -> RigFile {
        file_powered_rig_with(dir, "")
    }

    /// The same, with more of the rig file (`faults:`).
    fn file_powered_rig_with(dir: &Path, more: &str) -> RigFile {
        RigFile::parse(
            &format!(
                "name: faulty\ndevice: {{ endpoint: ep, lifetime: 1m }}\n\
                 power:\n  kind: command\n  on: \"touch {{state_dir}}/powered\"\n  off: \"rm -f {{state_dir}}/powered\"\n\
                 lease: {{ dir: {} }}\n{more}",
                dir.join("locks").display()
            ),
            &dir.join("faulty.yaml"),
        )
        .unwrap()
    }

    /// A case's `power: off` step (line 3) that must fail: its error.
    async fn power_off_step(session: &mut Session) -> StepError {
        let mut ctx = CaseContext::new(session, "faulty-case");
        let turn = Turn {
            line: 3,
            within: Duration::from_secs(5),
            remaining: Duration::from_secs(5),
        };
        PowerStep::Off
            .run(turn, &mut ctx, session)
            .await
            .unwrap_err()
    }

    /// The fault comes from the rig file alone: the session is opened as a
    /// run opens it. About 0.1 s (two shell commands).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rig_file_fault_fails_the_power_step_naming_the_injected_error() {
        let dir = tempfile::tempdir().unwrap();
        let rig = file_powered_rig_with(
            dir.path(),
            // The device is a file: a stand-in, so faults are allowed.
            "faults:\n  on_real_parts: true\n  power: [{ call: 2, action: fail }]\n",
        );
        let mut session = Session::open(rig, &config(dir.path())).await.unwrap();
        let powered = dir.path().join("state/faulty/powered");
        session.set_power(true).unwrap();
        let e = power_off_step(&mut session).await;
        assert!(
            matches!(&e, StepError::Bench(m)
                if m.contains("power (fault injector)") && m.contains("call 2 (off) failed: injected")),
            "{e:?}"
        );
        assert!(powered.exists(), "the injected failure did not switch");
        session.close().await;
        assert!(!powered.exists(), "close() left the device powered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_power_driver_fault_is_a_bench_error_and_the_bench_is_still_left_off() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultPlan {
            power: vec![Fault::new(2, FaultAction::Fail)],
            modem: Vec::new(),
        };
        let mut session =
            Session::open_with_faults(file_powered_rig(dir.path()), &config(dir.path()), faults)
                .await
                .unwrap();
        let powered = dir.path().join("state/faulty/powered");
        let trace = session.power_trace.clone().expect("power is traced");
        session.set_power(true).unwrap();
        assert!(powered.exists());

        // A `power: off` step whose switch fails is the bench's error (an
        // error verdict), not the device's failure.
        let e = power_off_step(&mut session).await;
        assert!(
            matches!(&e, StepError::Bench(m) if m.contains("fault injector")),
            "{e:?}"
        );
        assert!(powered.exists(), "the failed switch did not cut the device");

        // The session still ends with power as `after_run` says: off.
        let artifacts = dir.path().join("artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        session.write_power_log(&artifacts, 0);
        session.close().await;
        assert!(!powered.exists(), "close() left the device powered");
        let last = trace.events().pop().unwrap();
        assert_eq!(
            (last.call, last.outcome),
            (PowerCall::Off, CallOutcome::Done)
        );
        let log = std::fs::read_to_string(artifacts.join("power.log")).unwrap();
        let calls: Vec<&str> = log.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(calls[0], "on ok");
        assert!(calls[1].starts_with("off FAILED: "), "{log}");
    }
}
