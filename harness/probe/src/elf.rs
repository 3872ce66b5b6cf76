//! The firmware's ELF: where its symbols are (address and size), and what
//! its memory holds when loaded — the initial image a real target starts
//! from, which stands in for the target in tests and dry checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use object::{Object, ObjectKind, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

use crate::error::ProbeError;
use crate::memory::TargetMemory;

/// A data symbol's place in target memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    pub address: u64,
    pub size: u64,
}

/// One allocated section: its runtime address and contents (zeros for
/// `.bss`, which has no bytes in the file).
#[derive(Debug, Clone)]
struct Region {
    name: String,
    address: u64,
    bytes: Vec<u8>,
}

/// A linked firmware ELF, read once.
#[derive(Debug, Clone)]
pub struct Elf {
    path: PathBuf,
    symbols: BTreeMap<String, Symbol>,
    regions: Vec<Region>,
}

impl Elf {
    pub fn load(path: &Path) -> Result<Elf, ProbeError> {
        let data = std::fs::read(path).map_err(|e| ProbeError::Elf {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Elf::parse(&data, path)
    }

    /// Parses ELF bytes; `path` names them in errors.
    pub fn parse(data: &[u8], path: &Path) -> Result<Elf, ProbeError> {
        let bad = |message: String| ProbeError::Elf {
            path: path.to_path_buf(),
            message,
        };
        let file = object::File::parse(data).map_err(|e| bad(format!("not an ELF: {e}")))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(bad(format!("a {:?} file, not an ELF", file.format())));
        }
        if file.kind() == ObjectKind::Relocatable {
            return Err(bad(
                "an object file (relocatable), not a linked firmware: its symbols have no addresses yet".into(),
            ));
        }
        if !file.is_little_endian() {
            return Err(bad(
                "a big-endian image; facts are decoded little-endian".into()
            ));
        }
        let mut symbols = BTreeMap::new();
        for s in file.symbols() {
            if s.is_undefined() || !matches!(s.kind(), SymbolKind::Data | SymbolKind::Unknown) {
                continue;
            }
            if let Ok(name) = s.name() {
                if !name.is_empty() {
                    symbols.insert(
                        name.to_owned(),
                        Symbol {
                            address: s.address(),
                            size: s.size(),
                        },
                    );
                }
            }
        }
        let mut regions = Vec::new();
        for section in file.sections() {
            let kind = section.kind();
            let bytes = match kind {
                SectionKind::Data | SectionKind::ReadOnlyData | SectionKind::ReadOnlyString => {
                    section
                        .data()
                        .map_err(|e| bad(format!("section {:?}: {e}", section.name())))?
                        .to_vec()
                }
                SectionKind::UninitializedData => vec![0; section.size() as usize],
                _ => continue,
            };
            if section.address() == 0 && kind != SectionKind::UninitializedData {
                continue; // not allocated (debug info and the like)
            }
            regions.push(Region {
                name: section.name().unwrap_or("?").to_owned(),
                address: section.address(),
                bytes,
            });
        }
        Ok(Elf {
            path: path.to_path_buf(),
            symbols,
            regions,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A data symbol, or an error naming the ELF, the symbol and the
    /// nearest names it holds (a typo, a C++ mangled name).
    pub fn symbol(&self, name: &str) -> Result<Symbol, ProbeError> {
        self.symbols.get(name).copied().ok_or_else(|| {
            let lower = name.to_ascii_lowercase();
            let near: Vec<&str> = self
                .symbols
                .keys()
                .filter(|k| {
                    let k = k.to_ascii_lowercase();
                    k.contains(&lower) || lower.contains(&k) && k.len() > 3
                })
                .map(String::as_str)
                .take(5)
                .collect();
            ProbeError::Symbol {
                elf: self.path.clone(),
                symbol: name.to_owned(),
                message: if near.is_empty() {
                    "no such data symbol".to_owned()
                } else {
                    format!("no such data symbol; similar: {}", near.join(", "))
                },
            }
        })
    }

    /// The address of `_SEGGER_RTT`, RTT's control block, when the firmware has one.
    pub fn rtt_control_block(&self) -> Option<u64> {
        self.symbols.get("_SEGGER_RTT").map(|s| s.address)
    }

    /// Target memory as this ELF loads it.
    pub fn image(&self) -> ElfImage<'_> {
        ElfImage { elf: self }
    }
}

/// Memory with the ELF's initial contents: what a freshly flashed target
/// holds before its firmware runs.
#[derive(Debug, Clone, Copy)]
pub struct ElfImage<'a> {
    elf: &'a Elf,
}

impl TargetMemory for ElfImage<'_> {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), ProbeError> {
        let len = buf.len() as u64;
        for r in &self.elf.regions {
            let end = r.address + r.bytes.len() as u64;
            if address >= r.address && address.saturating_add(len) <= end {
                let from = (address - r.address) as usize;
                buf.copy_from_slice(&r.bytes[from..from + buf.len()]);
                return Ok(());
            }
        }
        Err(ProbeError::Memory {
            memory: format!("image of {}", self.elf.path.display()),
            address,
            len: buf.len(),
            message: format!(
                "outside its sections ({})",
                self.elf
                    .regions
                    .iter()
                    .map(|r| format!("{} {:#x}+{}", r.name, r.address, r.bytes.len()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    fn describe(&self) -> String {
        format!("image of {}", self.elf.path.display())
    }
}
