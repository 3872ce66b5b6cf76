//! The virtual meter itself: boots from NV, serves the AT modem on its PTY,
//! runs the LwM2M client over UDP and keeps its values moving (clock, signal,
//! energy register). One thread runs this loop; a PTY reader, a PTY writer
//! and one UDP receiver per client session feed it through a channel.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lwm2m::client::{ClientConfig, ClientEvent, RegistrationState};
use lwm2m::{ContentFormat, Path, Registry, Value};

use crate::args::{DeviceOptions, MeterArgs};
use crate::error::SimError;
use crate::factory::FactoryImage;
use crate::identity::Identity;
use crate::modem::commands::frame;
use crate::modem::{handle_line, Action, Frame, LineFramer, ModemState, Pty};
use crate::network_control::LabNetwork;
use crate::nv::NvStore;
use crate::objects::{self, DeviceFacts};
use crate::radio::Radio;
use crate::session::{Session, SessionSettings};

mod connectivity;
mod onboarding;
mod registers;
mod sleep;
mod updates;

/// The meter's periodic work runs once a second (the Current Time resolution).
const TICK: Duration = Duration::from_secs(1);
/// The signal moves every this many ticks.
const RADIO_STEP_TICKS: u64 = 5;
/// The energy register is written to NV every this many ticks (flash wear vs. loss on power cut).
const ENERGY_PERSIST_TICKS: u64 = 5;
/// A stopping session is given this long to get its De-register acknowledged.
const DEREGISTER_GRACE: Duration = Duration::from_secs(10);
/// Output the PTY writer may hold while nobody reads the port; more is dropped
/// (as a UART with no reader loses bytes) so the meter never blocks on it.
const OUTPUT_QUEUE: usize = 1024;
/// The simulated load: watt-hours added to the register each second.
const ENERGY_WH_PER_TICK: u64 = 1;

/// What the meter's loop is woken by.
#[derive(Debug)]
pub enum Input {
    /// A line (or an overlong one) typed on the modem's port.
    Line(Frame),
    /// A datagram for a client session.
    Datagram {
        session: u64,
        peer: SocketAddr,
        data: Vec<u8>,
    },
    /// The PTY could not be read any more.
    PtyClosed(String),
    /// Progress or the end of a firmware / software download.
    Download(crate::firmware::download::DownloadEvent),
}

/// Runs the meter until its parent goes away (with `--exit-with-parent`), the
/// watched process does (`--exit-with-pid`), or forever; power-off is a
/// SIGKILL from the power driver. `factory` is the factory image to write to
/// NV at first start ([`crate::factory`]).
pub fn run(args: MeterArgs, factory: Option<FactoryImage>) -> Result<(), SimError> {
    let registry = Registry::load_dir(&args.objects_dir).map_err(|e| SimError::Objects {
        dir: args.objects_dir.clone(),
        message: e.to_string(),
    })?;
    let registry = objects::registry_without(registry, &args.device.without);
    let nv = match NvStore::open(&args.state_dir) {
        Ok(nv) => nv,
        Err(e @ SimError::NvCorrupt { .. }) => {
            // A device with unreadable settings boots factory-fresh rather than not at all.
            tracing::error!(error = %e, "NV unreadable; booting with factory settings");
            NvStore::factory(&args.state_dir)
        }
        Err(e) => return Err(e),
    };
    let mut nv = nv;
    if let Some(image) = &factory {
        image.install(&mut nv)?;
    }
    // The bootloader: settles an update (new slot or rollback) before the application runs.
    crate::firmware::boot::run(&args.state_dir, &mut nv);
    let (inbox_tx, inbox) = mpsc::channel();
    let pty = match &args.pty_link {
        Some(link) => Some(Pty::open_or_inherit(link)?),
        None => {
            tracing::info!("no modem port: running from the factory settings in NV");
            None
        }
    };
    let out = match &pty {
        Some(pty) => {
            tracing::info!(pty = %pty.slave_path().display(), link = %pty.link().display(), "modem port ready");
            spawn_pty_reader(pty.master()?, inbox_tx.clone())?;
            Some(spawn_pty_writer(pty.master()?)?)
        }
        None => None,
    };

    let watch = Watch {
        parent: args.exit_with_parent.then(nix::unistd::getppid),
        pid: args
            .exit_with_pid
            .and_then(|p| i32::try_from(p).ok())
            .map(nix::unistd::Pid::from_raw),
    };
    let identity = Identity::derive(args.seed, args.serial.as_deref());
    let modem = ModemState::boot(nv.data().lwm2m.clone(), identity.clone());
    let radio = Radio::new(args.seed);
    let now = Instant::now();
    let downloads = updates::reporter(inbox_tx.clone());
    let mut meter = Meter {
        seed: args.seed,
        device: args.device.clone(),
        state_dir: args.state_dir.clone(),
        lab_network: LabNetwork::load(&args.state_dir),
        identity,
        registry,
        nv,
        modem,
        radio,
        out,
        inbox_tx,
        active: None,
        retiring: Vec::new(),
        next_session_id: 1,
        ticks: 0,
        next_tick: now + TICK,
        clock_offset_s: 0,
        energy_wh: 0,
        reboot_pending: false,
        conn: connectivity::Connectivity::default(),
        registers: registers::Registers::default(),
        sleep: sleep::Sleep::default(),
        firmware: crate::firmware::FirmwareUpdate::new(
            &args.state_dir,
            downloads.clone(),
            args.seed,
        ),
        software: crate::software::SoftwareManagement::new(&args.state_dir, downloads, args.seed),
    };
    meter.energy_wh = meter.nv.data().energy_wh;
    meter.boot(now);
    let result = meter.run_loop(&inbox, watch);
    if let Some(pty) = pty {
        pty.remove_link();
    }
    result
}

