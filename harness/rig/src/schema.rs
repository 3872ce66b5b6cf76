//! JSON Schema for the values of rig (and case) files that are parsed by
//! hand rather than by a derived `Deserialize`: durations (`30s`), byte sizes
//! (`512KiB`), voltages (`3.6V`), firmware roles, SWD fact sources. Each
//! schema says what its parser really accepts, so that an editor that checks
//! a file against `schemas/rig.schema.json` neither passes what the loader
//! refuses where a pattern can tell, nor flags what it accepts.
//!
//! A field parsed with `deserialize_with` names one of the marker types
//! below in `#[schemars(with = ...)]`; a type with its own `Deserialize`
//! gets its `JsonSchema` here, beside the others, rather than in its module.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::dialect::LineEnding;
use crate::facts::FactType;
use crate::model::{DeriveKind, MAX_SLOT_SIZE};
use crate::power::quantity::{Amps, Volts};
use crate::swd::FactSource;

/// What [`crate::duration::parse_duration`] reads: whole numbers with a unit,
/// summed (`1m30s`); no bare number, no space inside.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(ms|s|m|h))+\s*$";

/// A duration as rig and case files write it (`30s`, `5m`, `500ms`, `1m30s`).
pub struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: whole numbers with a unit (ms, s, m, h), summed: 30s, 5m, 500ms, 1m30s. A bare number is refused.",
            "examples": ["30s", "5m", "1m30s"]
        })
    }
}

/// A firmware slot's size (`firmware.slot_size`), as
/// [`crate::model::parse_byte_size`] reads it.
pub struct ByteSizeText;

impl JsonSchema for ByteSizeText {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes, or with a binary unit: 262144, 512KiB, 1MiB (B, KiB, MiB, GiB; at most 256MiB).",
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": MAX_SLOT_SIZE },
                { "type": "string", "pattern": r"^\s*[0-9]+\s*(B|KiB|MiB|GiB)?\s*$" }
            ],
            "examples": ["512KiB"]
        })
    }
}

/// A number written in hex or decimal (`0x415`, `0x2000_0010`, `1045`), as
/// the SWD part's addresses and chip IDs are.
pub struct HexNumberText;

impl JsonSchema for HexNumberText {
    fn schema_name() -> Cow<'static, str> {
        "HexNumber".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number, in hex (0x415, 0x2000_0010) or decimal.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": r"^\s*(0[xX][0-9a-fA-F_]+|[0-9_]+)\s*$" }
            ]
        })
    }
}

/// One firmware role of `firmware.roles`: an image of the store, the image
/// with the version it reports, or how the harness derives it.
pub struct FirmwareRoleText;

impl JsonSchema for FirmwareRoleText {
    fn schema_name() -> Cow<'static, str> {
        "FirmwareRole".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let derive = generator.subschema_for::<DeriveKind>();
        json_schema!({
            "description": "An image of the store (`meter-2.0.bin`), the image with the version the device reports once it runs it (`{ image: acme-3.2.bin, version: \"3.2.0-rel\" }`), or how the harness derives it from the `upgrade` role's (`{ derive: corrupted }`).",
            "oneOf": [
                { "type": "string", "description": "The image's name in the store's manifest." },
                {
                    "type": "object",
                    "properties": {
                        "image": { "type": "string", "description": "The image's name in the store's manifest." },
                        "version": { "type": "string", "description": "The version the device reports (/3/0/3) once it runs the image; absent: the manifest's." }
                    },
                    "required": ["image"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "derive": derive },
                    "required": ["derive"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for DeriveKind {
    fn schema_name() -> Cow<'static, str> {
        "DeriveKind".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How a role's image is made from the `upgrade` image: `corrupted` (same length, integrity check fails) or `oversized` (padded past `firmware.slot_size`; `too-large` is its older name).",
            "enum": ["corrupted", "oversized", "too-large"]
        })
    }
}

impl JsonSchema for LineEnding {
    fn schema_name() -> Cow<'static, str> {
        "LineEnding".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "What ends a command line: \"\\r\" (cr) or \"\\r\\n\" (crlf).",
            "enum": ["\r", "cr", "CR", "\r\n", "crlf", "CRLF"]
        })
    }
}

macro_rules! quantity_schema {
    ($ty:ty, $name:literal, $unit:literal, $example:literal) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": concat!("A value with its unit, optionally milli (m) or micro (u, µ): ", $example, "."),
                    "type": "string",
                    "pattern": concat!(r"^\s*[0-9]+(\.[0-9]*)?[muµ]?", $unit, r"\s*$")
                })
            }
        }
    };
}

quantity_schema!(Volts, "Volts", "V", "3.6V, 3600mV");
quantity_schema!(Amps, "Amps", "A", "0.5A, 500mA");

/// [`FactType`]'s names, as its `FromStr` reads them.
const FACT_TYPE_PATTERN: &str =
    r"^\s*(u8|u16|u32|u64|i32|string|bytes|(string|bytes)\(\s*[0-9]+\s*\))\s*$";

impl JsonSchema for FactType {
    fn schema_name() -> Cow<'static, str> {
        "FactType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "u8, u16, u32, u64, i32 (little-endian), string, string(N), bytes or bytes(N) with N from 1 to 4096.",
            "type": "string",
            "pattern": FACT_TYPE_PATTERN
        })
    }
}

/// C identifiers and the mangled names a linker keeps (`swd::is_symbol_name`).
const SYMBOL_PATTERN: &str = r"^[A-Za-z_$][A-Za-z0-9_$.]*$";

impl JsonSchema for FactSource {
    fn schema_name() -> Cow<'static, str> {
        "FactSource".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let ty = generator.subschema_for::<FactType>();
        let address = generator.subschema_for::<HexNumberText>();
        json_schema!({
            "description": "Where a fact lives in the target: a symbol of the ELF (`fw_version`), `{ symbol: NAME, type: T }`, or a fixed address with its type (`{ address: 0x1FFF7590, type: u32 }`).",
            "oneOf": [
                { "type": "string", "pattern": SYMBOL_PATTERN },
                {
                    "type": "object",
                    "properties": {
                        "symbol": { "type": "string", "pattern": SYMBOL_PATTERN },
                        "type": ty
                    },
                    "required": ["symbol"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "address": address, "type": ty },
                    "required": ["address", "type"],
                    "additionalProperties": false
                }
            ]
        })
    }
}
