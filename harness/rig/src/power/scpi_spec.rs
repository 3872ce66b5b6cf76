//! The rig file's `power: { kind: scpi, ... }`: where a programmable bench
//! supply is (LAN socket or serial line), what it must set, and the command
//! forms of supplies that depart from the SCPI-99 defaults.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::power::quantity::{Amps, Volts};

/// The SCPI raw-socket port, which LAN supplies listen on (Keysight E36300
/// and Siglent SPD1000X/SPD3303X manuals: "socket communication port is
/// 5025"; Rigol DP800 likewise).
pub const DEFAULT_SCPI_PORT: u16 = 5025;

/// A bench supply spoken to in SCPI: set voltage and current limit, switch
/// the output, measure what the device draws.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ScpiPowerFields")]
pub struct ScpiPowerSpec {
    #[schemars(skip)] // the schema is `ScpiPowerFields`'s
    pub address: ScpiAddress,
    /// For multi-output supplies: the output the device hangs on, selected
    /// with `INST:NSEL <n>` before every setting and measurement. Absent:
    /// the supply's selected (or only) output.
    pub channel: Option<u8>,
    /// The set point applied at every power-on.
    pub voltage: Volts,
    /// The current limit applied at every power-on: what a shorted board may
    /// draw before the supply goes into constant-current mode.
    pub current_limit: Amps,
    /// How long one query may take to answer (and a connection to open).
    pub timeout: Duration,
    /// Whether each setting is followed by `SYST:ERR?` so a refused one
    /// (out of range, unknown to this model) fails at once with the
    /// supply's own text rather than leaving the device at a wrong voltage.
    pub check_errors: bool,
    pub commands: ScpiCommands,
}

/// Where the supply is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScpiAddress {
    /// Raw SCPI over TCP (IEEE 488.2 messages, newline-terminated).
    Tcp { host: String, port: u16 },
    /// An RS-232 or USB-CDC serial line.
    Serial { path: PathBuf, baud: u32 },
}

impl fmt::Display for ScpiAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScpiAddress::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ScpiAddress::Tcp { host, port } => write!(f, "{host}:{port}"),
            ScpiAddress::Serial { path, baud } => write!(f, "{} at {baud} baud", path.display()),
        }
    }
}

/// The command lines sent, with `{channel}`, `{volts}` and `{amps}`
/// placeholders. The defaults are SCPI-99's instrument-class forms that
/// Keysight E36xx (and R&S HMC804x for settings and measurements) take as
/// they are. Others need overrides, e.g. Rigol DP800 names the output in
/// the command (`:OUTP CH{channel},ON`, `:MEAS:CURR? CH{channel}`, DP800
/// Programming Guide, OUTPut[:STATe] and MEASure) and Siglent SPD3303X
/// prefixes settings (`CH{channel}:VOLT {volts}`, SPD3000X manual §3.1).
/// An empty `select_channel` or `on_connect` sends nothing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScpiCommands {
    /// Sent once per connection before anything else. The default `*CLS`
    /// empties the error queue (IEEE 488.2 §10.3) so an error left by an
    /// earlier user is not blamed on our first setting; a Keysight E3631A on
    /// RS-232 also wants `SYST:REM` here (its manual, SYSTem:REMote).
    pub on_connect: String,
    pub select_channel: String,
    pub set_voltage: String,
    pub set_current_limit: String,
    pub output_on: String,
    pub output_off: String,
    pub output_state: String,
    pub measure_voltage: String,
    pub measure_current: String,
    pub error_query: String,
}

impl Default for ScpiCommands {
    fn default() -> Self {
        ScpiCommands {
            on_connect: "*CLS".into(),
            select_channel: "INST:NSEL {channel}".into(),
            set_voltage: "VOLT {volts}".into(),
            set_current_limit: "CURR {amps}".into(),
            output_on: "OUTP ON".into(),
            output_off: "OUTP OFF".into(),
            output_state: "OUTP?".into(),
            measure_voltage: "MEAS:VOLT?".into(),
            measure_current: "MEAS:CURR?".into(),
            error_query: "SYST:ERR?".into(),
        }
    }
}

