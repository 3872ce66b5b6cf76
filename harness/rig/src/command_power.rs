//! `CommandPower`: a supply switched by shell commands from the rig file
//! (a USB relay's CLI, a lab supply's SCPI one-liner, a smart plug's curl) —
//! or a device that *is* a process, which the `on` command starts and the
//! `off` command kills (the virtual meter without its modem, a third-party
//! LwM2M client).
//!
//! Such a device must be told where the servers are, and those are known
//! only once the runner has bound them: the commands may name
//! [`PLACEHOLDERS`] (`{server_uri}`, `{endpoint}`, ...) that
//! [`CommandPower::set_device_values`] fills in before each run of a
//! command. A placeholder's value becomes one shell word (quoted when it
//! holds anything but `A-Za-z0-9_./:@%+=,-`), so write `--endpoint
//! {endpoint}`, not `"{endpoint}"`. `{{` and `}}` are a literal brace; `${...}`
//! is the shell's and left alone; any other `{name}` is an error naming the
//! rig field.
//!
//! The PSK key is never a placeholder: a command line is visible to every
//! user of the machine (`ps`) and quoted in logs and errors. It reaches the
//! command as the environment variable [`PSK_KEY_ENV`] (hex), which the
//! command passes on to the device process it starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::warn;

use crate::error::RigError;
use crate::model::CommandPowerSpec;
use crate::shell::{self, Finished, NotFinished};
use crate::traits::Power;

/// The environment variable that carries a device's PSK key (hex) to the
/// power commands (and, through them, to the device process).
pub const PSK_KEY_ENV: &str = "METERBENCH_PSK_KEY";

/// The placeholders a power command may use.
pub const PLACEHOLDERS: &[&str] = &[
    "endpoint",
    "lifetime",
    "server_uri",
    "bootstrap_uri",
    "psk_identity",
    "state_dir",
    "rig_dir",
    "meterbench",
    "harness_pid",
];

/// What a device process may need to be started with. `None`: this device
/// has no such value (e.g. no `bootstrap_uri` without bootstrap); a command
/// that names it fails, saying so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceValues {
    /// `{endpoint}`: the Endpoint Client Name for this run.
    pub endpoint: Option<String>,
    /// `{lifetime}`: the registration lifetime, in whole seconds.
    pub lifetime: Option<Duration>,
    /// `{server_uri}`: the LwM2M server as the device reaches it (`coaps://host:port`).
    pub server_uri: Option<String>,
    /// `{bootstrap_uri}`: the bootstrap server as the device reaches it.
    pub bootstrap_uri: Option<String>,
    /// `{psk_identity}`: the identity of the device's factory account.
    pub psk_identity: Option<String>,
    /// `{state_dir}`: a folder for the device process (its NV, pid file and
    /// log) that lives for the whole run, across power cycles.
    pub state_dir: Option<PathBuf>,
    /// `{rig_dir}`: the rig file's folder, for paths relative to it.
    pub rig_dir: Option<PathBuf>,
    /// `{meterbench}`: the meterbench binary running the rig (to start the
    /// virtual meter as a device: `{meterbench} sim-meter ...`).
    pub meterbench: Option<PathBuf>,
}

impl DeviceValues {
    /// The value of placeholder `name`; `{harness_pid}` is this process's id.
    fn get(&self, name: &str) -> Option<String> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match name {
            "endpoint" => self.endpoint.clone(),
            "lifetime" => self.lifetime.map(|l| l.as_secs().to_string()),
            "server_uri" => self.server_uri.clone(),
            "bootstrap_uri" => self.bootstrap_uri.clone(),
            "psk_identity" => self.psk_identity.clone(),
            "state_dir" => path(&self.state_dir),
            "rig_dir" => path(&self.rig_dir),
            "meterbench" => path(&self.meterbench),
            "harness_pid" => Some(std::process::id().to_string()),
            _ => None,
        }
    }
}

/// An environment variable for the commands whose value is a secret:
/// `Debug` shows its name only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretEnv {
    name: String,
    value: String,
}

