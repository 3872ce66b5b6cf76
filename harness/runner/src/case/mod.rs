//! Loading conformance cases: YAML files under testcases/, checked in full
//! before any rig is touched, so a typo costs an error message, not a bench run.

pub mod fields;
pub mod model;
pub mod step;

pub use step::CaseStep;

/// Values for `${NAME:-default}` in case files: `--var NAME=VALUE`, then the environment.
pub type Vars = std::collections::BTreeMap<String, String>;

use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use model::CaseFile;

/// Default whole-case limit when the case names none.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Default limit of a case's `cleanup:`, apart from its `timeout`: enough
/// to write a few settings back and await the device's Update; a cleanup
/// that reboots the device gets the rig's reboot wait on top.
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A case, validated.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub title: String,
    pub ets: Vec<String>,
    pub needs: Vec<Need>,
    pub timeout: Duration,
    pub ignored: bool,
    /// A group case (`group:`): runs once per rig, on all its devices at once.
    pub group: Option<Group>,
    /// Path as given (relative to where meterbench was started), for messages.
    pub file: PathBuf,
    pub steps: Vec<CaseStep>,
    /// Steps that put the device back, run after `steps` however they
    /// ended (see [`crate::steps::cleanup`]); empty when the case has none.
    pub cleanup: Vec<CaseStep>,
    /// How long `cleanup` may take, apart from `timeout`.
    pub cleanup_timeout: Duration,
}

impl Case {
    /// The case's steps, then its cleanup's: what the case may do to the
    /// device, so what it needs and the firmware roles it names.
    pub fn all_steps(&self) -> impl Iterator<Item = &CaseStep> {
        self.steps.iter().chain(&self.cleanup)
    }
}

/// What a group case needs of its rig: every device, at least `min` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub min: usize,
}

/// The group of a case file's `group:`, checked: a group of one is none.
fn group_of(spec: &model::GroupSpec) -> Result<Group, String> {
    match spec {
        model::GroupSpec::All(model::GroupAll::All) => Ok(Group { min: 2 }),
        model::GroupSpec::AtLeast(model::GroupMin { min }) if *min >= 2 => Ok(Group { min: *min }),
        model::GroupSpec::AtLeast(model::GroupMin { min }) => Err(format!(
            "group: {{ min: {min} }}: a group needs at least 2 devices (a case for one device needs no `group:`)"
        )),
    }
}

/// A step that acts on the devices of a group (`group`, `campaign`) in a
/// case without `group:`: refused where it is written, since a case for
/// one device has no group to act on.
fn check_group_steps(steps: &[CaseStep], group: bool) -> Result<(), (u32, u32, String)> {
    for step in steps {
        if let crate::steps::StepKind::Repeat(repeat) = &step.kind {
            check_group_steps(&repeat.steps, group)?;
            continue;
        }
        if !group && crate::steps::kinds::group_case::acts_on_group(&step.kind) {
            return Err((
                step.line,
                step.column,
                format!(
                    "`{}` acts on a group of devices: the case needs `group: all` (or `group: {{ min: N }}`)",
                    step.kind.key()
                ),
            ));
        }
    }
    Ok(())
}

