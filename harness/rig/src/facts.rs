//! Typed device facts: what a case may ask the debug port about the device
//! (the version it runs, the slot it booted from, how often it booted, and
//! the extras a rig maps to symbols), with the type each one has.
//!
//! A check that needs a fact the port cannot give must say so: asking for
//! one gives [`RigError::FactUnavailable`] naming the fact and the port, never
//! a default value that would let the check pass silently.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::RigError;

/// A fact a case asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// The firmware version the device runs now (text).
    RunningVersion,
    /// The A/B slot the device booted from, `a` or `b`.
    ActiveSlot,
    /// How many times the device booted (u32).
    BootCount,
    /// A fact the rig names and maps itself (an energy register, a counter).
    Named(String),
}

impl Fact {
    /// The rig file's name of the fact (`running_version`, ...).
    pub fn name(&self) -> &str {
        match self {
            Fact::RunningVersion => "running_version",
            Fact::ActiveSlot => "active_slot",
            Fact::BootCount => "boot_count",
            Fact::Named(n) => n,
        }
    }

    /// The key under which a port's string map ([`crate::Debug::read_state`])
    /// holds the fact: the virtual rig's names, so that a `debug:` check reads
    /// the same key on the virtual rig and on a real bench.
    pub fn state_key(&self) -> &str {
        match self {
            Fact::RunningVersion => "firmware_version",
            Fact::ActiveSlot => "firmware.active_slot",
            Fact::BootCount => "boot_count",
            Fact::Named(n) => n,
        }
    }

    /// The type a well-known fact always has; `None` for a named extra,
    /// whose type comes from the rig's mapping.
    pub fn fixed_kind(&self) -> Option<FactKind> {
        match self {
            Fact::RunningVersion => Some(FactKind::Text),
            Fact::ActiveSlot => Some(FactKind::Slot),
            Fact::BootCount => Some(FactKind::Unsigned),
            Fact::Named(_) => None,
        }
    }
}

