//! The SWD debug port: `rig::Debug` (typed facts and today's key/value
//! map) and `rig::target_control::TargetControl` (flash, reset, halt/run,
//! memory and symbol reads) over a probe-rs session.
//!
//! The probe is opened on first use, not when the rig is loaded, so that
//! `rig check` and a case that needs SWD both end with "no probe found" and
//! the probes seen, and a case that never touches the debug port runs on a
//! bench whose probe is unplugged (unless its rig asks for RTT, which the
//! runner takes at each case's start and end). The chip's ID is read on
//! attach, and a rig's `chip_id` refuses another chip before anything is
//! flashed to it. Every call blocks on USB; the runner
//! calls them with `spawn_blocking`/`block_in_place`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probe_rs::flashing::{
    BinOptions, DownloadOptions, ElfOptions, FlashProgress as ProbeRsProgress, ProgressEvent,
};
use probe_rs::probe::list::Lister;
use probe_rs::probe::{Probe, WireProtocol};
use probe_rs::{Permissions, Session};
use rig::facts::{Fact, FactType, FactValue};
use rig::swd::SwdSpec;
use rig::target_control::{
    FlashImage, FlashPhase, FlashProgress, ImageFormat, ResetMode, TargetControl,
};
use rig::RigError;

use crate::chip_id::{ChipId, DeviceId};
use crate::elf::Elf;
use crate::error::ProbeError;
use crate::fact_map::{read_value, FactMap, Location};
use crate::memory::CoreMemory;
use crate::rtt::{AttachError, RttCapture};
use crate::select::{select, ProbeSeen, ProbeWanted};

/// How long a halt or a reset-and-halt may take before the core is deemed stuck.
const HALT_TIMEOUT: Duration = Duration::from_millis(500);

/// The probes attached to this host, as probe-rs lists them.
pub fn list_probes() -> Vec<ProbeSeen> {
    Lister::new()
        .list_all()
        .iter()
        .map(|i| ProbeSeen {
            identifier: i.identifier.clone(),
            vendor_id: i.vendor_id,
            product_id: i.product_id,
            serial: i.serial_number.clone(),
        })
        .collect()
}

/// An attached session, shared with the RTT capture thread.
pub(crate) type SharedSession = Arc<Mutex<Session>>;

/// The rig's SWD debug port.
pub struct SwdDebug {
    spec: SwdSpec,
    wanted: ProbeWanted,
    elf: Option<Elf>,
    facts: FactMap,
    attached: Option<Attached>,
    rtt: RttState,
    /// Lines a capture took before it was stopped (by a flash or reset),
    /// for the next [`rig::Debug::take_log`].
    rtt_pending: Vec<String>,
}

struct Attached {
    session: SharedSession,
    /// The probe as listed, for errors and `describe`.
    probe: String,
    chip_id: ChipId,
}

/// RTT is attached lazily, on the first take of the log after attaching,
/// flashing or resetting: the firmware sets up its control block when it
/// starts, so attaching earlier would find none (or the last firmware's).
enum RttState {
    /// Attach on the next take.
    Idle,
    Running(RttCapture),
    /// No control block, or the capture failed: noted in the log once,
    /// tried again after the next flash or reset.
    Absent,
}

impl SwdDebug {
    /// Loads the ELF and resolves the rig's symbols; no probe is touched.
    pub fn new(spec: &SwdSpec, rig_dir: &Path) -> Result<SwdDebug, ProbeError> {
        let elf = spec.elf_path(rig_dir).map(|p| Elf::load(&p)).transpose()?;
        let facts = FactMap::resolve(spec, elf.as_ref())?;
        Ok(SwdDebug {
            spec: spec.clone(),
            wanted: ProbeWanted::parse(&spec.probe),
            elf,
            facts,
            attached: None,
            rtt: RttState::Idle,
            rtt_pending: Vec::new(),
        })
    }

    /// The resolved fact mapping (for `rig check` to print).
    pub fn fact_map(&self) -> &FactMap {
        &self.facts
    }

    pub fn elf(&self) -> Option<&Elf> {
        self.elf.as_ref()
    }

