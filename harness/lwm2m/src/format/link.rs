//! CoRE Link Format (RFC 6690), as used by Register's object list and Discover.

use crate::format::{ContentFormat, FormatError};
use crate::path::Path;

/// One link: `</3/0>;ver=1.1` is target "/3/0" with attribute ("ver", Some("1.1")).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub attributes: Vec<(String, Option<String>)>,
}

impl Link {
    pub fn new(target: impl Into<String>) -> Self {
        Link { target: target.into(), attributes: Vec::new() }
    }
    /// The target as an LwM2M path, when it is one (a root path like `</>` with `rt` is not).
    pub fn path(&self) -> Option<Path> {
        self.target.parse().ok().filter(|p: &Path| p.depth() > 0)
    }
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }
}

/// Parses a link-format payload.
pub fn parse_links(_text: &str) -> Result<Vec<Link>, FormatError> {
    let _ = ContentFormat::LinkFormat;
    todo!()
}

/// Encodes links as `<target>;attr=value,...`.
pub fn encode_links(_links: &[Link]) -> String {
    todo!()
}
