//! The firmware store: the images of one folder, as its manifest lists them,
//! read into memory and checked once when the store loads.
//!
//! Only names the manifest lists can be served, and an image's bytes are
//! those read and verified at load time: the file servers never build a
//! file-system path from what a client sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestEntry, MANIFEST_FILE};
use super::FirmwareError;

/// Whether an image is what its manifest entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// Size and SHA-256 match the manifest.
    Verified,
    /// The entry is marked `corrupt: true` and the file indeed differs;
    /// `actual` is its real SHA-256 (hex).
    CorruptAsDeclared { actual: String },
}

/// One image of the store.
#[derive(Debug, Clone)]
pub struct Image {
    pub entry: ManifestEntry,
    /// The file it was read from (what the HTTP server serves).
    pub path: PathBuf,
    /// Its bytes as read at load time (what the CoAP server serves).
    pub bytes: Arc<[u8]>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    pub integrity: Integrity,
}

impl Image {
    /// The CoAP ETag (RFC 7252 §5.10.6) of the image: the first 8 bytes of
    /// its SHA-256, so it changes exactly when the content does (RFC 7959
    /// §2.4 lets a client detect a changed resource mid-transfer).
    pub fn etag(&self) -> [u8; 8] {
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&self.sha256[..8]);
        tag
    }

    pub fn name(&self) -> &str {
        &self.entry.name
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The images of one folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    manifest: PathBuf,
    images: BTreeMap<String, Image>,
}

impl Store {
    /// Loads `dir/manifest.yaml` and every image it lists from `dir`.
    pub fn load(dir: &Path) -> Result<Store, FirmwareError> {
        Store::load_with_manifest(&dir.join(MANIFEST_FILE), dir)
    }

    /// Loads the images `manifest` lists from `dir`, checking each one's
    /// size and SHA-256. A mismatch is an error unless the entry is marked
    /// `corrupt: true`; an entry marked corrupt whose file matches is an
    /// error too (the case relying on it would test nothing).
    pub fn load_with_manifest(manifest: &Path, dir: &Path) -> Result<Store, FirmwareError> {
        let parsed = Manifest::load(manifest)?;
        let mut images = BTreeMap::new();
        for entry in parsed.images {
            let path = dir.join(&entry.name);
            let bytes = std::fs::read(&path).map_err(|source| FirmwareError::ImageMissing {
                name: entry.name.clone(),
                manifest: manifest.to_path_buf(),
                path: path.clone(),
                source,
            })?;
            let sha256: [u8; 32] = Sha256::digest(&bytes).into();
            let actual = hex::encode(sha256);
            let integrity = if entry.corrupt {
                if actual == entry.sha256 {
                    return Err(FirmwareError::Entry {
                        file: manifest.to_path_buf(),
                        line: entry.line,
                        column: entry.column,
                        name: entry.name.clone(),
                        message: format!(
                            "marked corrupt, but {} matches its sha256",
                            path.display()
                        ),
                    });
                }
                tracing::info!(image = %entry.name, %actual, "image is corrupt on purpose");
                Integrity::CorruptAsDeclared { actual }
            } else {
                if bytes.len() as u64 != entry.size {
                    return Err(FirmwareError::SizeMismatch {
                        name: entry.name.clone(),
                        path,
                        expected: entry.size,
                        actual: bytes.len() as u64,
                    });
                }
                if actual != entry.sha256 {
                    return Err(FirmwareError::ShaMismatch {
                        name: entry.name.clone(),
                        path,
                        expected: entry.sha256.clone(),
                        actual,
                    });
                }
                Integrity::Verified
            };
            images.insert(
                entry.name.clone(),
                Image {
                    entry,
                    path,
                    bytes: bytes.into(),
                    sha256,
                    integrity,
                },
            );
        }
        tracing::debug!(dir = %dir.display(), images = images.len(), "firmware store loaded");
        Ok(Store {
            dir: dir.to_path_buf(),
            manifest: manifest.to_path_buf(),
            images,
        })
    }

    /// Adds the images of `other` (a second folder, such as the images
    /// [`super::derive`] made for this run), refusing a name both list: a
    /// Package URI must name one image.
    pub fn merge(&mut self, other: Store) -> Result<(), FirmwareError> {
        if let Some(image) = other.images().find(|i| self.images.contains_key(i.name())) {
            return Err(FirmwareError::Entry {
                file: other.manifest.clone(),
                line: image.entry.line,
                column: image.entry.column,
                name: image.name().to_string(),
                message: format!("{} lists it too", self.manifest.display()),
            });
        }
        self.images.extend(other.images);
        Ok(())
    }

    /// The image called `name`, if the manifest lists it.
    pub fn get(&self, name: &str) -> Option<&Image> {
        self.images.get(name)
    }

    /// Every image, by name.
    pub fn images(&self) -> impl Iterator<Item = &Image> {
        self.images.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.images.keys().map(String::as_str)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest_path(&self) -> &Path {
        &self.manifest
    }
}
