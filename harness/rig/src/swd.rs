//! The rig file's SWD debug port: which probe (by serial number, so that a
//! bench with several probes attached always picks its own), which chip,
//! and where the device keeps the facts a case asks for — symbols of the
//! firmware's ELF, or fixed addresses with a type.
//!
//! ```yaml
//! debug:
//!   kind: swd
//!   probe: "0669FF555052836687031520"     # serial, or VID:PID:serial
//!   chip: STM32L476RGTx
//!   speed_khz: 4000
//!   elf: ../firmware/meter.elf            # relative to the rig file
//!   symbols:
//!     running_version: FW_VERSION
//!     boot_count: BOOT_COUNT
//!     active_slot: { address: 0x0807F800, type: u8 }
//!     energy_wh: { symbol: ENERGY_WH, type: u64 }
//!   rtt: true
//!   chip_id: 0x415                        # optional: DBGMCU_IDCODE.DEV_ID
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::facts::{Fact, FactKind, FactType};

/// An SWD debug port driven through probe-rs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwdSpec {
    /// The probe's serial number, or `VID:PID` / `VID:PID:serial` in hex.
    pub probe: String,
    /// The target's name in probe-rs's builtin list (`probe-rs chip list`).
    pub chip: String,
    #[serde(default = "default_speed_khz")]
    pub speed_khz: u32,
    /// Assert the reset line while attaching, for firmware that remaps the
    /// SWD pins or sleeps too deeply to answer.
    #[serde(default)]
    pub connect_under_reset: bool,
    /// The firmware's ELF, for symbols (and RTT's control block).
    /// Relative: to the rig file's folder.
    #[serde(default)]
    pub elf: Option<PathBuf>,
    /// Fact name -> where it lives. The well-known names are
    /// `running_version`, `boot_count` and `active_slot`; any other name is
    /// an extra a case reads by that name.
    #[serde(default)]
    pub symbols: BTreeMap<String, FactSource>,
    /// Capture the firmware's RTT up channels into the case's artifacts.
    #[serde(default)]
    pub rtt: bool,
    /// The chip's device ID as its family's ID register gives it
    /// ([`id_register`]: STM32 `DBGMCU_IDCODE.DEV_ID`, nRF `FICR` part),
    /// e.g. `0x415` for an STM32L47x: `rig check` and attaching refuse a
    /// board whose chip is another, before anything is flashed to it.
    #[serde(default, deserialize_with = "chip_id")]
    #[schemars(with = "Option<crate::schema::HexNumberText>")]
    pub chip_id: Option<u32>,
}

fn chip_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    let n = match Id::deserialize(d)? {
        Id::Number(n) => n,
        Id::Text(t) => parse_address(&t).ok_or_else(|| {
            D::Error::custom(format!(
                "`{t}` is not a chip ID: write it in hex, e.g. 0x415"
            ))
        })?,
    };
    u32::try_from(n)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{n:#x} is not a chip ID: ID registers are 32 bits")))
}

/// Where a chip family keeps what identifies the chip, readable over SWD
/// from any firmware: the register, its address and the bits that name the
/// device (the rest is the silicon revision, which a rig should not pin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRegister {
    pub name: &'static str,
    pub address: u64,
    pub mask: u32,
}

/// The ID register of `chip`'s family (a probe-rs target name), where
/// meterbench knows it. Sources: ST reference manuals, "DBGMCU_IDCODE"
/// (RM0091 F0, RM0444 G0, RM0377 L0, RM0490 C0 at 0x4001_5800; RM0008 F1,
/// RM0033 F2, RM0316 F3, RM0090 F4, RM0410 F7, RM0038 L1, RM0351 L4,
/// RM0440 G4, RM0434 WB, RM0453 WL at 0xE004_2000; RM0433 H7 at
/// 0x5C00_1000; RM0438 L5, RM0456 U5 at 0xE004_4000; DEV_ID is bits
/// 11:0); Nordic product specifications, "FICR" (nRF51 CONFIGID.HWID at
/// 0x1000_005C, nRF52 INFO.PART at 0x1000_0100, nRF91 INFO.PART at
/// 0x00FF_0140).
pub fn id_register(chip: &str) -> Option<IdRegister> {
    let c = chip.to_ascii_uppercase();
    let stm32 = |address| IdRegister {
        name: "DBGMCU_IDCODE.DEV_ID",
        address,
        mask: 0xFFF,
    };
    let has = |families: &[&str]| families.iter().any(|f| c.starts_with(f));
    if has(&["STM32F0", "STM32G0", "STM32L0", "STM32C0"]) {
        Some(stm32(0x4001_5800))
    } else if has(&[
        "STM32F1", "STM32F2", "STM32F3", "STM32F4", "STM32F7", "STM32L1", "STM32L4", "STM32G4",
        "STM32WB", "STM32WL",
    ]) {
        Some(stm32(0xE004_2000))
    } else if has(&["STM32H7"]) {
        Some(stm32(0x5C00_1000))
    } else if has(&["STM32L5", "STM32U5"]) {
        Some(stm32(0xE004_4000))
    } else if has(&["NRF51"]) {
        Some(IdRegister {
            name: "FICR.CONFIGID.HWID",
            address: 0x1000_005C,
            mask: 0xFFFF,
        })
    } else if has(&["NRF52"]) {
        Some(IdRegister {
            name: "FICR.INFO.PART",
            address: 0x1000_0100,
            mask: 0xFFFF_FFFF,
        })
    } else if has(&["NRF91"]) {
        Some(IdRegister {
            name: "FICR.INFO.PART",
            address: 0x00FF_0140,
            mask: 0xFFFF_FFFF,
        })
    } else {
        None
    }
}

fn default_speed_khz() -> u32 {
    4000
}

