//! Firmware roles: how a case's `image: upgrade` becomes an image of the
//! rig's store and the version the device reports once it runs it, and how
//! the images a device must refuse (`corrupted`, `oversized`) are derived
//! from its own upgrade image when the rig does not map them. Kept apart
//! from [`Session`] because resolving a role is about the rig's firmware,
//! not about the bench's drivers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rig::model::{
    canonical_role, DeriveKind, FirmwareSpec, RigFile, SAME_VERSION_ROLE, UPGRADE_ROLE,
};
use server::firmware::derive::{self, Derivation};
use server::firmware::{DeliveryError, FirmwareDelivery, FirmwareError};

use crate::session::{BenchError, Session};

/// One firmware role as this rig maps it: the image of its store, and the
/// version the device reports once it runs it — for a derived image, the
/// upgrade's: the version the device must not end up reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleImage {
    pub image: String,
    pub version: String,
    /// The file the image was read from (the rig's store, or this run's
    /// folder of derived images).
    pub path: PathBuf,
}

/// Why a firmware role cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleError {
    /// The rig maps no image to the role: the case does not apply.
    NotMapped(String),
    /// The store or the mapped image is unusable: the bench's fault.
    Store(String),
}

/// Where a session's firmware images come from: the rig's store, which is
/// only read, and a folder of this run's state for derived images.
#[derive(Debug, Clone)]
pub struct FirmwareStores {
    pub store: PathBuf,
    pub derived_dir: PathBuf,
    /// Per derivation, once the delivery started: the derived image's name,
    /// or why there is none.
    derived: BTreeMap<DeriveKind, Derived>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Derived {
    Image(String),
    /// The derivation failed: the bench's fault.
    Broken(String),
}

impl FirmwareStores {
    /// The rig's store (`firmware.store`, else the generated fixtures), and
    /// `state_dir/derived-firmware` for what is derived from it.
    pub fn for_rig(rig: &RigFile, fixtures: &Path, state_dir: &Path) -> FirmwareStores {
        let default = fixtures.join("firmware");
        FirmwareStores {
            store: match &rig.firmware {
                Some(f) => f.store_dir(rig.dir(), &default),
                None => default,
            },
            derived_dir: state_dir.join("derived-firmware"),
            derived: BTreeMap::new(),
        }
    }
}

/// The derivations a rig's roles call for and it gives what they need:
/// the ones it names (`{ derive: ... }`) and the ones it leaves to the
/// harness (it maps `upgrade` but not `corrupted` or `oversized`);
/// `oversized` only with the slot size it is derived past.
fn wanted(spec: &FirmwareSpec) -> Vec<DeriveKind> {
    DeriveKind::ALL
        .into_iter()
        .filter(|k| spec.derived.values().any(|d| d == k) || spec.derivation(k.as_str()).is_some())
        .filter(|k| *k != DeriveKind::Oversized || spec.slot_size.is_some())
        .collect()
}

/// Derives the images `spec` calls for from its upgrade image, writes them
/// to `dir` and adds them to `delivery`; each derivation's outcome.
async fn derive_images(
    rig: &str,
    spec: &FirmwareSpec,
    delivery: &mut FirmwareDelivery,
    dir: &Path,
) -> BTreeMap<DeriveKind, Derived> {
    let kinds = wanted(spec);
    let mut outcome = BTreeMap::new();
    let Some(upgrade) = spec.roles.get(UPGRADE_ROLE) else {
        return outcome;
    };
    let upgrade = match delivery.image(&upgrade.image) {
        Ok(image) => image.clone(),
        Err(e) => {
            for kind in kinds {
                outcome.insert(
                    kind,
                    Derived::Broken(format!(
                        "rig {rig}: cannot derive `{kind}` from the `upgrade` role: {e}"
                    )),
                );
            }
            return outcome;
        }
    };
    let mut images = Vec::new();
    for kind in kinds {
        let derivation = match kind {
            DeriveKind::Corrupted => Derivation::Corrupted,
            DeriveKind::Oversized => Derivation::Oversized {
                slot_size: spec.slot_size.expect("wanted() requires it"),
            },
        };
        match derive::derive(&upgrade, derivation) {
            Ok(image) => {
                outcome.insert(kind, Derived::Image(image.name.clone()));
                images.push(image);
            }
            Err(e) => {
                outcome.insert(
                    kind,
                    Derived::Broken(format!("rig {rig}: cannot derive `{kind}`: {e}")),
                );
            }
        }
    }
    if images.is_empty() {
        return outcome;
    }
    let target = dir.to_path_buf();
    let written = tokio::task::spawn_blocking(move || derive::write_store(&target, &images))
        .await
        .unwrap_or_else(|e| {
            Err(FirmwareError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })
        })
        .map_err(DeliveryError::from)
        .and_then(|store| delivery.add_images(store));
    if let Err(e) = written {
        for derived in outcome.values_mut() {
            if matches!(derived, Derived::Image(_)) {
                *derived = Derived::Broken(format!("rig {rig}: derived firmware images: {e}"));
            }
        }
    } else {
        tracing::info!(dir = %dir.display(), derived = ?outcome, "firmware images derived from the upgrade image");
    }
    outcome
}

