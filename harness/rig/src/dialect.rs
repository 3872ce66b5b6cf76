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

use crate::action::{self, UnsupportedAction};
use crate::at::{AtResponse, FinalResult};
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
    /// What ends a command line the harness sends (V.250 §6.2.1: S3, CR by
    /// default). A rig's `modem.line_ending` overrides it.
    #[serde(default)]
    pub line_ending: LineEnding,
    /// Where the value of an action's answer is (IMEI, registration status,
    /// LwM2M client state), so cases read values, not vendor lines.
    #[serde(default)]
    pub responses: BTreeMap<String, ResponsePattern>,
    /// Event name ([`action::EVENTS`]) -> the start of the URC that reports
    /// it (`lwm2m_registered: "+QLWREG: 0"`).
    #[serde(default)]
    pub events: BTreeMap<String, String>,
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

/// The bytes that end a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    /// `\r` (V.250's default S3).
    #[default]
    Cr,
    /// `\r\n`, for modems or adapters that want both.
    CrLf,
}

impl LineEnding {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Cr => b"\r",
            LineEnding::CrLf => b"\r\n",
        }
    }
}

impl<'de> Deserialize<'de> for LineEnding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "\r" | "cr" | "CR" => Ok(LineEnding::Cr),
            "\r\n" | "crlf" | "CRLF" => Ok(LineEnding::CrLf),
            other => Err(serde::de::Error::custom(format!(
                "line ending {other:?}: expected \"\\r\" (cr) or \"\\r\\n\" (crlf)"
            ))),
        }
    }
}

