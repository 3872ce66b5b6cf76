//! The simulated supply's state and what it does with one program message:
//! pure (line in, answer out), so the network side only moves bytes.

use std::collections::VecDeque;

use super::program::{header_matches, parse_unit, split_units, Header, SyntaxError, Unit};

/// How the simulated supply writes its answers: the two families the
/// driver must read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerStyle {
    /// Keysight E36xx: measurements in `<NR3>` (`+3.00000000E-01`), `OUTP?`
    /// as `1`/`0`, error entries with a sign (`+0,"No error"`).
    #[default]
    Keysight,
    /// Rigol DP800: measurements in fixed point (`0.3000`), `OUTP?` as
    /// `ON`/`OFF`, outputs named in parameters (`:OUTP CH1,ON`,
    /// `:MEAS:CURR? CH1`), error entries unsigned (`0,"No error"`).
    Rigol,
}

/// What the device on an output draws.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Load {
    /// Nothing connected: no current.
    #[default]
    Open,
    /// An ohmic load; above the current limit the supply goes constant-current.
    Ohms(f64),
    /// The currents successive `MEAS:CURR?` see, cycling (a device that
    /// transmits now and then), each capped by the limit.
    Amps(Vec<f64>),
}

/// One output's settings and load.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub volts: f64,
    pub current_limit: f64,
    pub on: bool,
    pub load: Load,
    /// Where in `Load::Amps` the next measurement is.
    next_sample: usize,
}

impl Output {
    fn reset(&mut self) {
        self.volts = 0.0;
        self.current_limit = DEFAULT_LIMIT;
        self.on = false;
    }

    /// (volts, amps) at the terminals now.
    fn terminals(&mut self, advance: bool) -> (f64, f64) {
        if !self.on {
            return (0.0, 0.0);
        }
        match &self.load {
            Load::Open => (self.volts, 0.0),
            Load::Ohms(r) => {
                let drawn = self.volts / r;
                if drawn > self.current_limit {
                    (self.current_limit * r, self.current_limit)
                } else {
                    (self.volts, drawn)
                }
            }
            Load::Amps(seq) if seq.is_empty() => (self.volts, 0.0),
            Load::Amps(seq) => {
                let a = seq[self.next_sample % seq.len()].min(self.current_limit);
                if advance {
                    self.next_sample = (self.next_sample + 1) % seq.len();
                }
                (self.volts, a)
            }
        }
    }
}

const DEFAULT_LIMIT: f64 = 0.1;
/// SCPI-99 requires room for at least two; real supplies keep 10 to 20.
const ERROR_QUEUE_LEN: usize = 20;

/// The instrument: outputs, selection, error queue.
#[derive(Debug, Clone)]
pub struct Instrument {
    pub identity: String,
    pub style: AnswerStyle,
    pub max_volts: f64,
    pub max_amps: f64,
    pub outputs: Vec<Output>,
    /// 0-based index of the output `INST:NSEL` selected.
    pub selected: usize,
    errors: VecDeque<(i32, &'static str)>,
}

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Idn,
    Rst,
    Cls,
    Opc,
    SystErr,
    InstNsel,
    Volt,
    Curr,
    Outp,
    MeasVolt,
    MeasCurr,
}

/// The command tree, spelled as the manuals do (Keysight E36300
/// Programming Guide; Rigol DP800 Programming Guide).
const TREE: &[(&str, Cmd)] = &[
    ("SYSTem:ERRor[:NEXT]", Cmd::SystErr),
    ("INSTrument:NSELect", Cmd::InstNsel),
    (
        "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
        Cmd::Volt,
    ),
    (
        "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
        Cmd::Curr,
    ),
    ("OUTPut[:STATe]", Cmd::Outp),
    ("MEASure[:SCALar]:VOLTage[:DC]", Cmd::MeasVolt),
    ("MEASure[:SCALar]:CURRent[:DC]", Cmd::MeasCurr),
];

