//! End to end on the virtual rig: two `meterbench run` on one leased rig take
//! turns (the second says who holds the bench and waits), and the JUnit of
//! two shards merges into one report with both runs' cases and properties.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{parse, root, testcases, text};

/// `meterbench ARGS` without a lease folder from the environment: each
/// test's rig names its own.
fn meterbench(args: &[&str]) -> Command {
    let mut c = crate::support::meterbench(args);
    c.env_remove("METERBENCH_LOCK_DIR");
    c
}

/// `meterbench junit merge --out OUT A B`, run to the end.
fn merge(out: &Path, a: &Path, b: &Path) -> Output {
    meterbench(&[
        "junit",
        "merge",
        "--out",
        out.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ])
    .output()
    .unwrap()
}

/// The virtual rig with a `lease:` part, so that it takes the lease.
fn leased_rig(dir: &Path) -> PathBuf {
    let mut rig = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
    rig.push_str(&format!(
        "lease: {{ dir: {}, ttl: 10s, wait: 3m }}\n",
        dir.join("locks").display()
    ));
    let path = dir.join("virtual-leased.yaml");
    std::fs::write(&path, rig).unwrap();
    path
}

/// Times of the first and last datagram in a case's lwm2m-messages.log.
fn datagram_span(report: &Path) -> (String, String) {
    let log = report.join("latest/virtual/reg-initial/lwm2m-messages.log");
    let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let times: Vec<String> = log
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(!times.is_empty(), "no datagram logged");
    (times[0].clone(), times[times.len() - 1].clone())
}

fn wait_for(child: &mut Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("meterbench run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out.stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut out.stderr)
        .unwrap();
    out
}

#[test]
fn two_runs_on_one_leased_rig_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let rig = leased_rig(dir.path());
    let (rep_a, rep_b) = (dir.path().join("a"), dir.path().join("b"));
    let start = |report: &Path| {
        meterbench(&[
            "run",
            "--rig",
            rig.to_str().unwrap(),
            "--report-dir",
            report.to_str().unwrap(),
            "--exact",
            "virtual::reg-initial",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let mut a = start(&rep_a);
    // B starts once A holds the lease.
    let lease = dir.path().join("locks/virtual.lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lease.exists() {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut b = start(&rep_b);
    let out_a = wait_for(&mut a, Duration::from_secs(180));
    let out_b = wait_for(&mut b, Duration::from_secs(180));
    assert!(out_a.status.success(), "{}", text(&out_a));
    assert!(out_b.status.success(), "{}", text(&out_b));

    let waited = String::from_utf8_lossy(&out_b.stderr);
    assert!(waited.contains("virtual is held by host "), "{waited}");
    assert!(waited.contains(&format!(" pid {} ", a.id())), "{waited}");

    // B's device traffic began after A's had ended: the runs did not overlap.
    let (_, a_last) = datagram_span(&rep_a);
    let (b_first, _) = datagram_span(&rep_b);
    assert!(a_last < b_first, "A until {a_last}, B from {b_first}");
    // Released at the end: no lease file is left behind.
    assert!(!lease.exists());
}

#[test]
fn two_shards_run_their_parts_and_merge_into_one_report() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    for file in [
        "registration/initial-registration.yaml",
        "device-management/read-device-tlv.yaml",
    ] {
        let text = std::fs::read_to_string(root().join("testcases").join(file)).unwrap();
        std::fs::write(cases.join(file.replace('/', "-")), text).unwrap();
    }
    let mut junits = Vec::new();
    let mut seen = Vec::new();
    for shard in ["1/2", "2/2"] {
        let report = dir.path().join(shard.replace('/', "-of-"));
        let out = meterbench(&[
            "run",
            "--cases",
            cases.to_str().unwrap(),
            "--report-dir",
            report.to_str().unwrap(),
            "--shard",
            shard,
            "--seed",
            "11",
        ])
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("shard {shard}: ")),
            "{}",
            text(&out)
        );
        let junit = report.join("latest/junit.xml");
        let xml = std::fs::read_to_string(&junit).unwrap();
        seen.extend(testcases(&parse(&xml)).into_iter().map(|(name, ..)| name));
        junits.push(junit);
    }
    seen.sort();
    // Each case ran in exactly one shard.
    assert_eq!(seen, vec!["dm-read-device-tlv", "reg-initial"]);

    let merged = dir.path().join("merged/junit.xml");
    let out = merge(&merged, &junits[0], &junits[1]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 tests, 0 failures, 0 errors"),
        "{}",
        text(&out)
    );
    let xml = std::fs::read_to_string(&merged).unwrap();
    let doc = parse(&xml);
    let root_el = doc.root_element();
    assert_eq!(root_el.attribute("tests"), Some("2"));
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2);
    for (suite, junit) in suites.iter().zip(&junits) {
        let prop = |name: &str| {
            suite
                .descendants()
                .find(|p| p.has_tag_name("property") && p.attribute("name") == Some(name))
                .and_then(|p| p.attribute("value"))
                .map(str::to_string)
        };
        assert_eq!(prop("rig").as_deref(), Some("virtual"));
        assert_eq!(prop("seed").as_deref(), Some("11"));
        assert!(prop("endpoint").is_some());
        assert_eq!(prop("merged_from"), Some(junit.display().to_string()));
    }
    // A case merged twice is refused, naming both files.
    let out = merge(&merged, &junits[0], &junits[0]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
