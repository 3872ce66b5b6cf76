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
        Some(NvAccount {
            short_server_id: a.short_server_id,
            security_instance: a.security_instance,
            server_instance: a.server_instance,
            server_uri: a.server_uri.clone(),
            security_mode: a.security_mode.code(),
            psk,
            lifetime_s: a.lifetime.as_secs(),
            binding: a.binding.clone(),
        })
    }

    /// The account back, for the client's store; `None` for an unknown mode.
    pub fn to_account(&self) -> Option<ServerAccount> {
        let mode = SecurityMode::from_code(self.security_mode)?;
        let (identity, key) = match &self.psk {
            Some(p) => (p.identity.clone().into_bytes(), p.key_bytes()),
            None => (Vec::new(), Vec::new()),
        };
        Some(ServerAccount {
            security_instance: self.security_instance,
            server_instance: self.server_instance,
            short_server_id: self.short_server_id,
            server_uri: self.server_uri.clone(),
            security_mode: mode,
            psk_identity: identity,
            psk_key: key,
            lifetime: Duration::from_secs(self.lifetime_s),
            binding: self.binding.clone(),
        })
    }

    /// One line for `AT+LWM2MACC?` and logs: SSID, URI, mode, identity and
    /// key fingerprint.
    pub fn summary(&self) -> String {
        let (identity, fp) = match &self.psk {
            Some(p) => (p.identity.clone(), p.fingerprint()),
            None => (String::new(), String::new()),
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
