//! events.jsonl and plain output: a two-case run's events agree with its
//! JUnit, a soak's cuts land in events.jsonl and `power-cuts.csv` with only
//! a summary in the JUnit, nothing on a pipe carries an escape code (run and
//! serve), and a report folder that cannot be written stops the run with
//! exit code 2 before any bench is touched.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{junit, meterbench, parse, property, testcases};

const ESC: u8 = 0x1b;

/// A case that passes: two rounds of a random cut and the registration
/// after it (the virtual meter comes back in about a second).
const SMALL_SOAK: &str = "\
id: small-soak
title: two random cuts
timeout: 60s
steps:
  - await: registered
    within: 30s
  - repeat:
      times: 2
      steps:
        - power_cut: { random_within: [0ms, 300ms], restore_after: 200ms }
        - await: registered
          within: 30s
";

/// A case that fails at line 7: the device is not made by Nobody Inc.
const WRONG_MANUFACTURER: &str = "\
id: wrong-manufacturer
title: expects a manufacturer the device does not have
timeout: 60s
steps:
  - await: registered
    within: 30s
  - expect: { path: /3/0/0, equals: \"Nobody Inc\" }
";

fn lines_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("events.jsonl written");
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {l}", i + 1));
            assert!(v["type"].is_string(), "no type: {l}");
            let at = v["at"].as_str().unwrap_or_else(|| panic!("no at: {l}"));
            assert!(
                chrono::DateTime::parse_from_rfc3339(at).is_ok(),
                "at is not RFC 3339: {l}"
            );
            v
        })
        .collect()
}

