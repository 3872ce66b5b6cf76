//! The firmware store: manifest checks, generated fixtures, image format.

use std::path::{Path, PathBuf};

use server::firmware::generate::{fixture_bytes, FIXTURES};
use server::firmware::image;
use server::firmware::{generate_fixtures, FirmwareError, Integrity, Store};

fn committed_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/firmware/manifest.yaml")
}

#[test]
fn generated_fixtures_match_the_committed_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = generate_fixtures(dir.path()).unwrap();
    let generated = std::fs::read_to_string(dir.path().join("manifest.yaml")).unwrap();
    let committed = std::fs::read_to_string(committed_manifest()).unwrap();
    assert_eq!(
        generated, committed,
        "the generator changed: the committed manifest's SHA-256 values no longer hold"
    );
    assert_eq!(manifest.images.len(), FIXTURES.len());
    // The committed manifest loads against freshly generated images.
    let store = Store::load_with_manifest(&committed_manifest(), dir.path()).unwrap();
    assert_eq!(store.names().count(), FIXTURES.len());
}

#[test]
fn generation_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    generate_fixtures(a.path()).unwrap();
    generate_fixtures(b.path()).unwrap();
    // Twice into the same folder too (files already right are left alone).
    generate_fixtures(a.path()).unwrap();
    for spec in FIXTURES {
        let x = std::fs::read(a.path().join(spec.name)).unwrap();
        let y = std::fs::read(b.path().join(spec.name)).unwrap();
        assert_eq!(x, y, "{}", spec.name);
        assert_eq!(x, fixture_bytes(spec).0);
    }
    let sa = Store::load(a.path()).unwrap();
    let sb = Store::load(b.path()).unwrap();
    for img in sa.images() {
        assert_eq!(img.sha256, sb.get(img.name()).unwrap().sha256);
        assert_eq!(img.etag(), sb.get(img.name()).unwrap().etag());
    }
}

#[test]
fn the_store_flags_each_image_as_its_manifest_says() {
    let dir = tempfile::tempdir().unwrap();
    generate_fixtures(dir.path()).unwrap();
    let store = Store::load(dir.path()).unwrap();
    let good = store.get("meter-2.0.bin").unwrap();
    assert_eq!(good.integrity, Integrity::Verified);
    assert_eq!(good.len(), 65_536);
    assert_eq!(&good.etag()[..], &good.sha256[..8]);
    assert!(image::check(&good.bytes).unwrap().self_test_passes());
    assert_eq!(image::check(&good.bytes).unwrap().version, "2.0");

    let broken = store.get("meter-2.0-broken.bin").unwrap();
    assert!(broken.entry.broken);
    assert_eq!(broken.integrity, Integrity::Verified);
    assert!(!image::check(&broken.bytes).unwrap().self_test_passes());

    let corrupt = store.get("meter-2.0-corrupt.bin").unwrap();
    assert!(matches!(
        corrupt.integrity,
        Integrity::CorruptAsDeclared { .. }
    ));
    assert_eq!(
        image::check(&corrupt.bytes).unwrap_err().update_result(),
        lwm2m::firmware::UpdateResult::IntegrityCheckFailure
    );

    assert_eq!(store.get("meter-bench-1m.bin").unwrap().len(), 1 << 20);
    assert!(store.get("manifest.yaml").is_none());
}

#[test]
fn a_file_that_differs_from_the_manifest_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    generate_fixtures(dir.path()).unwrap();
    let path = dir.path().join("meter-2.0.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = Store::load(dir.path()).unwrap_err();
    assert!(matches!(e, FirmwareError::ShaMismatch { ref name, .. } if name == "meter-2.0.bin"));
    let text = e.to_string();
    assert!(
        text.contains("meter-2.0.bin") && text.contains("SHA-256"),
        "{text}"
    );

    bytes.truncate(100);
    std::fs::write(&path, &bytes).unwrap();
    let e = Store::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            e,
            FirmwareError::SizeMismatch {
                actual: 100,
                expected: 65_536,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_missing_image_names_the_manifest_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    generate_fixtures(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("meter-1.0.bin")).unwrap();
    let e = Store::load(dir.path()).unwrap_err();
    assert!(matches!(e, FirmwareError::ImageMissing { .. }), "{e}");
    assert!(e.to_string().contains("meter-1.0.bin"), "{e}");
}

#[test]
fn an_entry_marked_corrupt_that_matches_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    generate_fixtures(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("manifest.yaml")).unwrap();
    // Mark the good meter-2.0.bin corrupt: the case relying on it would test nothing.
    let text = text.replacen(
        "  - name: meter-2.0.bin\n",
        "  - name: meter-2.0.bin\n    corrupt: true\n",
        1,
    );
    std::fs::write(dir.path().join("manifest.yaml"), text).unwrap();
    let e = Store::load(dir.path()).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("manifest.yaml:") && s.contains("marked corrupt"),
        "{s}"
    );
}

#[test]
fn a_malformed_manifest_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("manifest.yaml"),
        "images:\n  - name: a.bin\n    size: [1]\n",
    )
    .unwrap();
    let e = Store::load(dir.path()).unwrap_err();
    assert!(matches!(e, FirmwareError::Manifest { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("manifest.yaml:3:"), "{e}");
}
