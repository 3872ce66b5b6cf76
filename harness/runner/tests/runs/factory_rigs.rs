//! End to end on factory-provisioned devices: `meterbench run` on
//! rigs/factory-psk-device.yaml (the device holds an LwM2M server account and
//! registers without bootstrap) and rigs/factory-bootstrap-device.yaml (it
//! holds a bootstrap account at a fixed URI), each device a virtual meter
//! process that the rig's `command` power starts and kills. The factory
//! account's identity and key reach the run the way a lab gives them: in the
//! environment variables the rigs' `credentials:` name. The registration and
//! device-management cases pass (or are skipped with a reason), the key is in
//! no report file, and no device process of the run outlives it.
//!
//! The rigs run one after the other: the bootstrap rig's port is fixed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support::{junit, junit_of_run, meterbench, outcomes, text, Outcome};

/// The variables the example rigs' `credentials: { from: env }` name.
const IDENTITY_VAR: &str = "METERBENCH_FACTORY_PSK_IDENTITY";
const KEY_VAR: &str = "METERBENCH_FACTORY_PSK_KEY";

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A factory account as a lab would hold it: fresh for this test.
struct FactoryAccount {
    identity: String,
    key_hex: String,
}

impl FactoryAccount {
    fn fresh() -> Self {
        FactoryAccount {
            identity: format!("factory-{}", random_hex(4)),
            key_hex: random_hex(16),
        }
    }
}

/// What one `meterbench run` left: its output, its pid and where its report is.
struct Run {
    output: String,
    pid: u32,
    report_dir: PathBuf,
}

impl Run {
    fn junit(&self) -> String {
        junit_of_run(&self.report_dir, &self.output)
    }
}

fn run(rig: &str, cases: &str, account: &FactoryAccount, scratch: &Path) -> Run {
    let report_dir = scratch.join(format!(
        "reports-{}-{}",
        Path::new(rig).file_stem().unwrap().to_string_lossy(),
        Path::new(cases).file_name().unwrap().to_string_lossy()
    ));
    let child = meterbench(&["run", "--rig", rig, "--cases", cases, "--report-dir"])
        .arg(&report_dir)
        .env(IDENTITY_VAR, &account.identity)
        .env(KEY_VAR, &account.key_hex)
        // This test's own lease folder: another job's bench is not ours.
        .env("METERBENCH_LOCK_DIR", scratch.join("locks"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meterbench starts");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    Run {
        output: text(&out),
        pid,
        report_dir,
    }
}

/// Device processes the run `harness_pid` started: the rigs start the
/// meter with `--exit-with-pid {harness_pid}`.
fn device_processes_of(harness_pid: u32) -> Vec<String> {
    let marker = format!("--exit-with-pid\0{harness_pid}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).into_owned();
            let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            (cmd.contains("sim-meter") && cmd.contains(&marker) && !zombie).then(|| {
                format!(
                    "{}: {}",
                    e.file_name().to_string_lossy(),
                    cmd.replace('\0', " ")
                )
            })
        })
        .collect()
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            all_files(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

/// Every file of the run's report, as bytes, holds no form of the key.
fn assert_key_in_no_report_file(run: &Run, account: &FactoryAccount) {
    let key = account.key_hex.as_bytes();
    let upper = account.key_hex.to_uppercase();
    let mut files = Vec::new();
    all_files(&run.report_dir, &mut files);
    assert!(!files.is_empty(), "the run wrote reports:\n{}", run.output);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [key, upper.as_bytes()] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the factory key",
                f.display()
            );
        }
    }
    assert!(
        !run.output.contains(&account.key_hex) && !run.output.contains(&upper),
        "the run's output holds the factory key"
    );
}

