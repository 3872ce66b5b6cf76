//! The one error type of the sim crate: what the virtual meter could not do,
//! with the file or argument it concerns.

use std::path::PathBuf;

/// Anything the virtual meter process (or its drivers) could not do.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The command line was wrong; the message says which argument and why.
    #[error("usage: {0}")]
    Usage(String),

    /// A file or directory could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The pseudo-terminal could not be created or configured.
    #[error("pty: {0}")]
    Pty(String),

    /// The NV file exists but cannot be understood.
    #[error("{}: NV storage is corrupt: {message}", path.display())]
    NvCorrupt { path: PathBuf, message: String },

    /// The OMA object definitions could not be loaded.
    #[error("{}: cannot load object definitions: {message}", dir.display())]
    Objects { dir: PathBuf, message: String },

    /// The smartcard's bootstrap file cannot be written as asked
    /// (crate::smartcard); names the file, never its content.
    #[error("smartcard: {0}")]
    Card(String),

    /// A UDP socket could not be opened.
    #[error("udp: {0}")]
    Udp(#[source] std::io::Error),
}

impl SimError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SimError::Io {
            path: path.into(),
            source,
        }
    }
}
