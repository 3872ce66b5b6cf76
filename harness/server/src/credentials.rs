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
//! Revocation reaches sessions already open, too: every change names the
//! identities whose key changed or went ([`CredentialStore::watch`]), and
//! each coaps endpoint using the store (the LwM2M server's transport, the
//! CoAPS file server) ends the DTLS sessions that authenticated with a key
//! the store no longer holds ([`CredentialStore::close_revoked`]), with
//! close_notify, so that the peer's next datagram needs a new handshake.
//!
//! Nothing here prints a key: `Debug` shows identities and endpoints only.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use dtls::{DtlsServer, KeyError, Psk, SecretKey};
use tokio::sync::broadcast;

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

/// Revocations a watcher may fall behind by before it is told it lagged
/// (and then checks every session).
const REVOCATION_BACKLOG: usize = 1024;

/// Identity → (key, endpoint), shared by a server's handle and its DTLS
/// endpoints. Cheap to clone; clones see the same table.
#[derive(Clone)]
pub struct CredentialStore {
    table: Arc<RwLock<Table>>,
    /// The identities whose key changed or was removed, to every watcher.
    revocations: broadcast::Sender<String>,
}

impl Default for CredentialStore {
    fn default() -> Self {
        CredentialStore {
            table: Arc::default(),
            revocations: broadcast::channel(REVOCATION_BACKLOG).0,
        }
    }
}

/// What a watcher learns from [`CredentialWatch::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// This identity's key changed or was removed.
    Identity(String),
    /// The watcher fell behind by this many changes: any identity may have
    /// changed.
    Lagged(u64),
}

/// One coaps endpoint's subscription to the store's revocations, taken when
/// the endpoint starts so that no change is missed.
pub(crate) struct CredentialWatch {
    revocations: broadcast::Receiver<String>,
}

impl CredentialWatch {
    /// The next revocation; pending while there is none.
    pub(crate) async fn next(&mut self) -> Revocation {
        match self.revocations.recv().await {
            Ok(identity) => Revocation::Identity(identity),
            Err(broadcast::error::RecvError::Lagged(n)) => Revocation::Lagged(n),
            // The store lives as long as its endpoints; if not, nothing more comes.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
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
    /// any endpoint `psk.identity` was bound to. Sessions that authenticated
    /// with a replaced key are closed.
    pub fn set(&self, endpoint: &str, psk: Psk) {
        let mut changed = BTreeSet::new();
        {
            let mut table = self.write();
            table.by_identity.retain(|id, e| {
                let keep = e.endpoint != endpoint && *id != psk.identity;
                if !keep {
                    changed.insert(id.clone());
                }
                keep
            });
            tracing::info!(%endpoint, identity = %psk.identity, key = %psk.key, "PSK credential set");
            changed.insert(psk.identity.clone());
            table.by_identity.insert(
                psk.identity,
                Entry {
                    key: psk.key,
                    endpoint: endpoint.to_string(),
                },
            );
        }
        self.announce(changed);
    }

    /// Tells every watcher which identities changed (nobody listening is fine).
    fn announce(&self, identities: BTreeSet<String>) {
        for identity in identities {
            let _ = self.revocations.send(identity);
        }
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

    /// Forgets `endpoint`'s credential (and closes the sessions that
    /// authenticated with it); whether it had one.
    pub fn remove(&self, endpoint: &str) -> bool {
        let mut removed = BTreeSet::new();
        self.write().by_identity.retain(|id, e| {
            let keep = e.endpoint != endpoint;
            if !keep {
                removed.insert(id.clone());
            }
            keep
        });
        if removed.is_empty() {
            return false;
        }
        tracing::info!(%endpoint, "PSK credential removed");
        self.announce(removed);
        true
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

    /// A subscription to revocations from now on.
    pub(crate) fn watch(&self) -> CredentialWatch {
        CredentialWatch {
            revocations: self.revocations.subscribe(),
        }
    }

    /// Ends the sessions of `endpoint` that `revocation` made invalid: those
    /// of the identity whose key is gone or replaced (all identities with
    /// open sessions after a lag). Returns the peers whose session ended.
    pub(crate) fn close_revoked(
        &self,
        endpoint: &mut dyn DtlsServer,
        now: Instant,
        revocation: Revocation,
    ) -> Vec<SocketAddr> {
        let identities = match revocation {
            Revocation::Identity(identity) => vec![identity],
            Revocation::Lagged(missed) => {
                tracing::warn!(
                    missed,
                    "credential changes missed; checking every DTLS session"
                );
                let all: BTreeSet<String> = endpoint
                    .sessions()
                    .into_iter()
                    .filter_map(|s| s.identity)
                    .collect();
                all.into_iter().collect()
            }
        };
        let mut ended = Vec::new();
        for identity in identities {
            let current = self.key(&identity);
            ended.extend(endpoint.revoke(now, &identity, current.as_ref()));
        }
        ended
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

    #[tokio::test]
    async fn every_watcher_hears_which_identities_lost_their_key() {
        let store = CredentialStore::new();
        // The LwM2M server's transport and the CoAPS file server both watch.
        let mut a = store.watch();
        let mut b = store.watch();
        store.set("meter-1", psk("id-old", b"old"));
        store.set("meter-1", psk("id-new", b"new"));
        assert!(store.remove("meter-1"));
        assert!(!store.remove("meter-1"), "nothing left to announce");
        for w in [&mut a, &mut b] {
            let mut heard = Vec::new();
            for _ in 0..4 {
                heard.push(w.next().await);
            }
            assert_eq!(
                heard,
                ["id-old", "id-new", "id-old", "id-new"].map(|i| Revocation::Identity(i.into()))
            );
        }
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_it_lagged() {
        let store = CredentialStore::new();
        let mut w = store.watch();
        for i in 0..=REVOCATION_BACKLOG {
            store.set("meter-1", psk(&format!("id-{i}"), b"k"));
        }
        assert!(matches!(w.next().await, Revocation::Lagged(n) if n > 0));
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
