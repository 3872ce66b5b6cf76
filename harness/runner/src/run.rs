//! `meterbench run`: cases x rigs as libtest-mimic trials, a JUnit report that
//! is rewritten after every case (so an interrupted run still leaves valid
//! XML), and a bench left safe however the run ends.
//!
//! A rig with several devices (`devices:`, [`rig::devices`]) is one session
//! per device; its cases run on each device or on whichever of a pool is
//! free, up to its `parallel` at once, and `--jobs` rigs run side by side
//! ([`crate::device_pool`]).

use std::path::{Path as FsPath, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use libtest_mimic::{Failed, Trial};
use lwm2m::Registry;
use rig::devices::EachCase;
use rig::model::RigFile;

use crate::case::{load_cases, Case};
use crate::cli::RunArgs;
use crate::device_pool::{Pool, RigDevices, Want};
use crate::events::{CaseEvents, Event, EventLog, EventSink, RigRef};
use crate::interrupt::RunState;
use crate::progress::Display;
use crate::report::previous_times::PreviousTimes;
use crate::report::{CaseOutcome, RigInfo, RunDir, Verdict};
use crate::session::{Session, SessionConfig};
use crate::steps::{panic_message, run_case, CaseControl, CaseRun};

/// Exit code for unusable input (bad case or rig file), as the issue asks.
const EXIT_BAD_INPUT: u8 = 2;

pub fn main(mut args: RunArgs) -> ExitCode {
    // Load and check everything before any bench is touched.
    let rig_files = if args.rigs.is_empty() {
        vec![PathBuf::from("rigs/virtual.yaml")]
    } else {
        args.rigs.clone()
    };
    let mut rigs = Vec::new();
    for f in &rig_files {
        match RigFile::load(f) {
            Ok(r) => rigs.push(r),
            Err(e) => return bad_input(&e.to_string()),
        }
    }
    let vars: crate::case::Vars = args.vars.iter().cloned().collect();
    let cases = match load_cases(&args.cases, &vars) {
        Ok(c) => c,
        Err(e) => return bad_input(&e.to_string()),
    };
    // `--shard i/n`: this job's part of the cases (crate::shard says the rule).
    let cases = match crate::shard::Shard::from_flag_or_env(args.shard) {
        Ok(Some(shard)) => {
            let all = cases.len();
            let mine: Vec<Case> = cases
                .into_iter()
                .filter(|c| shard.contains(&c.id))
                .collect();
            eprintln!("shard {shard}: {} of {all} case(s)", mine.len());
            mine
        }
        Ok(None) => cases,
        Err(e) => return bad_input(&e.to_string()),
    };
    let registry = match Registry::load_dir(&args.fixtures.join("objects")) {
        Ok(r) => r,
        Err(e) => return bad_input(&e.to_string()),
    };
    // Every device of every rig (a rig without `devices:` is one), and
    // which rig each belongs to.
    let mut devices: Vec<RigFile> = Vec::new();
    let mut rig_devices = Vec::new();
    for r in &rigs {
        let first = devices.len();
        devices.extend(r.device_rigs());
        rig_devices.push(RigDevices {
            parallel: r.parallel(),
            devices: (first..devices.len()).collect(),
        });
    }
    let pool = Pool::new(rig_devices.clone(), args.jobs as usize);
    if args.test.test_threads.is_none() {
        // As many threads as devices may be busy at once; one without
        // `devices:` and `--jobs`, so cases on a rig run one after another.
        args.test.test_threads = Some(pool.threads());
    }
    let previous = PreviousTimes::load(&args.report_dir);
    let plan = plan(
        &rigs,
        &rig_devices,
        &devices,
        &cases,
        args.jobs as usize,
        &previous,
    );
    if args.test.list {
        let trials = trials(&plan, &cases, |_, _| Ok(()));
        return libtest_mimic::run(&args.test, trials).exit_code();
    }

    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    // A report folder that cannot be written is bad input: found before
    // any bench is touched.
    let run_dir = match RunDir::create(&args.report_dir) {
        Ok(d) => d,
        Err(e) => {
            return bad_input(&format!(
                "--report-dir {}: cannot create a run folder there: {e}",
                args.report_dir.display()
            ))
        }
    };
    let events_path = run_dir.path.join(crate::events::FILE_NAME);
    // The live display follows one case; cases side by side get plain lines.
    let display = match args.test.test_threads {
        Some(n) if n > 1 => Display::Plain(Default::default()),
        _ => Display::for_stderr(),
    };
    let event_log = match EventLog::create(&events_path, display) {
        Ok(log) => log,
        Err(e) => {
            return bad_input(&format!(
                "--report-dir {}: cannot write {}: {e}",
                args.report_dir.display(),
                events_path.display()
            ))
        }
    };
    let events = event_log.sink();
    let run_started = Instant::now();
    events.emit(Event::RunStart {
        run: run_dir.id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        seed,
        rigs: rigs
            .iter()
            .map(|r| RigRef::of(&r.name, &r.source))
            .collect(),
        cases: cases.len(),
    });
    let _ = run_dir.mark_latest();
    eprintln!(
        "meterbench run {} (seed {seed}): {} case(s) x {} rig(s), {} device(s)",
        run_dir.id,
        cases.len(),
        rigs.len(),
        devices.len()
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let state_root = std::env::temp_dir().join(format!("meterbench-{}", run_dir.id));
    let config = SessionConfig {
        run_id: run_dir.id.clone(),
        fixtures: args.fixtures.clone(),
        registry,
        state_root: state_root.clone(),
        meter_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("meterbench")),
        meter_args: vec!["sim-meter".into()],
        seed,
    };
    let state = RunState::new(run_dir.junit_path(), run_dir.id.clone(), seed);
    for d in &devices {
        state.add_rig(d);
        state.rig_info(RigInfo {
            name: d.name.clone(),
            device: d.device_name.clone(),
            file: d.source.clone(),
            endpoint: d.device.endpoint_for(&run_dir.id),
            ..Default::default()
        });
    }
    state.set_scratch(state_root.clone());
    crate::interrupt::install(&runtime, state.clone());

    let sessions: Vec<Arc<Mutex<SessionSlot>>> = devices
        .iter()
        .map(|_| Arc::new(Mutex::new(SessionSlot::NotOpened)))
        .collect();
    let ctx = Arc::new(TrialContext {
        runtime: runtime.clone(),
        config,
        state: state.clone(),
        run_dir,
        rigs: rigs.clone(),
        devices,
        pool,
        sessions: sessions.clone(),
        retries: args.retries,
        control: CaseControl {
            stop: Some(state.stop_signal()),
            fault: args.inject_fault,
            events: Default::default(),
        },
        events: events.clone(),
        verdicts: Mutex::new(Vec::new()),
    });

    let ctx2 = ctx.clone();
    let trials = trials(&plan, &cases, move |want, case| ctx2.run_trial(want, case));
    let conclusion = libtest_mimic::run(&args.test, trials);

    // Leave every bench as its rig file asks, then write the final report.
    // Every way a run ends comes here but the forced end of an interrupt
    // (crate::interrupt): passed, failed, timed out, a step that panicked,
    // a run asked to stop.
    for (i, slot) in sessions.iter().enumerate() {
        let taken = std::mem::replace(
            &mut *slot.lock().unwrap_or_else(|p| p.into_inner()),
            SessionSlot::Closed,
        );
        if let SessionSlot::Open(mut session) = taken {
            runtime.block_on(session.learn_firmware_after());
            state.rig_info(session.report_info());
            // A step that panicked holding the power driver poisoned its
            // lock; the driver itself is fine and after_run must still apply.
            if let Some(p) = &session.power {
                p.clear_poison();
            }
            runtime.block_on(session.close());
            state.forget_power(i);
        }
    }
    let _ = std::fs::remove_dir_all(&state_root);
    state.write_report();
    crate::report::html::write_for_run(&ctx.run_dir.path);
    events.emit(ctx.run_end(state.is_interrupted(), run_started));
    for line in event_log.finish() {
        eprintln!("power cut {line}");
    }
    let summary = state.summary();
    eprintln!("report: {} ({summary})", ctx.run_dir.junit_path().display());
    if state.is_interrupted() {
        return ExitCode::from(crate::interrupt::EXIT_INTERRUPTED);
    }
    conclusion.exit_code()
}

fn bad_input(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// One trial to be made: its name, where it runs and which case.
struct Planned {
    name: String,
    want: Want,
    case: usize,
}

/// The run's trials, in the order libtest-mimic hands them to its threads.
///
/// Per rig: each case on every device (`<rig>::<device>::<case-id>`;
/// `<rig>::<case-id>` on a rig of one device), device after device, so
/// that threads taking consecutive trials reach different devices; or, for
/// a pool (`each_case: any`), each case once (`<rig>::<case-id>`), longest
/// first: by its time on this rig in the last run, or its timeout when it
/// did not run there ([`PreviousTimes`]). A group case (`group:`) is one trial per rig,
/// `<rig>::group::<case-id>`, before the rig's other cases. Rigs are
/// dealt to `jobs` lanes (rig i to lane i mod jobs) that run side by side,
/// the rigs of a lane one after another, and the lanes' trials are
/// interleaved. Without `devices:` and `--jobs` this is today's order: rig
/// after rig, case after case.
fn plan(
    rigs: &[RigFile],
    rig_devices: &[RigDevices],
    devices: &[RigFile],
    cases: &[Case],
    jobs: usize,
    previous: &PreviousTimes,
) -> Vec<Planned> {
    let all_cases: Vec<usize> = (0..cases.len()).collect();
    let lanes = jobs.clamp(1, rigs.len().max(1));
    let mut lane_trials: Vec<Vec<Planned>> = (0..lanes).map(|_| Vec::new()).collect();
    for (ri, rig) in rigs.iter().enumerate() {
        let lane = &mut lane_trials[ri % lanes];
        let pool = rig.each_case() == EachCase::Any && rig.devices.is_some();
        // A pool's cases longest first: a long case started last would run
        // on alone while the other meters idle.
        let mut longest_first: Vec<usize> = (0..cases.len()).collect();
        longest_first.sort_by_key(|&ci| {
            let case = &cases[ci];
            std::cmp::Reverse(previous.of(&rig.name, &case.id).unwrap_or(case.timeout))
        });
        // Group cases first, while the rig is idle anyway: one started
        // later would have to wait for the rig to drain.
        for (ci, case) in cases.iter().enumerate() {
            if case.group.is_some() {
                lane.push(Planned {
                    name: format!("{}::group::{}", rig.name, case.id),
                    want: Want::Group { rig: ri },
                    case: ci,
                });
            }
        }
        for &ci in if pool { &longest_first } else { &all_cases } {
            let case = &cases[ci];
            if case.group.is_some() {
                continue;
            }
            if pool {
                lane.push(Planned {
                    name: format!("{}::{}", rig.name, case.id),
                    want: Want::AnyOf { rig: ri },
                    case: ci,
                });
                continue;
            }
            for &d in &rig_devices[ri].devices {
                let name = match &devices[d].device_name {
                    Some(device) => format!("{}::{device}::{}", rig.name, case.id),
                    None => format!("{}::{}", rig.name, case.id),
                };
                lane.push(Planned {
                    name,
                    want: Want::Device { rig: ri, device: d },
                    case: ci,
                });
            }
        }
    }
    let mut lanes: Vec<std::vec::IntoIter<Planned>> =
        lane_trials.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for lane in &mut lanes {
            out.extend(lane.next());
        }
        if out.len() == before {
            break out;
        }
    }
}

/// The planned trials as libtest-mimic trials.
fn trials<F>(plan: &[Planned], cases: &[Case], run: F) -> Vec<Trial>
where
    F: Fn(Want, &Case) -> Result<(), Failed> + Send + Sync + Clone + 'static,
{
    plan.iter()
        .map(|p| {
            let run = run.clone();
            let case = &cases[p.case];
            let c = case.clone();
            let want = p.want;
            Trial::test(p.name.clone(), move || run(want, &c))
                .with_kind(
                    case.file
                        .parent()
                        .and_then(|p| p.file_name())
                        .and_then(|n| n.to_str())
                        .unwrap_or("case")
                        .to_string(),
                )
                .with_ignored_flag(case.ignored)
        })
        .collect()
}

enum SessionSlot {
    NotOpened,
    Open(Box<Session>),
    /// Opening failed: every case on this device is a bench error with this reason.
    Broken(String),
    Closed,
}

struct TrialContext {
    runtime: Arc<tokio::runtime::Runtime>,
    config: SessionConfig,
    state: RunState,
    run_dir: RunDir,
    rigs: Vec<RigFile>,
    /// Every device of every rig, each as a rig of one device; `sessions`
    /// and the pool's device indices index it.
    devices: Vec<RigFile>,
    /// Which devices are busy ([`crate::device_pool`]).
    pool: Pool,
    sessions: Vec<Arc<Mutex<SessionSlot>>>,
    /// `--retries`: reruns of a case that ended in a bench error.
    retries: u32,
    /// The run's stop signal and `--inject-fault`, for every case.
    control: CaseControl,
    /// events.jsonl and the progress display.
    events: EventSink,
    /// Each finished case's verdict, for the `run_end` event.
    verdicts: Mutex<Vec<&'static str>>,
}

impl TrialContext {
    /// One trial. A panic outside the steps (the engine catches those in a
    /// step) still ends the case as a bench error in the report, and the
    /// run goes on: libtest would otherwise only print it.
    fn run_trial(&self, want: Want, case: &Case) -> Result<(), Failed> {
        // After Ctrl-C or SIGTERM no case starts: the report lists what ran.
        if self.state.is_interrupted() {
            return Err("not run: the run was interrupted".into());
        }
        if let Want::Group { rig } = want {
            let attempt = std::panic::AssertUnwindSafe(|| self.run_group_trial(rig, case));
            return std::panic::catch_unwind(attempt).unwrap_or_else(|payload| {
                let name = self.rigs[rig].name.clone();
                self.panicked_outside_steps(case, name, Some("group".into()), false, payload)
            });
        }
        let Some(taken) = self.pool.take(want, || self.state.is_interrupted()) else {
            return Err("not run: the run was interrupted".into());
        };
        let device = taken.device;
        let attempt = std::panic::AssertUnwindSafe(|| self.run_case_on_device(device, case));
        std::panic::catch_unwind(attempt).unwrap_or_else(|payload| {
            let unit = &self.devices[device];
            self.panicked_outside_steps(
                case,
                unit.name.clone(),
                unit.device_name.clone(),
                self.pooled(device),
                payload,
            )
        })
    }

    /// A panic outside the steps ends the case as a bench error in the
    /// report and the run's events, like any other bench error.
    fn panicked_outside_steps(
        &self,
        case: &Case,
        rig: String,
        device: Option<String>,
        pooled: bool,
        payload: Box<dyn std::any::Any + Send>,
    ) -> Result<(), Failed> {
        let message = format!(
            "{}: meterbench panicked outside a step: {}",
            case.file.display(),
            panic_message(payload.as_ref())
        );
        let verdict = Verdict::Error {
            message: message.clone(),
        };
        let events =
            self.events
                .for_case(&rig, device.as_deref(), pooled, case, &self.run_dir.path);
        self.case_ended(&events, &verdict, Default::default());
        self.state.finish_case(CaseOutcome {
            rig,
            device,
            pooled,
            case_id: case.id.clone(),
            title: case.title.clone(),
            file: case.file.clone(),
            ets: case.ets.clone(),
            verdict,
            started: chrono::Local::now(),
            duration: Default::default(),
            step_log: String::new(),
            artifacts: self.run_dir.path.clone(),
            properties: Vec::new(),
            earlier_attempts: Vec::new(),
        });
        Err(format!("bench error: {message}").into())
    }

    /// Whether `device` belongs to a pool (`each_case: any`): its cases are
    /// named by the rig alone.
    fn pooled(&self, device: usize) -> bool {
        let unit = &self.devices[device];
        unit.device_name.is_some()
            && self
                .rigs
                .iter()
                .find(|r| r.name == unit.name && r.source == unit.source)
                .is_some_and(|r| r.each_case() == EachCase::Any)
    }

    fn run_case_on_device(&self, device: usize, case: &Case) -> Result<(), Failed> {
        let rig = &self.devices[device];
        let device_name = rig.device_name.as_deref();
        let pooled = self.pooled(device);
        // How messages name the trial: `<rig>`, or `<rig>::<device>` when
        // the case runs on each device.
        let who = match device_name {
            Some(d) if !pooled => format!("{}::{d}", rig.name),
            _ => rig.name.clone(),
        };
        // `<rig>/<case>`, as on a rig of one device, when the case runs
        // once (a pool); `<rig>/<device>/<case>` when it runs on each.
        let folder = match device_name {
            Some(d) if !pooled => format!("{}/{d}", rig.name),
            _ => rig.name.clone(),
        };
        let artifacts = self
            .run_dir
            .case_dir(&folder, &case.id)
            .unwrap_or_else(|_| self.run_dir.path.clone());
        let started = chrono::Local::now();
        let mut earlier_attempts = Vec::new();
        let t0 = Instant::now();
        self.state
            .start_case(&rig.name, device_name, pooled, case, &artifacts);
        let events = self
            .events
            .for_case(&rig.name, device_name, pooled, case, &artifacts);
        events.emit(Event::CaseStart {
            title: case.title.clone(),
            file: case.file.display().to_string(),
            timeout_ms: case.timeout.as_millis() as u64,
        });
        let control = CaseControl {
            events: events.clone(),
            ..self.control.clone()
        };

        let mut slot = self.sessions[device]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.open_slot(device, &mut slot);
        let (verdict, step_log, properties) = match &mut *slot {
            SessionSlot::Open(session) => {
                let marks = ArtifactMarks::take(session);
                session.start_rtt_case();
                let current = crate::measure::CaseCurrent::start(
                    session.supply.as_ref(),
                    crate::measure::SAMPLE_INTERVAL,
                );
                let mut attempts = Attempts::new(started, t0, self.retries);
                let mut run = self.runtime.block_on(run_case(session, case, &control));
                // Only the bench's fault is retried; a device failure never is.
                while attempts.rerun(&format!("{who}::{}", case.id), &mut run, &events) {
                    run = self.runtime.block_on(run_case(session, case, &control));
                }
                earlier_attempts = attempts.earlier;
                session.finish_rtt_case(&artifacts);
                marks.write(session, &artifacts, &run.step_log);
                marks.emit_datagrams(session, &events);
                self.state.rig_info(session.report_info());
                let mut properties = run.properties;
                properties.extend(current.finish(&artifacts));
                for m in crate::events::measurements(&properties) {
                    events.emit(m);
                }
                (run.verdict, run.step_log, properties)
            }
            SessionSlot::Broken(reason) => (
                Verdict::Error {
                    message: match device_name {
                        Some(d) => {
                            format!("rig {} device {d} could not be set up: {reason}", rig.name)
                        }
                        None => format!("rig {} could not be set up: {reason}", rig.name),
                    },
                },
                String::new(),
                Vec::new(),
            ),
            SessionSlot::NotOpened | SessionSlot::Closed => (
                Verdict::Error {
                    message: "rig session closed".into(),
                },
                String::new(),
                Vec::new(),
            ),
        };
        drop(slot);
        self.case_ended(&events, &verdict, t0.elapsed());

        let outcome = CaseOutcome {
            rig: rig.name.clone(),
            device: rig.device_name.clone(),
            pooled,
            case_id: case.id.clone(),
            title: case.title.clone(),
            file: case.file.clone(),
            ets: case.ets.clone(),
            verdict: verdict.clone(),
            started,
            duration: t0.elapsed(),
            step_log,
            artifacts,
            properties,
            earlier_attempts,
        };
        self.state.finish_case(outcome);
        match verdict {
            Verdict::Passed => Ok(()),
            Verdict::Skipped { reason } => {
                eprintln!("{who}::{} skipped: {reason}", case.id);
                Ok(())
            }
            Verdict::Failed { message, .. } => Err(message.into()),
            Verdict::Error { message } => Err(format!("bench error: {message}").into()),
            Verdict::Interrupted => Err("interrupted".into()),
        }
    }
}

impl TrialContext {
    /// Opens `device`'s session on its first case.
    fn open_slot(&self, device: usize, slot: &mut SessionSlot) {
        if let SessionSlot::NotOpened = slot {
            let rig = &self.devices[device];
            *slot = match self
                .runtime
                .block_on(Session::open(rig.clone(), &self.config))
            {
                Ok(mut s) => {
                    if let Some(p) = &s.power {
                        self.state.remember_power(device, p.clone());
                    }
                    // A case never runs against the wrong board (`device.identity`).
                    match crate::rig_check::before_first_case(&mut s) {
                        Ok(()) => SessionSlot::Open(Box::new(s)),
                        Err(reason) => {
                            self.runtime.block_on(s.close());
                            SessionSlot::Broken(reason.to_string())
                        }
                    }
                }
                Err(e) => SessionSlot::Broken(e.to_string()),
            };
        }
    }

    /// A group case on rig `rig_index`: every device of the rig taken at
    /// once, each device's session handed to the case
    /// ([`crate::steps::kinds::group_case`]). One testcase,
    /// `<rig>::group::<case-id>`; its artifacts (the group's step log,
    /// `campaign.csv`, one capture of all members) in `<rig>/<case-id>/`
    /// (`<rig>/group/<case-id>/` when cases run on every device), with a
    /// folder per member for what each device's servers and bench
    /// recorded. A rig with fewer devices than the case needs skips it.
    fn run_group_trial(&self, rig_index: usize, case: &Case) -> Result<(), Failed> {
        use crate::steps::kinds::group_case::run_group_case;
        let rig = &self.rigs[rig_index];
        let need = case.group.map_or(2, |g| g.min);
        // Beside the rig's other cases: `<rig>/<case-id>` on a pool, whose
        // cases are one folder each, `<rig>/group/<case-id>` beside the
        // devices' folders when each case runs on every device.
        let folder = if rig.each_case() == EachCase::Any {
            rig.name.clone()
        } else {
            format!("{}/group", rig.name)
        };
        let artifacts = self
            .run_dir
            .case_dir(&folder, &case.id)
            .unwrap_or_else(|_| self.run_dir.path.clone());
        let group = Some("group");
        let started = chrono::Local::now();
        let t0 = Instant::now();
        let finish = |verdict: Verdict,
                      step_log: String,
                      properties: Vec<(String, String)>,
                      earlier_attempts: Vec<crate::report::EarlierAttempt>| {
            let events = self
                .events
                .for_case(&rig.name, group, false, case, &artifacts);
            let _ = std::fs::write(artifacts.join("steps.log"), &step_log);
            self.case_ended(&events, &verdict, t0.elapsed());
            self.state.finish_case(CaseOutcome {
                rig: rig.name.clone(),
                device: group.map(str::to_string),
                pooled: false,
                case_id: case.id.clone(),
                title: case.title.clone(),
                file: case.file.clone(),
                ets: case.ets.clone(),
                verdict: verdict.clone(),
                started,
                duration: t0.elapsed(),
                step_log,
                artifacts: artifacts.clone(),
                properties,
                earlier_attempts,
            });
            match verdict {
                Verdict::Passed => Ok(()),
                Verdict::Skipped { reason } => {
                    eprintln!("{}::group::{} skipped: {reason}", rig.name, case.id);
                    Ok(())
                }
                Verdict::Failed { message, .. } => Err(message.into()),
                Verdict::Error { message } => Err(format!("bench error: {message}").into()),
                Verdict::Interrupted => Err("interrupted".into()),
            }
        };
        let devices = self.pool_rig_devices(rig_index);
        let count = devices.len();
        // The JUnit has a testsuite per rig and device: a group's cases
        // are the suite `<rig>::group`, its endpoint the members'.
        self.state.rig_info(RigInfo {
            name: rig.name.clone(),
            device: group.map(str::to_string),
            file: rig.source.clone(),
            endpoint: devices
                .iter()
                .map(|&d| self.devices[d].device.endpoint_for(&self.run_dir.id))
                .collect::<Vec<_>>()
                .join(" "),
            ..Default::default()
        });
        self.state
            .start_case(&rig.name, group, false, case, &artifacts);
        let events = self
            .events
            .for_case(&rig.name, group, false, case, &artifacts);
        let case_start = || Event::CaseStart {
            title: case.title.clone(),
            file: case.file.display().to_string(),
            timeout_ms: case.timeout.as_millis() as u64,
        };
        if count < need {
            events.emit(case_start());
            let reason = format!(
                "rig {} has {count} device(s); the case needs a group of at least {need}",
                rig.name
            );
            return finish(
                Verdict::Skipped { reason },
                String::new(),
                Vec::new(),
                Vec::new(),
            );
        }
        let Some(taken) = self
            .pool
            .take_group(rig_index, || self.state.is_interrupted())
        else {
            return finish(Verdict::Interrupted, String::new(), Vec::new(), Vec::new());
        };
        // Started once it has its devices, not while it waits for them.
        events.emit(case_start());
        let control = CaseControl {
            events: events.clone(),
            ..self.control.clone()
        };
        // Slots locked in the rig's device order; the pool already gave
        // this trial every one of them.
        let mut slots: Vec<_> = taken
            .devices
            .iter()
            .map(|&d| {
                let mut slot = self.sessions[d].lock().unwrap_or_else(|p| p.into_inner());
                self.open_slot(d, &mut slot);
                (d, slot)
            })
            .collect();
        let broken: Vec<String> = slots
            .iter()
            .filter_map(|(d, slot)| match &**slot {
                SessionSlot::Open(_) => None,
                SessionSlot::Broken(reason) => Some(format!(
                    "device {} could not be set up: {reason}",
                    self.member_name(*d)
                )),
                _ => Some(format!("device {}: session closed", self.member_name(*d))),
            })
            .collect();
        if !broken.is_empty() {
            let message = format!("rig {}: {}", rig.name, broken.join("; "));
            drop(slots);
            return finish(
                Verdict::Error { message },
                String::new(),
                Vec::new(),
                Vec::new(),
            );
        }
        let mut marks = Vec::new();
        for (_, slot) in slots.iter_mut() {
            if let SessionSlot::Open(session) = &mut **slot {
                marks.push(ArtifactMarks::take(session));
                session.start_rtt_case();
            }
        }
        let mut members = self.group_members(&mut slots, case, &control);
        let mut run = self
            .runtime
            .block_on(run_group_case(&mut members, case, &control));
        // `--retries`, as for a single device's case: only the bench's
        // fault is retried, never a device failure; each rerun is a new
        // attempt of the whole group, and a pass after one is flaky.
        let mut attempts = Attempts::new(started, t0, self.retries);
        let who = format!("{}::group::{}", rig.name, case.id);
        while attempts.rerun(&who, &mut run, &events) {
            drop(members);
            members = self.group_members(&mut slots, case, &control);
            run = self
                .runtime
                .block_on(run_group_case(&mut members, case, &control));
        }
        // The whole group's traffic in one capture (each member's own is
        // in its folder): Wireshark shows the campaign's downloads side by side.
        let mut captured = Vec::new();
        for (m, mark) in members.iter_mut().zip(&marks) {
            let dir = artifacts.join(&m.name);
            let _ = std::fs::create_dir_all(&dir);
            m.session.finish_rtt_case(&dir);
            mark.write(m.session, &dir, &m.ctx.log);
            mark.emit_datagrams(m.session, &events);
            captured.extend(m.session.server.capture().since(mark.capture_index));
            if let Some(bs) = &m.session.bootstrap {
                captured.extend(bs.capture().since(mark.bootstrap_capture_index));
            }
            self.state.rig_info(m.session.report_info());
        }
        if let Err(e) = server::write_case_captures(&artifacts, captured) {
            tracing::warn!(error = %e, "group capture not written");
        }
        drop(members);
        drop(slots);
        drop(taken);
        for m in crate::events::measurements(&run.properties) {
            events.emit(m);
        }
        finish(run.verdict, run.step_log, run.properties, attempts.earlier)
    }

    /// A group case's members, one per open session, each with a new case
    /// context: every attempt of the case starts afresh on the same
    /// sessions (the artifacts cover every attempt, as a single device's
    /// case's do).
    fn group_members<'s>(
        &self,
        slots: &'s mut [(usize, std::sync::MutexGuard<'_, SessionSlot>)],
        case: &Case,
        control: &CaseControl,
    ) -> Vec<crate::steps::kinds::group_case::Member<'s>> {
        let mut members = Vec::new();
        for (d, slot) in slots.iter_mut() {
            if let SessionSlot::Open(session) = &mut **slot {
                members.push(crate::steps::kinds::group_case::Member::new(
                    self.member_name(*d),
                    session,
                    case,
                    control,
                ));
            }
        }
        members
    }

    /// The run's device indices of rig `rig_index`.
    fn pool_rig_devices(&self, rig_index: usize) -> Vec<usize> {
        let rig = &self.rigs[rig_index];
        (0..self.devices.len())
            .filter(|&d| self.devices[d].name == rig.name && self.devices[d].source == rig.source)
            .collect()
    }

    /// How a group case names a member: the device's name in the rig.
    fn member_name(&self, device: usize) -> String {
        let unit = &self.devices[device];
        unit.device_name
            .clone()
            .unwrap_or_else(|| unit.name.clone())
    }
}

