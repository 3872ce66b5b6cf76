//! Images derived from a device's own upgrade image, for the cases that
//! need an image the device must refuse: a lab supplies the one real image
//! it has, and the harness makes the bad ones from it, the same way for
//! every device.
//!
//! - [`corrupted`]: same length, one byte in the middle inverted. The
//!   middle because the ends are where formats keep what is *not* covered
//!   by an integrity check or what decides the package type: a header with
//!   magic and version at the start (altering it would make a device report
//!   Update Result 6 "unsupported package type" instead of 5 "integrity
//!   check failure", OMA-TS-LightweightM2M-1.1 Core §E.6), signatures,
//!   unprotected TLVs and erased-flash padding at the end (MCUboot puts its
//!   signature TLVs there). The middle of an image is its code, which every
//!   check covers — a SHA-256 or a signature over it changes, and a CRC
//!   detects any error confined to 8 bits. Inverting all 8 bits (XOR 0xFF)
//!   makes the change certain whatever the byte held.
//! - [`oversized`]: the upgrade image followed by erased-flash bytes (0xFF)
//!   up to [`OVERSIZE_EXCESS`] past the device's slot, so that the device
//!   runs out of room (Update Result 2) — by the announced size (Block2
//!   Size2, HTTP Content-Length) or by writing — whatever else it checks.
//!
//! Derived images go into a folder of their own with their own
//! `manifest.yaml` ([`write_store`]), loaded as a [`Store`] and served by
//! the same file servers as the rig's store, which is never written to.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{is_valid_name, MANIFEST_FILE};
use super::store::{Image, Store};
use super::FirmwareError;

/// How far past the slot an oversized image goes: one 4 KiB flash erase
/// sector, so that a device that rounds its slot up to whole sectors, or
/// accepts a write up to the end of the sector it is in, still runs out.
pub const OVERSIZE_EXCESS: u64 = 4096;

/// What a derived image is made to provoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    /// Fails the device's integrity check.
    Corrupted,
    /// Does not fit the device's firmware slot of this many bytes.
    Oversized { slot_size: u64 },
}

/// One image derived from an upgrade image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedImage {
    /// Its name in the derived store (and in Package URIs).
    pub name: String,
    pub bytes: Vec<u8>,
    /// Offsets whose byte differs from the upgrade image (corrupted only).
    pub flipped: Vec<usize>,
    pub derivation: Derivation,
    /// The upgrade image's name, version and SHA-256 (hex).
    pub from_name: String,
    pub from_version: String,
    pub from_sha256: String,
}

/// The upgrade image with the byte at its middle inverted, and that offset.
/// `None` for an empty image, which has nothing to corrupt.
pub fn corrupted(image: &[u8]) -> Option<(Vec<u8>, Vec<usize>)> {
    if image.is_empty() {
        return None;
    }
    let at = image.len() / 2;
    let mut bytes = image.to_vec();
    bytes[at] ^= 0xFF;
    Some((bytes, vec![at]))
}

/// The upgrade image padded with 0xFF to `slot_size + OVERSIZE_EXCESS`
/// bytes; an error when the image alone is already larger than that, which
/// means the rig's `slot_size` is wrong (the device could never take the
/// upgrade).
pub fn oversized(image: &[u8], slot_size: u64) -> Result<Vec<u8>, String> {
    if image.len() as u64 > slot_size {
        return Err(format!(
            "the upgrade image is {} bytes, more than the firmware slot's {slot_size} bytes the rig states: the slot_size is wrong (the device could not take its own upgrade)",
            image.len()
        ));
    }
    let total = usize::try_from(slot_size + OVERSIZE_EXCESS)
        .map_err(|_| format!("a slot of {slot_size} bytes does not fit in memory"))?;
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(image);
    bytes.resize(total, 0xFF);
    Ok(bytes)
}

/// Derives `derivation` from `upgrade` (an image of the rig's store); the
/// name is `<kind>-<upgrade name>`, shortened to stay a valid image name.
pub fn derive(upgrade: &Image, derivation: Derivation) -> Result<DerivedImage, String> {
    let (kind, bytes, flipped) = match derivation {
        Derivation::Corrupted => {
            let (bytes, flipped) = corrupted(&upgrade.bytes).ok_or_else(|| {
                format!(
                    "the upgrade image {} is empty: nothing to corrupt",
                    upgrade.name()
                )
            })?;
            ("corrupted", bytes, flipped)
        }
        Derivation::Oversized { slot_size } => (
            "oversized",
            oversized(&upgrade.bytes, slot_size)?,
            Vec::new(),
        ),
    };
    let mut name = format!("{kind}-{}", upgrade.name());
    name.truncate(128);
    debug_assert!(is_valid_name(&name), "{name}");
    Ok(DerivedImage {
        name,
        bytes,
        flipped,
        derivation,
        from_name: upgrade.name().to_string(),
        from_version: upgrade.entry.version.clone(),
        from_sha256: hex::encode(upgrade.sha256),
    })
}

