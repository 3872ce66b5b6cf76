//! `Bench::build`: each part of a rig file becomes its driver — real parts
//! built by rig, virtual ones and SWD asked of the factories given — and a
//! part no factory can build is refused naming the rig file and the part.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rig::bench::{Bench, BenchBuildError, BenchParts, Part, PartError, VirtualParts};
use rig::command_power::{DeviceValues, SecretEnv, PSK_KEY_ENV};
use rig::model::VirtualMeterOptions;
use rig::power::scpi_sim::{Load, ScpiSupplySim};
use rig::swd::SwdSpec;
use rig::wrap::{CallOutcome, Fault, FaultAction, FaultPlan, PowerCall};
use rig::{Debug, Network, NetworkAction, Power, RigError, RigFile};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The fixtures' dialects with a short boot timeout, so that opening a
/// port nobody serves fails at once instead of waiting for a modem to boot.
fn quick_fixtures(dir: &Path) -> PathBuf {
    let root = dir.join("fixtures");
    std::fs::create_dir_all(root.join("modems")).unwrap();
    for name in ["meterbench-virtual", "3gpp-27007"] {
        let file = format!("modems/{name}.yaml");
        let text = std::fs::read_to_string(fixtures().join(&file)).unwrap();
        let quick: String = text
            .lines()
            .map(|l| {
                if l.starts_with("boot_timeout:") {
                    "boot_timeout: 50ms"
                } else {
                    l
                }
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(root.join(&file), quick).unwrap();
    }
    root
}

fn rig(parts: &str) -> RigFile {
    RigFile::parse(
        &format!("name: b\ndevice: {{ endpoint: ep, lifetime: 1m }}\n{parts}"),
        Path::new("rigs/b.yaml"),
    )
    .unwrap()
}

/// A power switch that remembers what it was told.
#[derive(Default)]
struct FakePower {
    on: bool,
}

impl Power for FakePower {
    fn on(&mut self) -> Result<(), RigError> {
        self.on = true;
        Ok(())
    }
    fn off(&mut self) -> Result<(), RigError> {
        self.on = false;
        Ok(())
    }
    fn is_on(&mut self) -> bool {
        self.on
    }
    fn describe(&self) -> String {
        "fake virtual power".into()
    }
}

struct FakeDebug;

impl Debug for FakeDebug {
    fn read_state(&mut self) -> Result<std::collections::BTreeMap<String, String>, RigError> {
        Ok([("boot_count".to_string(), "3".to_string())].into())
    }
    fn describe(&self) -> String {
        "fake debug".into()
    }
}

struct FakeNetwork;

impl Network for FakeNetwork {
    fn supports(&self, _: &NetworkAction) -> bool {
        true
    }
    fn apply(&mut self, _: &NetworkAction) -> Result<(), RigError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "fake network".into()
    }
}

/// The virtual meter's stand-in: records the options its power was asked for.
struct FakeMeter {
    dir: PathBuf,
    asked: Mutex<Vec<VirtualMeterOptions>>,
}

impl FakeMeter {
    fn new(dir: &Path) -> FakeMeter {
        FakeMeter {
            dir: dir.to_path_buf(),
            asked: Mutex::new(Vec::new()),
        }
    }
}

impl VirtualParts for FakeMeter {
    fn power(&self, options: &VirtualMeterOptions) -> Result<Box<dyn Power>, PartError> {
        self.asked.lock().unwrap().push(options.clone());
        if options.server_instance == 9 {
            return Err("server instance 9 is not playable".into());
        }
        Ok(Box::new(FakePower::default()))
    }
    fn modem_port(&self) -> PathBuf {
        self.dir.join("fake-meter.pty")
    }
    fn debug(&self) -> Box<dyn Debug> {
        Box::new(FakeDebug)
    }
    fn network(&self) -> Box<dyn Network> {
        Box::new(FakeNetwork)
    }
    fn device_log(&self) -> PathBuf {
        self.dir.join("fake-meter.log")
    }
}

const VIRTUAL: &str = "modem: { port: virtual, dialect: meterbench-virtual }\n\
    power: { kind: virtual, without: [/3/0/15] }\n\
    debug: { kind: virtual }\n\
    network: { kind: virtual }\n";

#[test]
fn a_virtual_rig_gets_every_part_from_the_virtual_factory() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = quick_fixtures(dir.path());
    let meter = FakeMeter::new(dir.path());
    let parts = BenchParts {
        virtual_parts: Some(&meter),
        ..BenchParts::new(&fixtures, dir.path())
    };
    let mut bench = Bench::build(&rig(VIRTUAL), &parts).unwrap();

    assert_eq!(meter.asked.lock().unwrap()[0].without, ["/3/0/15"]);
    let power = bench.power.as_ref().unwrap();
    assert_eq!(power.lock().unwrap().describe(), "fake virtual power");
    assert!(bench.current.is_none(), "a virtual switch does not measure");
    assert_eq!(bench.device_log, Some(dir.path().join("fake-meter.log")));
    assert_eq!(bench.debug.as_ref().unwrap().describe(), "fake debug");
    assert_eq!(bench.network.as_ref().unwrap().describe(), "fake network");
    // The modem is a serial modem on the meter's PTY: opening it names that
    // path (there is no meter running to create it).
    let modem = bench.modem.as_mut().unwrap();
    assert_eq!(modem.dialect().name, "meterbench virtual modem");
    let e = modem.open().unwrap_err().to_string();
    assert!(e.contains("fake-meter.pty"), "{e}");
}

