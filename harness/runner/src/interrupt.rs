//! What the run has done so far, kept where a signal handler can reach it,
//! and how a run stops on Ctrl-C or SIGTERM (a cancelled CI job).
//!
//! The first signal asks the run to stop: the running case ends at once as
//! interrupted, no further case starts, and the run's ordinary end leaves
//! every bench as its rig's `after_run` says (power, ports and probe closed
//! with the session, the rig lease released), writes the JUnit and exits
//! with [`EXIT_INTERRUPTED`]. A driver call that blocks (a serial command, a
//! supply that stopped answering) cannot be cut short, so when the ordinary
//! end has not come within [`GRACE`], or at a second signal (GitHub Actions
//! sends SIGINT, then SIGTERM 7.5 s later), the forced end does the same
//! from here: power as `after_run` says where the driver is free, the
//! report, this process's leases removed, then exit. Ports and the probe
//! close with the process either way.
//!
//! The virtual meter is a child that exits with its parent
//! (`--exit-with-parent`) and keeps its state in the run's scratch folder,
//! so it never outlives meterbench: `after_run: {power: on}` keeps it
//! running until the run ends, not after.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rig::model::{PowerState, RigFile};
use tokio::sync::watch;

use crate::case::Case;
use crate::report::{junit, CaseOutcome, RigInfo, Verdict};
use crate::session::SharedPower;

/// Exit code of an interrupted run: 128 + SIGINT, as shells report Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long the ordinary end may take after the first signal before the
/// forced end takes over: inside the 7.5 s GitHub Actions leaves between
/// its SIGINT and SIGTERM, and the 10 s of `docker stop`.
const GRACE: Duration = Duration::from_secs(5);

/// How long the forced end tries to set power before it exits anyway: a
/// supply that does not answer must not keep a cancelled job alive.
const FORCED_POWER_LIMIT: Duration = Duration::from_secs(2);

/// What the safe end needs of one bench without its session: its power
/// driver, what `after_run` asks, and where its lease file would be.
struct Bench {
    rig: String,
    power: Option<SharedPower>,
    after_run_on: bool,
    lease_file: PathBuf,
}

#[derive(Clone)]
pub struct RunState {
    inner: Arc<Mutex<Inner>>,
    /// True once the run is asked to stop; cases watch it.
    stop: Arc<watch::Sender<bool>>,
}

struct Inner {
    junit: PathBuf,
    run_id: String,
    seed: u64,
    rigs: Vec<RigInfo>,
    outcomes: Vec<CaseOutcome>,
    /// The cases running now: one per device busy (`devices.parallel`,
    /// `--jobs`).
    running: Vec<(CaseOutcome, Instant)>,
    /// Each device of the run by its index (a rig without `devices:` is
    /// one), for the forced end: power off must reach every device.
    benches: Vec<Bench>,
    /// Per-run scratch folder (the virtual meters' NV storage), removed at exit.
    scratch: Option<PathBuf>,
}

impl RunState {
    pub fn new(junit: PathBuf, run_id: String, seed: u64) -> Self {
        RunState {
            inner: Arc::new(Mutex::new(Inner {
                junit,
                run_id,
                seed,
                rigs: Vec::new(),
                outcomes: Vec::new(),
                running: Vec::new(),
                benches: Vec::new(),
                scratch: None,
            })),
            stop: Arc::new(watch::channel(false).0),
        }
    }

    /// Whether the run was asked to stop (Ctrl-C, SIGTERM).
    pub fn is_interrupted(&self) -> bool {
        *self.stop.borrow()
    }

    /// Becomes true when the run is asked to stop; the engine ends the
    /// running case on it.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or refreshes what the report says about a rig.
    pub fn rig_info(&self, info: RigInfo) {
        let mut s = self.lock();
        match s
            .rigs
            .iter_mut()
            .find(|r| r.name == info.name && r.device == info.device)
        {
            Some(r) => *r = info,
            None => s.rigs.push(info),
        }
    }