impl Session {
    /// The firmware delivery, started on first use (a fresh clone generates
    /// the fixture images from the committed manifest), with the images
    /// derived from the rig's upgrade image added before any file server
    /// serves the store.
    pub async fn firmware_delivery(&mut self) -> Result<&FirmwareDelivery, BenchError> {
        if self.firmware.is_none() {
            let bind = self.server.local_addr().ip();
            // The CoAPS file server accepts the PSKs the LwM2M server does:
            // a device pulls `coaps://` with its server account.
            let mut delivery = FirmwareDelivery::start_with_credentials(
                &self.firmware_store.store,
                bind,
                self.rig.server.advertise.clone(),
                self.server.credentials().clone(),
            )
            .await
            .map_err(|source| BenchError::FirmwareStore {
                path: self.firmware_store.store.clone(),
                source,
            })?;
            // Its datagrams go into the case captures beside the server's.
            delivery.record_into(self.server.capture());
            if let Some(spec) = &self.rig.firmware {
                self.firmware_store.derived = derive_images(
                    &self.rig.name,
                    spec,
                    &mut delivery,
                    &self.firmware_store.derived_dir,
                )
                .await;
            }
            self.firmware = Some(delivery);
        }
        Ok(self.firmware.as_ref().expect("started above"))
    }

    /// The image and version the rig maps firmware role `role` to, or
    /// derives for it from the upgrade image; the error says why the case
    /// does not apply (the rig maps no such role and none can be derived)
    /// or what is wrong with the rig's store.
    pub async fn firmware_role(&mut self, role: &str) -> Result<RoleImage, RoleError> {
        let rig = self.rig.name.clone();
        let Some(spec) = self.rig.firmware.clone() else {
            return Err(RoleError::NotMapped(format!(
                "rig {rig} maps no firmware image to any role (no `firmware.roles`), so none to `{role}`"
            )));
        };
        if let Some(mapped) = spec.mapped(role) {
            let delivery = self
                .firmware_delivery()
                .await
                .map_err(|e| RoleError::Store(e.to_string()))?;
            let image = delivery.image(&mapped.image).map_err(|e| {
                RoleError::Store(format!("firmware role `{role}` of rig {rig}: {e}"))
            })?;
            return Ok(RoleImage {
                image: mapped.image.clone(),
                version: mapped
                    .version
                    .clone()
                    .unwrap_or_else(|| image.entry.version.clone()),
                path: image.path.clone(),
            });
        }
        let Some(kind) = spec.derivation(role) else {
            return Err(RoleError::NotMapped(not_mapped(&rig, &spec, role)));
        };
        if kind == DeriveKind::Oversized && spec.slot_size.is_none() {
            return Err(RoleError::NotMapped(format!(
                "rig {rig} maps no firmware image to `{role}` and cannot derive one from `upgrade`: it does not state the device's firmware slot (`firmware.slot_size`, e.g. 512KiB)"
            )));
        }
        self.firmware_delivery()
            .await
            .map_err(|e| RoleError::Store(e.to_string()))?;
        let name = match self.firmware_store.derived.get(&kind) {
            Some(Derived::Image(name)) => name.clone(),
            Some(Derived::Broken(why)) => return Err(RoleError::Store(why.clone())),
            None => {
                return Err(RoleError::Store(format!(
                    "rig {rig}: `{role}` was to be derived as `{kind}`, but was not"
                )))
            }
        };
        // The version the device must not end up reporting: the upgrade's.
        let version = Box::pin(self.firmware_role(UPGRADE_ROLE)).await?.version;
        let delivery = self.firmware.as_ref().expect("started above");
        let image = delivery
            .image(&name)
            .map_err(|e| RoleError::Store(format!("derived firmware role `{role}`: {e}")))?;
        Ok(RoleImage {
            image: name,
            version,
            path: image.path.clone(),
        })
    }
}

