//! The test images, generated rather than committed: the content is a pure
//! function of each image's name, so the SHA-256 values in the committed
//! `fixtures/firmware/manifest.yaml` stay valid on every machine.
//!
//! The body is a xorshift64* stream seeded with the FNV-1a hash of the image
//! name. This generator is defined here, not borrowed, so that no change
//! elsewhere can silently change the committed hashes.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::image::{self, HEADER_LEN, SELF_TEST_FAIL, SELF_TEST_PASS};
use super::manifest::{Manifest, ManifestEntry, MANIFEST_FILE};
use super::FirmwareError;

/// What a fixture is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureKind {
    /// A good image.
    Good,
    /// Valid and intact, but its self-test byte makes the bootloader reject it.
    Broken,
    /// One body byte flipped after the header was written: the device's
    /// integrity check fails, and the file does not match its manifest SHA-256.
    Corrupt,
    /// Not an MBFW image: an ELF file's magic (`7f 45 4c 46`, as a firmware
    /// of another format might start) and no MBFW header, intact. A device
    /// must refuse it as a package type it does not support (object 5
    /// Update Result 6, ETS 1.0 int-777), not as a damaged one.
    Foreign,
}

/// One generated image.
#[derive(Debug, Clone, Copy)]
pub struct FixtureSpec {
    pub name: &'static str,
    pub version: &'static str,
    /// Total file size in bytes, header included.
    pub size: usize,
    pub kind: FixtureKind,
}

/// Name of the image the benchmark serves.
pub const BENCH_IMAGE: &str = "meter-bench-1m.bin";

/// The images `generate_fixtures` writes. meter-1.0.bin's size is not a
/// multiple of any block size, so the last Block2 block is a short one.
pub const FIXTURES: &[FixtureSpec] = &[
    FixtureSpec {
        name: "meter-1.0.bin",
        version: "1.0",
        size: 61_234,
        kind: FixtureKind::Good,
    },
    FixtureSpec {
        name: "meter-2.0.bin",
        version: "2.0",
        size: 65_536,
        kind: FixtureKind::Good,
    },
    FixtureSpec {
        name: "meter-2.0-broken.bin",
        version: "2.0",
        size: 65_536,
        kind: FixtureKind::Broken,
    },
    FixtureSpec {
        name: "meter-2.0-corrupt.bin",
        version: "2.0",
        size: 65_536,
        kind: FixtureKind::Corrupt,
    },
    FixtureSpec {
        name: "meter-2.0-foreign.bin",
        version: "2.0",
        size: 65_536,
        kind: FixtureKind::Foreign,
    },
    FixtureSpec {
        name: BENCH_IMAGE,
        version: "9.9-bench",
        size: 1_048_576,
        kind: FixtureKind::Good,
    },
];

/// The bytes of a fixture, and the SHA-256 its manifest entry records (for a
/// corrupt one: the image as it was before the byte was flipped).
pub fn fixture_bytes(spec: &FixtureSpec) -> (Vec<u8>, [u8; 32]) {
    if spec.kind == FixtureKind::Foreign {
        let mut bytes = pseudo_random(fnv1a(spec.name.as_bytes()), spec.size);
        bytes[..4].copy_from_slice(b"\x7fELF");
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        return (bytes, sha);
    }
    let body = pseudo_random(fnv1a(spec.name.as_bytes()), spec.size - HEADER_LEN);
    let self_test = match spec.kind {
        FixtureKind::Broken => SELF_TEST_FAIL,
        _ => SELF_TEST_PASS,
    };
    let mut bytes = image::build(spec.version, self_test, &body);
    let intended: [u8; 32] = Sha256::digest(&bytes).into();
    if spec.kind == FixtureKind::Corrupt {
        let middle = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
        bytes[middle] ^= 0x01;
    }
    (bytes, intended)
}

/// The manifest describing [`FIXTURES`], with `file` as its origin.
pub fn fixtures_manifest(file: &Path) -> Manifest {
    Manifest {
        file: file.to_path_buf(),
        images: FIXTURES
            .iter()
            .map(|spec| {
                let (_, sha) = fixture_bytes(spec);
                ManifestEntry {
                    name: spec.name.to_owned(),
                    version: spec.version.to_owned(),
                    size: spec.size as u64,
                    sha256: hex::encode(sha),
                    broken: spec.kind == FixtureKind::Broken,
                    corrupt: spec.kind == FixtureKind::Corrupt,
                    foreign: spec.kind == FixtureKind::Foreign,
                    line: 0,
                    column: 0,
                }
            })
            .collect(),
    }
}

/// Writes every image of [`FIXTURES`] and `manifest.yaml` into `dir`
/// (created if missing). Idempotent: the same bytes every time. Files
/// already holding the right bytes are not rewritten.
pub fn generate_fixtures(dir: &Path) -> Result<Manifest, FirmwareError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FirmwareError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for spec in FIXTURES {
        let (bytes, _) = fixture_bytes(spec);
        let path = dir.join(spec.name);
        write_if_changed(&path, &bytes).map_err(io(&path))?;
    }
    let path = dir.join(MANIFEST_FILE);
    let manifest = fixtures_manifest(&path);
    write_if_changed(&path, manifest.to_yaml().as_bytes()).map_err(io(&path))?;
    tracing::debug!(dir = %dir.display(), "firmware fixtures written");
    Ok(manifest)
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes)
}

/// FNV-1a, 64-bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `len` bytes of xorshift64* output (Vigna 2016), little-endian words.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_pass_or_fail_the_image_check_as_their_kind_says() {
        for spec in FIXTURES {
            let (bytes, _) = fixture_bytes(spec);
            assert_eq!(bytes.len(), spec.size, "{}", spec.name);
            let checked = image::check(&bytes);
            match spec.kind {
                FixtureKind::Good => assert!(checked.unwrap().self_test_passes()),
                FixtureKind::Broken => assert!(!checked.unwrap().self_test_passes()),
                FixtureKind::Corrupt => assert_eq!(
                    checked.unwrap_err().update_result(),
                    lwm2m::firmware::UpdateResult::IntegrityCheckFailure
                ),
                FixtureKind::Foreign => {
                    assert_eq!(&bytes[..4], b"\x7fELF", "{}", spec.name);
                    assert_eq!(
                        checked.unwrap_err().update_result(),
                        lwm2m::firmware::UpdateResult::UnsupportedPackageType
                    )
                }
            }
        }
    }

    #[test]
    fn the_body_stream_is_fixed() {
        // Pinned so a change to the generator (and so to every committed
        // SHA-256) cannot go unnoticed.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let a = pseudo_random(1, 16);
        assert_eq!(a, pseudo_random(1, 16));
        assert_ne!(a, pseudo_random(2, 16));
    }
}
