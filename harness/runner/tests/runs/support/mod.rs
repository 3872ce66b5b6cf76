//! What the runner's integration tests share: starting the `meterbench`
//! binary from the workspace root and reading the JUnit report it wrote, so
//! that every test reads verdicts the same way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root: rigs/ and testcases/ are named relative to it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `meterbench ARGS` run from the workspace root with no stdin. A shard
/// set in the caller's environment would run only part of the cases, so
/// it is removed.
pub fn meterbench(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meterbench"));
    c.current_dir(root())
        .args(args)
        .env_remove("METERBENCH_SHARD")
        .stdin(Stdio::null());
    c
}

/// Runs `meterbench ARGS` to the end.
pub fn run(args: &[&str]) -> Output {
    meterbench(args).output().expect("meterbench starts")
}

/// Stdout then stderr, for assertion messages and text checks.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Reads `<report>/latest/junit.xml`.
pub fn junit(report_dir: &Path) -> String {
    junit_of_run(report_dir, "")
}

/// Reads `<report>/latest/junit.xml`; when it is missing, the panic shows
/// the run's `output`, which says why.
pub fn junit_of_run(report_dir: &Path, output: &str) -> String {
    std::fs::read_to_string(report_dir.join("latest/junit.xml"))
        .unwrap_or_else(|e| panic!("junit.xml written ({e}):\n{output}"))
}

pub fn parse(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).expect("junit.xml is well-formed XML")
}

/// Each testcase as (name, verdict element — none: passed — and that
/// element's message, if it has one).
pub fn testcases<'a>(
    doc: &'a roxmltree::Document<'a>,
) -> Vec<(String, Option<String>, Option<String>)> {
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|tc| {
            let verdict = tc.children().find(|c| {
                c.is_element() && ["failure", "error", "skipped"].contains(&c.tag_name().name())
            });
            (
                tc.attribute("name").unwrap().to_string(),
                verdict.map(|v| v.tag_name().name().to_string()),
                verdict
                    .and_then(|v| v.attribute("message"))
                    .map(str::to_string),
            )
        })
        .collect()
}

/// One testcase of the JUnit: its name, its verdict element (none: passed)
/// and that element's message (empty when it has none).
pub struct Outcome {
    pub name: String,
    pub verdict: Option<String>,
    pub message: String,
}

/// The testcases of a JUnit document.
pub fn outcomes(xml: &str) -> Vec<Outcome> {
    testcases(&parse(xml))
        .into_iter()
        .map(|(name, verdict, message)| Outcome {
            name,
            verdict,
            message: message.unwrap_or_default(),
        })
        .collect()
}

/// The value of the report-level `<property name=NAME>`.
pub fn property<'a>(doc: &'a roxmltree::Document<'a>, name: &str) -> Option<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
        .find_map(|n| n.attribute("value"))
}

/// Runs the shipped case files `cases` (each `(path under testcases/, case
/// id, ETS id)`) together on the default virtual rig and requires every one
/// to pass and its testcase's `ets` property to name its ETS id. The report
/// is under the returned folder (`reports/`), kept while it lives.
pub fn run_ets_cases(cases: &[(&str, &str, &str)]) -> (tempfile::TempDir, CaseRun) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("cases");
    std::fs::create_dir(&folder).unwrap();
    for (file, id, _) in cases {
        std::fs::copy(
            root().join("testcases").join(file),
            folder.join(format!("{id}.yaml")),
        )
        .unwrap();
    }
    let run = run_cases(&[], folder.to_str().unwrap(), &dir.path().join("reports"));
    assert_eq!(run.all.len(), cases.len(), "{}", run.output);
    assert_all_passed(&run.all, &run.output);
    let doc = parse(&run.xml);
    for (_, id, ets) in cases {
        let ids = ets_of_case(&doc, id, &run.output);
        assert!(
            ids.contains(ets),
            "{id} names {ets} in its ets property: {ids:?}"
        );
    }
    assert!(run.out.status.success(), "{}", run.output);
    (dir, run)
}

/// The testcase of case `id` (named `id` or `<rig>::id`) and the ETS ids
/// its `ets` property lists ("" when it has none); panics naming `output`
/// when the report has no such testcase.
pub fn ets_of_case<'a>(doc: &'a roxmltree::Document<'a>, id: &str, output: &str) -> &'a str {
    let tc = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name")
                    .is_some_and(|n| n == id || n.ends_with(&format!("::{id}")))
        })
        .unwrap_or_else(|| panic!("no testcase {id}:\n{output}"));
    ets_property(tc)
}

