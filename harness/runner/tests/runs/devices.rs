//! Rigs with several devices (`devices:` in the rig file): a case on every
//! meter of `rigs/virtual-4.yaml`, two meters at a time, one testcase per
//! meter; a pool of meters sharing the cases out; and a bad `devices:`
//! section refused before any bench is touched, naming its place.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::{parse, root, run, run_cases, text, CaseRun};

/// Fast cases (a power cycle, a registration, a read or two), copied into
/// a folder of their own so that a run takes only them.
const CASES: &[&str] = &[
    "registration/initial-registration.yaml",
    "device-management/read-resource.yaml",
    "device-management/discover.yaml",
    "device-management/read-object.yaml",
];

fn case_folder(dir: &Path, how_many: usize) -> std::path::PathBuf {
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    for c in &CASES[..how_many] {
        let from = root().join("testcases").join(c);
        let name = c.replace('/', "-");
        std::fs::copy(&from, cases.join(name)).unwrap();
    }
    cases
}

/// One parsed line of events.jsonl.
fn events(report_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(report_dir.join("latest/events.jsonl"))
        .expect("events.jsonl written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an events line is JSON"))
        .collect()
}

/// The most cases running at once, by the order of their start and end events.
fn most_at_once(events: &[serde_json::Value]) -> (usize, usize) {
    let (mut now, mut most, mut started) = (0usize, 0usize, 0usize);
    for e in events {
        match e["type"].as_str() {
            Some("case_start") => {
                now += 1;
                started += 1;
                most = most.max(now);
            }
            Some("case_end") => now = now.saturating_sub(1),
            _ => {}
        }
    }
    (most, started)
}

#[test]
fn every_case_runs_on_each_of_four_meters_two_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let cases = case_folder(dir.path(), 2);
    let reports = dir.path().join("reports");
    let CaseRun {
        out: o,
        output: out,
        xml,
        all,
    } = run_cases(
        &["--rig", "rigs/virtual-4.yaml"],
        cases.to_str().unwrap(),
        &reports,
    );
    assert!(o.status.success(), "{out}");
    let mut names: Vec<String> = all.iter().map(|o| o.name.clone()).collect();
    names.sort();
    let mut expected = Vec::new();
    for case in ["dm-read-resource", "reg-initial"] {
        for m in 1..=4 {
            expected.push(format!("virtual-4::meter-{m}::{case}"));
        }
    }
    expected.sort();
    assert_eq!(names, expected, "one testcase per meter and case:\n{out}");
    for o in &all {
        assert_eq!(o.verdict, None, "{}: {}\n{out}", o.name, o.message);
    }

    // A testsuite per meter, each with its own endpoint.
    let doc = parse(&xml);
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let suite_names: BTreeSet<&str> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(
        suite_names,
        BTreeSet::from([
            "virtual-4::meter-1",
            "virtual-4::meter-2",
            "virtual-4::meter-3",
            "virtual-4::meter-4"
        ])
    );
    let suite_values = |name: &str| -> BTreeSet<String> {
        suites
            .iter()
            .map(|s| {
                s.descendants()
                    .find(|p| p.has_tag_name("property") && p.attribute("name") == Some(name))
                    .and_then(|p| p.attribute("value"))
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let endpoints = suite_values("endpoint");
    assert_eq!(endpoints.len(), 4, "distinct endpoints: {endpoints:?}");
    // Four devices, not one device four times: each its own IMEI.
    let imeis = suite_values("imei");
    assert_eq!(imeis.len(), 4, "distinct IMEIs: {imeis:?}");
    assert!(imeis.iter().all(|i| i.len() == 15), "{imeis:?}");
    for m in 1..=4 {
        let meter = format!("virtual-meter-{m}-");
        assert!(
            endpoints.iter().any(|e| e.starts_with(&meter)),
            "{meter}*: {endpoints:?}"
        );
        // Each meter's artifacts in its own folder.
        assert!(
            reports
                .join(format!("latest/virtual-4/meter-{m}/reg-initial/steps.log"))
                .is_file(),
            "meter-{m}'s artifacts"
        );
    }

    // Two meters at a time: never more, and they did overlap.
    let ev = events(&reports);
    assert_eq!(most_at_once(&ev), (2, 8), "cases at once, cases started");
    let devices: BTreeSet<&str> = ev
        .iter()
        .filter(|e| e["type"] == "case_end")
        .filter_map(|e| e["device"].as_str())
        .collect();
    assert_eq!(devices.len(), 4, "events name each meter: {devices:?}");
}

#[test]
fn a_pool_of_meters_runs_each_case_once_spread_over_its_meters() {
    let dir = tempfile::tempdir().unwrap();
    let cases = case_folder(dir.path(), 4);
    let reports = dir.path().join("reports");
    let rig = dir.path().join("pool.yaml");
    let text_of_rig = std::fs::read_to_string(root().join("rigs/virtual-4.yaml"))
        .unwrap()
        .replace("name: virtual-4", "name: pool")
        .replace("parallel: 2 ", "parallel: 3 ")
        .replace("count: 4 ", "count: 3 ")
        .replace("each_case: every", "each_case: any");
    std::fs::write(&rig, text_of_rig).unwrap();
    let CaseRun {
        out: o,
        output: out,
        xml,
        all,
    } = run_cases(
        &["--rig", rig.to_str().unwrap()],
        cases.to_str().unwrap(),
        &reports,
    );
    assert!(o.status.success(), "{out}");
    let mut names: Vec<&str> = all.iter().map(|o| o.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dm-discover",
            "dm-read-object",
            "dm-read-resource",
            "reg-initial"
        ],
        "each case once, named by its id:\n{out}"
    );
    assert!(all.iter().all(|o| o.verdict.is_none()), "{out}");
    assert!(
        out.contains("pool::reg-initial"),
        "trials named <rig>::<case>:\n{out}"
    );
    let doc = parse(&xml);
    let used: BTreeSet<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|tc| {
            tc.descendants()
                .find(|p| p.has_tag_name("property") && p.attribute("name") == Some("device"))
                .and_then(|p| p.attribute("value"))
        })
        .collect();
    assert!(used.len() > 1, "more than one meter used: {used:?}\n{out}");
    let ev = events(&reports);
    let (most, started) = most_at_once(&ev);
    assert!(most <= 3, "at most 3 at once, saw {most}");
    assert_eq!(started, 4);
    // A pool keeps the single-device layout: <rig>/<case>.
    assert!(reports.join("latest/pool/reg-initial/steps.log").is_file());
}

