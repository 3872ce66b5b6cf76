//! The probe crate's one error type: which probe, which chip, which symbol
//! or address, so that a lab engineer can act without re-running.

use std::path::PathBuf;

/// Anything the SWD port could not do.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No attached probe matches the rig's `debug.probe`.
    #[error("no probe found matching {wanted}; probes seen: {}", seen_list(seen))]
    NoProbe { wanted: String, seen: Vec<String> },

    /// More than one attached probe matches (a bare VID:PID on a bench with two).
    #[error("{wanted} matches {} probes ({}); give the serial number", seen.len(), seen.join("; "))]
    AmbiguousProbe { wanted: String, seen: Vec<String> },

    /// The probe was found but could not be opened or configured.
    #[error("probe {probe}: {message}")]
    Probe { probe: String, message: String },

    /// probe-rs has no target of that name.
    #[error("chip `{chip}` is not in probe-rs's target list{}", near_list(near))]
    UnknownChip { chip: String, near: Vec<String> },

    /// Attaching, resetting, halting or reading the target failed.
    #[error("probe {probe}, chip {chip}: {operation}: {message}")]
    Target {
        probe: String,
        chip: String,
        operation: String,
        message: String,
    },

    /// The firmware ELF could not be read or is not a linked image.
    #[error("{}: {message}", path.display())]
    Elf { path: PathBuf, message: String },

    /// A symbol the rig maps is not in the ELF (or has no size to read).
    #[error("{}: symbol `{symbol}`: {message}", elf.display())]
    Symbol {
        elf: PathBuf,
        symbol: String,
        message: String,
    },

    /// An address range the memory at hand does not hold.
    #[error("{memory}: cannot read {len} bytes at {address:#010x}: {message}")]
    Memory {
        memory: String,
        address: u64,
        len: usize,
        message: String,
    },

    /// Flashing an image failed.
    #[error("probe {probe}, chip {chip}: flashing {}: {message}", image.display())]
    Flash {
        probe: String,
        chip: String,
        image: PathBuf,
        message: String,
    },

    /// The RTT capture file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn seen_list(seen: &[String]) -> String {
    if seen.is_empty() {
        "none".to_owned()
    } else {
        format!("[{}]", seen.join("; "))
    }
}

fn near_list(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!("; near matches: {}", near.join(", "))
    }
}

impl From<ProbeError> for rig::RigError {
    fn from(e: ProbeError) -> Self {
        rig::RigError::Driver {
            driver: "swd".to_owned(),
            message: e.to_string(),
        }
    }
}
