//! Parsing a Package URI (object 5 resource 1) the way a device must before
//! it downloads: the scheme picks the protocol (resource 8's values), and a
//! URI it cannot use ends the download with Update Result 7 or 9.

use std::fmt;

use super::state::{ProtocolSupport, UpdateResult};

/// A Package URI split into what a downloader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageUri {
    pub protocol: ProtocolSupport,
    /// Host name or address; an IPv6 literal without its brackets.
    pub host: String,
    /// The explicit port, or the scheme's default (5683, 5684, 80, 443).
    pub port: u16,
    /// Path segments, percent-decoded (RFC 7252 §6.4 step 8), empty segments dropped.
    pub path: Vec<String>,
    /// Query parts split at '&', percent-decoded.
    pub query: Vec<String>,
}

/// Why a Package URI cannot be used, with the Update Result a device reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Package URI {uri:?}: {reason} (Update Result {})", result.code())]
pub struct PackageUriError {
    pub uri: String,
    pub reason: String,
    /// `InvalidUri` (7) or `UnsupportedProtocol` (9).
    pub result: UpdateResult,
}

impl PackageUri {
    /// Parses `scheme://host[:port]/path[?query]`. Schemes: coap, coaps, http,
    /// https, coap+tcp, coaps+tcp (RFC 8323 §8). An unknown scheme is
    /// Unsupported Protocol (9); anything malformed (no scheme, no host, a
    /// bad port, a fragment, bad percent-encoding) is Invalid URI (7).
    pub fn parse(uri: &str) -> Result<PackageUri, PackageUriError> {
        let err = |result: UpdateResult, reason: &str| PackageUriError {
            uri: uri.to_string(),
            reason: reason.to_string(),
            result,
        };
        let invalid = |reason: &str| err(UpdateResult::InvalidUri, reason);
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| invalid("no scheme://"))?;
        let (protocol, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "coap" => (ProtocolSupport::Coap, 5683),
            "coaps" => (ProtocolSupport::Coaps, 5684),
            "http" => (ProtocolSupport::Http, 80),
            "https" => (ProtocolSupport::Https, 443),
            "coap+tcp" => (ProtocolSupport::CoapTcp, 5683),
            "coaps+tcp" => (ProtocolSupport::CoapTls, 5684),
            "" => return Err(invalid("empty scheme")),
            _ => {
                return Err(err(
                    UpdateResult::UnsupportedProtocol,
                    &format!("scheme {scheme:?} is not a firmware download protocol"),
                ))
            }
        };
        if rest.contains('#') {
            return Err(invalid("fragments are not allowed (RFC 7252 §6.1)"));
        }
        let (authority, path_query) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid("user information is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unterminated IPv6 literal"))?;
            (h, after)
        } else {
            match authority.rfind(':') {
                Some(i) => (&authority[..i], &authority[i..]),
                None => (authority, ""),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("bad port"))?,
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_query, ""),
        };
        let decode_all = |parts: Vec<&str>| -> Result<Vec<String>, PackageUriError> {
            parts
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(|s| percent_decode(s).ok_or_else(|| invalid("bad percent-encoding")))
                .collect()
        };
        Ok(PackageUri {
            protocol,
            host: host.to_string(),
            port,
            path: decode_all(path.split('/').collect())?,
            query: decode_all(query.split('&').collect())?,
        })
    }
}

impl fmt::Display for PackageUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.protocol {
            ProtocolSupport::Coap => "coap",
            ProtocolSupport::Coaps => "coaps",
            ProtocolSupport::Http => "http",
            ProtocolSupport::Https => "https",
            ProtocolSupport::CoapTcp => "coap+tcp",
            ProtocolSupport::CoapTls => "coaps+tcp",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}/{}", self.port, self.path.join("/"))?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query.join("&"))?;
        }
        Ok(())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