/// The `ets` property of one testcase element.
pub fn ets_property<'a>(tc: roxmltree::Node<'a, 'a>) -> &'a str {
    tc.descendants()
        .find(|p| p.has_tag_name("property") && p.attribute("name") == Some("ets"))
        .and_then(|p| p.attribute("value"))
        .unwrap_or_default()
}

/// How many case files (`*.yaml`) are under `dir`: a run of them reports
/// one testcase each.
pub fn case_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                case_files(&p)
            } else {
                usize::from(p.extension().is_some_and(|e| e == "yaml"))
            }
        })
        .sum()
}

/// The virtual meter processes `parent` started (its children running `sim-meter`).
pub fn meter_pids(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && cmd.contains("sim-meter")
        })
        .collect()
}

/// Whether process `pid` has ended (gone, or a zombie not yet reaped).
pub fn process_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with(['Z', 'X']),
    }
}

/// Waits up to `limit` for `child` to exit; kills it (and answers None) when it does not.
pub fn wait_or_kill(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Sends `signal` to `child` (SIGINT as Ctrl-C does, SIGTERM as a cancelled CI job does).
pub fn send_signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
        .expect("signal sent");
}

/// Writes a copy of the virtual rig whose device credentials come from a
/// secrets file with these keys (`name-bs` and `name-dm` as identities), so
/// that a test can search its reports for them.
/// rigs/virtual.yaml without its `devices:` pool, written into `dir`: one
/// meter, which runs the cases one after the other in the order of their
/// files (so a case can set up what the next one checks).
pub fn one_meter_rig(dir: &Path) -> String {
    let path = dir.join("virtual-one.yaml");
    let text = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
    std::fs::write(&path, one_meter(&text)).unwrap();
    path.display().to_string()
}

/// A rig file's text without its `devices:` section: one device.
pub fn one_meter(text: &str) -> String {
    let mut in_devices = false;
    let one: String = text
        .lines()
        .filter(|l| {
            if l.starts_with("devices:") {
                in_devices = true;
            } else if !l.starts_with(' ') {
                in_devices = false;
            }
            !in_devices
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(one, text, "the rig has a `devices:` part");
    one
}

pub fn virtual_rig_with_keys(
    dir: &Path,
    name: &str,
    bootstrap_key: &str,
    server_key: &str,
) -> PathBuf {
    let secrets = dir.join("secrets.yaml");
    std::fs::write(
        &secrets,
        format!(
            "identity: {name}-bs\nkey: {bootstrap_key}\nserver_identity: {name}-dm\nserver_key: {server_key}\n"
        ),
    )
    .unwrap();
    // One meter: a factory account is one device's, and the rig refuses
    // to share it between the pool's meters.
    let rig_text = one_meter(&std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap());
    let rig_text = rig_text.replace(
        "{ from: fresh }",
        &format!("{{ from: file, path: {} }}", secrets.display()),
    );
    assert!(
        rig_text.contains("from: file"),
        "the virtual rig names its credential source"
    );
    let rig = dir.join("virtual-known-keys.yaml");
    std::fs::write(&rig, rig_text).unwrap();
    rig
}

/// A whole-suite run split into shards that run side by side, each its own
/// `meterbench run --shard I/N` process with its own virtual meter and report
/// folder, their JUnit merged by `meterbench junit merge`. The cases mostly
/// wait on the device, so the suite's wall time falls to about its longest
/// shard's, and the shard split and the merge are exercised as CI uses them.
pub struct ShardedRun {
    pub reports: Vec<tempfile::TempDir>,
    /// Every shard's stdout and stderr, then the merge's.
    pub output: String,
    /// Whether every shard and the merge exited 0.
    pub success: bool,
    /// The merged JUnit.
    pub junit: String,
}

impl ShardedRun {
    /// The artifact folder `latest/<rig>/<case>` in whichever shard ran the case.
    pub fn case_dir(&self, rig: &str, case: &str) -> PathBuf {
        self.reports
            .iter()
            .map(|r| r.path().join("latest").join(rig).join(case))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| panic!("no shard ran {rig}/{case}:\n{}", self.output))
    }

    /// Every case folder `latest/<rig>/*` of every shard.
    pub fn case_dirs(&self, rig: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .reports
            .iter()
            .filter_map(|r| std::fs::read_dir(r.path().join("latest").join(rig)).ok())
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        dirs
    }

    /// Bytes of the shards' index.html pages, and of every capture (`*.pcap`).
    pub fn report_sizes(&self) -> (u64, u64) {
        fn walk(dir: &Path, page: &mut u64, pcap: &mut u64) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                let Ok(meta) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if meta.is_dir() {
                    walk(&p, page, pcap);
                } else if p.file_name().is_some_and(|n| n == "index.html") {
                    *page += meta.len();
                } else if p.extension().is_some_and(|x| x == "pcap") {
                    *pcap += meta.len();
                }
            }
        }
        let (mut page, mut pcap) = (0, 0);
        for r in &self.reports {
            walk(r.path(), &mut page, &mut pcap);
        }
        (page, pcap)
    }
}