/// ~6 s: two cases on the virtual rig, stdout and stderr piped.
#[test]
fn a_two_case_runs_events_agree_with_its_junit_and_its_output_is_plain() {
    let reports = tempfile::tempdir().unwrap();
    let cases = tempfile::tempdir().unwrap();
    std::fs::write(cases.path().join("small-soak.yaml"), SMALL_SOAK).unwrap();
    std::fs::write(cases.path().join("wrong.yaml"), WRONG_MANUFACTURER).unwrap();
    let out = meterbench(&[
        "run",
        "-v",
        "--seed",
        "4242",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--cases",
        cases.path().to_str().unwrap(),
    ])
    // A pipe, not CI: the terminal check alone must choose plain output.
    .env_remove("CI")
    .env_remove("NO_COLOR")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.stdout.contains(&ESC) && !out.stderr.contains(&ESC),
        "an escape code on a pipe:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("[virtual::small-soak] line 10 (round 2): power cut"),
        "plain progress lines: {stderr}"
    );

    let xml = junit(reports.path());
    let doc = parse(&xml);
    let junit_verdicts: Vec<(String, &'static str)> = testcases(&doc)
        .into_iter()
        .map(|(name, verdict, _)| {
            let v = match verdict.as_deref() {
                None => "passed",
                Some("failure") => "failed",
                Some("error") => "error",
                Some("skipped") => "skipped",
                Some(other) => panic!("verdict {other}"),
            };
            (name, v)
        })
        .collect();
    assert_eq!(junit_verdicts.len(), 2, "{xml}");

    let events = lines_of(&reports.path().join("latest/events.jsonl"));
    assert_eq!(events[0]["type"], "run_start");
    assert_eq!(events[0]["seed"], "4242");
    let rig_hash = events[0]["rigs"][0]["sha256"].as_str().unwrap();
    assert_eq!(rig_hash.len(), 64, "{}", events[0]);
    assert_eq!(events.last().unwrap()["type"], "run_end");
    assert_eq!(events.last().unwrap()["passed"], 1);
    assert_eq!(events.last().unwrap()["failed"], 1);

    for (name, verdict) in &junit_verdicts {
        // The JUnit's testsuite is the rig, its testcase the case id.
        let (rig, case) = ("virtual", name.as_str());
        let of_case: Vec<&Value> = events
            .iter()
            .filter(|e| e["rig"] == *rig && e["case"] == *case)
            .collect();
        let types: Vec<&str> = of_case
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types.first(), Some(&"case_start"), "{name}: {types:?}");
        assert_eq!(types.last(), Some(&"case_end"), "{name}: {types:?}");
        assert_eq!(
            of_case.last().unwrap()["verdict"],
            *verdict,
            "{name}: events.jsonl and junit.xml disagree"
        );
        // Each step starts and ends, in order, named by file:line.
        let mut open: Vec<String> = Vec::new();
        for e in &of_case {
            let source = e["source"].as_str().unwrap_or("");
            match e["type"].as_str().unwrap() {
                "step_start" => {
                    let file_line = format!("{}:{}", file_of(case), e["line"]);
                    assert!(source.ends_with(&file_line), "{source} vs {file_line}");
                    open.push(source.to_string());
                }
                "step_end" => {
                    assert_eq!(open.pop().as_deref(), Some(source), "{name}: {e}");
                }
                _ => {}
            }
        }
        assert!(open.is_empty(), "{name}: steps never ended: {open:?}");
    }
    let ends = |case: &str| -> Vec<(u64, String)> {
        events
            .iter()
            .filter(|e| e["case"] == case && e["type"] == "step_end")
            .map(|e| {
                (
                    e["line"].as_u64().unwrap(),
                    e["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        ends("wrong-manufacturer"),
        vec![(5, "passed".to_string()), (7, "failed".to_string())]
    );
    // The repeat (line 7) ends after its two rounds of two steps.
    let soak = ends("small-soak");
    assert_eq!(soak.len(), 6, "{soak:?}");
    assert_eq!(soak[5], (7, "passed".to_string()));

    // The cuts: events with their seeds, a CSV in the case folder, only a
    // summary in the JUnit.
    let cuts: Vec<&Value> = events.iter().filter(|e| e["type"] == "power_cut").collect();
    assert_eq!(cuts.len(), 2);
    for (cut, round) in cuts.iter().zip([1, 2]) {
        assert_eq!(cut["round"], round);
        assert_eq!(cut["line"], 10);
        assert_eq!(cut["run_seed"], "4242");
        assert_eq!(cut["outcome"], "restored");
        let seed = cut["seed"].as_str().unwrap_or_else(|| panic!("{cut}"));
        assert!(seed.parse::<u64>().is_ok(), "{cut}");
        assert!(cut["at_ms"].as_u64().unwrap() <= 1000, "{cut}");
    }
    let csv = std::fs::read_to_string(
        reports
            .path()
            .join("latest/virtual/small-soak/power-cuts.csv"),
    )
    .unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "line,round,at_ms,trigger,seed,run_seed,outcome,recovery"
    );
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[2].starts_with(&format!("10,2,{},", cuts[1]["at_ms"])),
        "{csv}"
    );
    assert!(rows[2].contains(&format!(
        ",{},4242,restored,",
        cuts[1]["seed"].as_str().unwrap()
    )));
    assert_eq!(property(&doc, "power_cuts.count"), Some("2"));
    assert_eq!(property(&doc, "power_cuts.passed"), Some("2"));
    assert_eq!(property(&doc, "power_cuts.replay_seed"), Some("4242"));
    assert!(
        !xml.contains("cut_line_"),
        "per-cut properties left in the JUnit"
    );
    assert!(
        stderr.contains(&format!(
            "power cut virtual::small-soak line 10 round 2: cut at {} ms, seed {} (replay: --seed 4242)",
            cuts[1]["at_ms"],
            cuts[1]["seed"].as_str().unwrap()
        )),
        "{stderr}"
    );
    // One LwM2M datagram summary per case, with both directions counted
    // (and one for the bootstrap server in the case that bootstrapped).
    for case in ["small-soak", "wrong-manufacturer"] {
        let lwm2m: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "datagrams" && e["case"] == case && e["server"] == "lwm2m")
            .collect();
        assert_eq!(lwm2m.len(), 1, "{case}");
        assert!(lwm2m[0]["received"].as_u64() > Some(0), "{}", lwm2m[0]);
        assert!(lwm2m[0]["sent"].as_u64() > Some(0), "{}", lwm2m[0]);
    }
}

/// A push delivers the image itself, and HTTP has no progress events: both
/// still reach events.jsonl as `transfer` samples, as a CoAP pull's file
/// server gives them, the last one complete with every byte.
const SMALL_PUSH: &str = "\
id: small-push
title: a pushed image
timeout: 60s
steps:
  - await: registered
    within: 30s
  - firmware: { role: upgrade, method: push, block_size: 512 }
";

