//! The SWD port up to the hardware: ELF symbols and the facts decoded from
//! the ELF's own bytes, probe selection on the real lister (no probe on this
//! host: the "no probe found" error with the list seen), chip names checked
//! against probe-rs's target list, and a session on probe-rs's FakeProbe
//! whose mocked core serves the same ELF.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use probe::{
    check_chip, list_probes, select, symbol_location, Elf, FactMap, ProbeError, ProbeSeen,
    ProbeWanted, SwdDebug, TargetMemory,
};
use rig::facts::{Fact, FactType, FactValue};
use rig::swd::{FactSource, SwdSpec};
use rig::target_control::{FlashImage, ImageFormat, ResetMode};
use rig::Debug;

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/elf/meter-facts.c")
}

fn cc(args: &[&str], out: &Path) {
    let status = Command::new("cc")
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(source())
        .status()
        .expect("the tests build their ELF with the system C compiler `cc`");
    assert!(status.success(), "cc {args:?} failed");
}

/// The fixture linked as a firmware image: .data at 0x2000_0000, as RAM on
/// a Cortex-M (the command is in the source's header).
fn elf_path() -> &'static Path {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("meter-facts.elf");
        cc(
            &[
                "-nostdlib",
                "-static",
                "-no-pie",
                "-O0",
                "-Wl,--build-id=none",
                "-Wl,--section-start=.data=0x20000000",
                "-Wl,-Ttext=0x08000000",
            ],
            &out,
        );
        out
    })
}

fn spec(symbols: &[(&str, FactSource)]) -> SwdSpec {
    SwdSpec {
        probe: "MB-TEST-0001".into(),
        chip: "nrf51822_xxAC".into(),
        speed_khz: 1000,
        connect_under_reset: false,
        elf: Some(elf_path().to_path_buf()),
        symbols: symbols
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        rtt: false,
        chip_id: None,
    }
}

fn sym(name: &str) -> FactSource {
    FactSource::Symbol {
        name: name.into(),
        ty: None,
    }
}

fn meter_symbols() -> Vec<(&'static str, FactSource)> {
    vec![
        ("running_version", sym("FW_VERSION")),
        ("boot_count", sym("BOOT_COUNT")),
        ("active_slot", sym("ACTIVE_SLOT")),
        (
            "energy_wh",
            FactSource::Symbol {
                name: "ENERGY_WH".into(),
                ty: Some(FactType::U64),
            },
        ),
        (
            "temperature",
            FactSource::Symbol {
                name: "TEMPERATURE_DECI_C".into(),
                ty: Some(FactType::I32),
            },
        ),
    ]
}

#[test]
fn symbols_have_the_linked_address_and_size() {
    let elf = Elf::load(elf_path()).unwrap();
    let v = elf.symbol("FW_VERSION").unwrap();
    assert_eq!((v.address, v.size), (0x2000_0000, 16));
    assert_eq!(elf.symbol("BOOT_COUNT").unwrap().size, 4);
    assert_eq!(elf.symbol("ENERGY_WH").unwrap().size, 8);
    assert_eq!(elf.symbol("ACTIVE_SLOT").unwrap().size, 1);
    for s in ["BOOT_COUNT", "ENERGY_WH", "ACTIVE_SLOT"] {
        let a = elf.symbol(s).unwrap().address;
        assert!((0x2000_0010..0x2000_0100).contains(&a), "{s} at {a:#x}");
    }
    let rtt = elf
        .rtt_control_block()
        .expect("the fixture has an RTT control block");
    assert_eq!(rtt % 4, 0, "RTT control block at {rtt:#x} is word-aligned");
}

#[test]
fn a_missing_symbol_names_the_elf_and_similar_names() {
    let elf = Elf::load(elf_path()).unwrap();
    let e = elf.symbol("BOOT_CNT").unwrap_err().to_string();
    assert!(e.starts_with(&elf_path().display().to_string()), "{e}");
    assert!(e.contains("symbol `BOOT_CNT`: no such data symbol"), "{e}");
    let e = elf.symbol("ENERGY").unwrap_err().to_string();
    assert!(e.contains("similar: ENERGY_WH"), "{e}");
}

