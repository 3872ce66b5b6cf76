//! `ScpiSupply`: a programmable bench supply as the device's [`Power`], and
//! its meter ([`Supply`]). Each setting is one program message per line,
//! followed by `SYST:ERR?` so that a refused setting fails where it was
//! sent; each query waits at most the rig's `timeout`, so a supply that
//! stops answering ends in an error naming its address and the command,
//! never in a hung run.

use tracing::{debug, warn};

use crate::error::RigError;
use crate::power::scpi_link::ScpiLink;
use crate::power::scpi_spec::ScpiPowerSpec;
use crate::power::supply::{Identity, Reading, Supply, SupplyError, SupplyProblem};
use crate::traits::Power;

/// How many entries of the error queue one check reads at most: SCPI-99
/// queues are finite (at least two entries; Keysight E36xx keep 20), and a
/// supply that never answers `0,"No error"` must not loop us forever.
const MAX_ERRORS_DRAINED: usize = 32;

/// A supply on a LAN socket or serial line, spoken to in SCPI.
pub struct ScpiSupply {
    spec: ScpiPowerSpec,
    /// Opened at the first command; dropped after a timeout or I/O error,
    /// so a late answer can never be read as the answer to the next query.
    link: Option<ScpiLink>,
    /// The last output state commanded successfully, for `is_on` when the
    /// supply cannot be asked.
    assumed_on: bool,
}

impl ScpiSupply {
    /// Nothing is opened until the first command.
    pub fn new(spec: ScpiPowerSpec) -> Self {
        ScpiSupply {
            spec,
            link: None,
            assumed_on: false,
        }
    }

    pub fn spec(&self) -> &ScpiPowerSpec {
        &self.spec
    }

    /// Closes the connection (the next command opens a new one).
    pub fn disconnect(&mut self) {
        self.link = None;
    }

    fn error(&self, problem: SupplyProblem) -> RigError {
        RigError::Supply(SupplyError {
            supply: self.spec.address.to_string(),
            problem,
        })
    }

    /// Turns a link problem into the error, dropping the link when the
    /// stream can no longer be trusted to pair queries with answers.
    fn link_failed(&mut self, problem: SupplyProblem) -> RigError {
        if matches!(
            problem,
            SupplyProblem::NoAnswer { .. }
                | SupplyProblem::Closed { .. }
                | SupplyProblem::Io { .. }
                | SupplyProblem::BadAnswer { .. }
        ) {
            self.link = None;
        }
        self.error(problem)
    }

    fn link(&mut self) -> Result<&mut ScpiLink, RigError> {
        if self.link.is_none() {
            let link =
                ScpiLink::open(&self.spec.address, self.spec.timeout).map_err(|p| self.error(p))?;
            debug!(supply = %self.spec.address, "scpi supply connected");
            self.link = Some(link);
            let hello = self.spec.commands.on_connect.clone();
            if !hello.trim().is_empty() {
                self.write(&hello)?;
            }
        }
        Ok(self.link.as_mut().expect("link opened above"))
    }

    /// Fills a command template with this rig's values.
    fn render(&self, template: &str) -> String {
        template
            .replace("{channel}", &self.spec.channel.unwrap_or(1).to_string())
            .replace("{volts}", &self.spec.voltage.scpi())
            .replace("{amps}", &self.spec.current_limit.scpi())
    }

    fn write(&mut self, line: &str) -> Result<(), RigError> {
        debug!(supply = %self.spec.address, line, "scpi >>");
        let sent = self.link()?.send(line);
        sent.map_err(|p| self.link_failed(p))
    }

    /// Sends a query and returns its answer line.
    pub fn query(&mut self, line: &str) -> Result<String, RigError> {
        self.write(line)?;
        let timeout = self.spec.timeout;
        let answer = self.link()?.read_line(line, timeout);
        let answer = answer.map_err(|p| self.link_failed(p))?;
        debug!(supply = %self.spec.address, line, answer, "scpi <<");
        Ok(answer)
    }

    /// Sends a setting, then (unless the rig turns it off) reads the error
    /// queue and fails with the supply's first error.
    fn set(&mut self, line: &str) -> Result<(), RigError> {
        self.write(line)?;
        if self.spec.check_errors {
            self.check_errors(line)?;
        }
        Ok(())
    }

    /// Drains the error queue; the first error found is blamed on `after`.
    fn check_errors(&mut self, after: &str) -> Result<(), RigError> {
        let query = self.spec.commands.error_query.clone();
        let mut first = None;
        for _ in 0..MAX_ERRORS_DRAINED {
            let answer = self.query(&query)?;
            let Some((code, text)) = parse_error_entry(&answer) else {
                return Err(self.link_failed(SupplyProblem::BadAnswer {
                    command: query,
                    answer,
                    expected: "an error queue entry like 0,\"No error\"".into(),
                }));
            };
            if code == 0 {
                break;
            }
            warn!(supply = %self.spec.address, command = after, code, text, "supply reports an error");
            first.get_or_insert((code, text));
        }
        match first {
            None => Ok(()),
            Some((code, text)) => Err(self.error(SupplyProblem::Refused {
                command: after.to_owned(),
                code,
                text,
            })),
        }
    }

