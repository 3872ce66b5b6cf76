//! One rig during a run: its bench drivers, its embedded servers, the
//! device's credentials, and what outlives a case. What a case remembers
//! while it runs lives in [`crate::steps::CaseContext`], made fresh per case.
//! Created on the first case that uses the rig, so `--list` and a bad case
//! file never touch a bench.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lwm2m::bootstrap::{BootstrapScript, BootstrapServerConfig, ServerAccount};
use lwm2m::server::ServerConfig;
use lwm2m::{ContentFormat, Registry};
use rig::command_power::{DeviceValues, SecretEnv};
use rig::model::SecurityMode;
use rig::model::{ModemPort, PowerSpec, RigFile};
use rig::wrap::{FaultPlan, PowerTrace};
use rig::{Bench, BenchBuildError, Debug, Modem, Network};
use server::{
    BootstrapServerHandle, EmbeddedBootstrapServer, LwM2mServer, SecurityConfig, ServerHandle,
};

use crate::blocking::off_runtime;
use crate::credentials::{CredentialError, DeviceCredentials, ServerOrigin};

use crate::report::RigInfo;
use crate::rtt_capture::RttRecord;

/// Short Server ID of the account meterbench provisions (LwM2M 1.1 Core §E.2, /1/x/0).
const SHORT_SERVER_ID: u16 = 1;

/// How long a run waits for a bench another job holds.
const BENCH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether the rig names a real part: a serial port, a power switch or a
/// bench supply outside this process.
fn uses_hardware(rig: &RigFile) -> bool {
    rig.modem
        .as_ref()
        .is_some_and(|m| m.port != ModemPort::Virtual)
        || matches!(
            rig.power,
            Some(PowerSpec::Command(_)) | Some(PowerSpec::Scpi(_))
        )
}

pub use crate::firmware_roles::RoleError;

/// Power behind its own lock, so that an interrupt can cut it while a step
/// holds the rest of the session.
pub use rig::SharedPower;

pub struct Session {
    pub rig: RigFile,
    pub endpoint: String,
    pub registry: Registry,
    pub server: ServerHandle,
    pub power: Option<SharedPower>,
    /// The bench's current recorder, in `power`'s chain when the supply
    /// measures (SCPI): each case's current is read through it.
    pub supply: Option<rig::wrap::CurrentRecorder>,
    pub modem: Option<Box<dyn Modem>>,
    pub debug: Option<Box<dyn Debug>>,
    /// The lab's control of the device's network (rigs with a `network:` part).
    pub network: Option<Box<dyn Network>>,
    /// The device's own log: the virtual meter's, or `{state_dir}/device.log`
    /// that a command-power rig's device process writes (read if it exists).
    pub device_log: Option<PathBuf>,
    /// Every call made to `power`, with its outcome (each case's `power.log`).
    pub power_trace: Option<PowerTrace>,
    /// What the debug port's RTT gave: the case's `rtt.log` and the tail
    /// that failure messages quote.
    pub rtt: RttRecord,
    pub info: RigInfo,
    /// The run's seed: random power cuts derive theirs from it.
    pub seed: u64,
    /// meterbench's bootstrap server, when the rig onboards the device through it.
    pub bootstrap: Option<BootstrapServerHandle>,
    /// The device's PSKs for this run (never printed; fingerprints at most).
    pub credentials: Option<DeviceCredentials>,
    /// The firmware store and its file servers, started by the first `firmware` step.
    pub firmware: Option<server::firmware::FirmwareDelivery>,
    pub(crate) firmware_store: crate::firmware_roles::FirmwareStores,
    /// The rig's emulated link, whose relays stand in front of the servers
    /// (`link:` in the rig file).
    pub link: Option<crate::link_wiring::LinkWiring>,
    _lock: Option<std::sync::Arc<rig::RigLock>>,
}

