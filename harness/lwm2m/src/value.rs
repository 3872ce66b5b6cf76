//! Resource values, typed as the object model's data types (LwM2M 1.1 Core Appendix C).

use std::fmt;

/// One resource (instance) value. Which variant a resource holds is decided by
/// its `ResourceType` in the object model, not by the wire format: plain text
/// "1" is an Integer for /3/0/9 and a String for /3/0/0.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    Boolean(bool),
    Opaque(Vec<u8>),
    /// Seconds since the Unix epoch.
    Time(i64),
    /// Object link: object id and instance id.
    Objlnk(u16, u16),
    /// CoRE link format text.
    Corelnk(String),
}

impl Value {
    /// Name of the data type as the object model spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "String",
            Value::Integer(_) => "Integer",
            Value::Unsigned(_) => "Unsigned Integer",
            Value::Float(_) => "Float",
            Value::Boolean(_) => "Boolean",
            Value::Opaque(_) => "Opaque",
            Value::Time(_) => "Time",
            Value::Objlnk(..) => "Objlnk",
            Value::Corelnk(_) => "Corelnk",
        }
    }

    /// Numeric view, for comparisons in steps (`equals: 2`, `greater_than`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) | Value::Time(i) => Some(*i as f64),
            Value::Unsigned(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            Value::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// The plain-text (content format 0) rendering of the value (LwM2M 1.1 Core §7.4.1).
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) | Value::Corelnk(s) => s.clone(),
            Value::Integer(i) | Value::Time(i) => i.to_string(),
            Value::Unsigned(u) => u.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Boolean(b) => if *b { "1" } else { "0" }.to_string(),
            Value::Opaque(b) => hex::encode(b),
            Value::Objlnk(o, i) => format!("{o}:{i}"),
        }
    }
}

/// Floats print without a trailing ".0" for whole numbers only when they are
/// integral, so that 3.0 is "3.0" and text round-trips.
fn format_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{s:?}"),
            Value::Opaque(b) => write!(f, "0x{}", hex::encode(b)),
            other => f.write_str(&other.to_text()),
        }
    }
}

impl Value {
    /// Whether this value is of the object model's `kind` (an executable's
    /// `None` accepts nothing; arguments are not values).
    pub fn is_of_type(&self, kind: crate::model::ResourceType) -> bool {
        use crate::model::ResourceType as T;
        matches!(
            (self, kind),
            (Value::String(_), T::String)
                | (Value::Integer(_), T::Integer)
                | (Value::Unsigned(_), T::UnsignedInteger)
                | (Value::Float(_), T::Float)
                | (Value::Boolean(_), T::Boolean)
                | (Value::Opaque(_), T::Opaque)
                | (Value::Time(_), T::Time)
                | (Value::Objlnk(..), T::Objlnk)
                | (Value::Corelnk(_), T::Corelnk)
        )
    }

    /// Parses the plain-text rendering of a value of type `kind` (LwM2M 1.1
    /// Core §7.4.1, Appendix C). Opaque text is taken as base64 by the text
    /// format itself; here it is the raw bytes of the text. `None` (no type
    /// known) gives a String.
    pub fn parse_text(kind: crate::model::ResourceType, text: &str) -> Result<Value, String> {
        use crate::model::ResourceType as T;
        let bad = |what: &str| format!("expected {what}, found {text:?}");
        Ok(match kind {
            T::String | T::None => Value::String(text.to_string()),
            T::Corelnk => Value::Corelnk(text.to_string()),
            T::Integer => Value::Integer(
                text.trim()
                    .parse()
                    .map_err(|_| bad("a signed 64-bit integer"))?,
            ),
            T::Time => Value::Time(
                text.trim()
                    .parse()
                    .map_err(|_| bad("a time in seconds since 1970"))?,
            ),
            T::UnsignedInteger => Value::Unsigned(
                text.trim()
                    .parse()
                    .map_err(|_| bad("an unsigned 64-bit integer"))?,
            ),
            T::Float => Value::Float(text.trim().parse().map_err(|_| bad("a float"))?),
            T::Boolean => match text.trim() {
                "1" | "true" => Value::Boolean(true),
                "0" | "false" => Value::Boolean(false),
                _ => return Err(bad("a boolean, 0 or 1")),
            },
            T::Opaque => Value::Opaque(text.as_bytes().to_vec()),
            T::Objlnk => {
                let (o, i) = parse_objlnk(text.trim())
                    .ok_or_else(|| bad("an object link object:instance"))?;
                Value::Objlnk(o, i)
            }
        })
    }
}

/// `"3:0"` -> (3, 0); each part a u16 (65535:65535 is the null link).
pub(crate) fn parse_objlnk(text: &str) -> Option<(u16, u16)> {
    let (o, i) = text.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(o) || !digits(i) {
        return None;
    }
    Some((o.parse().ok()?, i.parse().ok()?))
}