    /// Finds the rig's probe among those attached and attaches to the chip.
    pub fn connect(&mut self) -> Result<(), ProbeError> {
        if self.attached.is_some() {
            return Ok(());
        }
        let lister = Lister::new();
        let infos = lister.list_all();
        let seen: Vec<ProbeSeen> = infos
            .iter()
            .map(|i| ProbeSeen {
                identifier: i.identifier.clone(),
                vendor_id: i.vendor_id,
                product_id: i.product_id,
                serial: i.serial_number.clone(),
            })
            .collect();
        let index = select(&self.wanted, &seen)?;
        let name = seen[index].to_string();
        let probe = infos[index].open().map_err(|e| ProbeError::Probe {
            probe: name.clone(),
            message: format!("cannot open: {e}"),
        })?;
        self.attach(probe, name, true)
    }

    /// Attaches through a probe the caller opened (probe-rs's `FakeProbe`
    /// in tests); `name` stands for it in errors. The debug port's IDR is
    /// not read: the fake probe has no debug port registers (probe-rs 0.32
    /// panics on them).
    pub fn attach_probe(&mut self, probe: Probe, name: String) -> Result<(), ProbeError> {
        self.attach(probe, name, false)
    }

    /// What identifies the chip, as read on attach (attaching first).
    pub fn chip_id(&mut self) -> Result<ChipId, ProbeError> {
        self.connect()?;
        Ok(self.attached.as_ref().expect("connected").chip_id.clone())
    }

    fn attach(
        &mut self,
        mut probe: Probe,
        name: String,
        read_dpidr: bool,
    ) -> Result<(), ProbeError> {
        check_chip(&self.spec.chip)?;
        let probe_error = |what: &str, e: &dyn std::fmt::Display| ProbeError::Probe {
            probe: name.clone(),
            message: format!("{what}: {e}"),
        };
        probe
            .select_protocol(WireProtocol::Swd)
            .map_err(|e| probe_error("cannot select SWD", &e))?;
        probe
            .set_speed(self.spec.speed_khz)
            .map_err(|e| probe_error("cannot set the speed", &e))?;
        let mut session = if self.spec.connect_under_reset {
            probe.attach_under_reset(self.spec.chip.as_str(), Permissions::default())
        } else {
            probe.attach(self.spec.chip.as_str(), Permissions::default())
        }
        .map_err(|e| ProbeError::Target {
            probe: name.clone(),
            chip: self.spec.chip.clone(),
            operation: "attach".into(),
            message: e.to_string(),
        })?;
        let chip_id = read_chip_id(&mut session, &self.spec.chip, read_dpidr);
        tracing::info!(probe = %name, %chip_id, "SWD attached");
        // The wrong board is refused before anything is flashed to it.
        chip_id
            .check(self.spec.chip_id)
            .map_err(|message| ProbeError::Target {
                probe: name.clone(),
                chip: self.spec.chip.clone(),
                operation: "identify the chip".into(),
                message,
            })?;
        self.attached = Some(Attached {
            session: Arc::new(Mutex::new(session)),
            probe: name,
            chip_id,
        });
        self.rtt = RttState::Idle;
        Ok(())
    }

    /// Stops the RTT capture, keeping what it read for the next take;
    /// the next take attaches again (after a flash or reset the firmware
    /// sets its control block up anew).
    fn restart_rtt(&mut self) {
        if let RttState::Running(c) = std::mem::replace(&mut self.rtt, RttState::Idle) {
            let (lines, error) = c.stop();
            self.rtt_pending.extend(lines);
            if let Some(e) = error {
                self.rtt_pending.push(format!("[rtt] capture stopped: {e}"));
            }
        }
    }

    /// Attaches RTT (see [`RttState`]); a missing control block is a note
    /// in the log, not an error: the case is about the device, and a
    /// firmware built without RTT is still a device.
    fn attach_rtt(&mut self) -> Result<(), ProbeError> {
        self.connect()?;
        let attached = self.attached.as_ref().expect("connected");
        let control_block = self.elf.as_ref().and_then(Elf::rtt_control_block);
        let (probe, chip) = (self.probe_name(), self.spec.chip.clone());
        let error = move |message: String| ProbeError::Target {
            probe: probe.clone(),
            chip: chip.clone(),
            operation: "RTT".into(),
            message,
        };
        match RttCapture::start(attached.session.clone(), control_block, error) {
            Ok(c) => {
                tracing::info!(channels = c.channels(), "RTT attached");
                self.rtt = RttState::Running(c);
            }
            Err(AttachError::NoControlBlock(why)) => {
                let place = match control_block {
                    Some(a) => format!("at {a:#010x} (the ELF's `_SEGGER_RTT`)"),
                    None => "in RAM (no `debug.elf` with `_SEGGER_RTT`)".to_owned(),
                };
                self.rtt_pending.push(format!(
                    "[rtt] no RTT control block {place}: {why}; the firmware's output is not captured until the next flash or reset"
                ));
                self.rtt = RttState::Absent;
            }
            Err(AttachError::Probe(e)) => {
                self.rtt_pending.push(format!("[rtt] cannot attach: {e}"));
                self.rtt = RttState::Absent;
            }
        }
        Ok(())
    }