const SMALL_HTTP_PULL: &str = "\
id: small-http-pull
title: an image pulled over HTTP
timeout: 60s
steps:
  - await: registered
    within: 30s
  - firmware: { role: upgrade, method: pull-http }
  - await: { path: /5/*/3, equals: 2 }
";

/// ~6 s: a push and an HTTP pull on the virtual rig.
#[test]
fn a_push_and_an_http_pull_write_their_progress_as_transfer_events() {
    let reports = tempfile::tempdir().unwrap();
    let cases = tempfile::tempdir().unwrap();
    std::fs::write(cases.path().join("small-push.yaml"), SMALL_PUSH).unwrap();
    std::fs::write(cases.path().join("small-http.yaml"), SMALL_HTTP_PULL).unwrap();
    let out = meterbench(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--cases",
        cases.path().to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = lines_of(&reports.path().join("latest/events.jsonl"));
    for case in ["small-push", "small-http-pull"] {
        let transfers: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "transfer" && e["case"] == case)
            .collect();
        assert!(
            !transfers.is_empty(),
            "{case}: samples in events.jsonl\n{stderr}"
        );
        let last = transfers.last().unwrap();
        assert_eq!(last["complete"], true, "{case}: {last}");
        assert_eq!(last["image"], "meter-2.0.bin", "{case}: {last}");
        assert_eq!(last["offset"], last["size"], "{case}: every byte: {last}");
        let offsets: Vec<u64> = transfers
            .iter()
            .map(|t| t["offset"].as_u64().unwrap())
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] <= w[1]),
            "{case}: offsets only grow: {offsets:?}"
        );
    }
    let push_last = events
        .iter()
        .rfind(|e| e["type"] == "transfer" && e["case"] == "small-push")
        .unwrap();
    assert!(
        push_last["blocks"].as_u64().unwrap() >= push_last["size"].as_u64().unwrap() / 512,
        "512-byte blocks: {push_last}"
    );
}

fn file_of(case: &str) -> &'static str {
    match case {
        "small-soak" => "small-soak.yaml",
        "wrong-manufacturer" => "wrong.yaml",
        other => panic!("case {other}"),
    }
}

/// < 1 s: `--report-dir` names a path under a regular file, so no folder
/// can be made there; the run stops with exit code 2 naming the path and
/// the reason, before any bench is touched (no run banner, no JUnit).
#[test]
fn a_report_folder_that_cannot_be_written_stops_the_run_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let report_dir = file.join("reports");
    let started = Instant::now();
    let out = meterbench(&[
        "run",
        "--report-dir",
        report_dir.to_str().unwrap(),
        "reg-initial",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--report-dir {}:", report_dir.display())),
        "names the path: {stderr}"
    );
    assert!(stderr.contains("Not a directory"), "says why: {stderr}");
    assert!(
        !stderr.contains("meterbench run "),
        "a run started: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// ~1 s: `meterbench serve` with its debug log on a pipe (CI unset):
/// one registration, then Ctrl-C; no escape code in stdout or stderr.
#[test]
fn serve_on_a_pipe_writes_no_escape_codes() {
    use std::net::UdpSocket;
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = meterbench(&["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("CI")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let register = register_datagram();
    let mut answered = false;
    // The server may still be binding: ask a few times.
    for _ in 0..20 {
        socket
            .send_to(&register, ("127.0.0.1", port))
            .expect("send to serve");
        let mut buf = [0u8; 1500];
        if socket.recv_from(&mut buf).is_ok() {
            answered = true;
            break;
        }
    }
    assert!(answered, "serve answered the registration");
    crate::support::send_signal(&child, nix::sys::signal::Signal::SIGINT);
    let status = crate::support::wait_or_kill(&mut child, Duration::from_secs(10));
    assert!(status.is_some(), "serve stopped on SIGINT");
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    assert!(text.contains("stopped;"), "serve said it stopped: {text}");
    assert!(
        text.contains("DEBUG") || text.contains("INFO"),
        "serve logged something to check: {text}"
    );
    assert!(
        !stdout.contains(&ESC) && !stderr.contains(&ESC),
        "an escape code on a pipe: {text:?}"
    );
}

/// `CON POST /rd?ep=events-test&lt=60` with `</3/0>`.
fn register_datagram() -> Vec<u8> {
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = 7;
    p.set_token(vec![0x11]);
    p.add_option(CoapOption::UriPath, b"rd".to_vec());
    for q in ["ep=events-test", "lt=60", "lwm2m=1.1"] {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.add_option(CoapOption::ContentFormat, vec![40]);
    p.payload = b"</3/0>".to_vec();
    p.to_bytes().unwrap()
}
