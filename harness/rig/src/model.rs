//! The rig file: *where* a bench's parts are (labgrid's resources). Code says
//! how to use them; a case never names a port. `rigs/virtual.yaml` is the
//! default rig; a rig may omit modem, power, debug, network and firmware
//! entirely (a device on a live network, or a third-party client started by
//! hand): a case that needs a part the rig lacks is skipped with that reason.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dialect::Dialect;
use crate::error::RigError;
pub use crate::power::scpi_spec::{ScpiAddress, ScpiCommands, ScpiPowerSpec};

/// A parsed rig file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RigFile {
    /// Names the bench in reports and its lock file; `[A-Za-z0-9._-]+`.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub device: DeviceSpec,
    /// Absent: the harness cannot talk AT to the device.
    #[serde(default)]
    pub modem: Option<ModemSpec>,
    /// Absent: the device is powered by hand; power steps are skipped.
    #[serde(default)]
    pub power: Option<PowerSpec>,
    /// Absent: no debug port.
    #[serde(default)]
    pub debug: Option<DebugSpec>,
    /// Absent: the lab cannot control the device's cellular network; cases
    /// that need `network-control` are skipped.
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// Absent: the rig does not say what the device's eUICC holds; cases
    /// that name its profiles (`{euicc:second.iccid}`) are skipped.
    #[serde(default)]
    pub euicc: Option<EuiccSpec>,
    /// Absent: no firmware image of this device is known; cases that name a
    /// firmware role are skipped.
    #[serde(default)]
    pub firmware: Option<FirmwareSpec>,
    #[serde(default)]
    pub server: ServerSpec,
    #[serde(default)]
    pub after_run: AfterRun,
    /// Where the bench's lease lives and how long it lasts unrenewed
    /// ([`crate::lease`]); present, it also makes a rig without hardware take it.
    #[serde(default)]
    pub lease: Option<crate::lease::LeaseSpec>,
    /// The file this rig was loaded from (set by [`RigFile::load`]).
    #[serde(skip)]
    pub source: PathBuf,
}

/// The device's identity towards the LwM2M server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Endpoint client name; `{run}` is replaced by a per-run token
    /// ([`DeviceSpec::endpoint_for`]) so that parallel runs never collide.
    pub endpoint: String,
    /// Registration lifetime the harness configures (LwM2M 1.1 TS Core
    /// §6.2.1 `lt`; resource /1/x/1).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub lifetime: Duration,
    /// How the device secures its LwM2M traffic (LwM2M 1.1 Core §7.1).
    #[serde(default)]
    pub security: SecurityMode,
    /// Whether the device is onboarded by meterbench's bootstrap server
    /// (client-initiated bootstrap, Core §6.1) rather than configured directly.
    /// A factory-provisioned device that holds an LwM2M server account and
    /// registers without bootstrap is `bootstrap: false` with `security: psk`
    /// and `credentials` from `env` or `file`; one that holds a bootstrap
    /// account at a fixed URI is `bootstrap: true` with `server.bootstrap_bind`.
    #[serde(default)]
    pub bootstrap: bool,
    /// Where the device's PSKs come from. Never the key itself: a rig file is
    /// shared and committed, so it may only say where a secret lives.
    ///
    /// Which account they are depends on `bootstrap`: with bootstrap, the
    /// device's Bootstrap-Server account (the server account is then
    /// provisioned fresh by meterbench's bootstrap server); without, the
    /// LwM2M Server account itself, which meterbench's server must accept
    /// for the device's endpoint.
    #[serde(default)]
    pub credentials: CredentialSource,
    /// The longest the device takes from power-on or a restart (Execute
    /// Reboot, a power cut) to its new registration: how long an `await:
    /// registered` that gives no `within` waits. A property of the device
    /// and its network (boot, attach, DTLS handshake), so of the rig.
    #[serde(
        default = "default_reboot_within",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub reboot_within: Duration,
    /// Who this board is (what its modem and debug port report), so that
    /// `meterbench rig check` and a run refuse the wrong board on the bench.
    #[serde(default)]
    pub identity: Option<DeviceIdentity>,
}

/// The identity a rig expects of its board; each field given is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceIdentity {
    /// The modem's IMEI (3GPP TS 27.007 §5.4 +CGSN).
    #[serde(default)]
    pub imei: Option<String>,
    /// The ICCID of the SIM profile in use.
    #[serde(default)]
    pub iccid: Option<String>,
    /// The meter's serial number, as its debug port reports it (`serial`).
    #[serde(default)]
    pub serial: Option<String>,
}