impl SecretEnv {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        SecretEnv {
            name: name.into(),
            value: value.into(),
        }
    }

    /// A PSK key as hex in [`PSK_KEY_ENV`].
    pub fn psk_key(key: &[u8]) -> Self {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        SecretEnv::new(PSK_KEY_ENV, hex)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretEnv({}=<redacted>)", self.name)
    }
}

/// Power via `sh -c` commands: `on`, `off` and optionally `status` (exit 0 =
/// on). Each command runs in its own process group and is killed, with its
/// children, when it overruns the timeout.
pub struct CommandPower {
    spec: CommandPowerSpec,
    /// The last state commanded successfully, for `is_on` without `status`.
    assumed_on: bool,
    values: DeviceValues,
    secret: Option<SecretEnv>,
}

impl CommandPower {
    pub fn new(spec: CommandPowerSpec) -> Self {
        CommandPower {
            spec,
            assumed_on: false,
            values: DeviceValues::default(),
            secret: None,
        }
    }

    pub fn spec(&self) -> &CommandPowerSpec {
        &self.spec
    }

    /// Gives the values the commands' placeholders stand for, and the secret
    /// (the device's PSK key) their environment carries. Called by the runner
    /// once its servers are bound, before the first `on`. Checks that every
    /// placeholder the commands use is known and has a value.
    pub fn set_device_values(
        &mut self,
        values: DeviceValues,
        secret: Option<SecretEnv>,
    ) -> Result<(), RigError> {
        self.values = values;
        self.secret = secret;
        for (field, command) in self.commands() {
            substitute(&command, field, &self.values)?;
        }
        Ok(())
    }

    fn commands(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("power.on", self.spec.on.clone()),
            ("power.off", self.spec.off.clone()),
        ];
        if let Some(s) = &self.spec.status {
            v.push(("power.status", s.clone()));
        }
        v
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.secret
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str()))
            .collect()
    }

    fn run_checked(&self, field: &str, template: &str) -> Result<(), RigError> {
        let command = substitute(template, field, &self.values)?;
        let f = run(&command, self.spec.timeout, &self.env())?;
        if f.success {
            Ok(())
        } else {
            Err(RigError::PowerCommand {
                command,
                outcome: f.outcome,
                stderr: f.stderr,
            })
        }
    }
}

/// Checks the placeholders of a rig's command power at load time: every
/// `{name}` must be one of [`PLACEHOLDERS`]. `file` names the rig file.
pub fn check_placeholders(spec: &CommandPowerSpec, file: &Path) -> Result<(), RigError> {
    let commands = [
        ("power.on", Some(&spec.on)),
        ("power.off", Some(&spec.off)),
        ("power.status", spec.status.as_ref()),
    ];
    for (field, command) in commands {
        let Some(command) = command else { continue };
        for piece in pieces(command) {
            if let Piece::Placeholder(name) = piece {
                if !PLACEHOLDERS.contains(&name) {
                    return Err(RigError::Invalid {
                        file: file.to_owned(),
                        field: field.to_owned(),
                        message: unknown_message(name),
                    });
                }
            }
        }
    }
    Ok(())
}

