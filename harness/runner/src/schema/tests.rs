//! The committed schemas are what the code generates, every shipped rig and
//! case names its schema and validates against it (so the schema is no
//! stricter than the loader on them), and a mistake the loader refuses the
//! schema refuses too, naming where it is. All in-process: ~1 s in release.

use std::path::{Path, PathBuf};

use super::SchemaFile;

impl SchemaFile {
    /// The committed file, relative to the repository root.
    fn committed_path(self) -> &'static str {
        match self {
            SchemaFile::Rig => "schemas/rig.schema.json",
            SchemaFile::Case => "schemas/case.schema.json",
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// YAML as editors read it (YAML 1.2 booleans: `power: on` is text, as
/// the rig loader's `strict_booleans` also reads it), as JSON.
fn yaml_to_json(text: &str, origin: &Path) -> serde_json::Value {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", origin.display()))
}

struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new(file: SchemaFile) -> Validator {
        let schema: serde_json::Value =
            serde_json::from_str(&file.render()).expect("the schema is JSON");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let url = format!("file:///{}", file.committed_path());
        compiler
            .add_resource(&url, schema)
            .expect("the schema is a resource");
        let index = compiler
            .compile(&url, &mut schemas)
            .unwrap_or_else(|e| panic!("{}: {e:#}", file.committed_path()));
        Validator { schemas, index }
    }

    fn check(&self, doc: &serde_json::Value) -> Result<(), String> {
        self.schemas
            .validate(doc, self.index)
            .map_err(|e| e.to_string())
    }
}

fn shipped(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a shipped folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            shipped(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
}

fn shipped_files() -> Vec<(SchemaFile, PathBuf)> {
    let mut rigs = Vec::new();
    shipped(&repo().join("rigs"), &mut rigs);
    let mut cases = Vec::new();
    shipped(&repo().join("testcases"), &mut cases);
    assert!(
        rigs.len() >= 5 && cases.len() >= 50,
        "shipped files not found"
    );
    let rigs = rigs.into_iter().map(|p| (SchemaFile::Rig, p));
    rigs.chain(cases.into_iter().map(|p| (SchemaFile::Case, p)))
        .collect()
}

/// The first line yaml-language-server reads: the schema's path relative
/// to the file's folder.
fn schema_line(file: SchemaFile, yaml: &Path) -> String {
    let depth = yaml
        .strip_prefix(repo())
        .expect("under the repository")
        .components()
        .count()
        - 1;
    format!(
        "# yaml-language-server: $schema={}{}",
        "../".repeat(depth),
        file.committed_path()
    )
}

#[test]
fn committed_schemas_are_what_the_code_generates() {
    for file in [SchemaFile::Rig, SchemaFile::Case] {
        let path = repo().join(file.committed_path());
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let which = match file {
            SchemaFile::Rig => "rig",
            SchemaFile::Case => "case",
        };
        assert!(
            committed == file.render(),
            "{} is not what the code generates: regenerate it with\n  cargo run --release -- schema {which} > {}",
            file.committed_path(),
            file.committed_path()
        );
    }
}

#[test]
fn every_shipped_file_names_its_schema_and_validates_against_it() {
    let rig = Validator::new(SchemaFile::Rig);
    let case = Validator::new(SchemaFile::Case);
    let mut problems = Vec::new();
    for (file, path) in shipped_files() {
        let text = std::fs::read_to_string(&path).expect("a shipped file");
        let want = schema_line(file, &path);
        if text.lines().next() != Some(want.as_str()) {
            problems.push(format!(
                "{}:1: the first line is not `{want}`",
                path.display()
            ));
        }
        let validator = match file {
            SchemaFile::Rig => &rig,
            SchemaFile::Case => &case,
        };
        if let Err(e) = validator.check(&yaml_to_json(&text, &path)) {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_loaders_accept_every_shipped_file_with_its_schema_line() {
    for (file, path) in shipped_files() {
        match file {
            SchemaFile::Rig => {
                rig::RigFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            }
            SchemaFile::Case => {
                crate::case::load_case(&path, &Default::default())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

/// Each of these the loader refuses; the schema must refuse it too, and
/// say where in the document.
#[test]
fn a_misspelt_key_or_a_wrong_type_is_refused_naming_its_place() {
    let rig = Validator::new(SchemaFile::Rig);
    let case = Validator::new(SchemaFile::Case);
    let good_rig = "name: r\ndevice: { endpoint: e, lifetime: 30s }\n";
    let good_case = "id: c\ntitle: t\nsteps:\n  - power: on\n  - await: { path: /5/*/3, equals: 2, within: 5m }\n";
    let origin = Path::new("inline.yaml");
    rig.check(&yaml_to_json(good_rig, origin)).unwrap();
    rig::RigFile::parse(good_rig, origin).unwrap();
    case.check(&yaml_to_json(good_case, origin)).unwrap();

    let refused: [(&Validator, &str, &str); 7] = [
        (&rig, "name: r\ndevice: { endpoint: e, lifetime: 30s, lifetme: 1m }\n", "/device"),
        (&rig, "name: r\ndevice: { endpoint: e, lifetime: 30 }\n", "/device/lifetime"),
        (&rig, "name: r\ndevice: { endpoint: e, lifetime: 30s }\npower: { kind: scpi, tcp: psu, voltage: 3.6, current_limit: 1A }\n", "/power"),
        (&rig, "name: r\ndevice: { endpoint: e, lifetime: 30s }\nfirmware: { roles: { corrupted: { derive: broken } } }\n", "/firmware/roles/corrupted"),
        (&case, "id: c\ntitle: t\nsetps: []\n", "''"),
        (&case, "id: c\ntitle: t\nsteps:\n  - powr: on\n", "/steps/0"),
        (&case, "id: c\ntitle: t\nsteps:\n  - read: { path: /3/0/1, code: 4.04x }\n", "/steps/0/read/code"),
    ];
    for (validator, doc, place) in refused {
        let loader_refuses = if std::ptr::eq(validator, &rig) {
            rig::RigFile::parse(doc, origin).is_err()
        } else {
            serde_saphyr::from_str::<crate::case::model::CaseFile>(doc).is_err()
        };
        assert!(loader_refuses, "the loader accepts {doc}");
        let e = validator.check(&yaml_to_json(doc, origin)).expect_err(doc);
        let place = place.trim_end_matches('\'');
        assert!(e.contains(&format!("at '{place}")), "{doc}\n{e}");
    }
}