impl ScpiCommands {
    const PLACEHOLDERS: [&'static str; 3] = ["channel", "volts", "amps"];

    fn all(&self) -> [(&'static str, &str); 10] {
        [
            ("on_connect", &self.on_connect),
            ("select_channel", &self.select_channel),
            ("set_voltage", &self.set_voltage),
            ("set_current_limit", &self.set_current_limit),
            ("output_on", &self.output_on),
            ("output_off", &self.output_off),
            ("output_state", &self.output_state),
            ("measure_voltage", &self.measure_voltage),
            ("measure_current", &self.measure_current),
            ("error_query", &self.error_query),
        ]
    }

    /// Refuses a template with an unknown `{placeholder}`, a line break, or
    /// (but for `select_channel` and `on_connect`) nothing at all.
    fn check(&self) -> Result<(), String> {
        for (name, template) in self.all() {
            if template.trim().is_empty() && !matches!(name, "select_channel" | "on_connect") {
                return Err(format!("commands.{name} must not be empty"));
            }
            if template.contains(['\n', '\r']) {
                return Err(format!("commands.{name} must be one line"));
            }
            let mut rest = template;
            while let Some(open) = rest.find('{') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('}') else {
                    return Err(format!(
                        "commands.{name}: `{{` without `}}` in `{template}`"
                    ));
                };
                let key = &after[..close];
                if !Self::PLACEHOLDERS.contains(&key) {
                    return Err(format!(
                        "commands.{name}: unknown placeholder `{{{key}}}` in `{template}` (known: {{channel}}, {{volts}}, {{amps}})"
                    ));
                }
                rest = &after[close + 1..];
            }
        }
        Ok(())
    }
}

/// The fields as written; [`ScpiPowerSpec`] is what they must amount to.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScpiPowerFields {
    /// Raw SCPI over TCP: `host` or `host:port` (port 5025 by default).
    #[serde(default)]
    tcp: Option<String>,
    /// An RS-232 or USB-CDC serial line, instead of `tcp`.
    #[serde(default)]
    serial: Option<PathBuf>,
    /// The serial line's speed (default 9600).
    #[serde(default)]
    baud: Option<u32>,
    /// For multi-output supplies: the output the device hangs on (from 1).
    #[serde(default)]
    channel: Option<u8>,
    /// The set point applied at every power-on (`3.6V`).
    #[serde(deserialize_with = "voltage_field")]
    voltage: Volts,
    /// The current limit applied at every power-on (`500mA`).
    #[serde(deserialize_with = "current_limit_field")]
    current_limit: Amps,
    /// How long one query may take to answer (and a connection to open).
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    #[schemars(with = "crate::schema::DurationText")]
    timeout: Duration,
    /// Whether each setting is followed by `SYST:ERR?`, so that a refused
    /// one fails at once with the supply's own text.
    #[serde(default = "default_true")]
    check_errors: bool,
    /// The command lines sent, for supplies that depart from SCPI-99.
    #[serde(default)]
    commands: ScpiCommands,
}

/// The rig file's error location for a field of an internally tagged
/// `power:` is the mapping's, so the message names the field itself.
fn voltage_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Volts, D::Error> {
    Volts::deserialize(d).map_err(|e| serde::de::Error::custom(format!("voltage: {e}")))
}

fn current_limit_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Amps, D::Error> {
    Amps::deserialize(d).map_err(|e| serde::de::Error::custom(format!("current_limit: {e}")))
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_true() -> bool {
    true
}

/// Most bench supplies' factory RS-232 setting (Keysight E36xx: 9600 baud).
const DEFAULT_SERIAL_BAUD: u32 = 9600;

impl TryFrom<ScpiPowerFields> for ScpiPowerSpec {
    type Error = String;

    fn try_from(f: ScpiPowerFields) -> Result<Self, String> {
        let address = match (f.tcp, f.serial) {
            (Some(tcp), None) => {
                if f.baud.is_some() {
                    return Err("`baud` applies to `serial`, not to `tcp`".into());
                }
                parse_tcp(&tcp)?
            }
            (None, Some(path)) => {
                let baud = f.baud.unwrap_or(DEFAULT_SERIAL_BAUD);
                if baud == 0 {
                    return Err("`baud` must be greater than 0".into());
                }
                ScpiAddress::Serial { path, baud }
            }
            (Some(_), Some(_)) => {
                return Err("give either `tcp: host[:port]` or `serial: path`, not both".into())
            }
            (None, None) => {
                return Err(
                    "an scpi supply needs an address: `tcp: host[:port]` or `serial: path`".into(),
                )
            }
        };
        if f.channel == Some(0) {
            return Err("`channel` counts from 1".into());
        }
        if f.timeout.is_zero() {
            return Err("`timeout` must be longer than 0s".into());
        }
        if f.current_limit.micro() == 0 {
            return Err("`current_limit` must be above 0A: the device would get no power".into());
        }
        f.commands.check()?;
        Ok(ScpiPowerSpec {
            address,
            channel: f.channel,
            voltage: f.voltage,
            current_limit: f.current_limit,
            timeout: f.timeout,
            check_errors: f.check_errors,
            commands: f.commands,
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` (a bare IPv6 address, with
/// several colons, is a host without port).
fn parse_tcp(text: &str) -> Result<ScpiAddress, String> {
    let t = text.trim();
    let bad = || format!("`tcp: {text}`: expected host or host:port, e.g. 192.168.10.20:5025");
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else if t.matches(':').count() == 1 {
        let (h, p) = t.split_once(':').ok_or_else(bad)?;
        (h, Some(p))
    } else {
        (t, None)
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_SCPI_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("`tcp: {text}`: `{p}` is not a port (1-65535)")),
            Ok(n) => n,
        },
    };
    Ok(ScpiAddress::Tcp {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> ScpiAddress {
        ScpiAddress::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn tcp_address_takes_the_scpi_port_unless_given() {
        assert_eq!(parse_tcp("10.0.0.5").unwrap(), tcp("10.0.0.5", 5025));
        assert_eq!(parse_tcp("psu.lab:5024").unwrap(), tcp("psu.lab", 5024));
        assert_eq!(parse_tcp("[::1]:7000").unwrap(), tcp("::1", 7000));
        assert_eq!(parse_tcp("::1").unwrap(), tcp("::1", 5025));
        assert!(parse_tcp("psu:0").is_err());
        assert!(parse_tcp("psu:http").is_err());
        assert_eq!(tcp("::1", 5025).to_string(), "[::1]:5025");
    }

    #[test]
    fn templates_know_only_their_placeholders() {
        let mut c = ScpiCommands::default();
        assert!(c.check().is_ok());
        c.output_on = "OUTP CH{chan},ON".into();
        assert!(c.check().unwrap_err().contains("{chan}"));
        c.output_on = String::new();
        assert!(c.check().unwrap_err().contains("output_on"));
    }
}
