//! `meterbench rig check RIG.yaml`, the rig doctor: asks each part of a
//! bench to answer (supply, modem, identity, debug port, network, servers,
//! firmware store) and prints one row per part, so a lab engineer learns
//! in seconds which cable or setting is wrong before a run blames the
//! device. The bench is opened the way a run opens it ([`Session::open`]),
//! so what passes here is what a run will find.

pub mod identity;
mod report;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lwm2m::Registry;
use rig::model::{DebugSpec, ModemPort, PowerSpec, RigFile};

use crate::cli::RigCheckArgs;
use crate::session::{BenchError, OpenError, Session, SessionConfig};
use identity::{IdentityError, SeenIdentity};
use report::Report;

/// A driver call that did not return within the doctor's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer within {}", rig::duration::format_duration(*.0))]
struct NoAnswer(Duration);

/// Runs a blocking driver call on its own thread and gives up waiting
/// after `limit`, so a hung supply or probe cannot hang the doctor. A call
/// that outlives its limit is abandoned with the process at exit.
fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NoAnswer> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).map_err(|_| NoAnswer(limit))
}

pub fn main(args: RigCheckArgs) -> ExitCode {
    let rig = match RigFile::load(&args.rig) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // A rig of several devices: each listed board is checked as a rig of
    // one. The meters of a `count` are the same program started alike, so
    // the first stands for all.
    let counted = rig.devices.as_ref().is_some_and(|d| d.count.is_some());
    let mut devices = rig.device_rigs();
    if counted {
        devices.truncate(1);
    }
    let worst = devices
        .into_iter()
        .map(|device| {
            let name = match &device.device_name {
                Some(d) if !counted => format!("{}::{d}", device.name),
                _ => device.name.clone(),
            };
            check_device(device, &args, name)
        })
        .max()
        .unwrap_or(0);
    ExitCode::from(worst)
}

/// The doctor on one device: 0 when every part answered, 1 when one
/// failed, 2 when the rig's input is unusable.
fn check_device(rig: RigFile, args: &RigCheckArgs, name: String) -> u8 {
    let registry = match Registry::load_dir(&args.fixtures.join("objects")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let run_id = format!("check{}", std::process::id());
    let state_root = std::env::temp_dir().join(format!("meterbench-{run_id}"));
    let config = SessionConfig {
        run_id,
        fixtures: args.fixtures.clone(),
        registry,
        state_root: state_root.clone(),
        meter_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("meterbench")),
        meter_args: vec!["sim-meter".into()],
        seed: args.seed.unwrap_or_else(time_seed),
    };
    let file = rig.source.clone();
    let started = Instant::now();
    let report = runtime.block_on(check(rig, &config, args.timeout));
    let _ = std::fs::remove_dir_all(&state_root);
    if args.json {
        println!("{}", report.json(&name, &file));
    } else {
        println!("rig {name} ({})", file.display());
        print!("{}", report.table());
        println!(
            "{} in {:.1}s",
            if report.failed() { "FAILED" } else { "passed" },
            started.elapsed().as_secs_f64()
        );
    }
    // Driver threads that outlived their limit must not keep the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if report.failed() {
        1
    } else {
        0
    }
}

fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// A bench another job holds is reported, not waited for at a run's length.
fn short_lease_wait(rig: &mut RigFile, limit: Duration) {
    let hardware = rig
        .modem
        .as_ref()
        .is_some_and(|m| m.port != ModemPort::Virtual)
        || matches!(rig.power, Some(PowerSpec::Command(_) | PowerSpec::Scpi(_)));
    match &mut rig.lease {
        Some(l) => l.wait = Some(limit),
        None if hardware => {
            rig.lease = Some(rig::lease::LeaseSpec {
                dir: None,
                ttl: rig::lease::DEFAULT_TTL,
                wait: Some(limit),
            })
        }
        None => {}
    }
}

