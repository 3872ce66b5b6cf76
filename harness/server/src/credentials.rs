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
//! Certificate mode (LwM2M Security Mode 2) has no default credential
//! either: each store makes, on first use, a certificate authority of its
//! own (a fresh P-256 key that never leaves the process) and the server's
//! certificate from it; [`CredentialStore::issue_certificate`] issues a
//! device certificate `CN=<endpoint>` with a fresh key for bootstrap to
//! write into the device. A certificate session authenticates as
//! [`certificate_identity`] of its subject CN, and the registration
//! interface accepts it for the endpoint of that name. LwM2M 1.1 Transport
//! §5.2.6 (Endpoint Client Name) has the server compare the endpoint name
//! with the identity the (D)TLS handshake authenticated, by equality or a
//! lookup table; the Register responses of LwM2M 1.0 (§8.5) name the
//! refusal: 4.03, "Endpoint Client Name does not match with CN field of
//! X.509 Certificates" (Leshan checks the same). Equality is the default;
//! [`CredentialStore::bind_certificate`] is the lookup table.
//!
//! Nothing here prints a key: `Debug` shows identities and endpoints only.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use dtls::{
    Certificate, CertificateAuthority, CertificateCredential, CertificateError, DtlsServer,
    KeyError, PrivateKey, Psk, SecretKey, Usage,
};
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
    /// The one identity each endpoint has (`set` replaces it), so a fleet's
    /// keys load in O(1) each, not by a walk of every identity.
    by_endpoint: HashMap<String, String>,
    /// Certificate CNs allowed to act as an endpoint of another name.
    certificate_bindings: HashMap<String, String>,
}

/// What a certificate session's identity starts with: `x509:CN=meter-1`.
/// No PSK identity with this prefix is ever given a key, so a PSK client
/// cannot pass for a certificate's subject.
pub const CERTIFICATE_IDENTITY_PREFIX: &str = "x509:CN=";

/// The identity a certificate session with subject CN `cn` authenticates as.
pub fn certificate_identity(cn: &str) -> String {
    format!("{CERTIFICATE_IDENTITY_PREFIX}{cn}")
}

/// The run's certificate authority and the server's credential it issued.
struct Pki {
    authority: CertificateAuthority,
    server: CertificateCredential,
}

/// Subject CN of the server certificates a store issues.
const SERVER_CN: &str = "meterbench LwM2M server";

impl Pki {
    fn generate() -> Result<Self, CertificateError> {
        let authority = CertificateAuthority::generate("meterbench run CA")?;
        let (cert, key) = authority.issue(SERVER_CN, Usage::Server)?;
        let server = CertificateCredential::new(cert, key, vec![authority.certificate().clone()])?;
        Ok(Pki { authority, server })
    }
}

/// A device's certificate-mode credential, as bootstrap writes it into the
/// Security object: /0/x/3 the device certificate, /0/x/4 the server
/// certificate, /0/x/5 the device's private key. `Debug` shows no key.
#[derive(Clone, Debug)]
pub struct DeviceCertificate {
    /// The device's certificate, `CN=<endpoint>`.
    pub certificate: Certificate,
    /// Its private key.
    pub key: PrivateKey,
    /// The server's certificate, which the device pins.
    pub server_certificate: Certificate,
}

/// Revocations a watcher may fall behind by before it is told it lagged
/// (and then checks every session).
const REVOCATION_BACKLOG: usize = 1024;

/// Identity → (key, endpoint), shared by a server's handle and its DTLS
/// endpoints. Cheap to clone; clones see the same table.
#[derive(Clone)]
pub struct CredentialStore {
    table: Arc<RwLock<Table>>,
    /// Made on first use (a key generation, about a millisecond).
    pki: Arc<OnceLock<Result<Pki, CertificateError>>>,
    /// The identities whose key changed or was removed, to every watcher.
    revocations: broadcast::Sender<String>,
}

