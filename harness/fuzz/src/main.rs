//! `fuzz`: runs a fuzz pass, replays crashes, or rewrites the seed corpus.
//!
//! ```text
//! cargo run --release -p fuzz -- --target all --inputs 10000000 --seed 1
//! cargo run --release -p fuzz -- --replay harness/fuzz/crashes/tlv-0123456789abcdef.bin
//! cargo run --release -p fuzz -- --write-corpus
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fuzz::engine::{self, FindingKind, Outcome, PassConfig, TargetReport};
use fuzz::targets::{self, Target};

#[derive(Debug, Parser)]
#[command(
    name = "fuzz",
    about = "Fuzzes meterbench's decoders and datagram entries (stable Rust, seeded, replayable)"
)]
struct Args {
    /// `all`, or target names separated by commas (see --list).
    #[arg(long, default_value = "all")]
    target: String,
    /// Inputs per target.
    #[arg(long, default_value_t = 1_000_000)]
    inputs: u64,
    /// Seed of the pass; the same seed makes the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop each target after this many seconds, whatever --inputs says.
    #[arg(long)]
    seconds: Option<f64>,
    /// An input slower than this (twice) is reported as a hang.
    #[arg(long)]
    slow_ms: Option<u64>,
    /// An input running longer than this aborts the pass (after saving it).
    #[arg(long)]
    hang_secs: Option<u64>,
    /// Write each input to FILE before running it, to find one that kills
    /// the process (stack overflow, out of memory).
    #[arg(long, value_name = "FILE")]
    keep_last: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    regressions: Option<PathBuf>,
    /// Where crashing inputs are written.
    #[arg(long, value_name = "DIR")]
    crashes: Option<PathBuf>,
    /// Replay these files (or every file of these directories) instead of a
    /// pass; the target comes from --target or the file's name
    /// (`<target>-<hash>.bin`) or directory (`regressions/<target>/`).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    replay: Vec<PathBuf>,
    /// Rewrite corpus/ from the spec vectors and a fresh capture of traffic.
    #[arg(long)]
    write_corpus: bool,
    /// List the targets.
    #[arg(long)]
    list: bool,
}

fn selected(spec: &str) -> Result<Vec<Target>, String> {
    if spec == "all" {
        return Ok(targets::all());
    }
    spec.split(',')
        .map(|name| {
            targets::find(name.trim()).ok_or_else(|| {
                let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
                format!("no target {name:?}; targets: {}", names.join(", "))
            })
        })
        .collect()
}

/// The target a crash file belongs to: by directory, then by file name.
fn target_of(path: &Path) -> Option<Target> {
    let all = targets::all();
    let parent = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str());
    if let Some(t) = all.iter().find(|t| Some(t.name) == parent) {
        return Some(*t);
    }
    let stem = path.file_name()?.to_str()?;
    all.into_iter()
        .filter(|t| {
            stem.strip_prefix(t.name)
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|t| t.name.len())
}

fn replay(args: &Args) -> Result<bool, String> {
    let forced = match args.target.as_str() {
        "all" => None,
        spec => Some(*selected(spec)?.first().ok_or("no target")?),
    };
    let mut files = Vec::new();
    for p in &args.replay {
        if p.is_dir() {
            files.extend(engine::load_dir(p));
        } else {
            let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            files.push((p.clone(), bytes));
        }
    }
    let mut clean = true;
    for (path, bytes) in files {
        let Some(target) = forced.or_else(|| target_of(&path)) else {
            return Err(format!(
                "{}: cannot tell the target from the name; pass --target",
                path.display()
            ));
        };
        match engine::run_input(&target, &bytes) {
            Outcome::Ok(t) => {
                println!("ok     {:<20} {:>10.3?} {}", target.name, t, path.display())
            }
            Outcome::Panic { message, location } => {
                clean = false;
                println!(
                    "PANIC  {:<20} {}\n       {message}\n       at {location}",
                    target.name,
                    path.display()
                );
            }
        }
    }
    Ok(clean)
}

fn print_report(r: &TargetReport) {
    println!(
        "{:<20} {:>10} {:>9.1} {:>11.0} {:>7} {:>6} {:>6}",
        r.target,
        r.inputs,
        r.elapsed.as_secs_f64(),
        r.inputs_per_second(),
        r.panics,
        r.findings.len(),
        r.hangs,
    );
    for f in &r.findings {
        let kind = match f.kind {
            FindingKind::Panic => "panic",
            FindingKind::Hang => "hang",
        };
        println!(
            "    {kind} x{}: {}",
            f.count,
            f.message.lines().next().unwrap_or("")
        );
        if !f.location.is_empty() {
            println!("      at {}", f.location);
        }
        if let Some(file) = &f.file {
            println!("      input {}", file.display());
        }
    }
}

fn run() -> Result<bool, String> {
    let args = Args::parse();
    let dir = fuzz::crate_dir();
    let corpus_dir = args.corpus.clone().unwrap_or_else(|| dir.join("corpus"));
    let regressions_dir = args
        .regressions
        .clone()
        .unwrap_or_else(|| dir.join("regressions"));
    if args.list {
        for t in targets::all() {
            println!("{:<20} {}", t.name, t.about);
        }
        return Ok(true);
    }
    if args.write_corpus {
        let mut seeds = fuzz::seeds::spec_vectors();
        seeds.extend(fuzz::capture::captured());
        let n = fuzz::seeds::write(&corpus_dir, &seeds).map_err(|e| e.to_string())?;
        println!("wrote {n} seeds under {}", corpus_dir.display());
        return Ok(true);
    }
    if !args.replay.is_empty() {
        return replay(&args);
    }
    let targets = selected(&args.target)?;
    let mut config = PassConfig::new(args.seed, args.inputs);
    config.time_limit = args.seconds.map(Duration::from_secs_f64);
    if let Some(ms) = args.slow_ms {
        config.slow = Duration::from_millis(ms);
    }
    if let Some(s) = args.hang_secs {
        config.hang = Duration::from_secs(s);
    }
    config.crash_dir = Some(args.crashes.clone().unwrap_or_else(|| dir.join("crashes")));
    config.keep_last = args.keep_last.clone();
    println!(
        "fuzz pass: seed {}, {} inputs per target, {} targets",
        args.seed,
        args.inputs,
        targets.len()
    );
    println!(
        "{:<20} {:>10} {:>9} {:>11} {:>7} {:>6} {:>6}",
        "target", "inputs", "seconds", "inputs/s", "panics", "sites", "hangs"
    );
    let mut clean = true;
    let mut total = (0u64, Duration::ZERO);
    for target in &targets {
        let corpus = fuzz::corpus_of(target.name, &corpus_dir, &regressions_dir);
        let report = engine::run_target(target, &corpus, &config);
        print_report(&report);
        clean &= report.findings.is_empty();
        total.0 += report.inputs;
        total.1 += report.elapsed;
    }
    println!(
        "{:<20} {:>10} {:>9.1}",
        "total",
        total.0,
        total.1.as_secs_f64()
    );
    Ok(clean)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fuzz: {e}");
            ExitCode::from(2)
        }
    }
}