async fn check(mut rig: RigFile, config: &SessionConfig, limit: Duration) -> Report {
    let mut report = Report::default();
    short_lease_wait(&mut rig, limit);
    // A part whose driver cannot be built (a missing ELF, a bad port name)
    // is reported and left out, and the bench is opened again without it:
    // a lab engineer fixing a rig wants every broken part in one pass, not
    // one per run. There are four parts, so this ends.
    let mut left_out = Vec::new();
    let mut session = loop {
        let opened = tokio::time::timeout(limit, Session::open(rig.clone(), config)).await;
        match opened {
            Ok(Ok(s)) => break s,
            Ok(Err(OpenError::Build(e))) if !left_out.contains(&e.part()) => {
                let part = e.part();
                report.fail(part.name(), "-", e.to_string());
                leave_out(&mut rig, part);
                left_out.push(part);
            }
            Ok(Err(e)) => {
                let part = match &e {
                    OpenError::InUse { .. } => "lease",
                    OpenError::Server(_) => "server",
                    OpenError::BootstrapServer(_) => "bootstrap server",
                    OpenError::Credentials(_) => "credentials",
                    OpenError::Build(e) => e.part().name(),
                    _ => "bench",
                };
                report.fail(part, "-", e.to_string());
                report.skip(
                    "other parts",
                    "-",
                    "not checked: the rig could not be opened",
                );
                return report;
            }
            Err(_) => {
                report.fail(
                    "bench",
                    "-",
                    format!(
                        "opening the rig took longer than {}",
                        rig::duration::format_duration(limit)
                    ),
                );
                return report;
            }
        }
    };
    let powered = check_power(&session, &mut report, limit);
    let mut seen = check_modem(&mut session, &mut report, limit, powered);
    check_debug(&mut session, &mut report, limit, &mut seen);
    check_identity(&session.rig, &seen, &mut report);
    check_network(&session, &mut report);
    check_servers(&session, &mut report);
    check_firmware(&mut session, &mut report).await;
    let after = match session.rig.after_run.power {
        rig::model::PowerState::On => "on",
        rig::model::PowerState::Off => "off",
    };
    if session.power.is_some() {
        tracing::info!("leaving power {after} as the rig's after_run says");
    }
    session.close().await;
    report
}

/// Drops a part whose driver could not be built, so the others can be
/// checked; its failure row stays the part's verdict.
fn leave_out(rig: &mut RigFile, part: rig::bench::Part) {
    match part {
        rig::bench::Part::Power => rig.power = None,
        rig::bench::Part::Modem => rig.modem = None,
        rig::bench::Part::Debug => rig.debug = None,
        rig::bench::Part::Network => rig.network = None,
    }
}

