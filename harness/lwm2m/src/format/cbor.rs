//! CBOR reading with byte offsets (RFC 8949), for SenML CBOR and LwM2M CBOR.
//!
//! ciborium decodes values; this module reads the outer array or map header
//! itself and hands ciborium one item at a time, so that an error can name the
//! offset of the record or entry it is in.

use ciborium::Value as Cbor;

/// Length of a CBOR array or map: a count, or indefinite (ended by a break byte 0xff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    Definite(u64),
    Indefinite,
}

/// Reads an array (major type 4) or map (5) header at `pos`; returns its length and the position after it.
pub(crate) fn container_header(
    payload: &[u8],
    pos: usize,
    major: u8,
) -> Result<(Length, usize), (usize, String)> {
    let what = if major == 4 { "array" } else { "map" };
    let Some(&first) = payload.get(pos) else {
        return Err((pos, format!("expected a CBOR {what}, payload ends")));
    };
    if first >> 5 != major {
        return Err((
            pos,
            format!("expected a CBOR {what}, found major type {}", first >> 5),
        ));
    }
    let info = first & 0x1f;
    let (len, size) = match info {
        0..=23 => (u64::from(info), 0),
        24..=27 => {
            let size = 1usize << (info - 24);
            let bytes = payload.get(pos + 1..pos + 1 + size).ok_or_else(|| {
                (
                    pos,
                    format!("CBOR {what} header needs {size} length bytes, payload ends"),
                )
            })?;
            (
                bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
                size,
            )
        }
        31 => return Ok((Length::Indefinite, pos + 1)),
        _ => {
            return Err((
                pos,
                format!("reserved additional information {info} in a CBOR {what} header"),
            ))
        }
    };
    Ok((Length::Definite(len), pos + 1 + size))
}

/// Whether the byte at `pos` is the break that ends an indefinite container.
pub(crate) fn is_break(payload: &[u8], pos: usize) -> bool {
    payload.get(pos) == Some(&0xff)
}

/// Decodes one CBOR data item at `pos`; returns it and the position after it.
pub(crate) fn item(payload: &[u8], pos: usize) -> Result<(Cbor, usize), (usize, String)> {
    let mut rest = payload.get(pos..).unwrap_or_default();
    if rest.is_empty() {
        return Err((pos, "expected a CBOR data item, payload ends".into()));
    }
    let before = rest.len();
    match ciborium::de::from_reader::<Cbor, _>(&mut rest) {
        Ok(v) => Ok((v, pos + before - rest.len())),
        Err(e) => {
            use ciborium::de::Error as E;
            Err(match e {
                E::Io(io) => (payload.len(), format!("CBOR item truncated: {io}")),
                E::Syntax(at) => (pos + at, "CBOR syntax error".into()),
                E::Semantic(at, msg) => (pos + at.unwrap_or(0), format!("CBOR: {msg}")),
                E::RecursionLimitExceeded => (pos, "CBOR nested too deeply".into()),
            })
        }
    }
}

/// Iterates over the items of the array or map whose header is at `pos`,
/// calling `f(item_offset, item)`; for maps each call gets a key and value.
/// Returns the position after the container.
pub(crate) fn for_each<F>(
    payload: &[u8],
    pos: usize,
    major: u8,
    mut f: F,
) -> Result<usize, (usize, String)>
where
    F: FnMut(usize, Vec<Cbor>) -> Result<(), (usize, String)>,
{
    let (len, mut pos) = container_header(payload, pos, major)?;
    let per_entry = if major == 5 { 2 } else { 1 };
    let mut count: u64 = 0;
    loop {
        match len {
            Length::Definite(n) if count >= n => break,
            Length::Indefinite if is_break(payload, pos) => {
                pos += 1;
                break;
            }
            _ => {}
        }
        let start = pos;
        let mut items = Vec::with_capacity(per_entry);
        for _ in 0..per_entry {
            let (v, next) = item(payload, pos)?;
            items.push(v);
            pos = next;
        }
        f(start, items)?;
        count += 1;
    }
    Ok(pos)
}
