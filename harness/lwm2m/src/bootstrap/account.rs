//! LwM2M Server accounts: a Security object instance (/0/x, LwM2M 1.1 Core
//! §E.1) paired with the Server object instance (/1/y, §E.2) that carries the
//! same Short Server ID (Core §6.1.7, §7.3). This is what bootstrap
//! provisions, what the client registers with, and what the virtual meter
//! keeps in NV storage.
//!
//! The Secret Key (/0/x/5) is a secret: [`ServerAccount`]'s `Debug` never
//! prints it, and [`super::redact`] removes it from logged datagrams.

use std::fmt;
use std::time::Duration;

use crate::client::ObjectStore;
use crate::format::Record;
use crate::path::Path;
use crate::value::Value;

/// Object ids of the two bootstrap-provisioned objects.
pub const SECURITY_OBJECT: u16 = 0;
pub const SERVER_OBJECT: u16 = 1;

/// Resources of the Security object (Core §E.1).
pub mod security {
    pub const SERVER_URI: u16 = 0;
    pub const BOOTSTRAP_SERVER: u16 = 1;
    pub const SECURITY_MODE: u16 = 2;
    pub const PUBLIC_KEY_OR_IDENTITY: u16 = 3;
    pub const SERVER_PUBLIC_KEY: u16 = 4;
    pub const SECRET_KEY: u16 = 5;
    /// SMS Binding Secret Key(s): as secret as /0/x/5.
    pub const SMS_SECRET_KEY: u16 = 8;
    pub const SHORT_SERVER_ID: u16 = 10;
}

/// Resources of the Server object (Core §E.2).
pub mod server {
    pub const SHORT_SERVER_ID: u16 = 0;
    pub const LIFETIME: u16 = 1;
    pub const NOTIFICATION_STORING: u16 = 6;
    pub const BINDING: u16 = 7;
}

/// Security Mode, /0/x/2 (Core §E.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityMode {
    /// 0: Pre-Shared Key (DTLS PSK).
    Psk,
    /// 1: Raw Public Key.
    Rpk,
    /// 2: Certificate.
    Certificate,
    /// 3: NoSec (plain CoAP).
    NoSec,
    /// 4: Certificate mode with EST.
    CertificateEst,
}

impl SecurityMode {
    pub fn code(self) -> i64 {
        match self {
            SecurityMode::Psk => 0,
            SecurityMode::Rpk => 1,
            SecurityMode::Certificate => 2,
            SecurityMode::NoSec => 3,
            SecurityMode::CertificateEst => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => SecurityMode::Psk,
            1 => SecurityMode::Rpk,
            2 => SecurityMode::Certificate,
            3 => SecurityMode::NoSec,
            4 => SecurityMode::CertificateEst,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityMode::Psk => "PSK",
            SecurityMode::Rpk => "RPK",
            SecurityMode::Certificate => "Certificate",
            SecurityMode::NoSec => "NoSec",
            SecurityMode::CertificateEst => "Certificate with EST",
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// One LwM2M Server account: what the client needs to register (and, for
/// PSK, the DTLS credentials the transport needs).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAccount {
    /// The Security object instance id (x in /0/x).
    pub security_instance: u16,
    /// The Server object instance id (y in /1/y).
    pub server_instance: u16,
    pub short_server_id: u16,
    /// `coap://host:port` or `coaps://host:port`, /0/x/0.
    pub server_uri: String,
    pub security_mode: SecurityMode,
    /// "Public Key or Identity" (/0/x/3): the PSK identity, or in
    /// certificate mode the client's certificate (DER); not a secret.
    pub psk_identity: Vec<u8>,
    /// "Secret Key" (/0/x/5): the PSK, or in certificate mode the client's
    /// private key (DER, PKCS#8 as meterbench writes it): never printed.
    pub psk_key: Vec<u8>,
    /// "Server Public Key" (/0/x/4): in certificate mode the server's
    /// certificate (DER), which the client pins; empty otherwise.
    pub server_public_key: Vec<u8>,
    /// Registration lifetime, /1/y/1.
    pub lifetime: Duration,
    /// Binding, /1/y/7 ("U").
    pub binding: String,
}

impl fmt::Debug for ServerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAccount")
            .field("security_instance", &self.security_instance)
            .field("server_instance", &self.server_instance)
            .field("short_server_id", &self.short_server_id)
            .field("server_uri", &self.server_uri)
            .field("security_mode", &self.security_mode)
            .field(
                "psk_identity",
                &if self.security_mode == SecurityMode::Psk {
                    String::from_utf8_lossy(&self.psk_identity).into_owned()
                } else {
                    format!("<{} bytes>", self.psk_identity.len())
                },
            )
            .field(
                "server_public_key",
                &format_args!("<{} bytes>", self.server_public_key.len()),
            )
            .field(
                "psk_key",
                &format_args!("<{} bytes, redacted>", self.psk_key.len()),
            )
            .field("lifetime", &self.lifetime)
            .field("binding", &self.binding)
            .finish()
    }
}

