//! Firmware roles in rig files: images mapped by role, roles derived from
//! the upgrade image, the slot size, and the mistakes each names by
//! file:line:column.

use std::path::Path;

use rig::model::{canonical_role, parse_byte_size, DeriveKind, FirmwareRole};
use rig::{RigError, RigFile};

const HEAD: &str = "name: m\ndevice: { endpoint: ep, lifetime: 1m }\n";

fn parse(firmware: &str) -> Result<RigFile, RigError> {
    RigFile::parse(&format!("{HEAD}{firmware}"), Path::new("rigs/m.yaml"))
}

/// The error's `file:line:column` prefix and message.
fn located(firmware: &str) -> (u64, u64, String) {
    match parse(firmware).unwrap_err() {
        RigError::File {
            file,
            line,
            column,
            message,
            ..
        } => {
            assert_eq!(file, Path::new("rigs/m.yaml"));
            (line, column, message)
        }
        other => panic!("expected a located error, got {other}"),
    }
}

#[test]
fn a_rig_that_maps_only_upgrade_derives_corrupted_and_oversized() {
    let rig = parse(
        "firmware:\n  slot_size: 512KiB\n  roles:\n    upgrade: { image: acme-3.2.bin, version: \"3.2.0\" }\n",
    )
    .unwrap();
    let f = rig.firmware.unwrap();
    assert_eq!(f.slot_size, Some(512 * 1024));
    assert_eq!(f.derivation("corrupted"), Some(DeriveKind::Corrupted));
    assert_eq!(f.derivation("oversized"), Some(DeriveKind::Oversized));
    assert_eq!(f.derivation("too-large"), Some(DeriveKind::Oversized));
    assert_eq!(f.derivation("upgrade"), None, "mapped, not derived");
    assert_eq!(f.derivation("same-version"), None, "never derived");
    assert_eq!(f.derivation("unbootable"), None, "format-specific");
    assert_eq!(f.role_names(), ["corrupted", "oversized", "upgrade"]);
    let rig = parse("firmware:\n  roles:\n    upgrade: a.bin\n").unwrap();
    let f = rig.firmware.unwrap();
    assert_eq!(f.derivation("oversized"), Some(DeriveKind::Oversized));
    assert_eq!(
        f.role_names(),
        ["corrupted", "upgrade"],
        "oversized needs slot_size"
    );
}

#[test]
fn explicit_derivations_and_plain_images_mix() {
    let rig = parse(
        "firmware:\n  slot_size: 262144\n  roles:\n    upgrade: acme.bin\n    bad-crc: { derive: corrupted }\n    too-large: { derive: oversized }\n    software: pkg.bin\n",
    )
    .unwrap();
    let f = rig.firmware.unwrap();
    assert_eq!(
        f.roles["upgrade"],
        FirmwareRole {
            image: "acme.bin".into(),
            version: None
        }
    );
    assert_eq!(
        f.roles.len(),
        2,
        "derived roles are not images of the store"
    );
    assert_eq!(f.derived["bad-crc"], DeriveKind::Corrupted);
    assert_eq!(f.derivation("bad-crc"), Some(DeriveKind::Corrupted));
    // `too-large` is written; a case's `oversized` finds it by its alias.
    assert_eq!(f.derivation("oversized"), Some(DeriveKind::Oversized));
    assert_eq!(f.role_locations["bad-crc"].0, 7);
}

#[test]
fn a_mapped_role_is_found_under_its_alias_and_never_derived() {
    let rig = parse("firmware:\n  roles:\n    upgrade: a.bin\n    too-large: big.bin\n").unwrap();
    let f = rig.firmware.unwrap();
    assert_eq!(f.mapped("oversized").unwrap().image, "big.bin");
    assert_eq!(f.mapped("too-large").unwrap().image, "big.bin");
    assert_eq!(f.derivation("oversized"), None);
    assert_eq!(canonical_role("too-large"), "oversized");
    assert_eq!(canonical_role("corrupted"), "corrupted");
}

#[test]
fn without_upgrade_nothing_is_derived_implicitly() {
    let rig = parse("firmware:\n  roles:\n    software: pkg.bin\n").unwrap();
    let f = rig.firmware.unwrap();
    assert_eq!(f.derivation("corrupted"), None);
    assert_eq!(f.role_names(), ["software"]);
}

#[test]
fn an_unknown_derive_kind_names_its_line_and_column() {
    let (line, column, message) =
        located("firmware:\n  roles:\n    upgrade: a.bin\n    corrupted: { derive: scrambled }\n");
    assert_eq!(line, 6, "{message}");
    assert!(column > 0, "{message}");
    assert!(
        message.contains("unknown derive kind `scrambled`"),
        "{message}"
    );
}