#[test]
fn an_unlinked_object_file_is_refused() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("meter-facts.o");
    cc(&["-c"], &out);
    let e = Elf::load(&out).unwrap_err().to_string();
    assert!(
        e.contains("an object file (relocatable), not a linked firmware"),
        "{e}"
    );
    let e = Elf::parse(b"\x7fELF garbage", Path::new("fw.elf"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("fw.elf: not an ELF"), "{e}");
}

#[test]
fn facts_decode_from_the_elf_data_section() {
    let elf = Elf::load(elf_path()).unwrap();
    let map = FactMap::resolve(&spec(&meter_symbols()), Some(&elf)).unwrap();
    let mut mem = elf.image();
    let mut read = |f: Fact| map.read(&f, &mut mem, "image").unwrap();
    assert_eq!(
        read(Fact::RunningVersion),
        FactValue::Text("2.1.0-rc3".into())
    );
    assert_eq!(read(Fact::BootCount), FactValue::Unsigned(0x0102_0304));
    assert_eq!(read(Fact::ActiveSlot), FactValue::Slot('b'));
    assert_eq!(
        read(Fact::from("energy_wh")),
        FactValue::Unsigned(0x1_2345_6789)
    );
    assert_eq!(read(Fact::from("temperature")), FactValue::Signed(-125));
}

#[test]
fn the_key_value_map_uses_the_virtual_rigs_key_names() {
    let elf = Elf::load(elf_path()).unwrap();
    let map = FactMap::resolve(&spec(&meter_symbols()), Some(&elf)).unwrap();
    let state = map.read_all(&mut elf.image(), "image").unwrap();
    assert_eq!(state["firmware_version"], "2.1.0-rc3");
    assert_eq!(state["boot_count"], "16909060");
    assert_eq!(state["firmware.active_slot"], "b");
    assert_eq!(state["energy_wh"], "4886718345");
    assert_eq!(state["temperature"], "-125");
    assert_eq!(state.len(), 5);
}

