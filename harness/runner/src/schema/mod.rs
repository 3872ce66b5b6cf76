//! JSON Schema of rig files and case files, generated from the types that
//! parse them (schemars), so that editors complete and check what a user
//! writes with the loader's own rules and doc comments. Printed by
//! `meterbench schema rig|case`; committed as `schemas/*.schema.json`, which
//! every shipped rig and case names on its first line for yaml-language-server.

mod parsed_by_hand;
#[cfg(test)]
mod tests;

pub use parsed_by_hand::ObjectPath;

use std::process::ExitCode;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

/// Which file a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaFile {
    /// A rig file (rigs/*.yaml).
    Rig,
    /// A conformance case (testcases/**/*.yaml).
    Case,
}

impl SchemaFile {
    /// The schema, as pretty JSON with a final newline (the committed form).
    pub fn render(self) -> String {
        let schema = match self {
            SchemaFile::Rig => root::<rig::RigFile>(
                "meterbench rig file",
                "Where a bench's parts are: the device, its modem, power, debug port, network, eUICC, firmware images, the embedded servers' addresses and the state the bench is left in.",
            ),
            SchemaFile::Case => root::<crate::case::model::CaseFile>(
                "meterbench case file",
                "A conformance case: what it needs from the rig and the device, and the steps that prove a behaviour. It never names a port or an address.",
            ),
        };
        let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
        text.push('\n');
        text
    }
}

/// The root schema of `T` (draft 2020-12, what yaml-language-server reads),
/// titled for the editor's hover.
fn root<T: JsonSchema>(title: &str, description: &str) -> Schema {
    let mut schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("title".into(), title.into());
    schema.insert("description".into(), description.into());
    let mut value = schema.to_value();
    durations_as_written(&mut value);
    Schema::try_from(value).expect("still a schema")
}

/// A duration field's default is derived from `std::time::Duration`'s own
/// serialization (`{secs, nanos}`); the file writes it `60s`, so the editor
/// must show that.
fn durations_as_written(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(d)) = map.get("default") {
                if let (Some(secs), Some(nanos), 2) = (
                    d.get("secs").and_then(Value::as_u64),
                    d.get("nanos").and_then(Value::as_u64),
                    d.len(),
                ) {
                    let nanos = u32::try_from(nanos).expect("nanos below a second");
                    let text =
                        rig::duration::format_duration(std::time::Duration::new(secs, nanos));
                    map.insert("default".into(), text.into());
                }
            }
            map.values_mut().for_each(durations_as_written);
        }
        Value::Array(items) => items.iter_mut().for_each(durations_as_written),
        _ => {}
    }
}

/// `meterbench schema rig|case`: prints the schema on stdout.
pub fn main(file: SchemaFile) -> ExitCode {
    print!("{}", file.render());
    ExitCode::SUCCESS
}