/// Writes `images` and their `manifest.yaml` into `dir` (created if
/// needed), each file atomically (written aside, then renamed), and loads
/// them as a store. A corrupted image's entry is marked `corrupt: true`
/// with the upgrade's SHA-256 — the image as it was meant to be — so the
/// store itself checks that it differs; every entry records the version
/// the device must not end up reporting.
pub fn write_store(dir: &Path, images: &[DerivedImage]) -> Result<Store, FirmwareError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FirmwareError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut manifest = String::from(
        "# Images meterbench derived for this run from the rig's upgrade image\n\
         # (harness/server/src/firmware/derive.rs). Each `version` is the one the\n\
         # device must NOT end up reporting: it must refuse the image.\n\
         images:\n",
    );
    for image in images {
        let path = dir.join(&image.name);
        write_atomically(&path, &image.bytes).map_err(io(&path))?;
        let sha = hex::encode(Sha256::digest(&image.bytes));
        let from = format!(
            "from {} (version {}, sha256 {})",
            image.from_name, image.from_version, image.from_sha256
        );
        match image.derivation {
            Derivation::Corrupted => manifest.push_str(&format!(
                "  # {from}: bytes at {:?} inverted; its own sha256 is {sha}\n",
                image.flipped
            )),
            Derivation::Oversized { slot_size } => manifest.push_str(&format!(
                "  # {from}: padded with 0xFF past a {slot_size}-byte slot\n"
            )),
        }
        manifest.push_str(&format!("  - name: {}\n", image.name));
        manifest.push_str(&format!("    version: \"{}\"\n", image.from_version));
        manifest.push_str(&format!("    size: {}\n", image.bytes.len()));
        match image.derivation {
            Derivation::Corrupted => manifest.push_str(&format!(
                "    sha256: {}\n    corrupt: true\n",
                image.from_sha256
            )),
            Derivation::Oversized { .. } => manifest.push_str(&format!("    sha256: {sha}\n")),
        }
    }
    let path = dir.join(MANIFEST_FILE);
    write_atomically(&path, manifest.as_bytes()).map_err(io(&path))?;
    Store::load(dir)
}

