//! Choosing the rig's probe among those attached: by serial number, so a
//! bench host with several probes never attaches to a neighbour's board.

use crate::error::ProbeError;

/// A probe as listed, without the driver handle, so selection is plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSeen {
    pub identifier: String,
    pub vendor_id: u16,
    pub product_id: u16,
    pub serial: Option<String>,
}

impl std::fmt::Display for ProbeSeen {
    /// `ST-Link V3 (0483:374e:0669FF5550...)`: what a rig file's `probe:` can name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:04x}:{:04x}:{})",
            self.identifier,
            self.vendor_id,
            self.product_id,
            self.serial.as_deref().unwrap_or("no serial")
        )
    }
}

/// The rig's `debug.probe`: a serial number, or `VID:PID[:serial]` in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeWanted {
    Serial(String),
    Usb {
        vendor_id: u16,
        product_id: u16,
        serial: Option<String>,
    },
}

impl ProbeWanted {
    pub fn parse(text: &str) -> ProbeWanted {
        let t = text.trim();
        let mut parts = t.splitn(3, ':');
        let (v, p) = (parts.next(), parts.next());
        if let (Some(v), Some(p)) = (v, p) {
            if let (Ok(vendor_id), Ok(product_id)) =
                (u16::from_str_radix(v, 16), u16::from_str_radix(p, 16))
            {
                return ProbeWanted::Usb {
                    vendor_id,
                    product_id,
                    serial: parts.next().map(str::to_owned).filter(|s| !s.is_empty()),
                };
            }
        }
        ProbeWanted::Serial(t.to_owned())
    }

    pub fn matches(&self, p: &ProbeSeen) -> bool {
        let serial_is = |s: &str| {
            p.serial
                .as_deref()
                .is_some_and(|ps| ps.eq_ignore_ascii_case(s))
        };
        match self {
            ProbeWanted::Serial(s) => serial_is(s),
            ProbeWanted::Usb {
                vendor_id,
                product_id,
                serial,
            } => {
                p.vendor_id == *vendor_id
                    && p.product_id == *product_id
                    && serial.as_deref().is_none_or(serial_is)
            }
        }
    }
}

impl std::fmt::Display for ProbeWanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeWanted::Serial(s) => write!(f, "serial {s}"),
            ProbeWanted::Usb {
                vendor_id,
                product_id,
                serial,
            } => {
                write!(f, "{vendor_id:04x}:{product_id:04x}")?;
                if let Some(s) = serial {
                    write!(f, ":{s}")?;
                }
                Ok(())
            }
        }
    }
}

/// The index in `seen` of the one probe `wanted` names.
pub fn select(wanted: &ProbeWanted, seen: &[ProbeSeen]) -> Result<usize, ProbeError> {
    let hits: Vec<usize> = (0..seen.len())
        .filter(|i| wanted.matches(&seen[*i]))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(ProbeError::NoProbe {
            wanted: wanted.to_string(),
            seen: seen.iter().map(ToString::to_string).collect(),
        }),
        many => Err(ProbeError::AmbiguousProbe {
            wanted: wanted.to_string(),
            seen: many.iter().map(|i| seen[*i].to_string()).collect(),
        }),
    }
}
