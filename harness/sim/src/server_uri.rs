//! The server URIs the AT dialect accepts (`AT+LWM2MSRV="coap://host:port"`,
//! `AT+LWM2MBS="coaps://host:port"`): `coap://` plain, `coaps://` over DTLS
//! (RFC 7252 §6.1, §6.2).

use std::net::{SocketAddr, ToSocketAddrs};

/// Default CoAP port (RFC 7252 §6.1).
pub const COAP_DEFAULT_PORT: u16 = 5683;
/// Default CoAP over DTLS port (RFC 7252 §6.2).
pub const COAPS_DEFAULT_PORT: u16 = 5684;

/// A parsed `coap[s]://host[:port][/]` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUri {
    /// Host name or address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// `coaps://`: DTLS.
    pub secure: bool,
}

/// Why a server URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("{0:?}: only coap:// and coaps:// are supported")]
    Scheme(String),
    #[error("{0:?}: no host")]
    NoHost(String),
    #[error("{0:?}: host contains characters a host name cannot have")]
    BadHost(String),
    #[error("{0:?}: port is not a number in 1..=65535")]
    BadPort(String),
    #[error("{0:?}: a server URI has no path or query")]
    Path(String),
}

impl ServerUri {
    /// Parses `coap[s]://host[:port][/]` (RFC 7252 §6.1, §6.2); IPv6 hosts
    /// are bracketed.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let (rest, secure) = match (uri.get(..7), uri.get(..8)) {
            (Some(s), _) if s.eq_ignore_ascii_case("coap://") => (&uri[7..], false),
            (_, Some(s)) if s.eq_ignore_ascii_case("coaps://") => (&uri[8..], true),
            _ => return Err(UriError::Scheme(uri.to_owned())),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(UriError::Path(uri.to_owned()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| UriError::BadHost(uri.to_owned()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UriError::BadHost(uri.to_owned()));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| UriError::BadHost(uri.to_owned()))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UriError::NoHost(uri.to_owned()));
        }
        if !authority.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(UriError::BadHost(uri.to_owned()));
        }
        let port = match port {
            None if secure => COAPS_DEFAULT_PORT,
            None => COAP_DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.chars().all(|c| c.is_ascii_digit()) => n,
                _ => return Err(UriError::BadPort(uri.to_owned())),
            },
        };
        Ok(ServerUri {
            host: host.to_owned(),
            port,
            secure,
        })
    }

    /// Resolves the host (name lookup for names; loopback names resolve locally).
    pub fn resolve(&self) -> std::io::Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} has no address", self.host),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_host_port_forms() {
        assert_eq!(
            ServerUri::parse("coap://127.0.0.1:5690").unwrap(),
            ServerUri {
                host: "127.0.0.1".into(),
                port: 5690,
                secure: false
            }
        );
        assert_eq!(
            ServerUri::parse("COAP://localhost").unwrap(),
            ServerUri {
                host: "localhost".into(),
                port: 5683,
                secure: false
            }
        );
        assert_eq!(
            ServerUri::parse("coap://[::1]:7000/").unwrap(),
            ServerUri {
                host: "::1".into(),
                port: 7000,
                secure: false
            }
        );
        assert_eq!(ServerUri::parse("coap://[::1]").unwrap().port, 5683);
        let s = ServerUri::parse("COAPS://127.0.0.1").unwrap();
        assert_eq!((s.port, s.secure), (5684, true));
        assert_eq!(ServerUri::parse("coaps://h:7").unwrap().port, 7);
    }

    #[test]
    fn refuses_what_is_not_a_coap_server_uri() {
        assert!(matches!(
            ServerUri::parse("coapz://h:5684"),
            Err(UriError::Scheme(_))
        ));
        assert!(matches!(
            ServerUri::parse("coaps://"),
            Err(UriError::NoHost(_))
        ));
        assert!(matches!(
            ServerUri::parse("http://h"),
            Err(UriError::Scheme(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://"),
            Err(UriError::NoHost(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://:5683"),
            Err(UriError::NoHost(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://h:0"),
            Err(UriError::BadPort(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://h:99999"),
            Err(UriError::BadPort(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://h:+5"),
            Err(UriError::BadPort(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://h/rd"),
            Err(UriError::Path(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://h st"),
            Err(UriError::BadHost(_))
        ));
        assert!(matches!(
            ServerUri::parse("coap://[nothex]:1"),
            Err(UriError::BadHost(_))
        ));
    }

    #[test]
    fn loopback_resolves() {
        let a = ServerUri::parse("coap://127.0.0.1:5999")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(a, "127.0.0.1:5999".parse().unwrap());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = ServerUri::parse(&s);
            let _ = ServerUri::parse(&format!("coap://{s}"));
            let _ = ServerUri::parse(&format!("coaps://{s}"));
        }
    }
}