impl SwdSpec {
    /// The ELF's path, resolved against the rig file's folder.
    pub fn elf_path(&self, rig_dir: &Path) -> Option<PathBuf> {
        self.elf.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                rig_dir.join(p)
            }
        })
    }

    /// What a rig file can get wrong without the ELF or the probe at hand:
    /// `(field, message)` of the first mistake.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.probe.trim().is_empty() {
            return Err((
                "debug.probe".into(),
                "must name the probe's serial number (or VID:PID:serial)".into(),
            ));
        }
        if self.chip.trim().is_empty() {
            return Err(("debug.chip".into(), "must name the chip".into()));
        }
        if !(1..=100_000).contains(&self.speed_khz) {
            return Err((
                "debug.speed_khz".into(),
                format!("{} is not a speed: use 1 to 100000 kHz", self.speed_khz),
            ));
        }
        if let Some(id) = self.chip_id {
            let Some(reg) = id_register(&self.chip) else {
                return Err((
                    "debug.chip_id".into(),
                    format!(
                        "meterbench knows the ID register of STM32 and nRF51/52/91 chips, not of `{}`: remove `chip_id`",
                        self.chip
                    ),
                ));
            };
            if id & !reg.mask != 0 {
                return Err((
                    "debug.chip_id".into(),
                    format!(
                        "{id:#x} has bits outside {} (mask {:#x}): give {:#x}",
                        reg.name,
                        reg.mask,
                        id & reg.mask
                    ),
                ));
            }
        }
        for (name, source) in &self.symbols {
            let field = format!("debug.symbols.{name}");
            if !is_fact_name(name) {
                return Err((field, "a fact name uses a-z, 0-9, `_`, `.` and `-`".into()));
            }
            if matches!(source, FactSource::Symbol { .. }) && self.elf.is_none() {
                return Err((
                    field,
                    format!(
                        "names the symbol `{source}`, so `debug.elf` must give the firmware's ELF"
                    ),
                ));
            }
            if let FactSource::Address { ty, .. } = source {
                if ty.size().is_none() {
                    return Err((
                        field,
                        format!("at a fixed address, `{ty}` needs a length, e.g. `{ty}(16)`"),
                    ));
                }
            }
            if let (Some(kind), Some(ty)) = (Fact::from(name.as_str()).fixed_kind(), source.ty()) {
                let fits = match kind {
                    FactKind::Text => matches!(ty, FactType::String(_)),
                    FactKind::Unsigned => {
                        matches!(ty, FactType::U8 | FactType::U16 | FactType::U32)
                    }
                    FactKind::Slot => !matches!(ty, FactType::Bytes(_) | FactType::I32),
                    _ => true,
                };
                if !fits {
                    return Err((field, format!("`{name}` cannot be read as `{ty}`")));
                }
            }
        }
        Ok(())
    }
}

fn is_fact_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// Where a fact lives in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactSource {
    /// A symbol of the ELF; `ty` absent: by the fact (a version is text, a
    /// count an integer) or the symbol's size.
    Symbol { name: String, ty: Option<FactType> },
    /// A fixed address (option bytes, a register) with a sized type.
    Address { address: u64, ty: FactType },
}

impl FactSource {
    pub fn ty(&self) -> Option<FactType> {
        match self {
            FactSource::Symbol { ty, .. } => *ty,
            FactSource::Address { ty, .. } => Some(*ty),
        }
    }
}

impl fmt::Display for FactSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactSource::Symbol { name, ty: None } => f.write_str(name),
            FactSource::Symbol { name, ty: Some(t) } => write!(f, "{name} as {t}"),
            FactSource::Address { address, ty } => write!(f, "{address:#010x} as {ty}"),
        }
    }
}

impl<'de> Deserialize<'de> for FactSource {
    /// `SYMBOL`, `{ symbol: SYMBOL, type: T }` or `{ address: 0x.., type: T }`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Address {
            Number(u64),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            #[serde(default)]
            symbol: Option<String>,
            #[serde(default)]
            address: Option<Address>,
            #[serde(default, rename = "type")]
            ty: Option<FactType>,
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = FactSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a symbol name, or a map with `symbol` or `address` and `type`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if !is_symbol_name(v) {
                    return Err(E::custom(format!(
                        "`{v}` is not a symbol name; for an address write {{ address: {v}, type: u32 }}"
                    )));
                }
                Ok(FactSource::Symbol {
                    name: v.to_owned(),
                    ty: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let l = Long::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                match (l.symbol, l.address) {
                    (Some(name), None) if is_symbol_name(&name) => {
                        Ok(FactSource::Symbol { name, ty: l.ty })
                    }
                    (Some(name), None) => {
                        Err(A::Error::custom(format!("`{name}` is not a symbol name")))
                    }
                    (None, Some(a)) => {
                        let address = match a {
                            Address::Number(n) => n,
                            Address::Text(t) => parse_address(&t).ok_or_else(|| {
                                A::Error::custom(format!(
                                    "`{t}` is not an address: write it in hex, e.g. 0x20000010"
                                ))
                            })?,
                        };
                        let ty = l.ty.ok_or_else(|| {
                            A::Error::custom("an `address` needs a `type` (u8, u16, u32, u64, i32, string(N), bytes(N))")
                        })?;
                        Ok(FactSource::Address { address, ty })
                    }
                    (Some(_), Some(_)) => {
                        Err(A::Error::custom("give `symbol` or `address`, not both"))
                    }
                    (None, None) => Err(A::Error::custom("give `symbol` or `address`")),
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

/// C identifiers and the mangled names a linker keeps.
fn is_symbol_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'$')
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.'))
}

fn parse_address(t: &str) -> Option<u64> {
    let t = t.trim().replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}
