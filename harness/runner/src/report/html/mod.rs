//! `reports/<run-id>/index.html`: one self-contained page per run (style and
//! script inline, nothing fetched: labs are offline and reports are archived
//! for years), built from the run's junit.xml and artifacts so that
//! `meterbench report RUN_DIR` rebuilds it for a merged run too.
//!
//! The page is a minijinja template with auto-escaping on: every value from
//! a device, a case file or a log goes through the engine's HTML escaping,
//! never through string concatenation.

mod artifacts;
mod firmware_plot;
mod message_log;
mod model;
mod power_cuts;
mod sequence;
mod steps;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use minijinja::{context, Environment};

const PAGE: &str = include_str!("../../../templates/report.html");
const STYLE: &str = include_str!("../../../templates/report.css");
const SCRIPT: &str = include_str!("../../../templates/report.js");

#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error("the report template failed: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds the page of the run in `run_dir` and writes `run_dir/index.html`.
/// Returns the path and what the folder lacked (each also named in the page).
pub fn write(run_dir: &Path) -> Result<(PathBuf, Vec<String>), HtmlError> {
    let page = model::load(run_dir);
    let html = render(
        &page,
        &chrono::Local::now()
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
    )?;
    let path = run_dir.join("index.html");
    super::write_atomically(&path, html.as_bytes()).map_err(|source| HtmlError::Write {
        path: path.clone(),
        source,
    })?;
    Ok((path, page.problems))
}

fn render(page: &model::Page, generated_at: &str) -> Result<String, HtmlError> {
    let mut env = Environment::new();
    // Auto-escaping follows the name: `.html` escapes every `{{ value }}`.
    env.add_template("report.html", PAGE)?;
    env.add_template("report.css", STYLE)?;
    env.add_template("report.js", SCRIPT)?;
    let template = env.get_template("report.html")?;
    Ok(template.render(context! {
        page => page,
        verdicts => model::VERDICTS,
        generated_at => generated_at,
        generator => concat!("meterbench ", env!("CARGO_PKG_VERSION")),
    })?)
}

/// `meterbench report RUN_DIR`.
pub fn main(run_dir: &Path) -> ExitCode {
    if !run_dir.is_dir() {
        eprintln!("error: {} is not a run folder", run_dir.display());
        return ExitCode::from(2);
    }
    match write(run_dir) {
        Ok((path, problems)) => {
            for p in &problems {
                eprintln!("warning: {p}");
            }
            println!("{}", path.display());
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Called by `meterbench run` once junit.xml is final.
pub fn write_for_run(run_dir: &Path) {
    match write(run_dir) {
        Ok((path, _)) => eprintln!("page: {}", path.display()),
        Err(e) => eprintln!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="meterbench r1">
  <testsuite name="bench&amp;1">
    <properties><property name="endpoint" value="&lt;b&gt;meter&lt;/b&gt;"/></properties>
    <testcase name="dm-x" time="0.1">
      <failure message="expected &lt;script&gt;alert(1)&lt;/script&gt;" type="device"/>
      <system-out>[  0.000s] line   3: expect &lt;img src=x onerror=alert(2)&gt;
</system-out>
    </testcase>
  </testsuite>
</testsuites>"#;

    fn page_of(junit: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junit.xml"), junit).unwrap();
        render(&model::load(dir.path()), "now").unwrap()
    }

    #[test]
    fn values_from_the_run_are_escaped_by_the_engine() {
        let html = page_of(JUNIT);
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(
            html.contains("expected &lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>meter</b>"), "{html}");
        assert!(html.contains("bench&amp;1"), "{html}");
    }

    #[test]
    fn the_page_holds_its_style_and_script_and_fetches_nothing() {
        let html = page_of(JUNIT);
        assert!(html.contains("<style>") && html.contains("<script>"));
        for outside in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
            assert!(!html.contains(outside), "{outside} in the page");
        }
        // One verdict-table row for the case, carrying its verdict and group.
        assert_eq!(html.matches("<tr class=\"case\"").count(), 1);
        assert!(
            html.contains("data-verdict=\"failed\" data-group=\"dm\""),
            "{html}"
        );
    }

    #[test]
    fn missing_artifacts_and_a_missing_junit_are_named_in_the_page() {
        let html = page_of(JUNIT);
        assert!(
            html.contains("not recorded: bench&amp;1&#x2f;dm-x&#x2f;device.log"),
            "{html}"
        );
        let empty = tempfile::tempdir().unwrap();
        let html = render(&model::load(empty.path()), "now").unwrap();
        assert!(html.contains("junit.xml is missing from"), "{html}");
    }
}
