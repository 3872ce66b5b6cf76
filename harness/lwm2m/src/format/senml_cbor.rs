//! SenML CBOR (content format 112, LwM2M 1.1 Core §7.4.5, RFC 8428 §6).
//!
//! Records are CBOR maps with integer labels (RFC 8428 §6, Table 4): -1 bver,
//! -2 bn, -3 bt, -4 bu, -5 bv, -6 bs, 0 n, 1 u, 2 v, 3 vs, 4 vb, 5 s, 6 t,
//! 7 ut, 8 vd (a byte string); LwM2M's object link uses the text label "vlo".
//! Base fields resolve as RFC 8428 §4.6 says (see `senml`).

use ciborium::Value as Cbor;

use crate::format::senml::{self, Number, RawRecord, SenmlValue};
use crate::format::{cbor, ContentFormat, FormatError, Record, TimedRecord};
use crate::model::Registry;
use crate::path::Path;

const FORMAT: ContentFormat = ContentFormat::SenmlCbor;

const BVER: i64 = -1;
const BN: i64 = -2;
const BT: i64 = -3;
const BV: i64 = -5;
const BS: i64 = -6;
const N: i64 = 0;
const V: i64 = 2;
const VS: i64 = 3;
const VB: i64 = 4;
const S: i64 = 5;
const T: i64 = 6;
const UT: i64 = 7;
const VD: i64 = 8;

pub(crate) fn encode(base: &Path, records: &[Record]) -> Result<Vec<u8>, FormatError> {
    let mut array = Vec::with_capacity(records.len());
    for r in senml::from_records(FORMAT, base, records)? {
        let mut m: Vec<(Cbor, Cbor)> = Vec::new();
        if let Some(bn) = r.base_name {
            m.push((Cbor::from(BN), Cbor::Text(bn)));
        }
        if let Some(n) = r.name {
            m.push((Cbor::from(N), Cbor::Text(n)));
        }
        m.push(match r.value {
            SenmlValue::Number(Number::Int(i)) => {
                (
                    Cbor::from(V),
                    Cbor::Integer(i.try_into().map_err(|_| {
                        FormatError::new(FORMAT, 0, format!("{i} does not fit CBOR"))
                    })?),
                )
            }
            SenmlValue::Number(Number::Float(f)) => (Cbor::from(V), Cbor::Float(f)),
            SenmlValue::String(s) | SenmlValue::StringOrBase64(s) => {
                (Cbor::from(VS), Cbor::Text(s))
            }
            SenmlValue::Bool(b) => (Cbor::from(VB), Cbor::Bool(b)),
            SenmlValue::Data(d) => (Cbor::from(VD), Cbor::Bytes(d)),
            SenmlValue::ObjLink(l) => (Cbor::Text("vlo".into()), Cbor::Text(l)),
        });
        array.push(Cbor::Map(m));
    }
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Cbor::Array(array), &mut out)
        .map_err(|e| FormatError::new(FORMAT, 0, e.to_string()))?;
    Ok(out)
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<TimedRecord>, FormatError> {
    let mut raw = Vec::new();
    let end = cbor::for_each(payload, 0, 4, |offset, mut items| {
        let item = items.pop().unwrap_or(Cbor::Null);
        raw.push(record(item, offset).map_err(|reason| (offset, reason))?);
        Ok(())
    })
    .map_err(|(at, reason)| FormatError::new(FORMAT, at, reason))?;
    if end != payload.len() {
        return Err(FormatError::new(
            FORMAT,
            end,
            "trailing bytes after the SenML array",
        ));
    }
    senml::to_records(FORMAT, base, raw, registry)
}

/// Reads one record map; errors are reasons, the caller adds the offset.
fn record(item: Cbor, offset: usize) -> Result<RawRecord, String> {
    let Cbor::Map(entries) = item else {
        return Err("expected a SenML record map".into());
    };
    let mut r = RawRecord {
        offset,
        ..RawRecord::default()
    };
    let set = |r: &mut RawRecord, v: SenmlValue| {
        if r.value.replace(v).is_some() {
            return Err("record has more than one value field".to_string());
        }
        Ok(())
    };
    for (k, v) in entries {
        let label = match &k {
            Cbor::Integer(i) => Label::Int(i128::from(*i)),
            Cbor::Text(t) => Label::Text(t.as_str()),
            _ => return Err("record labels must be integers or text".into()),
        };
        match label {
            Label::Int(l) if l == i128::from(BN) => r.base_name = Some(text(v, "bn")?),
            Label::Int(l) if l == i128::from(N) => r.name = Some(text(v, "n")?),
            Label::Int(l) if l == i128::from(V) => set(
                &mut r,
                SenmlValue::Number(number(&v).ok_or("v must be a number")?),
            )?,
            Label::Int(l) if l == i128::from(VS) => {
                set(&mut r, SenmlValue::String(text(v, "vs")?))?
            }
            Label::Int(l) if l == i128::from(VB) => match v {
                Cbor::Bool(b) => set(&mut r, SenmlValue::Bool(b))?,
                _ => return Err("vb must be a boolean".into()),
            },
            Label::Int(l) if l == i128::from(VD) => match v {
                Cbor::Bytes(d) => set(&mut r, SenmlValue::Data(d))?,
                _ => return Err("vd must be a byte string".into()),
            },
            Label::Text("vlo") => set(&mut r, SenmlValue::ObjLink(text(v, "vlo")?))?,
            Label::Int(l) if l == i128::from(BT) => r.base_time = Some(num(&v, "bt")?),
            Label::Int(l) if l == i128::from(T) => r.time = Some(num(&v, "t")?),
            Label::Int(l) if l == i128::from(BV) => r.base_value = Some(num(&v, "bv")?),
            Label::Int(l) if l == i128::from(BS) => r.base_sum = Some(num(&v, "bs")?),
            Label::Int(l) if l == i128::from(S) => r.sum = Some(num(&v, "s")?),
            Label::Int(l)
                if [BVER, UT].iter().any(|x| i128::from(*x) == l) && number(&v).is_none() =>
            {
                return Err(format!("label {l} must be a number"));
            }
            // RFC 8428 §6/§12.2: labels below -255 and text labels ending in '_' must be understood.
            Label::Text(t) if t.ends_with('_') => {
                return Err(format!("must-understand label {t:?} is not supported"))
            }
            Label::Int(l) if l < -255 => {
                return Err(format!("must-understand label {l} is not supported"))
            }
            _ => {}
        }
    }
    Ok(r)
}

fn num(v: &Cbor, label: &str) -> Result<Number, String> {
    number(v).ok_or_else(|| format!("{label} must be a number"))
}

enum Label<'a> {
    Int(i128),
    Text(&'a str),
}

fn text(v: Cbor, label: &str) -> Result<String, String> {
    match v {
        Cbor::Text(t) => Ok(t),
        _ => Err(format!("{label} must be a text string")),
    }
}

/// A CBOR number; also unwraps tag 1 (epoch time), which LwM2M allows for Time.
pub(crate) fn number(v: &Cbor) -> Option<Number> {
    match v {
        Cbor::Integer(i) => Some(Number::Int(i128::from(*i))),
        Cbor::Float(f) => Some(Number::Float(*f)),
        Cbor::Tag(1, inner) => number(inner),
        _ => None,
    }
}
