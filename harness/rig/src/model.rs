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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
    /// Several devices on this bench ([`crate::devices`]): N simulated
    /// meters, or real boards each with its own parts. Absent: the rig is
    /// one device, described by the top level.
    #[serde(default)]
    #[schemars(with = "Option<crate::devices::RawDevicesSpec>")]
    pub devices: Option<crate::devices::DevicesSpec>,
    /// Which of the rig's devices this rig is, once expanded
    /// ([`RigFile::device_rigs`]); `None` for a rig without `devices:`.
    #[serde(skip)]
    pub device_name: Option<String>,
    /// Where the bench's lease lives and how long it lasts unrenewed
    /// ([`crate::lease`]); present, it also makes a rig without hardware take it.
    #[serde(default)]
    pub lease: Option<crate::lease::LeaseSpec>,
    /// Faults injected between the harness and the drivers, for stand-in
    /// tests of the harness itself ([`crate::wrap::FaultsSpec`]).
    #[serde(default)]
    pub faults: Option<crate::wrap::FaultsSpec>,
    /// An emulated link between the virtual device and the servers
    /// (`nb-iot`, `lte-m`, `lossy`, or figures of its own; [`crate::link`]).
    /// Absent: datagrams cross the loopback untouched.
    #[serde(default)]
    #[schemars(with = "Option<crate::link::spec::LinkSpecText>")]
    pub link: Option<crate::link::LinkSpec>,
    /// The file this rig was loaded from (set by [`RigFile::load`]).
    #[serde(skip)]
    pub source: PathBuf,
}

/// The device's identity towards the LwM2M server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Endpoint client name; `{run}` is replaced by a per-run token
    /// ([`DeviceSpec::endpoint_for`]) so that parallel runs never collide.
    pub endpoint: String,
    /// Registration lifetime the harness configures (LwM2M 1.1 TS Core
    /// §6.2.1 `lt`; resource /1/x/1).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    #[schemars(with = "crate::schema::DurationText")]
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
    /// Whether the device takes X.509 certificate-mode server accounts
    /// (Security Mode 2, LwM2M 1.1 Core §E.1; TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
    /// with ECDSA P-256, RFC 7251): cases that bootstrap one `needs:
    /// [certificate-mode]`, and a rig that does not say `true` skips them
    /// (a PSK-only meter). The certificates are made per run; none is kept.
    #[serde(default)]
    pub certificate_mode: bool,
    /// The longest the device takes from power-on or a restart (Execute
    /// Reboot, a power cut) to its new registration: how long an `await:
    /// registered` that gives no `within` waits. A property of the device
    /// and its network (boot, attach, DTLS handshake), so of the rig.
    #[serde(
        default = "default_reboot_within",
        deserialize_with = "crate::duration::deserialize"
    )]
    #[schemars(with = "crate::schema::DurationText")]
    pub reboot_within: Duration,
    /// Who this board is (what its modem and debug port report), so that
    /// `meterbench rig check` and a run refuse the wrong board on the bench.
    #[serde(default)]
    pub identity: Option<DeviceIdentity>,
    /// The device's smartcard holds LwM2M Bootstrap Information (Bootstrap
    /// from Smartcard, LwM2M 1.1 Core §6.1.3.2; the card's EF
    /// LwM2M_Bootstrap, Appendix G.3.3), which the device tries before
    /// anything else (§6.1.4): cases that test it `needs:
    /// [smartcard-bootstrap]`, and a rig without this part skips them.
    #[serde(default)]
    pub smartcard: Option<SmartcardSpec>,
}

/// What the device's smartcard holds: one LwM2M Server account. The rig
/// says where its parts come from, never a key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmartcardSpec {
    /// Who writes the card: `meterbench` writes the virtual meter's card
    /// before power-on, naming this run's LwM2M server and the device's
    /// server credential; `lab` means the card was provisioned beforehand
    /// (by the lab or the operator, over the air) as `server_uri` and
    /// `credentials` describe, and meterbench only serves that account.
    pub provisioned_by: CardProvisioning,
    /// The LwM2M Server URI on the card (/0/x/0). Required with `lab` (the
    /// rig's `server.bind` must be where it points); with `meterbench`,
    /// absent means this run's server.
    #[serde(default)]
    pub server_uri: Option<String>,
    /// Short Server ID of the card's account (/0/x/10, /1/x/0); default 1.
    #[serde(default = "default_card_ssid")]
    pub short_server_id: u16,
    /// Where the PSK identity and key on the card come from, when the card
    /// holds another account than the device's server account (`device.
    /// credentials`, or with bootstrap the server account meterbench
    /// provisions): environment variables or a secrets file, never `fresh`
    /// for a lab's card, never the key itself.
    #[serde(default)]
    pub credentials: Option<CredentialSource>,
}