/// Writes `bytes` next to `path` and renames it into place, so a reader
/// (a file server, a second run looking at the folder) never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut aside: PathBuf = path.to_path_buf();
    aside.as_mut_os_string().push(".part");
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&aside, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::image::{build, check, SELF_TEST_PASS};
    use crate::firmware::store::Integrity;

    fn upgrade(dir: &Path, bytes: &[u8]) -> Image {
        let name = "acme-3.2.bin";
        std::fs::write(dir.join(name), bytes).unwrap();
        let sha = hex::encode(Sha256::digest(bytes));
        std::fs::write(
            dir.join(MANIFEST_FILE),
            format!(
                "images:\n  - name: {name}\n    version: \"3.2\"\n    size: {}\n    sha256: {sha}\n",
                bytes.len()
            ),
        )
        .unwrap();
        Store::load(dir).unwrap().get(name).unwrap().clone()
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn corrupted_differs_only_at_the_stated_byte() {
        let original = body(10_001);
        let (bytes, flipped) = corrupted(&original).unwrap();
        assert_eq!(bytes.len(), original.len());
        assert_eq!(flipped, vec![5000]);
        let differing: Vec<usize> = (0..original.len())
            .filter(|&i| bytes[i] != original[i])
            .collect();
        assert_eq!(differing, flipped);
        assert_eq!(bytes[5000], !original[5000]);
        assert_ne!(Sha256::digest(&bytes), Sha256::digest(&original));
        assert_eq!(
            corrupted(&original),
            Some((bytes, flipped)),
            "deterministic"
        );
        assert_eq!(corrupted(&[]), None);
    }

    #[test]
    fn a_corrupted_image_fails_the_integrity_check_not_the_format_check() {
        let image = build("3.2", SELF_TEST_PASS, &body(4000));
        check(&image).unwrap();
        let (bytes, _) = corrupted(&image).unwrap();
        let e = check(&bytes).unwrap_err();
        assert_eq!(
            e.update_result(),
            lwm2m::firmware::UpdateResult::IntegrityCheckFailure,
            "{e}"
        );
    }

    #[test]
    fn oversized_is_the_upgrade_then_padding_past_the_slot() {
        let original = body(3000);
        let bytes = oversized(&original, 4096).unwrap();
        assert_eq!(bytes.len() as u64, 4096 + OVERSIZE_EXCESS);
        assert_eq!(&bytes[..3000], &original[..]);
        assert!(bytes[3000..].iter().all(|&b| b == 0xFF));
        let e = oversized(&original, 2999).unwrap_err();
        assert!(e.contains("slot_size is wrong"), "{e}");
        assert_eq!(oversized(&original, 3000).unwrap().len(), 3000 + 4096);
    }

    #[test]
    fn derived_images_are_written_with_their_manifest_and_load_as_a_store() {
        let source = tempfile::tempdir().unwrap();
        let up = upgrade(source.path(), &build("3.2", SELF_TEST_PASS, &body(6000)));
        let before = std::fs::read(source.path().join(MANIFEST_FILE)).unwrap();
        let images = [
            derive(&up, Derivation::Corrupted).unwrap(),
            derive(&up, Derivation::Oversized { slot_size: 8192 }).unwrap(),
        ];
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("derived");
        let store = write_store(&dir, &images).unwrap();

        let bad = store.get("corrupted-acme-3.2.bin").unwrap();
        assert_eq!(bad.entry.version, "3.2", "the version it must not reach");
        assert_eq!(bad.len(), up.len());
        assert!(matches!(bad.integrity, Integrity::CorruptAsDeclared { .. }));
        assert_ne!(bad.sha256, up.sha256);
        let big = store.get("oversized-acme-3.2.bin").unwrap();
        assert_eq!(big.entry.size, 8192 + OVERSIZE_EXCESS);
        assert_eq!(big.integrity, Integrity::Verified);
        assert_eq!(big.entry.version, "3.2");
        let manifest = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        assert!(manifest.contains("bytes at [3032] inverted"), "{manifest}");
        // Nothing left aside, and the rig's store is untouched.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
        assert_eq!(names.len(), 3);
        assert_eq!(
            std::fs::read(source.path().join(MANIFEST_FILE)).unwrap(),
            before
        );
        assert_eq!(std::fs::read_dir(source.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_long_upgrade_name_still_gives_a_valid_derived_name() {
        let dir = tempfile::tempdir().unwrap();
        let long = "a".repeat(120) + ".bin";
        std::fs::write(dir.path().join(&long), b"xyz").unwrap();
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            format!(
                "images:\n  - name: {long}\n    version: \"1\"\n    size: 3\n    sha256: {}\n",
                hex::encode(Sha256::digest(b"xyz"))
            ),
        )
        .unwrap();
        let up = Store::load(dir.path()).unwrap().get(&long).unwrap().clone();
        let d = derive(&up, Derivation::Corrupted).unwrap();
        assert!(is_valid_name(&d.name), "{}", d.name);
        assert_eq!(d.name.len(), 128);
    }
    #[tokio::test]
    async fn derived_images_join_the_delivery_only_before_it_serves() {
        let source = tempfile::tempdir().unwrap();
        let up = upgrade(source.path(), &body(500));
        let out = tempfile::tempdir().unwrap();
        let derived = || {
            write_store(
                &out.path().join("d"),
                &[derive(&up, Derivation::Corrupted).unwrap()],
            )
            .unwrap()
        };
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let mut delivery = crate::firmware::FirmwareDelivery::start(source.path(), ip, None)
            .await
            .unwrap();
        delivery.add_images(derived()).unwrap();
        assert_eq!(delivery.image("corrupted-acme-3.2.bin").unwrap().len(), 500);
        assert!(
            delivery.image("acme-3.2.bin").is_ok(),
            "the store's own stay"
        );
        // The same names again: refused, naming the derived manifest.
        let mut again = crate::firmware::FirmwareDelivery::start(source.path(), ip, None)
            .await
            .unwrap();
        again.add_images(derived()).unwrap();
        let e = again.add_images(derived()).unwrap_err().to_string();
        assert!(e.contains("lists it too"), "{e}");
        // Once a file server holds the store, nothing joins it.
        let uri = delivery
            .package_uri(
                "corrupted-acme-3.2.bin",
                crate::firmware::DeliveryMethodKind::PullCoap,
            )
            .await
            .unwrap();
        assert!(uri.ends_with("/corrupted-acme-3.2.bin"), "{uri}");
        let e = delivery.add_images(derived()).unwrap_err();
        assert!(
            matches!(e, crate::firmware::DeliveryError::AlreadyServing { .. }),
            "{e}"
        );
        delivery.shutdown().await;
        again.shutdown().await;
    }
}
