//! The client's object instances and their resource values.

use std::collections::BTreeMap;

use crate::format::Record;
use crate::model::Registry;
use crate::path::Path;
use crate::value::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("{0} does not exist")]
    NotFound(Path),
    #[error("{0} is not in the object model")]
    Unknown(Path),
    #[error("{path}: expected {expected}, got {got}")]
    WrongType {
        path: Path,
        expected: String,
        got: String,
    },
}

/// Object instances keyed by (object, instance), each a map of resource
/// (instance) paths to values. Single resources sit at depth 3, multiple
/// resources' instances at depth 4.
#[derive(Debug, Clone, Default)]
pub struct ObjectStore {
    registry: Registry,
    values: BTreeMap<(u16, u16), BTreeMap<Path, Value>>,
}

impl ObjectStore {
    pub fn new(registry: Registry) -> Self {
        ObjectStore {
            registry,
            values: BTreeMap::new(),
        }
    }
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    /// Creates an (empty) instance; existing values are kept.
    pub fn create_instance(&mut self, object: u16, instance: u16) {
        self.values.entry((object, instance)).or_default();
    }
    pub fn delete_instance(&mut self, object: u16, instance: u16) -> bool {
        self.values.remove(&(object, instance)).is_some()
    }
    pub fn instances(&self) -> impl Iterator<Item = Path> + '_ {
        self.values.keys().map(|(o, i)| Path::instance(*o, *i))
    }
    /// Sets a value at a resource or resource-instance path, creating the instance if needed.
    pub fn set(&mut self, path: Path, value: Value) {
        if let (Some(o), Some(i)) = (path.object_id(), path.instance_id()) {
            self.values.entry((o, i)).or_default().insert(path, value);
        }
    }
    pub fn get(&self, path: &Path) -> Option<&Value> {
        let key = (path.object_id()?, path.instance_id()?);
        self.values.get(&key)?.get(path)
    }
    /// Every value at or below `path`, in path order.
    pub fn read(&self, path: &Path) -> Vec<Record> {
        self.values
            .iter()
            .filter(|((o, i), _)| {
                let inst = Path::instance(*o, *i);
                path.contains(&inst) || inst.contains(path)
            })
            .flat_map(|(_, vals)| vals.iter())
            .filter(|(p, _)| path.contains(p))
            .map(|(p, v)| Record::new(*p, v.clone()))
            .collect()
    }
    /// Removes every value at or below `path` (used by replacing writes).
    pub fn clear(&mut self, path: &Path) {
        for vals in self.values.values_mut() {
            vals.retain(|p, _| !path.contains(p));
        }
    }
}