type Failure = (i32, &'static str);
const UNDEFINED_HEADER: Failure = (-113, "Undefined header");
const MISSING_PARAMETER: Failure = (-109, "Missing parameter");
const PARAMETER_NOT_ALLOWED: Failure = (-108, "Parameter not allowed");
const DATA_TYPE: Failure = (-104, "Data type error");
const ILLEGAL_VALUE: Failure = (-224, "Illegal parameter value");
const OUT_OF_RANGE: Failure = (-222, "Data out of range");

impl Instrument {
    pub fn new(identity: &str, outputs: usize, style: AnswerStyle) -> Self {
        let output = Output {
            volts: 0.0,
            current_limit: DEFAULT_LIMIT,
            on: false,
            load: Load::Open,
            next_sample: 0,
        };
        Instrument {
            identity: identity.into(),
            style,
            max_volts: 30.0,
            max_amps: 3.0,
            outputs: vec![output; outputs.max(1)],
            selected: 0,
            errors: VecDeque::new(),
        }
    }

    /// The errors queued, oldest first (without reading them).
    pub fn queued_errors(&self) -> Vec<(i32, String)> {
        self.errors
            .iter()
            .map(|(c, t)| (*c, t.to_string()))
            .collect()
    }

    fn push_error(&mut self, e: Failure) {
        if self.errors.len() >= ERROR_QUEUE_LEN {
            // SCPI-99 §21.8.1: the last entry becomes "Queue overflow".
            if let Some(last) = self.errors.back_mut() {
                *last = (-350, "Queue overflow");
            }
        } else {
            self.errors.push_back(e);
        }
    }

    /// Executes one program message; the response message, if any query
    /// produced one. After an error the rest of the message is discarded,
    /// as instruments' parsers do.
    pub fn execute(&mut self, message: &str) -> Option<String> {
        let mut path = Vec::new();
        let mut answers = Vec::new();
        for text in split_units(message) {
            if text.trim().is_empty() {
                continue;
            }
            let result = parse_unit(text, &mut path)
                .map_err(|SyntaxError { code, text }| (code, text))
                .and_then(|unit| self.run(&unit));
            match result {
                Ok(Some(answer)) => answers.push(answer),
                Ok(None) => {}
                Err(e) => {
                    self.push_error(e);
                    break;
                }
            }
        }
        // IEEE 488.2 §8.4.1: answers to one message share one line, `;` between.
        (!answers.is_empty()).then(|| answers.join(";"))
    }

    fn run(&mut self, unit: &Unit) -> Result<Option<String>, Failure> {
        let mut output_override = None;
        let cmd = match &unit.header {
            Header::Common(h) => match h.as_str() {
                "*IDN" if unit.query => Cmd::Idn,
                "*RST" if !unit.query => Cmd::Rst,
                "*CLS" if !unit.query => Cmd::Cls,
                "*OPC" => Cmd::Opc,
                _ => return Err(UNDEFINED_HEADER),
            },
            Header::Compound(m) => {
                let (m, source) = self.source_suffix(m)?;
                output_override = source;
                TREE.iter()
                    .find(|(pattern, _)| header_matches(pattern, &m))
                    .map(|(_, c)| *c)
                    .ok_or(UNDEFINED_HEADER)?
            }
        };
        let selected = output_override.unwrap_or(self.selected);
        let q = unit.query;
        let p = &unit.params;
        match cmd {
            Cmd::Idn => no_params(p).map(|()| Some(self.identity.clone())),
            Cmd::Rst => {
                no_params(p)?;
                self.outputs.iter_mut().for_each(Output::reset);
                self.selected = 0;
                Ok(None)
            }
            Cmd::Cls => {
                no_params(p)?;
                self.errors.clear();
                Ok(None)
            }
            Cmd::Opc => Ok(q.then(|| "1".to_owned())),
            Cmd::SystErr if q => {
                no_params(p)?;
                let (code, text) = self.errors.pop_front().unwrap_or((0, "No error"));
                Ok(Some(match self.style {
                    AnswerStyle::Keysight => format!("{code:+},\"{text}\""),
                    AnswerStyle::Rigol => format!("{code},\"{text}\""),
                }))
            }
            Cmd::InstNsel if q => no_params(p).map(|()| Some((self.selected + 1).to_string())),
            Cmd::InstNsel => {
                let n = one_param(p)?;
                let n: usize = n.parse().map_err(|_| DATA_TYPE)?;
                if n == 0 || n > self.outputs.len() {
                    return Err(OUT_OF_RANGE);
                }
                self.selected = n - 1;
                Ok(None)
            }
            Cmd::Volt | Cmd::Curr => {
                let (max, unit) = match cmd {
                    Cmd::Volt => (self.max_volts, 'V'),
                    _ => (self.max_amps, 'A'),
                };
                if q {
                    let value = match p.first().map(|s| s.to_ascii_uppercase()).as_deref() {
                        None => {
                            let o = &self.outputs[selected];
                            if unit == 'V' {
                                o.volts
                            } else {
                                o.current_limit
                            }
                        }
                        Some("MAX" | "MAXIMUM") if p.len() == 1 => max,
                        Some("MIN" | "MINIMUM") if p.len() == 1 => 0.0,
                        _ => return Err(PARAMETER_NOT_ALLOWED),
                    };
                    return Ok(Some(self.number(value, unit)));
                }
                let value = level(one_param(p)?, max, unit)?;
                let o = &mut self.outputs[selected];
                if unit == 'V' {
                    o.volts = value;
                } else {
                    o.current_limit = value;
                }
                Ok(None)
            }
            Cmd::Outp => {
                let (index, rest) = self.channel_param(p)?;
                if q {
                    no_params(rest)?;
                    let on = self.outputs[index].on;
                    return Ok(Some(
                        match (self.style, on) {
                            (AnswerStyle::Keysight, true) => "1",
                            (AnswerStyle::Keysight, false) => "0",
                            (AnswerStyle::Rigol, true) => "ON",
                            (AnswerStyle::Rigol, false) => "OFF",
                        }
                        .to_owned(),
                    ));
                }
                let on = match one_param(rest)?.to_ascii_uppercase().as_str() {
                    "ON" | "1" => true,
                    "OFF" | "0" => false,
                    _ => return Err(ILLEGAL_VALUE),
                };
                self.outputs[index].on = on;
                Ok(None)
            }
            Cmd::MeasVolt | Cmd::MeasCurr if q => {
                let (index, rest) = self.channel_param(p)?;
                no_params(rest)?;
                let volts_only = matches!(cmd, Cmd::MeasVolt);
                let (v, a) = self.outputs[index].terminals(!volts_only);
                Ok(Some(if volts_only {
                    self.number(v, 'V')
                } else {
                    self.number(a, 'A')
                }))
            }
            // A query-only header used as a setting.
            Cmd::SystErr | Cmd::MeasVolt | Cmd::MeasCurr => Err(UNDEFINED_HEADER),
        }
    }

    /// Rigol's `:SOURce<n>:` names the output in the header (DP800
    /// Programming Guide, `[:SOURce[<n>]]:VOLTage`); the mnemonics without
    /// the suffix, and the output it names.
    fn source_suffix(&self, m: &[String]) -> Result<(Vec<String>, Option<usize>), Failure> {
        let mut m = m.to_vec();
        let Some(first) = m.first_mut() else {
            return Ok((m, None));
        };
        let digits = first.len() - first.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let base = &first[..first.len() - digits];
        if digits == 0 || !(base == "SOUR" || base == "SOURCE") || self.style != AnswerStyle::Rigol
        {
            return Ok((m, None));
        }
        let n: usize = first[base.len()..].parse().map_err(|_| UNDEFINED_HEADER)?;
        if n == 0 || n > self.outputs.len() {
            return Err(OUT_OF_RANGE);
        }
        first.truncate(base.len());
        Ok((m, Some(n - 1)))
    }

    /// Rigol's leading `CH<n>` parameter naming the output; absent: the
    /// selected one. Keysight takes no such parameter.
    fn channel_param<'p>(&self, p: &'p [String]) -> Result<(usize, &'p [String]), Failure> {
        let Some(first) = p.first() else {
            return Ok((self.selected, p));
        };
        let upper = first.to_ascii_uppercase();
        match upper.strip_prefix("CH") {
            Some(n) if self.style == AnswerStyle::Rigol => {
                let n: usize = n.parse().map_err(|_| ILLEGAL_VALUE)?;
                if n == 0 || n > self.outputs.len() {
                    return Err(OUT_OF_RANGE);
                }
                Ok((n - 1, &p[1..]))
            }
            _ => Ok((self.selected, p)),
        }
    }

    fn number(&self, value: f64, unit: char) -> String {
        match self.style {
            AnswerStyle::Keysight => nr3(value),
            AnswerStyle::Rigol if unit == 'V' => format!("{value:.3}"),
            AnswerStyle::Rigol => format!("{value:.4}"),
        }
    }
}

