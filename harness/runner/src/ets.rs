//! `meterbench ets`: which OMA LwM2M ETS interoperability tests the cases cover.
//!
//! The catalog (`fixtures/ets/lwm2m-1.1.yaml`) lists the ETS test ids read in
//! public sources, each with its title, area and source. Every case names the
//! ids it covers (`ets`), those whose procedure it runs only in part
//! (`ets_partial`), or says why no test applies in full (`ets_none`). The
//! command checks the cases against the catalog (exit code 2 and every problem
//! on stderr) and prints the coverage as Markdown; `docs/ets-coverage.md` is
//! its output, kept current by `tests/ets_coverage.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use crate::case::{self, model::CaseFile, LoadError, Vars};

/// Why `meterbench ets` has no coverage to print: each names the file (and
/// the line and column, or the catalog id) where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum EtsError {
    #[error("{}: cannot read the ETS catalog: {source}", file.display())]
    ReadCatalog {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", file.display())]
    CatalogSyntax {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}: {id:?} is not an ETS id (LightweightM2M-<version>-int-<number>)", file.display())]
    NotAnEtsId { file: PathBuf, id: String },
    #[error("{}: {id} is listed twice", file.display())]
    ListedTwice { file: PathBuf, id: String },
    #[error("{}: {id} has no {field}", file.display())]
    MissingField {
        file: PathBuf,
        id: String,
        field: &'static str,
    },
    #[error("{}: {id}: `also` must name sources other than `source`", file.display())]
    AlsoRepeatsSource { file: PathBuf, id: String },
    #[error(transparent)]
    Case(#[from] LoadError),
    #[error("{}: cannot read case file: {source}", file.display())]
    ReadCase {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", file.display())]
    CaseSyntax { file: PathBuf, message: String },
    /// Every way the cases disagree with the catalog, one line each.
    #[error("{}", .0.join("\n"))]
    Disagreements(Vec<String>),
}

#[derive(Debug, Args)]
pub struct EtsArgs {
    /// Folder of case files (searched recursively).
    #[arg(long, value_name = "DIR", default_value = "testcases")]
    pub cases: PathBuf,
    /// The catalog of ETS test ids, titles and sources.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "fixtures/ets/lwm2m-1.1.yaml"
    )]
    pub catalog: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    cases: Vec<EtsCase>,
}

/// One ETS test as the catalog lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtsCase {
    /// `LightweightM2M-<version>-int-<number>`.
    pub id: String,
    pub title: String,
    pub area: Area,
    /// The ETS document the source refers to.
    pub spec: String,
    /// Where the id and title were read.
    pub source: String,
    /// Other places that quote the id.
    #[serde(default)]
    pub also: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Bootstrap,
    Registration,
    DeviceManagement,
    InformationReporting,
    Security,
    Firmware,
}

impl Area {
    fn name(self) -> &'static str {
        match self {
            Area::Bootstrap => "bootstrap",
            Area::Registration => "registration",
            Area::DeviceManagement => "device management",
            Area::InformationReporting => "information reporting",
            Area::Security => "security",
            Area::Firmware => "firmware",
        }
    }
}

/// What a case says about the ETS.
#[derive(Debug, Clone)]
pub struct CaseEts {
    pub id: String,
    pub file: PathBuf,
    pub ets: Vec<String>,
    pub partial: Vec<String>,
    pub none: Option<String>,
}