/// Why a rig session cannot be opened; each names the part of the rig.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("rig {rig} is in use: {source}")]
    InUse { rig: String, source: rig::RigError },
    #[error("LwM2M server: {0}")]
    Server(server::ServerError),
    #[error("bootstrap server: {0}")]
    BootstrapServer(server::ServerError),
    /// The device's factory Bootstrap-Server URI names this address: no
    /// other port will do.
    #[error("{}: server.bootstrap_bind {addr}: the bootstrap server cannot bind there: {source}", file.display())]
    BootstrapBind {
        file: PathBuf,
        addr: SocketAddr,
        source: server::ServerError,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("cannot create {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The bench's drivers could not be built from the rig file; names
    /// the file and the part.
    #[error(transparent)]
    Build(#[from] BenchBuildError),
    #[error(transparent)]
    Bench(#[from] BenchError),
    /// The smartcard the rig describes cannot be written or served.
    #[error(transparent)]
    Smartcard(#[from] crate::smartcard::SmartcardError),
}

/// Why the bench could not do what a step or the case setup asked of it.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("rig {rig} has no {part}")]
    NoPart { rig: String, part: &'static str },
    #[error(transparent)]
    Rig(#[from] rig::RigError),
    #[error("power driver lock poisoned")]
    PowerLock,
    /// A modem command answered something else than OK.
    #[error("{command:?} answered {answer}")]
    Answer { command: String, answer: String },
    #[error("bring-up command {command:?} answered {answer}")]
    BringUp { command: String, answer: String },
    #[error(
        "dialect {0} has no bring_up_bootstrap: it cannot point a device at a bootstrap server"
    )]
    NoBootstrapBringUp(String),
    #[error("bootstrap server: {0}")]
    Bootstrap(server::ServerError),
    #[error("firmware store {}: {source}", path.display())]
    FirmwareStore {
        path: PathBuf,
        source: server::firmware::DeliveryError,
    },
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
    pub async fn open(rig: RigFile, config: &SessionConfig) -> Result<Session, OpenError> {
        Session::open_with_faults(rig, config, FaultPlan::default()).await
    }

    /// Like [`Session::open`], with `faults` injected between the harness
    /// and the power and modem drivers: how the harness's own handling of a
    /// misbehaving bench is tested.
    pub async fn open_with_faults(
        rig: RigFile,
        config: &SessionConfig,
        faults: FaultPlan,
    ) -> Result<Session, OpenError> {
        let lock = if uses_hardware(&rig) || rig.lease.is_some() {
            // Two CI jobs never share a bench: the second waits its turn,
            // saying who holds it.
            let wait = rig.lease.as_ref().and_then(|l| l.wait);
            let wait = wait.unwrap_or(BENCH_LOCK_WAIT);
            // One lease per bench, shared by the sessions of its devices
            // (crate::rig_lease): a run takes all of a rig's devices.
            let lock = crate::rig_lease::acquire_shared(
                &rig::lease::LeaseOptions::for_rig(&rig),
                &rig.name,
                wait,
                |holder| {
                    eprintln!(
                        "{} is held by {holder}; waiting up to {}",
                        rig.name,
                        rig::duration::format_duration(wait)
                    )
                },
            )
            .map_err(|source| OpenError::InUse {
                rig: rig.name.clone(),
                source,
            })?;
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
        .map_err(OpenError::Server)?;
        let credentials = if secure || rig.device.bootstrap {
            Some(DeviceCredentials::for_device(
                &rig.device.credentials,
                &endpoint,
                rig.device.bootstrap,
            )?)
        } else {
            None
        };
        if let (true, Some(c)) = (secure, &credentials) {
            server.set_psk(&endpoint, c.server.clone());
        }
        let bootstrap = if rig.device.bootstrap {
            let fixed = rig.server.bootstrap_bind;
            let addr = fixed.unwrap_or_else(|| SocketAddr::new(rig.server.bind.ip(), 0));
            let bs = EmbeddedBootstrapServer::bind(
                addr,
                BootstrapServerConfig {
                    registry: config.registry.clone(),
                    default_format: ContentFormat::Tlv,
                    seed: config.seed ^ 0x5eed,
                },
                security,
            )
            .await
            .map_err(|source| match fixed {
                Some(addr) => OpenError::BootstrapBind {
                    file: rig.source.clone(),
                    addr,
                    source,
                },
                None => OpenError::BootstrapServer(source),
            })?;
            if let (true, Some(bs_psk)) = (
                secure,
                credentials.as_ref().and_then(|c| c.bootstrap.as_ref()),
            ) {
                bs.set_psk(&endpoint, bs_psk.clone());
            }
            Some(bs)
        } else {
            None
        };
        // Absolute: a device process started by command power may run elsewhere.
        let state_dir = absolute(&config.state_root.join(rig.unit_name()));
        std::fs::create_dir_all(&state_dir).map_err(|source| OpenError::StateDir {
            path: state_dir.clone(),
            source,
        })?;

        let (values, secret) = command_power_values(
            &rig,
            &endpoint,
            &server,
            bootstrap.as_ref(),
            credentials.as_ref(),
            &state_dir,
        );
        let drivers = crate::drivers::Drivers::new(config, &state_dir, rig.device_name.as_deref());
        let parts = drivers.parts(&config.fixtures, &state_dir, values, secret, faults);
        let bench = Bench::build(&rig, &parts)?;
        let firmware_store =
            crate::firmware_roles::FirmwareStores::for_rig(&rig, &config.fixtures, &state_dir);
        let info = RigInfo {
            name: rig.name.clone(),
            device: rig.device_name.clone(),
            file: rig.source.clone(),
            endpoint: endpoint.clone(),
            server_address: Some(server.local_addr().to_string()),
            ..RigInfo::default()
        };
        let link = crate::link_wiring::LinkWiring::for_rig(&rig, config.seed);
        let session = Session {
            rig,
            endpoint,
            registry: config.registry.clone(),
            server,
            power: bench.power,
            supply: bench.current,
            modem: bench.modem,
            debug: bench.debug,
            network: bench.network,
            device_log: bench.device_log,
            power_trace: bench.power_trace,
            rtt: RttRecord::default(),
            info,
            seed: config.seed,
            bootstrap,
            credentials,
            firmware: None,
            firmware_store,
            link,
            _lock: lock,
        };
        if session.bootstrap.is_some() {
            session
                .set_bootstrap_script(BootstrapScript::standard(&session.server_account()))
                .await?;
        }
        // Before the device is first powered: the card is in its holder.
        crate::smartcard::provision(&session, &state_dir)?;
        Ok(session)
    }

    /// What the report says about this rig now, datagram counts included.
    pub fn report_info(&self) -> RigInfo {
        let stats = self.server.stats();
        RigInfo {
            datagrams_in: stats.datagrams_in,
            datagrams_out: stats.datagrams_out,
            receive_buffer_drops: stats.receive_buffer_drops,
            ..self.info.clone()
        }
    }

    /// Sends a command of the modem's dialect by name and requires OK.
    pub fn modem_command(&mut self, name: &str, vars: &[(&str, String)]) -> Result<(), BenchError> {
        let rig = self.rig.name.clone();
        let modem = self
            .modem
            .as_mut()
            .ok_or(BenchError::NoPart { rig, part: "modem" })?;
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let line = modem.dialect().render(name, &vars)?;
        let timeout = modem.dialect().command_timeout;
        let r = off_runtime(|| modem.command(&line, timeout))?;
        if r.is_ok() {
            Ok(())
        } else {
            Err(BenchError::Answer {
                command: line,
                answer: r.summary(),
            })
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
        uri(
            self.server.is_secure(),
            self.device_facing(self.server.local_addr(), "lwm2m"),
            self.rig.server.advertise.as_deref(),
        )
    }

    /// The bootstrap server's URI as the device must use it.
    pub fn bootstrap_uri(&self) -> Option<String> {
        let bs = self.bootstrap.as_ref()?;
        Some(uri(
            bs.is_secure(),
            self.device_facing(bs.local_addr(), "bootstrap"),
            self.rig.server.advertise.as_deref(),
        ))
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

    /// Puts the bootstrap server back to the standard sequence for this
    /// run's server account (a case's own script does not outlive it).
    pub async fn reset_bootstrap_script(&self) -> Result<(), BenchError> {
        if self.bootstrap.is_none() {
            return Ok(());
        }
        self.set_bootstrap_script(BootstrapScript::standard(&self.server_account()))
            .await
    }

    /// Sets what the bootstrap server runs when the device asks next.
    pub async fn set_bootstrap_script(&self, script: BootstrapScript) -> Result<(), BenchError> {
        let bs = self.bootstrap.as_ref().ok_or_else(|| BenchError::NoPart {
            rig: self.rig.name.clone(),
            part: "bootstrap server",
        })?;
        bs.set_script(&self.endpoint, script)
            .await
            .map_err(BenchError::Bootstrap)
    }

    /// Why a case may not replace the device's credentials on this rig
    /// (`credentials` steps, a re-bootstrap that provisions a new key), or
    /// `None` when it may.
    pub fn credentials_fixed(&self) -> Option<String> {
        let name = &self.rig.name;
        match &self.credentials {
            None => Some(format!(
                "rig {name} uses no credentials (device.security: psk)"
            )),
            Some(c) if c.server_origin() == ServerOrigin::Factory => Some(format!(
                "rig {name}'s device holds its server account from the factory \
                 (device.bootstrap: false): meterbench cannot replace its key"
            )),
            Some(_) => None,
        }
    }

    pub fn power_is_on(&self) -> Option<bool> {
        self.power
            .as_ref()
            .map(|p| off_runtime(|| p.lock().map(|mut p| p.is_on()).unwrap_or(false)))
    }

    pub fn set_power(&self, on: bool) -> Result<(), BenchError> {
        let power = self.power.as_ref().ok_or_else(|| BenchError::NoPart {
            rig: self.rig.name.clone(),
            part: "power control",
        })?;
        switch_power(power, on)
    }

    /// After power-on: open the modem and point the device at our server
    /// with the dialect's bring-up sequence (the labgrid "strategy" step).
    pub fn bring_up(&mut self) -> Result<(), BenchError> {
        let mut vars = self.device_vars();
        if let Some(uri) = self.bootstrap_uri() {
            vars.insert("bootstrap_uri".into(), uri);
        }
        if let Some(c) = &self.credentials {
            // The account the device is configured with: its bootstrap
            // account, or, registering directly, its server account.
            let account = c.device_account();
            vars.insert("identity".into(), account.identity.clone());
            vars.insert("key".into(), hex::encode(account.key.expose()));
        }
        let by_bootstrap = self.bootstrap.is_some();
        let Some(modem) = self.modem.as_mut() else {
            return Ok(());
        };
        off_runtime(|| modem.open())?;
        let timeout = modem.dialect().command_timeout;
        let sequence = if by_bootstrap {
            modem.dialect().bring_up_bootstrap.clone()
        } else {
            modem.dialect().bring_up.clone()
        };
        if by_bootstrap && sequence.is_empty() {
            return Err(BenchError::NoBootstrapBringUp(modem.dialect().name.clone()));
        }
        for name in sequence {
            // Keys go to the modem, never into the transcript or an error.
            let (line, shown) = modem.dialect().render_shown(&name, &vars)?;
            let response = off_runtime(|| modem.command_shown(&line, &shown, timeout))?;
            if !response.is_ok() {
                return Err(BenchError::BringUp {
                    command: shown,
                    answer: response.summary(),
                });
            }
        }
        if self.info.modem_revision.is_none() {
            if let Ok(line) = modem.dialect().render("revision", &vars) {
                if let Ok(r) = off_runtime(|| modem.command(&line, timeout)) {
                    self.info.modem_revision = r.lines.first().cloned();
                }
            }
        }
        // Who the device is, for the report: asked until the dialect's
        // actions have answered (an action the dialect lacks is not asked).
        for (action, slot) in [
            ("imei", &mut self.info.imei),
            ("iccid", &mut self.info.iccid),
        ] {
            if slot.is_some() || !modem.dialect().supports(action) {
                continue;
            }
            if let Ok(line) = modem.dialect().render(action, &vars) {
                if let Ok(r) = off_runtime(|| modem.command(&line, timeout)) {
                    *slot = modem.dialect().value(action, &r).ok();
                }
            }
        }
        Ok(())
    }

    /// Where the power trace stands: a mark for [`Session::write_power_log`].
    pub fn power_trace_mark(&self) -> usize {
        self.power_trace.as_ref().map_or(0, PowerTrace::mark)
    }

    /// Writes `power.log` into `dir`: each call made to the power switch
    /// since `mark`, with its time and outcome, so that a case's evidence
    /// shows when the device was really cut (nothing when none was made).
    pub fn write_power_log(&self, dir: &Path, mark: usize) {
        let Some(trace) = &self.power_trace else {
            return;
        };
        let text = trace.text_since(mark);
        if !text.is_empty() {
            let _ = std::fs::write(dir.join("power.log"), text);
        }
    }

    /// A case starts: what the debug port's RTT printed until now is kept
    /// as printed before it, and the link's `link.log` starts here.
    pub fn start_rtt_case(&mut self) {
        if let Some(link) = &self.link {
            link.start_case();
        }
        self.rtt.start_case(self.debug.as_deref_mut());
    }

    /// Takes what the firmware printed over RTT since the last take, so
    /// that [`Session::last_device_lines`] quotes it (a step just failed).
    pub fn take_rtt(&mut self) {
        self.rtt.take(self.debug.as_deref_mut());
    }

    /// The case ends: writes its `rtt.log` (and, with a link, its
    /// `link.log`) into `artifacts`.
    pub fn finish_rtt_case(&mut self, artifacts: &Path) {
        if let Some(link) = &self.link {
            link.finish_case(artifacts);
        }
        self.rtt.finish_case(self.debug.as_deref_mut(), artifacts);
    }

    /// The last lines the device printed, on its serial port, in its own
    /// log and over RTT (as far as taken, [`Session::take_rtt`]), for
    /// messages that must say what the device did.
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
        let rtt = self
            .rtt
            .last_lines(n)
            .into_iter()
            .map(|l| format!("[rtt] {l}"))
            .collect();
        share_lines(vec![serial, log, rtt], n)
    }

    /// The firmware the device runs as the run ends (/3/0/3), the report's
    /// "firmware after" (the first one read is "before"). Nothing when the
    /// device is not registered; bounded, so a silent device costs 3 s.
    pub async fn learn_firmware_after(&mut self) {
        if self.server.registration(&self.endpoint).is_none() {
            return;
        }
        let path = lwm2m::Path::resource(3, 0, 3);
        let read = self.server.read(&self.endpoint, path, None);
        if let Ok(Ok(r)) = tokio::time::timeout(std::time::Duration::from_secs(3), read).await {
            if let lwm2m::server::Content::Records(records) = &r.content {
                if let Some(lwm2m::Value::String(v)) = records
                    .iter()
                    .find(|rec| rec.path == path)
                    .map(|rec| &rec.value)
                {
                    self.info.firmware_version_after = Some(v.clone());
                }
            }
        }
    }

    /// Leaves the bench in the state the rig file asks for.
    pub async fn close(self) {
        if let Some(p) = &self.power {
            let want_on = self.rig.after_run.power == rig::model::PowerState::On;
            let _ = switch_power(p, want_on);
        }
        if let Some(f) = self.firmware {
            f.shutdown().await;
        }
        self.server.shutdown().await;
    }
}

/// What command power's placeholders stand for, and the key its commands
/// pass on to the device in the environment. The URI is the one the device
/// starts from: the bootstrap server's with bootstrap, else the server's.
fn command_power_values(
    rig: &RigFile,
    endpoint: &str,
    server: &ServerHandle,
    bootstrap: Option<&BootstrapServerHandle>,
    credentials: Option<&DeviceCredentials>,
    state_dir: &Path,
) -> (DeviceValues, Option<SecretEnv>) {
    let advertise = rig.server.advertise.as_deref();
    let (server_uri, bootstrap_uri) = match bootstrap {
        Some(bs) => (None, Some(uri(bs.is_secure(), bs.local_addr(), advertise))),
        None => (
            Some(uri(server.is_secure(), server.local_addr(), advertise)),
            None,
        ),
    };
    // Only a secured device uses a PSK; a NoSec one is given none.
    let account = credentials
        .filter(|_| rig.device.security == SecurityMode::Psk)
        .map(DeviceCredentials::device_account);
    let values = DeviceValues {
        endpoint: Some(endpoint.to_string()),
        lifetime: Some(rig.device.lifetime),
        server_uri,
        bootstrap_uri,
        psk_identity: account.map(|a| a.identity.clone()),
        state_dir: Some(state_dir.to_path_buf()),
        rig_dir: Some(absolute(rig.dir())),
        meterbench: std::env::current_exe().ok(),
    };
    (values, account.map(|a| SecretEnv::psk_key(a.key.expose())))
}

/// A server's URI as the device reaches it: `advertise` as host when the
/// rig gives one.
fn uri(secure: bool, addr: SocketAddr, advertise: Option<&str>) -> String {
    let host = advertise.map_or_else(|| addr.ip().to_string(), str::to_string);
    let scheme = if secure { "coaps" } else { "coap" };
    format!("{scheme}://{host}:{}", addr.port())
}

/// `path` made absolute (symlinks resolved when it exists).
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn tail(mut lines: Vec<String>, n: usize) -> Vec<String> {
    let skip = lines.len().saturating_sub(n);
    lines.split_off(skip)
}

/// The last of each source's lines, `n` in all, shared evenly among the
/// sources that printed anything (earlier sources get the remainder), in
/// source order: one chatty source must not hide another's last words.
fn share_lines(sources: Vec<Vec<String>>, n: usize) -> Vec<String> {
    let sources: Vec<Vec<String>> = sources.into_iter().filter(|s| !s.is_empty()).collect();
    let Some(each) = n.checked_div(sources.len()) else {
        return Vec::new();
    };
    let extra = n % sources.len();
    sources
        .into_iter()
        .enumerate()
        .flat_map(|(i, s)| tail(s, each + usize::from(i < extra)))
        .collect()
}

/// Switches the rig's power off the runtime's threads: a relay command or
/// an SCPI supply may take seconds, and the servers must keep answering.
pub fn switch_power(power: &SharedPower, on: bool) -> Result<(), BenchError> {
    off_runtime(|| {
        let mut p = power.lock().map_err(|_| BenchError::PowerLock)?;
        Ok(if on { p.on() } else { p.off() }?)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use rig::RigError;

    use super::*;

    /// A debug port whose RTT gives out one batch of lines per take.
    struct PrintingPort(VecDeque<Vec<String>>);

    impl Debug for PrintingPort {
        fn read_state(&mut self) -> Result<BTreeMap<String, String>, RigError> {
            Ok(BTreeMap::new())
        }
        fn describe(&self) -> String {
            "printing port".into()
        }
        fn take_log(&mut self) -> Result<Vec<String>, RigError> {
            Ok(self.0.pop_front().unwrap_or_default())
        }
    }

    fn lines(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|l| l.to_string()).collect()
    }

    #[tokio::test]
    async fn a_failed_step_quotes_the_rtt_lines_taken_once_and_kept_for_rtt_log() {
        let dir = tempfile::tempdir().unwrap();
        // No power, no modem: nothing is started, nothing is locked.
        let rig = RigFile::parse(
            "name: rtt\ndevice: { endpoint: ep, lifetime: 1m }\n",
            &dir.path().join("rtt.yaml"),
        )
        .unwrap();
        let config = SessionConfig {
            run_id: "rtt".into(),
            fixtures: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
            registry: Registry::core(),
            state_root: dir.path().join("state"),
            meter_program: PathBuf::from("/nonexistent/virtual-meter"),
            meter_args: Vec::new(),
            seed: 1,
        };
        let mut session = Session::open(rig, &config).await.unwrap();
        session.debug = Some(Box::new(PrintingPort(VecDeque::from([
            lines(&["boot 1.0"]),
            lines(&["attach", "PDP reject 33"]),
            lines(&["retry in 60 s"]),
        ]))));
        session.start_rtt_case();
        // A step fails: the engine takes RTT before the judge quotes it.
        session.take_rtt();
        assert_eq!(
            session.last_device_lines(2),
            ["[rtt] attach", "[rtt] PDP reject 33"]
        );
        assert_eq!(
            session.last_device_lines(8),
            ["[rtt] boot 1.0", "[rtt] attach", "[rtt] PDP reject 33"]
        );
        // rtt.log has every line once: the take above is not read again.
        let artifacts = dir.path().join("artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        session.finish_rtt_case(&artifacts);
        assert_eq!(
            std::fs::read_to_string(artifacts.join(crate::rtt_capture::FILE_NAME)).unwrap(),
            "# printed before the case started\nboot 1.0\n# printed during the case\n\
             attach\nPDP reject 33\nretry in 60 s\n"
        );
        session.close().await;
    }

    #[test]
    fn the_quoted_lines_are_shared_among_the_sources_that_printed() {
        let serial = lines(&["s1", "s2", "s3", "s4", "s5"]);
        let rtt = lines(&["r1", "r2", "r3"]);
        assert_eq!(
            share_lines(vec![serial.clone(), Vec::new(), rtt.clone()], 5),
            ["s3", "s4", "s5", "r2", "r3"]
        );
        // A source alone gets all of n; none gives nothing.
        assert_eq!(share_lines(vec![Vec::new(), rtt], 8), ["r1", "r2", "r3"]);
        assert!(share_lines(vec![Vec::new(), Vec::new()], 8).is_empty());
        assert!(share_lines(vec![serial], 0).is_empty());
    }
}