impl ServerAccount {
    /// A NoSec account at `server_uri` with instance ids 1 and 0, a 60 s
    /// lifetime and UDP binding; adjust the fields for anything else.
    pub fn nosec(short_server_id: u16, server_uri: impl Into<String>) -> Self {
        ServerAccount {
            security_instance: 1,
            server_instance: 0,
            short_server_id,
            server_uri: server_uri.into(),
            security_mode: SecurityMode::NoSec,
            psk_identity: Vec::new(),
            psk_key: Vec::new(),
            server_public_key: Vec::new(),
            lifetime: Duration::from_secs(60),
            binding: "U".into(),
        }
    }

    /// A PSK account; `identity` and `key` become /0/x/3 and /0/x/5.
    pub fn psk(
        short_server_id: u16,
        server_uri: impl Into<String>,
        identity: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        ServerAccount {
            security_mode: SecurityMode::Psk,
            psk_identity: identity.into(),
            psk_key: key.into(),
            ..Self::nosec(short_server_id, server_uri)
        }
    }

    /// A certificate-mode account (Security Mode 2, Core §E.1): the
    /// client's certificate, the server's certificate and the client's
    /// private key become /0/x/3, /0/x/4 and /0/x/5 (all DER).
    pub fn certificate(
        short_server_id: u16,
        server_uri: impl Into<String>,
        client_certificate: impl Into<Vec<u8>>,
        server_certificate: impl Into<Vec<u8>>,
        private_key: impl Into<Vec<u8>>,
    ) -> Self {
        ServerAccount {
            security_mode: SecurityMode::Certificate,
            psk_identity: client_certificate.into(),
            psk_key: private_key.into(),
            server_public_key: server_certificate.into(),
            ..Self::nosec(short_server_id, server_uri)
        }
    }

    pub fn security_path(&self) -> Path {
        Path::instance(SECURITY_OBJECT, self.security_instance)
    }

    pub fn server_path(&self) -> Path {
        Path::instance(SERVER_OBJECT, self.server_instance)
    }

    /// The resources of /0/x (Core §E.1): URI, Bootstrap-Server false, mode,
    /// identity or certificate, server public key (the server certificate
    /// in certificate mode, else empty), secret key, Short Server ID.
    pub fn security_records(&self) -> Vec<Record> {
        let r = |id| Path::resource(SECURITY_OBJECT, self.security_instance, id);
        vec![
            Record::new(
                r(security::SERVER_URI),
                Value::String(self.server_uri.clone()),
            ),
            Record::new(r(security::BOOTSTRAP_SERVER), Value::Boolean(false)),
            Record::new(
                r(security::SECURITY_MODE),
                Value::Integer(self.security_mode.code()),
            ),
            Record::new(
                r(security::PUBLIC_KEY_OR_IDENTITY),
                Value::Opaque(self.psk_identity.clone()),
            ),
            Record::new(
                r(security::SERVER_PUBLIC_KEY),
                Value::Opaque(self.server_public_key.clone()),
            ),
            Record::new(r(security::SECRET_KEY), Value::Opaque(self.psk_key.clone())),
            Record::new(
                r(security::SHORT_SERVER_ID),
                Value::Integer(i64::from(self.short_server_id)),
            ),
        ]
    }

    /// The resources of /1/y (Core §E.2): Short Server ID, lifetime,
    /// notification storing (false) and binding.
    pub fn server_records(&self) -> Vec<Record> {
        let r = |id| Path::resource(SERVER_OBJECT, self.server_instance, id);
        vec![
            Record::new(
                r(server::SHORT_SERVER_ID),
                Value::Integer(i64::from(self.short_server_id)),
            ),
            Record::new(
                r(server::LIFETIME),
                Value::Integer(i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX)),
            ),
            Record::new(r(server::NOTIFICATION_STORING), Value::Boolean(false)),
            Record::new(r(server::BINDING), Value::String(self.binding.clone())),
        ]
    }

    /// Writes both instances into `store`, replacing what they held.
    pub fn install(&self, store: &mut ObjectStore) {
        store.delete_instance(SECURITY_OBJECT, self.security_instance);
        store.delete_instance(SERVER_OBJECT, self.server_instance);
        store.create_instance(SECURITY_OBJECT, self.security_instance);
        store.create_instance(SERVER_OBJECT, self.server_instance);
        for r in self
            .security_records()
            .into_iter()
            .chain(self.server_records())
        {
            store.set(r.path, r.value);
        }
    }
}

