//! The fleet's meters in worker processes. A process here may hold 20,000
//! open files and root cannot raise that, so 100,000 meters (one UDP socket
//! each) cannot live in one process: the parent starts
//! `meterbench bench fleet-clients` children of at most
//! [`FleetArgs::per_worker`] meters each, tells them all to run a phase at
//! once (one word per line on their stdin) and adds up what each answers
//! (one JSON line on its stdout). The server stays one process.
//!
//! Bounded: a worker answers within its phase deadline (every meter's
//! wait is bounded by it); the parent waits that plus a margin, and a
//! worker that does not answer, or exits, fails the phase by name.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{phase, read_psks, Meter, PhaseReport, Step};
use crate::cli::{FleetArgs, FleetClientsArgs};

/// How long past a phase's deadline the parent waits for a worker's
/// answer (serializing up to `per_worker` latencies, a loaded machine).
const ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// Phases by the word a worker reads on its stdin.
const PHASES: [&str; 7] = [
    "echo",
    "handshake",
    "register",
    "observed",
    "notify",
    "update",
    "deregister",
];

/// A worker's answer to one phase.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    done: usize,
    /// From the worker's start of the phase to its last meter's end.
    elapsed_us: u64,
    /// Each completed exchange's time, in microseconds.
    times_us: Vec<u64>,
    first_error: Option<String>,
}

fn step(word: &str, echo: SocketAddr, notifications: u32) -> Option<Step> {
    Some(match word {
        "echo" => Step::Echo(echo),
        "handshake" => Step::Handshake,
        "register" => Step::Register,
        "observed" => Step::Observed,
        "notify" => Step::Notify(notifications),
        "update" => Step::Update,
        "deregister" => Step::Deregister,
        _ => return None,
    })
}

/// The worker: opens its meters' sockets, says `ready`, then runs each
/// phase its stdin names until stdin closes.
pub fn clients_main(args: FleetClientsArgs) -> ExitCode {
    match clients(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: fleet worker: {e}");
            ExitCode::from(1)
        }
    }
}

fn clients(args: FleetClientsArgs) -> Result<(), String> {
    let mut psks = match &args.credentials {
        Some(path) => {
            let all = read_psks(path)?;
            if all.len() < args.first + args.count {
                return Err(format!(
                    "{} holds {} keys, meters {}..{} need theirs",
                    path.display(),
                    all.len(),
                    args.first,
                    args.first + args.count
                ));
            }
            all.into_iter()
                .skip(args.first)
                .take(args.count)
                .map(|(_, psk)| Some(psk))
                .collect()
        }
        None => vec![None; args.count],
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let mut meters = Vec::with_capacity(args.count);
        for (i, psk) in psks.drain(..).enumerate() {
            meters.push(Meter::open(args.first + i, args.server, psk).await?);
        }
        let (tx, mut words) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        say("ready")?;
        while let Some(word) = words.recv().await {
            let Some(step) = step(word.trim(), args.echo, args.notifications) else {
                return Err(format!("unknown phase {word:?} (known: {PHASES:?})"));
            };
            let (m, report) = phase(meters, step, args.in_flight, args.timeout).await;
            meters = m;
            let answer = Answer {
                done: report.done,
                elapsed_us: report.elapsed.as_micros() as u64,
                times_us: report.times.iter().map(|t| t.as_micros() as u64).collect(),
                first_error: report.first_error,
            };
            let line = serde_json::to_string(&answer).map_err(|e| e.to_string())?;
            say(&line)?;
        }
        Ok(())
    })
}

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to the parent: {e}"))
}

/// A worker as the parent holds it.
struct Worker {
    child: Child,
    /// Closing it tells the worker to stop.
    stdin: Option<ChildStdin>,
    first: usize,
    count: usize,
}

/// The parent's side: every worker, and their answers as they come.
pub(super) struct Workers {
    workers: Vec<Worker>,
    /// (worker, line) or (worker, None) when its stdout closed.
    lines: mpsc::Receiver<(usize, Option<String>)>,
    timeout: Duration,
}

