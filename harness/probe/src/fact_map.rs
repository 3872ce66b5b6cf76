//! The rig's fact mapping resolved against the firmware's ELF: each fact at
//! an address with a sized type, checked before any probe is touched, so a
//! renamed symbol fails `rig check` rather than a case half-way.

use std::collections::BTreeMap;

use rig::facts::{shape, Fact, FactKind, FactType, FactValue};
use rig::swd::{FactSource, SwdSpec};
use rig::RigError;

use crate::elf::Elf;
use crate::error::ProbeError;
use crate::memory::TargetMemory;

/// Where one fact is and how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub address: u64,
    /// Always sized (`string(N)`, `bytes(N)`).
    pub ty: FactType,
}

/// Every fact the rig maps, resolved.
#[derive(Debug, Clone, Default)]
pub struct FactMap {
    facts: BTreeMap<Fact, Location>,
}

impl FactMap {
    /// Resolves `spec.symbols` against `elf` (needed only when a fact names a symbol).
    pub fn resolve(spec: &SwdSpec, elf: Option<&Elf>) -> Result<FactMap, ProbeError> {
        let mut facts = BTreeMap::new();
        for (name, source) in &spec.symbols {
            let fact = Fact::from(name.as_str());
            let loc = match source {
                FactSource::Address { address, ty } => Location {
                    address: *address,
                    ty: *ty,
                },
                FactSource::Symbol { name: symbol, ty } => {
                    let elf = elf.ok_or_else(|| ProbeError::Symbol {
                        elf: "(no debug.elf)".into(),
                        symbol: symbol.clone(),
                        message: "a symbol needs the rig's `debug.elf`".into(),
                    })?;
                    let s = elf.symbol(symbol)?;
                    if s.size == 0 {
                        return Err(ProbeError::Symbol {
                            elf: elf.path().to_path_buf(),
                            symbol: symbol.clone(),
                            message: "has size 0: give `type:` with a length".into(),
                        });
                    }
                    let ty = match (ty, fact.fixed_kind()) {
                        (Some(t), _) => t.sized(s.size),
                        (None, Some(FactKind::Text)) => FactType::String(Some(s.size)),
                        (None, _) => FactType::for_symbol_size(s.size),
                    };
                    if ty.size().is_some_and(|n| n > s.size) {
                        return Err(ProbeError::Symbol {
                            elf: elf.path().to_path_buf(),
                            symbol: symbol.clone(),
                            message: format!("is {} bytes; `{ty}` would read past its end", s.size),
                        });
                    }
                    Location {
                        address: s.address,
                        ty,
                    }
                }
            };
            facts.insert(fact, loc);
        }
        Ok(FactMap { facts })
    }

    pub fn location(&self, fact: &Fact) -> Option<Location> {
        self.facts.get(fact).copied()
    }

    pub fn facts(&self) -> impl Iterator<Item = &Fact> {
        self.facts.keys()
    }

    /// Reads and types `fact` from `memory`; a fact the rig does not map
    /// is [`RigError::FactUnavailable`] naming what it does map.
    pub fn read(
        &self,
        fact: &Fact,
        memory: &mut dyn TargetMemory,
        port: &str,
    ) -> Result<FactValue, RigError> {
        let Some(loc) = self.location(fact) else {
            return Err(RigError::FactUnavailable {
                fact: fact.name().to_owned(),
                port: port.to_owned(),
                reason: format!(
                    "the rig maps no symbol to it (debug.symbols has: {})",
                    if self.facts.is_empty() {
                        "nothing".to_owned()
                    } else {
                        self.facts
                            .keys()
                            .map(Fact::name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            });
        };
        let raw = read_value(memory, loc)?;
        shape(fact, raw, port)
    }

    /// Every mapped fact as text, under the keys [`rig::Debug::read_state`]
    /// uses (so a `debug:` check reads `boot_count` on any rig).
    pub fn read_all(
        &self,
        memory: &mut dyn TargetMemory,
        port: &str,
    ) -> Result<BTreeMap<String, String>, RigError> {
        let mut out = BTreeMap::new();
        for fact in self.facts.keys() {
            let v = self.read(fact, memory, port)?;
            out.insert(fact.state_key().to_owned(), v.to_string());
        }
        Ok(out)
    }
}

/// `loc.ty.size()` bytes at `loc.address`, decoded.
pub fn read_value(memory: &mut dyn TargetMemory, loc: Location) -> Result<FactValue, ProbeError> {
    let len = loc.ty.size().unwrap_or(0) as usize;
    let mut buf = vec![0u8; len];
    memory.read(loc.address, &mut buf)?;
    Ok(loc.ty.decode(&buf))
}