#[test]
fn a_modem_on_a_device_path_opens_that_path_without_any_factory() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = quick_fixtures(dir.path());
    let port = dir.path().join("ttyUSB-meterbench-none");
    let rig = rig(&format!(
        "modem: {{ port: {}, dialect: 3gpp-27007 }}\n",
        port.display()
    ));
    let mut bench = Bench::build(&rig, &BenchParts::new(&fixtures, dir.path())).unwrap();
    let e = bench
        .modem
        .as_mut()
        .unwrap()
        .open()
        .unwrap_err()
        .to_string();
    assert!(e.contains("ttyUSB-meterbench-none"), "{e}");
    assert!(bench.power.is_none() && bench.debug.is_none() && bench.network.is_none());
    assert_eq!(bench.device_log, None);
}

#[test]
fn a_virtual_part_without_a_virtual_factory_is_refused_naming_file_and_part() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    for (yaml, part, key) in [
        ("power: { kind: virtual }\n", Part::Power, "power"),
        (
            "modem: { port: virtual, dialect: meterbench-virtual }\n",
            Part::Modem,
            "modem",
        ),
        ("debug: { kind: virtual }\n", Part::Debug, "debug"),
        ("network: { kind: virtual }\n", Part::Network, "network"),
    ] {
        let e = Bench::build(&rig(yaml), &BenchParts::new(&fixtures, dir.path()))
            .err()
            .expect("refused");
        assert!(
            matches!(e, BenchBuildError::NoVirtualParts { .. }),
            "{yaml}: {e:?}"
        );
        assert_eq!(e.part(), part);
        let text = e.to_string();
        assert!(text.starts_with(&format!("rigs/b.yaml: {key}: ")), "{text}");
        assert!(text.contains("virtual"), "{text}");
    }
}

#[test]
fn a_virtual_factory_that_refuses_the_options_is_named_with_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let meter = FakeMeter::new(dir.path());
    let parts = BenchParts {
        virtual_parts: Some(&meter),
        ..BenchParts::new(&fixtures, dir.path())
    };
    let e = Bench::build(
        &rig("power: { kind: virtual, server_instance: 9 }\n"),
        &parts,
    )
    .err()
    .expect("refused");
    assert_eq!(
        e.to_string(),
        "rigs/b.yaml: power: server instance 9 is not playable"
    );
}

#[test]
fn an_unknown_dialect_is_refused_naming_the_modem_part() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let e = Bench::build(
        &rig("modem: { port: /dev/ttyUSB0, dialect: no-such-modem }\n"),
        &BenchParts::new(&fixtures, dir.path()),
    )
    .err()
    .expect("refused");
    assert!(
        matches!(&e, BenchBuildError::Rig { part: Part::Modem, source, .. }
            if matches!(**source, RigError::DialectNotFound { .. })),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("rigs/b.yaml: modem: "), "{e}");
}

const SWD: &str =
    "debug:\n  kind: swd\n  probe: \"0669FF555052836687031520\"\n  chip: STM32L476RGTx\n";

#[test]
fn swd_debug_comes_from_the_swd_factory_and_without_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let rig = rig(SWD);
    let e = Bench::build(&rig, &BenchParts::new(&fixtures, dir.path()))
        .err()
        .expect("refused");
    assert!(matches!(e, BenchBuildError::NoSwdParts { .. }), "{e:?}");
    assert!(e.to_string().starts_with("rigs/b.yaml: debug: "), "{e}");

    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let swd = move |spec: &SwdSpec, rig_dir: &Path| -> Result<Box<dyn Debug>, PartError> {
        *record.lock().unwrap() = Some((spec.chip.clone(), rig_dir.to_path_buf()));
        Ok(Box::new(FakeDebug))
    };
    let parts = BenchParts {
        swd: Some(&swd),
        ..BenchParts::new(&fixtures, dir.path())
    };
    let bench = Bench::build(&rig, &parts).unwrap();
    assert_eq!(bench.debug.unwrap().describe(), "fake debug");
    assert_eq!(
        seen.lock().unwrap().clone(),
        Some(("STM32L476RGTx".to_string(), PathBuf::from("rigs")))
    );
}

