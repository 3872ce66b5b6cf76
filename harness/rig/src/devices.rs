//! Rigs with several devices: a lab bench with several boards (each with its
//! own modem port, power channel, probe and identity), or the virtual rig
//! with N simulated meters.
//!
//! A rig file's `devices:` section is expanded into one rig per device
//! ([`RigFile::device_rigs`]): a rig of exactly one device, which the runner
//! opens as one session (its own embedded servers, drivers, state folder and
//! lock), so every part of the harness below the runner still sees a rig of
//! one device. A rig without `devices:` expands to itself, unchanged.
//!
//! ```yaml
//! devices:
//!   count: 4            # N identical simulated meters, meter-1..meter-N
//!   parallel: 2         # devices running cases at once (default 1)
//!   each_case: every    # every: each case on every device; any: a pool
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::RigError;
use crate::model::{
    CredentialSource, DebugSpec, DeviceIdentity, EuiccSpec, ModemPort, ModemSpec, NetworkSpec,
    PowerSpec, RigFile,
};

/// The most simulated meters `count` may ask for: each is a process with a
/// PTY, so a typo (`count: 400`) must not fork a machine to its knees. A
/// fleet of thousands is `meterbench bench fleet`'s job, in one process.
pub const MAX_COUNT: u32 = 64;

/// The placeholder an endpoint template names the device by.
pub const DEVICE_PLACEHOLDER: &str = "{device}";

/// The rig's `devices:` section, checked against the rest of the rig by
/// [`RigFile::load`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "Spanned<RawDevicesSpec>")]
pub struct DevicesSpec {
    /// N identical simulated meters named `meter-1`..`meter-N`.
    pub count: Option<u32>,
    /// Devices by name, each overriding the rig's top-level parts.
    pub list: Vec<DeviceEntry>,
    /// How many of the rig's devices run cases at once.
    pub parallel: u32,
    pub each_case: EachCase,
    /// Where the section and its keys are written, as (line, column), so a
    /// check after parsing still names the place.
    pub locations: BTreeMap<String, (u64, u64)>,
}

/// How the rig's cases are spread over its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EachCase {
    /// Each case on every device: one verdict per device
    /// (`<rig>::<device>::<case-id>`). Boards that should all behave alike
    /// are each shown to.
    #[default]
    Every,
    /// The devices are a pool of identical ones: each case runs once, on
    /// whichever is free (`<rig>::<case-id>`). A faster run, not more coverage.
    Any,
}

/// One device of a `devices.list`: what differs from the rig's top level.
/// A part left out is the rig's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Names the device in reports, trial names and its lock; `[A-Za-z0-9_-]+`.
    pub name: String,
    /// Endpoint client name, as given (`{run}` and `{device}` filled in).
    /// Absent: the rig's `device.endpoint`, with `-<device>` appended when
    /// it has no `{device}`.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub identity: Option<DeviceIdentity>,
    #[serde(default)]
    pub credentials: Option<CredentialSource>,
    #[serde(default)]
    pub modem: Option<ModemSpec>,
    #[serde(default)]
    pub power: Option<PowerSpec>,
    #[serde(default)]
    pub debug: Option<DebugSpec>,
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    #[serde(default)]
    pub euicc: Option<EuiccSpec>,
}

/// The section as written; the schema is this one's.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DevicesSpec")]
pub(crate) struct RawDevicesSpec {
    /// N identical simulated meters, named `meter-1`..`meter-N` (rigs whose
    /// power, modem and debug are `virtual` only; at most 64). Each one's
    /// endpoint is `device.endpoint` with `{device}` filled in, or with
    /// `-<device>` appended when it has no `{device}`.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    count: Option<Spanned<u32>>,
    /// Devices by name, each overriding the rig's top-level parts (a real
    /// bench: its own modem port, power channel, probe and identity).
    #[serde(default)]
    #[schemars(with = "Option<Vec<DeviceEntry>>")]
    list: Option<Vec<Spanned<DeviceEntry>>>,
    /// How many devices run cases at once (default 1).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    parallel: Option<Spanned<u32>>,
    /// `every` (default): each case on every device, a verdict per device;
    /// `any`: a pool of identical devices, each case once on whichever is free.
    #[serde(default)]
    each_case: EachCase,
}