    fn select_channel(&mut self) -> Result<(), RigError> {
        if self.spec.channel.is_some() && !self.spec.commands.select_channel.trim().is_empty() {
            let line = self.render(&self.spec.commands.select_channel.clone());
            self.set(&line)?;
        }
        Ok(())
    }

    fn query_number(&mut self, template: &str) -> Result<f64, RigError> {
        let line = self.render(template);
        let answer = self.query(&line)?;
        parse_number(&answer).ok_or_else(|| {
            self.link_failed(SupplyProblem::BadAnswer {
                command: line,
                answer,
                expected: "a number (NR1, NR2 or NR3, e.g. 0.3000 or +3.00000E-01)".into(),
            })
        })
    }

    fn output_state(&mut self) -> Result<bool, RigError> {
        self.select_channel()?;
        let line = self.render(&self.spec.commands.output_state.clone());
        let answer = self.query(&line)?;
        match answer.trim().to_ascii_uppercase().as_str() {
            "1" | "ON" => Ok(true),
            "0" | "OFF" => Ok(false),
            _ => Err(self.link_failed(SupplyProblem::BadAnswer {
                command: line,
                answer,
                expected: "1, 0, ON or OFF".into(),
            })),
        }
    }
}

impl Power for ScpiSupply {
    /// Voltage and current limit first, then the output: the device never
    /// sees a set point left over from the supply's last user.
    fn on(&mut self) -> Result<(), RigError> {
        self.select_channel()?;
        let c = self.spec.commands.clone();
        self.set(&self.render(&c.set_voltage))?;
        self.set(&self.render(&c.set_current_limit))?;
        self.set(&self.render(&c.output_on))?;
        self.assumed_on = true;
        Ok(())
    }

    fn off(&mut self) -> Result<(), RigError> {
        self.select_channel()?;
        let line = self.render(&self.spec.commands.output_off.clone());
        self.set(&line)?;
        self.assumed_on = false;
        Ok(())
    }

    /// Asks the supply (`OUTP?`); if it cannot be asked, the last commanded
    /// state, with a warning.
    fn is_on(&mut self) -> bool {
        match self.output_state() {
            Ok(on) => on,
            Err(e) => {
                warn!(error = %e, "cannot read the supply's output state; assuming the last commanded one");
                self.assumed_on
            }
        }
    }

    fn describe(&self) -> String {
        let channel = self
            .spec
            .channel
            .map(|c| format!(", output {c}"))
            .unwrap_or_default();
        format!(
            "scpi supply {} ({}, limit {}{channel})",
            self.spec.address, self.spec.voltage, self.spec.current_limit
        )
    }
}

impl Supply for ScpiSupply {
    fn identify(&mut self) -> Result<Identity, RigError> {
        let answer = self.query("*IDN?")?;
        Identity::parse(&answer).ok_or_else(|| {
            self.error(SupplyProblem::BadAnswer {
                command: "*IDN?".into(),
                answer,
                expected: "manufacturer,model,serial,firmware (IEEE 488.2 §10.14)".into(),
            })
        })
    }

    fn measure(&mut self) -> Result<Reading, RigError> {
        self.select_channel()?;
        let c = self.spec.commands.clone();
        let volts = self.query_number(&c.measure_voltage)?;
        let amps = self.query_number(&c.measure_current)?;
        Ok(Reading { volts, amps })
    }
}

/// An error queue entry: `-113,"Undefined header"`, `+0,"No error"`
/// (SCPI-99 §21.8), or the `0 No Error` some Siglent models answer.
pub(crate) fn parse_error_entry(answer: &str) -> Option<(i32, String)> {
    let a = answer.trim();
    let (code, text) = match a.split_once(',') {
        Some(parts) => parts,
        None => a.split_once(char::is_whitespace).unwrap_or((a, "")),
    };
    let code = code.trim().parse::<i32>().ok()?;
    Some((code, text.trim().trim_matches('"').to_owned()))
}

/// A measurement answer: `<NR1>`, `<NR2>` or `<NR3>` (IEEE 488.2 §8.7),
/// with a trailing unit letter tolerated.
pub(crate) fn parse_number(answer: &str) -> Option<f64> {
    let a = answer.trim();
    let a = a.strip_suffix(['V', 'A']).unwrap_or(a).trim_end();
    a.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_entries_in_the_forms_supplies_answer() {
        assert_eq!(
            parse_error_entry("0,\"No error\""),
            Some((0, "No error".into()))
        );
        assert_eq!(
            parse_error_entry("+0,\"No error\"\r"),
            Some((0, "No error".into()))
        );
        assert_eq!(
            parse_error_entry("-222,\"Data out of range\""),
            Some((-222, "Data out of range".into()))
        );
        assert_eq!(
            parse_error_entry("0  No Error"),
            Some((0, "No Error".into()))
        );
        assert_eq!(parse_error_entry("OK"), None);
    }

    #[test]
    fn numbers_in_nr1_nr2_nr3_forms() {
        assert_eq!(parse_number("+3.00000000E-01"), Some(0.3));
        assert_eq!(parse_number("0.3000"), Some(0.3));
        assert_eq!(parse_number("3"), Some(3.0));
        assert_eq!(parse_number("3.600V"), Some(3.6));
        assert_eq!(parse_number("9.91E+37"), Some(9.91e37));
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number(""), None);
    }
}