fn unknown_message(name: &str) -> String {
    format!(
        "unknown placeholder `{{{name}}}`; known: {} (write `{{{{` for a literal brace)",
        PLACEHOLDERS
            .iter()
            .map(|p| format!("{{{p}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A command template, cut into text and placeholders.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Cuts `template`: `{name}` (name of `a-z`, `0-9`, `_`, starting with a
/// letter) is a placeholder; `{{`/`}}` a literal brace; `${...}` and any
/// other brace (a shell brace group, an awk program) plain text.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let bytes = template.as_bytes();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &template[i..];
        if rest.starts_with("{{") || rest.starts_with("}}") {
            out.push(Piece::Text(&template[text_start..i + 1]));
            i += 2;
            text_start = i;
            continue;
        }
        if rest.starts_with("${") {
            // The shell's parameter expansion: up to its closing brace.
            let end = rest.find('}').map_or(bytes.len(), |e| i + e + 1);
            i = end;
            continue;
        }
        if bytes[i] == b'{' {
            if let Some(len) = rest[1..].find('}') {
                let name = &rest[1..1 + len];
                let is_name = name.starts_with(|c: char| c.is_ascii_lowercase())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if is_name {
                    out.push(Piece::Text(&template[text_start..i]));
                    out.push(Piece::Placeholder(name));
                    i += len + 2;
                    text_start = i;
                    continue;
                }
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out.push(Piece::Text(&template[text_start..]));
    out.retain(|p| *p != Piece::Text(""));
    out
}

/// `template` with its placeholders replaced by `values`, each one shell word.
fn substitute(template: &str, field: &str, values: &DeviceValues) -> Result<String, RigError> {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Placeholder(name) if !PLACEHOLDERS.contains(&name) => {
                return Err(RigError::Driver {
                    driver: "command power".into(),
                    message: format!("{field}: {}", unknown_message(name)),
                });
            }
            Piece::Placeholder(name) => {
                let value = values.get(name).ok_or_else(|| RigError::Driver {
                    driver: "command power".into(),
                    message: format!(
                        "{field} uses `{{{name}}}`, which has no value for this device and run \
                         (the runner did not give one: check the rig's device and server parts)"
                    ),
                })?;
                out.push_str(&shell_word(&value));
            }
        }
    }
    Ok(out)
}

/// `value` as one `sh` word: bare when it is made of safe characters only,
/// else single-quoted (a `'` inside becomes `'\''`).
fn shell_word(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@%+=,-".contains(&b));
    if safe {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

impl Power for CommandPower {
    fn on(&mut self) -> Result<(), RigError> {
        self.run_checked("power.on", &self.spec.on.clone())?;
        self.assumed_on = true;
        Ok(())
    }

    fn off(&mut self) -> Result<(), RigError> {
        self.run_checked("power.off", &self.spec.off.clone())?;
        self.assumed_on = false;
        Ok(())
    }

    /// Runs `status` if the rig file gives one; if it is absent or cannot
    /// run, the last commanded state.
    fn is_on(&mut self) -> bool {
        let Some(status) = self.spec.status.clone() else {
            return self.assumed_on;
        };
        let outcome = substitute(&status, "power.status", &self.values)
            .and_then(|command| run(&command, self.spec.timeout, &self.env()));
        match outcome {
            Ok(f) => f.success,
            Err(e) => {
                warn!(error = %e, "power status command failed; assuming last commanded state");
                self.assumed_on
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "command power (on: `{}`, off: `{}`)",
            self.spec.on, self.spec.off
        )
    }
}

/// Runs a power command, its failures as the power errors.
fn run(command: &str, timeout: Duration, env: &[(&str, &str)]) -> Result<Finished, RigError> {
    shell::run_with_env(command, timeout, env).map_err(|e| match e {
        NotFinished::Spawn(outcome) => RigError::PowerCommand {
            command: command.into(),
            outcome,
            stderr: String::new(),
        },
        NotFinished::Timeout => RigError::PowerTimeout {
            command: command.into(),
            waited: timeout,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_cut_from_shell_text() {
        use Piece::*;
        assert_eq!(
            pieces("run --ep {endpoint} x"),
            [Text("run --ep "), Placeholder("endpoint"), Text(" x")]
        );
        assert_eq!(
            pieces("echo ${HOME} {{x}}"),
            [Text("echo ${HOME} {"), Text("x}")]
        );
        assert_eq!(
            pieces("{ true; } && awk '{print $1}'"),
            [Text("{ true; } && awk '{print $1}'")]
        );
        assert_eq!(pieces("{a}{b}"), [Placeholder("a"), Placeholder("b")]);
        assert_eq!(pieces("{Upper} {1x} {"), [Text("{Upper} {1x} {")]);
    }

    #[test]
    fn values_become_one_shell_word() {
        assert_eq!(
            shell_word("coaps://127.0.0.1:5684"),
            "coaps://127.0.0.1:5684"
        );
        assert_eq!(shell_word("urn:imei:35693803"), "urn:imei:35693803");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's;$(x)"), r"'it'\''s;$(x)'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("coap://[::1]:5683"), "'coap://[::1]:5683'");
    }

    #[test]
    fn secret_env_debug_hides_the_value() {
        let s = SecretEnv::psk_key(&[0xab, 0xcd]);
        assert_eq!(s.value, "abcd");
        assert_eq!(format!("{s:?}"), "SecretEnv(METERBENCH_PSK_KEY=<redacted>)");
    }
}