fn default_reboot_within() -> Duration {
    Duration::from_secs(60)
}

/// Security mode of the device's server accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// Plain CoAP.
    #[default]
    NoSec,
    /// DTLS 1.2 with a pre-shared key.
    Psk,
}

/// Where per-device credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialSource {
    /// A fresh identity and key for every device and run (the default: no
    /// credential outlives the run that made it).
    #[default]
    Fresh,
    /// Environment variables that hold the identity and the hex key of the
    /// device's factory account (bootstrap account with `bootstrap: true`,
    /// else server account), for a device provisioned at the factory.
    Env { identity: String, key: String },
    /// A secrets file kept outside the repository: YAML with `identity:` and
    /// `key:` (hex) of the device's factory account (as for `Env`).
    File { path: PathBuf },
}

impl DeviceSpec {
    /// The endpoint name for one run: `{run}` replaced by `run`.
    pub fn endpoint_for(&self, run: &str) -> String {
        self.endpoint.replace("{run}", run)
    }
}

/// The device's modem on a serial line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemSpec {
    pub port: ModemPort,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `fixtures/modems/<dialect>.yaml`, or a path to a dialect file.
    pub dialect: String,
    /// `none` (default), `hardware` (RTS/CTS) or `software` (XON/XOFF).
    #[serde(default)]
    pub flow_control: crate::serial::FlowControl,
    /// What ends a command line, `"\r"` or `"\r\n"`; absent: the dialect's.
    #[serde(default)]
    pub line_ending: Option<crate::dialect::LineEnding>,
}

fn default_baud() -> u32 {
    115_200
}

impl ModemSpec {
    /// Loads this modem's dialect. A name is looked up under
    /// `<fixtures_dir>/modems/`; a relative path is taken relative to the
    /// rig file's directory (`rig_dir`).
    pub fn load_dialect(&self, fixtures_dir: &Path, rig_dir: &Path) -> Result<Dialect, RigError> {
        if Dialect::is_path(&self.dialect) {
            let p = Path::new(&self.dialect);
            if p.is_absolute() {
                Dialect::load(p)
            } else {
                Dialect::load(&rig_dir.join(p))
            }
        } else {
            Dialect::find(&self.dialect, fixtures_dir)
        }
    }
}

/// Where the modem's serial line is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum ModemPort {
    /// The virtual meter's PTY; its path comes from the virtual power driver.
    Virtual,
    /// A device path such as `/dev/ttyUSB2` or `/dev/serial/by-id/...`.
    Path(PathBuf),
}

impl From<String> for ModemPort {
    fn from(s: String) -> Self {
        if s == "virtual" {
            ModemPort::Virtual
        } else {
            ModemPort::Path(PathBuf::from(s))
        }
    }
}

impl fmt::Display for ModemPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModemPort::Virtual => f.write_str("virtual"),
            ModemPort::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How the device's supply is switched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PowerSpec {
    /// The virtual meter process (power off = SIGKILL, like pulling the
    /// plug), configured by the options to be the device the rig describes.
    Virtual(VirtualMeterOptions),
    /// Shell commands, e.g. a USB relay's or a lab supply's CLI.
    Command(CommandPowerSpec),
    /// A programmable bench supply spoken to in SCPI over LAN or serial.
    /// Boxed: its command templates make it much larger than the others.
    Scpi(Box<ScpiPowerSpec>),
}

/// How the virtual meter differs from its defaults, so that a rig can
/// describe another device and the virtual meter plays it (a test that every
/// case holds on a device unlike the default one).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualMeterOptions {
    /// Optional resources the meter does not have, as paths (`/3/0/15`).
    pub without: Vec<String>,
    /// The Server object (/1) instance of the account the meter is
    /// configured with directly (without bootstrap; with bootstrap, the
    /// bootstrap server's write decides: `server.account`).
    pub server_instance: u16,
}

/// Power switched by shell commands (run with `sh -c`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPowerSpec {
    pub on: String,
    pub off: String,
    /// Exit status 0 = on, anything else = off. Absent: the last commanded
    /// state is assumed.
    #[serde(default)]
    pub status: Option<String>,
    /// How long one command may run before it is killed.
    #[serde(
        default = "default_power_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub timeout: Duration,
}

fn default_power_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The device's debug port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DebugSpec {
    /// The virtual meter's state, read from its NV storage.
    Virtual,
    /// An SWD probe on the device's MCU, driven through probe-rs ([`crate::swd`]).
    Swd(crate::swd::SwdSpec),
}

