//! The rig file's SWD debug port: a full entry loads with every field
//! typed; mistakes name file:line:column or the field.

use std::path::Path;

use rig::facts::FactType;
use rig::model::DebugSpec;
use rig::swd::{FactSource, SwdSpec};
use rig::{RigError, RigFile};

const HEAD: &str = "name: bench-swd\ndevice:\n  endpoint: meter-{run}\n  lifetime: 60s\n";

fn parse(debug: &str) -> Result<RigFile, RigError> {
    RigFile::parse(&format!("{HEAD}{debug}"), Path::new("rigs/bench-swd.yaml"))
}

fn swd(rig: &RigFile) -> &SwdSpec {
    match &rig.debug {
        Some(DebugSpec::Swd(s)) => s,
        other => panic!("expected an SWD debug port, got {other:?}"),
    }
}

#[test]
fn a_full_swd_entry_loads_typed() {
    let rig = parse(
        r#"debug:
  kind: swd
  probe: "0483:374e:0669FF555052836687031520"
  chip: STM32L476RGTx
  speed_khz: 1800
  elf: ../firmware/meter.elf
  symbols:
    running_version: FW_VERSION
    boot_count: BOOT_COUNT
    active_slot: { address: 0x0807F800, type: u8 }
    energy_wh: { symbol: ENERGY_WH, type: u64 }
    serial: { address: "0x1FFF_7590", type: bytes(12) }
  rtt: true
"#,
    )
    .unwrap();
    let s = swd(&rig);
    assert_eq!(s.probe, "0483:374e:0669FF555052836687031520");
    assert_eq!(s.chip, "STM32L476RGTx");
    assert_eq!(s.speed_khz, 1800);
    assert!(s.rtt && !s.connect_under_reset);
    assert_eq!(
        s.elf_path(Path::new("rigs")),
        Some(Path::new("rigs/../firmware/meter.elf").to_path_buf())
    );
    assert_eq!(
        s.symbols["running_version"],
        FactSource::Symbol {
            name: "FW_VERSION".into(),
            ty: None
        }
    );
    assert_eq!(
        s.symbols["active_slot"],
        FactSource::Address {
            address: 0x0807_F800,
            ty: FactType::U8
        }
    );
    assert_eq!(
        s.symbols["energy_wh"],
        FactSource::Symbol {
            name: "ENERGY_WH".into(),
            ty: Some(FactType::U64)
        }
    );
    assert_eq!(
        s.symbols["serial"],
        FactSource::Address {
            address: 0x1FFF_7590,
            ty: FactType::Bytes(Some(12))
        }
    );
}

#[test]
fn speed_and_rtt_have_defaults() {
    let rig = parse("debug: { kind: swd, probe: ABC123, chip: nRF52840_xxAA }\n").unwrap();
    let s = swd(&rig);
    assert_eq!(s.speed_khz, 4000);
    assert!(!s.rtt);
    assert!(s.symbols.is_empty() && s.elf.is_none());
}

#[test]
fn an_unknown_field_names_its_line_and_column() {
    let e = parse("debug:\n  kind: swd\n  probe: ABC\n  chip: STM32L476RGTx\n  sped_khz: 100\n")
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("rigs/bench-swd.yaml:"),
        "error names the file: {text}"
    );
    assert!(text.contains("sped_khz"), "{text}");
    let RigError::File { line, .. } = e else {
        panic!("expected a located error, got {e:?}")
    };
    assert!(line >= 5, "line {line} is the debug block's");
}

#[test]
fn an_unknown_type_is_refused_with_the_types_known() {
    let e = parse(
        "debug:\n  kind: swd\n  probe: ABC\n  chip: X\n  elf: fw.elf\n  symbols:\n    energy_wh: { symbol: ENERGY_WH, type: u128 }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown type `u128`"), "{e}");
    assert!(e.contains("u8, u16, u32, u64, i32"), "{e}");
    assert!(e.starts_with("rigs/bench-swd.yaml:"), "{e}");
}