/// Why a configuration (or one Security instance) is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{path} is missing mandatory resource {resource} ({name})")]
    Missing {
        path: Path,
        resource: u16,
        name: &'static str,
    },
    #[error("{path}: {reason}")]
    Invalid { path: Path, reason: String },
    #[error("{path}: security mode {mode} is not supported by this client")]
    UnsupportedMode { path: Path, mode: String },
    #[error("Security {security} names Short Server ID {ssid}, but no Server instance has it")]
    NoServerInstance { security: Path, ssid: u16 },
    #[error("Server {server} has Short Server ID {ssid}, but no Security instance has it")]
    NoSecurityInstance { server: Path, ssid: u16 },
    #[error("Short Server ID {ssid} is used by {first} and {second}")]
    DuplicateShortServerId {
        ssid: u16,
        first: Path,
        second: Path,
    },
    #[error("{count} Bootstrap-Server accounts; at most one is allowed")]
    SeveralBootstrapAccounts { count: usize },
    #[error("no LwM2M Server account (a Security instance with Bootstrap-Server false and its Server instance)")]
    NoServerAccount,
}

fn get(store: &ObjectStore, object: u16, instance: u16, resource: u16) -> Option<&Value> {
    store.get(&Path::resource(object, instance, resource))
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Integer(i) | Value::Time(i) => Some(*i),
        Value::Unsigned(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

fn opaque(v: Option<&Value>) -> Vec<u8> {
    match v {
        Some(Value::Opaque(b)) => b.clone(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// Instance ids of an object present in the store.
pub fn instances_of(store: &ObjectStore, object: u16) -> Vec<u16> {
    store
        .instances()
        .filter(|p| p.object_id() == Some(object))
        .filter_map(|p| p.instance_id())
        .collect()
}

/// Whether /0/x is a Bootstrap-Server account (/0/x/1 true).
pub fn is_bootstrap_instance(store: &ObjectStore, instance: u16) -> bool {
    matches!(
        get(store, SECURITY_OBJECT, instance, security::BOOTSTRAP_SERVER),
        Some(Value::Boolean(true))
    )
}

/// Checks one Security instance on its own (what a Bootstrap-Write must
/// leave valid, Core §6.1.7.4): URI, Bootstrap-Server flag and a supported
/// security mode present; a non-bootstrap account names its Short Server ID
/// (1..=65534, Core §E.1).
pub fn check_security_instance(
    store: &ObjectStore,
    instance: u16,
    supported: &[SecurityMode],
) -> Result<(), ConfigError> {
    let path = Path::instance(SECURITY_OBJECT, instance);
    let missing = |resource, name| ConfigError::Missing {
        path,
        resource,
        name,
    };
    let uri = match get(store, SECURITY_OBJECT, instance, security::SERVER_URI) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ConfigError::Invalid {
                path,
                reason: "LwM2M Server URI is not a string".into(),
            })
        }
        None => return Err(missing(security::SERVER_URI, "LwM2M Server URI")),
    };
    if !(uri.starts_with("coap://") || uri.starts_with("coaps://")) {
        return Err(ConfigError::Invalid {
            path,
            reason: format!("LwM2M Server URI {uri:?} is not coap:// or coaps://"),
        });
    }
    let bootstrap = match get(store, SECURITY_OBJECT, instance, security::BOOTSTRAP_SERVER) {
        Some(Value::Boolean(b)) => *b,
        Some(_) => {
            return Err(ConfigError::Invalid {
                path,
                reason: "Bootstrap-Server is not a boolean".into(),
            })
        }
        None => return Err(missing(security::BOOTSTRAP_SERVER, "Bootstrap-Server")),
    };
    let mode_code = int(get(
        store,
        SECURITY_OBJECT,
        instance,
        security::SECURITY_MODE,
    ))
    .ok_or_else(|| missing(security::SECURITY_MODE, "Security Mode"))?;
    let mode = SecurityMode::from_code(mode_code).ok_or_else(|| ConfigError::Invalid {
        path,
        reason: format!("Security Mode {mode_code} is not defined"),
    })?;
    if !supported.contains(&mode) {
        return Err(ConfigError::UnsupportedMode {
            path,
            mode: mode.to_string(),
        });
    }
    if !bootstrap {
        if let Some(v) = get(store, SECURITY_OBJECT, instance, security::SHORT_SERVER_ID) {
            match int(Some(v)) {
                Some(ssid) if (1..=65534).contains(&ssid) => {}
                _ => {
                    return Err(ConfigError::Invalid {
                        path,
                        reason: format!("Short Server ID {v:?} is not in 1..=65534"),
                    })
                }
            }
        }
    }
    Ok(())
}

/// The Short Server ID /0/x/10 or /1/y/0 holds, when valid.
fn ssid_of(store: &ObjectStore, object: u16, instance: u16) -> Option<u16> {
    let resource = if object == SECURITY_OBJECT {
        security::SHORT_SERVER_ID
    } else {
        server::SHORT_SERVER_ID
    };
    int(get(store, object, instance, resource))
        .and_then(|i| u16::try_from(i).ok())
        .filter(|s| (1..=65534).contains(s))
}

/// Checks the whole configuration a Bootstrap-Finish would leave (Core
/// §6.1.7.6: the client answers 4.06 Not Acceptable when it is
/// inconsistent): every Security instance valid, at most one
/// Bootstrap-Server account, every LwM2M Server account matched by Short
/// Server ID with exactly one Server instance and the reverse, a PSK account
/// with identity and key, a certificate account with its certificate, the
/// server's certificate and its key, and at least one LwM2M Server account.
pub fn validate(store: &ObjectStore, supported: &[SecurityMode]) -> Result<(), ConfigError> {
    let securities = instances_of(store, SECURITY_OBJECT);
    let servers = instances_of(store, SERVER_OBJECT);
    let mut bootstrap_count = 0;
    let mut seen: Vec<(u16, Path)> = Vec::new();
    for &x in &securities {
        check_security_instance(store, x, supported)?;
        let path = Path::instance(SECURITY_OBJECT, x);
        if is_bootstrap_instance(store, x) {
            bootstrap_count += 1;
            continue;
        }
        let ssid = ssid_of(store, SECURITY_OBJECT, x).ok_or(ConfigError::Missing {
            path,
            resource: security::SHORT_SERVER_ID,
            name: "Short Server ID",
        })?;
        if let Some((_, first)) = seen.iter().find(|(s, _)| *s == ssid) {
            return Err(ConfigError::DuplicateShortServerId {
                ssid,
                first: *first,
                second: path,
            });
        }
        seen.push((ssid, path));
        let mode = int(get(store, SECURITY_OBJECT, x, security::SECURITY_MODE))
            .and_then(SecurityMode::from_code);
        let needed: &[(u16, &'static str)] = match mode {
            Some(SecurityMode::Psk) => &[
                (security::PUBLIC_KEY_OR_IDENTITY, "PSK identity"),
                (security::SECRET_KEY, "PSK key"),
            ],
            Some(SecurityMode::Certificate) => &[
                (security::PUBLIC_KEY_OR_IDENTITY, "client certificate"),
                (security::SERVER_PUBLIC_KEY, "server certificate"),
                (security::SECRET_KEY, "private key"),
            ],
            _ => &[],
        };
        {
            for &(resource, name) in needed {
                if opaque(get(store, SECURITY_OBJECT, x, resource)).is_empty() {
                    return Err(ConfigError::Missing {
                        path,
                        resource,
                        name,
                    });
                }
            }
        }
        let matching = servers
            .iter()
            .filter(|y| ssid_of(store, SERVER_OBJECT, **y) == Some(ssid))
            .count();
        if matching != 1 {
            return Err(ConfigError::NoServerInstance {
                security: path,
                ssid,
            });
        }
    }
    if bootstrap_count > 1 {
        return Err(ConfigError::SeveralBootstrapAccounts {
            count: bootstrap_count,
        });
    }
    for &y in &servers {
        let path = Path::instance(SERVER_OBJECT, y);
        let ssid = ssid_of(store, SERVER_OBJECT, y).ok_or(ConfigError::Missing {
            path,
            resource: server::SHORT_SERVER_ID,
            name: "Short Server ID",
        })?;
        if int(get(store, SERVER_OBJECT, y, server::LIFETIME)).is_none_or(|l| l < 0) {
            return Err(ConfigError::Missing {
                path,
                resource: server::LIFETIME,
                name: "Lifetime",
            });
        }
        if !matches!(
            get(store, SERVER_OBJECT, y, server::BINDING),
            Some(Value::String(_))
        ) {
            return Err(ConfigError::Missing {
                path,
                resource: server::BINDING,
                name: "Binding",
            });
        }
        if !seen.iter().any(|(s, _)| *s == ssid) {
            return Err(ConfigError::NoSecurityInstance { server: path, ssid });
        }
    }
    if seen.is_empty() {
        return Err(ConfigError::NoServerAccount);
    }
    Ok(())
}

/// The LwM2M Server accounts in the store, by Short Server ID: each
/// non-bootstrap Security instance with a Short Server ID and the Server
/// instance carrying the same one. Incomplete accounts are left out.
pub fn accounts(store: &ObjectStore) -> Vec<ServerAccount> {
    let servers = instances_of(store, SERVER_OBJECT);
    let mut out: Vec<ServerAccount> = instances_of(store, SECURITY_OBJECT)
        .into_iter()
        .filter(|x| !is_bootstrap_instance(store, *x))
        .filter_map(|x| {
            let ssid = ssid_of(store, SECURITY_OBJECT, x)?;
            let y = *servers
                .iter()
                .find(|y| ssid_of(store, SERVER_OBJECT, **y) == Some(ssid))?;
            let server_uri = match get(store, SECURITY_OBJECT, x, security::SERVER_URI)? {
                Value::String(s) => s.clone(),
                _ => return None,
            };
            let security_mode = SecurityMode::from_code(int(get(
                store,
                SECURITY_OBJECT,
                x,
                security::SECURITY_MODE,
            ))?)?;
            let lifetime = int(get(store, SERVER_OBJECT, y, server::LIFETIME))
                .and_then(|l| u64::try_from(l).ok())
                .map(Duration::from_secs)?;
            let binding = match get(store, SERVER_OBJECT, y, server::BINDING) {
                Some(Value::String(s)) => s.clone(),
                _ => "U".into(),
            };
            Some(ServerAccount {
                security_instance: x,
                server_instance: y,
                short_server_id: ssid,
                server_uri,
                security_mode,
                psk_identity: opaque(get(
                    store,
                    SECURITY_OBJECT,
                    x,
                    security::PUBLIC_KEY_OR_IDENTITY,
                )),
                psk_key: opaque(get(store, SECURITY_OBJECT, x, security::SECRET_KEY)),
                server_public_key: opaque(get(
                    store,
                    SECURITY_OBJECT,
                    x,
                    security::SERVER_PUBLIC_KEY,
                )),
                lifetime,
                binding,
            })
        })
        .collect();
    out.sort_by_key(|a| a.short_server_id);
    out
}

/// Where a `coap://` / `coaps://` URI with an IP literal (or `localhost`)
/// points, and whether it asks for DTLS. The sans-IO client cannot resolve
/// host names; callers resolve those themselves.
pub fn resolve_uri(uri: &str) -> Result<(std::net::SocketAddr, bool), String> {
    let (secure, rest) = if let Some(r) = uri.strip_prefix("coaps://") {
        (true, r)
    } else if let Some(r) = uri.strip_prefix("coap://") {
        (false, r)
    } else {
        return Err(format!("{uri:?} is not a coap:// or coaps:// URI"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let default_port = if secure { 5684 } else { 5683 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{uri:?}: unclosed '[' in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{uri:?}: bad port {p:?}"))?,
            None => default_port,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("{uri:?}: bad port {p:?}"))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    let ip: std::net::IpAddr = if host.eq_ignore_ascii_case("localhost") {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        host.parse().map_err(|_| {
            format!("{uri:?}: host {host:?} is not an IP address (resolve it first)")
        })?
    };
    Ok((std::net::SocketAddr::new(ip, port), secure))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Registry;

    /// Core §E.1: a certificate-mode Security instance is /0/x/2 = 2 with
    /// the client certificate in 3, the server certificate in 4 and the
    /// private key in 5; it round-trips through a store and validates, and
    /// one missing its server certificate is refused naming resource 4.
    #[test]
    fn a_certificate_account_writes_mode_2_and_resources_3_4_5() {
        let a = ServerAccount::certificate(
            101,
            "coaps://127.0.0.1:5684",
            vec![0x30, 0x82, 0x01],
            vec![0x30, 0x82, 0x02],
            vec![0x30, 0x81, 0x87],
        );
        let records = a.security_records();
        let at = |id: u16| {
            records
                .iter()
                .find(|r| r.path == Path::resource(0, 1, id))
                .map(|r| r.value.clone())
        };
        assert_eq!(at(2), Some(Value::Integer(2)));
        assert_eq!(at(3), Some(Value::Opaque(vec![0x30, 0x82, 0x01])));
        assert_eq!(at(4), Some(Value::Opaque(vec![0x30, 0x82, 0x02])));
        assert_eq!(at(5), Some(Value::Opaque(vec![0x30, 0x81, 0x87])));
        let mut store = ObjectStore::new(Registry::core());
        a.install(&mut store);
        let modes = [SecurityMode::Psk, SecurityMode::Certificate];
        assert_eq!(validate(&store, &modes), Ok(()));
        assert_eq!(accounts(&store), vec![a.clone()]);
        assert!(matches!(
            validate(&store, &[SecurityMode::Psk]),
            Err(ConfigError::UnsupportedMode { .. })
        ));
        let shown = format!("{a:?}");
        assert!(!shown.contains("[48, 129, 135]"), "{shown}");
        store.set(Path::resource(0, 1, 4), Value::Opaque(Vec::new()));
        assert_eq!(
            validate(&store, &modes),
            Err(ConfigError::Missing {
                path: Path::instance(0, 1),
                resource: 4,
                name: "server certificate"
            })
        );
    }

    fn store_with(accounts: &[ServerAccount]) -> ObjectStore {
        let mut s = ObjectStore::new(Registry::core());
        for a in accounts {
            a.install(&mut s);
        }
        s
    }

    const ALL: &[SecurityMode] = &[SecurityMode::NoSec, SecurityMode::Psk];

    #[test]
    fn an_installed_account_reads_back_and_validates() {
        let a = ServerAccount::psk(
            101,
            "coaps://127.0.0.1:5684",
            b"meter-1".to_vec(),
            vec![1, 2, 3],
        );
        let s = store_with(std::slice::from_ref(&a));
        assert_eq!(accounts(&s), vec![a]);
        assert_eq!(validate(&s, ALL), Ok(()));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let a = ServerAccount::psk(
            1,
            "coaps://[::1]:5684",
            b"id".to_vec(),
            vec![0xde, 0xad, 0xbe, 0xef],
        );
        let text = format!("{a:?}");
        assert!(!text.contains("222") && !text.contains("dead") && !text.contains("[222"));
        assert!(text.contains("<4 bytes, redacted>"));
    }

    #[test]
    fn inconsistent_configurations_say_what_is_wrong() {
        let mut a = ServerAccount::nosec(101, "coap://127.0.0.1:5683");
        let mut s = store_with(std::slice::from_ref(&a));
        s.set(Path::resource(1, 0, 0), Value::Integer(102));
        assert_eq!(
            validate(&s, ALL),
            Err(ConfigError::NoServerInstance {
                security: Path::instance(0, 1),
                ssid: 101
            })
        );
        a.security_mode = SecurityMode::Psk;
        let s = store_with(&[a]);
        assert!(matches!(
            validate(&s, ALL),
            Err(ConfigError::Missing { resource: 3, .. })
        ));
        assert_eq!(
            validate(&ObjectStore::new(Registry::core()), ALL),
            Err(ConfigError::NoServerAccount)
        );
        let s = store_with(&[ServerAccount::nosec(1, "coap://127.0.0.1")]);
        assert!(matches!(
            validate(&s, &[SecurityMode::Psk]),
            Err(ConfigError::UnsupportedMode { .. })
        ));
    }

    #[test]
    fn uris_with_ip_literals_resolve() {
        assert_eq!(
            resolve_uri("coap://127.0.0.1:5690"),
            Ok(("127.0.0.1:5690".parse().unwrap(), false))
        );
        assert_eq!(
            resolve_uri("coaps://[::1]"),
            Ok(("[::1]:5684".parse().unwrap(), true))
        );
        assert_eq!(
            resolve_uri("coap://localhost"),
            Ok(("127.0.0.1:5683".parse().unwrap(), false))
        );
        assert!(resolve_uri("coap://meters.example.com").is_err());
        assert!(resolve_uri("http://127.0.0.1").is_err());
        assert!(resolve_uri("coap://127.0.0.1:x").is_err());
    }
}