/// Runs `meterbench run ARGS` as `shards` shards at once and merges their JUnit.
pub fn run_sharded(args: &[&str], shards: usize) -> ShardedRun {
    let reports: Vec<_> = (0..shards).map(|_| tempfile::tempdir().unwrap()).collect();
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let runs: Vec<_> = reports
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let shard = format!("{}/{shards}", i + 1);
                let report_dir = dir.path().to_str().unwrap().to_string();
                s.spawn(move || {
                    let mut all = vec!["run"];
                    all.extend_from_slice(args);
                    all.extend_from_slice(&["--shard", &shard, "--report-dir", &report_dir]);
                    run(&all)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut output = String::new();
    let mut success = true;
    for (i, o) in outputs.iter().enumerate() {
        output.push_str(&format!("--- shard {}/{shards}\n{}", i + 1, text(o)));
        success &= o.status.success();
    }
    let merged = reports[0].path().join("merged.xml");
    let inputs: Vec<String> = reports
        .iter()
        .map(|r| junit_path(r.path(), &output))
        .collect();
    let mut merge = vec!["junit", "merge", "--out", merged.to_str().unwrap()];
    merge.extend(inputs.iter().map(String::as_str));
    let m = run(&merge);
    output.push_str(&format!("--- merge\n{}", text(&m)));
    success &= m.status.success();
    let junit = std::fs::read_to_string(&merged)
        .unwrap_or_else(|e| panic!("merged junit written ({e}):\n{output}"));
    ShardedRun {
        reports,
        output,
        success,
        junit,
    }
}

/// `<report>/latest/junit.xml`, which must exist; when it does not, the
/// panic shows the run's `output`.
fn junit_path(report_dir: &Path, output: &str) -> String {
    let p = report_dir.join("latest/junit.xml");
    assert!(p.is_file(), "{} written:\n{output}", p.display());
    p.to_str().unwrap().to_string()
}

/// What one `meterbench run` left: the process, its output as [`text`],
/// the JUnit it wrote and the testcases in that JUnit.
pub struct CaseRun {
    pub out: Output,
    pub output: String,
    pub xml: String,
    pub all: Vec<Outcome>,
}

/// `meterbench run ARGS --cases CASES --report-dir REPORT_DIR` (ARGS: a
/// rig, a fixtures folder), its JUnit read as [`junit_of_run`] reads it.
pub fn run_cases(args: &[&str], cases: &str, report_dir: &Path) -> CaseRun {
    let mut all_args = vec!["run"];
    all_args.extend_from_slice(args);
    all_args.extend([
        "--cases",
        cases,
        "--report-dir",
        report_dir.to_str().unwrap(),
    ]);
    let out = run(&all_args);
    let output = text(&out);
    let xml = junit_of_run(report_dir, &output);
    let all = outcomes(&xml);
    CaseRun {
        out,
        output,
        xml,
        all,
    }
}

/// Every testcase of `all` passed; the first that did not is named with its
/// message and the run's `output`.
pub fn assert_all_passed(all: &[Outcome], output: &str) {
    for o in all {
        assert_eq!(
            o.verdict, None,
            "{} must pass: {}\n{output}",
            o.name, o.message
        );
    }
}

/// The verdict elements of the testcase named `name` in a parsed JUnit
/// document (`failure`, `flakyError`, `rerunError`, ...), in order.
pub fn verdict_elements(doc: &roxmltree::Document, name: &str) -> Vec<String> {
    let tc = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testcase {name} in {}", doc.input_text()));
    tc.children()
        .filter(|c| c.is_element())
        .map(|c| c.tag_name().name().to_string())
        .filter(|n| n != "properties" && n != "system-out")
        .collect()
}