/// `meterbench run --list` with a rig whose `devices:` section is `section`:
/// exit 2 and the message.
fn refused(dir: &Path, section: &str, power: &str) -> String {
    let rig = dir.join("bad.yaml");
    std::fs::write(
        &rig,
        format!(
            "name: bad\ndevice:\n  endpoint: \"m-{{device}}\"\n  lifetime: 30s\n{power}{section}"
        ),
    )
    .unwrap();
    let o = run(&["run", "--rig", rig.to_str().unwrap(), "--list"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{section}: {out}");
    out
}

#[test]
fn a_bad_devices_section_is_refused_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let virt = "power: { kind: virtual }\n";
    let cases: &[(&str, &str, &str)] = &[
        // name, device, endpoint, lifetime, power: `devices:` is line 6.
        ("devices:\n  count: 2\n  parallel: 3\n", virt, "bad.yaml:8:"),
        ("devices:\n  count: 0\n", virt, "bad.yaml:7:"),
        (
            "devices:\n  count: 2\n",
            "power: { kind: command, on: 'true', off: 'true' }\n",
            "bad.yaml:7:",
        ),
        (
            "devices:\n  list:\n    - { name: a }\n    - { name: a }\n",
            virt,
            "bad.yaml:9:",
        ),
        (
            "devices:\n  list:\n    - { name: a }\n    - { name: 'b c' }\n",
            virt,
            "bad.yaml:9:",
        ),
        (
            "devices:\n  count: 2\n  each_case: some\n",
            virt,
            "bad.yaml:8:",
        ),
        (
            "devices:\n  count: 2\n  list: [ { name: a } ]\n",
            virt,
            "bad.yaml:7:",
        ),
        // One factory account for two meters: a shared credential.
        (
            "devices:\n  count: 2\n",
            "  credentials: { from: file, path: /nowhere/secrets.yaml }\npower: { kind: virtual }\n",
            "bad.yaml:8:",
        ),
    ];
    for (section, power, place) in cases {
        let out = refused(dir.path(), section, power);
        assert!(out.contains(place), "{section} names {place}:\n{out}");
    }
    // The messages say what to do.
    let out = refused(dir.path(), "devices:\n  count: 2\n  parallel: 3\n", virt);
    assert!(out.contains("use 1 to 2"), "{out}");
    let out = refused(
        dir.path(),
        "devices:\n  count: 2\n",
        "power: { kind: command, on: 'true', off: 'true' }\n",
    );
    assert!(out.contains("power is not virtual"), "{out}");
    let out = refused(
        dir.path(),
        "devices:\n  list:\n    - { name: a }\n    - { name: a }\n",
        virt,
    );
    assert!(out.contains("`a` is also device 1"), "{out}");
    let out = refused(
        dir.path(),
        "devices:\n  count: 2\n",
        "  credentials: { from: env, identity: ID_VAR, key: KEY_VAR }\npower: { kind: virtual }\n",
    );
    assert!(
        out.contains("meter-1 and meter-2 would share one factory account"),
        "{out}"
    );

    // Two devices given one endpoint.
    let out = refused(
        dir.path(),
        "devices:\n  list:\n    - { name: a, endpoint: m }\n    - { name: b, endpoint: m }\n",
        virt,
    );
    assert!(
        out.contains("bad.yaml:9:") && out.contains("a and b have one endpoint `m`"),
        "{out}"
    );
}

#[test]
fn trials_of_several_rigs_interleave_with_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let cases = case_folder(dir.path(), 2);
    let list = |jobs: &str| {
        let o = run(&[
            "run",
            "--rig",
            "rigs/virtual-4.yaml",
            "--rig",
            "rigs/virtual-differing.yaml",
            "--cases",
            cases.to_str().unwrap(),
            "--jobs",
            jobs,
            "--list",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            // `[kind] <name>: test`
            .filter_map(|l| l.split(": ").next())
            .map(|l| l.rsplit("] ").next().unwrap_or(l))
            .filter(|l| l.contains("::"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let one = list("1");
    assert_eq!(one.len(), 10, "{one:?}");
    // One job: rig after rig, each case on every meter in turn.
    assert!(one[0].starts_with("virtual-4::meter-1::"), "{one:?}");
    assert!(one[1].starts_with("virtual-4::meter-2::"), "{one:?}");
    assert_eq!(one[0].rsplit("::").next(), one[1].rsplit("::").next());
    assert!(one[8].starts_with("virtual-differing::"), "{one:?}");
    // Two jobs: the rigs side by side.
    let two = list("2");
    assert_eq!(two.len(), 10);
    assert!(two[1].starts_with("virtual-differing::"), "{two:?}");
}

/// A pool starts its cases longest first by the times of the last run in
/// the same report folder (`latest/junit.xml`); a case that did not run
/// there, or a run with no history, falls back to the timeout (all 60 s
/// here, so file order).
#[test]
fn a_pool_starts_the_cases_that_took_longest_last_time_first() {
    let dir = tempfile::tempdir().unwrap();
    let cases = case_folder(dir.path(), 4);
    let rig = dir.path().join("pool.yaml");
    let text_of_rig = std::fs::read_to_string(root().join("rigs/virtual-4.yaml"))
        .unwrap()
        .replace("name: virtual-4", "name: pool")
        .replace("each_case: every", "each_case: any");
    std::fs::write(&rig, text_of_rig).unwrap();
    let reports = dir.path().join("reports");
    let list = || {
        let o = run(&[
            "run",
            "--rig",
            rig.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
            "--list",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(": ").next())
            .map(|l| l.rsplit("::").next().unwrap_or(l).to_string())
            .filter(|l| !l.contains(' '))
            .collect::<Vec<_>>()
    };
    let fresh = list();
    assert_eq!(fresh.len(), 4, "{fresh:?}");
    // Another rig's times and a broken attribute are no history for this one.
    std::fs::create_dir_all(reports.join("latest")).unwrap();
    std::fs::write(
        reports.join("latest/junit.xml"),
        r#"<testsuites>
<testsuite name="pool::meter-1"><testcase name="dm-read-object" time="0.2"/><testcase name="reg-initial" time="4.5"/></testsuite>
<testsuite name="pool::meter-2"><testcase name="dm-discover" time="9.0"/><testcase name="reg-initial" time="5.0"/></testsuite>
<testsuite name="other::meter-1"><testcase name="dm-read-resource" time="500"/></testsuite>
</testsuites>"#,
    )
    .unwrap();
    // dm-read-resource did not run on `pool`: its 60 s timeout puts it first.
    assert_eq!(
        list(),
        [
            "dm-read-resource",
            "dm-discover",
            "reg-initial",
            "dm-read-object"
        ]
    );
}
