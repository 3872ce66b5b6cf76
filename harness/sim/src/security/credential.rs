//! PSK credentials and LwM2M Server accounts as the virtual meter keeps
//! them in NV: what `AT+LWM2MBSPSK` / `AT+LWM2MPSK` give it (the factory
//! provisioning step of a real line) and what Bootstrap-Finish provisions
//! (LwM2M 1.1 Core §6.1.7.6, Security /0 and Server /1 instances, §E.1/§E.2).
//!
//! NV is the device's flash: it holds the key (hex), as a meter's flash
//! does. Nothing else may: `Debug` of every type here prints the identity and
//! the key's fingerprint (the first 8 hex digits of its SHA-256, as
//! [`dtls::SecretKey`] shows keys), never the key.

use std::fmt;
use std::time::Duration;

use dtls::{KeyError, Psk, SecretKey};
use lwm2m::bootstrap::{SecurityMode, ServerAccount};
use serde::{Deserialize, Serialize};

/// Why a credential was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "PSK identity must be 1..={} bytes of text without NUL",
        dtls::MAX_IDENTITY_LEN
    )]
    Identity,
    #[error("PSK key: {0}")]
    Key(#[from] KeyError),
}

/// A PSK identity and key (RFC 4279 §2; Security /0/x/3 and /0/x/5).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PskCredential {
    pub identity: String,
    /// The key, hex (lower case). Private: read through [`Self::psk`].
    key_hex: String,
}

impl PskCredential {
    /// From the identity and key bytes, checked against what DTLS accepts.
    pub fn new(identity: impl Into<String>, key: &[u8]) -> Result<Self, CredentialError> {
        let identity = identity.into();
        let secret = SecretKey::new(key.to_vec())?;
        Psk::new(identity.clone(), secret).map_err(|_| CredentialError::Identity)?;
        Ok(PskCredential {
            identity,
            key_hex: hex::encode(key),
        })
    }

    /// From the AT form: identity text and key as hex digits.
    pub fn from_hex(identity: &str, key_hex: &str) -> Result<Self, CredentialError> {
        let key = SecretKey::from_hex(key_hex)?;
        Self::new(identity, key.expose())
    }

    /// The DTLS credential; `None` when NV held a damaged key.
    pub fn psk(&self) -> Option<Psk> {
        let key = SecretKey::from_hex(&self.key_hex).ok()?;
        Psk::new(self.identity.clone(), key).ok()
    }

    /// The key bytes, for the Security object's Secret Key resource.
    pub fn key_bytes(&self) -> Vec<u8> {
        hex::decode(&self.key_hex).unwrap_or_default()
    }

    /// First 8 hex digits of SHA-256 of the key: safe to log and show.
    pub fn fingerprint(&self) -> String {
        SecretKey::from_hex(&self.key_hex)
            .map(|k| k.fingerprint())
            .unwrap_or_else(|_| "damaged".to_owned())
    }
}

impl fmt::Debug for PskCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PskCredential({:?}, key sha256:{}…)",
            self.identity,
            self.fingerprint()
        )
    }
}

impl fmt::Display for PskCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" sha256:{}…", self.identity, self.fingerprint())
    }
}

/// A certificate-mode credential as NV holds it (Security Mode 2): the
/// device's certificate (/0/x/3), the server's certificate it pins
/// (/0/x/4) and its private key (/0/x/5, PKCS#8 or SEC1 DER), all hex.
/// `Debug` shows the certificates' CN and the key's public fingerprint,
/// never the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateNv {
    certificate_hex: String,
    server_certificate_hex: String,
    key_hex: String,
}

impl CertificateNv {
    /// From the Security object's resources; `None` when they do not make
    /// a usable credential (not DER, or a key that is not the
    /// certificate's).
    pub fn new(certificate: &[u8], server_certificate: &[u8], key: &[u8]) -> Option<Self> {
        dtls::CertificateCredential::from_security_object(certificate, key, server_certificate)
            .map_err(|e| tracing::warn!(error = %e, "certificate account unusable"))
            .ok()?;
        Some(CertificateNv {
            certificate_hex: hex::encode(certificate),
            server_certificate_hex: hex::encode(server_certificate),
            key_hex: hex::encode(key),
        })
    }