/// Something a case needs from the rig or the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Modem,
    Power,
    Debug,
    /// A debug port that reaches the MCU itself (SWD): flash, reset, symbols.
    Swd,
    /// The lab controls the device's network (the rig's `network:` part).
    NetworkControl,
    Object(u16),
    /// An optional resource, such as /3/0/15: the case runs only when the
    /// device lists it in its Discover answer (LwM2M 1.1 Core §5.4.2).
    Resource(lwm2m::Path),
    /// The rig onboards its device through meterbench's bootstrap server.
    Bootstrap,
    /// The rig gives its device PSK credentials that a case may change.
    Credentials,
    /// The device takes X.509 certificate-mode accounts (Security Mode 2):
    /// the rig's `device.certificate_mode`.
    CertificateMode,
    /// The device's smartcard holds bootstrap information (Bootstrap from
    /// Smartcard, Core §6.1.3.2): the rig's `device.smartcard`.
    SmartcardBootstrap,
    /// Network control that can take this action (implied by a `network` step).
    Network(rig::NetworkAction),
    /// A modem whose dialect maps this action (implied by an `at` step).
    ModemAction(String),
    /// A modem whose dialect recognises this event (implied by an `await`).
    ModemEvent(String),
    /// A value of the rig's `euicc:` part (`second.iccid`), implied by a
    /// `{euicc:...}` placeholder.
    Euicc(String),
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Modem => f.write_str("modem"),
            Need::Power => f.write_str("power"),
            Need::Debug => f.write_str("debug"),
            Need::Swd => f.write_str("swd"),
            Need::NetworkControl => f.write_str("network-control"),
            Need::Object(id) => write!(f, "object/{id}"),
            Need::Resource(path) => write!(f, "resource{}", fields::shown(path)),
            Need::Bootstrap => f.write_str("bootstrap"),
            Need::Credentials => f.write_str("credentials"),
            Need::CertificateMode => f.write_str("certificate-mode"),
            Need::SmartcardBootstrap => f.write_str("smartcard-bootstrap"),
            Need::Network(action) => write!(f, "network-control that can {action}"),
            Need::ModemAction(action) => write!(f, "modem action {action}"),
            Need::ModemEvent(event) => write!(f, "modem event {event}"),
            Need::Euicc(value) => write!(f, "euicc {value}"),
        }
    }
}

