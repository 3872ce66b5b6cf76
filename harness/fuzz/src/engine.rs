//! Running inputs: each under `catch_unwind` with its panic message and
//! location captured, timed against a per-input budget, on a worker thread
//! that a watchdog (the calling thread) ends the process for when one input
//! runs far past any reasonable time — a real hang cannot be unwound.
//!
//! Findings are deduplicated by where they happen (the panic's file:line),
//! so a pass reports each bug once with the first input that showed it and
//! a count; each is written as `<target>-<hash>.bin` (the input) and
//! `<target>-<hash>.txt` (what happened, how to replay).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::mutate::Mutator;
use crate::rng::{fnv1a, Rng};
use crate::targets::Target;

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct PassConfig {
    pub seed: u64,
    /// Inputs per target.
    pub inputs: u64,
    /// Stop a target earlier once this much time has passed.
    pub time_limit: Option<Duration>,
    /// An input slower than this (twice: it is run again to rule out a
    /// busy machine) is reported as a hang.
    pub slow: Duration,
    /// An input still running after this long is a hang: the watchdog
    /// writes it out and aborts the process.
    pub hang: Duration,
    /// Where findings are written; `None`: only reported.
    pub crash_dir: Option<PathBuf>,
    /// Each input is written here before it runs, so that one that kills
    /// the process (stack overflow, out of memory) can be found.
    pub keep_last: Option<PathBuf>,
}

impl PassConfig {
    /// Budgets for this build: debug builds run an order of magnitude slower.
    pub fn new(seed: u64, inputs: u64) -> Self {
        let scale = if cfg!(debug_assertions) { 20 } else { 1 };
        PassConfig {
            seed,
            inputs,
            time_limit: None,
            slow: Duration::from_secs(1) * scale,
            hang: Duration::from_secs(10) * scale,
            crash_dir: None,
            keep_last: None,
        }
    }
}

/// What one input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(Duration),
    Panic { message: String, location: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    Panic,
    Hang,
}

/// One distinct bug a pass found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    pub message: String,
    /// `file:line:column` of the panic; empty for a hang.
    pub location: String,
    /// The first input that showed it.
    pub input: Vec<u8>,
    /// Its index in the pass (with the seed, it replays the pass up to it).
    pub index: u64,
    /// Inputs that showed it.
    pub count: u64,
    /// Where the input was written.
    pub file: Option<PathBuf>,
}

/// The figures of one target's pass.
#[derive(Debug, Clone)]
pub struct TargetReport {
    pub target: &'static str,
    pub inputs: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    /// Inputs that panicked.
    pub panics: u64,
    /// Inputs over the time budget.
    pub hangs: u64,
    pub findings: Vec<Finding>,
}

impl TargetReport {
    pub fn inputs_per_second(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that, on threads running inputs, records
/// the message and location instead of printing them; other threads keep
/// the previous hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".into());
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                CAUGHT.with(|c| *c.borrow_mut() = Some((message, location)));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one input on this thread.
pub fn run_input(target: &Target, input: &[u8]) -> Outcome {
    install_hook();
    CAPTURING.with(|c| c.set(true));
    let start = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let elapsed = start.elapsed();
    CAPTURING.with(|c| c.set(false));
    match result {
        Ok(()) => Outcome::Ok(elapsed),
        Err(_) => {
            let (message, location) = CAUGHT
                .with(|c| c.borrow_mut().take())
                .unwrap_or_else(|| ("(panic hook did not run)".into(), String::new()));
            Outcome::Panic { message, location }
        }
    }
}

/// Reads every file of `dir` (sorted by name, so a pass is reproducible);
/// a missing directory is an empty corpus.
pub fn load_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.extension().is_some_and(|x| x == "txt" || x == "md"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes)))
        .collect()
}

/// What the worker publishes for the watchdog.
struct Current {
    index: u64,
    started: Instant,
    input: Vec<u8>,
    running: bool,
}

/// Runs `config.inputs` generated inputs (fewer if the time limit comes
/// first) against `target`, starting from `corpus`.
pub fn run_target(target: &Target, corpus: &[Vec<u8>], config: &PassConfig) -> TargetReport {
    let current = Mutex::new(Current {
        index: 0,
        started: Instant::now(),
        input: Vec::new(),
        running: false,
    });
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name(format!("fuzz-{}", target.name))
            // What a tokio worker gets: deep recursion that would kill the
            // server kills the pass too.
            .stack_size(2 * 1024 * 1024)
            .spawn_scoped(scope, || work(target, corpus, config, &current))
            .expect("spawn the fuzz worker");
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            let hung = {
                let c = current.lock().unwrap_or_else(|e| e.into_inner());
                (c.running && c.started.elapsed() > config.hang)
                    .then(|| (c.index, c.started.elapsed(), c.input.clone()))
            };
            if let Some((index, ran, input)) = hung {
                watchdog_abort(target, config, index, ran, &input);
            }
        }
        worker.join().expect("the fuzz worker catches every panic")
    })
}

fn watchdog_abort(
    target: &Target,
    config: &PassConfig,
    index: u64,
    ran: Duration,
    input: &[u8],
) -> ! {
    let finding = Finding {
        kind: FindingKind::Hang,
        message: format!("input still running after {ran:?} (watchdog)"),
        location: String::new(),
        input: input.to_vec(),
        index,
        count: 1,
        file: None,
    };
    let file = config
        .crash_dir
        .as_deref()
        .and_then(|dir| save(dir, target.name, &finding, config.seed).ok());
    eprintln!(
        "fuzz: HANG in target {}: input {index} (seed {}) still running after {ran:?}; {}",
        target.name,
        config.seed,
        file.map_or("not saved (no crash directory)".to_string(), |f| format!(
            "saved to {}",
            f.display()
        )),
    );
    let _ = std::io::stderr().flush();
    std::process::abort();
}