#[test]
fn same_version_cannot_be_derived_and_says_why() {
    let (line, _, message) = located(
        "firmware:\n  roles:\n    upgrade: a.bin\n    same-version: { derive: same-version }\n",
    );
    assert_eq!(line, 6);
    assert!(message.contains("already runs"), "{message}");
}

#[test]
fn a_derivation_without_upgrade_names_the_role_line() {
    let (line, column, message) =
        located("firmware:\n  slot_size: 1MiB\n  roles:\n    software: pkg.bin\n    corrupted: { derive: corrupted }\n");
    assert_eq!((line, column), (7, 16), "{message}");
    assert!(
        message.starts_with("firmware.roles.corrupted:"),
        "{message}"
    );
    assert!(message.contains("`upgrade` role"), "{message}");
    let err = parse("firmware:\n  roles:\n    corrupted: { derive: corrupted }\n").unwrap_err();
    assert!(err.to_string().starts_with("rigs/m.yaml:5:"), "{err}");
}

#[test]
fn deriving_oversized_needs_the_slot_size() {
    let (line, _, message) =
        located("firmware:\n  roles:\n    upgrade: a.bin\n    oversized: { derive: oversized }\n");
    assert_eq!(line, 6);
    assert!(message.contains("slot_size"), "{message}");
}

#[test]
fn a_bad_slot_size_names_its_line_and_column() {
    for (bad, says) in [
        ("512KB", "not a size"),
        ("lots", "not a size"),
        ("0", "more than 0"),
        ("1GiB", "more than 256MiB"),
        ("-4", "not a size"),
    ] {
        let (line, column, message) = located(&format!(
            "firmware:\n  slot_size: {bad}\n  roles:\n    upgrade: a.bin\n"
        ));
        assert_eq!((line, column), (4, 14), "{bad}: {message}");
        assert!(message.contains(says), "{bad}: {message}");
    }
}

#[test]
fn sizes_use_binary_units() {
    assert_eq!(parse_byte_size("512KiB"), Ok(524_288));
    assert_eq!(parse_byte_size("1MiB"), Ok(1_048_576));
    assert_eq!(parse_byte_size("262144"), Ok(262_144));
    assert_eq!(parse_byte_size("4096B"), Ok(4096));
    assert_eq!(parse_byte_size("256MiB"), Ok(256 << 20));
    assert!(parse_byte_size("1.5MiB").is_err());
    assert!(parse_byte_size("KiB").is_err());
}

#[test]
fn both_names_of_the_oversized_role_are_refused_together() {
    let (line, _, message) = located(
        "firmware:\n  roles:\n    upgrade: a.bin\n    oversized: big.bin\n    too-large: big2.bin\n",
    );
    assert_eq!(line, 7, "{message}");
    assert!(message.contains("one role"), "{message}");
}

#[test]
fn a_role_with_image_and_derive_is_refused() {
    let (line, _, message) = located(
        "firmware:\n  roles:\n    upgrade: a.bin\n    corrupted: { image: c.bin, derive: corrupted }\n",
    );
    assert_eq!(line, 6);
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn the_shipped_rigs_with_firmware_still_load() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in [
        "virtual.yaml",
        "bench-example.yaml",
        "bench-ublox-sara-r5.yaml",
        "bench-quectel-bc66.yaml",
    ] {
        let rig = RigFile::load(&repo.join("rigs").join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert!(rig.firmware.is_some(), "{name}");
    }
    let rig = RigFile::load(&repo.join("rigs/bench-example.yaml")).unwrap();
    let f = rig.firmware.unwrap();
    assert_eq!(f.slot_size, Some(512 * 1024));
    assert_eq!(f.derivation("oversized"), Some(DeriveKind::Oversized));
    assert_eq!(
        f.mapped("corrupted").unwrap().image,
        "acme-meter-3.2.1-badsig.bin"
    );
    let rig = RigFile::load(&repo.join("rigs/virtual.yaml")).unwrap();
    let f = rig.firmware.unwrap();
    // The virtual rig maps every role to a generated image: nothing derived.
    assert_eq!(f.mapped("oversized").unwrap().image, "meter-bench-1m.bin");
    assert_eq!(f.derivation("corrupted"), None);
    // A package of another type, for Update Result 6 (ETS 1.0 int-777).
    assert_eq!(
        f.mapped("unsupported-type").unwrap().image,
        "meter-2.0-foreign.bin"
    );
}
