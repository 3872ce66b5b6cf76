//! Conformance cases as YAML files say them. A case names what it needs and the
//! steps that prove a behaviour; it never names a port or an address, so the
//! same file runs on the virtual rig and on a real bench.

use serde::Deserialize;
use serde_saphyr::Spanned;

use std::time::Duration;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub id: String,
    pub title: String,
    /// OMA LwM2M ETS test ids this case covers (e.g. `LightweightM2M-1.1-int-101`).
    #[serde(default)]
    pub ets: Vec<String>,
    /// ETS test ids whose procedure this case runs only in part (not counted
    /// as covered by `meterbench ets`).
    #[serde(default)]
    pub ets_partial: Vec<String>,
    /// Why no ETS test applies in full; required when `ets` is empty
    /// (checked by `meterbench ets`).
    #[serde(default)]
    pub ets_none: Option<String>,
    /// What the rig and device must have: `modem`, `power`, `debug`, `object/5`.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Whole-case limit; the case errors out when it passes.
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub timeout: Option<Duration>,
    /// A case that is only run with `--ignored` / `--include-ignored`.
    #[serde(default)]
    pub ignored: bool,
    pub steps: Vec<Spanned<StepSpec>>,
}

/// One step as written: exactly one action key plus modifiers.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub power: Option<PowerAction>,
    /// Cut power at a protocol moment and restore it: see [`PowerCutSpec`].
    pub power_cut: Option<PowerCutSpec>,
    pub at: Option<AtSpec>,
    #[serde(rename = "await")]
    pub await_: Option<AwaitSpec>,
    pub read: Option<ReadSpec>,
    pub write: Option<WriteSpec>,
    pub execute: Option<ExecuteSpec>,
    pub discover: Option<DiscoverSpec>,
    pub observe: Option<ObserveSpec>,
    pub cancel_observe: Option<String>,
    pub expect: Option<ExpectSpec>,
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub sleep: Option<Duration>,
    /// The sequence meterbench's bootstrap server runs when the device asks next.
    pub bootstrap: Option<BootstrapSpec>,
    /// `rotate` (a new server PSK that the next bootstrap provisions; the old
    /// one is revoked) or `break-server` (the server stops accepting the
    /// device's server PSK, as after a key compromise).
    pub credentials: Option<String>,
    /// Reads a fact over the debug port (SWD on a real bench): see [`DebugSpec`].
    pub debug: Option<DebugSpec>,
    /// After a power cut: classify the device as recovered, rolled back or
    /// broken: see [`ClassifySpec`].
    pub classify: Option<ClassifySpec>,
    /// `stop`: meterbench's firmware file servers stop answering (a connection
    /// lost in the middle of a download); the next `firmware` step starts them anew.
    pub firmware_server: Option<String>,
    /// Delivers a firmware image to object 5: see [`FirmwareSpec`].
    pub firmware: Option<FirmwareSpec>,
    /// Runs the nested steps several times (a soak): see [`RepeatSpec`].
    pub repeat: Option<RepeatSpec>,
    /// What the lab makes the device's network do: `accept-all`, or
    /// `{refuse: second-profile}` (rigs with a `network:` part).
    pub network: Option<NetworkStepSpec>,
    /// Modifier: how long an await may take (default: the case's remaining time).
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub within: Option<Duration>,
    /// Modifier: a free-text note printed in the step log.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    On,
    Off,
    Cycle,
    /// A short dip: off for 50 ms, then on; the device is not re-configured.
    Brownout,
}

