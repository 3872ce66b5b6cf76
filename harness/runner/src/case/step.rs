//! Steps, validated from their YAML form: paths parsed, formats named, exactly
//! one action per step.

use std::time::Duration;

use lwm2m::server::WriteMode;
use lwm2m::{ContentFormat, Path};

use crate::case::model::{
    AtSpec, AwaitSpec, ExpectSpec, PowerAction, ScalarValue, StepSpec, StringOr,
};

#[derive(Debug, Clone)]
pub struct Step {
    /// Line in the case file, for failure messages.
    pub line: u32,
    pub action: Action,
    pub within: Option<Duration>,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Action {
    Power(PowerAction),
    PowerCut {
        trigger: CutTrigger,
        restore_after: Duration,
    },
    At {
        line: AtLine,
        expect: AtFinal,
        contains: Option<String>,
    },
    Await(AwaitTarget),
    Read {
        path: Path,
        format: Option<ContentFormat>,
        mandatory: bool,
        code: u16,
    },
    Write {
        path: Path,
        value: ScalarValue,
        format: Option<ContentFormat>,
        mode: WriteMode,
        code: u16,
    },
    Execute {
        path: Path,
        args: Option<String>,
        code: u16,
    },
    Discover {
        path: Path,
        contains: Vec<String>,
    },
    Observe {
        path: Path,
        format: Option<ContentFormat>,
        pmin: Option<u32>,
        pmax: Option<u32>,
    },
    CancelObserve {
        path: Path,
    },
    ExpectValue {
        path: Path,
        condition: ValueCondition,
    },
    ExpectRegistration(crate::case::model::RegistrationExpect),
    Sleep(Duration),
    Firmware(FirmwareStep),
    StopFileServers,
    Bootstrap(Vec<BootstrapStepOpWithCodes>),
    Credentials(CredentialChange),
    ExpectOldCredentialRefused,
    Debug {
        key: String,
        check: DebugCheck,
    },
    Classify {
        within: Option<Duration>,
        allow: Vec<Recovery>,
    },
    /// The nested steps, `times` times over; each round's random cuts get their own seed.
    Repeat {
        times: u32,
        steps: Vec<Step>,
    },
    /// What the lab makes the device's network do (the rig's network control).
    Network(rig::NetworkAction),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapStepOp {
    Discover(Path),
    Delete(Path),
    Read(Path),
    WriteSecurity,
    WriteServer,
    WriteInvalidSecurity,
    Finish,
}

#[derive(Debug, Clone)]
pub struct BootstrapStepOpWithCodes {
    pub op: BootstrapStepOp,
    pub expect: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DebugCheck {
    Save(String),
    AtLeast(String),
    Equals(String),
}

/// The three ways a device comes back from a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Recovered,
    RolledBack,
    Broken,
}

impl Recovery {
    pub fn name(self) -> &'static str {
        match self {
            Recovery::Recovered => "recovered",
            Recovery::RolledBack => "rolled_back",
            Recovery::Broken => "broken",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialChange {
    Rotate,
    BreakServer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareMethod {
    PullCoap,
    /// CoAP Block2 under DTLS 1.2 PSK (`coaps://`), the device's server PSK.
    PullCoaps,
    PullHttp,
    Push,
}

impl FirmwareMethod {
    pub fn name(self) -> &'static str {
        match self {
            FirmwareMethod::PullCoap => "pull-coap",
            FirmwareMethod::PullCoaps => "pull-coaps",
            FirmwareMethod::PullHttp => "pull-http",
            FirmwareMethod::Push => "push",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FirmwareStep {
    /// The firmware role (`upgrade`, `corrupted`); none when `uri` replaces
    /// the store's Package URI.
    pub role: Option<String>,
    pub method: FirmwareMethod,
    /// Block size exponent (RFC 7959 SZX, 0..=6).
    pub szx: Option<u8>,
    pub code: u16,
    pub uri: Option<String>,
}

/// What makes a `power_cut` step cut.
#[derive(Debug, Clone)]
pub enum CutTrigger {
    Value { path: Path, equals: ScalarValue },
    SerialLine(String),
    Message(String),
    Random { from: Duration, to: Duration },
    After(Duration),
    Delivered(f64),
}

impl std::fmt::Display for CutTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CutTrigger::Value { path, equals } => write!(f, "when {} = {equals}", shown(path)),
            CutTrigger::SerialLine(l) => write!(f, "when the serial line {l:?} appears"),
            CutTrigger::Message(m) => write!(f, "when a datagram {m:?} reaches the server"),
            CutTrigger::Random { from, to } => write!(f, "at a random moment in {from:?}..{to:?}"),
            CutTrigger::After(d) => write!(f, "after {d:?}"),
            CutTrigger::Delivered(x) => {
                write!(f, "when {:.0}% of the image has been delivered", x * 100.0)
            }
        }
    }
}

/// Power-off time of a brown-out.
pub const BROWNOUT: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub enum AtLine {
    Literal(String),
    /// A command from the modem's dialect file, with values for its placeholders.
    Named(String, std::collections::BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtFinal {
    Ok,
    Error,
    Cme(u16),
}

#[derive(Debug, Clone)]
pub enum AwaitTarget {
    Registered,
    Deregistered,
    Updated,
    Value {
        path: Path,
        condition: ValueCondition,
    },
    Notifications {
        path: Path,
        count: u32,
    },
    SerialLine(String),
    Bootstrapped,
    HandshakeRefused,
    Forbidden,
    /// A new registration since the previous step began (after an AT
    /// command that makes the device re-attach, say).
    Reregistered,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueCondition {
    Equals(ScalarValue),
    NotEquals(ScalarValue),
    Changes,
}

impl std::fmt::Display for ValueCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueCondition::Equals(v) => write!(f, "equals {v}"),
            ValueCondition::NotEquals(v) => write!(f, "differs from {v}"),
            ValueCondition::Changes => f.write_str("changes"),
        }
    }
}

/// Where a step went wrong: line, column, message.
pub type Located = (u64, u64, String);

impl Step {
    /// Validates a step as written, nested `repeat` steps included, keeping each one's position.
    pub fn from_spanned(
        spanned: serde_saphyr::Spanned<StepSpec>,
        vars: &crate::case::Vars,
    ) -> Result<Step, Located> {
        let (line, column) = (spanned.referenced.line(), spanned.referenced.column());
        let mut spec = spanned.value;
        if let Some(repeat) = spec.repeat.take() {
            let note = spec.note.clone();
            if Step::from_spec(spec, line as u32).is_ok() {
                return Err((
                    line,
                    column,
                    "a repeat step holds only `repeat` (and `note`)".into(),
                ));
            }
            let times = repeat_times(&repeat.times, vars).map_err(|m| (line, column, m))?;
            if repeat.steps.is_empty() {
                return Err((line, column, "repeat needs at least one step".into()));
            }
            let steps = repeat
                .steps
                .into_iter()
                .map(|s| Step::from_spanned(s, vars))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Step {
                line: line as u32,
                action: Action::Repeat { times, steps },
                within: None,
                note,
            });
        }
        Step::from_spec(spec, line as u32).map_err(|m| (line, column, m))
    }

    pub fn from_spec(spec: StepSpec, line: u32) -> Result<Step, String> {
        let mut within = spec.within;
        let note = spec.note.clone();
        let mut actions = Vec::new();
        if let Some(p) = spec.power {
            actions.push(Action::Power(p));
        }
        if let Some(d) = spec.debug {
            let check = match (d.save, d.at_least, d.equals) {
                (Some(n), None, None) => DebugCheck::Save(n),
                (None, Some(n), None) => DebugCheck::AtLeast(n),
                (None, None, Some(v)) => DebugCheck::Equals(v),
                _ => return Err("debug: give one of save, at_least, equals".into()),
            };
            actions.push(Action::Debug { key: d.key, check });
        }
        if let Some(c) = spec.classify {
            let allow = c
                .allow
                .iter()
                .map(|a| match a.as_str() {
                    "recovered" => Ok(Recovery::Recovered),
                    "rolled_back" => Ok(Recovery::RolledBack),
                    other => Err(format!(
                        "classify allow {other:?}: expected recovered or rolled_back"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            actions.push(Action::Classify {
                within: c.within,
                allow,
            });
        }
        if let Some(b) = spec.bootstrap {
            actions.push(bootstrap_action(b)?);
        }
        if let Some(c) = spec.credentials {
            actions.push(Action::Credentials(match c.as_str() {
                "rotate" => CredentialChange::Rotate,
                "break-server" => CredentialChange::BreakServer,
                other => {
                    return Err(format!(
                        "credentials {other:?}: expected rotate or break-server"
                    ))
                }
            }));
        }
        if let Some(f) = spec.firmware_server {
            if f != "stop" {
                return Err(format!("firmware_server {f:?}: expected stop"));
            }
            actions.push(Action::StopFileServers);
        }
        if let Some(f) = spec.firmware {
            actions.push(firmware_action(f)?);
        }
        if let Some(n) = spec.network {
            actions.push(Action::Network(network_action(n)?));
        }
        if let Some(cut) = spec.power_cut {
            actions.push(power_cut_action(cut)?);
        }
        if let Some(at) = spec.at {
            actions.push(at_action(at)?);
        }
        if let Some(a) = spec.await_ {
            if let StringOr::Long(v) = &a {
                within = within.or(v.within);
            }
            actions.push(Action::Await(await_target(a)?));
        }
        if let Some(r) = spec.read {
            actions.push(Action::Read {
                path: path(&r.path)?,
                format: format(r.format.as_deref())?,
                mandatory: r.mandatory,
                code: code(r.code.as_deref(), 205)?,
            });
        }
        if let Some(w) = spec.write {
            let mode = match w.mode.as_deref() {
                None | Some("replace") => WriteMode::Replace,
                Some("partial") => WriteMode::PartialUpdate,
                Some(other) => {
                    return Err(format!("write mode {other:?}: expected replace or partial"))
                }
            };
            actions.push(Action::Write {
                path: path(&w.path)?,
                value: w.value,
                format: format(w.format.as_deref())?,
                mode,
                code: code(w.code.as_deref(), 204)?,
            });
        }
        if let Some(e) = spec.execute {
            let (p, args, c) = match e {
                StringOr::Short(p) => (p, None, None),
                StringOr::Long(f) => (f.path, f.args, f.code),
            };
            actions.push(Action::Execute {
                path: path(&p)?,
                args,
                code: code(c.as_deref(), 204)?,
            });
        }
        if let Some(d) = spec.discover {
            let (p, contains) = match d {
                StringOr::Short(p) => (p, Vec::new()),
                StringOr::Long(f) => (f.path, f.contains),
            };
            actions.push(Action::Discover {
                path: path(&p)?,
                contains,
            });
        }
        if let Some(o) = spec.observe {
            actions.push(Action::Observe {
                path: path(&o.path)?,
                format: format(o.format.as_deref())?,
                pmin: o.pmin,
                pmax: o.pmax,
            });
        }
        if let Some(p) = spec.cancel_observe {
            actions.push(Action::CancelObserve { path: path(&p)? });
        }
        if let Some(e) = spec.expect {
            actions.push(expect_action(e)?);
        }
        if let Some(d) = spec.sleep {
            actions.push(Action::Sleep(d));
        }
        match actions.len() {
            1 => Ok(Step { line, action: actions.remove(0), within, note }),
            0 => Err("a step needs one action: power, power_cut, firmware, firmware_server, network, bootstrap, credentials, debug, classify, at, await, read, write, execute, discover, observe, cancel_observe, expect or sleep".into()),
            n => Err(format!("a step holds one action, this one holds {n}; split it into {n} steps")),
        }
    }

    /// A short description for the step log.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Power(p) => format!("power {p:?}").to_lowercase(),
            Action::PowerCut {
                trigger,
                restore_after,
            } => {
                format!("power cut {trigger}, restored after {restore_after:?}")
            }
            Action::At {
                line: AtLine::Literal(l),
                ..
            } => format!("at {l}"),
            Action::At {
                line: AtLine::Named(n, _),
                ..
            } => format!("at <{n}>"),
            Action::Await(t) => format!("await {}", describe_await(t)),
            Action::Read { path, format, .. } => {
                format!(
                    "read {}{}",
                    shown(path),
                    format
                        .map(|f| format!(" as {}", f.name()))
                        .unwrap_or_default()
                )
            }
            Action::Write { path, value, .. } => format!("write {} = {value}", shown(path)),
            Action::Execute { path, .. } => format!("execute {}", shown(path)),
            Action::Discover { path, .. } => format!("discover {}", shown(path)),
            Action::Observe { path, .. } => format!("observe {}", shown(path)),
            Action::CancelObserve { path } => format!("cancel observe {}", shown(path)),
            Action::ExpectValue { path, condition } => {
                format!("expect {} {condition}", shown(path))
            }
            Action::ExpectRegistration(_) => "expect registration".into(),
            Action::Sleep(d) => format!("sleep {d:?}"),
            Action::Firmware(f) => match (&f.role, &f.uri) {
                (Some(role), _) => format!("firmware {role} by {}", f.method.name()),
                (None, Some(uri)) => format!("firmware Package URI {uri:?}"),
                (None, None) => "firmware".into(),
            },
            Action::Network(action) => format!("network {action}"),
            Action::StopFileServers => "firmware file servers stop answering".into(),
            Action::Bootstrap(ops) => format!("bootstrap script of {} operations", ops.len()),
            Action::Credentials(CredentialChange::Rotate) => "rotate the server credential".into(),
            Action::Credentials(CredentialChange::BreakServer) => {
                "server stops accepting the device's key".into()
            }
            Action::ExpectOldCredentialRefused => "expect the replaced credential refused".into(),
            Action::Debug { key, .. } => format!("debug read {key}"),
            Action::Classify { .. } => "classify the device after the cut".into(),
            Action::Repeat { times, steps } => {
                format!("repeat {times} times ({} steps)", steps.len())
            }
        }
    }
}

fn describe_await(t: &AwaitTarget) -> String {
    match t {
        AwaitTarget::Registered => "registered".into(),
        AwaitTarget::Deregistered => "deregistered".into(),
        AwaitTarget::Updated => "registration update".into(),
        AwaitTarget::Value { path, condition } => format!("{} {condition}", shown(path)),
        AwaitTarget::Notifications { path, count } => {
            format!("{count} notification(s) of {}", shown(path))
        }
        AwaitTarget::SerialLine(l) => format!("serial line {l:?}"),
        AwaitTarget::Bootstrapped => "bootstrap finished".into(),
        AwaitTarget::HandshakeRefused => "a refused DTLS handshake".into(),
        AwaitTarget::Forbidden => "a 4.03 Forbidden".into(),
        AwaitTarget::Reregistered => "a new registration since the previous step".into(),
    }
}

fn bootstrap_action(b: crate::case::model::BootstrapSpec) -> Result<Action, String> {
    let mut ops = Vec::new();
    for (i, o) in b.script.into_iter().enumerate() {
        let mut found = Vec::new();
        if let Some(p) = o.discover {
            found.push(BootstrapStepOp::Discover(path(&p)?));
        }
        if let Some(p) = o.delete {
            found.push(BootstrapStepOp::Delete(path(&p)?));
        }
        if let Some(p) = o.read {
            found.push(BootstrapStepOp::Read(path(&p)?));
        }
        if let Some(w) = o.write {
            found.push(match w.as_str() {
                "security" => BootstrapStepOp::WriteSecurity,
                "server" => BootstrapStepOp::WriteServer,
                "invalid-security" => BootstrapStepOp::WriteInvalidSecurity,
                other => return Err(format!("bootstrap script[{i}]: write {other:?}: expected security, server or invalid-security")),
            });
        }
        if o.finish == Some(true) {
            found.push(BootstrapStepOp::Finish);
        }
        if found.len() != 1 {
            return Err(format!(
                "bootstrap script[{i}]: give one of discover, delete, read, write, finish"
            ));
        }
        let expect = o
            .expect
            .iter()
            .map(|c| code(Some(c), 0))
            .collect::<Result<Vec<_>, _>>()?;
        ops.push(BootstrapStepOpWithCodes {
            op: found.remove(0),
            expect,
        });
    }
    if ops.is_empty() {
        return Err("bootstrap: the script needs at least one operation".into());
    }
    Ok(Action::Bootstrap(ops))
}

fn firmware_action(f: crate::case::model::FirmwareSpec) -> Result<Action, String> {
    let method = match f.method.as_deref().unwrap_or("pull-coap") {
        "pull-coap" => FirmwareMethod::PullCoap,
        "pull-coaps" => FirmwareMethod::PullCoaps,
        "pull-http" => FirmwareMethod::PullHttp,
        "push" => FirmwareMethod::Push,
        other => {
            return Err(format!(
                "firmware method {other:?}: expected pull-coap, pull-coaps, pull-http or push"
            ))
        }
    };
    let szx = f
        .block_size
        .map(|size| {
            (0..=6u8).find(|szx| 16u32 << szx == size).ok_or_else(|| {
                format!("firmware block_size {size}: expected 16, 32, 64, 128, 256, 512 or 1024")
            })
        })
        .transpose()?;
    if f.image.is_some() {
        return Err("firmware: name the firmware by its role (`role: upgrade`), not by a file: the rig's `firmware.roles` maps roles to the device's own images".into());
    }
    let role = match (f.role, &f.uri) {
        (Some(r), _) if !rig::network::is_name(&r) => {
            return Err(format!(
            "firmware role {r:?}: use a-z, 0-9 and - (upgrade, corrupted, unbootable, too-large)"
        ))
        }
        (Some(r), _) => Some(r),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(
                "firmware: give `role` (upgrade, corrupted, ...) or a Package URI `uri`".into(),
            )
        }
    };
    Ok(Action::Firmware(FirmwareStep {
        role,
        method,
        szx,
        code: code(f.code.as_deref(), 204)?,
        uri: f.uri,
    }))
}

fn network_action(n: crate::case::model::NetworkStepSpec) -> Result<rig::NetworkAction, String> {
    match n {
        StringOr::Short(s) if s == "accept-all" => Ok(rig::NetworkAction::AcceptAll),
        StringOr::Short(other) => Err(format!(
            "network {other:?}: expected accept-all or {{refuse: <profile>}}"
        )),
        StringOr::Long(l) => {
            let profile = l.refuse.ok_or(
                "network: give `refuse: <profile>` (first-profile, second-profile, profile-<n>)",
            )?;
            let slot = profile
                .parse::<rig::ProfileSlot>()
                .map_err(|e| format!("network refuse {e}"))?;
            Ok(rig::NetworkAction::Refuse(slot))
        }
    }
}

/// `20`, `"${SOAK_CUTS:-20}"` or `"${SOAK_CUTS}"`.
fn repeat_times(v: &ScalarValue, vars: &crate::case::Vars) -> Result<u32, String> {
    let text = match v {
        ScalarValue::Integer(n) => n.to_string(),
        ScalarValue::Text(t) => match t.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(inner) => {
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                vars.get(name)
                    .cloned()
                    .or_else(|| std::env::var(name).ok())
                    .or(default.map(str::to_string))
                    .ok_or_else(|| {
                        format!("repeat: variable {name} is not set (use --var {name}=N)")
                    })?
            }
            None => t.clone(),
        },
        other => {
            return Err(format!(
                "repeat: times must be a number or ${{NAME:-default}}, found {other}"
            ))
        }
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| format!("repeat: times must be a number from 1 to 10000, found {text:?}"))
}

fn power_cut_action(cut: crate::case::model::PowerCutSpec) -> Result<Action, String> {
    let mut triggers = Vec::new();
    match (cut.path, cut.equals) {
        (Some(p), Some(v)) => triggers.push(CutTrigger::Value {
            path: path(&p)?,
            equals: v,
        }),
        (None, None) => {}
        _ => return Err("power_cut: `path` and `equals` go together".into()),
    }
    if let Some(l) = cut.line {
        triggers.push(CutTrigger::SerialLine(l));
    }
    if let Some(m) = cut.message {
        triggers.push(CutTrigger::Message(m));
    }
    if let Some(window) = cut.random_within {
        let [from, to] = window.as_slice() else {
            return Err("power_cut: random_within takes two durations, [from, to]".into());
        };
        let from = rig::duration::parse_duration(from)?;
        let to = rig::duration::parse_duration(to)?;
        if to < from {
            return Err("power_cut: random_within's end comes before its start".into());
        }
        triggers.push(CutTrigger::Random { from, to });
    }
    if let Some(d) = cut.after {
        triggers.push(CutTrigger::After(d));
    }
    if let Some(x) = cut.delivered {
        if !(0.0..=1.0).contains(&x) {
            return Err(format!(
                "power_cut: delivered {x} is a fraction from 0 to 1"
            ));
        }
        triggers.push(CutTrigger::Delivered(x));
    }
    let restore_after = cut.restore_after.unwrap_or(Duration::from_secs(1));
    match triggers.len() {
        1 => Ok(Action::PowerCut {
            trigger: triggers.remove(0),
            restore_after,
        }),
        0 => Err("power_cut: say when: path+equals, line, message, random_within or after".into()),
        _ => Err("power_cut: give one trigger only".into()),
    }
}

fn at_action(at: AtSpec) -> Result<Action, String> {
    let full = match at {
        StringOr::Short(l) => {
            return Ok(Action::At {
                line: AtLine::Literal(l),
                expect: AtFinal::Ok,
                contains: None,
            })
        }
        StringOr::Long(f) => f,
    };
    let line = match (full.send, full.command) {
        (Some(l), None) => AtLine::Literal(l),
        (None, Some(c)) => AtLine::Named(c, full.vars),
        _ => {
            return Err(
                "at: give either `send` (a command line) or `command` (a dialect command name)"
                    .into(),
            )
        }
    };
    let expect = match full.expect.as_deref().map(str::trim) {
        None | Some("OK") => AtFinal::Ok,
        Some("ERROR") => AtFinal::Error,
        Some(other) => other
            .strip_prefix("CME")
            .and_then(|n| n.trim().parse().ok())
            .map(AtFinal::Cme)
            .ok_or_else(|| format!("at expect {other:?}: expected OK, ERROR or `CME <n>`"))?,
    };
    Ok(Action::At {
        line,
        expect,
        contains: full.contains,
    })
}

fn await_target(a: AwaitSpec) -> Result<AwaitTarget, String> {
    let v = match a {
        StringOr::Short(e) => {
            return match e.as_str() {
                "registered" => Ok(AwaitTarget::Registered),
                "deregistered" => Ok(AwaitTarget::Deregistered),
                "updated" => Ok(AwaitTarget::Updated),
                "bootstrapped" => Ok(AwaitTarget::Bootstrapped),
                "forbidden" => Ok(AwaitTarget::Forbidden),
                "reregistered" => Ok(AwaitTarget::Reregistered),
                other => Err(format!(
                    "await {other:?}: expected registered, deregistered, updated or a map with path/notification/line"
                )),
            }
        }
        StringOr::Long(v) => v,
    };
    if let Some(line) = v.line {
        return Ok(AwaitTarget::SerialLine(line));
    }
    if v.handshake_refused == Some(true) {
        return Ok(AwaitTarget::HandshakeRefused);
    }
    if let Some(n) = v.notification {
        return Ok(AwaitTarget::Notifications {
            path: path(&n)?,
            count: v.count.unwrap_or(1),
        });
    }
    let p = v
        .path
        .ok_or("await: give `path`, `notification` or `line`")?;
    let condition = condition(v.equals, v.not_equals, v.changes.unwrap_or(false))?;
    Ok(AwaitTarget::Value {
        path: path(&p)?,
        condition,
    })
}

fn expect_action(e: ExpectSpec) -> Result<Action, String> {
    if let Some(o) = e.old_credential {
        return match o.as_str() {
            "refused" => Ok(Action::ExpectOldCredentialRefused),
            other => Err(format!("expect old_credential {other:?}: expected refused")),
        };
    }
    if let Some(r) = e.registration {
        return Ok(Action::ExpectRegistration(r));
    }
    let p = e
        .path
        .ok_or("expect: give `path` with `equals`/`not_equals`, or `registration`")?;
    let condition = condition(e.equals, e.not_equals, false)?;
    Ok(Action::ExpectValue {
        path: path(&p)?,
        condition,
    })
}

fn condition(
    equals: Option<ScalarValue>,
    not_equals: Option<ScalarValue>,
    changes: bool,
) -> Result<ValueCondition, String> {
    match (equals, not_equals, changes) {
        (Some(v), None, false) => Ok(ValueCondition::Equals(v)),
        (None, Some(v), false) => Ok(ValueCondition::NotEquals(v)),
        (None, None, true) => Ok(ValueCondition::Changes),
        _ => Err("give exactly one of `equals`, `not_equals`, `changes: true`".into()),
    }
}

/// The instance id a case path holds where it was written `*` (`/5/*/3`):
/// "the instance the device registered", found in its registration when the
/// step runs ([`Action::resolve_instances`]). 65535 is reserved by the TS
/// (LwM2M 1.1 Core §7.2.1), so no device instance is ever mistaken for it.
pub const ANY_INSTANCE: u16 = u16::MAX;

/// A case path: `/obj[/inst[/res[/ri]]]`, where the instance may be `*`.
pub fn path(text: &str) -> Result<Path, String> {
    let segments: Vec<&str> = text.trim_start_matches('/').split('/').collect();
    if segments.len() >= 2 && segments[1] == "*" {
        let mut concrete = segments.clone();
        concrete[1] = "0";
        let p: Path = format!("/{}", concrete.join("/"))
            .parse()
            .map_err(|e: lwm2m::PathError| format!("{text}: {e}"))?;
        let mut ids = p.ids().to_vec();
        ids[1] = ANY_INSTANCE;
        return Path::from_ids(&ids).ok_or_else(|| format!("{text}: not a path"));
    }
    text.parse().map_err(|e: lwm2m::PathError| e.to_string())
}

/// A case path as written: `*` for [`ANY_INSTANCE`].
pub fn shown(path: &Path) -> String {
    if path.instance_id() == Some(ANY_INSTANCE) {
        let mut segments = path.segments();
        segments[1] = "*".into();
        format!("/{}", segments.join("/"))
    } else {
        path.to_string()
    }
}

impl Action {
    /// The action with every `*` instance replaced by `instance_of(object)`.
    pub fn resolve_instances<E>(
        &self,
        instance_of: &mut impl FnMut(u16) -> Result<u16, E>,
    ) -> Result<Action, E> {
        let mut resolve = |p: &Path| -> Result<Path, E> {
            match (p.object_id(), p.instance_id()) {
                (Some(object), Some(ANY_INSTANCE)) => {
                    let mut ids = p.ids().to_vec();
                    ids[1] = instance_of(object)?;
                    Ok(Path::from_ids(&ids).unwrap_or(*p))
                }
                _ => Ok(*p),
            }
        };
        let mut action = self.clone();
        match &mut action {
            Action::Read { path, .. }
            | Action::Write { path, .. }
            | Action::Execute { path, .. }
            | Action::Discover { path, .. }
            | Action::Observe { path, .. }
            | Action::CancelObserve { path }
            | Action::ExpectValue { path, .. }
            | Action::Await(AwaitTarget::Value { path, .. })
            | Action::Await(AwaitTarget::Notifications { path, .. })
            | Action::PowerCut {
                trigger: CutTrigger::Value { path, .. },
                ..
            } => *path = resolve(path)?,
            _ => {}
        }
        Ok(action)
    }

    /// Whether the action names a path by `*` instance.
    pub fn has_any_instance(&self) -> bool {
        let mut found = false;
        let _ = self.resolve_instances(&mut |_| {
            found = true;
            Err(())
        });
        found
    }
}

/// Firmware roles a written value, an expected value or a debug check
/// names: `{fw_url:ROLE}`, `{fw_http_url:ROLE}`, `{fw_version:ROLE}`.
pub const ROLE_MARKERS: [&str; 3] = ["{fw_url:", "{fw_http_url:", "{fw_version:"];

/// The roles `text` names through [`ROLE_MARKERS`].
pub fn roles_in(text: &str) -> Vec<String> {
    let mut roles = Vec::new();
    for marker in ROLE_MARKERS {
        let mut rest = text;
        while let Some(start) = rest.find(marker) {
            let after = &rest[start + marker.len()..];
            let Some(end) = after.find('}') else { break };
            roles.push(after[..end].to_string());
            rest = &after[end + 1..];
        }
    }
    roles
}

impl Step {
    /// Every firmware role this step (and a repeat's nested steps) names.
    pub fn firmware_roles(&self, out: &mut Vec<String>) {
        let text = |v: &ScalarValue| match v {
            ScalarValue::Text(t) => roles_in(t),
            _ => Vec::new(),
        };
        let condition = |c: &ValueCondition| match c {
            ValueCondition::Equals(v) | ValueCondition::NotEquals(v) => text(v),
            ValueCondition::Changes => Vec::new(),
        };
        match &self.action {
            Action::Firmware(f) => out.extend(f.role.clone()),
            Action::Write { value, .. } => out.extend(text(value)),
            Action::ExpectValue { condition: c, .. }
            | Action::Await(AwaitTarget::Value { condition: c, .. }) => out.extend(condition(c)),
            Action::Debug {
                check: DebugCheck::Equals(v),
                ..
            } => out.extend(roles_in(v)),
            Action::Repeat { steps, .. } => {
                for s in steps {
                    s.firmware_roles(out);
                }
            }
            _ => {}
        }
        out.sort();
        out.dedup();
    }

    /// Every network action this step (and a repeat's nested steps) takes.
    pub fn network_actions(&self, out: &mut Vec<rig::NetworkAction>) {
        match &self.action {
            Action::Network(a) => out.push(*a),
            Action::Repeat { steps, .. } => {
                for s in steps {
                    s.network_actions(out);
                }
            }
            _ => {}
        }
    }
}

fn format(name: Option<&str>) -> Result<Option<ContentFormat>, String> {
    name.map(|n| {
        ContentFormat::from_name(n).ok_or_else(|| {
            let names: Vec<_> = ContentFormat::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format {n:?}: expected one of {}", names.join(", "))
        })
    })
    .transpose()
}

/// `2.05` -> 205.
fn code(text: Option<&str>, default: u16) -> Result<u16, String> {
    let Some(t) = text else { return Ok(default) };
    let (class, detail) = t
        .split_once('.')
        .and_then(|(c, d)| Some((c.parse::<u16>().ok()?, d.parse::<u16>().ok()?)))
        .filter(|(c, d)| (2..=5).contains(c) && *d < 32)
        .ok_or_else(|| format!("response code {t:?}: expected class.detail like 2.04 or 4.05"))?;
    Ok(class * 100 + detail)
}
