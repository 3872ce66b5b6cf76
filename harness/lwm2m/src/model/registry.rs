//! The set of object definitions a run knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{ObjectDef, ResourceDef};
use crate::path::Path;

/// Object definitions by id. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    objects: Arc<BTreeMap<u16, ObjectDef>>,
}

impl Registry {
    pub fn from_objects(objects: impl IntoIterator<Item = ObjectDef>) -> Self {
        Registry { objects: Arc::new(objects.into_iter().map(|o| (o.id, o)).collect()) }
    }
    pub fn object(&self, id: u16) -> Option<&ObjectDef> {
        self.objects.get(&id)
    }
    pub fn objects(&self) -> impl Iterator<Item = &ObjectDef> {
        self.objects.values()
    }
    /// The resource definition a path of depth 3 or 4 points at.
    pub fn resource(&self, path: &Path) -> Option<&ResourceDef> {
        self.object(path.object_id()?)?.resource(path.resource_id()?)
    }
}

impl Registry {
    /// Loads every `*.xml` DDF file in `dir` (sorted by name; a later file's
    /// object with the same id replaces an earlier one, so a vendor's file can
    /// override ours).
    pub fn load_dir(_dir: &std::path::Path) -> Result<Self, crate::model::DdfError> {
        todo!()
    }
}
