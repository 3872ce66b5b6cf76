//! Why a bench could not be built from its rig file: each names the file
//! and the part, so a lab engineer knows which line of the rig to look at.

use std::path::PathBuf;

use super::factory::PartError;
use crate::error::RigError;

/// A part of the bench; the rig file's key that describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Power,
    Modem,
    Debug,
    Network,
}

impl Part {
    /// The rig file's key for this part, as reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Part::Power => "power",
            Part::Modem => "modem",
            Part::Debug => "debug",
            Part::Network => "network",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchBuildError {
    /// The rig names a virtual part, but this build of the bench was given
    /// no virtual meter to play it (a tool that drives real benches only).
    #[error("{}: {part}: `{what}` needs the virtual meter, and no virtual-part driver was given", file.display())]
    NoVirtualParts {
        file: PathBuf,
        part: Part,
        what: &'static str,
    },
    /// The rig names an SWD probe, but no probe-rs driver was given.
    #[error("{}: debug: `kind: swd` needs the SWD driver, and none was given", file.display())]
    NoSwdParts { file: PathBuf },
    /// The rig asks for injected faults on a part that may be real
    /// hardware without saying it is a stand-in.
    #[error("{}: faults: injected faults are refused on a rig with real parts ({part}: {what}); set `faults.on_real_parts: true` if the bench is a stand-in", file.display())]
    FaultsOnRealParts {
        file: PathBuf,
        part: Part,
        what: &'static str,
    },
    /// A driver this crate builds refused the part's settings.
    #[error("{}: {part}: {source}", file.display())]
    Rig {
        file: PathBuf,
        part: Part,
        /// Boxed: a rig error is large, and this one is rare.
        #[source]
        source: Box<RigError>,
    },
    /// A factory's driver (the virtual meter's, probe-rs) refused the part.
    #[error("{}: {part}: {source}", file.display())]
    Factory {
        file: PathBuf,
        part: Part,
        #[source]
        source: PartError,
    },
}

impl BenchBuildError {
    /// The part of the rig this error is about.
    pub fn part(&self) -> Part {
        match self {
            BenchBuildError::NoVirtualParts { part, .. }
            | BenchBuildError::Rig { part, .. }
            | BenchBuildError::Factory { part, .. }
            | BenchBuildError::FaultsOnRealParts { part, .. } => *part,
            BenchBuildError::NoSwdParts { .. } => Part::Debug,
        }
    }
}