/// The processes whose end ends the meter (a harness that died leaves no
/// meter running).
#[derive(Debug, Clone, Copy)]
struct Watch {
    /// The parent at start (`--exit-with-parent`): gone when the parent changes.
    parent: Option<nix::unistd::Pid>,
    /// `--exit-with-pid`: gone when signal 0 finds no such process.
    pid: Option<nix::unistd::Pid>,
}

impl Watch {
    fn gone(&self) -> Option<&'static str> {
        if self.parent.is_some_and(|p| nix::unistd::getppid() != p) {
            return Some("parent process gone");
        }
        if self
            .pid
            .is_some_and(|p| nix::sys::signal::kill(p, None) == Err(nix::errno::Errno::ESRCH))
        {
            return Some("watched process gone");
        }
        None
    }
}

struct Meter {
    seed: u64,
    /// How this meter differs from the default one (`--without`, `--server-instance`).
    device: DeviceOptions,
    state_dir: std::path::PathBuf,
    /// What the lab set on the network (re-read every second; see
    /// [`crate::network_control`]).
    lab_network: LabNetwork,
    identity: Identity,
    registry: Registry,
    nv: NvStore,
    modem: ModemState,
    radio: Radio,
    /// The modem port's writer; `None` for a meter without a modem.
    out: Option<SyncSender<Vec<u8>>>,
    inbox_tx: Sender<Input>,
    active: Option<Session>,
    /// Sessions stopped but waiting for their De-register to be acknowledged.
    retiring: Vec<(Session, Instant)>,
    next_session_id: u64,
    ticks: u64,
    next_tick: Instant,
    /// Current Time (/3/0/13) minus the system clock, after a server wrote it.
    clock_offset_s: i64,
    /// The energy register; NV holds the value as of the last persist.
    energy_wh: u64,
    reboot_pending: bool,
    /// Object 5 and its A/B slots.
    firmware: crate::firmware::FirmwareUpdate,
    /// Object 9.
    software: crate::software::SoftwareManagement,
    /// eUICC, network attach, band configuration (meter/connectivity.rs).
    conn: connectivity::Connectivity,
    /// Reading frames (meter/registers.rs).
    registers: registers::Registers,
    /// PSM acted out on the radio (meter/sleep.rs).
    sleep: sleep::Sleep,
}

