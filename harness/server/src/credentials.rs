//! The per-device PSK credentials a coaps server accepts, set at run time.
//!
//! There is no default or shared credential: the runner makes a fresh PSK
//! identity and key per device and run ([`CredentialStore::provision`]),
//! bootstraps them into the device and puts them here; the DTLS handshake
//! looks keys up by identity (RFC 4279 §2), and the registration interface
//! checks that the identity a client authenticated with is bound to the
//! endpoint name it registers as (LwM2M 1.1 Core §7.1). Setting a new PSK for
//! an endpoint drops its old one, so an old key is refused at once.
//!
//! Nothing here prints a key: `Debug` shows identities and endpoints only.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use dtls::{KeyError, Psk, SecretKey};
use tokio::sync::Notify;

/// Length of keys made by [`CredentialStore::provision`]: 128 bits, the key
/// size of the AES-128 PSK suites.
pub const GENERATED_KEY_LEN: usize = 16;

struct Entry {
    key: SecretKey,
    endpoint: String,
}

#[derive(Default)]
struct Table {
    by_identity: HashMap<String, Entry>,
}

/// Identity → (key, endpoint), shared by a server's handle and its DTLS
/// endpoint. Cheap to clone; clones see the same table.
#[derive(Clone, Default)]
pub struct CredentialStore {
    table: Arc<RwLock<Table>>,
    /// Woken on every change, so the server can close sessions whose
    /// identity was revoked.
    changed: Arc<Notify>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.read();
        let mut bindings: Vec<(&str, &str)> = table
            .by_identity
            .iter()
            .map(|(id, e)| (id.as_str(), e.endpoint.as_str()))
            .collect();
        bindings.sort();
        f.debug_struct("CredentialStore")
            .field("identity_to_endpoint", &bindings)
            .finish()
    }
}

impl CredentialStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds `psk` to `endpoint`, replacing any identity `endpoint` had and
    /// any endpoint `psk.identity` was bound to.
    pub fn set(&self, endpoint: &str, psk: Psk) {
        {
            let mut table = self.write();
            table
                .by_identity
                .retain(|id, e| e.endpoint != endpoint && *id != psk.identity);
            tracing::info!(%endpoint, identity = %psk.identity, key = %psk.key, "PSK credential set");
            table.by_identity.insert(
                psk.identity,
                Entry {
                    key: psk.key,
                    endpoint: endpoint.to_string(),
                },
            );
        }
        self.changed.notify_one();
    }

    /// A fresh credential for `endpoint` — identity `{endpoint}-{8 random
    /// hex digits}`, a random 128-bit key from OpenSSL's CSPRNG — set and
    /// returned so it can be bootstrapped into the device.
    pub fn provision(&self, endpoint: &str) -> Result<Psk, KeyError> {
        let salt = SecretKey::generate(4)?;
        let suffix = hex::encode(salt.expose());
        // Keep within the identity limit however long the endpoint name is.
        let keep = dtls::MAX_IDENTITY_LEN - 1 - suffix.len();
        let mut prefix = endpoint.to_string();
        while prefix.len() > keep {
            prefix.pop();
        }
        let psk = Psk::new(
            format!("{prefix}-{suffix}"),
            SecretKey::generate(GENERATED_KEY_LEN)?,
        )?;
        self.set(endpoint, psk.clone());
        Ok(psk)
    }

    /// Forgets `endpoint`'s credential; whether it had one.
    pub fn remove(&self, endpoint: &str) -> bool {
        let removed = {
            let mut table = self.write();
            let before = table.by_identity.len();
            table.by_identity.retain(|_, e| e.endpoint != endpoint);
            before != table.by_identity.len()
        };
        if removed {
            tracing::info!(%endpoint, "PSK credential removed");
            self.changed.notify_one();
        }
        removed
    }

    /// The key for `identity` (what the DTLS handshake asks).
    pub fn key(&self, identity: &str) -> Option<SecretKey> {
        self.read().by_identity.get(identity).map(|e| e.key.clone())
    }

    /// The endpoint `identity` is bound to.
    pub fn endpoint_of(&self, identity: &str) -> Option<String> {
        self.read()
            .by_identity
            .get(identity)
            .map(|e| e.endpoint.clone())
    }

    /// The identity bound to `endpoint`.
    pub fn identity_of(&self, endpoint: &str) -> Option<String> {
        self.read()
            .by_identity
            .iter()
            .find(|(_, e)| e.endpoint == endpoint)
            .map(|(id, _)| id.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.read().by_identity.is_empty()
    }

    /// Whether a client authenticated as `identity` may act as `endpoint`;
    /// `Err` says why not (identity and endpoint names only).
    pub fn authorize(&self, endpoint: &str, identity: Option<&str>) -> Result<(), String> {
        let Some(identity) = identity else {
            return Err(format!(
                "{endpoint:?} did not authenticate (no DTLS session identity)"
            ));
        };
        match self.endpoint_of(identity) {
            Some(bound) if bound == endpoint => Ok(()),
            Some(bound) => Err(format!(
                "PSK identity {identity:?} is bound to endpoint {bound:?}, not {endpoint:?}"
            )),
            None => Err(format!(
                "PSK identity {identity:?} is no longer bound to any endpoint"
            )),
        }
    }

    /// The DTLS endpoint's key lookup.
    pub(crate) fn psk_lookup(&self) -> dtls::PskLookup {
        let store = self.clone();
        Arc::new(move |identity: &str| store.key(identity))
    }

    pub(crate) async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk(identity: &str, key: &[u8]) -> Psk {
        Psk::new(identity, SecretKey::new(key.to_vec()).unwrap()).unwrap()
    }

    #[test]
    fn a_new_credential_replaces_the_old_one_of_the_endpoint() {
        let store = CredentialStore::new();
        store.set("meter-1", psk("id-old", b"old"));
        store.set("meter-1", psk("id-new", b"new"));
        assert!(store.key("id-old").is_none());
        assert_eq!(store.key("id-new").unwrap().expose(), b"new");
        assert_eq!(store.identity_of("meter-1").as_deref(), Some("id-new"));
    }

    #[test]
    fn an_identity_is_bound_to_one_endpoint() {
        let store = CredentialStore::new();
        store.set("meter-1", psk("id-1", b"k1"));
        store.set("meter-2", psk("id-2", b"k2"));
        assert!(store.authorize("meter-1", Some("id-1")).is_ok());
        let refused = store.authorize("meter-2", Some("id-1")).unwrap_err();
        assert!(
            refused.contains("bound to endpoint \"meter-1\""),
            "{refused}"
        );
        assert!(store.authorize("meter-1", None).is_err());
        assert!(store.remove("meter-1"));
        assert!(store.authorize("meter-1", Some("id-1")).is_err());
        assert!(!store.remove("meter-1"));
    }

    #[test]
    fn provisioned_credentials_are_fresh_and_debug_shows_no_key() {
        let store = CredentialStore::new();
        let a = store.provision("meter-1").unwrap();
        let b = store.provision("meter-1").unwrap();
        assert_ne!(a.identity, b.identity);
        assert_ne!(a.key, b.key);
        assert_eq!(b.key.len(), GENERATED_KEY_LEN);
        assert!(b.identity.starts_with("meter-1-"));
        assert!(store.key(&a.identity).is_none());
        let shown = format!("{store:?}");
        assert!(shown.contains(&b.identity));
        assert!(!shown.contains(&hex::encode(b.key.expose())), "{shown}");
        let long = store.provision(&"x".repeat(300)).unwrap();
        assert!(long.identity.len() <= dtls::MAX_IDENTITY_LEN);
    }
}