/// Who provisions the device's smartcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CardProvisioning {
    /// meterbench writes the card (the virtual meter's eUICC) before power-on.
    Meterbench,
    /// The card was provisioned before the run; meterbench cannot change it.
    Lab,
}

fn default_card_ssid() -> u16 {
    1
}

impl SmartcardSpec {
    /// What a card description must hold: a lab's card names its server
    /// and cannot carry a per-run key; meterbench writes only the virtual
    /// meter's card. The error names the field.
    fn check(&self, power: Option<&PowerSpec>) -> Result<(), (String, String)> {
        let field = |f: &str| format!("device.smartcard.{f}");
        if self.short_server_id == 0 || self.short_server_id == u16::MAX {
            return Err((
                field("short_server_id"),
                format!(
                    "{} is reserved: a Short Server ID is 1 to 65534 (LwM2M 1.1 Core §E.2)",
                    self.short_server_id
                ),
            ));
        }
        if let Some(uri) = &self.server_uri {
            if !(uri.starts_with("coap://") || uri.starts_with("coaps://")) {
                return Err((
                    field("server_uri"),
                    format!("{uri:?} is not a coap:// or coaps:// URI"),
                ));
            }
        }
        match self.provisioned_by {
            CardProvisioning::Lab => {
                if self.server_uri.is_none() {
                    return Err((
                        field("server_uri"),
                        "a lab-provisioned card names its LwM2M server: give the URI it holds"
                            .into(),
                    ));
                }
                if self.credentials == Some(CredentialSource::Fresh) {
                    return Err((
                        field("credentials"),
                        "`fresh` makes a key per run, which a card provisioned before the run cannot hold:                          say where its credential lives (`from: env` or `from: file`)"
                            .into(),
                    ));
                }
            }
            CardProvisioning::Meterbench => {
                if !matches!(power, Some(PowerSpec::Virtual(_))) {
                    return Err((
                        field("provisioned_by"),
                        "meterbench writes only the virtual meter's card (`power: {kind: virtual}`);                          a real device's card is `provisioned_by: lab`"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The identity a rig expects of its board; each field given is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// Plain CoAP.
    #[default]
    NoSec,
    /// DTLS 1.2 with a pre-shared key.
    Psk,
}

/// Where per-device credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualMeterOptions {
    /// Optional resources the meter does not have, as paths (`/3/0/15`),
    /// or optional objects it has not at all (`/2`, Access Control).
    pub without: Vec<String>,
    /// The Server object (/1) instance of the account the meter is
    /// configured with directly (without bootstrap; with bootstrap, the
    /// bootstrap server's write decides: `server.account`).
    pub server_instance: u16,
    /// The meter lacks the LwM2M 1.1 composite operations and Send, as a
    /// meter of 1.0-era firmware does: FETCH and iPATCH are answered 4.05
    /// Method Not Allowed and it never Sends (the composite cases skip).
    pub without_composite: bool,
}

/// Power switched by shell commands (run with `sh -c`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
    #[schemars(with = "crate::schema::DurationText")]
    pub timeout: Duration,
}

fn default_power_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The device's debug port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DebugSpec {
    /// The virtual meter's state, read from its NV storage.
    Virtual,
    /// An SWD probe on the device's MCU, driven through probe-rs ([`crate::swd`]).
    Swd(crate::swd::SwdSpec),
}

/// The device's cellular network as the lab controls it: what a bench can
/// make the network do (refuse a profile's attach), never the device itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EuiccSpec {
    /// In eUICC order; the first is the one enabled when the device starts.
    pub profiles: Vec<EuiccProfile>,
}

/// One profile; a field the lab does not know is left out, and a case that
/// needs it is skipped saying so.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
    #[schemars(with = "crate::schema::DurationText")]
    pub timeout: Duration,
}

/// The device's own firmware files, by the role a case names them by
/// (`upgrade`, `corrupted`, ...): a case never names a file.
///
/// A real device has one image of its own worth testing with, the upgrade;
/// the images that must fail (`corrupted`, `oversized`) are derived from it
/// by the harness (`corrupted: { derive: corrupted }`, or implicitly for a
/// role the rig does not map), so a lab never has to hand-craft them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(from = "RawFirmwareSpec")]
pub struct FirmwareSpec {
    /// A folder with a `manifest.yaml` and the images it lists (name,
    /// version, size, SHA-256). Absent: the fixtures' firmware folder, whose
    /// images meterbench generates. Relative: to the rig file's folder.
    pub store: Option<PathBuf>,
    /// The longest the device takes to download one of these images here:
    /// how long an `await` on object 5's State or Update Result that gives no
    /// `within` waits.
    pub download_within: Duration,
    /// From Execute Update to the updated device's registration (flashing
    /// and a restart); absent: `device.reboot_within`.
    pub update_within: Option<Duration>,
    /// Bytes one firmware slot of the device holds (`slot_size: 512KiB`):
    /// what an `oversized` image is derived past. Absent: `oversized` cannot
    /// be derived, and cases needing it are skipped unless a role maps it.
    pub slot_size: Option<u64>,
    /// Role -> image of the store. A role neither listed here nor derivable
    /// skips the cases that name it.
    #[schemars(skip)] // the schema is `RawFirmwareSpec`'s
    pub roles: BTreeMap<String, FirmwareRole>,
    /// Role -> how the harness derives its image from the `upgrade` role's
    /// (`corrupted: { derive: corrupted }`).
    pub derived: BTreeMap<String, DeriveKind>,
    /// Where each role (mapped or derived) is written in the rig file, as
    /// (line, column), so that a check after parsing can still point at it.
    pub role_locations: BTreeMap<String, (u64, u64)>,
}

/// The role whose image derived roles are made from.
pub const UPGRADE_ROLE: &str = "upgrade";

/// The image the device already runs. Only a rig can say what it is: it is
/// never derived.
pub const SAME_VERSION_ROLE: &str = "same-version";

/// How a role's image is made from the `upgrade` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeriveKind {
    /// Same length, bytes flipped so that the integrity check fails
    /// (OMA-TS-LightweightM2M-1.1 Core §E.6, Update Result 5).
    Corrupted,
    /// Padded past the device's firmware slot (Update Result 2, not enough
    /// flash); needs `firmware.slot_size`.
    Oversized,
}

