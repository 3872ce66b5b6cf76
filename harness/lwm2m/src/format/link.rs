//! CoRE Link Format (RFC 6690), as used by Register's object list
//! (LwM2M 1.1 Core §6.2.1, e.g. `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>`),
//! Discover (§6.3.5, e.g. `</3/0>;pmin=10,</3/0/1>,</3/0/7>;dim=2`) and
//! Bootstrap-Discover (§5.2.7.3, e.g. `</>;lwm2m=1.1,</0/0>;ssid=101;uri="coap://..."`).

use crate::format::{ContentFormat, FormatError};
use crate::path::Path;

const FORMAT: ContentFormat = ContentFormat::LinkFormat;

/// One link: `</3/0>;ver=1.1` is target "/3/0" with attribute ("ver", Some("1.1")).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub attributes: Vec<(String, Option<String>)>,
}

impl Link {
    pub fn new(target: impl Into<String>) -> Self {
        Link {
            target: target.into(),
            attributes: Vec::new(),
        }
    }
    /// The target as an LwM2M path, when it is one (a root path like `</>` with `rt` is not).
    pub fn path(&self) -> Option<Path> {
        self.target.parse().ok().filter(|p: &Path| p.depth() > 0)
    }
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
    /// Whether the link carries `name`, with or without a value (`</3/0/1>;obs`).
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|(n, _)| n == name)
    }
    /// Builder: adds `;name=value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), Some(value.into())));
        self
    }
    /// Builder: adds `;name` without a value.
    pub fn with_flag(mut self, name: impl Into<String>) -> Self {
        self.attributes.push((name.into(), None));
        self
    }
}

fn err(offset: usize, reason: impl Into<String>) -> FormatError {
    FormatError::new(FORMAT, offset, reason)
}

/// Parses a link-format payload. Whitespace around separators is tolerated
/// (some clients break long lists over lines); attribute values may be tokens
/// or quoted strings with backslash escapes (RFC 6690 §2, RFC 8288 §3).
pub fn parse_links(text: &str) -> Result<Vec<Link>, FormatError> {
    let b = text.as_bytes();
    let mut pos = skip_ws(b, 0);
    let mut links = Vec::new();
    if pos == b.len() {
        return Ok(links);
    }
    loop {
        if b.get(pos) != Some(&b'<') {
            return Err(err(pos, "expected '<' to start a link"));
        }
        let close = b[pos..]
            .iter()
            .position(|c| *c == b'>')
            .ok_or_else(|| err(pos, "link target has no closing '>'"))?;
        let target = &text[pos + 1..pos + close];
        let mut link = Link::new(target);
        pos = skip_ws(b, pos + close + 1);
        while b.get(pos) == Some(&b';') {
            pos = skip_ws(b, pos + 1);
            let start = pos;
            while b
                .get(pos)
                .is_some_and(|c| !matches!(c, b'=' | b';' | b',') && !c.is_ascii_whitespace())
            {
                pos += 1;
            }
            if pos == start {
                return Err(err(pos, "expected an attribute name after ';'"));
            }
            let name = text[start..pos].to_string();
            pos = skip_ws(b, pos);
            let value = if b.get(pos) == Some(&b'=') {
                pos = skip_ws(b, pos + 1);
                if b.get(pos) == Some(&b'"') {
                    let (v, next) = quoted(text, pos)?;
                    pos = next;
                    Some(v)
                } else {
                    let vstart = pos;
                    while b
                        .get(pos)
                        .is_some_and(|c| !matches!(c, b';' | b',') && !c.is_ascii_whitespace())
                    {
                        pos += 1;
                    }
                    Some(text[vstart..pos].to_string())
                }
            } else {
                None
            };
            link.attributes.push((name, value));
            pos = skip_ws(b, pos);
        }
        links.push(link);
        match b.get(pos) {
            None => return Ok(links),
            Some(b',') => pos = skip_ws(b, pos + 1),
            Some(_) => return Err(err(pos, "expected ';' or ',' after a link")),
        }
    }
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while b.get(pos).is_some_and(|c| c.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

/// A quoted string starting at `pos` (the opening quote); returns it unescaped and the position after it.
fn quoted(text: &str, pos: usize) -> Result<(String, usize), FormatError> {
    let mut out = String::new();
    let mut chars = text[pos + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, pos + 1 + i + 1)),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(err(pos, "quoted attribute value has no closing '\"'"))
}

/// Attributes whose values are strings by definition and are written quoted
/// even when they would pass as tokens (RFC 6690 §3: rt, if, title, anchor;
/// LwM2M 1.1 Core §5.2.7.3: uri).
const QUOTED: &[&str] = &["rt", "if", "title", "anchor", "rel", "rev", "uri"];

/// Encodes links as `<target>;attr=value,...`.
pub fn encode_links(links: &[Link]) -> String {
    let mut out = String::new();
    for (i, link) in links.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('<');
        out.push_str(&link.target);
        out.push('>');
        for (name, value) in &link.attributes {
            out.push(';');
            out.push_str(name);
            if let Some(v) = value {
                out.push('=');
                if QUOTED.contains(&name.as_str()) || v.is_empty() || !v.bytes().all(is_ptoken) {
                    out.push('"');
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(v);
                }
            }
        }
    }
    out
}

/// RFC 6690 `ptokenchar`, less the characters that would confuse a reader of
/// the list (`,` and `;` are not in it anyway).
fn is_ptoken(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'()*+-./:<=>?@[]^_`{|}~".contains(&c)
}