impl From<Spanned<RawDevicesSpec>> for DevicesSpec {
    fn from(spanned: Spanned<RawDevicesSpec>) -> DevicesSpec {
        let at = |l: &serde_saphyr::Location| (l.line(), l.column());
        let raw = spanned.value;
        let mut locations = BTreeMap::new();
        locations.insert("devices".to_string(), at(&spanned.referenced));
        if let Some(c) = &raw.count {
            locations.insert("count".into(), at(&c.referenced));
        }
        if let Some(p) = &raw.parallel {
            locations.insert("parallel".into(), at(&p.referenced));
        }
        let mut list = Vec::new();
        for (i, entry) in raw.list.unwrap_or_default().into_iter().enumerate() {
            locations.insert(format!("list[{i}]"), at(&entry.referenced));
            list.push(entry.value);
        }
        DevicesSpec {
            count: raw.count.map(|c| c.value),
            list,
            parallel: raw.parallel.map(|p| p.value).unwrap_or(1),
            each_case: raw.each_case,
            locations,
        }
    }
}

impl DevicesSpec {
    /// The devices' names, in the file's order.
    pub fn names(&self) -> Vec<String> {
        match self.count {
            Some(n) => (1..=n).map(|i| format!("meter-{i}")).collect(),
            None => self.list.iter().map(|e| e.name.clone()).collect(),
        }
    }

    /// The checks beyond the schema; errors name the file, line and column.
    pub(crate) fn check(&self, rig: &RigFile) -> Result<(), RigError> {
        let at = |key: &str, message: String| {
            let (line, column) = self
                .locations
                .get(key)
                .or_else(|| self.locations.get("devices"))
                .copied()
                .unwrap_or((0, 0));
            RigError::File {
                file: rig.source.clone(),
                line,
                column,
                message,
                snippet: String::new(),
            }
        };
        match (self.count, self.list.is_empty()) {
            (None, true) => {
                return Err(at(
                    "devices",
                    "devices: needs `count` (N simulated meters) or `list` (devices by name)"
                        .into(),
                ))
            }
            (Some(_), false) => {
                return Err(at(
                    "count",
                    "devices: give `count` or `list`, not both".into(),
                ))
            }
            _ => {}
        }
        if let Some(n) = self.count {
            if !(1..=MAX_COUNT).contains(&n) {
                return Err(at(
                    "count",
                    format!("devices.count: {n} is not a number of meters: use 1 to {MAX_COUNT}"),
                ));
            }
            let real = [
                rig.modem
                    .as_ref()
                    .filter(|m| m.port != ModemPort::Virtual)
                    .map(|_| "modem"),
                rig.power
                    .as_ref()
                    .filter(|p| !matches!(p, PowerSpec::Virtual(_)))
                    .map(|_| "power"),
                rig.debug
                    .as_ref()
                    .filter(|d| !matches!(d, DebugSpec::Virtual))
                    .map(|_| "debug"),
            ];
            if let Some(part) = real.into_iter().flatten().next() {
                return Err(at(
                    "count",
                    format!(
                        "devices.count makes identical simulated meters, but this rig's {part} is not virtual: \
                         list real devices under devices.list, each with its own {part}"
                    ),
                ));
            }
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, entry) in self.list.iter().enumerate() {
            let key = format!("list[{i}]");
            if !is_device_name(&entry.name) {
                return Err(at(
                    &key,
                    format!(
                        "devices.list: `{}` is not a device name: it names lock and report folders, \
                         so use A-Z a-z 0-9 _ - (at most 40)",
                        entry.name
                    ),
                ));
            }
            if let Some(first) = names.insert(&entry.name, i) {
                return Err(at(
                    &key,
                    format!(
                        "devices.list: `{}` is also device {} of the list: names must differ",
                        entry.name,
                        first + 1
                    ),
                ));
            }
        }
        let expanded = rig.device_rigs();
        let count = expanded.len() as u32;
        if self.parallel == 0 || self.parallel > count {
            return Err(at(
                "parallel",
                format!(
                    "devices.parallel: {} is not how many of the rig's {count} device(s) run at once: use 1 to {count}",
                    self.parallel
                ),
            ));
        }
        // Two devices on one endpoint or one serial port would be one device.
        let mut endpoints: BTreeMap<String, &str> = BTreeMap::new();
        let mut ports: BTreeMap<String, &str> = BTreeMap::new();
        // A factory account (env or file) is one device's identity: two
        // devices holding it would share a credential, and the server,
        // which knows a PSK identity by one key, would see one device.
        let mut accounts: BTreeMap<String, &str> = BTreeMap::new();
        for (i, d) in expanded.iter().enumerate() {
            let name = d.device_name.as_deref().unwrap_or_default();
            let key = if self.list.is_empty() {
                "count".to_string()
            } else {
                format!("list[{i}]")
            };
            if let Some(other) = endpoints.insert(d.device.endpoint.clone(), name) {
                return Err(at(
                    &key,
                    format!(
                        "devices: {other} and {name} have one endpoint `{}`: give each its own (or put {DEVICE_PLACEHOLDER} in it)",
                        d.device.endpoint
                    ),
                ));
            }
            let account = match &d.device.credentials {
                CredentialSource::Fresh => None,
                CredentialSource::Env { identity, key } => Some(format!("env {identity}/{key}")),
                CredentialSource::File { path } => Some(format!("file {}", path.display())),
            };
            if let Some(account) = account {
                if let Some(other) = accounts.insert(account.clone(), name) {
                    return Err(at(
                        &key,
                        format!(
                            "devices: {other} and {name} would share one factory account ({account}): give each device its own `credentials` in devices.list, or use `from: fresh`"
                        ),
                    ));
                }
            }
            if let Some(ModemSpec {
                port: ModemPort::Path(p),
                ..
            }) = &d.modem
            {
                if let Some(other) = ports.insert(p.display().to_string(), name) {
                    return Err(at(
                        &key,
                        format!(
                            "devices: {other} and {name} share modem port {}: give each device its own modem",
                            p.display()
                        ),
                    ));
                }
            }
        }
        for d in &expanded {
            d.check().map_err(|e| match e {
                RigError::Invalid {
                    file,
                    field,
                    message,
                } => RigError::Invalid {
                    file,
                    field: format!(
                        "{field} (device {})",
                        d.device_name.as_deref().unwrap_or_default()
                    ),
                    message,
                },
                other => other,
            })?;
        }
        Ok(())
    }
}

