//! `meterbench schema rig|case` prints exactly the committed schemas that
//! the shipped files name (the unit tests in `src/schema/` check the files
//! against them). Two runs of the binary that load nothing: well under 1 s.

use crate::support::{root, run, text};

#[test]
fn the_schema_command_prints_the_committed_schemas() {
    for which in ["rig", "case"] {
        let out = run(&["schema", which]);
        assert!(out.status.success(), "{}", text(&out));
        let committed = format!("schemas/{which}.schema.json");
        let file = std::fs::read_to_string(root().join(&committed)).expect(&committed);
        assert!(
            out.stdout == file.as_bytes(),
            "{committed} differs from `meterbench schema {which}`: regenerate it with\n  cargo run --release -- schema {which} > {committed}"
        );
        let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{which}"
        );
    }
    let out = run(&["schema", "nonsense"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