impl DeriveKind {
    pub const ALL: [DeriveKind; 2] = [DeriveKind::Corrupted, DeriveKind::Oversized];

    /// The name in rig files, and the role it derives when a rig does not
    /// map that role.
    pub fn as_str(self) -> &'static str {
        match self {
            DeriveKind::Corrupted => "corrupted",
            DeriveKind::Oversized => "oversized",
        }
    }

    /// The kind a role name stands for when the rig does not map it:
    /// `corrupted`, and `oversized` or its older name `too-large`.
    pub fn for_role(role: &str) -> Option<DeriveKind> {
        match canonical_role(role) {
            "corrupted" => Some(DeriveKind::Corrupted),
            "oversized" => Some(DeriveKind::Oversized),
            _ => None,
        }
    }
}

impl fmt::Display for DeriveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeriveKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match canonical_role(s) {
            "corrupted" => Ok(DeriveKind::Corrupted),
            "oversized" => Ok(DeriveKind::Oversized),
            SAME_VERSION_ROLE => Err(format!(
                "`{s}` cannot be derived: it is the image the device already runs, which only the rig can name (map it to an image of the store)"
            )),
            _ => Err(format!(
                "unknown derive kind `{s}`: expected corrupted or oversized"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for DeriveKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `too-large` (the name shipped cases and rigs used first) and `oversized`
/// (the issue's) are one role: an image larger than the device's firmware
/// slot. Every other name is itself.
pub fn canonical_role(role: &str) -> &str {
    match role {
        "too-large" => "oversized",
        other => other,
    }
}

fn default_download_within() -> Duration {
    Duration::from_secs(120)
}

/// The rig file's `firmware:` as written; [`FirmwareSpec`] splits its roles
/// into mapped and derived ones and keeps where each was written.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFirmwareSpec {
    /// A folder with a `manifest.yaml` and the images it lists. Absent: the
    /// fixtures' firmware folder. Relative: to the rig file's folder.
    #[serde(default)]
    store: Option<PathBuf>,
    /// The longest the device takes to download one of these images here:
    /// how long an `await` on object 5 that gives no `within` waits.
    #[serde(
        default = "default_download_within",
        deserialize_with = "crate::duration::deserialize"
    )]
    #[schemars(with = "crate::schema::DurationText")]
    download_within: Duration,
    /// From Execute Update to the updated device's registration; absent:
    /// `device.reboot_within`.
    #[serde(default, deserialize_with = "crate::duration::deserialize_option")]
    #[schemars(with = "Option<crate::schema::DurationText>")]
    update_within: Option<Duration>,
    /// Bytes one firmware slot of the device holds (`512KiB`): what an
    /// `oversized` image is derived past.
    #[serde(default, deserialize_with = "deserialize_slot_size")]
    #[schemars(with = "Option<crate::schema::ByteSizeText>")]
    slot_size: Option<u64>,
    /// Role (`upgrade`, `corrupted`, `same-version`...) -> an image of the
    /// store, or how the harness derives it. A role neither listed nor
    /// derivable skips the cases that name it.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, crate::schema::FirmwareRoleText>")]
    roles: BTreeMap<String, serde_saphyr::Spanned<RoleSource>>,
}