    fn target_name(&self) -> String {
        match &self.attached {
            Some(a) => format!("probe {}, chip {}", a.probe, self.spec.chip),
            None => format!("probe {}, chip {}", self.wanted, self.spec.chip),
        }
    }

    /// The attached probe's name (the rig's selection before attaching).
    fn probe_name(&self) -> String {
        self.attached
            .as_ref()
            .map_or_else(|| self.wanted.to_string(), |a| a.probe.clone())
    }

    fn target_error(&self, operation: &str, message: String) -> ProbeError {
        ProbeError::Target {
            probe: self.probe_name(),
            chip: self.spec.chip.clone(),
            operation: operation.to_owned(),
            message,
        }
    }

    /// Runs `f` on core 0, attaching first if need be; a failure names the
    /// probe, the chip and `operation`.
    fn with_core<T>(
        &mut self,
        operation: &str,
        f: impl FnOnce(&mut probe_rs::Core<'_>, &str) -> Result<T, ProbeError>,
    ) -> Result<T, ProbeError> {
        self.connect()?;
        let name = self.target_name();
        let poisoned = self.target_error(
            operation,
            "the RTT capture thread panicked while holding the session".into(),
        );
        let core_error =
            |e: probe_rs::Error| self.target_error(operation, format!("core 0: {}", chain(&e)));
        let a = self.attached.as_ref().expect("connected");
        let mut session = a.session.lock().map_err(|_| poisoned)?;
        let mut core = session.core(0).map_err(core_error)?;
        f(&mut core, &name)
    }

    /// Like [`SwdDebug::with_core`] for one probe-rs call.
    fn core_op<T>(
        &mut self,
        operation: &str,
        f: impl FnOnce(&mut probe_rs::Core<'_>) -> Result<T, probe_rs::Error>,
    ) -> Result<T, RigError> {
        let result = self.with_core(operation, |core, _| Ok(f(core)))?;
        result.map_err(|e| self.target_error(operation, chain(&e)).into())
    }

    fn read_location(&mut self, loc: Location) -> Result<FactValue, ProbeError> {
        self.with_core("read memory", |core, name| {
            let mut mem = CoreMemory {
                core,
                name: name.to_owned(),
            };
            read_value(&mut mem, loc)
        })
    }
}

/// An error with its sources: probe-rs's top-level messages ("An ARM
/// specific error occurred.") say little without them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Drop for SwdDebug {
    fn drop(&mut self) {
        if let RttState::Running(c) = std::mem::replace(&mut self.rtt, RttState::Idle) {
            if let (_, Some(e)) = c.stop() {
                tracing::warn!("RTT capture ended with: {e}");
            }
        }
    }
}

/// The chip's ID on attach: never an error of its own (a chip that does not
/// answer its ID register still runs cases); [`ChipId::check`] judges it.
fn read_chip_id(session: &mut Session, chip: &str, read_dpidr: bool) -> ChipId {
    let dpidr = if read_dpidr {
        read_dpidr_of(session)
            .map_err(|e| tracing::warn!("cannot read the debug port's IDR: {e}"))
            .ok()
    } else {
        None
    };
    let device = rig::swd::id_register(chip).and_then(|register| {
        let mut core = session
            .core(0)
            .map_err(|e| tracing::warn!("cannot read {}: {e}", register.name))
            .ok()?;
        use probe_rs::MemoryInterface;
        let raw = core
            .read_word_32(register.address)
            .map_err(|e| tracing::warn!("cannot read {}: {e}", register.name))
            .ok()?;
        Some(DeviceId { register, raw })
    });
    ChipId {
        target: chip.to_owned(),
        dpidr,
        device,
    }
}

/// ARM ADI v5.2 §B2.2.5 DPIDR of the debug port in use.
fn read_dpidr_of(session: &mut Session) -> Result<u32, probe_rs::architecture::arm::ArmError> {
    use probe_rs::architecture::arm::dp::{DpAddress, DpRegister, DPIDR};
    let iface = session.get_arm_interface()?;
    let dp = iface.current_debug_port().unwrap_or(DpAddress::Default);
    iface.read_raw_dp_register(dp, DPIDR::ADDRESS)
}

/// An unknown chip fails before attaching, with probe-rs's names that
/// share the longest prefix with it.
pub fn check_chip(chip: &str) -> Result<(), ProbeError> {
    let registry = probe_rs::config::Registry::from_builtin_families();
    if registry.get_target_by_name(chip).is_ok() {
        return Ok(());
    }
    let mut near = Vec::new();
    let mut prefix = chip.len();
    while prefix > 3 && near.is_empty() {
        prefix -= 1;
        if let Some(p) = chip.get(..prefix) {
            near = registry.search_chips(p);
        }
    }
    near.sort();
    near.dedup();
    near.truncate(8);
    Err(ProbeError::UnknownChip {
        chip: chip.to_owned(),
        near,
    })
}

impl rig::Debug for SwdDebug {
    /// Every mapped fact as text, under the virtual rig's key names.
    fn read_state(&mut self) -> Result<BTreeMap<String, String>, RigError> {
        let facts = self.facts.clone();
        let port = self.describe();
        self.with_core("read facts", |core, name| {
            let mut mem = CoreMemory {
                core,
                name: name.to_owned(),
            };
            Ok(facts.read_all(&mut mem, &port))
        })?
    }