fn work(
    target: &Target,
    corpus: &[Vec<u8>],
    config: &PassConfig,
    current: &Mutex<Current>,
) -> TargetReport {
    let mutator = Mutator {
        corpus,
        dictionary: target.dictionary,
        max_len: target.max_len,
        framed: target.framed,
    };
    let mut rng = Rng::for_target(config.seed, target.name);
    let mut findings: BTreeMap<(FindingKind, String), Finding> = BTreeMap::new();
    let (mut panics, mut hangs) = (0, 0);
    let start = Instant::now();
    let mut index = 0;
    while index < config.inputs {
        if index % 64 == 0
            && config
                .time_limit
                .is_some_and(|limit| start.elapsed() >= limit)
        {
            break;
        }
        let input = mutator.generate(&mut rng);
        {
            let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
            c.index = index;
            c.started = Instant::now();
            c.input.clear();
            c.input.extend_from_slice(&input);
            c.running = true;
        }
        if let Some(path) = &config.keep_last {
            let _ = std::fs::write(path, &input);
        }
        let outcome = run_input(target, &input);
        current.lock().unwrap_or_else(|e| e.into_inner()).running = false;
        let found = match outcome {
            Outcome::Ok(t) if t > config.slow => {
                // Once more, to tell a slow input from a busy machine.
                match run_input(target, &input) {
                    Outcome::Ok(again) if again > config.slow => {
                        hangs += 1;
                        Some((
                            FindingKind::Hang,
                            format!("input took {t:?} and {again:?} (budget {:?})", config.slow),
                            String::new(),
                        ))
                    }
                    _ => None,
                }
            }
            Outcome::Ok(_) => None,
            Outcome::Panic { message, location } => {
                panics += 1;
                Some((FindingKind::Panic, message, location))
            }
        };
        if let Some((kind, message, location)) = found {
            let key = (kind, location.clone());
            findings
                .entry(key)
                .and_modify(|f| f.count += 1)
                .or_insert_with(|| {
                    let mut f = Finding {
                        kind,
                        message,
                        location,
                        input: input.clone(),
                        index,
                        count: 1,
                        file: None,
                    };
                    if let Some(dir) = &config.crash_dir {
                        f.file = save(dir, target.name, &f, config.seed).ok();
                    }
                    f
                });
        }
        index += 1;
    }
    TargetReport {
        target: target.name,
        inputs: index,
        elapsed: start.elapsed(),
        corpus: corpus.len(),
        panics,
        hangs,
        findings: findings.into_values().collect(),
    }
}

/// Writes a finding's input and a note beside it; returns the input's path.
pub fn save(dir: &Path, target: &str, f: &Finding, seed: u64) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stem = format!("{target}-{:016x}", fnv1a(&f.input));
    let bin = dir.join(format!("{stem}.bin"));
    std::fs::write(&bin, &f.input)?;
    let kind = match f.kind {
        FindingKind::Panic => "panic",
        FindingKind::Hang => "hang",
    };
    let note = format!(
        "target: {target}\nkind: {kind}\nmessage: {}\nlocation: {}\nseed: {seed}\ninput index: {}\n\
         replay: cargo run --release -p fuzz -- --replay {}\n",
        f.message,
        f.location,
        f.index,
        bin.display()
    );
    std::fs::write(dir.join(format!("{stem}.txt")), note)?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom(input: &[u8]) {
        if input.first() == Some(&0x42) {
            panic!("found the byte {:#x}", input[0]);
        }
    }

    #[test]
    fn panics_are_caught_with_message_and_location() {
        let target = Target {
            name: "boom",
            about: "",
            run: boom,
            framed: false,
            dictionary: &[],
            max_len: 16,
        };
        assert!(matches!(run_input(&target, b"a"), Outcome::Ok(_)));
        match run_input(&target, b"\x42") {
            Outcome::Panic { message, location } => {
                assert_eq!(message, "found the byte 0x42");
                assert!(location.contains("engine.rs"), "{location}");
            }
            other => panic!("expected a panic, got {other:?}"),
        }
        let corpus = vec![b"\x41".to_vec()];
        let report = run_target(&target, &corpus, &PassConfig::new(1, 5000));
        assert_eq!(report.inputs, 5000);
        assert!(report.panics > 0);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].input[0], 0x42);
    }

    fn dawdle(input: &[u8]) {
        if input.first() == Some(&0x42) {
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    #[test]
    fn inputs_over_the_budget_twice_are_hangs() {
        let target = Target {
            name: "dawdle",
            about: "",
            run: dawdle,
            framed: false,
            dictionary: &[],
            max_len: 4,
        };
        let mut config = PassConfig::new(2, 300);
        config.slow = Duration::from_millis(5);
        let report = run_target(&target, &[b"\x41".to_vec()], &config);
        assert!(report.hangs > 0);
        assert_eq!(report.panics, 0);
        assert_eq!(report.findings[0].kind, FindingKind::Hang);
        assert_eq!(report.findings[0].input[0], 0x42);
    }
}