impl Meter {
    fn run_loop(&mut self, inbox: &Receiver<Input>, watch: Watch) -> Result<(), SimError> {
        loop {
            let now = Instant::now();
            let deadline = self.next_deadline();
            match inbox.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(input) => self.handle_input(Instant::now(), input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if now >= self.next_tick {
                self.tick(now);
                if let Some(why) = watch.gone() {
                    tracing::info!("{why}; shutting down");
                    self.persist_energy();
                    return Ok(());
                }
            }
            self.run_timers(now);
            self.pump(now);
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut d = self.next_tick;
        let sessions = self
            .active
            .iter()
            .chain(self.retiring.iter().map(|(s, _)| s));
        for t in sessions.filter_map(Session::poll_timeout) {
            d = d.min(t);
        }
        for (_, give_up) in &self.retiring {
            d = d.min(*give_up);
        }
        if let Some(t) = self.firmware.restart_deadline() {
            d = d.min(t);
        }
        if let Some(t) = self.connectivity_deadline() {
            d = d.min(t);
        }
        if let Some(t) = self.sleep_deadline() {
            d = d.min(t);
        }
        d
    }

    /// Boot: count it, announce it, and start the client if it is enabled.
    fn boot(&mut self, now: Instant) {
        if let Err(e) = self.nv.update(|d| d.boot_count += 1) {
            tracing::error!(error = %e, "cannot write boot count to NV");
        }
        let data = self.nv.data();
        tracing::info!(boot_count = data.boot_count, firmware = %data.firmware_version, "booted");
        self.lab_network = LabNetwork::load(&self.state_dir);
        self.modem = ModemState::boot(data.lwm2m.clone(), self.identity.clone());
        // PSM and eDRX as last set: the modem keeps them in NV (modem/psm.rs).
        self.modem.power_saving = data.power_saving;
        self.modem.signal = self.radio.csq();
        self.urc("+SYSSTART");
        self.resume_updates();
        // Attaches (+CEREG), then starts the client if it is enabled.
        self.connectivity_boot(now);
    }

    fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Line(Frame::Line(line)) if self.firmware_at(&line) => {}
            Input::Line(Frame::Line(line)) => {
                let resp = handle_line(&mut self.modem, &line);
                tracing::debug!(line = %crate::modem::security_commands::redact_line(&line), response = ?resp.lines(), "AT");
                // NV is written before the answer, as a modem commits a setting
                // before saying OK: a power cut right after OK must not lose it.
                let (save, rest): (Vec<Action>, Vec<Action>) = resp
                    .actions
                    .iter()
                    .cloned()
                    .partition(|a| *a == Action::SaveSettings);
                for action in save {
                    self.act(now, action);
                }
                self.write(resp.to_bytes());
                for action in rest {
                    self.act(now, action);
                }
            }
            Input::Line(Frame::Overlong) => {
                tracing::warn!("overlong command line discarded");
                self.write(frame("ERROR"));
            }
            Input::Datagram {
                session,
                peer,
                data,
            } if !self.radio_hears(now, session, peer, &data) => {
                tracing::debug!(session, %peer, "datagram not received: radio asleep (PSM) or between paging windows (eDRX)");
            }
            Input::Datagram {
                session,
                peer,
                data,
            } => {
                if let Some(s) = self.session_mut(session) {
                    s.handle_datagram(now, peer, &data);
                } else {
                    tracing::debug!(session, %peer, "datagram for a closed session dropped");
                }
            }
            Input::PtyClosed(why) => tracing::error!(reason = %why, "modem port closed"),
            Input::Download(event) => self.on_download(now, event),
        }
    }

    fn session_mut(&mut self, id: u64) -> Option<&mut Session> {
        if let Some(s) = self.active.as_mut().filter(|s| s.id == id) {
            return Some(s);
        }
        self.retiring
            .iter_mut()
            .map(|(s, _)| s)
            .find(|s| s.id == id)
    }

    fn act(&mut self, now: Instant, action: Action) {
        match action {
            Action::SaveSettings => {
                let settings = self.modem.settings.clone();
                let modem = &self.modem;
                if let Err(e) = self.nv.update(|d| {
                    d.lwm2m = settings;
                    connectivity::save_modem_settings(d, modem);
                }) {
                    tracing::error!(error = %e, "cannot write LwM2M settings to NV");
                }
            }
            Action::StartClient => {
                let wanted = self.wanted_settings();
                if self
                    .active
                    .as_ref()
                    .is_some_and(|s| Some(&s.settings) == wanted.as_ref())
                {
                    tracing::debug!("client already running with these settings");
                } else {
                    self.retire_active(now);
                    self.start_session(now);
                }
            }
            Action::StopClient => self.retire_active(now),
            Action::Bootstrap => self.bootstrap_now(now),
            // Attaches (+CEREG), then starts the client if it is enabled.
            Action::RadioOn => self.connectivity_radio_on(now),
            Action::RadioOff => {
                // No radio, nothing can be sent: sessions end without De-register.
                self.active = None;
                self.retiring.clear();
                self.connectivity_radio_off();
                self.urc("+CEREG: 0");
            }
            Action::SwitchProfile(to) => self.begin_switch(now, to),
            Action::Send(paths) => self.send_paths(now, &paths),
        }
    }

