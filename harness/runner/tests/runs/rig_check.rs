//! `meterbench rig check`, the rig doctor, run as a user runs it: the
//! virtual rig passes with each part's answer in the table, a hardware rig
//! whose port is not here fails within seconds naming the port, an SCPI
//! supply (the loopback simulator) shows its `*IDN?` or fails naming itself
//! when it stops answering, and a rig whose `device.identity` is not the
//! board's fails naming both values, in `rig check` and before a run's
//! first case.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{root, text};
use rig::power::scpi_sim::{Fault, ScpiSupplySim};

/// Runs `meterbench ARGS` in the repository root, each test with its own
/// lock folder so that parallel tests never wait on each other.
fn meterbench(args: &[&str], locks: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let out = crate::support::meterbench(args)
        .env("METERBENCH_LOCK_DIR", locks)
        .output()
        .unwrap();
    (out, started.elapsed())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The table row of `part`, split into (driver, result, detail).
fn row(table: &str, part: &str) -> (String, String, String) {
    let header = table
        .lines()
        .find(|l| l.starts_with("part "))
        .unwrap_or_else(|| panic!("no table in:\n{table}"));
    let driver_at = header.find("driver").unwrap();
    let result_at = header.find("result").unwrap();
    let detail_at = header.find("detail").unwrap();
    let line = table
        .lines()
        .find(|l| l.len() > driver_at && l[..driver_at].trim_end() == part)
        .unwrap_or_else(|| panic!("no row {part:?} in:\n{table}"));
    (
        line[driver_at..result_at].trim().to_string(),
        line[result_at..detail_at].trim().to_string(),
        line[detail_at..].trim().to_string(),
    )
}

/// The value after `label ` in a detail such as `...; imei 3545...; ...`.
fn field(detail: &str, label: &str) -> String {
    detail
        .split("; ")
        .find_map(|p| p.strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label} in {detail:?}"))
        .to_string()
}

/// rigs/virtual.yaml with `identity` added to its device.
fn virtual_with_identity(dir: &Path, identity: &str) -> PathBuf {
    let rig = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
    let marker = "  reboot_within: 45s";
    assert!(rig.contains(marker), "rigs/virtual.yaml changed shape");
    let rig = rig.replacen(marker, &format!("  identity: {identity}\n{marker}"), 1);
    let path = dir.join("virtual-identity.yaml");
    std::fs::write(&path, rig).unwrap();
    path
}

#[test]
fn virtual_rig_passes_with_each_part_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, took) = meterbench(
        &["rig", "check", "rigs/virtual.yaml", "--seed", "7"],
        tmp.path(),
    );
    let table = stdout(&out);
    assert!(out.status.success(), "{}", text(&out));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let (driver, result, detail) = row(&table, "power");
    assert_eq!(
        (driver.as_str(), result.as_str()),
        ("virtual", "ok"),
        "{table}"
    );
    assert!(detail.contains("switched on"), "{detail}");
    let (driver, result, detail) = row(&table, "modem");
    assert_eq!(result, "ok", "{table}");
    assert!(driver.contains("meterbench virtual modem"), "{driver}");
    assert_eq!(field(&detail, "manufacturer"), "meterbench");
    assert_eq!(field(&detail, "model"), "MB-VM1");
    let imei = field(&detail, "imei");
    assert!(
        imei.len() == 15 && imei.bytes().all(|b| b.is_ascii_digit()),
        "IMEI {imei:?}"
    );
    let iccid = field(&detail, "iccid");
    assert!(
        iccid.starts_with("89") && iccid.bytes().all(|b| b.is_ascii_digit()),
        "ICCID {iccid:?}"
    );
    let (_, result, detail) = row(&table, "debug");
    assert_eq!(result, "ok", "{table}");
    assert!(detail.contains("boot_count=1"), "{detail}");
    let (driver, result, detail) = row(&table, "server");
    assert_eq!(
        (driver.as_str(), result.as_str()),
        ("coaps", "ok"),
        "{table}"
    );
    assert!(detail.contains("127.0.0.1:"), "{detail}");
    assert_eq!(row(&table, "bootstrap server").1, "ok", "{table}");
    assert_eq!(row(&table, "firmware").1, "ok", "{table}");
    assert_eq!(row(&table, "identity").1, "skip", "{table}");
    assert!(table.contains("passed"), "{table}");

    // The same seed is the same board: its identity, given back, matches.
    let rig = virtual_with_identity(
        tmp.path(),
        &format!("{{ imei: \"{imei}\", iccid: \"{iccid}\" }}"),
    );
    let (out, _) = meterbench(
        &[
            "rig",
            "check",
            rig.to_str().unwrap(),
            "--seed",
            "7",
            "--json",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["passed"], true);
    let identity = doc["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["part"] == "identity")
        .unwrap();
    assert_eq!(identity["result"], "ok", "{doc}");
    assert_eq!(
        identity["detail"],
        format!("matches: IMEI {imei}, ICCID {iccid}")
    );
}

#[test]
fn hardware_rig_without_its_port_fails_within_seconds_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, took) = meterbench(&["rig", "check", "rigs/bench-example.yaml"], tmp.path());
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let (_, result, detail) = row(&table, "modem");
    assert_eq!(result, "FAIL", "{table}");
    assert!(
        detail.contains("/dev/serial/by-id/usb-Quectel_EG91-if02-port0 does not exist"),
        "{detail}"
    );
    // The relay's CLI is not installed here: the power row says which command.
    let (driver, result, detail) = row(&table, "power");
    assert_eq!(
        (driver.as_str(), result.as_str()),
        ("command", "FAIL"),
        "{table}"
    );
    assert!(detail.contains("usbrelay BITFT_1=1"), "{detail}");
    assert!(table.contains("FAILED"), "{table}");
}

