//! OMA-TLV (content format 11542, LwM2M 1.1 Core §7.4.3).
//!
//! Each TLV starts with a type byte: bits 7-6 say what it is (00 object
//! instance, 01 resource instance, 10 multiple resource, 11 resource with
//! value), bit 5 the identifier width (8 or 16 bits), bits 4-3 the width of the
//! length field (0 = length in bits 2-0, else 1, 2 or 3 bytes). Values are big
//! endian: integers in 1, 2, 4 or 8 bytes, floats in 4 or 8, booleans in 1,
//! object links in 4 (object id, instance id), time as an integer.
//!
//! TLV paths are relative to the request path (§7.4.3): a read of /3 answers
//! object-instance TLVs, of /3/0 resource TLVs, of /3/0/7 a multiple-resource
//! TLV (or bare resource-instance TLVs), of /3/0/7/1 one resource-instance TLV.
//! A Create on /19 may carry resource TLVs with no object-instance TLV around
//! them, leaving the instance id to the client (Core §6.3.6; Leshan sends it
//! so): [`omits_instance_layer`] tells, and the caller decodes such a payload
//! at the instance path it picks (`format::decode_create`).

use std::collections::BTreeMap;

use crate::format::{ContentFormat, FormatError, Record};
use crate::model::{Registry, ResourceType};
use crate::path::Path;
use crate::value::Value;

const FORMAT: ContentFormat = ContentFormat::Tlv;

fn err(offset: usize, reason: impl Into<String>) -> FormatError {
    FormatError::new(FORMAT, offset, reason)
}

/// What a TLV is (type byte bits 7-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ObjectInstance = 0,
    ResourceInstance = 1,
    MultipleResource = 2,
    Resource = 3,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ObjectInstance => "object instance",
            Kind::ResourceInstance => "resource instance",
            Kind::MultipleResource => "multiple resource",
            Kind::Resource => "resource",
        }
    }
}

/// One parsed TLV; `offset` is where its type byte sits in the whole payload,
/// `value_offset` where its value starts.
#[derive(Debug)]
struct Tlv<'a> {
    kind: Kind,
    id: u16,
    value: &'a [u8],
    offset: usize,
    value_offset: usize,
}

/// Parses a sequence of sibling TLVs; `at` is the offset of `buf` in the payload.
fn parse_all(buf: &[u8], at: usize) -> Result<Vec<Tlv<'_>>, FormatError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let t = buf[pos];
        pos += 1;
        let kind = match t >> 6 {
            0 => Kind::ObjectInstance,
            1 => Kind::ResourceInstance,
            2 => Kind::MultipleResource,
            _ => Kind::Resource,
        };
        let id_len = if t & 0x20 != 0 { 2 } else { 1 };
        let len_len = usize::from((t >> 3) & 0x03);
        let header_rest = id_len + len_len;
        let Some(rest) = buf.get(pos..pos + header_rest) else {
            return Err(err(
                at + start,
                format!(
                    "{} TLV header needs {} more bytes, payload ends",
                    kind.name(),
                    header_rest
                ),
            ));
        };
        let id = if id_len == 2 {
            u16::from_be_bytes([rest[0], rest[1]])
        } else {
            u16::from(rest[0])
        };
        let len = if len_len == 0 {
            usize::from(t & 0x07)
        } else {
            rest[id_len..]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        pos += header_rest;
        let Some(value) = buf.get(pos..).filter(|v| v.len() >= len).map(|v| &v[..len]) else {
            return Err(err(
                at + start,
                format!(
                    "{} TLV {id} says {len} value bytes, only {} remain",
                    kind.name(),
                    buf.len() - pos
                ),
            ));
        };
        if id == u16::MAX {
            return Err(err(at + start, "TLV id 65535 is reserved"));
        }
        out.push(Tlv {
            kind,
            id,
            value,
            offset: at + start,
            value_offset: at + pos,
        });
        pos += len;
    }
    Ok(out)
}