    fn describe(&self) -> String {
        format!("SWD debug port ({})", self.target_name())
    }

    fn fact(&mut self, fact: &Fact) -> Result<FactValue, RigError> {
        let port = self.describe();
        let Some(loc) = self.facts.location(fact) else {
            // Not mapped: the fact map says so, naming what is.
            return self.facts.read(fact, &mut NoMemory, &port);
        };
        let raw = self.read_location(loc)?;
        rig::facts::shape(fact, raw, &port)
    }

    fn control(&mut self) -> Option<&mut dyn TargetControl> {
        Some(self)
    }

    /// The RTT up channels' lines since the last take, when the rig asks
    /// for RTT (`debug.rtt`); notes of the harness's own start `[rtt]`.
    fn take_log(&mut self) -> Result<Vec<String>, RigError> {
        if !self.spec.rtt {
            return Ok(Vec::new());
        }
        if matches!(self.rtt, RttState::Idle) {
            self.attach_rtt()?;
        }
        let mut lines = std::mem::take(&mut self.rtt_pending);
        if let RttState::Running(c) = &mut self.rtt {
            let (taken, error) = c.take();
            lines.extend(taken);
            if let Some(e) = error {
                lines.push(format!(
                    "[rtt] capture stopped: {e}; tried again after the next flash or reset"
                ));
                self.rtt = RttState::Absent;
            }
        }
        Ok(lines)
    }
}

/// Never read: stands in where a fact is unmapped and no read happens.
struct NoMemory;

impl crate::memory::TargetMemory for NoMemory {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), ProbeError> {
        Err(ProbeError::Memory {
            memory: "none".into(),
            address,
            len: buf.len(),
            message: "no memory".into(),
        })
    }
    fn describe(&self) -> String {
        "none".into()
    }
}

impl TargetControl for SwdDebug {
    fn flash(
        &mut self,
        image: &FlashImage,
        progress: &mut dyn FnMut(FlashProgress),
    ) -> Result<(), RigError> {
        if !image.path.is_file() {
            return Err(ProbeError::Flash {
                probe: self.wanted.to_string(),
                chip: self.spec.chip.clone(),
                image: image.path.clone(),
                message: "no such file".into(),
            }
            .into());
        }
        self.connect()?;
        self.restart_rtt();
        let chip = self.spec.chip.clone();
        let name = self.probe_name();
        let poisoned = self.target_error(
            "flash",
            "the RTT capture thread panicked while holding the session".into(),
        );
        let shared = self.attached.as_ref().expect("connected").session.clone();
        let mut session = shared.lock().map_err(|_| poisoned)?;
        let mut tracker = ProgressTracker::default();
        let mut options = DownloadOptions::default();
        options.verify = true;
        options.progress = ProbeRsProgress::new(|event| {
            if let Some(p) = tracker.on(&event) {
                progress(p);
            }
        });
        let result = match image.format {
            ImageFormat::Elf => probe_rs::flashing::download_file_with_options(
                &mut session,
                &image.path,
                probe_rs::flashing::ElfLoader(ElfOptions::default()),
                options,
            ),
            ImageFormat::Hex => probe_rs::flashing::download_file_with_options(
                &mut session,
                &image.path,
                probe_rs::flashing::HexLoader,
                options,
            ),
            ImageFormat::Bin { base_address } => probe_rs::flashing::download_file_with_options(
                &mut session,
                &image.path,
                probe_rs::flashing::BinLoader(BinOptions {
                    base_address,
                    skip: 0,
                }),
                options,
            ),
        };
        result.map_err(|e| {
            RigError::from(ProbeError::Flash {
                probe: name,
                chip,
                image: image.path.clone(),
                message: chain(&e),
            })
        })
    }