/// Why `role` has no image with this rig, for the skip reason.
fn not_mapped(rig: &str, spec: &FirmwareSpec, role: &str) -> String {
    let known = spec.role_names();
    let roles = if known.is_empty() {
        "it maps none".to_string()
    } else {
        format!("its roles: {}", known.join(", "))
    };
    if role == SAME_VERSION_ROLE {
        return format!(
            "rig {rig} maps no firmware image to `{SAME_VERSION_ROLE}`: it is the image the device already runs, which only the rig can name and meterbench never derives ({roles})"
        );
    }
    if DeriveKind::for_role(role).is_some() && !spec.roles.contains_key(UPGRADE_ROLE) {
        return format!(
            "rig {rig} maps no firmware image to `{role}` and no `upgrade` image to derive one from ({roles})"
        );
    }
    let alias = if canonical_role(role) != role {
        format!(" (or `{}`)", canonical_role(role))
    } else {
        String::new()
    };
    format!("rig {rig} maps no firmware image to the role `{role}`{alias} ({roles})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(firmware: &str) -> FirmwareSpec {
        let text = format!("name: m\ndevice: {{ endpoint: ep, lifetime: 1m }}\n{firmware}");
        RigFile::parse(&text, Path::new("m.yaml"))
            .unwrap()
            .firmware
            .unwrap()
    }

    #[test]
    fn only_upgrade_mapped_derives_both_kinds_when_the_slot_is_known() {
        let s = spec("firmware:\n  slot_size: 256KiB\n  roles: { upgrade: a.bin }\n");
        assert_eq!(wanted(&s), [DeriveKind::Corrupted, DeriveKind::Oversized]);
        let s = spec("firmware:\n  roles: { upgrade: a.bin, too-large: big.bin }\n");
        assert_eq!(wanted(&s), [DeriveKind::Corrupted], "too-large is mapped");
        let s = spec("firmware:\n  roles: { upgrade: a.bin, corrupted: c.bin, bad: { derive: corrupted } }\n");
        assert_eq!(wanted(&s), [DeriveKind::Corrupted], "no slot_size");
        let s = spec("firmware:\n  roles: { software: s.bin }\n");
        assert!(wanted(&s).is_empty(), "nothing to derive from");
    }

    #[test]
    fn skip_reasons_say_what_the_rig_lacks() {
        let s = spec("firmware:\n  roles: { upgrade: a.bin }\n");
        let why = not_mapped("m", &s, "same-version");
        assert!(
            why.contains("already runs") && why.contains("never derives"),
            "{why}"
        );
        let s = spec("firmware:\n  roles: { software: s.bin }\n");
        let why = not_mapped("m", &s, "corrupted");
        assert!(why.contains("no `upgrade` image to derive"), "{why}");
        let why = not_mapped("m", &s, "too-large");
        assert!(why.contains("no `upgrade`"), "{why}");
        let why = not_mapped("m", &s, "unbootable");
        assert!(why.contains("its roles: software"), "{why}");
    }
}