#[test]
fn an_address_needs_a_sized_type() {
    let e = parse(
        "debug:\n  kind: swd\n  probe: ABC\n  chip: X\n  symbols:\n    note: { address: 0x20000000 }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("an `address` needs a `type`"), "{e}");
    let e = parse(
        "debug:\n  kind: swd\n  probe: ABC\n  chip: X\n  symbols:\n    note: { address: 0x20000000, type: string }\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "rigs/bench-swd.yaml: debug.symbols.note: at a fixed address, `string` needs a length, e.g. `string(16)`"
    );
}

#[test]
fn a_symbol_without_an_elf_is_refused() {
    let e = parse(
        "debug:\n  kind: swd\n  probe: ABC\n  chip: X\n  symbols:\n    boot_count: BOOT_COUNT\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "rigs/bench-swd.yaml: debug.symbols.boot_count: names the symbol `BOOT_COUNT`, so `debug.elf` must give the firmware's ELF"
    );
}

#[test]
fn a_well_known_fact_must_fit_its_type() {
    let e = parse(
        "debug:\n  kind: swd\n  probe: ABC\n  chip: X\n  elf: f.elf\n  symbols:\n    boot_count: { symbol: BOOT_COUNT, type: string }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.ends_with("debug.symbols.boot_count: `boot_count` cannot be read as `string`"),
        "{e}"
    );
}

#[test]
fn an_empty_probe_and_a_zero_speed_are_refused() {
    let e = parse("debug: { kind: swd, probe: \"\", chip: X }\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("debug.probe: must name the probe's serial number"),
        "{e}"
    );
    let e = parse("debug: { kind: swd, probe: A, chip: X, speed_khz: 0 }\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("debug.speed_khz: 0 is not a speed"), "{e}");
}

#[test]
fn a_symbol_name_that_is_an_address_points_to_the_long_form() {
    let e = parse("debug:\n  kind: swd\n  probe: A\n  chip: X\n  elf: f.elf\n  symbols:\n    boot_count: \"0x20000000\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`0x20000000` is not a symbol name; for an address write"),
        "{e}"
    );
}

#[test]
fn a_chip_id_is_read_in_hex_as_a_number_or_a_string() {
    for id in ["0x415", "\"0x415\"", "1045"] {
        let rig = parse(&format!(
            "debug: {{ kind: swd, probe: A, chip: STM32L476RGTx, chip_id: {id} }}\n"
        ))
        .unwrap();
        assert_eq!(swd(&rig).chip_id, Some(0x415), "{id}");
    }
    let rig = parse("debug: { kind: swd, probe: A, chip: STM32L476RGTx }\n").unwrap();
    assert_eq!(swd(&rig).chip_id, None);
}

#[test]
fn a_chip_id_must_be_a_device_id_of_a_known_family() {
    let e = parse("debug: { kind: swd, probe: A, chip: STM32L476RGTx, chip_id: 0x10076415 }\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "rigs/bench-swd.yaml: debug.chip_id: 0x10076415 has bits outside DBGMCU_IDCODE.DEV_ID (mask 0xfff): give 0x415"
    );
    let e = parse("debug: { kind: swd, probe: A, chip: esp32c3, chip_id: 0x5 }\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "debug.chip_id: meterbench knows the ID register of STM32 and nRF51/52/91 chips, not of `esp32c3`: remove `chip_id`"
        ),
        "{e}"
    );
    let e = parse("debug: { kind: swd, probe: A, chip: STM32L476RGTx, chip_id: \"L4\" }\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rigs/bench-swd.yaml:"), "{e}");
    assert!(e.contains("`L4` is not a chip ID"), "{e}");
}

#[test]
fn each_family_names_its_id_register() {
    use rig::swd::id_register;
    let at = |chip: &str| id_register(chip).map(|r| (r.name, r.address, r.mask));
    assert_eq!(
        at("STM32L476RGTx"),
        Some(("DBGMCU_IDCODE.DEV_ID", 0xE004_2000, 0xFFF))
    );
    assert_eq!(at("STM32G071RBTx").map(|r| r.1), Some(0x4001_5800));
    assert_eq!(at("STM32H743ZITx").map(|r| r.1), Some(0x5C00_1000));
    assert_eq!(at("STM32U585AIIx").map(|r| r.1), Some(0xE004_4000));
    assert_eq!(
        at("nrf51822_xxAC"),
        Some(("FICR.CONFIGID.HWID", 0x1000_005C, 0xFFFF))
    );
    assert_eq!(at("nRF52840_xxAA").map(|r| r.1), Some(0x1000_0100));
    assert_eq!(at("nRF9160_xxAA").map(|r| r.1), Some(0x00FF_0140));
    assert_eq!(at("esp32c3"), None);
}