/// Where an action's value is in its answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsePattern {
    /// The information line starting with this (`+CEREG:`). Absent: the
    /// first information line (bare answers such as `+CGSN`'s IMEI).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Which comma-separated field after the prefix, from 0 (quotes
    /// removed). Absent: the whole rest of the line.
    #[serde(default)]
    pub field: Option<usize>,
    /// Raw value -> the vocabulary's value (`"5": roaming`). A raw value
    /// not listed is an error naming it. Absent: the raw value.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
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
        for name in self.responses.keys() {
            if !self.commands.contains_key(name) {
                return Err(invalid(
                    format!("responses.{name}"),
                    format!("`{name}` is not in `commands`"),
                ));
            }
        }
        for name in self.events.keys() {
            if !action::is_event(name) {
                let known: Vec<&str> = action::EVENTS.iter().map(|e| e.name).collect();
                return Err(invalid(
                    format!("events.{name}"),
                    format!("`{name}` is not an event (known: {})", known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Whether this modem can do `action` (its dialect maps it).
    pub fn supports(&self, action: &str) -> bool {
        self.commands.contains_key(action)
    }

    /// The template of `action`, or the typed reason the step cannot run on
    /// this modem (the runner skips the case with it).
    pub fn require(&self, action: &str) -> Result<&str, UnsupportedAction> {
        self.commands
            .get(action)
            .map(String::as_str)
            .ok_or_else(|| UnsupportedAction {
                action: action.into(),
                modem: self.name.clone(),
            })
    }

    /// The pattern of the URC that reports `event` (`*` matches any text),
    /// if this dialect knows one.
    pub fn event(&self, event: &str) -> Option<&str> {
        self.events.get(event).map(String::as_str)
    }

    /// Whether `line` reports `event`. A pattern without `*` matches the
    /// lines it starts.
    pub fn is_event(&self, event: &str, line: &str) -> bool {
        self.event(event).is_some_and(|p| {
            if p.contains('*') {
                glob(p, line.trim())
            } else {
                line.trim().starts_with(p)
            }
        })
    }

    /// The value of `action`'s answer, found where the dialect's
    /// `responses` says (`+CEREG: 0,5` -> `roaming`). Without a pattern for
    /// the action, the first information line.
    pub fn value(&self, action: &str, response: &AtResponse) -> Result<String, RigError> {
        let fallback = ResponsePattern::default();
        let pattern = self.responses.get(action).unwrap_or(&fallback);
        let err = |message: String| RigError::Response {
            dialect: self.name.clone(),
            action: action.into(),
            message,
            lines: response.lines.clone(),
        };
        let rest = match &pattern.prefix {
            Some(p) => response
                .lines
                .iter()
                .find_map(|l| l.strip_prefix(p.as_str()))
                .ok_or_else(|| err(format!("no line starting with `{p}`")))?,
            None => response
                .lines
                .first()
                .map(String::as_str)
                .ok_or_else(|| err("no information line".into()))?,
        };
        let raw = match pattern.field {
            None => unquote(rest.trim()).to_owned(),
            Some(i) => {
                let fields = split_fields(rest);
                fields
                    .get(i)
                    .map(|f| (*f).to_owned())
                    .ok_or_else(|| err(format!("no field {i} in `{}`", rest.trim())))?
            }
        };
        if pattern.values.is_empty() {
            return Ok(raw);
        }
        pattern.values.get(&raw).cloned().ok_or_else(|| {
            err(format!(
                "value `{raw}` is none of {}",
                pattern
                    .values
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
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
    ///
    /// `{server_host}` and `{server_port}` come from `{uri}` when not given,
    /// for modems that take the server's address in parts.
    pub fn render(&self, name: &str, vars: &BTreeMap<String, String>) -> Result<String, RigError> {
        let template = self.template(name)?;
        let derived = derive_uri_parts(vars);
        let vars = derived.as_ref().unwrap_or(vars);
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

/// `vars` plus `server_host` / `server_port` split from `uri`
/// (`coap://[::1]:5683` -> `::1`, `5683`; the scheme's default port when
/// none is written, RFC 7252 §6.1-6.2), if `uri` is given and they are not.
fn derive_uri_parts(vars: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    let uri = vars.get("uri")?;
    if vars.contains_key("server_host") || vars.contains_key("server_port") {
        return None;
    }
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let default_port = if scheme.eq_ignore_ascii_case("coaps") {
        "5684"
    } else {
        "5683"
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':').unwrap_or(default_port))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, default_port),
        }
    };
    let mut out = vars.clone();
    out.insert("server_host".into(), host.into());
    out.insert("server_port".into(), port.into());
    Some(out)
}

/// `*` matches any run of characters; everything else matches itself.
/// Replay scripts and dialect events use it for lines with variable parts.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Comma-separated AT parameters, blanks and surrounding quotes removed; a
/// comma inside quotes does not split (TS 27.007 §4.1 string parameters).
fn split_fields(rest: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(unquote(rest[start..i].trim()));
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(unquote(rest[start..].trim()));
    fields
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_literals() {
        assert!(glob("AT", "AT"));
        assert!(!glob("AT", "ATE0"));
        assert!(glob(
            "AT+QLWCONFIG=0,\"*\",*,\"*\",*,3",
            "AT+QLWCONFIG=0,\"127.0.0.1\",5683,\"ep\",30,3"
        ));
        assert!(!glob(
            "AT+QLWCONFIG=0,\"*\",*,3",
            "AT+QLWCONFIG=1,\"h\",5,3"
        ));
        assert!(glob("+ULWM2MSTAT: 1,*,3", "+ULWM2MSTAT: 1,721,3"));
        assert!(!glob("+ULWM2MSTAT: 1,*,3", "+ULWM2MSTAT: 1,721,2"));
        assert!(!glob("a*bc", "abc_"));
    }

    #[test]
    fn uri_parts_are_derived_for_v4_v6_and_default_ports() {
        let vars = |uri: &str| BTreeMap::from([("uri".to_string(), uri.to_string())]);
        let parts = |uri: &str| {
            let d = derive_uri_parts(&vars(uri)).unwrap();
            (d["server_host"].clone(), d["server_port"].clone())
        };
        assert_eq!(
            parts("coap://127.0.0.1:5683"),
            ("127.0.0.1".into(), "5683".into())
        );
        assert_eq!(
            parts("coaps://[::1]:40000/x"),
            ("::1".into(), "40000".into())
        );
        assert_eq!(
            parts("coaps://bench.lab"),
            ("bench.lab".into(), "5684".into())
        );
        assert_eq!(parts("coap://[::1]"), ("::1".into(), "5683".into()));
    }

    #[test]
    fn fields_split_outside_quotes() {
        assert_eq!(split_fields(" 0,\"a,b\", 3"), vec!["0", "a,b", "3"]);
    }
}