/// Device names become parts of file names (`<rig>.<device>.lock`, report
/// folders) and trial names (`<rig>::<device>::<case>`).
pub fn is_device_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl RigFile {
    /// The rig's devices, each as a rig of one device (`device_name` set,
    /// `devices` cleared, the entry's parts in place of the top level's and
    /// `{device}` filled in the endpoint); a rig without `devices:` is its
    /// one device, unchanged.
    ///
    /// A device that takes the rig's endpoint template gets `-<device>`
    /// appended when the template has no `{device}`: devices of one rig
    /// never share an endpoint (`virtual-meter-{run}` becomes
    /// `virtual-meter-<run>-meter-2`).
    pub fn device_rigs(&self) -> Vec<RigFile> {
        let Some(spec) = &self.devices else {
            return vec![self.clone()];
        };
        let one = |name: &str, entry: Option<&DeviceEntry>| {
            let mut rig = self.clone();
            rig.devices = None;
            rig.device_name = Some(name.to_string());
            if !rig.device.endpoint.contains(DEVICE_PLACEHOLDER) {
                rig.device.endpoint = format!("{}-{DEVICE_PLACEHOLDER}", rig.device.endpoint);
            }
            if let Some(e) = entry {
                if let Some(v) = &e.endpoint {
                    rig.device.endpoint = v.clone();
                }
                if let Some(v) = &e.identity {
                    rig.device.identity = Some(v.clone());
                }
                if let Some(v) = &e.credentials {
                    rig.device.credentials = v.clone();
                }
                if let Some(v) = &e.modem {
                    rig.modem = Some(v.clone());
                }
                if let Some(v) = &e.power {
                    rig.power = Some(v.clone());
                }
                if let Some(v) = &e.debug {
                    rig.debug = Some(v.clone());
                }
                if let Some(v) = &e.network {
                    rig.network = Some(v.clone());
                }
                if let Some(v) = &e.euicc {
                    rig.euicc = Some(v.clone());
                }
            }
            rig.device.endpoint = rig.device.endpoint.replace(DEVICE_PLACEHOLDER, name);
            rig
        };
        match spec.count {
            Some(_) => spec.names().iter().map(|n| one(n, None)).collect(),
            None => spec.list.iter().map(|e| one(&e.name, Some(e))).collect(),
        }
    }

    /// How many of the rig's devices run cases at once (1 without `devices:`).
    pub fn parallel(&self) -> usize {
        self.devices
            .as_ref()
            .map_or(1, |d| d.parallel.max(1) as usize)
    }

    /// How the rig's cases are spread over its devices.
    pub fn each_case(&self) -> EachCase {
        self.devices
            .as_ref()
            .map_or(EachCase::Every, |d| d.each_case)
    }

    /// The name of this one device's lock, state folder and report entry:
    /// the rig's name, or `<rig>.<device>` for a device of a rig with
    /// several, so two devices never share one.
    pub fn unit_name(&self) -> String {
        match &self.device_name {
            Some(d) => format!("{}.{d}", self.name),
            None => self.name.clone(),
        }
    }
}
