//! The AT dialect file: what a modem's final result codes and URCs look like
//! and the command templates the harness sends. A new modem is a new file in
//! `fixtures/modems/`, not new code.
//!
//! Final result codes and `+CME ERROR: <err>` follow 3GPP TS 27.007 §9.2
//! and ITU-T V.250 §5.7 (result codes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::at::FinalResult;
use crate::error::RigError;

/// A modem's AT dialect (schema of `fixtures/modems/*.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialect {
    pub name: String,
    #[serde(rename = "final")]
    pub final_codes: FinalCodes,
    /// A line starting with one of these is an unsolicited result code,
    /// unless it answers the running command (`AT+CEREG?` -> `+CEREG: ...`).
    #[serde(default)]
    pub urc_prefixes: Vec<String>,
    /// The URC the modem prints once booted and accepting commands.
    #[serde(default)]
    pub boot_urc: Option<String>,
    #[serde(
        default = "default_boot_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub boot_timeout: Duration,
    #[serde(
        default = "default_command_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub command_timeout: Duration,
    /// Command name -> template with `{placeholders}`.
    pub commands: BTreeMap<String, String>,
    /// Commands (by name) that point the device at the harness's server
    /// after power-on, in order.
    #[serde(default)]
    pub bring_up: Vec<String>,
    /// The bring-up of a device that meterbench onboards through its
    /// bootstrap server: the bootstrap URI and the device's bootstrap
    /// credential instead of a server account.
    #[serde(default)]
    pub bring_up_bootstrap: Vec<String>,
    /// Variables whose values are secret (keys, PSKs): [`Dialect::render_shown`]
    /// replaces them with `***` in what is logged.
    #[serde(default)]
    pub secret_vars: Vec<String>,
    /// The file this dialect was loaded from.
    #[serde(skip)]
    pub source: PathBuf,
}

/// The lines that end a command.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalCodes {
    pub ok: Vec<String>,
    pub error: Vec<String>,
    /// E.g. `+CME ERROR:`; followed by a numeric code (`AT+CMEE=1`) or text
    /// (`AT+CMEE=2`).
    #[serde(default)]
    pub cme_error_prefix: Option<String>,
}

fn default_boot_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_command_timeout() -> Duration {
    crate::traits::DEFAULT_COMMAND_TIMEOUT
}

impl Dialect {
    /// Loads a dialect file and checks that `bring_up` names known commands.
    pub fn load(path: &Path) -> Result<Dialect, RigError> {
        let mut d: Dialect = crate::yaml::load(path)?;
        d.source = path.to_path_buf();
        d.check()?;
        Ok(d)
    }