/// The device's cellular network as the lab controls it: what a bench can
/// make the network do (refuse a profile's attach), never the device itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum NetworkSpec {
    /// The virtual meter's network model, controlled beside the meter (not
    /// through its modem).
    Virtual,
    /// A lab's network emulator, driven by shell commands.
    Command(CommandNetworkSpec),
}

/// The device's eUICC profiles as the lab knows them, so that a case names
/// "the second profile's ICCID" and the rig supplies the value: a case never
/// carries one operator's ICCIDs, names or APNs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EuiccSpec {
    /// In eUICC order; the first is the one enabled when the device starts.
    pub profiles: Vec<EuiccProfile>,
}

/// One profile; a field the lab does not know is left out, and a case that
/// needs it is skipped saying so.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EuiccProfile {
    /// ICCID (ITU-T E.118), as /504/x/22 and `AT+CCID` report it.
    #[serde(default)]
    pub iccid: Option<String>,
    /// Service provider name, as /504/x/2 reports it.
    #[serde(default)]
    pub operator: Option<String>,
    /// The APN the profile attaches with, as /4/x/7 reports it.
    #[serde(default)]
    pub apn: Option<String>,
}

/// Network actions as shell commands (run with `sh -c`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandNetworkSpec {
    /// Per profile of the device's eUICC (`first-profile`, `second-profile`,
    /// `profile-<n>`): the command that makes the network refuse its attach.
    /// A profile not listed cannot be refused on this bench.
    #[serde(default)]
    pub refuse: BTreeMap<String, String>,
    /// The command that makes the network accept every profile again.
    pub accept_all: String,
    /// How long one command may run before it is killed.
    #[serde(
        default = "default_power_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub timeout: Duration,
}

/// The device's own firmware files, by the role a case names them by
/// (`upgrade`, `corrupted`, ...): a case never names a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSpec {
    /// A folder with a `manifest.yaml` and the images it lists (name,
    /// version, size, SHA-256). Absent: the fixtures' firmware folder, whose
    /// images meterbench generates. Relative: to the rig file's folder.
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// The longest the device takes to download one of these images here:
    /// how long an `await` on object 5's State or Update Result that gives no
    /// `within` waits.
    #[serde(
        default = "default_download_within",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub download_within: Duration,
    /// From Execute Update to the updated device's registration (flashing
    /// and a restart); absent: `device.reboot_within`.
    #[serde(default, deserialize_with = "crate::duration::deserialize_option")]
    pub update_within: Option<Duration>,
    /// Role -> image of the store. A role not listed skips the cases that name it.
    #[serde(default)]
    pub roles: BTreeMap<String, FirmwareRole>,
}

fn default_download_within() -> Duration {
    Duration::from_secs(120)
}

/// One role's image: `upgrade: meter-2.0.bin`, or with the version the device
/// reports once it runs it (/3/0/3) when the manifest's is not that:
/// `upgrade: { image: acme-3.2.bin, version: "3.2.0-rel" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareRole {
    pub image: String,
    /// Absent: the manifest entry's version.
    pub version: Option<String>,
}

impl<'de> Deserialize<'de> for FirmwareRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            image: String,
            #[serde(default)]
            version: Option<String>,
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = FirmwareRole;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an image name, or a map with `image` and `version`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FirmwareRole {
                    image: v.to_owned(),
                    version: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let l = Long::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FirmwareRole {
                    image: l.image,
                    version: l.version,
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

impl FirmwareSpec {
    /// The store folder: `store` (relative to `rig_dir`), else `default`.
    pub fn store_dir(&self, rig_dir: &Path, default: &Path) -> PathBuf {
        match &self.store {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => rig_dir.join(p),
            None => default.to_path_buf(),
        }
    }
}

/// The embedded LwM2M server's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Where the embedded server binds; port 0 = ephemeral.
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// Host the device should use to reach the servers, when it differs from
    /// the bind address (a real bench reaching the harness machine over a
    /// LAN); used for both the server's and the bootstrap server's URI.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Where meterbench's bootstrap server binds, for a device whose
    /// Bootstrap-Server URI was fixed at the factory: its address and port
    /// must be the ones the device holds. Absent: an ephemeral port on the
    /// `bind` address, given to the device at run time.
    #[serde(default)]
    pub bootstrap_bind: Option<SocketAddr>,
    /// The instances meterbench's bootstrap server writes for the device's
    /// account with this server.
    #[serde(default)]
    pub account: AccountInstances,
}

/// The Security (/0) and Server (/1) instance ids of the account
/// meterbench's bootstrap server provisions (LwM2M 1.1 Core §E.1, §E.2):
/// a device may be given any, and cases find them in its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountInstances {
    pub security_instance: u16,
    pub server_instance: u16,
}