fn no_params(p: &[String]) -> Result<(), Failure> {
    if p.is_empty() {
        Ok(())
    } else {
        Err(PARAMETER_NOT_ALLOWED)
    }
}

fn one_param(p: &[String]) -> Result<&str, Failure> {
    match p {
        [] => Err(MISSING_PARAMETER),
        [one] if one.is_empty() => Err(MISSING_PARAMETER),
        [one] => Ok(one),
        _ => Err(PARAMETER_NOT_ALLOWED),
    }
}

/// A level parameter: `<NRf>` with an optional base-unit suffix, or
/// MIN/MAX (IEEE 488.2 §7.7.2 decimal numeric program data).
fn level(text: &str, max: f64, unit: char) -> Result<f64, Failure> {
    let upper = text.to_ascii_uppercase();
    let value = match upper.as_str() {
        "MAX" | "MAXIMUM" => max,
        "MIN" | "MINIMUM" => 0.0,
        _ => {
            let number = upper.strip_suffix(unit).unwrap_or(&upper).trim_end();
            number
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or(DATA_TYPE)?
        }
    };
    if !(0.0..=max).contains(&value) {
        return Err(OUT_OF_RANGE);
    }
    Ok(value)
}

/// `<NR3>` the way Keysight supplies print it: sign, one digit, eight
/// decimals, signed two-digit exponent (`+3.00000000E-01`).
fn nr3(value: f64) -> String {
    let s = format!("{value:+.8E}");
    let (mantissa, exponent) = s.split_once('E').expect("E format has an exponent");
    let exponent: i32 = exponent.parse().expect("E format exponent is a number");
    format!("{mantissa}E{exponent:+03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nr3_has_a_signed_two_digit_exponent() {
        assert_eq!(nr3(0.3), "+3.00000000E-01");
        assert_eq!(nr3(3.6), "+3.60000000E+00");
        assert_eq!(nr3(0.0), "+0.00000000E+00");
        assert_eq!(nr3(12.0), "+1.20000000E+01");
    }

    #[test]
    fn unknown_headers_queue_undefined_header_and_discard_the_rest() {
        let mut i = Instrument::new("X,Y,0,1", 1, AnswerStyle::Keysight);
        assert_eq!(i.execute("VOLTA 3;VOLT 5"), None);
        assert_eq!(
            i.outputs[0].volts, 0.0,
            "the unit after the error is discarded"
        );
        assert_eq!(
            i.execute("SYST:ERR?").as_deref(),
            Some("-113,\"Undefined header\"")
        );
        assert_eq!(i.execute("syst:err?").as_deref(), Some("+0,\"No error\""));
    }

    #[test]
    fn settings_and_queries_share_one_message_and_one_answer_line() {
        let mut i = Instrument::new("X,Y,0,1", 2, AnswerStyle::Keysight);
        assert_eq!(i.execute("inst:nsel 2;:volt 3.6;curr 0.5;:outp on"), None);
        assert_eq!(i.outputs[1].volts, 3.6);
        assert_eq!(i.outputs[1].current_limit, 0.5);
        assert!(i.outputs[1].on && !i.outputs[0].on);
        i.outputs[1].load = Load::Ohms(12.0);
        assert_eq!(
            i.execute("MEASure:VOLTage?;CURRent?;:OUTPut?").as_deref(),
            Some("+3.60000000E+00;+3.00000000E-01;1")
        );
        assert_eq!(i.execute("VOLT 31"), None);
        assert_eq!(i.queued_errors(), vec![(-222, "Data out of range".into())]);
    }

    #[test]
    fn rigol_names_outputs_in_parameters_and_answers_on_off() {
        let mut i = Instrument::new("RIGOL TECHNOLOGIES,DP832,0,1", 3, AnswerStyle::Rigol);
        assert_eq!(i.execute(":OUTP CH2,ON"), None);
        assert_eq!(i.execute(":OUTP? CH2").as_deref(), Some("ON"));
        assert_eq!(i.execute(":OUTP? CH1").as_deref(), Some("OFF"));
        assert_eq!(i.execute(":MEAS:CURR? CH2").as_deref(), Some("0.0000"));
        assert_eq!(i.execute(":SYST:ERR?").as_deref(), Some("0,\"No error\""));
        assert_eq!(i.execute(":SOUR3:VOLT 5;:SOURce3:CURRent 0.2"), None);
        assert_eq!((i.outputs[2].volts, i.outputs[2].current_limit), (5.0, 0.2));
        assert_eq!(i.execute(":SOUR4:VOLT 5"), None);
        assert_eq!(i.queued_errors(), vec![(-222, "Data out of range".into())]);
    }

    #[test]
    fn constant_current_above_the_limit() {
        let mut i = Instrument::new("X,Y,0,1", 1, AnswerStyle::Keysight);
        i.outputs[0].load = Load::Ohms(2.0);
        i.execute("VOLT 4;CURR 0.5;OUTP ON");
        assert_eq!(i.execute("MEAS:CURR?").as_deref(), Some("+5.00000000E-01"));
        assert_eq!(i.execute("MEAS:VOLT?").as_deref(), Some("+1.00000000E+00"));
    }
}