    /// Parses dialect YAML held in memory; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Dialect, RigError> {
        let mut d: Dialect = crate::yaml::parse(text, origin)?;
        d.source = origin.to_path_buf();
        d.check()?;
        Ok(d)
    }

    /// Finds a dialect by name (`<fixtures_dir>/modems/<name>.yaml`) or, if
    /// `name` looks like a path (has a `/` or ends in `.yaml`), loads that path.
    pub fn find(name: &str, fixtures_dir: &Path) -> Result<Dialect, RigError> {
        if Self::is_path(name) {
            return Dialect::load(Path::new(name));
        }
        let path = fixtures_dir.join("modems").join(format!("{name}.yaml"));
        if !path.is_file() {
            return Err(RigError::DialectNotFound {
                name: name.into(),
                looked_at: path,
            });
        }
        Dialect::load(&path)
    }

    /// Whether a rig file's `dialect:` value is a path rather than a name.
    pub fn is_path(name: &str) -> bool {
        name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml")
    }

    fn check(&self) -> Result<(), RigError> {
        let invalid = |field: String, message: String| RigError::Invalid {
            file: self.source.clone(),
            field,
            message,
        };
        if self.final_codes.ok.is_empty() {
            return Err(invalid(
                "final.ok".into(),
                "needs at least one line (usually OK)".into(),
            ));
        }
        let sequences = [
            ("bring_up", &self.bring_up),
            ("bring_up_bootstrap", &self.bring_up_bootstrap),
        ];
        for (list, names) in sequences {
            for (i, name) in names.iter().enumerate() {
                if !self.commands.contains_key(name) {
                    return Err(invalid(
                        format!("{list}[{i}]"),
                        format!("`{name}` is not in `commands`"),
                    ));
                }
            }
        }
        for (name, template) in &self.commands {
            if let Err(message) = placeholders(template) {
                return Err(invalid(format!("commands.{name}"), message));
            }
        }
        Ok(())
    }

    /// The template of command `name`.
    pub fn template(&self, name: &str) -> Result<&str, RigError> {
        self.commands
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| RigError::UnknownCommand {
                dialect: self.name.clone(),
                command: name.into(),
                known: self.commands.keys().cloned().collect(),
            })
    }

    /// The `{placeholders}` command `name` needs.
    pub fn variables(&self, name: &str) -> Result<Vec<String>, RigError> {
        let t = self.template(name)?;
        Ok(placeholders(t)
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    /// Fills command `name`'s `{placeholders}` from `vars`. `{{` and `}}`
    /// are literal braces. Unknown commands, missing variables and values
    /// that would break the line (CR, LF, other control characters) are
    /// errors naming them.
    pub fn render(&self, name: &str, vars: &BTreeMap<String, String>) -> Result<String, RigError> {
        let template = self.template(name)?;
        let err = |message: String| RigError::Template {
            dialect: self.name.clone(),
            command: name.into(),
            template: template.into(),
            message,
        };
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                out.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                out.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(err(format!(
                    "unmatched `}}` at byte {}",
                    template.len() - tail.len()
                )));
            } else {
                let end = tail.find('}').ok_or_else(|| err("unclosed `{`".into()))?;
                let var = &tail[1..end];
                let value = vars.get(var).ok_or_else(|| {
                    err(format!(
                        "missing variable `{var}` (given: {})",
                        if vars.is_empty() {
                            "none".to_string()
                        } else {
                            vars.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ))
                })?;
                if let Some(c) = value.chars().find(|c| c.is_control()) {
                    return Err(err(format!(
                        "variable `{var}` holds control character {c:?}, which would break the AT line"
                    )));
                }
                out.push_str(value);
                rest = &tail[end + 1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Renders command `name` twice: the line to send, and the line to show
    /// in transcripts and logs, with each of the dialect's `secret_vars`
    /// replaced by `***`. Send with [`crate::Modem::command_shown`].
    pub fn render_shown(
        &self,
        name: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<(String, String), RigError> {
        let line = self.render(name, vars)?;
        let masked: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| {
                let v = if self.secret_vars.contains(k) {
                    "***".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        Ok((line, self.render(name, &masked)?))
    }

    /// Whether `line` is a final result code, and which.
    pub fn is_final(&self, line: &str) -> Option<FinalResult> {
        let line = line.trim();
        if self.final_codes.ok.iter().any(|c| c == line) {
            return Some(FinalResult::Ok);
        }
        if self.final_codes.error.iter().any(|c| c == line) {
            return Some(FinalResult::Error);
        }
        let prefix = self.final_codes.cme_error_prefix.as_deref()?;
        let rest = line.strip_prefix(prefix)?.trim();
        Some(match rest.parse::<u16>() {
            Ok(n) => FinalResult::CmeError(n),
            Err(_) => FinalResult::CmeErrorText(rest.to_owned()),
        })
    }

    /// Whether `line` starts with one of the dialect's URC prefixes.
    pub fn is_urc(&self, line: &str) -> bool {
        let line = line.trim_start();
        self.urc_prefixes
            .iter()
            .any(|p| line.starts_with(p.as_str()))
    }
}

/// The placeholder names of a template, or what is malformed in it.
fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err(format!("unmatched `}}` in `{template}`"));
        } else {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
            let name = &tail[1..end];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("bad placeholder `{{{name}}}` in `{template}`"));
            }
            names.push(name);
            rest = &tail[end + 1..];
        }
    }
    Ok(names)
}