    fn bytes(hex_text: &str) -> Vec<u8> {
        hex::decode(hex_text).unwrap_or_default()
    }

    /// The DTLS credential; `None` when NV held damaged bytes.
    pub fn credential(&self) -> Option<dtls::CertificateCredential> {
        let key = dtls::Zeroizing::new(Self::bytes(&self.key_hex));
        dtls::CertificateCredential::from_security_object(
            &Self::bytes(&self.certificate_hex),
            &key,
            &Self::bytes(&self.server_certificate_hex),
        )
        .ok()
    }

    /// `CN=<subject>` of the device certificate (shown as the identity).
    pub fn identity(&self) -> String {
        dtls::Certificate::from_der(
            "the device certificate",
            &Self::bytes(&self.certificate_hex),
        )
        .ok()
        .and_then(|c| c.subject_cn())
        .map(|cn| format!("CN={cn}"))
        .unwrap_or_default()
    }

    /// The key's public fingerprint: safe to log and show.
    pub fn fingerprint(&self) -> String {
        let key = dtls::Zeroizing::new(Self::bytes(&self.key_hex));
        dtls::PrivateKey::from_der(&key)
            .map(|k| k.fingerprint())
            .unwrap_or_else(|_| "damaged".to_owned())
    }
}

impl fmt::Debug for CertificateNv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CertificateNv({:?}, key public sha256:{}…)",
            self.identity(),
            self.fingerprint()
        )
    }
}

/// A provisioned LwM2M Server account as NV holds it (serde mirror of
/// [`ServerAccount`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvAccount {
    pub short_server_id: u16,
    pub security_instance: u16,
    pub server_instance: u16,
    /// /0/x/0.
    pub server_uri: String,
    /// Security Mode code, /0/x/2 (0 PSK, 3 NoSec).
    pub security_mode: i64,
    /// Identity and key for PSK mode.
    pub psk: Option<PskCredential>,
    /// Certificates and key for certificate mode (absent in NV written
    /// before certificate mode existed).
    #[serde(default)]
    pub certificate: Option<CertificateNv>,
    /// /1/y/1, seconds.
    pub lifetime_s: u64,
    /// /1/y/7.
    pub binding: String,
}

impl NvAccount {
    /// The account to keep; `None` (logged by the caller) when its PSK
    /// identity is not text or its key is unusable.
    pub fn from_account(a: &ServerAccount) -> Option<Self> {
        let psk = match a.security_mode {
            SecurityMode::Psk => Some(
                PskCredential::new(String::from_utf8(a.psk_identity.clone()).ok()?, &a.psk_key)
                    .ok()?,
            ),
            _ => None,
        };
        let certificate = match a.security_mode {
            SecurityMode::Certificate => Some(CertificateNv::new(
                &a.psk_identity,
                &a.server_public_key,
                &a.psk_key,
            )?),
            _ => None,
        };
        Some(NvAccount {
            short_server_id: a.short_server_id,
            security_instance: a.security_instance,
            server_instance: a.server_instance,
            server_uri: a.server_uri.clone(),
            security_mode: a.security_mode.code(),
            psk,
            certificate,
            lifetime_s: a.lifetime.as_secs(),
            binding: a.binding.clone(),
        })
    }

    /// The account back, for the client's store; `None` for an unknown mode.
    pub fn to_account(&self) -> Option<ServerAccount> {
        let mode = SecurityMode::from_code(self.security_mode)?;
        let (identity, key, server_public_key) = match (&self.psk, &self.certificate) {
            (Some(p), _) => (p.identity.clone().into_bytes(), p.key_bytes(), Vec::new()),
            (None, Some(c)) => (
                CertificateNv::bytes(&c.certificate_hex),
                CertificateNv::bytes(&c.key_hex),
                CertificateNv::bytes(&c.server_certificate_hex),
            ),
            (None, None) => (Vec::new(), Vec::new(), Vec::new()),
        };
        Some(ServerAccount {
            security_instance: self.security_instance,
            server_instance: self.server_instance,
            short_server_id: self.short_server_id,
            server_uri: self.server_uri.clone(),
            security_mode: mode,
            psk_identity: identity,
            psk_key: key,
            server_public_key,
            lifetime: Duration::from_secs(self.lifetime_s),
            binding: self.binding.clone(),
        })
    }

