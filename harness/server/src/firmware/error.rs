//! What can go wrong loading firmware images or serving them.

use std::net::SocketAddr;
use std::path::PathBuf;

/// An error of the firmware store or file servers. Each variant names the
/// file (and line:column for the manifest) a lab engineer has to look at.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid YAML or does not have the expected shape.
    #[error("{}:{line}:{column}: {message}{}", file.display(), if snippet.is_empty() { String::new() } else { format!("\n{snippet}") })]
    Manifest {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
        snippet: String,
    },
    /// A manifest entry is well-formed YAML but says something impossible
    /// (a bad name, a SHA-256 that is not 64 hex digits, a duplicate).
    #[error("{}:{line}:{column}: image {name:?}: {message}", file.display())]
    Entry {
        file: PathBuf,
        line: u64,
        column: u64,
        name: String,
        message: String,
    },
    #[error("image {name:?} listed in {} is missing: {}: {source}", manifest.display(), path.display())]
    ImageMissing {
        name: String,
        manifest: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {name:?} ({}) is {actual} bytes, the manifest says {expected}", path.display())]
    SizeMismatch {
        name: String,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("image {name:?} ({}) has SHA-256 {actual}, the manifest says {expected} (regenerate the fixtures, or mark the entry `corrupt: true` if that is the point)", path.display())]
    ShaMismatch {
        name: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot bind the {what} file server on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no credential store for the CoAPS file server (start the delivery with the LwM2M server's credentials)")]
    NoCredentials,
    #[error("cannot generate firmware fixture {name:?}: {message}")]
    Generate { name: String, message: String },
}