impl Default for AccountInstances {
    fn default() -> Self {
        AccountInstances {
            security_instance: 1,
            server_instance: 0,
        }
    }
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            bind: default_bind(),
            advertise: None,
            bootstrap_bind: None,
            account: AccountInstances::default(),
        }
    }
}

/// The state the bench is left in when a run ends, however it ends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterRun {
    #[serde(default = "default_after_power")]
    pub power: PowerState,
}

fn default_after_power() -> PowerState {
    PowerState::Off
}

impl Default for AfterRun {
    fn default() -> Self {
        AfterRun {
            power: PowerState::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

impl RigFile {
    /// Loads and checks a rig file. Schema mistakes come back as
    /// [`RigError::File`] with line and column.
    pub fn load(path: &Path) -> Result<RigFile, RigError> {
        let mut rig: RigFile = crate::yaml::load(path)?;
        rig.source = path.to_path_buf();
        rig.check()?;
        Ok(rig)
    }

    /// Parses rig YAML held in memory; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<RigFile, RigError> {
        let mut rig: RigFile = crate::yaml::parse(text, origin)?;
        rig.source = origin.to_path_buf();
        rig.check()?;
        Ok(rig)
    }

    /// The directory relative paths in this rig file are resolved against.
    pub fn dir(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }

    fn check(&self) -> Result<(), RigError> {
        let invalid = |field: &str, message: String| RigError::Invalid {
            file: self.source.clone(),
            field: field.into(),
            message,
        };
        if !is_valid_rig_name(&self.name) {
            return Err(invalid(
                "name",
                format!(
                    "`{}` is not a valid rig name: it names the lock file, so use only A-Z a-z 0-9 . _ - (not starting with .)",
                    self.name
                ),
            ));
        }
        if self.device.endpoint.trim().is_empty() {
            return Err(invalid("device.endpoint", "must not be empty".into()));
        }
        if self.device.lifetime < Duration::from_secs(1) {
            return Err(invalid(
                "device.lifetime",
                "must be at least 1s (LwM2M lifetimes are whole seconds)".into(),
            ));
        }
        if let Some(m) = &self.modem {
            if m.baud == 0 {
                return Err(invalid("modem.baud", "must be greater than 0".into()));
            }
        }
        let account = self.server.account;
        // 65535 is reserved (LwM2M 1.1 Core §7.2.1): no instance has it.
        for (field, id) in [
            (
                "server.account.security_instance",
                account.security_instance,
            ),
            ("server.account.server_instance", account.server_instance),
        ] {
            if id == u16::MAX {
                return Err(invalid(field, "65535 is reserved; use 0 to 65534".into()));
            }
        }
        if let (Some(addr), false) = (self.server.bootstrap_bind, self.device.bootstrap) {
            // A fixed bootstrap port serves only a device that bootstraps;
            // binding it anyway would hold a port for nothing.
            return Err(invalid(
                "server.bootstrap_bind",
                format!(
                    "{addr} is given but device.bootstrap is false: the device is not \
                     onboarded by the bootstrap server (set device.bootstrap: true, or remove it)"
                ),
            ));
        }
        if let Some(PowerSpec::Command(c)) = &self.power {
            crate::command_power::check_placeholders(c, &self.source)?;
        }
        if let Some(DebugSpec::Swd(swd)) = &self.debug {
            swd.check()
                .map_err(|(field, message)| invalid(&field, message))?;
        }
        if let Some(NetworkSpec::Command(c)) = &self.network {
            for profile in c.refuse.keys() {
                if profile.parse::<crate::network::ProfileSlot>().is_err() {
                    return Err(invalid(
                        "network.refuse",
                        format!("`{profile}` is not a profile: expected first-profile, second-profile or profile-<n>"),
                    ));
                }
            }
        }
        if let Some(f) = &self.firmware {
            for role in f.roles.keys() {
                if !crate::network::is_name(role) {
                    return Err(invalid(
                        "firmware.roles",
                        format!("`{role}` is not a role name: use a-z, 0-9 and -"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Rig names become file names (`<lock dir>/<name>.lock`).
pub(crate) fn is_valid_rig_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
