//! The object model: which objects and resources exist, their types and
//! operations, loaded from OMA object definition (DDF) XML files so that a
//! vendor's own objects work by dropping in their XML (LwM2M 1.1 Core §5.1, Appendix D).

mod ddf;
mod registry;

pub use ddf::{parse_ddf, DdfError};
pub use registry::Registry;

use std::collections::BTreeMap;

/// Data type of a resource, as the DDF `<Type>` element names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    String,
    Integer,
    UnsignedInteger,
    Float,
    Boolean,
    Opaque,
    Time,
    Objlnk,
    Corelnk,
    /// Executable resources have no type.
    None,
}

/// Operations a resource allows (`<Operations>`: R, W, RW, E or empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Operations {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    pub id: u16,
    pub name: String,
    pub operations: Operations,
    pub multiple: bool,
    pub mandatory: bool,
    pub kind: ResourceType,
    pub units: Option<String>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDef {
    pub id: u16,
    pub name: String,
    /// Object version, "1.0" when the DDF does not say.
    pub version: String,
    pub urn: String,
    pub multiple: bool,
    pub mandatory: bool,
    pub resources: BTreeMap<u16, ResourceDef>,
}

impl ObjectDef {
    pub fn resource(&self, id: u16) -> Option<&ResourceDef> {
        self.resources.get(&id)
    }
    pub fn mandatory_resources(&self) -> impl Iterator<Item = &ResourceDef> {
        self.resources.values().filter(|r| r.mandatory)
    }
}

impl ResourceType {
    /// The DDF `<Type>` spelling (empty for executables).
    pub fn ddf_name(self) -> &'static str {
        match self {
            ResourceType::String => "String",
            ResourceType::Integer => "Integer",
            ResourceType::UnsignedInteger => "Unsigned Integer",
            ResourceType::Float => "Float",
            ResourceType::Boolean => "Boolean",
            ResourceType::Opaque => "Opaque",
            ResourceType::Time => "Time",
            ResourceType::Objlnk => "Objlnk",
            ResourceType::Corelnk => "Corelnk",
            ResourceType::None => "",
        }
    }
}

/// Parses a DDF `<Type>` value. Case and inner spacing vary in the registry
/// (`Unsigned Integer`, `unsignedInteger`), so both are accepted.
impl std::str::FromStr for ResourceType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let key: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        Ok(match key.as_str() {
            "" | "none" => ResourceType::None,
            "string" => ResourceType::String,
            "integer" => ResourceType::Integer,
            "unsignedinteger" => ResourceType::UnsignedInteger,
            "float" => ResourceType::Float,
            "boolean" => ResourceType::Boolean,
            "opaque" => ResourceType::Opaque,
            "time" => ResourceType::Time,
            "objlnk" => ResourceType::Objlnk,
            "corelnk" => ResourceType::Corelnk,
            _ => return Err(()),
        })
    }
}

/// Parses a DDF `<Operations>` value: `R`, `W`, `RW`, `E` or empty.
impl std::str::FromStr for Operations {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut ops = Operations::default();
        for c in s.trim().chars() {
            match c.to_ascii_uppercase() {
                'R' if !ops.read => ops.read = true,
                'W' if !ops.write => ops.write = true,
                'E' if !ops.execute => ops.execute = true,
                _ => return Err(()),
            }
        }
        if ops.execute && (ops.read || ops.write) {
            return Err(());
        }
        Ok(ops)
    }
}
