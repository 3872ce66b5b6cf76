//! LwM2M CBOR (content format 11544, LwM2M 1.2 Core §7.4.6, also in 1.1.1).
//!
//! Nested CBOR maps keyed by path ids: `{3: {0: {0: "Open Mobile Alliance"}}}`.
//! A key may also be an array of ids that stands for several levels at once
//! (`{[3, 0]: {0: ...}}`). Leaves are plain CBOR values: integers, floats,
//! booleans, text (String, Corelnk and Objlnk as "object:instance"), byte
//! strings (Opaque); Time is an integer, optionally under tag 1.
//!
//! Paths are absolute. The encoder puts the request path in one array key and
//! nests the rest one level per map.

use std::collections::BTreeMap;

use ciborium::Value as Cbor;

use crate::format::senml::{typed_value, SenmlValue};
use crate::format::senml_cbor::number;
use crate::format::{cbor, ContentFormat, FormatError, Record};
use crate::model::{Registry, ResourceType};
use crate::path::Path;
use crate::value::Value;

const FORMAT: ContentFormat = ContentFormat::Lwm2mCbor;

enum Node {
    Leaf(Cbor),
    Map(BTreeMap<u16, Node>),
}

pub(crate) fn encode(base: &Path, records: &[Record]) -> Result<Vec<u8>, FormatError> {
    let err = |reason: String| FormatError::new(FORMAT, 0, reason);
    let mut root: BTreeMap<u16, Node> = BTreeMap::new();
    let mut at_base: Option<Cbor> = None;
    for r in records {
        if !base.contains(&r.path) || r.path.depth() < 3 {
            return Err(err(format!(
                "record {} is not a resource at or below the request path {base}",
                r.path
            )));
        }
        let rel = &r.path.ids()[base.depth()..];
        let leaf = leaf(&r.value);
        let Some((last, parents)) = rel.split_last() else {
            if at_base.replace(leaf).is_some() || !root.is_empty() {
                return Err(err(format!(
                    "record {} appears twice or together with its instances",
                    r.path
                )));
            }
            continue;
        };
        if at_base.is_some() {
            return Err(err(format!(
                "record {} lies below another record's value",
                r.path
            )));
        }
        let mut map = &mut root;
        for id in parents {
            let node = map.entry(*id).or_insert_with(|| Node::Map(BTreeMap::new()));
            map = match node {
                Node::Map(m) => m,
                Node::Leaf(_) => {
                    return Err(err(format!(
                        "record {} lies below another record's value",
                        r.path
                    )))
                }
            };
        }
        if map.insert(*last, Node::Leaf(leaf)).is_some() {
            return Err(err(format!("record {} appears twice", r.path)));
        }
    }
    let body = match at_base {
        Some(v) => v,
        None => to_cbor(Node::Map(root)),
    };
    let top = match base.ids() {
        [] => body,
        [id] => Cbor::Map(vec![(Cbor::from(*id), body)]),
        ids => Cbor::Map(vec![(
            Cbor::Array(ids.iter().map(|i| Cbor::from(*i)).collect()),
            body,
        )]),
    };
    let mut out = Vec::new();
    ciborium::ser::into_writer(&top, &mut out).map_err(|e| err(e.to_string()))?;
    Ok(out)
}

fn to_cbor(node: Node) -> Cbor {
    match node {
        Node::Leaf(v) => v,
        Node::Map(m) => Cbor::Map(
            m.into_iter()
                .map(|(k, v)| (Cbor::from(k), to_cbor(v)))
                .collect(),
        ),
    }
}

fn leaf(v: &Value) -> Cbor {
    match v {
        Value::Integer(i) | Value::Time(i) => Cbor::from(*i),
        Value::Unsigned(u) => Cbor::from(*u),
        Value::Float(f) => Cbor::Float(*f),
        Value::Boolean(b) => Cbor::Bool(*b),
        Value::String(s) | Value::Corelnk(s) => Cbor::Text(s.clone()),
        Value::Opaque(d) => Cbor::Bytes(d.clone()),
        Value::Objlnk(o, i) => Cbor::Text(format!("{o}:{i}")),
    }
}

pub(crate) fn decode(
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<Record>, FormatError> {
    let mut out = Vec::new();
    let end = cbor::for_each(payload, 0, 5, |offset, mut kv| {
        let value = kv.pop().unwrap_or(Cbor::Null);
        let key = kv.pop().unwrap_or(Cbor::Null);
        let path = extend(&Path::ROOT, &key).map_err(|reason| (offset, reason))?;
        walk(base, path, value, registry, &mut out).map_err(|reason| (offset, reason))
    })
    .map_err(|(at, reason)| FormatError::new(FORMAT, at, reason))?;
    if end != payload.len() {
        return Err(FormatError::new(
            FORMAT,
            end,
            "trailing bytes after the LwM2M CBOR map",
        ));
    }
    Ok(out)
}

/// `path` extended by a key: one id, or an array of ids.
fn extend(path: &Path, key: &Cbor) -> Result<Path, String> {
    let id = |k: &Cbor| -> Result<u16, String> {
        match k {
            Cbor::Integer(i) => u16::try_from(i128::from(*i))
                .ok()
                .filter(|id| *id != u16::MAX)
                .ok_or_else(|| format!("key {} is not an id in 0..=65534", i128::from(*i))),
            _ => Err("map keys must be ids or arrays of ids".to_string()),
        }
    };
    let ids = match key {
        Cbor::Array(items) if !items.is_empty() => {
            items.iter().map(id).collect::<Result<Vec<_>, _>>()?
        }
        Cbor::Array(_) => return Err("empty array key".into()),
        k => vec![id(k)?],
    };
    let mut p = *path;
    for i in ids {
        p = p
            .child(i)
            .ok_or_else(|| format!("path below {path} is deeper than four levels"))?;
    }
    Ok(p)
}

fn walk(
    base: &Path,
    path: Path,
    value: Cbor,
    registry: &Registry,
    out: &mut Vec<Record>,
) -> Result<(), String> {
    if let Cbor::Map(entries) = value {
        for (k, v) in entries {
            let child = extend(&path, &k)?;
            walk(base, child, v, registry, out)?;
        }
        return Ok(());
    }
    if path.depth() < 3 {
        return Err(format!("value at {path}, which is not a resource"));
    }
    if !base.contains(&path) {
        return Err(format!(
            "record {path} lies outside the request path {base}"
        ));
    }
    let kind = registry.resource(&path).map(|r| r.kind);
    let senml = match value {
        Cbor::Text(t) if kind == Some(ResourceType::Objlnk) => SenmlValue::ObjLink(t),
        Cbor::Text(t) => SenmlValue::String(t),
        Cbor::Bytes(b) => SenmlValue::Data(b),
        Cbor::Bool(b) => SenmlValue::Bool(b),
        other => SenmlValue::Number(
            number(&other)
                .ok_or_else(|| format!("{path}: unsupported CBOR value ({})", cbor_kind(&other)))?,
        ),
    };
    let typed = typed_value(kind, senml).map_err(|reason| format!("{path}: {reason}"))?;
    out.push(Record::new(path, typed));
    Ok(())
}

fn cbor_kind(v: &Cbor) -> &'static str {
    match v {
        Cbor::Integer(_) => "integer",
        Cbor::Bytes(_) => "byte string",
        Cbor::Float(_) => "float",
        Cbor::Text(_) => "text string",
        Cbor::Bool(_) => "boolean",
        Cbor::Null => "null",
        Cbor::Tag(..) => "tagged item",
        Cbor::Array(_) => "array",
        Cbor::Map(_) => "map",
        _ => "unknown item",
    }
}