    /// One line for `AT+LWM2MACC?` and logs: SSID, URI, mode, identity and
    /// key fingerprint.
    pub fn summary(&self) -> String {
        let (identity, fp) = match (&self.psk, &self.certificate) {
            (Some(p), _) => (p.identity.clone(), p.fingerprint()),
            (None, Some(c)) => (c.identity(), c.fingerprint()),
            (None, None) => (String::new(), String::new()),
        };
        format!(
            "{},\"{}\",{},\"{}\",\"{}\"",
            self.short_server_id, self.server_uri, self.security_mode, identity, fp
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn debug_and_display_show_identity_and_fingerprint_only() {
        let c = PskCredential::from_hex("urn:imei:1", KEY_HEX).unwrap();
        let shown = format!("{c:?} {c}");
        assert!(shown.contains("urn:imei:1"), "{shown}");
        assert!(shown.contains(&c.fingerprint()), "{shown}");
        assert!(!shown.contains(KEY_HEX), "{shown}");
        assert!(!shown.contains("0f1e2d"), "{shown}");
        assert_eq!(c.psk().unwrap().key.expose(), hex::decode(KEY_HEX).unwrap());
    }

    #[test]
    fn bad_credentials_are_refused_without_echoing_the_key() {
        assert!(matches!(
            PskCredential::from_hex("id", "abc"),
            Err(CredentialError::Key(KeyError::OddHexLength(3)))
        ));
        let e = PskCredential::from_hex("id", "00zz")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("zz"), "{e}");
        assert_eq!(
            PskCredential::from_hex("", KEY_HEX),
            Err(CredentialError::Identity)
        );
    }

    #[test]
    fn account_round_trips_through_nv_and_json_debug_hides_the_key() {
        let a = ServerAccount::psk(
            7,
            "coaps://127.0.0.1:5684",
            b"dev-1".to_vec(),
            hex::decode(KEY_HEX).unwrap(),
        );
        let nv = NvAccount::from_account(&a).unwrap();
        assert_eq!(nv.to_account().unwrap(), a);
        let json = serde_json::to_string(&nv).unwrap();
        let back: NvAccount = serde_json::from_str(&json).unwrap();
        assert_eq!(back, nv);
        assert!(!format!("{nv:?}").contains(KEY_HEX));
        assert!(!nv.summary().contains(KEY_HEX));
        // Certificate mode: the written DER comes back unchanged, the key
        // never shows.
        let ca = dtls::CertificateAuthority::generate("test CA").unwrap();
        let (server, _) = ca.issue("server", dtls::Usage::Server).unwrap();
        let (cert, key) = ca.issue("meter-9", dtls::Usage::Client).unwrap();
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let c = ServerAccount::certificate(
            8,
            "coaps://127.0.0.1:5684",
            cert.der().to_vec(),
            server.der().to_vec(),
            pkcs8.to_vec(),
        );
        let nv = NvAccount::from_account(&c).unwrap();
        assert_eq!(nv.to_account().unwrap(), c);
        assert!(nv.certificate.as_ref().unwrap().credential().is_some());
        let json = serde_json::to_string(&nv).unwrap();
        assert_eq!(serde_json::from_str::<NvAccount>(&json).unwrap(), nv);
        let shown = format!("{nv:?} {}", nv.summary());
        assert!(shown.contains("CN=meter-9"), "{shown}");
        assert!(
            !shown.contains(&hex::encode(&pkcs8[pkcs8.len() - 40..])),
            "{shown}"
        );
        // A key that is not the certificate's is refused.
        let (_, other) = ca.issue("meter-9", dtls::Usage::Client).unwrap();
        let mismatched = ServerAccount {
            psk_key: other.to_pkcs8_der().unwrap().to_vec(),
            ..c
        };
        assert!(NvAccount::from_account(&mismatched).is_none());
        let nosec = ServerAccount::nosec(1, "coap://127.0.0.1:5683");
        assert_eq!(
            NvAccount::from_account(&nosec)
                .unwrap()
                .to_account()
                .unwrap(),
            nosec
        );
    }
}
