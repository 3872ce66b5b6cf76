//! Every rig under rigs/ is a file a lab copies: each must load, name a
//! modem dialect that exists, a supply the SCPI driver accepts, and an SWD
//! port whose chip probe-rs knows and whose symbols resolve in a firmware
//! ELF (here the fixture firmware fixtures/elf/meter-facts.c, built by the
//! test, since the example's own ELF lives on the lab's bench).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::root;
use rig::model::{DebugSpec, PowerSpec};
use rig::RigFile;

fn rig_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("rigs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The fixture firmware linked as the probe crate's tests link it: .data
/// at 0x2000_0000, as RAM on a Cortex-M.
fn fixture_elf() -> &'static Path {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-rigs-meter-facts.elf");
        let status = Command::new("cc")
            .args([
                "-nostdlib",
                "-static",
                "-no-pie",
                "-O0",
                "-Wl,--build-id=none",
                "-Wl,--section-start=.data=0x20000000",
                "-Wl,-Ttext=0x08000000",
                "-o",
            ])
            .arg(&out)
            .arg(root().join("fixtures/elf/meter-facts.c"))
            .status()
            .expect("the test builds its ELF with the system C compiler `cc`");
        assert!(status.success(), "cc failed");
        out
    })
}

/// Checks one rig file's parts; the error names the file and the part.
fn check(path: &Path) -> Result<RigFile, String> {
    let at = path.display();
    let rig = RigFile::load(path).map_err(|e| format!("{at}: {e}"))?;
    if let Some(modem) = &rig.modem {
        modem
            .load_dialect(&root().join("fixtures"), rig.dir())
            .map_err(|e| format!("{at}: modem dialect {}: {e}", modem.dialect))?;
    }
    if let Some(power @ PowerSpec::Scpi(_)) = &rig.power {
        let supply = rig::power::supply_from_spec(power, rig.dir())
            .map_err(|e| format!("{at}: power: {e}"))?;
        assert!(supply.is_some(), "{at}: an scpi power part measures");
    }
    if let Some(DebugSpec::Swd(spec)) = &rig.debug {
        probe::check_chip(&spec.chip).map_err(|e| format!("{at}: debug.chip: {e}"))?;
        let elf = probe::Elf::load(fixture_elf()).map_err(|e| e.to_string())?;
        let map = probe::FactMap::resolve(spec, Some(&elf))
            .map_err(|e| format!("{at}: debug.symbols against the fixture firmware: {e}"))?;
        for fact in spec.symbols.keys() {
            assert!(
                map.location(&rig::facts::Fact::from(fact.as_str()))
                    .is_some(),
                "{at}: {fact} is mapped but has no location"
            );
        }
    }
    Ok(rig)
}

#[test]
fn every_rig_under_rigs_loads_and_its_parts_check() {
    let files = rig_files();
    assert!(files.len() >= 2, "{files:?}");
    let failures: Vec<String> = files.iter().filter_map(|f| check(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn each_modem_family_has_an_example_with_a_probe_and_an_scpi_supply() {
    for (file, dialect) in [
        ("bench-ublox-sara-r5.yaml", "ublox-sara-r5"),
        ("bench-quectel-bc66.yaml", "quectel-bc66"),
    ] {
        let rig = check(&root().join("rigs").join(file)).unwrap();
        assert_eq!(rig.modem.as_ref().unwrap().dialect, dialect, "{file}");
        let Some(DebugSpec::Swd(swd)) = &rig.debug else {
            panic!("{file}: no SWD debug port");
        };
        for fact in ["running_version", "boot_count", "active_slot"] {
            assert!(swd.symbols.contains_key(fact), "{file}: {fact} unmapped");
        }
        assert!(matches!(rig.power, Some(PowerSpec::Scpi(_))), "{file}");
    }
}

#[test]
fn a_symbol_missing_from_the_firmware_fails_the_check_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("rigs/bench-ublox-sara-r5.yaml"))
        .unwrap()
        .replace("boot_count: BOOT_COUNT", "boot_count: BOOT_COUNTER");
    let path = dir.path().join("renamed-symbol.yaml");
    std::fs::write(&path, text).unwrap();
    let e = check(&path).unwrap_err();
    assert!(e.contains("BOOT_COUNTER"), "{e}");
    assert!(e.contains("renamed-symbol.yaml"), "{e}");
}