#[test]
fn an_unmapped_fact_is_unavailable_with_what_is_mapped() {
    let elf = Elf::load(elf_path()).unwrap();
    let map = FactMap::resolve(&spec(&[("boot_count", sym("BOOT_COUNT"))]), Some(&elf)).unwrap();
    let e = map
        .read(&Fact::RunningVersion, &mut elf.image(), "SWD debug port")
        .unwrap_err();
    assert!(matches!(e, rig::RigError::FactUnavailable { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "SWD debug port cannot give running_version: the rig maps no symbol to it (debug.symbols has: boot_count)"
    );
}

#[test]
fn a_type_wider_than_its_symbol_is_refused_when_resolving() {
    let elf = Elf::load(elf_path()).unwrap();
    let s = spec(&[(
        "boot_count",
        FactSource::Symbol {
            name: "BOOT_COUNT".into(),
            ty: Some(FactType::U64),
        },
    )]);
    let e = FactMap::resolve(&s, Some(&elf)).unwrap_err().to_string();
    assert!(
        e.contains("symbol `BOOT_COUNT`: is 4 bytes; `u64` would read past its end"),
        "{e}"
    );
    let e = FactMap::resolve(&spec(&[("boot_count", sym("NOPE"))]), Some(&elf))
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbol `NOPE`"), "{e}");
}

#[test]
fn a_fixed_address_reads_through_the_same_decoder() {
    let elf = Elf::load(elf_path()).unwrap();
    let at = elf.symbol("BOOT_COUNT").unwrap().address;
    let s = spec(&[(
        "boot_count",
        FactSource::Address {
            address: at,
            ty: FactType::U16,
        },
    )]);
    let map = FactMap::resolve(&s, Some(&elf)).unwrap();
    assert_eq!(
        map.read(&Fact::BootCount, &mut elf.image(), "image")
            .unwrap(),
        FactValue::Unsigned(0x0304),
        "the low half of 0x01020304, little-endian"
    );
    let mut buf = [0u8; 4];
    let e = elf.image().read(0x1000, &mut buf).unwrap_err().to_string();
    assert!(
        e.contains("cannot read 4 bytes at 0x00001000: outside its sections"),
        "{e}"
    );
}

#[test]
fn symbol_reads_take_a_type_or_the_symbols_size() {
    let elf = Elf::load(elf_path()).unwrap();
    let l = symbol_location(&elf, "ENERGY_WH", None).unwrap();
    assert_eq!(l.ty, FactType::U64);
    let l = symbol_location(&elf, "FW_VERSION", Some("string")).unwrap();
    assert_eq!(l.ty, FactType::String(Some(16)));
    let e = symbol_location(&elf, "FW_VERSION", Some("f32"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown type `f32`"), "{e}");
}

fn seen(identifier: &str, vid: u16, pid: u16, serial: Option<&str>) -> ProbeSeen {
    ProbeSeen {
        identifier: identifier.into(),
        vendor_id: vid,
        product_id: pid,
        serial: serial.map(Into::into),
    }
}

#[test]
fn a_probe_is_chosen_by_serial_or_usb_ids() {
    let probes = [
        seen(
            "STLink V3",
            0x0483,
            0x374e,
            Some("0669FF555052836687031520"),
        ),
        seen("J-Link", 0x1366, 0x0101, Some("000260112233")),
        seen("CMSIS-DAP", 0x0d28, 0x0204, None),
    ];
    assert_eq!(
        select(&ProbeWanted::parse("000260112233"), &probes).unwrap(),
        1
    );
    assert_eq!(
        select(&ProbeWanted::parse("0669ff555052836687031520"), &probes).unwrap(),
        0,
        "serials compare without case"
    );
    assert_eq!(
        select(&ProbeWanted::parse("0d28:0204"), &probes).unwrap(),
        2
    );
    assert_eq!(
        select(
            &ProbeWanted::parse("0483:374e:0669FF555052836687031520"),
            &probes
        )
        .unwrap(),
        0
    );
    let e = select(&ProbeWanted::parse("0483:374e:OTHER"), &probes)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "no probe found matching 0483:374e:OTHER; probes seen: [STLink V3 (0483:374e:0669FF555052836687031520); J-Link (1366:0101:000260112233); CMSIS-DAP (0d28:0204:no serial)]"
    );
    let two = [
        seen("STLink V3", 0x0483, 0x374e, Some("A")),
        seen("STLink V3", 0x0483, 0x374e, Some("B")),
    ];
    let e = select(&ProbeWanted::parse("0483:374e"), &two)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("0483:374e matches 2 probes"), "{e}");
    assert!(e.ends_with("give the serial number"), "{e}");
}

#[test]
fn without_a_probe_connecting_says_no_probe_found_and_lists_what_it_saw() {
    let mut port = SwdDebug::new(&spec(&meter_symbols()), Path::new(".")).unwrap();
    let listed = list_probes();
    let e = port.connect().unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("no probe found matching serial MB-TEST-0001; probes seen: "),
        "{text}"
    );
    if listed.is_empty() {
        assert!(text.ends_with("probes seen: none"), "{text}");
    } else {
        for p in &listed {
            assert!(text.contains(&p.to_string()), "{text} lists {p}");
        }
    }
    // Through the rig trait, a fact read ends the same way.
    let e = port.fact(&Fact::BootCount).unwrap_err().to_string();
    assert!(
        e.contains("no probe found matching serial MB-TEST-0001"),
        "{e}"
    );
}

#[test]
fn a_chip_name_is_checked_against_probe_rs_targets() {
    check_chip("STM32L476RGTx").unwrap();
    check_chip("nrf51822_xxAC").unwrap();
    let e = check_chip("STM32L476QQ").unwrap_err();
    let ProbeError::UnknownChip { near, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(
        !near.is_empty() && near.iter().all(|n| n.starts_with("STM32L476")),
        "{near:?}"
    );
    assert!(e.to_string().starts_with(
        "chip `STM32L476QQ` is not in probe-rs's target list; near matches: STM32L476"
    ));
}

#[test]
fn a_missing_image_fails_before_the_probe_is_touched() {
    let mut port = SwdDebug::new(&spec(&meter_symbols()), Path::new(".")).unwrap();
    let image = FlashImage {
        path: "no/such/meter-2.0.elf".into(),
        format: ImageFormat::Elf,
    };
    let e = port
        .control()
        .unwrap()
        .flash(&image, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("flashing no/such/meter-2.0.elf: no such file"),
        "{e}"
    );
    assert_eq!(ImageFormat::from_path(Path::new("a.HEX")), ImageFormat::Hex);
    assert_eq!(
        ImageFormat::from_path(Path::new("a.bin")),
        ImageFormat::Bin { base_address: None }
    );
    assert_eq!(ImageFormat::from_path(Path::new("a.elf")), ImageFormat::Elf);
}

/// probe-rs's FakeProbe with a mocked Cortex-M core whose memory is the ELF:
/// attach by chip name, typed facts, raw and symbol reads, halt and run all
/// go through the real probe-rs session code.
fn fake_port() -> SwdDebug {
    let mut port = SwdDebug::new(&spec(&meter_symbols()), Path::new(".")).unwrap();
    let fake = probe_rs::probe::fake_probe::FakeProbe::with_mocked_core_and_binary(elf_path());
    port.attach_probe(fake.into_probe(), "fake probe".into())
        .unwrap();
    port
}

#[test]
fn the_fake_probe_session_reads_typed_facts() {
    let mut port = fake_port();
    assert_eq!(
        port.fact(&Fact::RunningVersion).unwrap(),
        FactValue::Text("2.1.0-rc3".into())
    );
    assert_eq!(
        port.fact(&Fact::BootCount).unwrap(),
        FactValue::Unsigned(0x0102_0304)
    );
    assert_eq!(port.fact(&Fact::ActiveSlot).unwrap(), FactValue::Slot('b'));
    assert_eq!(
        port.fact(&Fact::from("energy_wh")).unwrap(),
        FactValue::Unsigned(0x1_2345_6789)
    );
    let e = port
        .fact(&Fact::from("voltage_mv"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot give voltage_mv: the rig maps no symbol to it"),
        "{e}"
    );
    let state = port.read_state().unwrap();
    assert_eq!(state["boot_count"], "16909060");
    assert_eq!(state["firmware_version"], "2.1.0-rc3");
    assert!(port.describe().contains("fake probe") && port.describe().contains("nrf51822_xxAC"));
}

#[test]
fn the_fake_probe_session_reads_memory_and_symbols_and_halts() {
    let mut port = fake_port();
    let control = port.control().unwrap();
    assert_eq!(
        control.read_memory(0x2000_0000, 6).unwrap(),
        b"2.1.0-".to_vec()
    );
    assert_eq!(
        control
            .read_symbol("TEMPERATURE_DECI_C", Some("i32"))
            .unwrap(),
        FactValue::Signed(-125)
    );
    assert_eq!(
        control.read_symbol("FW_VERSION", Some("string")).unwrap(),
        FactValue::Text("2.1.0-rc3".into())
    );
    control.halt().unwrap();
    control.run().unwrap();
}

#[test]
fn a_reset_on_the_fake_probe_reports_where_it_stopped() {
    // The mocked core does not model the reset vector catch, so probe-rs's
    // reset-and-halt fails there: the error must still say which probe,
    // which chip and what was being done, with probe-rs's cause.
    let mut port = fake_port();
    let e = port
        .control()
        .unwrap()
        .reset(ResetMode::Halt)
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(
        e.starts_with("swd: probe fake probe, chip nrf51822_xxAC: reset and halt: An ARM specific error occurred.: ")
            && e.ends_with("A timeout occurred during an operation."),
        "{e}"
    );
}

#[test]
fn flash_events_become_bytes_done_of_a_total_per_phase() {
    use probe_rs::flashing::{ProgressEvent, ProgressOperation};
    use rig::target_control::{FlashPhase, FlashProgress};
    use std::time::Duration;
    let mut t = probe::ProgressTracker::default();
    let events = [
        ProgressEvent::AddProgressBar {
            operation: ProgressOperation::Erase,
            total: Some(4096),
        },
        ProgressEvent::AddProgressBar {
            operation: ProgressOperation::Program,
            total: Some(3000),
        },
        ProgressEvent::Started(ProgressOperation::Erase),
        ProgressEvent::Progress {
            operation: ProgressOperation::Erase,
            size: 2048,
            time: Duration::ZERO,
        },
        ProgressEvent::Progress {
            operation: ProgressOperation::Erase,
            size: 2048,
            time: Duration::ZERO,
        },
        ProgressEvent::Finished(ProgressOperation::Erase),
        ProgressEvent::Progress {
            operation: ProgressOperation::Fill,
            size: 100,
            time: Duration::ZERO,
        },
        ProgressEvent::Progress {
            operation: ProgressOperation::Program,
            size: 1024,
            time: Duration::ZERO,
        },
    ];
    let seen: Vec<FlashProgress> = events.iter().filter_map(|e| t.on(e)).collect();
    let p = |phase, done, total| FlashProgress {
        phase,
        done,
        total: Some(total),
    };
    assert_eq!(
        seen,
        vec![
            p(FlashPhase::Erase, 0, 4096),
            p(FlashPhase::Program, 0, 3000),
            p(FlashPhase::Erase, 2048, 4096),
            p(FlashPhase::Erase, 4096, 4096),
            p(FlashPhase::Program, 1024, 3000),
        ]
    );
}

/// A port whose rig asks for RTT, attached to the fake probe.
fn fake_rtt_port(fake: probe_rs::probe::fake_probe::FakeProbe) -> SwdDebug {
    let mut spec = spec(&meter_symbols());
    spec.rtt = true;
    let mut port = SwdDebug::new(&spec, Path::new(".")).unwrap();
    port.attach_probe(fake.into_probe(), "fake probe".into())
        .unwrap();
    port
}

/// Takes the log until a line contains `marker` (bounded: the capture
/// thread polls every few milliseconds).
fn take_log_until(port: &mut SwdDebug, marker: &str) -> Vec<String> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains(marker)) {
        assert!(
            std::time::Instant::now() < end,
            "no line with {marker:?} in {lines:?}"
        );
        lines.extend(port.take_log().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    lines
}

/// RTT on the fake probe reaches as far as the mocked core allows: the
/// control block is found at the ELF's `_SEGGER_RTT` on the first take of
/// the log, the first read gives the line the firmware printed (its `\r\n`
/// gone); the mocked core then drops the read offset the host writes back,
/// which probe-rs detects, and the capture stops with a note naming the
/// probe and chip instead of failing the case. A `run` (as after a reset)
/// attaches again. Copying a running firmware's output needs a board.
#[test]
fn rtt_lines_come_from_the_control_block_and_a_failed_poll_is_noted() {
    let mut port = fake_rtt_port(
        probe_rs::probe::fake_probe::FakeProbe::with_mocked_core_and_binary(elf_path()),
    );
    let lines = take_log_until(&mut port, "capture stopped");
    assert_eq!(lines[0], "meter booted ok", "{lines:?}");
    let note = lines.last().unwrap();
    assert_eq!(
        note,
        "[rtt] capture stopped: probe fake probe, chip nrf51822_xxAC: RTT: The read pointer changed unexpectedly.; tried again after the next flash or reset"
    );
    // Noted once: later takes are empty until the firmware restarts.
    assert!(port.take_log().unwrap().is_empty());
    // The session is free again for fact reads.
    assert_eq!(
        port.fact(&Fact::BootCount).unwrap(),
        FactValue::Unsigned(0x0102_0304)
    );
    port.control().unwrap().run().unwrap();
    let again = take_log_until(&mut port, "meter booted ok");
    assert_eq!(again[0], "meter booted ok", "{again:?}");
}

/// A firmware without RTT (the mocked core's memory is all zeros) is noted
/// in the log once, and the case goes on.
#[test]
fn a_missing_control_block_is_noted_once_not_an_error() {
    let mut port = fake_rtt_port(probe_rs::probe::fake_probe::FakeProbe::with_mocked_core());
    let lines = port.take_log().unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("[rtt] no RTT control block at 0x2"),
        "{lines:?}"
    );
    assert!(lines[0].contains("(the ELF's `_SEGGER_RTT`)"), "{lines:?}");
    assert!(port.take_log().unwrap().is_empty());
}

/// A rig that does not ask for RTT never touches the probe for it (here
/// connecting would fail: no probe is attached); one that does and has no
/// probe gets the "no probe found" error.
#[test]
fn rtt_is_read_only_when_the_rig_asks_for_it() {
    let mut port = SwdDebug::new(&spec(&meter_symbols()), Path::new(".")).unwrap();
    assert!(port.take_log().unwrap().is_empty());
    let mut spec = spec(&meter_symbols());
    spec.rtt = true;
    spec.probe = "MB-NO-SUCH-PROBE".into();
    let mut port = SwdDebug::new(&spec, Path::new(".")).unwrap();
    let e = port.take_log().unwrap_err().to_string();
    assert!(
        e.contains("no probe found matching") && e.contains("MB-NO-SUCH-PROBE"),
        "{e}"
    );
}

/// The fixture linked with an nRF51 FICR whose CONFIGID.HWID is 0x0083
/// (at 0x1000_005C, as the nRF51 reference manual places it).
fn elf_with_ficr() -> &'static Path {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let ficr = dir.join("ficr.s");
        // Padding after the word: the mocked core does not serve a
        // segment's last bytes.
        std::fs::write(
            &ficr,
            ".section .ficr,\"a\"\n.space 0x5c\n.long 0x00000083\n.space 16\n\
             .section .note.GNU-stack,\"\",@progbits\n",
        )
        .unwrap();
        let out = dir.join("meter-facts-ficr.elf");
        let status = Command::new("cc")
            .args([
                "-nostdlib",
                "-static",
                "-no-pie",
                "-O0",
                "-Wl,--build-id=none",
                "-Wl,--section-start=.data=0x20000000",
                "-Wl,-Ttext=0x08000000",
                "-Wl,--section-start=.ficr=0x10000000",
                "-o",
            ])
            .arg(&out)
            .arg(source())
            .arg(&ficr)
            .status()
            .expect("the tests build their ELF with the system C compiler `cc`");
        assert!(status.success(), "cc with the FICR section failed");
        out
    })
}

