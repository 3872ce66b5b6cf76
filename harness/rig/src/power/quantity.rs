//! Voltages and currents as rig files write them (`3.6V`, `3600mV`,
//! `500mA`, `1.5A`), held as whole micro-units so that a rig file compares
//! equal to itself and the SCPI line sent for `3.6V` is exactly `3.6`, never
//! a float rendering such as `3.5999999`.

use std::fmt;

use serde::{Deserialize, Deserializer};

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name {
            micro: u64,
        }

        impl $name {
            /// The unit letter rig files and SCPI suffixes use.
            pub const UNIT: char = $unit;

            pub const fn from_micro(micro: u64) -> Self {
                $name { micro }
            }

            pub const fn from_milli(milli: u64) -> Self {
                $name { micro: milli * 1000 }
            }

            pub const fn micro(self) -> u64 {
                self.micro
            }

            pub fn as_f64(self) -> f64 {
                self.micro as f64 / 1e6
            }

            /// The value in base units as an SCPI `<NRf>` decimal: `3.6`,
            /// `0.5`, `12` — shortest exact form, no exponent, no unit.
            pub fn scpi(self) -> String {
                let whole = self.micro / 1_000_000;
                let frac = self.micro % 1_000_000;
                if frac == 0 {
                    return whole.to_string();
                }
                let digits = format!("{frac:06}");
                format!("{whole}.{}", digits.trim_end_matches('0'))
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                parse_micro(s, $unit).map($name::from_micro)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", self.scpi(), $unit)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "expected a value with its unit, like 3.6{0} or 500m{0}",
                        $unit
                    ))
                })?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

quantity!(
    /// A voltage (set point or measured).
    Volts,
    'V'
);
quantity!(
    /// A current (limit or measured).
    Amps,
    'A'
);

/// Parses `<decimal>[m|u]<unit>` into micro-units. A bare number is refused
/// (is `0.5` a current limit in amps or milliamps?), as is anything finer
/// than one micro-unit.
fn parse_micro(text: &str, unit: char) -> Result<u64, String> {
    let example = format!("expected a value like 3.6{unit}, 500m{unit} or 250u{unit}");
    let s = text.trim();
    let Some(body) = s.strip_suffix(unit) else {
        return Err(format!("`{text}` needs its unit: {example}"));
    };
    let (number, scale) = if let Some(n) = body.strip_suffix('m') {
        (n, 3)
    } else if let Some(n) = body.strip_suffix('u').or_else(|| body.strip_suffix('µ')) {
        (n, 0)
    } else {
        (body, 6)
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
        return Err(format!("`{text}`: {example}"));
    }
    if frac.len() > scale {
        return Err(format!(
            "`{text}` is finer than 1u{unit}, the finest step a rig file may give"
        ));
    }
    let too_large = || format!("`{text}` is too large");
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| too_large())?
    };
    let pow = |e: usize| 10u64.pow(e as u32);
    whole
        .checked_mul(pow(scale))
        .and_then(|w| w.checked_add(frac_value * pow(scale - frac.len())))
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_prefixes_become_micro_units() {
        assert_eq!("3.6V".parse::<Volts>().unwrap().micro(), 3_600_000);
        assert_eq!("3600mV".parse::<Volts>().unwrap().micro(), 3_600_000);
        assert_eq!("500mA".parse::<Amps>().unwrap().micro(), 500_000);
        assert_eq!("250uA".parse::<Amps>().unwrap().micro(), 250);
        assert_eq!("1.25A".parse::<Amps>().unwrap().micro(), 1_250_000);
        assert_eq!("12V".parse::<Volts>().unwrap().micro(), 12_000_000);
    }

    #[test]
    fn a_number_without_its_unit_or_with_the_wrong_one_is_refused() {
        assert!("3.6"
            .parse::<Volts>()
            .unwrap_err()
            .contains("needs its unit"));
        assert!("500mA".parse::<Volts>().is_err());
        assert!("-1V".parse::<Volts>().is_err());
        assert!(".5V".parse::<Volts>().is_err());
        assert!("1.5uA".parse::<Amps>().unwrap_err().contains("finer"));
    }

    #[test]
    fn scpi_form_is_the_shortest_exact_decimal() {
        assert_eq!(Volts::from_micro(3_600_000).scpi(), "3.6");
        assert_eq!(Amps::from_micro(500_000).scpi(), "0.5");
        assert_eq!(Amps::from_micro(250).scpi(), "0.00025");
        assert_eq!(Volts::from_micro(5_000_000).scpi(), "5");
        assert_eq!(Volts::from_micro(3_300_000).to_string(), "3.3V");
    }
}