/// `<name>-messages.log` (the log holds redacted bytes).
fn write_message_log(dir: &FsPath, name: &str, entries: &[server::LogEntry]) {
    let log: String = entries.iter().map(|e| e.to_line() + "\n").collect();
    let _ = std::fs::write(dir.join(format!("{name}-messages.log")), log);
}

/// The firmware file servers' CoAP exchange (plain, or decrypted under
/// coaps) as message-log entries, so the report draws a pull's blocks
/// against time as it draws the LwM2M server's: every captured CoAP
/// datagram that neither the LwM2M nor the bootstrap server (`servers`)
/// sent or received. A file server answers requests: a request came in to
/// it, anything else went out.
fn file_server_entries(
    captured: &[server::CapturedDatagram],
    servers: &[std::net::SocketAddr],
) -> Vec<server::LogEntry> {
    captured
        .iter()
        .filter(|d| d.carried != server::Carried::Dtls)
        .filter(|d| !servers.contains(&d.from) && !servers.contains(&d.to))
        .map(|d| {
            let request = matches!(d.bytes.get(1), Some(&code) if code != 0 && code >> 5 == 0);
            let (direction, peer) = if request {
                (server::Direction::In, d.from)
            } else {
                (server::Direction::Out, d.to)
            };
            server::LogEntry {
                index: d.index,
                time: d.time,
                direction,
                peer,
                summary: server::summarize(&d.bytes),
                bytes: d.bytes.clone(),
                send_error: None,
            }
        })
        .collect()
}