pub fn main(args: EtsArgs) -> ExitCode {
    match coverage(&args.catalog, &args.cases) {
        Ok(markdown) => {
            print!("{markdown}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Loads and checks the catalog and the cases; the Markdown coverage, or every problem found.
pub fn coverage(catalog_file: &Path, cases_dir: &Path) -> Result<String, EtsError> {
    let catalog = load_catalog(catalog_file)?;
    let cases = load_cases(cases_dir)?;
    let problems = check(&catalog, &cases, catalog_file);
    if !problems.is_empty() {
        return Err(EtsError::Disagreements(problems));
    }
    Ok(render(&catalog, &cases, catalog_file, cases_dir))
}

/// Reads the catalog: known fields only, well-formed and unique ids.
pub fn load_catalog(file: &Path) -> Result<Vec<EtsCase>, EtsError> {
    let text = std::fs::read_to_string(file).map_err(|source| EtsError::ReadCatalog {
        file: file.to_path_buf(),
        source,
    })?;
    let raw: CatalogFile = serde_saphyr::from_str(&text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let message = e.to_string();
        EtsError::CatalogSyntax {
            file: file.to_path_buf(),
            line,
            column,
            message: message.lines().next().unwrap_or_default().to_owned(),
        }
    })?;
    let file = || file.to_path_buf();
    let mut seen = BTreeSet::new();
    for c in &raw.cases {
        if !is_ets_id(&c.id) {
            return Err(EtsError::NotAnEtsId {
                file: file(),
                id: c.id.clone(),
            });
        }
        if !seen.insert(c.id.as_str()) {
            return Err(EtsError::ListedTwice {
                file: file(),
                id: c.id.clone(),
            });
        }
        for (field, value) in [
            ("title", &c.title),
            ("spec", &c.spec),
            ("source", &c.source),
        ] {
            if value.trim().is_empty() {
                return Err(EtsError::MissingField {
                    file: file(),
                    id: c.id.clone(),
                    field,
                });
            }
        }
        if c.also.iter().any(|a| a.trim().is_empty() || *a == c.source) {
            return Err(EtsError::AlsoRepeatsSource {
                file: file(),
                id: c.id.clone(),
            });
        }
    }
    Ok(raw.cases)
}

/// Loads the cases as `meterbench run` does (a malformed one is an error),
/// then reads their ETS fields.
pub fn load_cases(dir: &Path) -> Result<Vec<CaseEts>, EtsError> {
    let cases = case::load_cases(dir, &Vars::new())?;
    cases
        .into_iter()
        .map(|c| {
            let text = std::fs::read_to_string(&c.file).map_err(|source| EtsError::ReadCase {
                file: c.file.clone(),
                source,
            })?;
            let raw: CaseFile =
                serde_saphyr::from_str(&text).map_err(|e| EtsError::CaseSyntax {
                    file: c.file.clone(),
                    message: e.to_string(),
                })?;
            Ok(CaseEts {
                id: c.id,
                file: c.file,
                ets: raw.ets,
                partial: raw.ets_partial,
                none: raw.ets_none,
            })
        })
        .collect()
}

/// `LightweightM2M-<major>.<minor>[.<patch>]-int-<number>`.
fn is_ets_id(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("LightweightM2M-") else {
        return false;
    };
    let Some((version, number)) = rest.split_once("-int-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = version.split('.').collect();
    (2..=3).contains(&parts.len()) && parts.iter().all(|p| digits(p)) && digits(number)
}

/// The ETS ids written in a free text (an `ets_none` reason may name the nearest test).
fn ids_in(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("LightweightM2M-") {
        let tail = &rest[at..];
        let end = tail
            .char_indices()
            .find(|(i, ch)| {
                !(ch.is_ascii_alphanumeric()
                    || *ch == '-'
                    || (*ch == '.' && tail[i + 1..].starts_with(|n: char| n.is_ascii_digit())))
            })
            .map_or(tail.len(), |(i, _)| i);
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

/// Every way the cases disagree with the catalog, one line each.
pub fn check(catalog: &[EtsCase], cases: &[CaseEts], catalog_file: &Path) -> Vec<String> {
    let known: BTreeSet<&str> = catalog.iter().map(|c| c.id.as_str()).collect();
    let mut problems = Vec::new();
    for c in cases {
        let file = c.file.display();
        for (field, ids) in [("ets", &c.ets), ("ets_partial", &c.partial)] {
            let mut seen = BTreeSet::new();
            for id in ids {
                if !known.contains(id.as_str()) {
                    problems.push(format!(
                        "{file}: `{field}` names {id}, which is not in {}",
                        catalog_file.display()
                    ));
                }
                if !seen.insert(id) {
                    problems.push(format!("{file}: `{field}` names {id} twice"));
                }
            }
        }
        for id in &c.partial {
            if c.ets.contains(id) {
                problems.push(format!("{file}: {id} is in both `ets` and `ets_partial`"));
            }
        }
        let reason = c.none.as_deref().map(str::trim).filter(|r| !r.is_empty());
        match (c.ets.is_empty(), reason) {
            (true, None) => problems.push(format!(
                "{file}: no `ets` id and no `ets_none` saying why no ETS test applies"
            )),
            (false, Some(_)) => problems.push(format!(
                "{file}: `ets_none` is for a case without `ets` ids"
            )),
            _ => {}
        }
        for id in c.none.as_deref().map(ids_in).unwrap_or_default() {
            if !known.contains(id) {
                problems.push(format!(
                    "{file}: `ets_none` names {id}, which is not in {}",
                    catalog_file.display()
                ));
            }
        }
    }
    problems
}

/// The coverage as Markdown: a summary per area, a table of every ETS test
/// with the cases covering it, and the cases that cover none in full.
pub fn render(
    catalog: &[EtsCase],
    cases: &[CaseEts],
    catalog_file: &Path,
    cases_dir: &Path,
) -> String {
    let mut full: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut partly: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in cases {
        for id in &c.ets {
            full.entry(id).or_default().push(&c.id);
        }
        for id in &c.partial {
            partly.entry(id).or_default().push(&c.id);
        }
    }
    let mut per_area: BTreeMap<Area, (usize, usize)> = BTreeMap::new();
    for e in catalog {
        let n = per_area.entry(e.area).or_default();
        n.1 += 1;
        if full.contains_key(e.id.as_str()) {
            n.0 += 1;
        }
    }
    let covered: usize = per_area.values().map(|n| n.0).sum();
    let summary: Vec<String> = per_area
        .iter()
        .map(|(area, (c, t))| format!("{} {c} of {t}", area.name()))
        .collect();

    let mut out = String::new();
    let _ = writeln!(out, "# OMA LwM2M ETS coverage\n");
    let _ = writeln!(
        out,
        "<!-- Generated by `meterbench ets`; do not edit. Regenerate with \
         `cargo run --release -- ets > docs/ets-coverage.md`. -->\n"
    );
    let _ = writeln!(
        out,
        "The OMA LwM2M ETS interoperability tests listed in `{}` (each with the \
         public source its id was read in) and the cases under `{}` that cover \
         them. A case covers a test when it runs the test's procedure and checks \
         its pass criteria; cases that run only part of it are named as \
         \"partly\" and do not count.\n",
        catalog_file.display(),
        cases_dir.display()
    );
    let _ = writeln!(
        out,
        "**Covered: {}; all areas {covered} of {}.**\n",
        summary.join(", "),
        catalog.len()
    );
    let _ = writeln!(out, "| ETS id | Area | Title | Covered by |");
    let _ = writeln!(out, "|---|---|---|---|");
    for e in catalog {
        let by = full.get(e.id.as_str()).map(|v| v.join(", "));
        let part = partly.get(e.id.as_str()).map(|v| v.join(", "));
        let cell = match (by, part) {
            (Some(by), None) => by,
            (Some(by), Some(p)) => format!("{by}; partly: {p}"),
            (None, Some(p)) => format!("not yet (partly: {p})"),
            (None, None) => "not yet".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            e.id,
            e.area.name(),
            cell_text(&e.title),
            cell_text(&cell)
        );
    }
    let _ = writeln!(out, "\n## Cases that cover no ETS test in full\n");
    let _ = writeln!(out, "| Case | File | Why |");
    let _ = writeln!(out, "|---|---|---|");
    for c in cases.iter().filter(|c| c.ets.is_empty()) {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} |",
            c.id,
            c.file.display(),
            cell_text(c.none.as_deref().unwrap_or_default())
        );
    }
    out
}

/// One line, pipes escaped: safe inside a Markdown table cell.
fn cell_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ets(id: &str, area: Area) -> EtsCase {
        EtsCase {
            id: id.into(),
            title: format!("title of {id}"),
            area,
            spec: "spec".into(),
            source: "source".into(),
            also: Vec::new(),
        }
    }

    fn case(id: &str, ets: &[&str], partial: &[&str], none: Option<&str>) -> CaseEts {
        CaseEts {
            id: id.into(),
            file: PathBuf::from(format!("testcases/{id}.yaml")),
            ets: ets.iter().map(|s| s.to_string()).collect(),
            partial: partial.iter().map(|s| s.to_string()).collect(),
            none: none.map(str::to_string),
        }
    }

    fn catalog() -> Vec<EtsCase> {
        vec![
            ets("LightweightM2M-1.1-int-101", Area::Registration),
            ets("LightweightM2M-1.1-int-102", Area::Registration),
            ets("LightweightM2M-1.0-int-770", Area::Firmware),
        ]
    }

    fn problems(cases: &[CaseEts]) -> Vec<String> {
        check(&catalog(), cases, Path::new("catalog.yaml"))
    }

    #[test]
    fn a_bad_catalog_entry_names_the_file_and_the_id() {
        let dir = std::env::temp_dir().join(format!("meterbench-ets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("catalog.yaml");
        let entry = |id: &str, also: &str| {
            format!("  - {{ id: {id}, title: t, area: security, spec: s, source: src, also: [{also}] }}\n")
        };
        let cases = [
            (
                entry("LwM2M-1", ""),
                "\"LwM2M-1\" is not an ETS id (LightweightM2M-<version>-int-<number>)",
            ),
            (
                entry("LightweightM2M-1.1-int-1", "").repeat(2),
                "LightweightM2M-1.1-int-1 is listed twice",
            ),
            (
                entry("LightweightM2M-1.1-int-1", "src"),
                "LightweightM2M-1.1-int-1: `also` must name sources other than `source`",
            ),
        ];
        for (entries, says) in cases {
            std::fs::write(&file, format!("cases:\n{entries}")).unwrap();
            let e = load_catalog(&file).unwrap_err().to_string();
            assert_eq!(e, format!("{}: {says}", file.display()));
        }
        std::fs::write(&file, "cases:\n  - { id: 1, nope: 2 }\n").unwrap();
        let e = load_catalog(&file).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:", file.display())), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = load_catalog(&file).unwrap_err().to_string();
        assert!(e.contains("cannot read the ETS catalog"), "{e}");
    }

    #[test]
    fn ets_ids_are_recognised() {
        assert!(is_ets_id("LightweightM2M-1.1-int-0"));
        assert!(is_ets_id("LightweightM2M-1.0.1-int-770"));
        assert!(!is_ets_id("LightweightM2M-1.1-int-"));
        assert!(!is_ets_id("LightweightM2M-1.1-101"));
        assert!(!is_ets_id("LwM2M-1.1-int-101"));
        assert!(!is_ets_id("LightweightM2M-x.1-int-101"));
    }

    #[test]
    fn ids_are_found_in_free_text() {
        assert_eq!(
            ids_in(
                "nearest: LightweightM2M-1.1-int-103 (Disable), and LightweightM2M-1.0-int-770."
            ),
            ["LightweightM2M-1.1-int-103", "LightweightM2M-1.0-int-770"]
        );
        assert!(ids_in("no ETS test cuts power").is_empty());
    }

    #[test]
    fn a_consistent_case_set_has_no_problems() {
        let cases = [
            case("a", &["LightweightM2M-1.1-int-101"], &[], None),
            case(
                "b",
                &[],
                &["LightweightM2M-1.1-int-102"],
                Some("only the periodic Update"),
            ),
        ];
        assert!(problems(&cases).is_empty(), "{:?}", problems(&cases));
    }

    #[test]
    fn an_id_not_in_the_catalog_is_named_with_the_file() {
        let p = problems(&[case("a", &["LightweightM2M-1.1-int-999"], &[], None)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("testcases/a.yaml: `ets` names LightweightM2M-1.1-int-999"));
        let p = problems(&[case("b", &[], &["LightweightM2M-1.1-int-7"], Some("why"))]);
        assert!(
            p[0].contains("`ets_partial` names LightweightM2M-1.1-int-7"),
            "{p:?}"
        );
        let p = problems(&[case("c", &[], &[], Some("see LightweightM2M-1.1-int-5"))]);
        assert!(
            p[0].contains("`ets_none` names LightweightM2M-1.1-int-5"),
            "{p:?}"
        );
    }

    #[test]
    fn a_case_without_ids_must_say_why() {
        let p = problems(&[case("a", &[], &[], None)]);
        assert!(p[0].contains("no `ets` id and no `ets_none`"), "{p:?}");
        let p = problems(&[case("a", &[], &[], Some("  "))]);
        assert!(p[0].contains("no `ets` id and no `ets_none`"), "{p:?}");
        let p = problems(&[case("a", &["LightweightM2M-1.1-int-101"], &[], Some("why"))]);
        assert!(
            p[0].contains("`ets_none` is for a case without `ets` ids"),
            "{p:?}"
        );
    }

    #[test]
    fn an_id_is_covered_or_partly_covered_not_both() {
        let id = "LightweightM2M-1.1-int-101";
        let p = problems(&[case("a", &[id, id], &[id], None)]);
        assert!(
            p.iter()
                .any(|l| l.contains("names LightweightM2M-1.1-int-101 twice")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.contains("in both `ets` and `ets_partial`")),
            "{p:?}"
        );
    }

    #[test]
    fn the_table_counts_full_coverage_per_area() {
        let cases = [
            case("reg-a", &["LightweightM2M-1.1-int-101"], &[], None),
            case(
                "reg-b",
                &[],
                &["LightweightM2M-1.1-int-102", "LightweightM2M-1.1-int-101"],
                Some("a | b\n c"),
            ),
        ];
        let md = render(&catalog(), &cases, Path::new("cat.yaml"), Path::new("tc"));
        assert!(
            md.contains("**Covered: registration 1 of 2, firmware 0 of 1; all areas 1 of 3.**"),
            "{md}"
        );
        assert!(md.contains("| LightweightM2M-1.1-int-101 | registration | title of LightweightM2M-1.1-int-101 | reg-a; partly: reg-b |"), "{md}");
        assert!(md.contains("| LightweightM2M-1.1-int-102 | registration | title of LightweightM2M-1.1-int-102 | not yet (partly: reg-b) |"), "{md}");
        assert!(md.contains("| LightweightM2M-1.0-int-770 | firmware | title of LightweightM2M-1.0-int-770 | not yet |"), "{md}");
        assert!(
            md.contains("| reg-b | `testcases/reg-b.yaml` | a \\| b c |"),
            "{md}"
        );
        assert!(!md.contains("| reg-a | `"), "{md}");
    }
}