fn scpi_rig(dir: &Path, name: &str, sim: &ScpiSupplySim) -> PathBuf {
    let rig = format!(
        "name: {name}\n\
         device: {{ endpoint: \"scpi-{{run}}\", lifetime: 60s }}\n\
         power:\n  kind: scpi\n  tcp: {}\n  voltage: 3.6V\n  current_limit: 500mA\n  timeout: 500ms\n",
        sim.addr()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, rig).unwrap();
    path
}

#[test]
fn scpi_supply_shows_its_idn_and_a_silent_one_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = ScpiSupplySim::start().unwrap();
    let rig = scpi_rig(tmp.path(), "scpi-doctor", &sim);
    let (out, _) = meterbench(&["rig", "check", rig.to_str().unwrap()], tmp.path());
    let table = stdout(&out);
    assert!(out.status.success(), "{}", text(&out));
    let (driver, result, detail) = row(&table, "power");
    assert_eq!(
        (driver.as_str(), result.as_str()),
        ("scpi", "ok"),
        "{table}"
    );
    assert!(
        detail.contains("*IDN? Keysight Technologies E36311A (serial MY00000001"),
        "{detail}"
    );
    assert!(
        sim.received().iter().any(|l| l == "*IDN?"),
        "{:?}",
        sim.received()
    );
    // The check switched the output on, and the end left it as after_run says (off).
    assert!(!sim.output(1).on, "output left on");

    sim.set_fault(Fault::Silent);
    let (out, took) = meterbench(&["rig", "check", rig.to_str().unwrap()], tmp.path());
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let (_, result, detail) = row(&table, "power");
    assert_eq!(result, "FAIL", "{table}");
    assert!(
        detail.contains(&format!("scpi supply {}", sim.addr())),
        "{detail}"
    );
    assert!(detail.contains("no answer to `*IDN?`"), "{detail}");
}

#[test]
fn wrong_board_fails_naming_expected_and_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let rig = virtual_with_identity(tmp.path(), "{ imei: \"000000000000000\" }");
    let (out, _) = meterbench(
        &["rig", "check", rig.to_str().unwrap(), "--seed", "7"],
        tmp.path(),
    );
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let seen = field(&row(&table, "modem").2, "imei");
    let (_, result, detail) = row(&table, "identity");
    assert_eq!(result, "FAIL", "{table}");
    assert_eq!(
        detail,
        format!("wrong board: expected IMEI 000000000000000, the device says {seen}")
    );
}

