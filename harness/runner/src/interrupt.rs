//! What the run has done so far, kept where a signal handler can reach it:
//! on Ctrl-C or SIGTERM the running case is reported as interrupted in a
//! valid junit.xml, every bench's power is cut, and the process exits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::case::Case;
use crate::report::{junit, CaseOutcome, RigInfo, Verdict};
use crate::session::SharedPower;

#[derive(Clone)]
pub struct RunState {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    junit: PathBuf,
    run_id: String,
    seed: u64,
    rigs: Vec<RigInfo>,
    outcomes: Vec<CaseOutcome>,
    running: Option<(CaseOutcome, Instant)>,
    powers: Vec<(usize, SharedPower)>,
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
                running: None,
                powers: Vec::new(),
                scratch: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or refreshes what the report says about a rig.
    pub fn rig_info(&self, info: RigInfo) {
        let mut s = self.lock();
        match s.rigs.iter_mut().find(|r| r.name == info.name) {
            Some(r) => *r = info,
            None => s.rigs.push(info),
        }
    }

    pub fn set_scratch(&self, dir: PathBuf) {
        self.lock().scratch = Some(dir);
    }

    pub fn remember_power(&self, rig_index: usize, power: SharedPower) {
        self.lock().powers.push((rig_index, power));
    }

    pub fn forget_power(&self, rig_index: usize) {
        self.lock().powers.retain(|(i, _)| *i != rig_index);
    }

    pub fn start_case(&self, rig: &str, case: &Case, artifacts: &Path) {
        let outcome = CaseOutcome {
            rig: rig.to_string(),
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
        self.lock().running = Some((outcome, Instant::now()));
    }

    pub fn finish_case(&self, outcome: CaseOutcome) {
        {
            let mut s = self.lock();
            s.running = None;
            s.outcomes.push(outcome);
        }
        self.write_report();
    }

    /// Writes junit.xml with every finished case, and the running one as interrupted.
    pub fn write_report(&self) {
        let s = self.lock();
        let mut outcomes = s.outcomes.clone();
        if let Some((o, t0)) = &s.running {
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

    /// One line per random power cut of the run, with its seed, so a failure can be replayed.
    pub fn cuts(&self) -> Vec<String> {
        let s = self.lock();
        let mut lines = Vec::new();
        for o in &s.outcomes {
            for (name, seed) in o.properties.iter().filter(|(n, _)| n.ends_with("_seed")) {
                let at = name.replace("_seed", "_at_ms");
                let at = o
                    .properties
                    .iter()
                    .find(|(n, _)| *n == at)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("?");
                lines.push(format!(
                    "{}::{} {name}: cut at {at} ms, seed {seed} (replay: --seed {})",
                    o.rig, o.case_id, s.seed
                ));
            }
        }
        lines
    }

    /// Cuts power on every bench that has a session.
    fn make_safe(&self) {
        let powers: Vec<SharedPower> = self.lock().powers.iter().map(|(_, p)| p.clone()).collect();
        for p in powers {
            // try_lock: a driver stuck mid-command must not keep us from exiting;
            // the virtual meter dies with its process group regardless.
            match p.try_lock() {
                Ok(mut p) => {
                    let _ = p.off();
                }
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    if let Ok(mut p) = p.try_lock() {
                        let _ = p.off();
                    }
                }
            }
        }
    }
}

/// Installs the Ctrl-C / SIGTERM handler on the runtime.
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
        eprintln!("\n{name}: stopping the run, cutting power, writing the report");
        state.make_safe();
        state.write_report();
        if let Some(dir) = state.lock().scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
}