    fn reset(&mut self, mode: ResetMode) -> Result<(), RigError> {
        self.restart_rtt();
        match mode {
            ResetMode::Run => self.core_op("reset", |core| core.reset()),
            ResetMode::Halt => self.core_op("reset and halt", |core| {
                core.reset_and_halt(HALT_TIMEOUT).map(|_| ())
            }),
        }
    }

    fn halt(&mut self) -> Result<(), RigError> {
        self.core_op("halt", |core| core.halt(HALT_TIMEOUT).map(|_| ()))
    }

    fn run(&mut self) -> Result<(), RigError> {
        // After a reset-and-halt the firmware sets RTT up only now.
        self.restart_rtt();
        self.core_op("run", |core| core.run())
    }

    fn read_memory(&mut self, address: u64, len: usize) -> Result<Vec<u8>, RigError> {
        let loc = Location {
            address,
            ty: FactType::Bytes(Some(len as u64)),
        };
        match self.read_location(loc)? {
            FactValue::Bytes(b) => Ok(b),
            other => unreachable!("bytes decode as bytes, got {other:?}"),
        }
    }

    fn read_symbol(
        &mut self,
        symbol: &str,
        type_name: Option<&str>,
    ) -> Result<FactValue, RigError> {
        let Some(elf) = &self.elf else {
            return Err(ProbeError::Symbol {
                elf: "(no debug.elf)".into(),
                symbol: symbol.to_owned(),
                message: "reading a symbol needs the rig's `debug.elf`".into(),
            }
            .into());
        };
        let loc = symbol_location(elf, symbol, type_name)?;
        Ok(self.read_location(loc)?)
    }
}

/// Where `symbol` is and how to decode it: `type_name` (as in the rig
/// file) or by its size.
pub fn symbol_location(
    elf: &Elf,
    symbol: &str,
    type_name: Option<&str>,
) -> Result<Location, ProbeError> {
    let s = elf.symbol(symbol)?;
    let bad = |message: String| ProbeError::Symbol {
        elf: elf.path().to_path_buf(),
        symbol: symbol.to_owned(),
        message,
    };
    let ty = match type_name {
        Some(t) => t.parse::<FactType>().map_err(bad)?.sized(s.size),
        None => FactType::for_symbol_size(s.size),
    };
    if ty.size().is_some_and(|n| n > s.size) {
        return Err(bad(format!(
            "is {} bytes; `{ty}` would read past its end",
            s.size
        )));
    }
    Ok(Location {
        address: s.address,
        ty,
    })
}

/// probe-rs's flash events turned into bytes done of a total per phase,
/// which is all a progress bar needs.
#[derive(Debug, Default)]
pub struct ProgressTracker {
    totals: BTreeMap<u8, Option<u64>>,
    done: BTreeMap<u8, u64>,
}

impl ProgressTracker {
    pub fn on(&mut self, event: &ProgressEvent) -> Option<FlashProgress> {
        use probe_rs::flashing::ProgressOperation as Op;
        let phase = |op: &Op| match op {
            Op::Erase => Some(FlashPhase::Erase),
            Op::Program => Some(FlashPhase::Program),
            Op::Verify => Some(FlashPhase::Verify),
            Op::Fill => None,
        };
        let key = |p: FlashPhase| p as u8;
        match event {
            ProgressEvent::AddProgressBar { operation, total } => {
                let p = phase(operation)?;
                self.totals.insert(key(p), *total);
                self.done.insert(key(p), 0);
                Some(FlashProgress {
                    phase: p,
                    done: 0,
                    total: *total,
                })
            }
            ProgressEvent::Progress {
                operation, size, ..
            } => {
                let p = phase(operation)?;
                let done = self.done.entry(key(p)).or_default();
                *done += size;
                Some(FlashProgress {
                    phase: p,
                    done: *done,
                    total: self.totals.get(&key(p)).copied().flatten(),
                })
            }
            ProgressEvent::DiagnosticMessage { message } => {
                tracing::info!("flash algorithm: {message}");
                None
            }
            _ => None,
        }
    }
}
