//! One rig during a run: its embedded server, its drivers and what the step
//! engine remembers between steps. Created on the first case that uses the
//! rig, so `--list` and a bad case file never touch a bench.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lwm2m::bootstrap::{BootstrapScript, BootstrapServerConfig, ServerAccount};
use lwm2m::server::{RequestId, ServerConfig};
use lwm2m::{ContentFormat, Path, Registry};
use rig::model::SecurityMode;
use rig::model::{ModemPort, PowerSpec, RigFile};
use rig::{Debug, Modem, Network, Power};
use server::{
    BootstrapServerHandle, EmbeddedBootstrapServer, EventSeq, LwM2mServer, SecurityConfig,
    ServerHandle,
};

use crate::credentials::DeviceCredentials;

use crate::report::RigInfo;

/// Short Server ID of the account meterbench provisions (LwM2M 1.1 Core §E.2, /1/x/0).
const SHORT_SERVER_ID: u16 = 1;

/// How long a run waits for a bench another job holds.
const BENCH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether the rig names a real part: a serial port or a power switch outside this process.
fn uses_hardware(rig: &RigFile) -> bool {
    rig.modem
        .as_ref()
        .is_some_and(|m| m.port != ModemPort::Virtual)
        || matches!(rig.power, Some(PowerSpec::Command(_)))
}

/// Why the device is restarting: the rig gives each its own wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Power-on, a power cut, Execute Reboot: `device.reboot_within`.
    Reboot,
    /// Execute Update (/5/x/2): `firmware.update_within`, else `device.reboot_within`.
    FirmwareUpdate,
}

/// One firmware role as this rig maps it: the image of its store, and the
/// version the device reports once it runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleImage {
    pub image: String,
    pub version: String,
}

/// Power behind its own lock, so that an interrupt can cut it while a step
/// holds the rest of the session.
pub type SharedPower = Arc<Mutex<Box<dyn Power>>>;

pub struct Session {
    pub rig: RigFile,
    pub endpoint: String,
    pub registry: Registry,
    pub server: ServerHandle,
    pub power: Option<SharedPower>,
    pub modem: Option<Box<dyn Modem>>,
    pub debug: Option<Box<dyn Debug>>,
    /// The lab's control of the device's network (rigs with a `network:` part).
    pub network: Option<Box<dyn Network>>,
    /// Set by a `network` step: the case end puts the network back to accept-all.
    pub network_changed: bool,
    /// What the device was last made to restart by (a reboot, a firmware
    /// update, power), until it registers again: which of the rig's waits
    /// an `await: registered` without `within` takes.
    pub restart: Option<Restart>,
    /// The device log file the virtual meter writes (real benches: none yet).
    pub device_log: Option<PathBuf>,
    pub info: RigInfo,
    /// Events up to here have been consumed by earlier awaits.
    pub cursor: EventSeq,
    /// Where the server's events stood when the previous step began: a
    /// bootstrap started by one step ends in a registration the next awaits.
    pub previous_step_seq: EventSeq,
    /// Where the server's and the bootstrap server's message logs stood when
    /// the previous step began: a datagram that step provoked may pass
    /// before the next step starts watching for it.
    pub previous_step_logs: (usize, usize),
    /// Where the bootstrap server's events stood when the previous step began.
    pub previous_step_bootstrap_seq: EventSeq,
    /// Set by power and reboot steps: an existing registration no longer counts.
    pub require_new_registration: bool,
    /// Observations started by `observe` steps in the running case.
    pub observations: HashMap<Path, RequestId>,
    /// The run's seed: random power cuts derive theirs from it.
    pub seed: u64,
    /// meterbench's bootstrap server, when the rig onboards the device through it.
    pub bootstrap: Option<BootstrapServerHandle>,
    /// Bootstrap events up to here have been consumed by earlier awaits.
    pub bootstrap_cursor: EventSeq,
    /// The device's PSKs for this run (never printed; fingerprints at most).
    pub credentials: Option<DeviceCredentials>,
    /// Values `debug: {save: NAME}` steps remembered in the running case.
    pub saved: HashMap<String, String>,
    /// How the device came back from each cut the running case classified.
    pub recoveries: Vec<crate::case::step::Recovery>,
    /// The server PSK the last rotation replaced: it must stay refused.
    pub replaced_server_psk: Option<dtls::Psk>,
    /// The firmware store and its file servers, started by the first `firmware` step.
    pub firmware: Option<server::firmware::FirmwareDelivery>,
    /// The object 5 transition watch of the running case.
    pub firmware_watch: Option<crate::steps::firmware::FirmwareWatch>,
    /// Progress bars of the running case's transfers (aborted when it ends).
    pub progress_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Images the running case delivered (their transfer figures go to the JUnit).
    pub firmware_images: Vec<String>,
    firmware_store: PathBuf,
    /// Which round of a `repeat` runs (0 outside one): part of each cut's seed.
    pub round: u32,
    /// The step of a `repeat` that runs (none outside one).
    pub repeat_position: Option<crate::steps::RepeatPosition>,
    _lock: Option<rig::RigLock>,
}