/// Whether a TLV payload for an object path leaves out the Object Instance
/// layer: it starts with a resource or multiple-resource TLV (type bits 11 or
/// 10, §7.4.3) instead of an object-instance TLV (00).
pub(crate) fn omits_instance_layer(payload: &[u8]) -> bool {
    payload.first().is_some_and(|t| matches!(t >> 6, 2 | 3))
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<Record>, FormatError> {
    let tlvs = parse_all(payload, 0)?;
    let mut out = Vec::new();
    let ids = base.ids();
    match *ids {
        [] => {
            return Err(err(
                0,
                "TLV cannot carry the root path; request an object or below",
            ))
        }
        [_] => {
            for t in &tlvs {
                if t.kind != Kind::ObjectInstance {
                    return Err(err(
                        t.offset,
                        format!(
                            "expected an object instance TLV for {base}, found a {} TLV \
                             (resource TLVs alone name no instance; only a Create may send them)",
                            t.kind.name()
                        ),
                    ));
                }
                let inst = base.child(t.id).expect("depth 2");
                decode_resources(inst, t, registry, &mut out)?;
            }
        }
        [_, inst_id] => {
            for t in &tlvs {
                if t.kind == Kind::ObjectInstance {
                    expect_id(t, inst_id)?;
                    decode_resources(*base, t, registry, &mut out)?;
                } else {
                    decode_resource(*base, t, registry, &mut out)?;
                }
            }
        }
        [_, _, res_id] => {
            for t in &tlvs {
                match t.kind {
                    Kind::Resource | Kind::MultipleResource => {
                        expect_id(t, res_id)?;
                        decode_resource(base.parent(), t, registry, &mut out)?;
                    }
                    Kind::ResourceInstance => {
                        let path = base.child(t.id).expect("depth 4");
                        out.push(Record::new(path, value(registry, &path, t)?));
                    }
                    Kind::ObjectInstance => expect_kind(
                        t,
                        &[
                            Kind::Resource,
                            Kind::MultipleResource,
                            Kind::ResourceInstance,
                        ],
                    )?,
                }
            }
        }
        [.., ri] => {
            for t in &tlvs {
                expect_kind(t, &[Kind::ResourceInstance])?;
                expect_id(t, ri)?;
                out.push(Record::new(*base, value(registry, base, t)?));
            }
        }
    }
    Ok(out)
}

fn expect_kind(t: &Tlv, allowed: &[Kind]) -> Result<(), FormatError> {
    if allowed.contains(&t.kind) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
    Err(err(
        t.offset,
        format!(
            "expected a {} TLV here, found a {} TLV",
            names.join(" or "),
            t.kind.name()
        ),
    ))
}

fn expect_id(t: &Tlv, id: u16) -> Result<(), FormatError> {
    if t.id == id {
        return Ok(());
    }
    Err(err(
        t.offset,
        format!(
            "{} TLV has id {}, the request path says {id}",
            t.kind.name(),
            t.id
        ),
    ))
}

/// The resource TLVs inside an object-instance TLV.
fn decode_resources(
    instance: Path,
    t: &Tlv,
    registry: &Registry,
    out: &mut Vec<Record>,
) -> Result<(), FormatError> {
    for child in parse_all(t.value, t.value_offset)? {
        decode_resource(instance, &child, registry, out)?;
    }
    Ok(())
}

/// A resource or multiple-resource TLV below `instance`.
fn decode_resource(
    instance: Path,
    t: &Tlv,
    registry: &Registry,
    out: &mut Vec<Record>,
) -> Result<(), FormatError> {
    expect_kind(t, &[Kind::Resource, Kind::MultipleResource])?;
    let path = instance.child(t.id).expect("depth 3");
    if t.kind == Kind::Resource {
        out.push(Record::new(path, value(registry, &path, t)?));
        return Ok(());
    }
    for ri in parse_all(t.value, t.value_offset)? {
        expect_kind(&ri, &[Kind::ResourceInstance])?;
        let p = path.child(ri.id).expect("depth 4");
        out.push(Record::new(p, value(registry, &p, &ri)?));
    }
    Ok(())
}

/// Converts a TLV value to the type the object model gives `path`; unknown resources stay Opaque.
fn value(registry: &Registry, path: &Path, t: &Tlv) -> Result<Value, FormatError> {
    let kind = registry
        .resource(path)
        .map_or(ResourceType::Opaque, |r| r.kind);
    let b = t.value;
    let bad = |what: &str| {
        err(
            t.value_offset,
            format!("{path}: {what}, got {} bytes", b.len()),
        )
    };
    Ok(match kind {
        ResourceType::Opaque | ResourceType::None => Value::Opaque(b.to_vec()),
        ResourceType::String => Value::String(utf8(path, t)?),
        ResourceType::Corelnk => Value::Corelnk(utf8(path, t)?),
        ResourceType::Integer => {
            Value::Integer(signed(b).ok_or_else(|| bad("Integer needs 1, 2, 4 or 8 bytes"))?)
        }
        ResourceType::Time => {
            Value::Time(signed(b).ok_or_else(|| bad("Time needs 1, 2, 4 or 8 bytes"))?)
        }
        ResourceType::UnsignedInteger => Value::Unsigned(
            unsigned(b).ok_or_else(|| bad("Unsigned Integer needs 1, 2, 4 or 8 bytes"))?,
        ),
        ResourceType::Float => match b.len() {
            4 => Value::Float(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
            8 => Value::Float(f64::from_be_bytes(b.try_into().expect("8 bytes"))),
            _ => return Err(bad("Float needs 4 or 8 bytes")),
        },
        ResourceType::Boolean => match b {
            [0] => Value::Boolean(false),
            [1] => Value::Boolean(true),
            [x] => {
                return Err(err(
                    t.value_offset,
                    format!("{path}: Boolean must be 0 or 1, got {x}"),
                ))
            }
            _ => return Err(bad("Boolean needs 1 byte")),
        },
        ResourceType::Objlnk => match b {
            [o1, o2, i1, i2] => Value::Objlnk(
                u16::from_be_bytes([*o1, *o2]),
                u16::from_be_bytes([*i1, *i2]),
            ),
            _ => return Err(bad("Objlnk needs 4 bytes")),
        },
    })
}

fn utf8(path: &Path, t: &Tlv) -> Result<String, FormatError> {
    String::from_utf8(t.value.to_vec()).map_err(|e| {
        err(
            t.value_offset + e.utf8_error().valid_up_to(),
            format!("{path}: String value is not UTF-8"),
        )
    })
}

fn signed(b: &[u8]) -> Option<i64> {
    Some(match b.len() {
        1 => i64::from(b[0] as i8),
        2 => i64::from(i16::from_be_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        8 => i64::from_be_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

fn unsigned(b: &[u8]) -> Option<u64> {
    matches!(b.len(), 1 | 2 | 4 | 8)
        .then(|| b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
}

pub(crate) fn encode(
    base: &Path,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, FormatError> {
    if base.depth() == 0 {
        return Err(err(
            0,
            "TLV cannot carry the root path; encode an object or below",
        ));
    }
    // Group by path, checking every record lies under the request path.
    let mut by_path: BTreeMap<Path, &Value> = BTreeMap::new();
    for r in records {
        if !base.contains(&r.path) || r.path.depth() < 3 {
            return Err(err(
                0,
                format!(
                    "record {} is not a resource at or below the request path {base}",
                    r.path
                ),
            ));
        }
        if let Some(def) = registry.resource(&r.path) {
            if def.multiple != (r.path.depth() == 4) {
                let what = if def.multiple {
                    "a multiple resource needs instance paths"
                } else {
                    "a single resource has no instances"
                };
                return Err(err(0, format!("record {}: {} ({what})", r.path, def.name)));
            }
        }
        if by_path.insert(r.path, &r.value).is_some() {
            return Err(err(0, format!("record {} appears twice", r.path)));
        }
    }
    let mut out = Vec::new();
    match base.depth() {
        1 => {
            let mut instances: BTreeMap<u16, Vec<(Path, &Value)>> = BTreeMap::new();
            for (p, v) in &by_path {
                instances
                    .entry(p.instance_id().expect("depth >= 3"))
                    .or_default()
                    .push((*p, *v));
            }
            for (id, recs) in instances {
                let body = encode_resources(&recs)?;
                write(&mut out, Kind::ObjectInstance, id, &body)?;
            }
        }
        2 => out = encode_resources(&by_path.iter().map(|(p, v)| (*p, *v)).collect::<Vec<_>>())?,
        3 => {
            let recs: Vec<(Path, &Value)> = by_path.iter().map(|(p, v)| (*p, *v)).collect();
            out = encode_resources(&recs)?;
        }
        _ => {
            for (p, v) in &by_path {
                write(
                    &mut out,
                    Kind::ResourceInstance,
                    p.resource_instance_id().expect("depth 4"),
                    &encode_value(v),
                )?;
            }
        }
    }
    Ok(out)
}

/// Resource and multiple-resource TLVs for records of one object instance, in path order.
fn encode_resources(records: &[(Path, &Value)]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let (path, value) = records[i];
        let res = path.resource_id().expect("depth >= 3");
        if path.depth() == 3 {
            write(&mut out, Kind::Resource, res, &encode_value(value))?;
            i += 1;
            continue;
        }
        let mut body = Vec::new();
        while let Some((p, v)) = records
            .get(i)
            .filter(|(p, _)| p.depth() == 4 && p.parent() == path.parent())
        {
            write(
                &mut body,
                Kind::ResourceInstance,
                p.resource_instance_id().expect("depth 4"),
                &encode_value(v),
            )?;
            i += 1;
        }
        write(&mut out, Kind::MultipleResource, res, &body)?;
    }
    Ok(out)
}

fn write(out: &mut Vec<u8>, kind: Kind, id: u16, value: &[u8]) -> Result<(), FormatError> {
    let len = value.len();
    let mut t = (kind as u8) << 6;
    if id > 0xff {
        t |= 0x20;
    }
    let len_bytes: usize = match len {
        0..=7 => {
            t |= len as u8;
            0
        }
        8..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => {
            return Err(err(
                0,
                format!(
                    "{} TLV {id} value of {len} bytes exceeds the 24-bit length field",
                    kind.name()
                ),
            ))
        }
    };
    t |= (len_bytes as u8) << 3;
    out.push(t);
    if id > 0xff {
        out.extend_from_slice(&id.to_be_bytes());
    } else {
        out.push(id as u8);
    }
    out.extend_from_slice(&(len as u32).to_be_bytes()[4 - len_bytes..]);
    out.extend_from_slice(value);
    Ok(())
}

/// The TLV value bytes of one value, in the smallest size that holds it (Appendix C).
fn encode_value(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) | Value::Corelnk(s) => s.as_bytes().to_vec(),
        Value::Opaque(b) => b.clone(),
        Value::Integer(i) | Value::Time(i) => encode_signed(*i),
        Value::Unsigned(u) => {
            let bytes = u.to_be_bytes();
            let size = if *u <= 0xff {
                1
            } else if *u <= 0xffff {
                2
            } else if *u <= 0xffff_ffff {
                4
            } else {
                8
            };
            bytes[8 - size..].to_vec()
        }
        Value::Float(f) => {
            let narrow = *f as f32;
            if f64::from(narrow) == *f || f.is_nan() {
                narrow.to_be_bytes().to_vec()
            } else {
                f.to_be_bytes().to_vec()
            }
        }
        Value::Boolean(b) => vec![u8::from(*b)],
        Value::Objlnk(o, i) => [o.to_be_bytes(), i.to_be_bytes()].concat(),
    }
}

fn encode_signed(i: i64) -> Vec<u8> {
    if let Ok(x) = i8::try_from(i) {
        x.to_be_bytes().to_vec()
    } else if let Ok(x) = i16::try_from(i) {
        x.to_be_bytes().to_vec()
    } else if let Ok(x) = i32::try_from(i) {
        x.to_be_bytes().to_vec()
    } else {
        i.to_be_bytes().to_vec()
    }
}
