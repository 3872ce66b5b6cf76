//! The content-format decoders (LwM2M 1.1 Core §7.4; LwM2M CBOR from 1.2):
//! what a device's Read response, notification or Write payload goes
//! through. The input is the payload, exactly as on the wire.
//!
//! Each payload is decoded under several request paths, because the path
//! types the values and decides what a record may name: the single-value
//! formats (text, opaque, CBOR) under one resource of every type, the others under
//! the root, objects, instances, a multiple resource and an object the model
//! does not know. Whatever decodes is encoded again with the same format and
//! path, as the client does when the server reads back what it wrote.

use std::sync::OnceLock;

use lwm2m::format::{self, ContentFormat};
use lwm2m::{Path, Registry};

/// The object model the decoders type values by: meterbench's core objects.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::core)
}

/// One resource of every type (String, Integer, Unsigned, Float, Boolean,
/// Opaque, Time, Objlnk), a resource instance, an executable resource and
/// one the model does not know.
const SINGLE_VALUE_PATHS: &[&[u16]] = &[
    &[3, 0, 0],
    &[3, 0, 9],
    &[5, 0, 13],
    &[501, 0, 2],
    &[5, 0, 14],
    &[5, 0, 0],
    &[3, 0, 13],
    &[501, 0, 48],
    &[3, 0, 6, 0],
    &[3, 0, 4],
    &[26241, 0, 7],
];

/// Request paths for the formats that carry several records.
const MULTI_VALUE_PATHS: &[&[u16]] = &[
    &[],
    &[3],
    &[3, 0],
    &[3, 0, 6],
    &[3, 0, 6, 0],
    &[5, 0],
    &[19, 0],
    &[501, 0],
    &[0],
    &[26241],
];

fn paths(single: bool) -> &'static [Path] {
    static SINGLE: OnceLock<Vec<Path>> = OnceLock::new();
    static MULTI: OnceLock<Vec<Path>> = OnceLock::new();
    let (cell, ids) = if single {
        (&SINGLE, SINGLE_VALUE_PATHS)
    } else {
        (&MULTI, MULTI_VALUE_PATHS)
    };
    cell.get_or_init(|| ids.iter().filter_map(|ids| Path::from_ids(ids)).collect())
}

/// Decodes `payload` in `format` under every path, and encodes what decoded.
pub fn decode_everywhere(format: ContentFormat, payload: &[u8]) {
    let single = format.carries_single_value();
    let registry = registry();
    for base in paths(single) {
        if let Ok(records) = format::decode(format, base, payload, registry) {
            let _ = format::encode(format, base, &records, registry);
        }
    }
}

pub fn text(input: &[u8]) {
    decode_everywhere(ContentFormat::Text, input);
}

pub fn opaque(input: &[u8]) {
    decode_everywhere(ContentFormat::Opaque, input);
}

pub fn cbor(input: &[u8]) {
    decode_everywhere(ContentFormat::Cbor, input);
}

pub fn tlv(input: &[u8]) {
    decode_everywhere(ContentFormat::Tlv, input);
}

pub fn senml_json(input: &[u8]) {
    decode_everywhere(ContentFormat::SenmlJson, input);
}

pub fn senml_cbor(input: &[u8]) {
    decode_everywhere(ContentFormat::SenmlCbor, input);
}

pub fn lwm2m_cbor(input: &[u8]) {
    decode_everywhere(ContentFormat::Lwm2mCbor, input);
}

/// The LwM2M 1.0 JSON format (11543, LwM2M 1.0 Core §6.4.4), when the
/// library has a decoder for it (it knows the code).
pub fn lwm2m_json_format() -> Option<ContentFormat> {
    ContentFormat::from_code(LWM2M_JSON)
}

/// Content-Format number of LwM2M 1.0 JSON.
pub const LWM2M_JSON: u16 = 11543;

pub fn lwm2m_json(input: &[u8]) {
    if let Some(f) = lwm2m_json_format() {
        decode_everywhere(f, input);
    }
}

pub const TEXT_DICTIONARY: &[&[u8]] = &[
    b"-",
    b"+",
    b".",
    b"e",
    b"E",
    b"e-",
    b":",
    b"=",
    b"==",
    b"0",
    b"1",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"65535:65535",
    b"65536:0",
    b"NaN",
    b"inf",
    b"-inf",
    b"1e308",
    b"1e309",
    b"\xc3\xa9",
    b"\xff",
];

pub const JSON_DICTIONARY: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"\"bn\":",
    b"\"n\":",
    b"\"v\":",
    b"\"vs\":",
    b"\"vb\":",
    b"\"vd\":",
    b"\"vlo\":",
    b"\"bt\":",
    b"\"t\":",
    b"\"bv\":",
    b"\"bver\":",
    b"\"e\":",
    b"\"sv\":",
    b"\"ov\":",
    b"\"x_\":",
    b"\"/3/0/\"",
    b"\"/\"",
    b"\"0/0\"",
    b"\"65535\"",
    b"true",
    b"false",
    b"null",
    b"1e400",
    b"-0",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
];

pub const CBOR_DICTIONARY: &[&[u8]] = &[
    b"\x80",
    b"\x81",
    b"\x9f",
    b"\xff",
    b"\xa0",
    b"\xa1",
    b"\xbf",
    b"\x21",
    b"\x20",
    b"\x00",
    b"\x02",
    b"\x03",
    b"\x04",
    b"\x08",
    b"\x22",
    b"\x06",
    b"\xf4",
    b"\xf5",
    b"\xf6",
    b"\xf7",
    b"\xf9\x7e\x00",
    b"\xfa\x7f\x80\x00\x00",
    b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x3b\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x19\xff\xff",
    b"\x1a\x00\x01\x00\x00",
    b"\xc1",
    b"\xd8\x18",
    b"\x5f",
    b"\x7f",
    b"\x63vlo",
    b"\x65/3/0/",
    b"\x82\x03\x00",
    b"\x83\x03\x00\x09",
];

pub const TLV_DICTIONARY: &[&[u8]] = &[
    b"\x08\x00",
    b"\x88\x06",
    b"\x48\x00",
    b"\xc8\x00",
    b"\xc1\x09",
    b"\xe8\x16\x76",
    b"\xf0\x16\x76\x01\x2c",
    b"\xd8\x00\x01\x11",
    b"\x38\xff\xff",
    b"\xff\xff\xff",
    b"\x41\x00",
    b"\x81\x06",
];