impl From<&str> for Fact {
    /// Both the rig file's names and the string map's keys name the
    /// well-known facts; anything else is a named extra.
    fn from(s: &str) -> Self {
        match s {
            "running_version" | "firmware_version" => Fact::RunningVersion,
            "active_slot" | "firmware.active_slot" => Fact::ActiveSlot,
            "boot_count" => Fact::BootCount,
            other => Fact::Named(other.to_owned()),
        }
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of value a fact holds, independent of its width in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactKind {
    Text,
    Unsigned,
    Signed,
    Bytes,
    Slot,
}

/// A fact's value, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactValue {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Bytes(Vec<u8>),
    /// An A/B slot as a lower-case letter (`a`, `b`).
    Slot(char),
}

impl FactValue {
    pub fn kind(&self) -> FactKind {
        match self {
            FactValue::Text(_) => FactKind::Text,
            FactValue::Unsigned(_) => FactKind::Unsigned,
            FactValue::Signed(_) => FactKind::Signed,
            FactValue::Bytes(_) => FactKind::Bytes,
            FactValue::Slot(_) => FactKind::Slot,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            FactValue::Unsigned(v) => Some(*v),
            FactValue::Signed(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for FactValue {
    /// The text a `debug:` check compares: numbers in decimal, bytes in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactValue::Text(s) => f.write_str(s),
            FactValue::Unsigned(v) => write!(f, "{v}"),
            FactValue::Signed(v) => write!(f, "{v}"),
            FactValue::Bytes(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
            FactValue::Slot(c) => write!(f, "{c}"),
        }
    }
}

/// How a fact is laid out in the target's memory: the rig file's `type:`
/// (`u8`, `u16`, `u32`, `u64`, `i32`, `string`, `string(16)`, `bytes(8)`).
/// Integers are little-endian (every Cortex-M bench this harness targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactType {
    U8,
    U16,
    U32,
    U64,
    I32,
    /// NUL-terminated text in at most this many bytes; `None`: the symbol's size.
    String(Option<u64>),
    /// Raw bytes; `None`: the symbol's size.
    Bytes(Option<u64>),
}

impl FactType {
    /// Bytes to read; `None` when only a symbol's size can tell.
    pub fn size(&self) -> Option<u64> {
        match self {
            FactType::U8 => Some(1),
            FactType::U16 => Some(2),
            FactType::U32 | FactType::I32 => Some(4),
            FactType::U64 => Some(8),
            FactType::String(n) | FactType::Bytes(n) => *n,
        }
    }

    /// The same type with its length fixed to `size` where it was open.
    pub fn sized(self, size: u64) -> FactType {
        match self {
            FactType::String(None) => FactType::String(Some(size)),
            FactType::Bytes(None) => FactType::Bytes(Some(size)),
            t => t,
        }
    }

    /// The type a symbol of `size` bytes gets when the rig names none:
    /// an unsigned integer of that width, else its bytes.
    pub fn for_symbol_size(size: u64) -> FactType {
        match size {
            1 => FactType::U8,
            2 => FactType::U16,
            4 => FactType::U32,
            8 => FactType::U64,
            n => FactType::Bytes(Some(n)),
        }
    }

    /// Decodes `bytes` (exactly [`FactType::size`] of them, little-endian).
    pub fn decode(&self, bytes: &[u8]) -> FactValue {
        let mut le = [0u8; 8];
        let n = bytes.len().min(8);
        le[..n].copy_from_slice(&bytes[..n]);
        match self {
            FactType::U8 | FactType::U16 | FactType::U32 | FactType::U64 => {
                FactValue::Unsigned(u64::from_le_bytes(le))
            }
            FactType::I32 => {
                FactValue::Signed(i64::from(i32::from_le_bytes([le[0], le[1], le[2], le[3]])))
            }
            FactType::String(_) => {
                let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                FactValue::Text(String::from_utf8_lossy(&bytes[..end]).into_owned())
            }
            FactType::Bytes(_) => FactValue::Bytes(bytes.to_vec()),
        }
    }
}

impl FromStr for FactType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sized = |inner: &str, make: fn(Option<u64>) -> FactType| {
            inner
                .strip_suffix(')')
                .and_then(|n| n.trim().parse::<u64>().ok())
                .filter(|n| (1..=4096).contains(n))
                .map(|n| make(Some(n)))
                .ok_or_else(|| {
                    format!(
                        "`{s}`: the length must be 1 to 4096 bytes, e.g. `{}(16)`",
                        s.split('(').next().unwrap_or(s)
                    )
                })
        };
        match s.trim() {
            "u8" => Ok(FactType::U8),
            "u16" => Ok(FactType::U16),
            "u32" => Ok(FactType::U32),
            "u64" => Ok(FactType::U64),
            "i32" => Ok(FactType::I32),
            "string" => Ok(FactType::String(None)),
            "bytes" => Ok(FactType::Bytes(None)),
            t => {
                if let Some(inner) = t.strip_prefix("string(") {
                    sized(inner, FactType::String)
                } else if let Some(inner) = t.strip_prefix("bytes(") {
                    sized(inner, FactType::Bytes)
                } else {
                    Err(format!(
                        "unknown type `{s}`: expected u8, u16, u32, u64, i32, string, string(N), bytes or bytes(N)"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for FactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactType::U8 => f.write_str("u8"),
            FactType::U16 => f.write_str("u16"),
            FactType::U32 => f.write_str("u32"),
            FactType::U64 => f.write_str("u64"),
            FactType::I32 => f.write_str("i32"),
            FactType::String(None) => f.write_str("string"),
            FactType::String(Some(n)) => write!(f, "string({n})"),
            FactType::Bytes(None) => f.write_str("bytes"),
            FactType::Bytes(Some(n)) => write!(f, "bytes({n})"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for FactType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A well-known fact's value from its raw form: an active slot given as a
/// number (0 = `a`, 1 = `b`, ...) or a letter; a boot count or version as is.
pub fn shape(fact: &Fact, raw: FactValue, port: &str) -> Result<FactValue, RigError> {
    let wrong = |raw: &FactValue, why: &str| RigError::FactUnavailable {
        fact: fact.name().to_owned(),
        port: port.to_owned(),
        reason: format!("read {raw} ({why})"),
    };
    match (fact.fixed_kind(), raw) {
        (Some(FactKind::Slot), FactValue::Unsigned(n)) if n < 26 => {
            Ok(FactValue::Slot(char::from(b'a' + n as u8)))
        }
        (Some(FactKind::Slot), FactValue::Text(t)) => match t.trim().chars().next() {
            Some(c) if c.is_ascii_alphabetic() && t.trim().len() == 1 => {
                Ok(FactValue::Slot(c.to_ascii_lowercase()))
            }
            _ => Err(wrong(&FactValue::Text(t), "not a slot letter")),
        },
        (Some(FactKind::Slot), v @ FactValue::Slot(_)) => Ok(v),
        (Some(FactKind::Slot), other) => Err(wrong(&other, "not a slot")),
        (Some(FactKind::Unsigned), v @ FactValue::Unsigned(n)) if n <= u64::from(u32::MAX) => Ok(v),
        (Some(FactKind::Unsigned), other) => Err(wrong(&other, "not a u32 count")),
        (Some(FactKind::Text), v @ FactValue::Text(_)) => Ok(v),
        (Some(FactKind::Text), other) => Err(wrong(&other, "not text")),
        (_, v) => Ok(v),
    }
}

/// A fact from a port's string map (the default of [`crate::Debug::fact`],
/// which the virtual rig's map satisfies): the well-known facts typed, an
/// extra as text. A key the map lacks is unavailable, with the keys it has.
pub fn from_state(
    state: &BTreeMap<String, String>,
    fact: &Fact,
    port: &str,
) -> Result<FactValue, RigError> {
    let Some(text) = state.get(fact.state_key()) else {
        return Err(RigError::FactUnavailable {
            fact: fact.name().to_owned(),
            port: port.to_owned(),
            reason: format!(
                "the port reports {}",
                if state.is_empty() {
                    "nothing".to_owned()
                } else {
                    state.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ),
        });
    };
    let raw = match fact.fixed_kind() {
        Some(FactKind::Unsigned) => match text.trim().parse::<u64>() {
            Ok(n) => FactValue::Unsigned(n),
            Err(_) => FactValue::Text(text.clone()),
        },
        _ => FactValue::Text(text.clone()),
    };
    shape(fact, raw, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_print_back() {
        for t in [
            "u8",
            "u16",
            "u32",
            "u64",
            "i32",
            "string",
            "string(16)",
            "bytes",
            "bytes(8)",
        ] {
            assert_eq!(t.parse::<FactType>().unwrap().to_string(), t);
        }
        assert!("u128"
            .parse::<FactType>()
            .unwrap_err()
            .contains("unknown type `u128`"));
        assert!("string(0)"
            .parse::<FactType>()
            .unwrap_err()
            .contains("1 to 4096"));
        assert!("bytes(x)".parse::<FactType>().is_err());
    }

    #[test]
    fn integers_decode_little_endian() {
        assert_eq!(
            FactType::U32.decode(&[0x78, 0x56, 0x34, 0x12]),
            FactValue::Unsigned(0x1234_5678)
        );
        assert_eq!(
            FactType::U64.decode(&[1, 0, 0, 0, 0, 0, 0, 0x80]),
            FactValue::Unsigned(0x8000_0000_0000_0001)
        );
        assert_eq!(
            FactType::I32.decode(&[0xfe, 0xff, 0xff, 0xff]),
            FactValue::Signed(-2)
        );
    }

    #[test]
    fn strings_stop_at_the_first_nul() {
        assert_eq!(
            FactType::String(Some(8)).decode(b"1.4.2\0\xff\xff"),
            FactValue::Text("1.4.2".into())
        );
        assert_eq!(
            FactType::String(Some(3)).decode(b"abc"),
            FactValue::Text("abc".into())
        );
    }

    #[test]
    fn a_slot_is_a_letter_from_a_number_or_a_letter() {
        let s = |v| shape(&Fact::ActiveSlot, v, "p");
        assert_eq!(s(FactValue::Unsigned(1)).unwrap(), FactValue::Slot('b'));
        assert_eq!(
            s(FactValue::Text("A".into())).unwrap(),
            FactValue::Slot('a')
        );
        let e = s(FactValue::Text("ab".into())).unwrap_err().to_string();
        assert!(
            e.contains("active_slot") && e.contains("not a slot letter"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_key_is_unavailable_not_a_pass() {
        let mut state = BTreeMap::new();
        state.insert("boot_count".to_owned(), "7".to_owned());
        state.insert("firmware_version".to_owned(), "1.0".to_owned());
        assert_eq!(
            from_state(&state, &Fact::BootCount, "p").unwrap(),
            FactValue::Unsigned(7)
        );
        assert_eq!(
            from_state(&state, &Fact::from("running_version"), "p").unwrap(),
            FactValue::Text("1.0".into())
        );
        let e = from_state(&state, &Fact::from("energy_wh"), "virtual debug port")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "virtual debug port cannot give energy_wh: the port reports boot_count, firmware_version"
        );
    }

    #[test]
    fn a_boot_count_that_is_not_a_number_is_refused() {
        let mut state = BTreeMap::new();
        state.insert("boot_count".to_owned(), "many".to_owned());
        let e = from_state(&state, &Fact::BootCount, "p")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("boot_count") && e.contains("not a u32 count"),
            "{e}"
        );
    }
}