fn port_with_chip_id(chip_id: Option<u32>) -> (SwdDebug, Result<(), ProbeError>) {
    let mut spec = spec(&meter_symbols());
    spec.chip_id = chip_id;
    let mut port = SwdDebug::new(&spec, Path::new(".")).unwrap();
    let fake = probe_rs::probe::fake_probe::FakeProbe::with_mocked_core_and_binary(elf_with_ficr());
    let attached = port.attach_probe(fake.into_probe(), "fake probe".into());
    (port, attached)
}

/// On attach the chip's family ID register is read (the fake probe serves
/// it from the ELF); the debug port's IDR is not, the fake probe has none.
#[test]
fn the_chip_id_is_read_on_attach() {
    let (mut port, attached) = port_with_chip_id(None);
    attached.unwrap();
    let id = port.chip_id().unwrap();
    let device = id.device.expect("nRF51 has an ID register");
    assert_eq!((device.register.address, device.id()), (0x1000_005C, 0x83));
    assert_eq!(id.dpidr, None);
    assert_eq!(
        id.to_string(),
        "FICR.CONFIGID.HWID 0x83 (register 0x00000083)"
    );
    let (_, attached) = port_with_chip_id(Some(0x83));
    attached.unwrap();
}

/// A rig whose `chip_id` is another chip's is refused on attach, before
/// anything could be flashed; a chip whose register reads as zeros is not
/// taken for a match.
#[test]
fn another_chip_than_the_rig_names_is_refused_on_attach() {
    let (_, attached) = port_with_chip_id(Some(0x1D));
    assert_eq!(
        attached.unwrap_err().to_string(),
        "probe fake probe, chip nrf51822_xxAC: identify the chip: debug.chip_id is 0x1d but the chip's FICR.CONFIGID.HWID reads 0x83: another chip than the rig file says is attached"
    );
    let mut spec = spec(&meter_symbols());
    spec.chip_id = Some(0x83);
    let mut port = SwdDebug::new(&spec, Path::new(".")).unwrap();
    let e = port
        .attach_probe(
            probe_rs::probe::fake_probe::FakeProbe::with_mocked_core_and_binary(elf_path())
                .into_probe(),
            "fake probe".into(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("reads 0x00000000, which is no device ID"), "{e}");
}