#[test]
fn command_power_gets_its_placeholders_and_the_key_only_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let out = dir.path().join("started");
    let rig = rig(&format!(
        "power:\n  kind: command\n  on: \"echo {{endpoint}} {{server_uri}} ${{{PSK_KEY_ENV}}} > {}\"\n  off: \"true\"\n",
        out.display()
    ));
    let parts = BenchParts {
        device_values: DeviceValues {
            endpoint: Some("meter-7".into()),
            server_uri: Some("coaps://127.0.0.1:5684".into()),
            ..DeviceValues::default()
        },
        secret: Some(SecretEnv::psk_key(&[0xab, 0xcd])),
        ..BenchParts::new(&fixtures, dir.path())
    };
    let bench = Bench::build(&rig, &parts).unwrap();
    assert_eq!(bench.device_log, Some(dir.path().join("device.log")));
    assert!(bench.current.is_none());
    bench.power.as_ref().unwrap().lock().unwrap().on().unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "meter-7 coaps://127.0.0.1:5684 abcd\n"
    );
}

#[test]
fn a_command_power_placeholder_without_a_value_is_refused_naming_the_power_part() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let rig = rig("power:\n  kind: command\n  on: \"start {bootstrap_uri}\"\n  off: \"true\"\n");
    let e = Bench::build(&rig, &BenchParts::new(&fixtures, dir.path()))
        .err()
        .expect("refused");
    assert_eq!(e.part(), Part::Power);
    let text = e.to_string();
    assert!(text.starts_with("rigs/b.yaml: power: "), "{text}");
    assert!(text.contains("bootstrap_uri"), "{text}");
}

/// The bench puts the current recorder in the power chain itself: the
/// case switches the supply through `power` while the recording the runner
/// only starts and stops samples through the same driver. About 0.1 s.
#[test]
fn an_scpi_bench_records_current_through_its_own_power_chain() {
    let sim = ScpiSupplySim::start().unwrap();
    sim.set_load(1, Load::Amps(vec![0.04, 0.2]));
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let rig = rig(&format!(
        "power:\n  kind: scpi\n  tcp: {}\n  voltage: 3.6V\n  current_limit: 500mA\n  timeout: 1s\n",
        sim.addr()
    ));
    let bench = Bench::build(&rig, &BenchParts::new(&fixtures, dir.path())).unwrap();
    let power = bench.power.clone().unwrap();
    power.lock().unwrap().on().unwrap();
    assert!(sim.output(1).on);
    let recording = bench
        .current
        .as_ref()
        .expect("an scpi supply measures")
        .start(Duration::from_millis(5))
        .unwrap();
    let measured = || sim.received().iter().filter(|l| *l == "MEAS:CURR?").count();
    let end = Instant::now() + Duration::from_secs(5);
    while measured() < 6 {
        assert!(Instant::now() < end, "the bench's recorder did not sample");
        // Power steps go through the same chain while it samples.
        assert!(power.lock().unwrap().is_on());
        std::thread::sleep(Duration::from_millis(2));
    }
    let record = recording.stop();
    assert_eq!(record.failures, 0);
    assert!(record.samples.len() >= 6, "{record:?}");
    for (i, s) in record.samples.iter().enumerate() {
        assert_eq!(s.amps, if i % 2 == 1 { 0.2 } else { 0.04 }, "sample {i}");
    }
    // The power trace saw the switch: the recorder is inside the tracer.
    let calls: Vec<_> = bench
        .power_trace
        .unwrap()
        .events()
        .iter()
        .map(|e| e.call)
        .collect();
    assert_eq!(calls.first(), Some(&PowerCall::On));
    assert_eq!(bench.device_log, None);
}

#[test]
fn every_call_to_the_bench_power_is_traced_with_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let meter = FakeMeter::new(dir.path());
    let parts = BenchParts {
        virtual_parts: Some(&meter),
        faults: FaultPlan {
            power: vec![Fault::new(2, FaultAction::Fail)],
            modem: Vec::new(),
        },
        ..BenchParts::new(&fixtures, dir.path())
    };
    let bench = Bench::build(&rig("power: { kind: virtual }\n"), &parts).unwrap();
    let trace = bench.power_trace.clone().unwrap();
    {
        let mut p = bench.power.as_ref().unwrap().lock().unwrap();
        p.on().unwrap();
        // The second switch is the injected fault: a bench error, and the
        // switch stays where it was.
        assert!(matches!(p.off(), Err(RigError::Driver { .. })));
        assert!(p.is_on());
        p.off().unwrap();
    }
    let calls: Vec<(PowerCall, CallOutcome)> = trace
        .events()
        .into_iter()
        .map(|e| (e.call, e.outcome))
        .collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0], (PowerCall::On, CallOutcome::Done));
    assert!(
        matches!(&calls[1], (PowerCall::Off, CallOutcome::Failed(m)) if m.contains("injected"))
    );
    assert_eq!(calls[2], (PowerCall::IsOn, CallOutcome::Answered(true)));
    assert_eq!(calls[3], (PowerCall::Off, CallOutcome::Done));
}