impl From<RawFirmwareSpec> for FirmwareSpec {
    fn from(raw: RawFirmwareSpec) -> FirmwareSpec {
        let mut roles = BTreeMap::new();
        let mut derived = BTreeMap::new();
        let mut role_locations = BTreeMap::new();
        for (name, spanned) in raw.roles {
            let at = &spanned.referenced;
            role_locations.insert(name.clone(), (at.line(), at.column()));
            match spanned.value {
                RoleSource::Image(image) => {
                    roles.insert(name, image);
                }
                RoleSource::Derive(kind) => {
                    derived.insert(name, kind);
                }
            }
        }
        FirmwareSpec {
            store: raw.store,
            download_within: raw.download_within,
            update_within: raw.update_within,
            slot_size: raw.slot_size,
            roles,
            derived,
            role_locations,
        }
    }
}

/// The largest slot a rig may state: an `oversized` image past it is held
/// in memory and written to disk, so a typo (`512GiB`) must not exhaust them.
pub const MAX_SLOT_SIZE: u64 = 256 << 20;

/// `512KiB`, `1MiB`, `262144` or `262144B`: binary units only, because a
/// flash slot is sized in powers of two and `KB` would leave 1000 vs 1024
/// open.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size: expected bytes with B, KiB, MiB or GiB (e.g. 512KiB)"
            ))
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!(
            "`{text}` is not a size: expected a whole number of B, KiB, MiB or GiB (e.g. 512KiB)"
        )
    })?;
    let bytes = n
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes == 0 {
        return Err("a firmware slot holds more than 0 bytes".into());
    }
    if bytes > MAX_SLOT_SIZE {
        return Err(format!(
            "`{text}` is more than 256MiB: meterbench holds an `oversized` image past the slot in memory, so state the device's real slot"
        ));
    }
    Ok(bytes)
}

fn deserialize_slot_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Visit;
    impl serde::de::Visitor<'_> for Visit {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as 512KiB, 1MiB or 262144 (bytes)")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            parse_byte_size(&v.to_string()).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            parse_byte_size(&v.to_string()).map_err(E::custom)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            parse_byte_size(v).map_err(E::custom)
        }
    }
    d.deserialize_any(Visit).map(Some)
}

/// One role as the rig file writes it: an image of the store, or how to
/// derive one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleSource {
    Image(FirmwareRole),
    Derive(DeriveKind),
}

impl<'de> Deserialize<'de> for RoleSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            #[serde(default)]
            image: Option<String>,
            #[serde(default)]
            version: Option<String>,
            #[serde(default)]
            derive: Option<DeriveKind>,
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RoleSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an image name, a map with `image` and `version`, or `{ derive: corrupted }` / `{ derive: oversized }`",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RoleSource::Image(FirmwareRole {
                    image: v.to_owned(),
                    version: None,
                }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let l = Long::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                match (l.image, l.derive) {
                    (Some(image), None) => Ok(RoleSource::Image(FirmwareRole {
                        image,
                        version: l.version,
                    })),
                    // A derived image reports the upgrade's version (the
                    // one the device must not end up running): no other.
                    (None, Some(kind)) if l.version.is_none() => Ok(RoleSource::Derive(kind)),
                    (None, Some(_)) => Err(serde::de::Error::custom(
                        "a derived role takes no `version`: it is the `upgrade` role's",
                    )),
                    (Some(_), Some(_)) => Err(serde::de::Error::custom(
                        "a role is either an `image` of the store or `derive`d, not both",
                    )),
                    (None, None) => Err(serde::de::Error::custom(
                        "a role needs an `image` (or `derive: corrupted` / `derive: oversized`)",
                    )),
                }
            }
        }
        d.deserialize_any(Visit)
    }
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

