//! The run's page in a real browser: a run of two quick cases (one fails on
//! any correct device) writes index.html; headless Chromium opens it and the
//! test fails on any script error, then checks from the laid-out page that
//! the verdict table and each case's message sequence chart have a size.
//! Takes about 5 s: the two cases and two Chromium starts, each bounded.
//!
//! Chromium is `chromium-headless-shell` (Debian's package, installed by
//! .ci/run), else `chromium`, or the path in METERBENCH_CHROMIUM. With
//! METERBENCH_UPDATE_SCREENSHOT=1 the failing run's screenshot also
//! replaces docs/report-failing.png, which the README shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{root, run, text};

const PASSING: &str = "id: browser-reads-manufacturer\ntitle: registers and reads the manufacturer\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - expect: { path: /3/0/0, equals: \"meterbench\" }\n";

/// Fails on any correct device: no meter is made by this manufacturer.
const FAILING: &str = "id: browser-wrong-manufacturer\ntitle: expects a manufacturer the device does not have\ntimeout: 60s\nsteps:\n  - await: registered\n    within: 30s\n  - expect: { path: /3/0/0, equals: \"Nobody Inc\" }\n";

/// Put first in the page's head, before any of its own script: every
/// error and rejected promise lands in an attribute of <html> that
/// --dump-dom prints.
const ERROR_TRAP: &str = "<script>(function(){var r=function(t){var d=document.documentElement;d.setAttribute('data-script-errors',(d.getAttribute('data-script-errors')||'')+t+'\\n');};window.addEventListener('error',function(e){r('error: '+e.message+' at '+e.lineno+':'+e.colno);});window.addEventListener('unhandledrejection',function(e){r('unhandled rejection: '+e.reason);});})();</script>";

/// Put last in the body: measures what the browser laid out, after the
/// page's own script ran, into an attribute --dump-dom prints.
const MEASURE: &str = "<script>(function(){var box=function(el){var b=el.getBoundingClientRect();return Math.round(b.width)+'x'+Math.round(b.height);};var out=[];var t=document.getElementById('verdicts');out.push('table='+(t?box(t):'none'));out.push('rows='+document.querySelectorAll('#verdicts tr.case').length);var c=document.querySelectorAll('svg.msc');for(var i=0;i<c.length;i++){out.push('chart='+box(c[i])+':'+c[i].querySelectorAll('g line').length);}document.documentElement.setAttribute('data-measured',out.join(' '));})();</script>";

#[test]
fn the_report_renders_in_chromium_without_script_errors() {
    let chromium = chromium();
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    // The failing case first, so the screenshot's first case is the failure.
    std::fs::write(cases.join("a-wrong-manufacturer.yaml"), FAILING).unwrap();
    std::fs::write(cases.join("b-reads-manufacturer.yaml"), PASSING).unwrap();
    let reports = dir.path().join("reports");
    let out = run(&[
        "run",
        "--report-dir",
        reports.to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "one case fails:\n{}", text(&out));
    let run_dir = reports.join("latest").canonicalize().unwrap();
    let page = std::fs::read_to_string(run_dir.join("index.html"))
        .unwrap_or_else(|e| panic!("index.html written ({e}):\n{}", text(&out)));

    // The page's own scripts run after the trap; the measurement after them.
    let head = page.find("<head>").expect("the page has a head") + "<head>".len();
    let body_end = page.rfind("</body>").expect("the page has a body end");
    let checked = format!(
        "{}{ERROR_TRAP}{}{MEASURE}{}",
        &page[..head],
        &page[head..body_end],
        &page[body_end..]
    );
    let checked_path = run_dir.join("browser-check.html");
    std::fs::write(&checked_path, checked).unwrap();

    let started = Instant::now();
    let (dom, stderr) = chromium_run(&chromium, &["--dump-dom"], &checked_path);
    assert_eq!(
        html_attribute(&dom, "data-script-errors"),
        None,
        "script errors in the page"
    );
    let html = html_attribute(&dom, "data-measured").unwrap_or_else(|| {
        panic!(
            "the measuring script ran; DOM:\n{}\nstderr:\n{stderr}",
            tail(&dom)
        )
    });
    for line in stderr.lines() {
        assert!(
            !(line.contains("CONSOLE") && line.contains("Uncaught")),
            "Chromium's console reports an error: {line}"
        );
    }

    // The verdict table: two rows, laid out with a size.
    let fields: Vec<&str> = html.split(' ').collect();
    assert!(fields.contains(&"rows=2"), "{html}");
    let table = size_of(fields[0].strip_prefix("table=").unwrap());
    assert!(
        table.0 > 100 && table.1 > 40,
        "verdict table {table:?}: {html}"
    );
    // A sequence chart per case, each with a size and arrows.
    let charts: Vec<(u32, u32, u32)> = fields
        .iter()
        .filter_map(|f| f.strip_prefix("chart="))
        .map(|c| {
            let (size, lines) = c.split_once(':').unwrap();
            let (w, h) = size_of(size);
            (w, h, lines.parse().unwrap())
        })
        .collect();
    assert_eq!(charts.len(), 2, "{html}");
    for (w, h, arrows) in charts {
        assert!(
            w > 300 && h > 60 && arrows >= 2,
            "chart {w}x{h} with {arrows} arrows: {html}"
        );
    }

    // The failing run's page as a reader sees it.
    let shot = dir.path().join("report-failing.png");
    let screenshot = format!("--screenshot={}", shot.display());
    chromium_run(
        &chromium,
        &[&screenshot, "--window-size=1280,2000", "--hide-scrollbars"],
        &run_dir.join("index.html"),
    );
    let png = std::fs::read(&shot).expect("Chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG"
    );
    if std::env::var_os("METERBENCH_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(root().join("docs/report-failing.png"), &png).unwrap();
    }
    eprintln!("browser check took {:?}", started.elapsed());
}

/// The Chromium to use, or a panic that says how to get one.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("METERBENCH_CHROMIUM") {
        return PathBuf::from(p);
    }
    ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no headless Chromium: install Debian's chromium-headless-shell (.ci/run does) or set METERBENCH_CHROMIUM"
            )
        })
}

/// Runs Chromium headless on `page` with `args`; stdout and stderr. Killed
/// after 30 s: a browser that hangs must not hang the suite.
fn chromium_run(chromium: &Path, args: &[&str], page: &Path) -> (String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            // Root in CI containers: Chromium's sandbox refuses to run as root.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            out_dir.path().join("profile").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", chromium.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium did not finish within 30 s; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "Chromium failed ({status}):\n{stderr}");
    (stdout, stderr)
}

/// The value of an attribute the scripts set on <html>, from Chromium's
/// serialised DOM (HTML, not XML; values are double-quoted with `"` escaped).
fn html_attribute(dom: &str, name: &str) -> Option<String> {
    let rest = &dom[dom.find("<html")?..];
    let at = rest.find(&format!(" {name}=\""))? + name.len() + 3;
    let value = &rest[at..at + rest[at..].find('"')?];
    Some(
        value
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    )
}

fn size_of(wxh: &str) -> (u32, u32) {
    let (w, h) = wxh.split_once('x').unwrap_or(("0", "0"));
    (w.parse().unwrap_or(0), h.parse().unwrap_or(0))
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(2000)..]
}
