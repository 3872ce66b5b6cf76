//! The fuzz harness in CI: a short pass over every target, and a replay of
//! every input that once crashed one (`regressions/<target>/`).
//!
//! The pass is deterministic (fixed seed) and bounded in time; the long
//! pass is `cargo run --release -p fuzz -- --target all --inputs 10000000`.
//! A failure names the target, the panic and its location, and the file the
//! input was written to (`crashes/`).

use std::time::Duration;

use fuzz::engine::{self, Outcome, PassConfig};
use fuzz::targets;

/// The pass's seed ("meter" in ASCII): fixed, so CI runs the same inputs.
const SEED: u64 = 0x006d_6574_6572;
/// Inputs per target.
const INPUTS: u64 = 20_000;
/// Time for the whole pass in a release build (debug builds get the same
/// share per target and simply run fewer inputs).
const BUDGET: Duration = Duration::from_secs(20);

#[test]
fn short_pass_finds_no_panic_or_hang() {
    let dir = fuzz::crate_dir();
    let all = targets::all();
    let mut config = PassConfig::new(SEED, INPUTS);
    config.time_limit = Some(BUDGET / all.len() as u32);
    config.crash_dir = Some(dir.join("crashes"));
    let mut failures = Vec::new();
    for target in &all {
        let corpus = fuzz::corpus_of(target.name, &dir.join("corpus"), &dir.join("regressions"));
        assert!(
            !corpus.is_empty(),
            "{}: no seeds in corpus/{0}/",
            target.name
        );
        let report = engine::run_target(target, &corpus, &config);
        eprintln!(
            "{:<20} {:>7} inputs in {:>6.2?} ({} panics, {} hangs)",
            report.target, report.inputs, report.elapsed, report.panics, report.hangs
        );
        for f in &report.findings {
            failures.push(format!(
                "{}: {:?} x{} {} at {} (input {})",
                report.target,
                f.kind,
                f.count,
                f.message,
                f.location,
                f.file
                    .as_ref()
                    .map_or("not saved".into(), |p| p.display().to_string())
            ));
        }
    }
    assert!(failures.is_empty(), "findings:\n{}", failures.join("\n"));
}

#[test]
fn regressions_replay_without_panic() {
    let dir = fuzz::crate_dir().join("regressions");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for target in targets::all() {
        for (path, input) in engine::load_dir(&dir.join(target.name)) {
            replayed += 1;
            if let Outcome::Panic { message, location } = engine::run_input(&target, &input) {
                failures.push(format!("{}: {message} at {location}", path.display()));
            }
        }
    }
    eprintln!("{replayed} regression inputs replayed");
    assert!(
        failures.is_empty(),
        "regressions panic again:\n{}",
        failures.join("\n")
    );
}