impl TrialContext {
    /// The `case_end` event, and the verdict kept for `run_end`.
    fn case_ended(&self, events: &CaseEvents, verdict: &Verdict, took: std::time::Duration) {
        let name = crate::events::verdict_name(verdict);
        events.emit(Event::CaseEnd {
            verdict: name,
            duration_ms: took.as_millis() as u64,
            message: crate::events::verdict_message(verdict),
        });
        self.events.flush();
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name);
    }

    fn run_end(&self, interrupted: bool, started: Instant) -> Event {
        let verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        let count = |names: &[&str]| verdicts.iter().filter(|v| names.contains(v)).count();
        Event::RunEnd {
            passed: count(&["passed"]),
            failed: count(&["failed"]),
            errors: count(&["error", "interrupted"]),
            skipped: count(&["skipped"]),
            interrupted,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// Where each artifact stood when a case began, so its files hold only that case.
struct ArtifactMarks {
    log_index: usize,
    bootstrap_log_index: usize,
    /// The LwM2M server's capture (its file servers' too) and the bootstrap server's.
    capture_index: usize,
    bootstrap_capture_index: usize,
    transcript_len: usize,
    device_log_len: u64,
    power_trace: usize,
}

impl ArtifactMarks {
    fn take(session: &Session) -> Self {
        ArtifactMarks {
            log_index: session.server.log_len(),
            bootstrap_log_index: session.bootstrap.as_ref().map(|b| b.log_len()).unwrap_or(0),
            capture_index: session.server.capture().len(),
            bootstrap_capture_index: session
                .bootstrap
                .as_ref()
                .map(|b| b.capture().len())
                .unwrap_or(0),
            transcript_len: session
                .modem
                .as_ref()
                .map(|m| m.transcript().len())
                .unwrap_or(0),
            device_log_len: session
                .device_log
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .unwrap_or(0),
            power_trace: session.power_trace_mark(),
        }
    }

    /// A `datagrams` event per embedded server the case talked to.
    fn emit_datagrams(&self, session: &Session, events: &CaseEvents) {
        let servers = [
            ("lwm2m", session.server.log_since(self.log_index)),
            (
                "bootstrap",
                session
                    .bootstrap
                    .as_ref()
                    .map(|b| b.log_since(self.bootstrap_log_index))
                    .unwrap_or_default(),
            ),
        ];
        for (server, entries) in servers {
            if server == "bootstrap" && entries.is_empty() {
                continue;
            }
            let of = |d: server::Direction| entries.iter().filter(move |e| e.direction == d);
            events.emit(Event::Datagrams {
                server,
                received: of(server::Direction::In).count(),
                sent: of(server::Direction::Out).count(),
                bytes_received: of(server::Direction::In).map(|e| e.len()).sum(),
                bytes_sent: of(server::Direction::Out).map(|e| e.len()).sum(),
                send_errors: entries.iter().filter(|e| e.send_error.is_some()).count(),
                notes: of(server::Direction::Note).count(),
            });
        }
    }

    fn write(&self, session: &mut Session, dir: &FsPath, step_log: &str) {
        let entries = session.server.log_since(self.log_index);
        write_message_log(dir, "lwm2m", &entries);
        let mut captured = session.server.capture().since(self.capture_index);
        if let Some(bs) = &session.bootstrap {
            let entries = bs.log_since(self.bootstrap_log_index);
            if !entries.is_empty() {
                write_message_log(dir, "bootstrap", &entries);
            }
            captured.extend(bs.capture().since(self.bootstrap_capture_index));
        }
        let mut servers = vec![session.server.local_addr()];
        servers.extend(session.bootstrap.as_ref().map(|b| b.local_addr()));
        let firmware = file_server_entries(&captured, &servers);
        if !firmware.is_empty() {
            write_message_log(dir, "firmware", &firmware);
        }
        if let Err(e) = server::write_case_captures(dir, captured) {
            tracing::warn!(error = %e, "case capture not written");
        }
        if let Some(m) = &session.modem {
            let _ = std::fs::write(
                dir.join("at-transcript.txt"),
                m.transcript().since(self.transcript_len).to_text(),
            );
        }
        if let Some(p) = &session.device_log {
            if let Ok(bytes) = std::fs::read(p) {
                let from = (self.device_log_len as usize).min(bytes.len());
                let _ = std::fs::write(dir.join("device.log"), &bytes[from..]);
            }
        }
        let _ = std::fs::write(dir.join("steps.log"), step_log);
        session.write_power_log(dir, self.power_trace);
        // What the debug port says, independent of what the device says over LwM2M.
        if let Some(debug) = session.debug.as_mut() {
            let text = match debug.read_state() {
                Ok(state) => state.iter().map(|(k, v)| format!("{k}: {v}\n")).collect(),
                Err(e) => format!("debug port could not be read: {e}\n"),
            };
            let _ = std::fs::write(dir.join("debug-state.txt"), text);
        }
    }
}

/// `--retries`: the attempts of one case. Only the bench's fault is
/// retried, never a device failure; each earlier attempt keeps its message,
/// time and step log for the report, where a pass after one is flaky.
struct Attempts {
    earlier: Vec<crate::report::EarlierAttempt>,
    started: chrono::DateTime<chrono::Local>,
    t0: Instant,
    retries: u32,
}

impl Attempts {
    fn new(started: chrono::DateTime<chrono::Local>, t0: Instant, retries: u32) -> Self {
        Attempts {
            earlier: Vec::new(),
            started,
            t0,
            retries,
        }
    }

    /// After an attempt: when it ended in a bench error and a rerun is
    /// left, records it (a line on stderr, a `case_retry` event) and says
    /// to run the case again.
    fn rerun(&mut self, who: &str, run: &mut CaseRun, events: &CaseEvents) -> bool {
        let Verdict::Error { message } = &run.verdict else {
            return false;
        };
        if self.earlier.len() >= self.retries as usize {
            return false;
        }
        eprintln!(
            "{who} bench error, rerun {} of {}: {message}",
            self.earlier.len() + 1,
            self.retries
        );
        events.emit(Event::CaseRetry {
            attempt: self.earlier.len() as u32 + 2,
            message: message.clone(),
        });
        self.earlier.push(crate::report::EarlierAttempt {
            message: message.clone(),
            started: self.started,
            duration: self.t0.elapsed(),
            step_log: std::mem::take(&mut run.step_log),
        });
        self.started = chrono::Local::now();
        self.t0 = Instant::now();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::{CapturedDatagram, Carried};

    fn datagram(
        index: usize,
        from: u16,
        to: u16,
        carried: Carried,
        bytes: &[u8],
    ) -> CapturedDatagram {
        CapturedDatagram {
            index,
            time: chrono::Utc::now(),
            from: std::net::SocketAddr::from(([127, 0, 0, 1], from)),
            to: std::net::SocketAddr::from(([127, 0, 0, 1], to)),
            carried,
            bytes: bytes.to_vec(),
        }
    }

    /// The device at port 1, the LwM2M server at 5683, a CoAPS file server
    /// at 7000: only the file server's CoAP becomes its log, a GET as `in`
    /// from the device, the 2.05 as `out` to it.
    #[test]
    fn the_file_servers_coap_becomes_its_message_log() {
        let servers = [std::net::SocketAddr::from(([127, 0, 0, 1], 5683))];
        // CON GET mid 1, no token; ACK 2.05 mid 1.
        let get = [0x40, 0x01, 0x00, 0x01];
        let content = [0x60, 0x45, 0x00, 0x01];
        let captured = [
            datagram(0, 1, 5683, Carried::DecryptedCoap, &get),
            datagram(1, 1, 7000, Carried::Dtls, &[0x17, 0xfe, 0xfd]),
            datagram(2, 1, 7000, Carried::DecryptedCoap, &get),
            datagram(3, 7000, 1, Carried::DecryptedCoap, &content),
        ];
        let log = file_server_entries(&captured, &servers);
        let seen: Vec<_> = log
            .iter()
            .map(|e| (e.index, e.direction, e.peer.port()))
            .collect();
        assert_eq!(
            seen,
            [
                (2, server::Direction::In, 1),
                (3, server::Direction::Out, 1)
            ]
        );
        assert!(log[0].to_line().contains("CON GET"), "{}", log[0].to_line());
        assert!(log[1].to_line().contains("2.05"), "{}", log[1].to_line());
    }
}