/// Runs `cases` on `rig` and checks what every such run must hold; returns
/// the outcomes for the case-specific checks.
fn run_and_check(rig: &str, cases: &str, account: &FactoryAccount, scratch: &Path) -> Vec<Outcome> {
    let run = run(rig, cases, account, scratch);
    let all = outcomes(&run.junit());
    assert!(
        !all.is_empty(),
        "{rig} {cases}: no testcase:\n{}",
        run.output
    );
    let wrong: Vec<String> = all
        .iter()
        .filter(|o| match o.verdict.as_deref() {
            None => false,
            Some("skipped") => o.message.trim().is_empty(),
            Some(_) => true,
        })
        .map(|o| format!("{}: {:?}: {}", o.name, o.verdict, o.message))
        .collect();
    assert!(
        wrong.is_empty(),
        "on {rig} every case of {cases} must pass or be skipped with a reason:\n  {}\n\nrun output:\n{}",
        wrong.join("\n  "),
        run.output
    );
    assert_key_in_no_report_file(&run, account);
    let left = device_processes_of(run.pid);
    assert!(
        left.is_empty(),
        "{rig}: device processes outlived the run:\n{}",
        left.join("\n")
    );
    // The device process's own log is kept as the cases' artifact.
    let rig_name = Path::new(rig)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let logs: u64 = std::fs::read_dir(run.report_dir.join("latest").join(&rig_name))
        .unwrap()
        .flatten()
        .filter_map(|case| std::fs::metadata(case.path().join("device.log")).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        logs > 0,
        "{rig}: no device.log artifact with content:\n{}",
        run.output
    );
    all
}

fn assert_passed(all: &[Outcome], rig: &str, case: &str) {
    let name = format!("{rig}::{case}");
    let o = all
        .iter()
        .find(|o| o.name == name || o.name == case)
        .unwrap_or_else(|| panic!("no testcase {name}"));
    assert_eq!(o.verdict, None, "{name} should pass: {}", o.message);
}

#[test]
fn factory_provisioned_devices_register_and_answer_device_management() {
    let scratch = tempfile::tempdir().unwrap();
    for (rig_file, rig) in [
        ("rigs/factory-psk-device.yaml", "factory-psk-device"),
        (
            "rigs/factory-bootstrap-device.yaml",
            "factory-bootstrap-device",
        ),
    ] {
        let account = FactoryAccount::fresh();
        let reg = run_and_check(rig_file, "testcases/registration", &account, scratch.path());
        for case in ["reg-initial", "reg-update"] {
            assert_passed(&reg, rig, case);
        }
        let dm = run_and_check(
            rig_file,
            "testcases/device-management",
            &account,
            scratch.path(),
        );
        for case in [
            "dm-discover",
            "dm-read-object",
            "dm-read-device-tlv",
            "dm-reboot",
        ] {
            assert_passed(&dm, rig, case);
        }
        let passed = dm.iter().filter(|o| o.verdict.is_none()).count();
        assert!(
            passed * 2 > dm.len(),
            "{rig}: most device-management cases pass, {passed} of {} did",
            dm.len()
        );
    }
}

/// The factory account is the device's only way in: a run whose
/// environment lacks it stops with an error naming the variable, and no
/// device is started.
#[test]
fn a_missing_factory_key_is_a_bench_error_naming_the_variable() {
    let scratch = tempfile::tempdir().unwrap();
    let report_dir = scratch.path().join("reports");
    let child = meterbench(&[
        "run",
        "--rig",
        "rigs/factory-psk-device.yaml",
        "--cases",
        "testcases/registration",
        "reg-initial",
        "--report-dir",
    ])
    .arg(&report_dir)
    .env(IDENTITY_VAR, "factory-id")
    .env_remove(KEY_VAR)
    .env("METERBENCH_LOCK_DIR", scratch.path().join("locks"))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    let all = outcomes(&junit(&report_dir));
    let o = all
        .iter()
        .find(|o| o.name.ends_with("reg-initial"))
        .unwrap();
    assert_eq!(o.verdict.as_deref(), Some("error"), "{}", o.message);
    assert!(o.message.contains(KEY_VAR), "{}", o.message);
    assert!(device_processes_of(pid).is_empty());
}
