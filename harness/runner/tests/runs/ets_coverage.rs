//! The ETS mapping cannot rot: every id a case names is in the catalog, every
//! case without one says why, and docs/ets-coverage.md is what `meterbench ets`
//! prints today.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::{root, run};
use serde::Deserialize;

const CATALOG: &str = "fixtures/ets/lwm2m-1.1.yaml";
const DOC: &str = "docs/ets-coverage.md";

#[derive(Deserialize)]
struct Catalog {
    cases: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    source: String,
}

/// Only the ETS fields of a case file (the loader itself is checked elsewhere).
#[derive(Deserialize)]
struct CaseEts {
    id: String,
    #[serde(default)]
    ets: Vec<String>,
    #[serde(default)]
    ets_partial: Vec<String>,
    ets_none: Option<String>,
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn every_id_a_case_names_is_in_the_catalog() {
    let text = std::fs::read_to_string(root().join(CATALOG)).unwrap();
    let catalog: Catalog = serde_saphyr::from_str(&text).unwrap();
    let known: BTreeSet<&str> = catalog.cases.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(known.len(), catalog.cases.len(), "an id is listed twice");
    for e in &catalog.cases {
        assert!(!e.source.trim().is_empty(), "{} has no source", e.id);
    }

    let mut files = Vec::new();
    yaml_files(&root().join("testcases"), &mut files);
    assert!(!files.is_empty());
    let mut wrong = Vec::new();
    for f in &files {
        let case: CaseEts = serde_saphyr::from_str(&std::fs::read_to_string(f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for id in case.ets.iter().chain(&case.ets_partial) {
            if !known.contains(id.as_str()) {
                wrong.push(format!(
                    "{} ({}): {id} is not in {CATALOG}",
                    case.id,
                    f.display()
                ));
            }
        }
        let reason = case.ets_none.as_deref().map(str::trim).unwrap_or_default();
        if case.ets.is_empty() && reason.is_empty() {
            wrong.push(format!(
                "{} ({}): no `ets` id and no `ets_none` reason",
                case.id,
                f.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_coverage_doc_is_current() {
    let out = run(&["ets"]);
    assert!(
        out.status.success(),
        "meterbench ets failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("| ETS id | Area | Title | Covered by |"));
    assert!(printed.contains("**Covered: bootstrap "), "{printed}");
    let doc = std::fs::read_to_string(root().join(DOC)).unwrap_or_default();
    assert!(
        doc == printed,
        "{DOC} is out of date; regenerate it with `cargo run --release -- ets > {DOC}`"
    );
}

#[test]
fn an_unknown_id_stops_the_command_with_the_file_and_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("made-up.yaml"),
        "id: made-up\ntitle: t\nets: [LightweightM2M-1.1-int-9999]\nsteps:\n  - sleep: 1s\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("silent.yaml"),
        "id: silent\ntitle: t\nets: []\nsteps:\n  - sleep: 1s\n",
    )
    .unwrap();
    let cases = dir.path().to_str().unwrap();
    let out = run(&["ets", "--cases", cases]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("made-up.yaml: `ets` names LightweightM2M-1.1-int-9999, which is not in"),
        "{err}"
    );
    assert!(
        err.contains("silent.yaml: no `ets` id and no `ets_none`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