/// A case or rig file that cannot be used; the message starts with file:line:col.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct LoadError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl LoadError {
    pub fn new(file: &FsPath, line: u64, column: u64, message: impl Into<String>) -> Self {
        LoadError {
            file: file.display().to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Loads one case file.
pub fn load_case(file: &FsPath, vars: &Vars) -> Result<Case, LoadError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| LoadError::new(file, 0, 0, format!("cannot read case file: {e}")))?;
    let raw: CaseFile = serde_saphyr::from_str(&text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        LoadError::new(file, line, column, saphyr_message(&e.to_string()))
    })?;
    let needs = raw
        .needs
        .iter()
        .map(|n| parse_need(n).map_err(|e| LoadError::new(file, 1, 1, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.steps.is_empty() {
        return Err(LoadError::new(file, 1, 1, "a case needs at least one step"));
    }
    if raw.id.trim().is_empty() || raw.id.contains(char::is_whitespace) || raw.id.contains("::") {
        return Err(LoadError::new(
            file,
            1,
            1,
            format!("case id {:?} must be one word without '::'", raw.id),
        ));
    }
    let mut steps = raw.steps;
    bind_vars(&mut steps, vars).map_err(|(step, m)| LoadError::new(file, step.0, step.1, m))?;
    let (mut cleanup, cleanup_timeout) = cleanup_of(&text, raw.cleanup, raw.cleanup_timeout)
        .map_err(|(line, m)| LoadError::new(file, line, 1, m))?;
    bind_vars(&mut cleanup, vars).map_err(|(step, m)| LoadError::new(file, step.0, step.1, m))?;
    let group = raw.group.as_ref().map(group_of).transpose().map_err(|m| {
        // Where `group:` is written: the top-level key's line.
        let line = text
            .lines()
            .position(|l| l.starts_with("group:"))
            .map_or(1, |i| i as u64 + 1);
        LoadError::new(file, line, 1, m)
    })?;
    check_group_steps(&steps, group.is_some())
        .map_err(|(line, column, m)| LoadError::new(file, u64::from(line), u64::from(column), m))?;
    check_group_steps(&cleanup, group.is_some())
        .map_err(|(line, column, m)| LoadError::new(file, u64::from(line), u64::from(column), m))?;
    Ok(Case {
        id: raw.id,
        title: raw.title,
        ets: raw.ets,
        needs,
        timeout: raw.timeout.unwrap_or(DEFAULT_CASE_TIMEOUT),
        ignored: raw.ignored,
        group,
        file: file.to_path_buf(),
        steps,
        cleanup,
        cleanup_timeout,
    })
}

/// The line of a top-level key of a case file (1 when it is not found).
fn key_line(text: &str, key: &str) -> u64 {
    text.lines()
        .position(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
        .map_or(1, |i| i as u64 + 1)
}

/// A case file's `cleanup:` and `cleanup_timeout:`, checked; a refusal
/// names the line of the key it is about.
fn cleanup_of(
    text: &str,
    cleanup: Option<Vec<CaseStep>>,
    timeout: Option<Duration>,
) -> Result<(Vec<CaseStep>, Duration), (u64, String)> {
    let Some(cleanup) = cleanup else {
        return match timeout {
            Some(_) => Err((
                key_line(text, "cleanup_timeout"),
                "`cleanup_timeout` without `cleanup`: there is no cleanup for it to limit".into(),
            )),
            None => Ok((Vec::new(), DEFAULT_CLEANUP_TIMEOUT)),
        };
    };
    let line = key_line(text, "cleanup");
    if cleanup.is_empty() {
        return Err((
            line,
            "`cleanup:` holds no step: give the steps that put the device back, or leave the key out"
                .into(),
        ));
    }
    if timeout.is_some_and(|t| t.is_zero()) {
        return Err((
            key_line(text, "cleanup_timeout"),
            "`cleanup_timeout: 0s` leaves the cleanup no time: give it a limit above 0".into(),
        ));
    }
    Ok((cleanup, timeout.unwrap_or(DEFAULT_CLEANUP_TIMEOUT)))
}

/// Loads every `*.yaml` / `*.yml` under `dir`, sorted by path. Duplicate ids are an error.
pub fn load_cases(dir: &FsPath, vars: &Vars) -> Result<Vec<Case>, LoadError> {
    let mut files = Vec::new();
    collect_yaml(dir, &mut files)
        .map_err(|e| LoadError::new(dir, 0, 0, format!("cannot read cases folder: {e}")))?;
    files.sort();
    let mut cases: Vec<Case> = Vec::new();
    for f in files {
        let case = load_case(&f, vars)?;
        if let Some(other) = cases.iter().find(|c| c.id == case.id) {
            return Err(LoadError::new(
                &f,
                1,
                1,
                format!(
                    "case id {:?} is already used by {}",
                    case.id,
                    other.file.display()
                ),
            ));
        }
        cases.push(case);
    }
    Ok(cases)
}

/// Binds the run's variables into `repeat` steps, nested ones included.
fn bind_vars(steps: &mut [CaseStep], vars: &Vars) -> Result<(), ((u64, u64), String)> {
    for step in steps {
        if let crate::steps::StepKind::Repeat(repeat) = &mut step.kind {
            let at = (u64::from(step.line), u64::from(step.column));
            repeat.bind(vars).map_err(|e| (at, e.to_string()))?;
            bind_vars(&mut repeat.steps, vars)?;
        }
    }
    Ok(())
}

fn collect_yaml(dir: &FsPath, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// A `needs:` entry that names nothing a rig can offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown need {0:?}: expected modem, power, debug, network-control, bootstrap, credentials, certificate-mode, smartcard-bootstrap, object/<id> or resource/<object>/<instance>/<resource>")]
pub struct UnknownNeed(String);

fn parse_need(text: &str) -> Result<Need, UnknownNeed> {
    match text {
        "modem" => Ok(Need::Modem),
        "power" => Ok(Need::Power),
        "debug" => Ok(Need::Debug),
        "swd" => Ok(Need::Swd),
        "network-control" => Ok(Need::NetworkControl),
        "bootstrap" => Ok(Need::Bootstrap),
        "credentials" => Ok(Need::Credentials),
        "certificate-mode" => Ok(Need::CertificateMode),
        "smartcard-bootstrap" => Ok(Need::SmartcardBootstrap),
        other => {
            let object = other
                .strip_prefix("object/")
                .and_then(|id| id.parse().ok())
                .map(Need::Object);
            let resource = other
                .strip_prefix("resource")
                .and_then(|p| fields::path(p).ok())
                .filter(|p| p.depth() == 3)
                .map(Need::Resource);
            object
                .or(resource)
                .ok_or_else(|| UnknownNeed(other.to_owned()))
        }
    }
}

/// serde-saphyr renders `error: line L column C: message` and a snippet; we
/// print `file:line:col: message`, so keep only the message.
fn saphyr_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.split_once(": ") {
        Some((position, message)) if position.starts_with("line ") => message.to_string(),
        _ => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::StepKind;

    fn load_text(text: &str) -> Result<Case, LoadError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("case.yaml");
        std::fs::write(&file, text).unwrap();
        load_case(&file, &Vars::new())
    }

    #[test]
    fn every_shipped_case_loads() {
        let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../../testcases");
        let cases = load_cases(&dir, &Vars::new()).unwrap();
        let mut files = Vec::new();
        collect_yaml(&dir, &mut files).unwrap();
        assert!(cases.len() >= 10);
        assert_eq!(
            cases.len(),
            files.len(),
            "every file under testcases/ is a case"
        );
        assert!(cases.iter().all(|c| !c.steps.is_empty()));
        // Each step reads back as its kind, in the case's words.
        assert!(cases
            .iter()
            .flat_map(|c| c.all_steps())
            .all(|s| !s.describe().is_empty() && s.line > 0));
        // The cases that restore what they change do it in a cleanup.
        for id in [
            "queue-psm-wakes-within-timers",
            "reg-extend-lifetime",
            "composite-write",
            "euicc-switch-fails-falls-back",
            "euicc-switch-profile",
        ] {
            let case = cases.iter().find(|c| c.id == id).unwrap();
            assert!(!case.cleanup.is_empty(), "{id} has a cleanup");
        }
    }

    #[test]
    fn steps_remember_their_line() {
        let case = load_text(
            "id: x\ntitle: t\nsteps:\n  - power: on\n\n  - await: registered\n    within: 5s\n",
        )
        .unwrap();
        assert_eq!(
            case.steps.iter().map(|s| s.line).collect::<Vec<_>>(),
            [4, 6]
        );
        assert_eq!(case.steps[1].within, Some(Duration::from_secs(5)));
    }

    #[test]
    fn mistakes_name_line_and_column() {
        let e = load_text("id: x\ntitle: t\nsteps:\n  - write: { path: /3/0/14, valu: 1 }\n")
            .unwrap_err();
        assert_eq!((e.line, e.column), (4, 29), "{e}");
        assert!(e.message.contains("unknown field `valu`"), "{e}");
        let e = load_text(
            "id: x\ntitle: t\nsteps:\n  - sleep: 1s\n  - read: { path: /3/0, format: xml }\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("unknown format \"xml\""), "{e}");
        let e =
            load_text("id: x\ntitle: t\nneeds: [teleporter]\nsteps:\n  - sleep: 1s\n").unwrap_err();
        assert!(e.message.contains("unknown need"), "{e}");
        let e = load_text("id: x\ntitle: t\nsteps: []\n").unwrap_err();
        assert!(e.message.contains("at least one step"), "{e}");
    }

    #[test]
    fn repeat_nests_steps_and_reads_its_count_from_a_variable() {
        let text = "id: x\ntitle: t\nsteps:\n  - repeat:\n      times: \"${MB_TEST_ROUNDS:-3}\"\n      steps:\n        - sleep: 1ms\n        - power: brownout\n";
        let case = load_text(text).unwrap();
        let StepKind::Repeat(repeat) = &case.steps[0].kind else {
            panic!("{:?}", case.steps[0])
        };
        assert_eq!(repeat.times(), 3, "the default applies");
        assert_eq!(
            repeat.steps.iter().map(|s| s.line).collect::<Vec<_>>(),
            [7, 8]
        );
        assert_eq!(case.steps[0].describe(), "repeat 3 times (2 steps)");
        let vars: Vars = [("MB_TEST_ROUNDS".to_string(), "5".to_string())].into();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.yaml"), text).unwrap();
        let case = load_case(&dir.path().join("c.yaml"), &vars).unwrap();
        assert!(matches!(&case.steps[0].kind, StepKind::Repeat(r) if r.times() == 5));
        let e = load_text("id: x\ntitle: t\nsteps:\n  - repeat:\n      times: 2\n      steps:\n        - sleep: soon\n").unwrap_err();
        assert_eq!(e.line, 7, "a nested mistake names its own line: {e}");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - repeat: { times: \"${MB_UNSET_VAR}\", steps: [ { sleep: 1s } ] }\n").unwrap_err();
        assert!(e.message.contains("MB_UNSET_VAR is not set"), "{e}");
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn firmware_is_named_by_role_and_a_file_name_is_refused() {
        let case = load_text(
            "id: x\ntitle: t\nsteps:\n  - firmware: { role: upgrade, method: pull-coap }\n  - expect: { path: /3/0/3, equals: \"{fw_version:upgrade}\" }\n  - write: { path: /9/0/3, value: \"{fw_url:software}\" }\n  - firmware: { uri: \"ftp://h/x.bin\" }\n",
        )
        .unwrap();
        let mut roles: Vec<String> = case
            .steps
            .iter()
            .flat_map(|s| s.kind.step().firmware_roles())
            .collect();
        roles.sort();
        roles.dedup();
        assert_eq!(roles, ["software", "upgrade"]);
        assert_eq!(case.steps[0].describe(), "firmware upgrade by pull-coap");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - firmware: { image: meter-2.0.bin }\n")
            .unwrap_err();
        assert!(e.message.contains("by its role"), "{e}");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - firmware: { method: push }\n").unwrap_err();
        assert!(e.message.contains("give `role`"), "{e}");
        let e =
            load_text("id: x\ntitle: t\nsteps:\n  - firmware: { role: upgrade, method: ftp }\n")
                .unwrap_err();
        assert!(e.message.contains("pull-coaps"), "names the methods: {e}");
    }

    #[test]
    fn network_steps_name_what_the_lab_does_and_need_network_control() {
        let case = load_text(
            "id: x\ntitle: t\nneeds: [network-control]\nsteps:\n  - network: { refuse: second-profile }\n  - network: accept-all\n",
        )
        .unwrap();
        assert_eq!(case.needs, [Need::NetworkControl]);
        assert_eq!(
            crate::steps::needs::of_case(&case),
            [
                Need::NetworkControl,
                Need::Network(rig::NetworkAction::Refuse(rig::ProfileSlot(2))),
                Need::Network(rig::NetworkAction::AcceptAll),
            ]
        );
        assert_eq!(case.steps[0].describe(), "network refuse second-profile");
        let e =
            load_text("id: x\ntitle: t\nsteps:\n  - network: { refuse: roaming }\n").unwrap_err();
        assert!(e.message.contains("second-profile"), "{e}");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - network: drop-all\n").unwrap_err();
        assert!(e.message.contains("accept-all"), "{e}");
    }

    #[test]
    fn the_parts_a_case_needs_are_inferred_from_its_steps() {
        let case = load_text(
            "id: x\ntitle: t\nneeds: [object/3]\nsteps:\n  - power: cycle\n  - at: AT+CGMI\n  - debug: { key: boot_count, save: b }\n  - repeat: { times: 2, steps: [ { power_cut: { line: \"+BOOT\" } }, { bootstrap: { script: [ { finish: true } ] } } ] }\n  - expect: { old_credential: refused }\n  - read: { path: /3/0/0 }\n",
        )
        .unwrap();
        assert_eq!(
            crate::steps::needs::of_case(&case),
            [
                Need::Object(3),
                Need::Power,
                Need::Modem,
                Need::Debug,
                Need::Bootstrap,
                Need::Credentials
            ]
        );
        let case = load_text("id: x\ntitle: t\nsteps:\n  - sleep: 1s\n  - read: { path: /3/0 }\n")
            .unwrap();
        assert!(crate::steps::needs::of_case(&case).is_empty());
    }

    #[test]
    fn a_star_instance_is_kept_until_the_registration_names_one() {
        let case = load_text(
            "id: x\ntitle: t\nneeds: [resource/5/*/8]\nsteps:\n  - execute: /5/*/2\n  - read: { path: /3/0/0 }\n",
        )
        .unwrap();
        assert_eq!(case.needs[0].to_string(), "resource/5/*/8");
        let StepKind::Execute(execute) = &case.steps[0].kind else {
            panic!("{:?}", case.steps[0])
        };
        assert!(execute.path.has_any_instance());
        let StepKind::Read(read) = &case.steps[1].kind else {
            panic!("{:?}", case.steps[1])
        };
        assert!(!read.path.has_any_instance());
        assert_eq!(case.steps[0].describe(), "execute /5/*/2");
        assert!(load_text("id: x\ntitle: t\nsteps:\n  - read: { path: /*/0 }\n").is_err());
    }

    #[test]
    fn response_codes_read_as_class_and_detail() {
        let case = load_text(
            "id: x\ntitle: t\nsteps:\n  - write: { path: /3/0/0, value: a, code: \"4.05\" }\n",
        )
        .unwrap();
        assert!(matches!(
            &case.steps[0].kind,
            StepKind::Write(w) if w.code == Some(fields::Code(405))
        ));
        let e = load_text(
            "id: x\ntitle: t\nsteps:\n  - write: { path: /3/0/0, value: a, code: \"4.5x\" }\n",
        )
        .unwrap_err();
        assert!(e.message.contains("class.detail"), "{e}");
    }

    #[test]
    fn a_group_case_says_how_many_devices_it_needs_and_only_it_may_act_on_a_group() {
        let case = load_text(
            "id: x\ntitle: t\ngroup: all\nsteps:\n  - await: registered\n  - group: { read: /3/0 }\n  - campaign: { image: upgrade, concurrent: 2 }\n",
        )
        .unwrap();
        assert_eq!(case.group, Some(Group { min: 2 }));
        assert_eq!(case.steps[1].describe(), "group read /3/0, all");
        let case =
            load_text("id: x\ntitle: t\ngroup: { min: 3 }\nsteps:\n  - group: { read: /3/0 }\n")
                .unwrap();
        assert_eq!(case.group, Some(Group { min: 3 }));
        // A case for one device has no group: its group steps are refused
        // where they are written, a nested one too.
        let e = load_text("id: x\ntitle: t\nsteps:\n  - sleep: 1s\n  - group: { read: /3/0 }\n")
            .unwrap_err();
        assert_eq!((e.line, e.column), (5, 5), "{e}");
        assert!(e.message.contains("needs `group: all`"), "{e}");
        let e = load_text(
            "id: x\ntitle: t\nsteps:\n  - repeat:\n      times: 2\n      steps:\n        - campaign: { image: upgrade }\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("`campaign` acts on a group"), "{e}");
        let e =
            load_text("id: x\ntitle: t\ngroup: { min: 1 }\nsteps:\n  - sleep: 1s\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("at least 2 devices"), "{e}");
        let e = load_text(
            "id: x\ntitle: t\ngroup: all\nsteps:\n  - group: { read: /3/0, write: /3/0/14 }\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("exactly one of"), "{e}");
    }

    #[test]
    fn a_cleanup_holds_steps_of_every_kind_with_their_lines_and_its_own_limit() {
        let case = load_text(
            "id: x\ntitle: t\nsteps:\n  - read: { path: /1/*/6, save: ns }\ncleanup:\n  - write: { path: /1/*/6, value: \"{saved:ns}\" }\n  - at: { command: psm_off }\n    within: 5s\n  - power: cycle\n",
        )
        .unwrap();
        assert_eq!(
            case.cleanup.iter().map(|s| s.line).collect::<Vec<_>>(),
            [6, 7, 9]
        );
        assert_eq!(case.cleanup[1].within, Some(Duration::from_secs(5)));
        assert_eq!(case.cleanup_timeout, DEFAULT_CLEANUP_TIMEOUT);
        // What the cleanup needs is needed before the case starts.
        let needs = crate::steps::needs::of_case(&case);
        for need in [
            Need::Modem,
            Need::Power,
            Need::ModemAction("psm_off".into()),
        ] {
            assert!(needs.contains(&need), "{need} in {needs:?}");
        }
        let case = load_text(
            "id: x\ntitle: t\ncleanup_timeout: 90s\nsteps:\n  - sleep: 1ms\ncleanup:\n  - repeat: { times: \"${MB_TEST_CLEANUP_ROUNDS:-2}\", steps: [ { sleep: 1ms } ] }\n",
        )
        .unwrap();
        assert_eq!(case.cleanup_timeout, Duration::from_secs(90));
        assert!(matches!(&case.cleanup[0].kind, StepKind::Repeat(r) if r.times() == 2));
        let case = load_text("id: x\ntitle: t\nsteps:\n  - sleep: 1ms\n").unwrap();
        assert!(case.cleanup.is_empty());
    }

    #[test]
    fn cleanup_mistakes_name_file_line_and_column() {
        let e = load_text(
            "id: x\ntitle: t\nsteps:\n  - sleep: 1ms\ncleanup:\n  - sleep: 1ms\n  - write: { path: /3/0/14, valu: 1 }\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (7, 29), "{e}");
        assert!(e.message.contains("unknown field `valu`"), "{e}");
        assert!(e.to_string().contains("case.yaml:7:29: "), "{e}");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - sleep: 1ms\ncleanup: []\n").unwrap_err();
        assert_eq!((e.line, e.column), (5, 1), "{e}");
        assert!(e.message.contains("holds no step"), "{e}");
        let e = load_text("id: x\ntitle: t\ncleanup_timeout: 30s\nsteps:\n  - sleep: 1ms\n")
            .unwrap_err();
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(e.message.contains("without `cleanup`"), "{e}");
        let e = load_text(
            "id: x\ntitle: t\ncleanup_timeout: 0s\nsteps:\n  - sleep: 1ms\ncleanup:\n  - sleep: 1ms\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("no time"), "{e}");
        // A group case's cleanup may hold group steps and steps for every member.
        let group = load_text(
            "id: x\ntitle: t\ngroup: all\nsteps:\n  - await: registered\ncleanup:\n  - power: cycle\n  - group: { read: /3/0 }\n",
        )
        .unwrap();
        assert_eq!(group.cleanup.len(), 2);
        let e = load_text(
            "id: x\ntitle: t\nsteps:\n  - sleep: 1ms\ncleanup:\n  - group: { read: /3/0 }\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (6, 5), "{e}");
        let e = load_text(
            "id: x\ntitle: t\nsteps:\n  - sleep: 1ms\ncleanup:\n  - repeat: { times: \"${MB_UNSET_VAR}\", steps: [ { sleep: 1s } ] }\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("MB_UNSET_VAR is not set"), "{e}");
    }

    #[test]
    fn a_step_holds_one_action_and_may_carry_within_and_note() {
        let case = load_text(
            "id: x\ntitle: t\nsteps:\n  - note: first\n    await: { path: /3/0/13, changes: true, within: 4s }\n  - within: 2s\n    await: registered\n",
        )
        .unwrap();
        assert_eq!(case.steps[0].note.as_deref(), Some("first"));
        assert_eq!(case.steps[0].within, Some(Duration::from_secs(4)));
        assert_eq!(case.steps[1].within, Some(Duration::from_secs(2)));
        assert_eq!(case.steps[0].describe(), "await /3/0/13 changes");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - sleep: 1s\n    power: on\n").unwrap_err();
        assert!(e.message.contains("split it"), "{e}");
        assert_eq!(e.line, 4, "{e}");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - note: nothing to do\n").unwrap_err();
        assert!(e.message.contains("needs one action"), "{e}");
        assert!(e.message.contains("power_cut"), "names the kinds: {e}");
        let e = load_text("id: x\ntitle: t\nsteps:\n  - teleport: now\n").unwrap_err();
        assert!(e.message.contains("teleport"), "{e}");
        assert!(e.message.contains("cancel_observe"), "names the kinds: {e}");
    }
}