    fn wanted_settings(&self) -> Option<SessionSettings> {
        // Server, Bootstrap-Server and credentials (meter/onboarding.rs).
        self.session_settings()
    }

    fn start_session(&mut self, now: Instant) {
        if !self.attached() {
            tracing::info!("not attached; the client starts once the network is");
            return;
        }
        let Some(settings) = self.wanted_settings() else {
            self.urc("+LWM2M: registration failed no server configured");
            return;
        };
        // Servers, accounts and credentials (meter/onboarding.rs).
        let security = match self.client_security(&settings) {
            Ok(s) => s,
            Err(reason) => {
                tracing::warn!(%reason, "cannot reach LwM2M server");
                self.urc(&format!("+LWM2M: registration failed {reason}"));
                return;
            }
        };
        let server = security.server;
        let id = self.next_session_id;
        self.next_session_id += 1;
        let data = self.nv.data();
        let facts = DeviceFacts {
            identity: &self.identity,
            firmware_version: &data.firmware_version,
            lifetime_s: settings.lifetime_s,
            now_unix: self.now_unix(),
            server_instance: self.device.server_instance,
        };
        let mut written = data.written_values();
        // The server's lifetime write and the AT setting are one setting; the latest wins via NV.
        written.retain(|(p, _)| !objects::is_lifetime(p));
        let mut store =
            objects::initial_store(self.registry.clone(), &facts, &self.radio, &written);
        Meter::prepare_store(&mut store, &security);
        if security.bootstrap.is_some() {
            // The Server instance comes from bootstrap, wherever it put it.
            store.delete_instance(1, self.device.server_instance);
        }
        self.add_connectivity_objects(&mut store);
        self.add_register_objects(&mut store);
        let psk = self.server_account_psk();
        self.firmware.set_download_psk(psk);
        self.fill_update_objects(&mut store);
        objects::remove_resources(&mut store, &self.device.without);
        let config = ClientConfig {
            endpoint: settings.endpoint.clone(),
            server,
            lifetime: Duration::from_secs(u64::from(settings.lifetime_s)),
            lwm2m_version: "1.1".to_owned(),
            // Queue mode (Core §6.5) when PSM will put the radio to sleep.
            binding: if self.queue_mode() { "UQ" } else { "U" }.to_owned(),
            registry: self.registry.clone(),
            preferred_format: ContentFormat::Tlv,
            // Distinct per boot and session, so message ids and tokens never repeat across reboots.
            seed: self.seed ^ data.boot_count.rotate_left(32) ^ id,
            bootstrap: security.bootstrap,
            retry: security.retry,
        };
        match Session::start(
            id,
            settings,
            config,
            store,
            &security.accounts,
            self.inbox_tx.clone(),
            now,
        ) {
            Ok(mut s) => {
                s.client()
                    .set_composite_support(!self.device.without_composite);
                self.active = Some(s);
                self.configure_update_objects();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start LwM2M client");
                self.urc(&format!("+LWM2M: registration failed {e}"));
            }
        }
    }

    /// Stops the active session (De-register) and keeps it until acknowledged.
    fn retire_active(&mut self, now: Instant) {
        if let Some(mut s) = self.active.take() {
            s.client().stop(now);
            s.flush();
            self.retiring.push((s, now + DEREGISTER_GRACE));
        }
    }

    fn run_timers(&mut self, now: Instant) {
        self.sleep_timers(now);
        self.update_timers(now);
        if let Some(s) = self.active.as_mut() {
            s.handle_timeout(now);
        }
        for (s, _) in &mut self.retiring {
            s.handle_timeout(now);
        }
    }