fn run_reg_initial(rig: &Path, reports: &Path, locks: &Path) -> Output {
    meterbench(
        &[
            "run",
            "--rig",
            rig.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
            "--seed",
            "7",
            "reg-initial",
        ],
        locks,
    )
    .0
}

#[test]
fn a_run_on_the_right_board_runs_its_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = meterbench(
        &["rig", "check", "rigs/virtual.yaml", "--seed", "7"],
        tmp.path(),
    );
    let imei = field(&row(&stdout(&out), "modem").2, "imei");
    let rig = virtual_with_identity(tmp.path(), &format!("{{ imei: \"{imei}\" }}"));
    let out = run_reg_initial(&rig, &tmp.path().join("reports"), tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 passed"), "{}", text(&out));
}

#[test]
fn a_run_on_the_wrong_board_ends_each_case_as_a_bench_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rig = virtual_with_identity(tmp.path(), "{ imei: \"000000000000000\" }");
    let reports = tmp.path().join("reports");
    let out = run_reg_initial(&rig, &reports, tmp.path());
    assert!(!out.status.success(), "{}", text(&out));
    let junit = std::fs::read_to_string(reports.join("latest/junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert!(!cases.is_empty(), "{junit}");
    for case in cases {
        let error = case
            .children()
            .find(|n| n.has_tag_name("error"))
            .unwrap_or_else(|| panic!("not a bench error: {junit}"));
        let message = error.attribute("message").unwrap_or_default();
        assert!(
            message.contains("wrong board: expected IMEI 000000000000000, the device says "),
            "{message}"
        );
    }
}

#[test]
fn swd_rig_without_its_probe_fails_listing_the_probes_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let rig = tmp.path().join("swd-doctor.yaml");
    std::fs::write(
        &rig,
        "name: swd-doctor\n\
         device: { endpoint: \"swd-{run}\", lifetime: 60s }\n\
         debug: { kind: swd, probe: \"0483:374b:MB-NO-SUCH-PROBE\", chip: STM32L476RGTx }\n",
    )
    .unwrap();
    let (out, took) = meterbench(&["rig", "check", rig.to_str().unwrap()], tmp.path());
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let (driver, result, detail) = row(&table, "debug");
    assert_eq!(
        (driver.as_str(), result.as_str()),
        ("swd", "FAIL"),
        "{table}"
    );
    assert!(detail.contains("no probe found matching"), "{detail}");
    assert!(detail.contains("MB-NO-SUCH-PROBE"), "{detail}");
    assert!(detail.contains("probes seen"), "{detail}");
}

#[test]
fn a_part_that_cannot_be_built_fails_and_the_others_are_still_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = ScpiSupplySim::start().unwrap();
    let rig = tmp.path().join("missing-elf.yaml");
    std::fs::write(
        &rig,
        format!(
            "name: missing-elf\n\
             device: {{ endpoint: \"elf-{{run}}\", lifetime: 60s }}\n\
             debug: {{ kind: swd, probe: \"0483:374b:MB-NO-SUCH-PROBE\", chip: STM32L476RGTx, elf: no-such/meter.elf }}\n\
             power:\n  kind: scpi\n  tcp: {}\n  voltage: 3.6V\n  current_limit: 500mA\n  timeout: 500ms\n",
            sim.addr()
        ),
    )
    .unwrap();
    let (out, _) = meterbench(&["rig", "check", rig.to_str().unwrap()], tmp.path());
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (_, result, detail) = row(&table, "debug");
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.contains("no-such/meter.elf"), "{detail}");
    // One row per part: the left-out debug part is not also "skipped".
    assert_eq!(
        table.lines().filter(|l| l.starts_with("debug ")).count(),
        1,
        "{table}"
    );
    // The supply was still asked who it is and switched, in the same pass.
    let (driver, result, _) = row(&table, "power");
    assert_eq!(
        (driver.as_str(), result.as_str()),
        ("scpi", "ok"),
        "{table}"
    );
    assert!(
        sim.received().iter().any(|l| l == "*IDN?"),
        "{:?}",
        sim.received()
    );
    assert!(!table.contains("could not be opened"), "{table}");
}
