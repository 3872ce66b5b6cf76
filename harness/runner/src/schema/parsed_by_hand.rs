//! `JsonSchema` for the case-file types whose `Deserialize` is written by
//! hand: each schema says what that parser accepts (a path pattern, a
//! response code, one-key step maps), so that an editor flags what the
//! loader would refuse and nothing it accepts.

use std::borrow::Cow;

use lwm2m::ContentFormat;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::case::fields::{CasePath, Code, Format, Span};
use crate::case::model::StringOr;
use crate::case::CaseStep;
use crate::steps::kinds::at::AtFinal;
use crate::steps::kinds::network::NetworkStep;
use crate::steps::StepKind;
use rig::schema::DurationText;

/// An LwM2M id: 0 to 65534 without leading zeros (LwM2M 1.1 Core §7.2.1).
const ID: &str = "(0|[1-9][0-9]{0,4})";

/// `/obj[/inst[/res[/ri]]]`, or `/` (as `lwm2m::Path` parses it).
pub fn object_path_pattern() -> String {
    format!("^/({ID}(/{ID}){{0,3}})?/?$")
}

/// An object path as `lwm2m::Path` reads it, for fields of that type (a
/// foreign type, so it is named in `#[schemars(with = ...)]`).
pub struct ObjectPath;

impl JsonSchema for ObjectPath {
    fn schema_name() -> Cow<'static, str> {
        "ObjectPath".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An LwM2M path: /, /3, /3/0, /3/0/1 or /3/0/7/1 (ids 0 to 65534).",
            "type": "string",
            "pattern": object_path_pattern()
        })
    }
}

impl JsonSchema for CasePath {
    fn schema_name() -> Cow<'static, str> {
        "CasePath".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An LwM2M path (/5/0/3); the instance may be `*`, the instance the device registered (/5/*/3).",
            "type": "string",
            "pattern": format!("^/({ID}(/({ID}|\\*)(/{ID}){{0,2}})?)?/?$")
        })
    }
}

impl JsonSchema for Code {
    fn schema_name() -> Cow<'static, str> {
        "ResponseCode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A CoAP response code as class.detail (RFC 7252 §3), quoted so YAML keeps its zeros: \"2.04\", \"4.05\".",
            "type": "string",
            "pattern": r"^[2-5]\.0*([0-9]|[12][0-9]|3[01])$"
        })
    }
}

impl JsonSchema for Format {
    fn schema_name() -> Cow<'static, str> {
        "ContentFormat".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = ContentFormat::ALL.iter().map(|f| f.name()).collect();
        json_schema!({
            "description": "A content format by name (LwM2M 1.1 Core §7.4).",
            "enum": names
        })
    }
}

impl JsonSchema for Span {
    fn schema_name() -> Cow<'static, str> {
        DurationText::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        DurationText::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        DurationText::json_schema(generator)
    }
}

impl JsonSchema for AtFinal {
    fn schema_name() -> Cow<'static, str> {
        "AtFinal".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The final result code expected (3GPP TS 27.007 §9.2): OK, ERROR or `CME <n>`.",
            "type": "string",
            "pattern": r"^\s*(OK|ERROR|CME\s*[0-9]+)\s*$"
        })
    }
}

impl<M: JsonSchema> JsonSchema for StringOr<M> {
    fn schema_name() -> Cow<'static, str> {
        format!("StringOr{}", M::schema_name()).into()
    }

    fn schema_id() -> Cow<'static, str> {
        format!("StringOr<{}>", M::schema_id()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let long = generator.subschema_for::<M>();
        json_schema!({
            "anyOf": [{ "type": "string" }, long]
        })
    }
}

impl JsonSchema for NetworkStep {
    fn schema_name() -> Cow<'static, str> {
        "NetworkStep".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "What the lab makes the device's network do: `accept-all`, or refuse one eUICC profile's attach.",
            "oneOf": [
                { "const": "accept-all" },
                {
                    "type": "object",
                    "properties": {
                        "refuse": {
                            "type": "string",
                            "pattern": "^(first-profile|second-profile|profile-[0-9]+)$",
                            "description": "The profile whose attach the network refuses, by its place on the eUICC."
                        }
                    },
                    "required": ["refuse"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// The keys every step may carry beside its one action key
/// (`crate::case::step` peels them off before the kind's parser).
fn common_step_keys(generator: &mut SchemaGenerator) -> [(&'static str, Schema); 2] {
    let mut within = generator.subschema_for::<DurationText>();
    within.insert(
        "description".into(),
        "How long the step may take (default: what the kind asks, else what is left of the case's timeout).".into(),
    );
    let note = json_schema!({ "type": "string", "description": "Printed in the step log." });
    [("within", within), ("note", note)]
}

impl JsonSchema for CaseStep {
    fn schema_name() -> Cow<'static, str> {
        "Step".into()
    }

    /// A step is one map with exactly one action key (the kind) and
    /// optionally `within` and `note`: the derived schema of [`StepKind`]
    /// (one single-key object per kind) with those two keys added to each.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut kinds = StepKind::json_schema(generator);
        let common = common_step_keys(generator);
        let variants = kinds
            .get_mut("oneOf")
            .and_then(|v| v.as_array_mut())
            .expect("StepKind's derived schema is a oneOf of its kinds");
        for variant in variants {
            let properties = variant
                .get_mut("properties")
                .and_then(|p| p.as_object_mut())
                .expect("each kind is an object with its key");
            for (key, schema) in &common {
                properties.insert((*key).into(), schema.clone().into());
            }
        }
        kinds.insert(
            "description".into(),
            "One step: exactly one action key (power, await, read, ...) with its argument, and `within` or `note` if needed.".into(),
        );
        kinds
    }
}