/// Cut power when something happens, keep it off for `restore_after`, then
/// power on again *without* bring-up: the device must recover from what it
/// kept in non-volatile storage, as it would in the field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerCutSpec {
    /// Cut when this resource reads `equals` (polled every 100 ms).
    pub path: Option<String>,
    pub equals: Option<ScalarValue>,
    /// Cut when a line starting with this text appears on the serial port.
    pub line: Option<String>,
    /// Cut when a datagram whose decoded summary contains this text reaches
    /// the server (e.g. `POST /rd/` for a registration Update).
    pub message: Option<String>,
    /// Cut once this fraction (0..1) of the image the case is delivering has
    /// reached the device.
    pub delivered: Option<f64>,
    /// Cut at a random moment in `[from, to]` after the step starts; the seed
    /// is printed and stored in the JUnit so `--seed` replays the same cut.
    pub random_within: Option<Vec<String>>,
    /// Cut this long after the step starts.
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub after: Option<Duration>,
    /// How long power stays off (default 1s).
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub restore_after: Option<Duration>,
}

/// `at: AT+CGMI` (expects OK) or the long form.
pub type AtSpec = StringOr<AtFull>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtFull {
    /// A literal command line.
    pub send: Option<String>,
    /// A command named in the modem's dialect file (portable across modems).
    pub command: Option<String>,
    /// Values for the named command's `{placeholders}` (besides uri, endpoint, lifetime).
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    /// Final result expected: `OK` (default), `ERROR`, or `CME n`.
    pub expect: Option<String>,
    /// Text that must appear in the information lines.
    pub contains: Option<String>,
}

/// `await: registered|deregistered|updated`, or a map for values, notifications and serial lines.
pub type AwaitSpec = StringOr<AwaitValue>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwaitValue {
    /// Await a resource value (polled by Read).
    pub path: Option<String>,
    /// Await notifications of an observation started by an `observe` step.
    pub notification: Option<String>,
    /// Number of notifications to await (default 1).
    pub count: Option<u32>,
    pub equals: Option<ScalarValue>,
    pub not_equals: Option<ScalarValue>,
    /// The value differs from the first one read.
    pub changes: Option<bool>,
    /// Await a line on the modem's serial port starting with this text.
    pub line: Option<String>,
    /// Await a DTLS handshake the server refused (`true`), for this device's identity.
    pub handshake_refused: Option<bool>,
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub within: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSpec {
    pub path: String,
    /// `tlv`, `senml-json`, `senml-cbor`, `lwm2m-cbor`, `text`, `opaque`.
    pub format: Option<String>,
    /// Every mandatory resource of the object model must be present.
    #[serde(default)]
    pub mandatory: bool,
    /// Expected response code (e.g. `4.04`); default: 2.05.
    pub code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    pub path: String,
    pub value: ScalarValue,
    pub format: Option<String>,
    /// `replace` (PUT, default) or `partial` (POST).
    pub mode: Option<String>,
    /// Expected response code; default 2.04.
    pub code: Option<String>,
}

/// `execute: /3/0/4` or the long form.
pub type ExecuteSpec = StringOr<ExecuteFull>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteFull {
    pub path: String,
    pub args: Option<String>,
    pub code: Option<String>,
}

/// `discover: /3` or the long form.
pub type DiscoverSpec = StringOr<DiscoverFull>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverFull {
    pub path: String,
    /// Link targets that must be in the answer.
    #[serde(default)]
    pub contains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveSpec {
    pub path: String,
    pub format: Option<String>,
    /// Write-Attributes sent before the Observe.
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub path: Option<String>,
    pub equals: Option<ScalarValue>,
    pub not_equals: Option<ScalarValue>,
    /// Checks on the endpoint's current registration.
    pub registration: Option<RegistrationExpect>,
    /// `refused`: a DTLS handshake with the server credential that a rotation
    /// replaced must fail (no lingering password).
    pub old_credential: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationExpect {
    /// Object instances (`/3/0`) or objects (`/5`) the object list must hold.
    #[serde(default)]
    pub objects: Vec<String>,
    pub lwm2m: Option<String>,
    pub binding: Option<String>,
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub lifetime: Option<Duration>,
}

/// `network: accept-all` or `network: {refuse: second-profile}`.
pub type NetworkStepSpec = StringOr<NetworkFull>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFull {
    /// The profile whose attach the network refuses: `first-profile`,
    /// `second-profile`, `profile-<n>` (its place on the eUICC).
    pub refuse: Option<String>,
}

/// `firmware: {role: upgrade, method: pull-coap}`: reads /5/0/8 and
/// /5/0/9 first (a method the device does not offer makes the case not
/// applicable), starts recording every State / Update Result transition, then
/// writes the Package URI (pull) or pushes the image with Block1 (push).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSpec {
    /// What the image is to the device (`upgrade`, `corrupted`, ...): the
    /// rig's `firmware.roles` maps it to one of the device's own images.
    pub role: Option<String>,
    /// Refused with a message: a case names firmware by role, never by file.
    pub image: Option<String>,
    /// `pull-coap` (default), `pull-http` or `push`.
    pub method: Option<String>,
    /// Block size in bytes (16..1024): what the device asks for in a CoAP
    /// pull (set through the dialect's `fw_block_size`), what the server
    /// starts with in a push.
    pub block_size: Option<u32>,
    /// Expected response code of the Package URI write or the push (default 2.04).
    pub code: Option<String>,
    /// A Package URI to write instead of the store's (to provoke Invalid URI
    /// or Unsupported Protocol); no `role` is needed then.
    pub uri: Option<String>,
}

/// `bootstrap: {script: [...]}`: each operation as the bootstrap server sends
/// it, with the response code(s) a conforming device answers (or `expect`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSpec {
    pub script: Vec<BootstrapOpSpec>,
}

/// One operation: `discover: /`, `delete: /1`, `read: /1`, `write: security`
/// (the /0 instance of this run's server account), `write: server` (its /1
/// instance), `write: invalid-security` (a /0 instance without Server URI), `finish: true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapOpSpec {
    pub discover: Option<String>,
    pub delete: Option<String>,
    pub read: Option<String>,
    pub write: Option<String>,
    pub finish: Option<bool>,
    /// Response codes accepted instead of the operation's success code, e.g. `"4.00"`.
    #[serde(default)]
    pub expect: Vec<String>,
}