    /// Sends what the sessions queued and acts on what they report.
    fn pump(&mut self, now: Instant) {
        // Bounded: events may queue more sends, which may not create new events forever.
        // Events are acted on before the datagrams go out: a Write is in NV
        // before its 2.04 leaves, so a power cut right after the answer
        // cannot lose what the server was told is stored.
        for _ in 0..8 {
            // DTLS outcomes first: `dtls failed` precedes the failure it causes.
            self.report_link_events();
            let mut events = Vec::new();
            if let Some(s) = self.active.as_mut() {
                events.extend(s.take_events().into_iter().map(|e| (true, e)));
            }
            for (s, _) in &mut self.retiring {
                events.extend(s.take_events().into_iter().map(|e| (false, e)));
            }
            let idle = events.is_empty();
            for (active, e) in events {
                self.on_event(now, active, e);
            }
            if let Some(s) = self.active.as_mut() {
                s.flush();
            }
            for (s, _) in &mut self.retiring {
                s.flush();
            }
            if idle {
                break;
            }
        }
        self.retiring.retain(|(s, give_up)| {
            let done = matches!(
                s.state(),
                RegistrationState::Idle | RegistrationState::Failed { .. }
            );
            !done && now < *give_up
        });
        if std::mem::take(&mut self.reboot_pending) {
            self.reboot(now);
        }
        self.connectivity_after_pump(now);
        self.sleep_after_pump(now);
    }

    fn on_event(&mut self, now: Instant, active: bool, event: ClientEvent) {
        if active && self.on_update_event(now, &event) {
            return;
        }
        match event {
            ClientEvent::Registered { location } => {
                self.urc(&format!("+LWM2M: registered {location}"))
            }
            ClientEvent::RegistrationFailed { reason } => {
                self.urc(&format!("+LWM2M: registration failed {reason}"))
            }
            ClientEvent::Updated => self.urc("+LWM2M: updated"),
            ClientEvent::Deregistered => self.urc("+LWM2M: deregistered"),
            ClientEvent::Written { path } if active => {
                self.persist_written(path);
                self.on_connectivity_write(path);
                self.on_account_write(path);
            }
            ClientEvent::BootstrapFinished { accounts } if active => {
                self.on_bootstrapped(accounts);
                // /5/0/8 may now offer CoAPS (the account's PSK).
                self.apply_updates(now);
            }
            ClientEvent::BootstrapFailed { reason } => {
                self.urc(&format!("+LWM2M: bootstrap failed {reason}"))
            }
            ClientEvent::Executed { path, arguments }
                if active && Meter::is_connectivity_execute(&path) =>
            {
                self.on_connectivity_execute(now, path, arguments)
            }
            ClientEvent::Executed { path, arguments } if active && path == objects::reboot() => {
                tracing::info!(?arguments, "reboot executed by the server");
                self.reboot_pending = true;
            }
            ClientEvent::Executed { path, arguments } => {
                // Registration Update Trigger and Disable (/1/x/8, /1/x/4)
                // are the LwM2M client's to act on; nothing else here.
                tracing::info!(%path, ?arguments, "execute: no device-side action")
            }
            ClientEvent::Malformed { peer, reason } => {
                tracing::warn!(%peer, %reason, "malformed datagram")
            }
            other => tracing::info!(event = ?other, "client event"),
        }
    }

