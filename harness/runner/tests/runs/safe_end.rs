//! The safe end (issue 11): every way a run ends — pass, fail, a step that
//! times out, a case that runs out of time, a panic in a step, Ctrl-C
//! (SIGINT), a cancelled CI job (SIGTERM) — leaves the bench as the rig's
//! `after_run` says, the virtual meter stopped, the rig lease released and a
//! JUnit that says what ran and what was interrupted.
//!
//! Two benches: the virtual rig (its meter is a child process), and a rig
//! whose power is the SCPI supply simulator on loopback, started here, whose
//! output state is read back after the run. Cases are tiny files written
//! into a temporary folder; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::support::{
    junit_of_run, meter_pids, meterbench, outcomes, process_ended, root, send_signal, wait_or_kill,
    Outcome,
};
use nix::sys::signal::Signal;
use rig::power::scpi_sim::{Fault, ScpiSupplySim};

/// What any run here must end within, signals included.
const RUN_LIMIT: Duration = Duration::from_secs(40);

/// A run's folders: its cases, reports and lock folder, and its output files.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cases", "reports", "locks"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Bench { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Writes `cases/<id>.yaml`.
    fn case(&self, id: &str, timeout: &str, steps: &str) {
        let text = format!(
            "id: {id}\ntitle: safe-end {id}\nets: []\nets_none: a harness check, not a device test\n\
             timeout: {timeout}\nsteps:\n{steps}"
        );
        std::fs::write(self.path("cases").join(format!("{id}.yaml")), text).unwrap();
    }

    /// The virtual rig as shipped, under its own name, with a lease and `after_run`.
    fn virtual_rig(&self, name: &str, after_run: &str) -> PathBuf {
        let rig = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
        for marker in ["name: virtual\n", "after_run: { power: off }"] {
            assert!(rig.contains(marker), "rigs/virtual.yaml changed shape");
        }
        let rig = rig
            .replacen("name: virtual\n", &format!("name: {name}\n"), 1)
            .replacen(
                "after_run: { power: off }",
                &format!("after_run: {{ power: {after_run} }}\nlease: {{ wait: 2s }}"),
                1,
            );
        self.write_rig(name, &rig)
    }

    /// A bench with no device: its power is the simulated SCPI supply.
    fn scpi_rig(&self, name: &str, sim: &ScpiSupplySim, after_run: &str, timeout: &str) -> PathBuf {
        let rig = format!(
            "name: {name}\n\
             device: {{ endpoint: \"safe-{{run}}\", lifetime: 60s }}\n\
             power:\n  kind: scpi\n  tcp: {}\n  voltage: 3.6V\n  current_limit: 500mA\n  timeout: {timeout}\n\
             after_run: {{ power: {after_run} }}\n",
            sim.addr()
        );
        self.write_rig(name, &rig)
    }

    fn write_rig(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts `meterbench run` on `rig` with this bench's cases, its lock
    /// folder, and its output in files (read with [`Bench::output`]).
    fn start(&self, rig: &Path, extra: &[&str]) -> Child {
        let mut args = vec![
            "run".to_string(),
            "--rig".into(),
            rig.display().to_string(),
            "--cases".into(),
            self.path("cases").display().to_string(),
            "--report-dir".into(),
            self.path("reports").display().to_string(),
            "--seed".into(),
            "11".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = std::fs::File::create(self.path("output.txt")).unwrap();
        meterbench(&args)
            .env("METERBENCH_LOCK_DIR", self.path("locks"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("meterbench starts")
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.path("output.txt")).unwrap_or_default()
    }

    fn outcomes(&self) -> Vec<Outcome> {
        outcomes(&junit_of_run(&self.path("reports"), &self.output()))
    }

    /// The lease files left in the lock folder (none once released).
    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.path("locks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".lock"))
            .collect()
    }
}

/// How a run ended, and the virtual meters it was seen to start.
struct Ended {
    status: ExitStatus,
    took: Duration,
    meters: Vec<u32>,
}

/// Waits for `child` to end (at most [`RUN_LIMIT`]), noting its meter processes.
fn finish(mut child: Child, started: Instant, bench: &Bench) -> Ended {
    let mut meters = Vec::new();
    let status = loop {
        for pid in meter_pids(child.id()) {
            if !meters.contains(&pid) {
                meters.push(pid);
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the run did not end within {RUN_LIMIT:?}:\n{}",
                bench.output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ended {
        status,
        took: started.elapsed(),
        meters,
    }
}

/// Waits until `ready` holds (at most 30 s), failing with the run's output.
fn wait_until(bench: &Bench, child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the run ended ({s}) before {what}:\n{}", bench.output());
        }
        if Instant::now() > deadline {
            let _ = wait_or_kill(child, Duration::ZERO);
            panic!("{what} did not happen within 30 s:\n{}", bench.output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The meters a run started have all ended (they exit with their parent at
/// the latest, so a short grace is allowed for that).
fn assert_meters_ended(ended: &Ended, bench: &Bench) {
    assert!(
        !ended.meters.is_empty(),
        "no virtual meter was seen:\n{}",
        bench.output()
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    for pid in &ended.meters {
        while !process_ended(*pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(process_ended(*pid), "virtual meter {pid} still runs");
    }
}

fn verdict<'a>(outcomes: &'a [Outcome], case: &str) -> &'a Outcome {
    outcomes.iter().find(|o| o.name == case).unwrap_or_else(|| {
        let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
        panic!("no testcase {case} in {names:?}")
    })
}

/// The SCPI supply's output commands, in order: the last says how the run left it.
fn output_commands(sim: &ScpiSupplySim) -> Vec<String> {
    sim.received()
        .into_iter()
        .filter(|l| l == "OUTP ON" || l == "OUTP OFF")
        .collect()
}

/// Five cases, each ending one way; the panic is provoked in the third step
/// (`--inject-fault panic-in-step=3`), which only `c-panic` has.
fn write_verdict_cases(bench: &Bench, registered: bool) {
    let first = if registered {
        "  - await: registered\n    within: 30s\n"
    } else {
        "  - sleep: 10ms\n"
    };
    bench.case("a-pass", "60s", first);
    // The virtual meter's manufacturer is not this; the SCPI bench has no
    // device at all, so nothing answers.
    let fail = "  - expect: { path: /3/0/0, equals: \"not-the-manufacturer\" }\n";
    bench.case("b-fail", "60s", &format!("{first}{fail}"));
    bench.case(
        "c-panic",
        "60s",
        &format!("{first}  - sleep: 10ms\n  - sleep: 10ms\n"),
    );
    let step_timeout = if registered {
        "  - await: { path: /3/0/0, equals: never, within: 400ms }\n"
    } else {
        "  - await: registered\n    within: 400ms\n"
    };
    bench.case("d-step-timeout", "60s", step_timeout);
    bench.case("e-case-timeout", "1500ms", "  - sleep: 30s\n");
}

fn assert_verdicts(bench: &Bench, ended: &Ended, case_file: &Path) {
    let out = bench.output();
    // libtest's exit code when a trial failed; the run went on after the panic.
    assert_eq!(ended.status.code(), Some(101), "{out}");
    let outcomes = bench.outcomes();
    assert_eq!(outcomes.len(), 5, "{out}");
    assert_eq!(verdict(&outcomes, "a-pass").verdict, None, "{out}");
    assert_eq!(
        verdict(&outcomes, "b-fail").verdict.as_deref(),
        Some("failure"),
        "{out}"
    );
    let panic = verdict(&outcomes, "c-panic");
    assert_eq!(panic.verdict.as_deref(), Some("error"), "{out}");
    let at = format!("{}:", case_file.display());
    for part in [
        at.as_str(),
        "step `sleep 10ms` panicked",
        "injected fault (--inject-fault panic-in-step=3)",
        "engine.rs:",
    ] {
        assert!(
            panic.message.contains(part),
            "{part:?} in {}",
            panic.message
        );
    }
    for (case, says) in [
        ("d-step-timeout", "400ms"),
        ("e-case-timeout", "timeout of 1.5s"),
    ] {
        let o = verdict(&outcomes, case);
        assert_eq!(o.verdict.as_deref(), Some("failure"), "{case}: {out}");
        assert!(
            o.message.contains(says),
            "{case}: {says:?} in {}",
            o.message
        );
    }
}

/// Pass, fail, a panic in a step and both timeouts, in one run on the
/// virtual rig with `after_run: on`: each case has its verdict, the run goes
/// on after the panic, and the meter still ends with meterbench (it cannot
/// outlive the run) and the lease is released.
#[test]
fn virtual_rig_every_verdict_ends_with_the_meter_stopped_and_the_lease_released() {
    let bench = Bench::new();
    let rig = bench.virtual_rig("safe-virtual-verdicts", "on");
    write_verdict_cases(&bench, true);
    let started = Instant::now();
    let child = bench.start(&rig, &["--inject-fault", "panic-in-step=3"]);
    let ended = finish(child, started, &bench);
    assert_verdicts(&bench, &ended, &bench.path("cases").join("c-panic.yaml"));
    assert_meters_ended(&ended, &bench);
    assert_eq!(bench.leases(), Vec::<String>::new(), "{}", bench.output());
}

/// Ctrl-C or a cancelled CI job on the virtual rig: the running case is
/// reported interrupted, the exit code is 130, the meter is stopped, the
/// lease released, and the ordinary end did it (well before the forced end).
fn virtual_rig_interrupted_by(signal: Signal, after_run: &str) {
    let bench = Bench::new();
    let name = format!("safe-virtual-{}", signal.as_str().to_lowercase());
    let rig = bench.virtual_rig(&name, after_run);
    bench.case(
        "long",
        "120s",
        "  - await: registered\n    within: 30s\n  - sleep: 60s\n",
    );
    let started = Instant::now();
    let mut child = bench.start(&rig, &[]);
    let id = child.id();
    let mut meters = Vec::new();
    wait_until(&bench, &mut child, "the virtual meter starts", || {
        meters = meter_pids(id);
        !meters.is_empty()
    });
    // Its lease is taken once the session opened.
    wait_until(&bench, &mut child, "the lease is taken", || {
        !bench.leases().is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    send_signal(&child, signal);
    let mut ended = finish(child, started, &bench);
    ended.meters.extend(meters);
    let out = bench.output();
    assert_eq!(ended.status.code(), Some(130), "{out}");
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "took {:?} after the signal: {out}",
        signalled.elapsed()
    );
    assert!(!out.contains("forced end"), "{out}");
    let outcomes = bench.outcomes();
    assert_eq!(outcomes.len(), 1, "{out}");
    assert_eq!(outcomes[0].verdict.as_deref(), Some("error"), "{out}");
    assert!(outcomes[0].message.contains("interrupted"), "{out}");
    assert_meters_ended(&ended, &bench);
    assert_eq!(bench.leases(), Vec::<String>::new(), "{out}");
}

#[test]
fn virtual_rig_sigint_ends_safe() {
    virtual_rig_interrupted_by(Signal::SIGINT, "off");
}

#[test]
fn virtual_rig_sigterm_with_after_run_on_ends_safe() {
    virtual_rig_interrupted_by(Signal::SIGTERM, "on");
}

/// Pass, fail, a panic in a step and both timeouts on the SCPI bench: the
/// verdicts as on the virtual rig, and the supply output left off as
/// `after_run` says after the cases switched it on.
#[test]
fn scpi_bench_every_verdict_leaves_the_output_as_after_run_says() {
    for after_run in ["off", "on"] {
        let sim = ScpiSupplySim::start().unwrap();
        let bench = Bench::new();
        let rig = bench.scpi_rig(&format!("safe-scpi-{after_run}"), &sim, after_run, "2s");
        write_verdict_cases(&bench, false);
        let started = Instant::now();
        let child = bench.start(&rig, &["--inject-fault", "panic-in-step=3"]);
        let ended = finish(child, started, &bench);
        assert_verdicts(&bench, &ended, &bench.path("cases").join("c-panic.yaml"));
        let commands = output_commands(&sim);
        assert!(
            commands.contains(&"OUTP ON".to_string()),
            "{commands:?}: {}",
            bench.output()
        );
        let want = after_run == "on";
        assert_eq!(
            sim.output(1).on,
            want,
            "after_run {after_run}: {commands:?}"
        );
        assert_eq!(
            commands.last().map(String::as_str),
            Some(if want { "OUTP ON" } else { "OUTP OFF" }),
            "{commands:?}"
        );
        assert_eq!(bench.leases(), Vec::<String>::new(), "{}", bench.output());
    }
}

/// One way a run ends on the SCPI bench, with the case `long` running (its
/// output on) when `interrupt` is sent.
fn scpi_bench_interrupted(signal: Signal, after_run: &str) {
    let sim = ScpiSupplySim::start().unwrap();
    let bench = Bench::new();
    let rig = bench.scpi_rig(
        &format!("safe-scpi-{}-{after_run}", signal.as_str().to_lowercase()),
        &sim,
        after_run,
        "2s",
    );
    bench.case("long", "120s", "  - sleep: 60s\n");
    let started = Instant::now();
    let mut child = bench.start(&rig, &[]);
    wait_until(
        &bench,
        &mut child,
        "the case switches the output on",
        || sim.output(1).on,
    );
    std::thread::sleep(Duration::from_millis(100));
    send_signal(&child, signal);
    let ended = finish(child, started, &bench);
    let out = bench.output();
    assert_eq!(ended.status.code(), Some(130), "{out}");
    assert!(!out.contains("forced end"), "{out}");
    let outcomes = bench.outcomes();
    assert_eq!(outcomes.len(), 1, "{out}");
    assert_eq!(outcomes[0].verdict.as_deref(), Some("error"), "{out}");
    assert!(outcomes[0].message.contains("interrupted"), "{out}");
    assert_eq!(
        sim.output(1).on,
        after_run == "on",
        "after_run {after_run}: {:?}",
        output_commands(&sim)
    );
    assert_eq!(bench.leases(), Vec::<String>::new(), "{out}");
    // The bench is free: the next run on it takes it at once and passes.
    std::fs::remove_file(bench.path("cases").join("long.yaml")).unwrap();
    bench.case("quick", "10s", "  - sleep: 10ms\n");
    let again = Instant::now();
    let child = bench.start(&rig, &[]);
    let ended = finish(child, again, &bench);
    assert!(ended.status.success(), "{}", bench.output());
    assert!(!bench.output().contains("is held by"), "{}", bench.output());
    assert!(
        ended.took < Duration::from_secs(10),
        "took {:?}",
        ended.took
    );
}

#[test]
fn scpi_bench_sigint_with_after_run_off_cuts_the_output() {
    scpi_bench_interrupted(Signal::SIGINT, "off");
}

/// The old interrupt path cut power whatever the rig said: a bench that
/// asks to stay powered stays powered.
#[test]
fn scpi_bench_sigterm_with_after_run_on_keeps_the_output_on() {
    scpi_bench_interrupted(Signal::SIGTERM, "on");
}

#[test]
fn scpi_bench_sigterm_with_after_run_off_cuts_the_output() {
    scpi_bench_interrupted(Signal::SIGTERM, "off");
}

/// A supply that stops answering in the middle of a power step keeps the
/// ordinary end from coming: the forced end still reports the case
/// interrupted, releases the lease and exits 130 in bounded time.
#[test]
fn a_driver_stuck_in_a_call_gets_the_forced_end() {
    let sim = ScpiSupplySim::start().unwrap();
    let bench = Bench::new();
    // The supply's answer timeout outlasts the forced end's wait.
    let rig = bench.scpi_rig("safe-scpi-stuck", &sim, "off", "30s");
    bench.case("stuck", "120s", "  - sleep: 700ms\n  - power: off\n");
    let started = Instant::now();
    let mut child = bench.start(&rig, &[]);
    wait_until(
        &bench,
        &mut child,
        "the case switches the output on",
        || sim.output(1).on,
    );
    sim.set_fault(Fault::Silent);
    // Once the 700 ms sleep is over, the `power: off` step waits for a
    // supply that never answers (or for the current sampler, which does).
    std::thread::sleep(Duration::from_millis(1000));
    let signalled = Instant::now();
    send_signal(&child, Signal::SIGTERM);
    let ended = finish(child, started, &bench);
    let out = bench.output();
    assert_eq!(ended.status.code(), Some(130), "{out}");
    let took = signalled.elapsed();
    assert!(
        took > Duration::from_secs(4) && took < Duration::from_secs(12),
        "forced end after {took:?}: {out}"
    );
    assert!(out.contains("forced end"), "{out}");
    assert!(out.contains("its driver is busy"), "{out}");
    let outcomes = bench.outcomes();
    assert_eq!(outcomes.len(), 1, "{out}");
    assert!(outcomes[0].message.contains("interrupted"), "{out}");
    assert_eq!(bench.leases(), Vec::<String>::new(), "{out}");
    // The forced end writes the page as well as the JUnit.
    let page = out
        .lines()
        .find_map(|l| l.strip_prefix("page: "))
        .unwrap_or_else(|| panic!("no page written: {out}"));
    let html = std::fs::read_to_string(page.trim()).unwrap();
    assert!(html.contains("stuck"), "{html}");
}