impl FirmwareSpec {
    /// The store folder: `store` (relative to `rig_dir`), else `default`.
    pub fn store_dir(&self, rig_dir: &Path, default: &Path) -> PathBuf {
        match &self.store {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => rig_dir.join(p),
            None => default.to_path_buf(),
        }
    }

    /// The image the rig maps `role` to, under its own name or its alias
    /// (`too-large` / `oversized`).
    pub fn mapped(&self, role: &str) -> Option<&FirmwareRole> {
        self.roles.get(role).or_else(|| {
            self.roles
                .iter()
                .find(|(name, _)| canonical_role(name) == canonical_role(role))
                .map(|(_, r)| r)
        })
    }

    /// How `role` is derived from the upgrade image, if it is: the rig says
    /// so (`{ derive: ... }`), or it maps `upgrade` but not `role` and
    /// `role` names a kind (`corrupted`, `oversized`/`too-large`).
    pub fn derivation(&self, role: &str) -> Option<DeriveKind> {
        if self.mapped(role).is_some() || !self.roles.contains_key(UPGRADE_ROLE) {
            return None;
        }
        self.derived
            .get(role)
            .or_else(|| {
                self.derived
                    .iter()
                    .find(|(name, _)| canonical_role(name) == canonical_role(role))
                    .map(|(_, k)| k)
            })
            .copied()
            .or_else(|| DeriveKind::for_role(role))
    }

    /// Every role a case may name with this rig: mapped, derived
    /// explicitly, and derived implicitly from `upgrade`.
    pub fn role_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .roles
            .keys()
            .chain(self.derived.keys())
            .cloned()
            .collect();
        if self.roles.contains_key(UPGRADE_ROLE) {
            for kind in DeriveKind::ALL {
                let derivable = kind != DeriveKind::Oversized || self.slot_size.is_some();
                if derivable
                    && self.derivation(kind.as_str()).is_some()
                    && !names.iter().any(|n| canonical_role(n) == kind.as_str())
                {
                    names.push(kind.as_str().to_string());
                }
            }
        }
        names.sort();
        names
    }

    /// The checks a rig file's `firmware:` must pass beyond its schema; the
    /// error names the role's line and column.
    fn check(&self, file: &Path) -> Result<(), RigError> {
        let at = |role: &str, message: String| {
            let (line, column) = self.role_locations.get(role).copied().unwrap_or((0, 0));
            RigError::File {
                file: file.to_path_buf(),
                line,
                column,
                message: format!("firmware.roles.{role}: {message}"),
                snippet: String::new(),
            }
        };
        for role in self.role_locations.keys() {
            if !crate::network::is_name(role) {
                return Err(at(
                    role,
                    format!("`{role}` is not a role name: use a-z, 0-9 and -"),
                ));
            }
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for role in self.role_locations.keys() {
            if let Some(first) = seen.insert(canonical_role(role), role) {
                return Err(at(
                    role,
                    format!("`{first}` and `{role}` are one role (an image larger than the firmware slot): keep one"),
                ));
            }
        }
        for (role, kind) in &self.derived {
            if role == UPGRADE_ROLE {
                return Err(at(
                    role,
                    "the `upgrade` role is what others derive from: map it to an image of the store".into(),
                ));
            }
            if !self.roles.contains_key(UPGRADE_ROLE) {
                return Err(at(
                    role,
                    format!("`derive: {kind}` derives from the `upgrade` role, which this rig does not map"),
                ));
            }
            if *kind == DeriveKind::Oversized && self.slot_size.is_none() {
                return Err(at(
                    role,
                    "`derive: oversized` pads the upgrade image past the device's firmware slot: state `firmware.slot_size` (e.g. 512KiB)".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The embedded LwM2M server's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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

    pub(crate) fn check(&self) -> Result<(), RigError> {
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
        if let Some(card) = &self.device.smartcard {
            card.check(self.power.as_ref())
                .map_err(|(field, message)| invalid(&field, message))?;
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
            f.check(&self.source)?;
        }
        if let Some(d) = &self.devices {
            d.check(self)?;
        }
        if let Some(link) = &self.link {
            link.check()
                .map_err(|(field, message)| invalid(&field, message))?;
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