    /// Writes what the server wrote to NV so it survives power cuts.
    fn persist_written(&mut self, path: Path) {
        let Some(s) = self.active.as_mut() else {
            return;
        };
        let records = s.client().store().read(&path);
        let system_now = system_unix();
        let mut clock_offset = None;
        let mut lifetime = None;
        let mut to_keep = Vec::new();
        for r in records {
            if r.path == objects::current_time() {
                // The clock is not a setting: keep the offset, not the instant.
                if let Some(t) = r.value.as_f64() {
                    clock_offset = Some(t as i64 - system_now);
                }
                continue;
            }
            if objects::is_lifetime(&r.path) {
                lifetime = r
                    .value
                    .as_f64()
                    .filter(|l| *l >= 1.0 && *l <= f64::from(u32::MAX))
                    .map(|l| l as u32);
            }
            to_keep.push(r);
        }
        if let Some(off) = clock_offset {
            self.clock_offset_s = off;
        }
        if let Some(l) = lifetime {
            self.modem.settings.lifetime_s = l;
        }
        if to_keep.is_empty() && lifetime.is_none() {
            return;
        }
        tracing::info!(%path, values = to_keep.len(), "persisting server write");
        let result = self.nv.update(|d| {
            for r in &to_keep {
                if !objects::is_lifetime(&r.path) {
                    d.record_written(r.path, &r.value);
                }
            }
            if let Some(l) = lifetime {
                d.lwm2m.lifetime_s = l;
            }
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist server write");
        }
    }

    /// Reboot by /3/0/4: the Execute was already answered (sends go out before events).
    fn reboot(&mut self, now: Instant) {
        if let Some(mut s) = self.active.take() {
            s.client().stop(now);
            s.flush();
        }
        self.retiring.clear();
        self.persist_energy();
        self.urc("+LWM2M: reboot");
        self.boot(now);
    }

    /// Once a second: the clock, the energy register, the signal.
    fn tick(&mut self, now: Instant) {
        self.ticks += 1;
        // Catch up without bursts if the loop was late.
        self.next_tick = (self.next_tick + TICK).max(now);
        let unix = self.now_unix();
        self.set_value(now, objects::current_time(), Value::Time(unix));
        if self.ticks.is_multiple_of(RADIO_STEP_TICKS) {
            self.radio.step();
            self.modem.signal = self.radio.csq();
            let (rssi, lq) = (self.radio.rssi_dbm(), self.radio.link_quality());
            self.set_value(now, objects::radio_signal_strength(), Value::Integer(rssi));
            self.set_value(now, objects::link_quality(), Value::Integer(lq));
        }
        self.energy_wh += ENERGY_WH_PER_TICK;
        if self.ticks.is_multiple_of(ENERGY_PERSIST_TICKS) {
            self.persist_energy();
        }
        self.lab_network = LabNetwork::load(&self.state_dir);
        self.connectivity_tick(now);
        self.registers_tick(now);
    }

    fn set_value(&mut self, now: Instant, path: Path, value: Value) {
        if let Some(s) = self.active.as_mut() {
            if let Err(e) = s.client().set_value(now, path, value) {
                tracing::debug!(%path, error = %e, "value not in the store");
            }
        }
    }

    fn persist_energy(&mut self) {
        let e = self.energy_wh;
        if self.nv.data().energy_wh != e {
            if let Err(err) = self.nv.update(|d| d.energy_wh = e) {
                tracing::error!(error = %err, "cannot write energy register to NV");
            }
        }
    }

    fn now_unix(&self) -> i64 {
        system_unix() + self.clock_offset_s
    }

    fn urc(&mut self, line: &str) {
        tracing::info!(urc = %line, "URC");
        self.write(frame(line));
    }

    fn write(&mut self, bytes: Vec<u8>) {
        let Some(out) = &self.out else {
            return;
        };
        match out.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("modem output queue full (nobody reading the port); output dropped")
            }
            Err(TrySendError::Disconnected(_)) => tracing::error!("modem output writer gone"),
        }
    }
}

fn system_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn spawn_pty_reader(mut master: std::fs::File, inbox: Sender<Input>) -> Result<(), SimError> {
    std::thread::Builder::new()
        .name("pty-read".into())
        .spawn(move || {
            let mut framer = LineFramer::new();
            let mut buf = [0u8; 1024];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => {
                        let _ = inbox.send(Input::PtyClosed("end of file".into()));
                        return;
                    }
                    Ok(n) => {
                        for f in framer.push(&buf[..n]) {
                            if inbox.send(Input::Line(f)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = inbox.send(Input::PtyClosed(e.to_string()));
                        return;
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| SimError::Pty(format!("spawn reader: {e}")))
}

fn spawn_pty_writer(mut master: std::fs::File) -> Result<SyncSender<Vec<u8>>, SimError> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(OUTPUT_QUEUE);
    std::thread::Builder::new()
        .name("pty-write".into())
        .spawn(move || {
            for bytes in rx {
                if let Err(e) = master.write_all(&bytes).and_then(|()| master.flush()) {
                    tracing::warn!(error = %e, "modem port write failed");
                }
            }
        })
        .map_err(|e| SimError::Pty(format!("spawn writer: {e}")))?;
    Ok(tx)
}
