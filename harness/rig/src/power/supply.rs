//! What a measuring supply offers beyond switching: who it is and what the
//! device draws. A [`Power`] that cannot measure (a relay) simply does not
//! implement it; current recording ([`crate::power::sampler`]) needs it.

use std::fmt;
use std::time::Duration;

use crate::error::RigError;
use crate::traits::Power;

/// A supply that can also say who it is and measure its output.
pub trait Supply: Power {
    /// `*IDN?`: what the rig doctor shows to prove the supply answers.
    fn identify(&mut self) -> Result<Identity, RigError>;
    /// Voltage and current at the output now.
    fn measure(&mut self) -> Result<Reading, RigError>;
}

/// One measurement of the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub volts: f64,
    pub amps: f64,
}

/// The four fields of an `*IDN?` answer (IEEE 488.2 §10.14: manufacturer,
/// model, serial number, firmware level; a field the maker leaves out is `0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
}

impl Identity {
    /// Parses an `*IDN?` answer; `None` unless it has exactly four fields.
    pub fn parse(answer: &str) -> Option<Identity> {
        let fields: Vec<&str> = answer.trim().split(',').map(str::trim).collect();
        let [manufacturer, model, serial, firmware] = fields.as_slice() else {
            return None;
        };
        if manufacturer.is_empty() || model.is_empty() {
            return None;
        }
        Some(Identity {
            manufacturer: (*manufacturer).into(),
            model: (*model).into(),
            serial: (*serial).into(),
            firmware: (*firmware).into(),
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (serial {}, firmware {})",
            self.manufacturer, self.model, self.serial, self.firmware
        )
    }
}

/// Why a supply could not do its part; `supply` names its address so a lab
/// engineer knows which box on which bench to look at.
#[derive(Debug, thiserror::Error)]
#[error("scpi supply {supply}: {problem}")]
pub struct SupplyError {
    pub supply: String,
    pub problem: SupplyProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum SupplyProblem {
    /// The socket or serial port could not be opened.
    #[error("cannot connect: {message}")]
    Connect { message: String },
    /// The supply stopped answering: nothing, or no full line, in time.
    #[error("no answer to `{command}` within {}{}", crate::duration::format_duration(*waited),
        if partial.is_empty() { String::new() } else { format!("; unterminated bytes: {partial:?}") })]
    NoAnswer {
        command: String,
        waited: Duration,
        /// Bytes received without their line end (lossy UTF-8).
        partial: String,
    },
    /// The supply closed the connection.
    #[error("connection closed by the supply during `{command}`")]
    Closed { command: String },
    /// Reading or writing failed.
    #[error("I/O failed during `{command}`: {source}")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The supply queued an error for the command (SCPI-99 §21.8 error
    /// queue, read with `SYST:ERR?`).
    #[error("`{command}` refused by the supply: {code},\"{text}\"")]
    Refused {
        command: String,
        code: i32,
        text: String,
    },
    /// An answer that is not what the query returns.
    #[error("unexpected answer {answer:?} to `{command}`: expected {expected}")]
    BadAnswer {
        command: String,
        answer: String,
        expected: String,
    },
}

impl SupplyProblem {
    /// The command during which it happened, if any.
    pub fn command(&self) -> Option<&str> {
        match self {
            SupplyProblem::Connect { .. } => None,
            SupplyProblem::NoAnswer { command, .. }
            | SupplyProblem::Closed { command }
            | SupplyProblem::Io { command, .. }
            | SupplyProblem::Refused { command, .. }
            | SupplyProblem::BadAnswer { command, .. } => Some(command),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idn_answer_has_four_fields() {
        let id = Identity::parse("RIGOL TECHNOLOGIES,DP832A,DP8A000000001,00.01.16\n").unwrap();
        assert_eq!(id.manufacturer, "RIGOL TECHNOLOGIES");
        assert_eq!(id.model, "DP832A");
        assert_eq!(id.serial, "DP8A000000001");
        assert_eq!(id.firmware, "00.01.16");
        assert_eq!(Identity::parse("just a name"), None);
        assert_eq!(Identity::parse("a,b,c,d,e"), None);
    }
}
