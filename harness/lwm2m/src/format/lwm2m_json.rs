//! LwM2M JSON (content format 11543, `application/vnd.oma.lwm2m+json`, OMA
//! LwM2M 1.0 TS §6.4.4), the format LwM2M 1.0 devices use where 1.1 ones use
//! SenML JSON.
//!
//! The payload is one JSON object: an optional base name `bn` (a path,
//! `"/3/0/"`), an optional base time `bt` and the resource array `e`. Each
//! entry has a name `n` (the rest of the path; without `bn` the full path,
//! as Leshan reads it), one value field and an optional time `t` relative to
//! `bt`: `v` a number (Integer, Unsigned, Float and Time), `bv` a boolean
//! (not SenML's base value), `ov` an object link `"object:instance"`, `sv`
//! a string (String, Corelnk, and Opaque in base64). Names and times resolve
//! as SenML's do (RFC 8428 §4.6, see `senml`).

use serde_json::Value as Json;

use crate::format::senml::{self, Number, RawRecord, SenmlValue};
use crate::format::senml_json::{json_error_offset, json_number, skip_ws};
use crate::format::{base64, ContentFormat, FormatError, Record, TimedRecord};
use crate::model::Registry;
use crate::path::Path;

const FORMAT: ContentFormat = ContentFormat::Lwm2mJson;

fn err(offset: usize, reason: impl Into<String>) -> FormatError {
    FormatError::new(FORMAT, offset, reason)
}

/// `{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},...]}`, keys in
/// the order of the TS examples.
pub(crate) fn encode(base: &Path, records: &[Record]) -> Result<Vec<u8>, FormatError> {
    let quote = |s: &str| Json::String(s.to_string()).to_string();
    let mut base_name = None;
    let mut entries = Vec::with_capacity(records.len());
    for r in senml::from_records(FORMAT, base, records)? {
        if r.base_name.is_some() {
            base_name = r.base_name;
        }
        let mut entry = String::from("{");
        if let Some(n) = r.name {
            entry.push_str(&format!("\"n\":{},", quote(&n)));
        }
        let (key, value) = match r.value {
            SenmlValue::Number(Number::Int(i)) => ("v", i.to_string()),
            SenmlValue::Number(Number::Float(f)) => (
                "v",
                serde_json::Number::from_f64(f)
                    .ok_or_else(|| err(0, format!("{f} has no JSON representation")))?
                    .to_string(),
            ),
            SenmlValue::Bool(b) => ("bv", b.to_string()),
            SenmlValue::ObjLink(l) => ("ov", quote(&l)),
            SenmlValue::String(s) | SenmlValue::StringOrBase64(s) => ("sv", quote(&s)),
            SenmlValue::Data(d) => ("sv", quote(&base64::encode_std(&d))),
        };
        entry.push_str(&format!("\"{key}\":{value}}}"));
        entries.push(entry);
    }
    let bn = base_name.map_or(String::new(), |bn| format!("\"bn\":{},", quote(&bn)));
    Ok(format!("{{{bn}\"e\":[{}]}}", entries.join(",")).into_bytes())
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<TimedRecord>, FormatError> {
    let root: Json = serde_json::from_slice(payload)
        .map_err(|e| err(json_error_offset(payload, &e), format!("invalid JSON: {e}")))?;
    let Json::Object(root) = root else {
        return Err(err(
            skip_ws(payload, 0),
            "expected a JSON object with an \"e\" array",
        ));
    };
    let mut base_name = None;
    let mut base_time = None;
    let mut entries = None;
    for (k, v) in root {
        match k.as_str() {
            "bn" => {
                base_name = Some(
                    v.as_str()
                        .ok_or_else(|| err(0, "\"bn\" must be a string"))?
                        .to_string(),
                )
            }
            "bt" => {
                base_time = Some(json_number(&v).ok_or_else(|| err(0, "\"bt\" must be a number"))?)
            }
            "e" => match v {
                Json::Array(items) => entries = Some(items),
                _ => return Err(err(0, "\"e\" must be an array of entries")),
            },
            _ => {}
        }
    }
    let entries = entries.ok_or_else(|| err(0, "no \"e\" array of entries"))?;
    let offsets = entry_offsets(payload);
    let mut raw = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let offset = offsets.get(i).copied().unwrap_or(0);
        let mut r = entry_record(entry, offset)?;
        if i == 0 {
            r.base_name = base_name.take();
            r.base_time = base_time.take();
        }
        raw.push(r);
    }
    senml::to_records(FORMAT, base, raw, registry)
}

fn entry_record(entry: Json, offset: usize) -> Result<RawRecord, FormatError> {
    let Json::Object(map) = entry else {
        return Err(err(offset, "expected an entry object in \"e\""));
    };
    let mut r = RawRecord {
        offset,
        ..RawRecord::default()
    };
    let text = |k: &str, v: &Json| -> Result<String, FormatError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| err(offset, format!("\"{k}\" must be a string")))
    };
    let set = |v: SenmlValue, r: &mut RawRecord| -> Result<(), FormatError> {
        if r.value.replace(v).is_some() {
            return Err(err(offset, "entry has more than one value field"));
        }
        Ok(())
    };
    for (k, v) in &map {
        match k.as_str() {
            "n" => r.name = Some(text(k, v)?),
            "t" => {
                r.time = Some(json_number(v).ok_or_else(|| err(offset, "\"t\" must be a number"))?)
            }
            "v" => set(
                SenmlValue::Number(
                    json_number(v).ok_or_else(|| err(offset, "\"v\" must be a number"))?,
                ),
                &mut r,
            )?,
            "bv" => set(
                SenmlValue::Bool(
                    v.as_bool()
                        .ok_or_else(|| err(offset, "\"bv\" must be true or false"))?,
                ),
                &mut r,
            )?,
            "ov" => set(SenmlValue::ObjLink(text(k, v)?), &mut r)?,
            "sv" => set(SenmlValue::StringOrBase64(text(k, v)?), &mut r)?,
            _ => {}
        }
    }
    Ok(r)
}

/// Byte offsets at which the elements of the top-level `"e"` array start,
/// found by scanning the (already parsed, so well-formed) JSON text; errors
/// then name the entry they are about.
fn entry_offsets(payload: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0;
    let mut last_string: &[u8] = &[];
    let mut key_e = false;
    let mut in_e = false;
    let mut expect_element = false;
    for (i, &c) in payload.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
                last_string = &payload[string_start..i];
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if expect_element && c != b']' {
            out.push(i);
        }
        expect_element = false;
        match c {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b':' if depth == 1 => key_e = last_string == b"e",
            b'{' | b'[' => {
                depth += 1;
                if c == b'[' && depth == 2 && key_e {
                    in_e = true;
                    expect_element = true;
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_e = false;
                }
            }
            b',' if in_e && depth == 2 => expect_element = true,
            _ => {}
        }
    }
    out
}