    pub fn set_scratch(&self, dir: PathBuf) {
        self.lock().scratch = Some(dir);
    }

    /// Registers the run's devices in order (index = device index; each
    /// rig of [`RigFile::device_rigs`], a rig without `devices:` being one),
    /// before any bench is touched.
    pub fn add_rig(&self, rig: &RigFile) {
        let lease = rig::lease::LeaseOptions::for_rig(rig);
        self.lock().benches.push(Bench {
            rig: rig.unit_name(),
            power: None,
            after_run_on: rig.after_run.power == PowerState::On,
            // The bench's one lease, whichever of its devices this is.
            lease_file: lease.dir.join(format!("{}.lock", rig.name)),
        });
    }

    /// The power driver of a device's opened session, for the forced end.
    pub fn remember_power(&self, device_index: usize, power: SharedPower) {
        if let Some(b) = self.lock().benches.get_mut(device_index) {
            b.power = Some(power);
        }
    }

    /// The session closed the bench itself: nothing left for the forced end.
    pub fn forget_power(&self, device_index: usize) {
        if let Some(b) = self.lock().benches.get_mut(device_index) {
            b.power = None;
        }
    }

    /// A case starts on `rig` (on `device` of a rig with several, a pool
    /// when `pooled`): until it finishes, the report shows it interrupted.
    pub fn start_case(
        &self,
        rig: &str,
        device: Option<&str>,
        pooled: bool,
        case: &Case,
        artifacts: &Path,
    ) {
        let outcome = CaseOutcome {
            rig: rig.to_string(),
            device: device.map(str::to_string),
            pooled,
            case_id: case.id.clone(),
            title: case.title.clone(),
            file: case.file.clone(),
            ets: case.ets.clone(),
            verdict: Verdict::Interrupted,
            started: chrono::Local::now(),
            duration: Default::default(),
            step_log: String::new(),
            artifacts: artifacts.to_path_buf(),
            properties: Vec::new(),
            earlier_attempts: Vec::new(),
        };
        self.lock().running.push((outcome, Instant::now()));
    }

    pub fn finish_case(&self, outcome: CaseOutcome) {
        {
            let mut s = self.lock();
            s.running.retain(|(o, _)| {
                (&o.rig, &o.device, &o.case_id) != (&outcome.rig, &outcome.device, &outcome.case_id)
            });
            s.outcomes.push(outcome);
        }
        self.write_report();
    }

    /// Writes junit.xml with every finished case, and the running one as interrupted.
    pub fn write_report(&self) {
        let s = self.lock();
        let mut outcomes = s.outcomes.clone();
        for (o, t0) in &s.running {
            let mut o = o.clone();
            o.duration = t0.elapsed();
            outcomes.push(o);
        }
        let xml = junit::render(&s.run_id, Some(s.seed), &s.rigs, &outcomes);
        if let Err(e) = junit::write(&s.junit, &xml) {
            eprintln!("error: cannot write {}: {e}", s.junit.display());
        }
    }