/// How many meters each worker runs: `n` split as evenly as possible over
/// as few workers as hold at most `per_worker` each.
pub(super) fn split(n: usize, per_worker: usize) -> Vec<usize> {
    let per_worker = per_worker.max(1);
    let k = n.div_ceil(per_worker).max(1);
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

impl Workers {
    /// Starts the workers and waits until each has opened its sockets.
    pub(super) fn start(
        args: &FleetArgs,
        per_worker: usize,
        server: SocketAddr,
        echo: SocketAddr,
        credentials: Option<&Path>,
    ) -> Result<Workers, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find meterbench itself: {e}"))?;
        let counts = split(args.meters, per_worker);
        // The same window in all, split: the fleet as a whole keeps
        // `in_flight` exchanges going, as the echo yardstick does.
        let window = args.in_flight.max(1).div_ceil(counts.len()).max(1);
        let (tx, lines) = mpsc::channel();
        let mut workers = Vec::with_capacity(counts.len());
        let mut first = 0;
        for (i, &count) in counts.iter().enumerate() {
            let mut cmd = Command::new(&exe);
            cmd.args(["bench", "fleet-clients"])
                .args(["--first", &first.to_string()])
                .args(["--count", &count.to_string()])
                .args(["--server", &server.to_string()])
                .args(["--echo", &echo.to_string()])
                .args(["--in-flight", &window.to_string()])
                .args(["--notifications", &args.notifications.to_string()])
                .args(["--timeout", &format!("{}ms", args.timeout.as_millis())]);
            if let Some(file) = credentials {
                cmd.arg("--credentials").arg(file);
            }
            let mut child = cmd
                .env("RUST_LOG", "warn")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start fleet worker {i}: {e}"))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take();
            workers.push(Worker {
                child,
                stdin,
                first,
                count,
            });
            let stdout = stdout.ok_or_else(|| format!("no stdout from fleet worker {i}"))?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((i, Some(line))).is_err() {
                        return;
                    }
                }
                let _ = tx.send((i, None));
            });
            first += count;
        }
        let mut all = Workers {
            workers,
            lines,
            timeout: args.timeout,
        };
        let said = all.collect("start", args.timeout)?;
        if let Some((i, line)) = said.iter().enumerate().find(|(_, l)| l.as_str() != "ready") {
            return Err(format!("fleet worker {i} did not start (said {line:?})"));
        }
        Ok(all)
    }

    pub(super) fn len(&self) -> usize {
        self.workers.len()
    }

    /// One line from every worker within `wait`, in worker order.
    fn collect(&mut self, what: &str, wait: Duration) -> Result<Vec<String>, String> {
        let deadline = std::time::Instant::now() + wait;
        let mut got: Vec<Option<String>> = vec![None; self.workers.len()];
        while got.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let missing = || {
                got.iter()
                    .position(Option::is_none)
                    .map(|i| {
                        let w = &self.workers[i];
                        format!("worker {i} (meters {}..{})", w.first, w.first + w.count)
                    })
                    .unwrap_or_default()
            };
            match self.lines.recv_timeout(left) {
                Ok((i, Some(line))) => {
                    if got[i].is_none() {
                        got[i] = Some(line);
                    }
                }
                Ok((i, None)) => {
                    let w = &self.workers[i];
                    return Err(format!(
                        "{what}: fleet worker {i} (meters {}..{}) exited",
                        w.first,
                        w.first + w.count
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "{what}: no answer from fleet {} within {} s",
                        missing(),
                        wait.as_secs()
                    ))
                }
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Runs `word`'s phase in every worker at once; their figures added up
    /// (the elapsed time is the slowest worker's).
    pub(super) fn run(&mut self, word: &str) -> PhaseReport {
        let mut report = PhaseReport {
            done: 0,
            elapsed: Duration::ZERO,
            times: Vec::new(),
            first_error: None,
        };
        for (i, w) in self.workers.iter_mut().enumerate() {
            let sent = w
                .stdin
                .as_mut()
                .map(|s| writeln!(s, "{word}").and_then(|()| s.flush()));
            if !matches!(sent, Some(Ok(()))) {
                report
                    .first_error
                    .get_or_insert(format!("cannot reach fleet worker {i}"));
            }
        }
        let lines = match self.collect(word, self.timeout + ANSWER_MARGIN) {
            Ok(lines) => lines,
            Err(e) => {
                report.first_error.get_or_insert(e);
                return report;
            }
        };
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<Answer>(line) {
                Ok(a) => {
                    report.done += a.done;
                    report.elapsed = report.elapsed.max(Duration::from_micros(a.elapsed_us));
                    report
                        .times
                        .extend(a.times_us.into_iter().map(Duration::from_micros));
                    if let Some(e) = a.first_error {
                        report.first_error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    report
                        .first_error
                        .get_or_insert(format!("fleet worker {i} answered {line:?}: {e}"));
                }
            }
        }
        report
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            drop(w.stdin.take());
        }
        // Give them a moment to stop on their own, then end them.
        for w in &mut self.workers {
            for _ in 0..100 {
                if let Ok(Some(_)) = w.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = w.child.try_wait() {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_is_split_evenly_over_as_few_workers_as_the_cap_allows() {
        // 100,000 over at most 15,000 each: 7 workers, sizes differing by at most one.
        let counts = split(100_000, 15_000);
        assert_eq!(counts.len(), 7);
        assert_eq!(counts.iter().sum::<usize>(), 100_000);
        assert!(
            counts.iter().all(|&c| (14_285..=14_286).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(split(200, 15_000), vec![200]);
        assert_eq!(split(30_000, 15_000), vec![15_000, 15_000]);
        assert_eq!(split(30_001, 15_000), vec![10_001, 10_000, 10_000]);
    }
}