impl Default for CredentialStore {
    fn default() -> Self {
        CredentialStore {
            table: Arc::default(),
            pki: Arc::default(),
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
            // The endpoint's old identity, and whichever endpoint held this
            // identity before, lose their keys.
            if let Some(old) = table.by_endpoint.remove(endpoint) {
                table.by_identity.remove(&old);
                changed.insert(old);
            }
            if let Some(old) = table.by_identity.remove(&psk.identity) {
                table.by_endpoint.remove(&old.endpoint);
            }
            tracing::info!(%endpoint, identity = %psk.identity, key = %psk.key, "PSK credential set");
            changed.insert(psk.identity.clone());
            table
                .by_endpoint
                .insert(endpoint.to_string(), psk.identity.clone());
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
        let removed = {
            let mut table = self.write();
            let Some(identity) = table.by_endpoint.remove(endpoint) else {
                return false;
            };
            table.by_identity.remove(&identity);
            BTreeSet::from([identity])
        };
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
        self.read().by_endpoint.get(endpoint).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.read().by_identity.is_empty()
    }

    fn pki(&self) -> Result<&Pki, CertificateError> {
        self.pki
            .get_or_init(Pki::generate)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The server's certificate credential (its certificate and key, and
    /// the run's CA as the anchor client certificates must chain to).
    pub fn server_certificate(&self) -> Result<CertificateCredential, CertificateError> {
        Ok(self.pki()?.server.clone())
    }

    /// A fresh key and a certificate `CN=<endpoint>` from this store's CA,
    /// for bootstrap to write into the device (certificate mode).
    pub fn issue_certificate(&self, endpoint: &str) -> Result<DeviceCertificate, CertificateError> {
        let pki = self.pki()?;
        let (certificate, key) = pki.authority.issue(endpoint, Usage::Client)?;
        tracing::info!(%endpoint, key = %key, "device certificate issued");
        Ok(DeviceCertificate {
            certificate,
            key,
            server_certificate: pki.server.certificate.clone(),
        })
    }

    /// Lets a certificate with subject CN `cn` act as `endpoint` (another
    /// name): the "unless told otherwise" of the CN check.
    pub fn bind_certificate(&self, cn: &str, endpoint: &str) {
        self.write()
            .certificate_bindings
            .insert(cn.to_string(), endpoint.to_string());
    }

    /// Whether a client authenticated as `identity` may act as `endpoint`;
    /// `Err` says why not (identity and endpoint names only).
    pub fn authorize(&self, endpoint: &str, identity: Option<&str>) -> Result<(), String> {
        let Some(identity) = identity else {
            return Err(format!(
                "{endpoint:?} did not authenticate (no DTLS session identity)"
            ));
        };
        if let Some(cn) = identity.strip_prefix(CERTIFICATE_IDENTITY_PREFIX) {
            let bound = self.read().certificate_bindings.get(cn).cloned();
            return match bound {
                Some(bound) if bound == endpoint => Ok(()),
                None if cn == endpoint => Ok(()),
                Some(bound) => Err(format!(
                    "certificate CN {cn:?} is bound to endpoint {bound:?}, not {endpoint:?}"
                )),
                None => Err(format!(
                    "certificate CN {cn:?} does not match the endpoint name {endpoint:?} (LwM2M 1.1 Transport §5.2.6)"
                )),
            };
        }
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
        Arc::new(move |identity: &str| {
            if identity.starts_with(CERTIFICATE_IDENTITY_PREFIX) {
                return None;
            }
            store.key(identity)
        })
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
    fn an_identity_set_for_another_endpoint_leaves_the_first_without_one() {
        let store = CredentialStore::new();
        store.set("meter-1", psk("id-shared", b"k1"));
        store.set("meter-2", psk("id-shared", b"k2"));
        assert_eq!(store.identity_of("meter-1"), None);
        assert_eq!(store.identity_of("meter-2").as_deref(), Some("id-shared"));
        assert_eq!(store.endpoint_of("id-shared").as_deref(), Some("meter-2"));
        assert_eq!(store.key("id-shared").unwrap().expose(), b"k2");
        // meter-1 has nothing left to remove; meter-2's removal takes the key.
        assert!(!store.remove("meter-1"));
        assert!(store.remove("meter-2"));
        assert!(store.key("id-shared").is_none() && store.is_empty());
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
    fn a_certificate_acts_as_the_endpoint_its_cn_names_unless_bound_otherwise() {
        let store = CredentialStore::new();
        let issued = store.issue_certificate("meter-1").unwrap();
        assert_eq!(issued.certificate.subject_cn().as_deref(), Some("meter-1"));
        let server = store.server_certificate().unwrap();
        assert_eq!(issued.server_certificate, server.certificate);
        // Two issues share the CA and the server certificate, not the key.
        let again = store.issue_certificate("meter-1").unwrap();
        assert_ne!(again.key.fingerprint(), issued.key.fingerprint());
        assert_eq!(again.server_certificate, server.certificate);

        let id = certificate_identity("meter-1");
        assert!(store.authorize("meter-1", Some(&id)).is_ok());
        let refused = store.authorize("meter-2", Some(&id)).unwrap_err();
        assert!(refused.contains("does not match"), "{refused}");
        store.bind_certificate("meter-1", "meter-2");
        assert!(store.authorize("meter-2", Some(&id)).is_ok());
        assert!(store.authorize("meter-1", Some(&id)).is_err());
        // No PSK may pass for a certificate subject.
        store.set("meter-3", psk(&certificate_identity("meter-3"), b"k"));
        assert!((store.psk_lookup())(&certificate_identity("meter-3")).is_none());
        // Debug of the issued credential shows no key.
        let pkcs8 = issued.key.to_pkcs8_der().unwrap();
        let shown = format!("{issued:?}");
        assert!(
            !shown.contains(&hex::encode(&pkcs8[pkcs8.len() - 40..])),
            "{shown}"
        );
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
