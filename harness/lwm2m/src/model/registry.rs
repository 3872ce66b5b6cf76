//! The set of object definitions a run knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{parse_ddf, DdfError, ObjectDef, ResourceDef};
use crate::path::Path;

/// Object definitions by id. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    objects: Arc<BTreeMap<u16, ObjectDef>>,
}

/// The DDF files of `fixtures/objects`, compiled in so that a registry of the
/// core objects exists without touching the file system (tests, the virtual meter).
const CORE_DDF: &[(&str, &str)] = &[
    (
        "0-security.xml",
        include_str!("../../../../fixtures/objects/0-security.xml"),
    ),
    (
        "1-server.xml",
        include_str!("../../../../fixtures/objects/1-server.xml"),
    ),
    (
        "2-access-control.xml",
        include_str!("../../../../fixtures/objects/2-access-control.xml"),
    ),
    (
        "3-device.xml",
        include_str!("../../../../fixtures/objects/3-device.xml"),
    ),
    (
        "4-connectivity-monitoring.xml",
        include_str!("../../../../fixtures/objects/4-connectivity-monitoring.xml"),
    ),
    (
        "5-firmware-update.xml",
        include_str!("../../../../fixtures/objects/5-firmware-update.xml"),
    ),
    (
        "9-software-management.xml",
        include_str!("../../../../fixtures/objects/9-software-management.xml"),
    ),
    (
        "16-portfolio.xml",
        include_str!("../../../../fixtures/objects/16-portfolio.xml"),
    ),
    (
        "19-binary-app-data-container.xml",
        include_str!("../../../../fixtures/objects/19-binary-app-data-container.xml"),
    ),
    (
        "501-lte-mtc-band-config.xml",
        include_str!("../../../../fixtures/objects/501-lte-mtc-band-config.xml"),
    ),
    (
        "504-remote-sim-provisioning.xml",
        include_str!("../../../../fixtures/objects/504-remote-sim-provisioning.xml"),
    ),
];

impl Registry {
    pub fn from_objects(objects: impl IntoIterator<Item = ObjectDef>) -> Self {
        Registry {
            objects: Arc::new(objects.into_iter().map(|o| (o.id, o)).collect()),
        }
    }
    pub fn object(&self, id: u16) -> Option<&ObjectDef> {
        self.objects.get(&id)
    }
    pub fn objects(&self) -> impl Iterator<Item = &ObjectDef> {
        self.objects.values()
    }
    /// The resource definition a path of depth 3 or 4 points at.
    pub fn resource(&self, path: &Path) -> Option<&ResourceDef> {
        self.object(path.object_id()?)?
            .resource(path.resource_id()?)
    }
    pub fn len(&self) -> usize {
        self.objects.len()
    }
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
    /// Adds or replaces (same id) one object definition.
    pub fn insert(&mut self, object: ObjectDef) {
        Arc::make_mut(&mut self.objects).insert(object.id, object);
    }
    /// This registry plus `objects`, which replace definitions with the same id.
    pub fn with(mut self, objects: impl IntoIterator<Item = ObjectDef>) -> Self {
        for o in objects {
            self.insert(o);
        }
        self
    }
    /// Adds (or replaces, by id) the objects of one DDF document; `file` names
    /// it in errors. Returns how many objects the document defined.
    pub fn load_str(&mut self, file: &str, xml: &str) -> Result<usize, DdfError> {
        let objects = parse_ddf(file, xml)?;
        let count = objects.len();
        for o in objects {
            self.insert(o);
        }
        Ok(count)
    }
    /// The core objects meterbench ships in `fixtures/objects` (0, 1, 2, 3, 4, 5,
    /// 9, 16, 19, 501, 504), compiled into the library.
    pub fn core() -> Self {
        let mut r = Registry::default();
        for (file, xml) in CORE_DDF {
            // The fixtures are parsed by this crate's tests; a failure here is a build defect.
            r.load_str(file, xml)
                .unwrap_or_else(|e| panic!("built-in object definition is invalid: {e}"));
        }
        r
    }
}

impl Registry {
    /// Loads every `*.xml` DDF file in `dir` (sorted by name; a later file's
    /// object with the same id replaces an earlier one, so a vendor's file can
    /// override ours).
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, DdfError> {
        let io_error = |file: &std::path::Path, e: std::io::Error| DdfError {
            file: file.display().to_string(),
            line: 0,
            column: 0,
            reason: format!("cannot read: {e}"),
        };
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io_error(dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
            .collect();
        files.sort();
        let mut registry = Registry::default();
        for file in files {
            let xml = std::fs::read_to_string(&file).map_err(|e| io_error(&file, e))?;
            let name = file.display().to_string();
            let count = registry.load_str(&name, &xml)?;
            tracing::debug!(file = %name, objects = count, "loaded object definitions");
        }
        Ok(registry)
    }
}