    pub fn summary(&self) -> String {
        let s = self.lock();
        let count = |f: fn(&Verdict) -> bool| s.outcomes.iter().filter(|o| f(&o.verdict)).count();
        let datagrams: u64 = s
            .rigs
            .iter()
            .map(|r| r.datagrams_in + r.datagrams_out)
            .sum();
        // A pass after a bench error is flaky: never counted as a plain pass.
        let flaky = s
            .outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::Passed && !o.earlier_attempts.is_empty())
            .count();
        format!(
            "{} passed, {} flaky, {} failed, {} errors, {} skipped; {} datagrams exchanged",
            count(|v| matches!(v, Verdict::Passed)) - flaky,
            flaky,
            count(|v| matches!(v, Verdict::Failed { .. })),
            count(|v| matches!(v, Verdict::Error { .. } | Verdict::Interrupted)),
            count(|v| matches!(v, Verdict::Skipped { .. })),
            datagrams
        )
    }

    /// The forced end's bench work: power as each rig's `after_run` says
    /// where the driver is free (a driver stuck mid-command is left, and
    /// said so), then this process's leases removed.
    fn make_safe(&self) {
        let benches: Vec<(String, Option<SharedPower>, bool, PathBuf)> = self
            .lock()
            .benches
            .iter()
            .map(|b| {
                (
                    b.rig.clone(),
                    b.power.clone(),
                    b.after_run_on,
                    b.lease_file.clone(),
                )
            })
            .collect();
        // All devices at once: each may take FORCED_POWER_LIMIT, and a rig
        // of several must not take several times that to leave safe.
        std::thread::scope(|scope| {
            for (rig, power, on, _) in &benches {
                if let Some(p) = power {
                    scope.spawn(move || set_power_bounded(rig, p.clone(), *on));
                }
            }
        });
        for (rig, _, _, lease) in &benches {
            release_own_lease(rig, lease);
        }
    }
}

/// Sets `power` as `after_run` asks, giving up after [`FORCED_POWER_LIMIT`]:
/// the call runs on its own thread, so a driver that hangs is abandoned.
fn set_power_bounded(rig: &str, power: SharedPower, on: bool) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + FORCED_POWER_LIMIT;
        let result = loop {
            // try_lock: the step that holds the driver may never give it back.
            match power.try_lock() {
                Ok(mut p) => break Some(if on { p.on() } else { p.off() }),
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    let mut p = p.into_inner();
                    break Some(if on { p.on() } else { p.off() });
                }
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::sync::TryLockError::WouldBlock) => break None,
            }
        };
        let _ = done.send(result);
    });
    let state = if on { "on" } else { "off" };
    match finished.recv_timeout(FORCED_POWER_LIMIT + Duration::from_millis(500)) {
        Ok(Some(Ok(()))) => eprintln!("rig {rig}: power {state} (after_run)"),
        Ok(Some(Err(e))) => eprintln!("rig {rig}: power could not be set {state}: {e}"),
        _ => eprintln!(
            "rig {rig}: power could not be set {state}: its driver is busy in a call that does not return"
        ),
    }
}

/// Removes the rig's lease file when it names this process (host and pid):
/// a forced exit skips the lock's own release, and a waiter on another host
/// could otherwise only take the bench over once the lease expires.
fn release_own_lease(rig: &str, path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let Ok(record) = rig::lease::LeaseRecord::parse(&text, path) else {
        return;
    };
    if record.pid == std::process::id() && record.host == rig::lease::this_host() {
        match std::fs::remove_file(path) {
            Ok(()) => eprintln!("rig {rig}: lease released ({})", path.display()),
            Err(e) => eprintln!("rig {rig}: lease {} not released: {e}", path.display()),
        }
    }
}

/// Installs the Ctrl-C / SIGTERM handler on the runtime (see the module
/// docs for what each signal does).
pub fn install(runtime: &tokio::runtime::Runtime, state: RunState) {
    runtime.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        eprintln!("\n{name}: stopping the run; the bench is left as each rig's after_run says");
        state.request_stop();
        let why = tokio::select! {
            _ = tokio::time::sleep(GRACE) => format!("the run did not end within {GRACE:?}"),
            _ = int.recv() => "a second signal (SIGINT)".to_string(),
            _ = term.recv() => "a second signal (SIGTERM)".to_string(),
        };
        eprintln!("{why}: forced end");
        state.make_safe();
        state.write_report();
        // The page too: a run a CI job cancelled is the one people look at.
        let junit = state.lock().junit.clone();
        if let Some(run_dir) = junit.parent() {
            crate::report::html::write_for_run(run_dir);
        }
        if let Some(dir) = state.lock().scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
}
