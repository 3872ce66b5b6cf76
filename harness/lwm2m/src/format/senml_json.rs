//! SenML JSON (content format 110, LwM2M 1.1 Core §7.4.4, RFC 8428 §5).
//!
//! The payload is a JSON array of record objects. Base fields (`bn`, `bt`,
//! `bv`, `bs`) resolve as RFC 8428 §4.6 says (see `senml`). Decoding walks the array
//! one element at a time so that an error names the byte offset of the record
//! it is in, not just "somewhere in the payload".

use serde_json::{Map, Value as Json};

use crate::format::senml::{self, Number, RawRecord, SenmlValue};
use crate::format::{base64, ContentFormat, FormatError, Record, TimedRecord};
use crate::model::Registry;
use crate::path::Path;

const FORMAT: ContentFormat = ContentFormat::SenmlJson;

fn err(offset: usize, reason: impl Into<String>) -> FormatError {
    FormatError::new(FORMAT, offset, reason)
}

pub(crate) fn encode(base: &Path, records: &[Record]) -> Result<Vec<u8>, FormatError> {
    let mut array = Vec::with_capacity(records.len());
    for r in senml::from_records(FORMAT, base, records)? {
        // serde_json's map keeps keys sorted: bn, n, then the value key, as in the spec's examples.
        let mut m = Map::new();
        if let Some(bn) = r.base_name {
            m.insert("bn".into(), Json::String(bn));
        }
        if let Some(n) = r.name {
            m.insert("n".into(), Json::String(n));
        }
        let (key, value) = match r.value {
            SenmlValue::Number(Number::Int(i)) => ("v", int_json(i)),
            SenmlValue::Number(Number::Float(f)) => (
                "v",
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| err(0, format!("{f} has no JSON representation")))?,
            ),
            SenmlValue::String(s) | SenmlValue::StringOrBase64(s) => ("vs", Json::String(s)),
            SenmlValue::Bool(b) => ("vb", Json::Bool(b)),
            SenmlValue::Data(d) => ("vd", Json::String(base64::encode_url(&d))),
            SenmlValue::ObjLink(l) => ("vlo", Json::String(l)),
        };
        m.insert(key.into(), value);
        array.push(Json::Object(m));
    }
    serde_json::to_vec(&Json::Array(array)).map_err(|e| err(0, e.to_string()))
}

fn int_json(i: i128) -> Json {
    if let Ok(s) = i64::try_from(i) {
        Json::from(s)
    } else if let Ok(u) = u64::try_from(i) {
        Json::from(u)
    } else {
        Json::from(i as f64)
    }
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<TimedRecord>, FormatError> {
    let raw = parse_records(payload)?;
    senml::to_records(FORMAT, base, raw, registry)
}

pub(crate) fn skip_ws(payload: &[u8], mut pos: usize) -> usize {
    while payload.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

/// Splits the top-level array into records, remembering where each starts.
fn parse_records(payload: &[u8]) -> Result<Vec<RawRecord>, FormatError> {
    let mut pos = skip_ws(payload, 0);
    if payload.get(pos) != Some(&b'[') {
        return Err(err(pos, "expected a JSON array of SenML records"));
    }
    pos = skip_ws(payload, pos + 1);
    let mut out = Vec::new();
    if payload.get(pos) == Some(&b']') {
        pos += 1;
    } else {
        loop {
            let start = pos;
            let mut stream =
                serde_json::Deserializer::from_slice(&payload[start..]).into_iter::<Json>();
            let item = match stream.next() {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    return Err(err(
                        start + json_error_offset(&payload[start..], &e),
                        format!("invalid JSON: {e}"),
                    ))
                }
                None => return Err(err(start, "expected a SenML record, payload ends")),
            };
            pos = start + stream.byte_offset();
            out.push(record(item, start)?);
            pos = skip_ws(payload, pos);
            match payload.get(pos) {
                Some(b',') => pos = skip_ws(payload, pos + 1),
                Some(b']') => {
                    pos += 1;
                    break;
                }
                Some(_) => return Err(err(pos, "expected ',' or ']' after a SenML record")),
                None => return Err(err(pos, "unterminated array, expected ']'")),
            }
        }
    }
    let end = skip_ws(payload, pos);
    if end != payload.len() {
        return Err(err(end, "trailing bytes after the SenML array"));
    }
    Ok(out)
}

/// serde_json reports line and column; turn them into a byte offset.
pub(crate) fn json_error_offset(text: &[u8], e: &serde_json::Error) -> usize {
    if e.line() == 0 {
        return 0;
    }
    let mut line_start = 0;
    for _ in 1..e.line() {
        match text[line_start..].iter().position(|b| *b == b'\n') {
            Some(p) => line_start += p + 1,
            None => break,
        }
    }
    (line_start + e.column().saturating_sub(1)).min(text.len())
}

/// A JSON number as a SenML number, integers kept exact.
pub(crate) fn json_number(v: &Json) -> Option<Number> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        Some(Number::Int(i128::from(i)))
    } else if let Some(u) = n.as_u64() {
        Some(Number::Int(i128::from(u)))
    } else {
        n.as_f64().map(Number::Float)
    }
}

fn record(item: Json, offset: usize) -> Result<RawRecord, FormatError> {
    let Json::Object(map) = item else {
        return Err(err(offset, "expected a SenML record object"));
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
    let set = |r: &mut RawRecord, v: SenmlValue| -> Result<(), FormatError> {
        if r.value.replace(v).is_some() {
            return Err(err(offset, "record has more than one value field"));
        }
        Ok(())
    };
    let number = |k: &str, v: &Json| -> Result<Number, FormatError> {
        json_number(v).ok_or_else(|| err(offset, format!("\"{k}\" must be a number")))
    };
    for (k, v) in &map {
        match k.as_str() {
            "bn" => r.base_name = Some(text(k, v)?),
            "n" => r.name = Some(text(k, v)?),
            "v" => set(&mut r, SenmlValue::Number(number(k, v)?))?,
            "bt" => r.base_time = Some(number(k, v)?),
            "t" => r.time = Some(number(k, v)?),
            "bv" => r.base_value = Some(number(k, v)?),
            "bs" => r.base_sum = Some(number(k, v)?),
            "s" => r.sum = Some(number(k, v)?),
            "vs" => set(&mut r, SenmlValue::String(text(k, v)?))?,
            "vb" => set(
                &mut r,
                SenmlValue::Bool(
                    v.as_bool()
                        .ok_or_else(|| err(offset, "\"vb\" must be true or false"))?,
                ),
            )?,
            "vd" => {
                let d = base64::decode(text(k, v)?.as_bytes())
                    .map_err(|at| err(offset, format!("\"vd\" is not base64 (character {at})")))?;
                set(&mut r, SenmlValue::Data(d))?;
            }
            "vlo" => set(&mut r, SenmlValue::ObjLink(text(k, v)?))?,
            "bver" if !v.is_number() => {
                return Err(err(offset, format!("\"{k}\" must be a number")));
            }
            // RFC 8428 §4.4: labels ending in '_' must be understood; we understand none.
            other if other.ends_with('_') => {
                return Err(err(
                    offset,
                    format!("must-understand field \"{other}\" is not supported"),
                ))
            }
            _ => {}
        }
    }
    Ok(r)
}