/// Why a firmware role cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleError {
    /// The rig maps no image to the role: the case does not apply.
    NotMapped(String),
    /// The store or the mapped image is unusable: the bench's fault.
    Store(String),
}

/// Everything the runner needs to build sessions.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub run_id: String,
    pub fixtures: PathBuf,
    pub registry: Registry,
    /// Where per-rig state lives (the virtual meter's NV storage, its PTY link, its log).
    pub state_root: PathBuf,
    /// How to start the virtual meter: this executable and its hidden subcommand.
    pub meter_program: PathBuf,
    pub meter_args: Vec<String>,
    pub seed: u64,
}

impl Session {
    pub async fn open(rig: RigFile, config: &SessionConfig) -> Result<Session, String> {
        let lock = if uses_hardware(&rig) {
            // Two CI jobs never share a bench: the second waits its turn.
            let lock = rig::RigLock::acquire_within(
                &rig::lock::default_lock_dir(),
                &rig.name,
                BENCH_LOCK_WAIT,
            )
            .map_err(|e| format!("rig {} is in use: {e}", rig.name))?;
            Some(lock)
        } else {
            // Each run starts its own virtual meter: nothing to share.
            None
        };
        let endpoint = rig.device.endpoint_for(&config.run_id);
        let secure = rig.device.security == SecurityMode::Psk;
        let security = if secure {
            SecurityConfig::psk()
        } else {
            SecurityConfig::NoSec
        };
        let server = LwM2mServer::bind_secure(
            rig.server.bind,
            ServerConfig {
                registry: config.registry.clone(),
                default_format: ContentFormat::Tlv,
                seed: config.seed,
            },
            security.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let credentials = if secure || rig.device.bootstrap {
            Some(DeviceCredentials::for_device(
                &rig.device.credentials,
                &endpoint,
            )?)
        } else {
            None
        };
        if let (true, Some(c)) = (secure, &credentials) {
            server.set_psk(&endpoint, c.server.clone());
        }
        let bootstrap = if rig.device.bootstrap {
            let bs = EmbeddedBootstrapServer::bind(
                SocketAddr::new(rig.server.bind.ip(), 0),
                BootstrapServerConfig {
                    registry: config.registry.clone(),
                    default_format: ContentFormat::Tlv,
                    seed: config.seed ^ 0x5eed,
                },
                security,
            )
            .await
            .map_err(|e| format!("bootstrap server: {e}"))?;
            if let (true, Some(c)) = (secure, &credentials) {
                bs.set_psk(&endpoint, c.bootstrap.clone());
            }
            Some(bs)
        } else {
            None
        };
        let state_dir = config.state_root.join(&rig.name);
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;

        let device_options = match &rig.power {
            Some(PowerSpec::Virtual(o)) => sim::DeviceOptions::from_rig(o)
                .map_err(|e| format!("{}: power: {e}", rig.source.display()))?,
            _ => sim::DeviceOptions::default(),
        };
        let meter = sim::VirtualMeterSpec {
            program: config.meter_program.clone(),
            args_prefix: config.meter_args.clone(),
            state_dir: state_dir.clone(),
            objects_dir: config.fixtures.join("objects"),
            seed: config.seed,
        };
        let mut device_log = None;
        let power: Option<SharedPower> = match &rig.power {
            None => None,
            Some(PowerSpec::Virtual(_)) => {
                device_log = Some(meter.device_log_path());
                Some(Arc::new(Mutex::new(Box::new(
                    sim::VirtualPower::for_device(meter.clone(), device_options),
                ))))
            }
            Some(PowerSpec::Command(spec)) => Some(Arc::new(Mutex::new(Box::new(
                rig::CommandPower::new(spec.clone()),
            )))),
        };
        let modem: Option<Box<dyn Modem>> = match &rig.modem {
            None => None,
            Some(spec) => {
                let dialect = spec
                    .load_dialect(&config.fixtures, rig.dir())
                    .map_err(|e| e.to_string())?;
                let port = match &spec.port {
                    ModemPort::Virtual => meter.pty_path(),
                    ModemPort::Path(p) => p.clone(),
                };
                Some(Box::new(rig::SerialModem::new(port, spec.baud, dialect)))
            }
        };
        let debug: Option<Box<dyn Debug>> = match &rig.debug {
            None => None,
            Some(rig::model::DebugSpec::Virtual) => {
                Some(Box::new(sim::VirtualDebug::new(&state_dir)))
            }
        };
        let network: Option<Box<dyn Network>> = match &rig.network {
            None => None,
            Some(rig::model::NetworkSpec::Virtual) => {
                Some(Box::new(sim::VirtualNetwork::new(&state_dir)))
            }
            Some(rig::model::NetworkSpec::Command(spec)) => {
                Some(Box::new(rig::CommandNetwork::new(spec.clone())))
            }
        };
        let firmware_store = match &rig.firmware {
            Some(f) => f.store_dir(rig.dir(), &config.fixtures.join("firmware")),
            None => config.fixtures.join("firmware"),
        };
        let info = RigInfo {
            name: rig.name.clone(),
            file: rig.source.clone(),
            endpoint: endpoint.clone(),
            server_address: Some(server.local_addr().to_string()),
            ..RigInfo::default()
        };
        let cursor = server.current_seq();
        let bootstrap_cursor = bootstrap
            .as_ref()
            .map(|b| b.current_seq())
            .unwrap_or_default();
        let session = Session {
            rig,
            endpoint,
            registry: config.registry.clone(),
            server,
            power,
            modem,
            debug,
            network,
            network_changed: false,
            restart: None,
            device_log,
            info,
            cursor,
            require_new_registration: false,
            observations: HashMap::new(),
            seed: config.seed,
            bootstrap,
            bootstrap_cursor,
            previous_step_seq: cursor,
            previous_step_logs: (0, 0),
            previous_step_bootstrap_seq: bootstrap_cursor,
            credentials,
            replaced_server_psk: None,
            saved: HashMap::new(),
            recoveries: Vec::new(),
            firmware: None,
            firmware_watch: None,
            firmware_images: Vec::new(),
            progress_tasks: Vec::new(),
            firmware_store,
            round: 0,
            repeat_position: None,
            _lock: lock,
        };
        if session.bootstrap.is_some() {
            session
                .set_bootstrap_script(BootstrapScript::standard(&session.server_account()))
                .await?;
        }
        Ok(session)
    }

    /// What the report says about this rig now, datagram counts included.
    pub fn report_info(&self) -> RigInfo {
        let stats = self.server.stats();
        RigInfo {
            datagrams_in: stats.datagrams_in,
            datagrams_out: stats.datagrams_out,
            ..self.info.clone()
        }
    }

    /// The firmware delivery, started on first use (a fresh clone generates
    /// the fixture images from the committed manifest).
    pub async fn firmware_delivery(
        &mut self,
    ) -> Result<&server::firmware::FirmwareDelivery, String> {
        if self.firmware.is_none() {
            let bind = self.server.local_addr().ip();
            // The CoAPS file server accepts the PSKs the LwM2M server does:
            // a device pulls `coaps://` with its server account.
            let delivery = server::firmware::FirmwareDelivery::start_with_credentials(
                &self.firmware_store,
                bind,
                self.rig.server.advertise.clone(),
                self.server.credentials().clone(),
            )
            .await
            .map_err(|e| format!("firmware store {}: {e}", self.firmware_store.display()))?;
            self.firmware = Some(delivery);
        }
        Ok(self.firmware.as_ref().expect("started above"))
    }

    /// Sends a command of the modem's dialect by name and requires OK.
    pub fn modem_command(&mut self, name: &str, vars: &[(&str, String)]) -> Result<(), String> {
        let rig = self.rig.name.clone();
        let modem = self
            .modem
            .as_mut()
            .ok_or_else(|| format!("rig {rig} has no modem"))?;
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let line = modem
            .dialect()
            .render(name, &vars)
            .map_err(|e| e.to_string())?;
        let timeout = modem.dialect().command_timeout;
        let r = tokio::task::block_in_place(|| modem.command(&line, timeout))
            .map_err(|e| e.to_string())?;
        if r.is_ok() {
            Ok(())
        } else {
            Err(format!("{line:?} answered {}", r.summary()))
        }
    }

    /// Values for the dialect's placeholders that describe this device and run.
    pub fn device_vars(&self) -> BTreeMap<String, String> {
        [
            ("uri".to_string(), self.server_uri()),
            ("endpoint".to_string(), self.endpoint.clone()),
            (
                "lifetime".to_string(),
                self.rig.device.lifetime.as_secs().to_string(),
            ),
        ]
        .into()
    }

    /// The URI the device is told to register with.
    pub fn server_uri(&self) -> String {
        let addr = self.server.local_addr();
        let host = self
            .rig
            .server
            .advertise
            .clone()
            .unwrap_or_else(|| addr.ip().to_string());
        let scheme = if self.server.is_secure() {
            "coaps"
        } else {
            "coap"
        };
        format!("{scheme}://{host}:{}", addr.port())
    }

    /// The bootstrap server's URI as the device must use it.
    pub fn bootstrap_uri(&self) -> Option<String> {
        let bs = self.bootstrap.as_ref()?;
        let addr = bs.local_addr();
        let host = self
            .rig
            .server
            .advertise
            .clone()
            .unwrap_or_else(|| addr.ip().to_string());
        let scheme = if bs.is_secure() { "coaps" } else { "coap" };
        Some(format!("{scheme}://{host}:{}", addr.port()))
    }

    /// The LwM2M server account the bootstrap server provisions: this run's
    /// server URI and the device's server PSK.
    pub fn server_account(&self) -> ServerAccount {
        let account = match (&self.credentials, self.server.is_secure()) {
            (Some(c), true) => ServerAccount::psk(
                SHORT_SERVER_ID,
                self.server_uri(),
                c.server.identity.as_bytes(),
                c.server.key.expose(),
            ),
            _ => ServerAccount::nosec(SHORT_SERVER_ID, self.server_uri()),
        };
        let instances = self.rig.server.account;
        ServerAccount {
            lifetime: self.rig.device.lifetime,
            security_instance: instances.security_instance,
            server_instance: instances.server_instance,
            ..account
        }
    }

    /// The instance of `object` the device registered (the first its object
    /// list names), so that a case finds ids instead of assuming them.
    pub fn instance_of(&self, object: u16) -> Option<u16> {
        let reg = self.server.registration(&self.endpoint)?;
        crate::steps::instances::registered_instance(&reg, object)
    }

    /// The image and version the rig maps firmware role `role` to; the error
    /// says why the case does not apply (the rig maps no such role) or what
    /// is wrong with the rig's store.
    pub async fn firmware_role(&mut self, role: &str) -> Result<RoleImage, RoleError> {
        let rig = self.rig.name.clone();
        let mapped = self
            .rig
            .firmware
            .as_ref()
            .and_then(|f| f.roles.get(role).cloned())
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .rig
                    .firmware
                    .as_ref()
                    .map(|f| f.roles.keys().cloned().collect())
                    .unwrap_or_default();
                RoleError::NotMapped(if known.is_empty() {
                    format!("rig {rig} maps no firmware image to any role (no `firmware.roles`), so none to `{role}`")
                } else {
                    format!(
                        "rig {rig} maps no firmware image to the role `{role}` (its roles: {})",
                        known.join(", ")
                    )
                })
            })?;
        let delivery = self.firmware_delivery().await.map_err(RoleError::Store)?;
        let image = delivery
            .image(&mapped.image)
            .map_err(|e| RoleError::Store(format!("firmware role `{role}` of rig {rig}: {e}")))?;
        Ok(RoleImage {
            image: mapped.image.clone(),
            version: mapped
                .version
                .clone()
                .unwrap_or_else(|| image.entry.version.clone()),
        })
    }

    /// Sets what the bootstrap server runs when the device asks next.
    pub async fn set_bootstrap_script(&self, script: BootstrapScript) -> Result<(), String> {
        let bs = self
            .bootstrap
            .as_ref()
            .ok_or("this rig does not onboard its device by bootstrap")?;
        bs.set_script(&self.endpoint, script)
            .await
            .map_err(|e| e.to_string())
    }

    pub fn power_is_on(&self) -> Option<bool> {
        self.power
            .as_ref()
            .map(|p| p.lock().map(|mut p| p.is_on()).unwrap_or(false))
    }

    pub fn set_power(&self, on: bool) -> Result<(), String> {
        let power = self.power.as_ref().ok_or("this rig has no power control")?;
        let mut p = power.lock().map_err(|_| "power driver lock poisoned")?;
        if on { p.on() } else { p.off() }.map_err(|e| e.to_string())
    }

    /// After power-on: open the modem and point the device at our server
    /// with the dialect's bring-up sequence (the labgrid "strategy" step).
    pub fn bring_up(&mut self) -> Result<(), String> {
        let mut vars = self.device_vars();
        if let Some(uri) = self.bootstrap_uri() {
            vars.insert("bootstrap_uri".into(), uri);
        }
        if let Some(c) = &self.credentials {
            vars.insert("identity".into(), c.bootstrap.identity.clone());
            vars.insert("key".into(), hex::encode(c.bootstrap.key.expose()));
        }
        let by_bootstrap = self.bootstrap.is_some();
        let Some(modem) = self.modem.as_mut() else {
            return Ok(());
        };
        modem.open().map_err(|e| e.to_string())?;
        let timeout = modem.dialect().command_timeout;
        let sequence = if by_bootstrap {
            modem.dialect().bring_up_bootstrap.clone()
        } else {
            modem.dialect().bring_up.clone()
        };
        if by_bootstrap && sequence.is_empty() {
            return Err(format!(
                "dialect {} has no bring_up_bootstrap: it cannot point a device at a bootstrap server",
                modem.dialect().name
            ));
        }
        for name in sequence {
            // Keys go to the modem, never into the transcript or an error.
            let (line, shown) = modem
                .dialect()
                .render_shown(&name, &vars)
                .map_err(|e| e.to_string())?;
            let response = modem
                .command_shown(&line, &shown, timeout)
                .map_err(|e| e.to_string())?;
            if !response.is_ok() {
                return Err(format!(
                    "bring-up command {shown:?} answered {}",
                    response.summary()
                ));
            }
        }
        if self.info.modem_revision.is_none() {
            if let Ok(line) = modem.dialect().render("revision", &vars) {
                if let Ok(r) = modem.command(&line, timeout) {
                    self.info.modem_revision = r.lines.first().cloned();
                }
            }
        }
        Ok(())
    }

    /// The last lines the device printed, on its serial port and in its own
    /// log, for messages that must say what the device did.
    pub fn last_device_lines(&self, n: usize) -> Vec<String> {
        let serial = self
            .modem
            .as_ref()
            .map(|m| m.transcript().received_lines())
            .unwrap_or_default();
        let log: Vec<String> = self
            .device_log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.lines().map(|l| format!("[device log] {l}")).collect())
            .unwrap_or_default();
        let half = n / 2;
        let mut lines = tail(serial, half);
        lines.extend(tail(log, n - half));
        lines
    }

    /// Leaves the bench in the state the rig file asks for.
    pub async fn close(self) {
        if let Some(p) = &self.power {
            let want_on = self.rig.after_run.power == rig::model::PowerState::On;
            if let Ok(mut p) = p.lock() {
                let _ = if want_on { p.on() } else { p.off() };
            }
        }
        if let Some(f) = self.firmware {
            f.shutdown().await;
        }
        self.server.shutdown().await;
    }
}

fn tail(mut lines: Vec<String>, n: usize) -> Vec<String> {
    let skip = lines.len().saturating_sub(n);
    lines.split_off(skip)
}