/// `debug: {key: energy.committed_wh, save: before}` then
/// `debug: {key: energy.committed_wh, at_least: before}`: what the device
/// holds, independent of what it says over LwM2M.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugSpec {
    pub key: String,
    /// Remember the value under this name.
    pub save: Option<String>,
    /// The value is a number at least the one saved under this name.
    pub at_least: Option<String>,
    /// The value equals this text.
    pub equals: Option<String>,
}

/// How a device came back from a power cut: `recovered` (registered again,
/// state consistent), `rolled_back` (old firmware, failure result reported)
/// or `broken` (does not register, or what it reports disagrees with what
/// its debug port reads). A broken device fails the case; `allow` narrows
/// what passes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifySpec {
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    pub within: Option<Duration>,
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatSpec {
    /// A number, or `${NAME:-20}`: the variable NAME (from `--var` or the
    /// environment), 20 when it is not set.
    pub times: ScalarValue,
    pub steps: Vec<Spanned<StepSpec>>,
}

/// A value written in a case: typed later by the object model.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ScalarValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScalarValue::Bool(b) => write!(f, "{b}"),
            ScalarValue::Integer(i) => write!(f, "{i}"),
            ScalarValue::Float(x) => write!(f, "{x}"),
            ScalarValue::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A step written short (`execute: /3/0/4`) or long (a map). Unlike an
/// untagged enum, a mistake inside the map keeps its own message and position
/// (serde's untagged enums only say "did not match any variant").
#[derive(Debug, Clone)]
pub enum StringOr<M> {
    Short(String),
    Long(M),
}

impl<'de, M: Deserialize<'de>> Deserialize<'de> for StringOr<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<M>(std::marker::PhantomData<M>);
        impl<'de, M: Deserialize<'de>> serde::de::Visitor<'de> for Visit<M> {
            type Value = StringOr<M>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a map")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOr::Short(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                M::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(StringOr::Long)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}