/// Whether the board is now powered by us (so a port may take its boot
/// time to appear).
fn check_power(session: &Session, report: &mut Report, limit: Duration) -> bool {
    let rig = &session.rig;
    let Some(spec) = &rig.power else {
        report.skip("power", "-", "no power part: the board is powered by hand");
        return false;
    };
    let driver = match spec {
        PowerSpec::Virtual(_) => "virtual",
        PowerSpec::Command(_) => "command",
        PowerSpec::Scpi(_) => "scpi",
    };
    let mut details = Vec::new();
    // A measuring supply first says who it is (`*IDN?`), on its own connection.
    match rig::power::supply_from_spec(spec, rig.dir()) {
        Ok(Some(mut supply)) => {
            let describe = supply.describe();
            match within(limit, move || supply.identify().map_err(|e| e.to_string())) {
                Ok(Ok(id)) => details.push(format!("*IDN? {id}")),
                Ok(Err(e)) => {
                    report.fail("power", driver, e);
                    return false;
                }
                Err(e) => {
                    report.fail("power", driver, format!("{describe}: *IDN?: {e}"));
                    return false;
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            report.fail("power", driver, e.to_string());
            return false;
        }
    }
    let Some(power) = session.power.clone() else {
        report.fail("power", driver, "no power driver was built");
        return false;
    };
    let switched = within(limit, move || {
        let mut p = power
            .lock()
            .map_err(|_| "power driver lock poisoned".to_string())?;
        let describe = p.describe();
        p.on().map_err(|e| e.to_string())?;
        Ok::<_, String>((describe, p.is_on()))
    });
    match switched {
        Ok(Ok((describe, true))) => {
            details.insert(0, describe);
            details.push("switched on".into());
            report.ok("power", driver, details.join("; "));
            true
        }
        Ok(Ok((describe, false))) => {
            report.fail(
                "power",
                driver,
                format!("{describe}: switched on, but it reports off"),
            );
            false
        }
        Ok(Err(e)) => {
            report.fail("power", driver, format!("power on: {e}"));
            false
        }
        Err(e) => {
            report.fail("power", driver, format!("power on: {e}"));
            false
        }
    }
}

/// What the host has under /dev/serial/by-id, for a port that is missing.
fn ports_seen() -> String {
    let names: Vec<String> = std::fs::read_dir("/dev/serial/by-id")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "none under /dev/serial/by-id".into()
    } else {
        names.join(", ")
    }
}

/// Waits for a plain device path to exist: at once when nothing was
/// switched on, else up to the modem's boot time (USB modems enumerate
/// after power-on).
fn wait_for_port(path: &Path, wait: Duration) -> bool {
    if path.to_str().is_some_and(|p| p.starts_with("usb:")) {
        return true; // resolved by serial number at open
    }
    let deadline = Instant::now() + wait;
    loop {
        if path.exists() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_modem(
    session: &mut Session,
    report: &mut Report,
    limit: Duration,
    powered: bool,
) -> SeenIdentity {
    let Some(spec) = session.rig.modem.clone() else {
        report.skip("modem", "-", "no modem part");
        return SeenIdentity::default();
    };
    let Some(mut modem) = session.modem.take() else {
        report.fail("modem", "serial", "no modem driver was built");
        return SeenIdentity::default();
    };
    let driver = format!("serial ({})", modem.dialect().name);
    if let ModemPort::Path(path) = &spec.port {
        let wait = if powered {
            modem.dialect().boot_timeout.min(limit)
        } else {
            Duration::ZERO
        };
        if !wait_for_port(path, wait) {
            report.fail(
                "modem",
                driver,
                format!(
                    "port {} does not exist (serial ports seen: {})",
                    path.display(),
                    ports_seen()
                ),
            );
            session.modem = Some(modem);
            return SeenIdentity::default();
        }
    }
    let port = spec.port.to_string();
    let limit = limit.max(modem.dialect().boot_timeout + Duration::from_secs(1));
    let answered = within(limit, move || {
        let opened = modem.open().map_err(|e| e.to_string());
        let answers = match &opened {
            Ok(()) => identity::ask_modem(modem.as_mut()),
            Err(_) => Vec::new(),
        };
        (modem, opened, answers)
    });
    let (modem, opened, answers) = match answered {
        Ok(x) => x,
        Err(e) => {
            report.fail("modem", driver, format!("port {port}: {e}"));
            return SeenIdentity::default();
        }
    };
    session.modem = Some(modem);
    if let Err(e) = opened {
        report.fail("modem", driver, e);
        return SeenIdentity::default();
    }
    let mut shown = vec![format!("answers AT on {port}")];
    let mut failed = Vec::new();
    for (action, answer) in &answers {
        match answer {
            Ok(v) => shown.push(format!("{action} {v}")),
            Err(e) => failed.push(format!("{action}: {e}")),
        }
    }
    if let Some((_, Ok(revision))) = answers.iter().find(|(a, _)| *a == "revision") {
        session.info.modem_revision = Some(revision.clone());
    }
    if failed.is_empty() {
        report.ok("modem", driver, shown.join("; "));
    } else {
        shown.extend(failed);
        report.fail("modem", driver, shown.join("; "));
    }
    SeenIdentity::from_modem(&answers)
}

/// What a debug port said (its description and its facts), or why not: the
/// debug row of the report (data shown to the engineer), not an error.
type DebugRead = Result<(String, BTreeMap<String, String>), String>;

fn check_debug(
    session: &mut Session,
    report: &mut Report,
    limit: Duration,
    seen: &mut SeenIdentity,
) {
    let Some(spec) = session.rig.debug.clone() else {
        report.skip("debug", "-", "no debug part");
        return;
    };
    let (driver, read): (&str, DebugRead) = match &spec {
        DebugSpec::Virtual => {
            let Some(mut debug) = session.debug.take() else {
                report.fail("debug", "virtual", "no debug driver was built");
                return;
            };
            let r = within(limit, move || {
                let state = debug.read_state().map_err(|e| e.to_string());
                (debug, state)
            });
            let r = r.map(|(debug, state)| {
                let describe = debug.describe();
                session.debug = Some(debug);
                state.map(|s| (describe, s))
            });
            (
                "virtual",
                r.map_err(|e| e.to_string()).and_then(|state| state),
            )
        }
        DebugSpec::Swd(swd) => {
            // Its own driver, dropped (detached) when the check ends,
            // so the run's session finds the probe free.
            let swd = swd.clone();
            let dir = session.rig.dir().to_path_buf();
            let r = within(limit, move || crate::drivers::check_swd(&swd, &dir));
            ("swd", r.map_err(|e| e.to_string()).and_then(|read| read))
        }
    };
    match read {
        Ok((describe, state)) => {
            seen.add_debug_state(&state);
            let facts: Vec<String> = state
                .iter()
                .take(6)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let more = state.len().saturating_sub(facts.len());
            let tail = if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            };
            report.ok(
                "debug",
                driver,
                format!("{describe}: {}{tail}", facts.join(", ")),
            );
        }
        Err(e) => report.fail("debug", driver, e),
    }
}

fn check_identity(rig: &RigFile, seen: &SeenIdentity, report: &mut Report) {
    let Some(expected) = &rig.device.identity else {
        report.skip(
            "identity",
            "-",
            "the rig file gives no device.identity to check",
        );
        return;
    };
    match identity::compare(expected, seen) {
        Ok(matched) if matched.is_empty() => {
            report.skip("identity", "rig file", "device.identity lists no field")
        }
        Ok(matched) => report.ok(
            "identity",
            "rig file",
            format!("matches: {}", matched.join(", ")),
        ),
        Err(e) => report.fail("identity", "rig file", format!("wrong board: {e}")),
    }
}

fn check_network(session: &Session, report: &mut Report) {
    match &session.network {
        Some(n) => report.ok("network", "-", n.describe()),
        None => report.skip(
            "network",
            "-",
            "no network part: network-control cases are skipped",
        ),
    }
}

fn check_servers(session: &Session, report: &mut Report) {
    let scheme = if session.server.is_secure() {
        "coaps"
    } else {
        "coap"
    };
    report.ok(
        "server",
        scheme,
        format!(
            "bound {}; the device is told {}",
            session.server.local_addr(),
            session.server_uri()
        ),
    );
    let Some(bs) = &session.bootstrap else {
        report.skip(
            "bootstrap server",
            "-",
            "the device is not onboarded by bootstrap",
        );
        return;
    };
    let bound = bs.local_addr();
    let uri = session.bootstrap_uri().unwrap_or_default();
    match session.rig.server.bootstrap_bind {
        // A device with a factory bootstrap URI needs exactly this address.
        Some(fixed) if fixed != bound => match UdpSocket::bind(fixed) {
            Ok(_) => report.ok(
                "bootstrap server",
                scheme,
                format!("bootstrap_bind {fixed} can be bound"),
            ),
            Err(e) => report.fail(
                "bootstrap server",
                scheme,
                format!("bootstrap_bind {fixed} cannot be bound: {e}"),
            ),
        },
        _ => report.ok(
            "bootstrap server",
            scheme,
            format!("bound {bound}; the device is told {uri}"),
        ),
    }
}

async fn check_firmware(session: &mut Session, report: &mut Report) {
    let Some(firmware) = session.rig.firmware.clone() else {
        report.skip(
            "firmware",
            "-",
            "no firmware part: cases naming a firmware role are skipped",
        );
        return;
    };
    if let Err(e) = session.firmware_delivery().await {
        report.fail("firmware", "store", e.to_string());
        return;
    }
    let mut roles = Vec::new();
    let mut problems = Vec::new();
    for role in &firmware.role_names() {
        match session.firmware_role(role).await {
            Ok(r) => roles.push(format!("{role}={} ({})", r.image, r.version)),
            Err(crate::session::RoleError::Store(e) | crate::session::RoleError::NotMapped(e)) => {
                problems.push(e)
            }
        }
    }
    if problems.is_empty() {
        report.ok(
            "firmware",
            "store",
            format!("{} role(s): {}", roles.len(), roles.join(", ")),
        );
    } else {
        report.fail("firmware", "store", problems.join("; "));
    }
}

/// A run's check before its first case: the board on the bench must be the
/// one the rig file names (`device.identity`). Powers the device on and
/// brings it up when needed (as the first case would), reads the identity
/// through the modem and the debug port, and says which value differs.
pub fn before_first_case(session: &mut Session) -> Result<(), BoardCheckError> {
    let Some(expected) = session.rig.device.identity.clone() else {
        return Ok(());
    };
    if session.power_is_on() == Some(false) {
        session.set_power(true)?;
        session.bring_up()?;
    }
    let mut seen = match session.modem.as_mut() {
        Some(modem) => SeenIdentity::from_modem(&identity::ask_modem(modem.as_mut())),
        None => SeenIdentity::default(),
    };
    if let Some(debug) = session.debug.as_mut() {
        if let Ok(state) = debug.read_state() {
            seen.add_debug_state(&state);
        }
    }
    identity::compare(&expected, &seen)?;
    Ok(())
}

/// Why a run does not start its cases on a rig: the bench could not power
/// or bring up the board, or the board is not the one the rig file names.
#[derive(Debug, thiserror::Error)]
pub enum BoardCheckError {
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error("wrong board: {0}")]
    WrongBoard(#[from] IdentityError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_outlives_its_limit_is_no_answer() {
        let (tx, rx) = mpsc::channel::<()>();
        let e = within(Duration::from_millis(20), move || rx.recv()).unwrap_err();
        drop(tx);
        assert_eq!(e.to_string(), "no answer within 20ms");
        assert_eq!(within(Duration::from_secs(5), || 7), Ok(7));
    }
}
