//! Per-device credentials. There is no default or shared credential anywhere:
//! every device gets a fresh bootstrap PSK and a fresh server PSK for every run,
//! unless its rig says where a factory-provisioned credential lives (an
//! environment variable or a secrets file — never the rig file itself).
//! Which account that credential is depends on the rig's `device.bootstrap`:
//! with bootstrap, the device's Bootstrap-Server account (the server account
//! is still made fresh and provisioned by meterbench's bootstrap server);
//! without, the LwM2M Server account itself, which meterbench cannot change
//! on the device and so never rotates. Keys are printed only as fingerprints.

use std::path::{Path, PathBuf};

use dtls::{KeyError, Psk, SecretKey};
use rig::model::CredentialSource;
use serde::Deserialize;

/// Key length for fresh PSKs: 128 bits, what AES-128 uses.
const KEY_LEN: usize = 16;

pub struct DeviceCredentials {
    /// What the device uses towards the bootstrap server; `None` for a
    /// device that registers without bootstrap (no bootstrap credential is made).
    pub bootstrap: Option<Psk>,
    /// The LwM2M server account: what the bootstrap server provisions, or
    /// what the device holds from the factory.
    pub server: Psk,
    server_origin: ServerOrigin,
}

/// Who made the server account, which decides whether a case may replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerOrigin {
    /// meterbench, for this run: a re-bootstrap may provision another.
    Harness,
    /// The factory: the device holds it and only the factory can change it.
    Factory,
}

/// Why the device's credentials cannot be had. No variant carries key
/// material: a key that does not parse is named by where it lives.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot generate a key: {0}")]
    Generate(KeyError),
    #[error("PSK identity {identity:?}: {source}")]
    Identity { identity: String, source: KeyError },
    #[error("environment variable {var} ({what}) is not set")]
    EnvUnset { var: String, what: &'static str },
    #[error("environment variable {var} does not hold a hex key: {source}")]
    EnvKey { var: String, source: KeyError },
    #[error("PSK identity from {var}: {source}")]
    EnvIdentity { var: String, source: KeyError },
    #[error("cannot read secrets file {}: {source}", path.display())]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The position only: the snippet serde-saphyr renders could quote the key.
    #[error("secrets file {}:{at}: expected `identity:` and `key:` (hex)", path.display())]
    FileMalformed { path: PathBuf, at: String },
    #[error("secrets file {}: `{field}` is not a hex key: {source}", path.display())]
    FileKey {
        path: PathBuf,
        field: &'static str,
        source: KeyError,
    },
    #[error("secrets file {}: {source}", path.display())]
    FileIdentity { path: PathBuf, source: KeyError },
    #[error("secrets file {}: server_identity and server_key go together", path.display())]
    FileServerHalf { path: PathBuf },
    /// Without bootstrap the file's `identity` and `key` are the server
    /// account: a second one would be ambiguous.
    #[error(
        "secrets file {}: server_identity and server_key name the account a bootstrap server provisions, \
         but the rig's device.bootstrap is false: its `identity` and `key` are the server account",
        path.display()
    )]
    FileServerWithoutBootstrap { path: PathBuf },
    #[error(
        "server account {identity:?} was provisioned at the factory: meterbench cannot replace it on the device"
    )]
    FactoryAccount { identity: String },
}

impl DeviceCredentials {
    /// The credentials of the device behind `endpoint`; `bootstrap` is the
    /// rig's `device.bootstrap`, which says which account `source` describes.
    pub fn for_device(
        source: &CredentialSource,
        endpoint: &str,
        bootstrap: bool,
    ) -> Result<Self, CredentialError> {
        if !bootstrap {
            let (server, server_origin) = match source {
                CredentialSource::Fresh => (fresh(endpoint)?, ServerOrigin::Harness),
                CredentialSource::Env { identity, key } => {
                    (from_env(identity, key)?, ServerOrigin::Factory)
                }
                CredentialSource::File { path } => match from_file(path)? {
                    (account, None) => (account, ServerOrigin::Factory),
                    (_, Some(_)) => {
                        return Err(CredentialError::FileServerWithoutBootstrap {
                            path: path.clone(),
                        })
                    }
                },
            };
            return Ok(DeviceCredentials {
                bootstrap: None,
                server,
                server_origin,
            });
        }
        let (bootstrap, server) = match source {
            CredentialSource::Fresh => (fresh(&format!("{endpoint}-bs"))?, None),
            CredentialSource::Env { identity, key } => (from_env(identity, key)?, None),
            CredentialSource::File { path } => from_file(path)?,
        };
        let server = match server {
            Some(s) => s,
            None => fresh(endpoint)?,
        };
        Ok(DeviceCredentials {
            bootstrap: Some(bootstrap),
            server,
            server_origin: ServerOrigin::Harness,
        })
    }

    pub fn server_origin(&self) -> ServerOrigin {
        self.server_origin
    }

    /// The account the device was given before the run, whose identity and
    /// key a device process is started with: the bootstrap account when it
    /// has one, else the server account.
    pub fn device_account(&self) -> &Psk {
        self.bootstrap.as_ref().unwrap_or(&self.server)
    }

    /// A new server credential, as a re-bootstrap provisions one; the old one
    /// must stop working (no lingering password). A factory account is never
    /// rotated: the device would keep using the old key.
    pub fn rotate_server(&mut self) -> Result<Psk, CredentialError> {
        if self.server_origin == ServerOrigin::Factory {
            return Err(CredentialError::FactoryAccount {
                identity: self.server.identity.clone(),
            });
        }
        let next = fresh(&self.server.identity)?;
        Ok(std::mem::replace(&mut self.server, next))
    }
}

pub fn fresh(identity: &str) -> Result<Psk, CredentialError> {
    let key = SecretKey::generate(KEY_LEN).map_err(CredentialError::Generate)?;
    Psk::new(identity, key).map_err(|source| CredentialError::Identity {
        identity: identity.to_string(),
        source,
    })
}

fn from_env(identity_var: &str, key_var: &str) -> Result<Psk, CredentialError> {
    let identity = std::env::var(identity_var).map_err(|_| CredentialError::EnvUnset {
        var: identity_var.to_string(),
        what: "the PSK identity",
    })?;
    let key = std::env::var(key_var).map_err(|_| CredentialError::EnvUnset {
        var: key_var.to_string(),
        what: "the PSK key, hex",
    })?;
    let key = SecretKey::from_hex(key.trim()).map_err(|source| CredentialError::EnvKey {
        var: key_var.to_string(),
        source,
    })?;
    Psk::new(identity, key).map_err(|source| CredentialError::EnvIdentity {
        var: identity_var.to_string(),
        source,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    identity: String,
    key: String,
    /// The server account's PSK, when it must be fixed too (a lab that
    /// re-uses a provisioned device); else a fresh one per run.
    server_identity: Option<String>,
    server_key: Option<String>,
}

/// The bootstrap PSK, and the server PSK if the file fixes it too.
fn from_file(path: &Path) -> Result<(Psk, Option<Psk>), CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialError::FileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let file: SecretsFile =
        serde_saphyr::from_str(&text).map_err(|e| CredentialError::FileMalformed {
            path: path.to_path_buf(),
            at: e
                .location()
                .map(|l| format!("{}:{}", l.line(), l.column()))
                .unwrap_or_default(),
        })?;
    let psk = |identity: String, key: &str, field: &'static str| {
        let key = SecretKey::from_hex(key.trim()).map_err(|source| CredentialError::FileKey {
            path: path.to_path_buf(),
            field,
            source,
        })?;
        Psk::new(identity, key).map_err(|source| CredentialError::FileIdentity {
            path: path.to_path_buf(),
            source,
        })
    };
    let bootstrap = psk(file.identity, &file.key, "key")?;
    let server = match (file.server_identity, file.server_key) {
        (Some(i), Some(k)) => Some(psk(i, &k, "server_key")?),
        (None, None) => None,
        _ => {
            return Err(CredentialError::FileServerHalf {
                path: path.to_path_buf(),
            })
        }
    };
    Ok((bootstrap, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_credentials_differ_per_device_and_call() {
        let a = DeviceCredentials::for_device(&CredentialSource::Fresh, "meter-a", true).unwrap();
        let b = DeviceCredentials::for_device(&CredentialSource::Fresh, "meter-a", true).unwrap();
        assert_ne!(a.server.key.expose(), b.server.key.expose());
        let bs = a.bootstrap.as_ref().unwrap();
        assert_ne!(bs.key.expose(), a.server.key.expose());
        assert_eq!(a.server.identity, "meter-a");
        assert_eq!(a.server.key.len(), 16);
    }

    #[test]
    fn rotation_replaces_the_server_key() {
        let mut c =
            DeviceCredentials::for_device(&CredentialSource::Fresh, "meter-a", true).unwrap();
        let old = c.rotate_server().unwrap();
        assert_eq!(old.identity, c.server.identity);
        assert_ne!(old.key.expose(), c.server.key.expose());
    }

    #[test]
    fn a_secrets_file_error_never_quotes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.yaml");
        std::fs::write(
            &f,
            "identity: meter-a\nkey: 00112233445566778899aabbccddeeXX\n",
        )
        .unwrap();
        let e = from_file(&f).err().unwrap().to_string();
        assert!(e.contains("s.yaml") && e.contains("`key`"), "{e}");
        assert!(!e.contains("00112233"), "{e}");
        std::fs::write(
            &f,
            "identity: meter-a\nkey: 00112233445566778899aabbccddeeff\n",
        )
        .unwrap();
        assert_eq!(from_file(&f).unwrap().0.key.len(), 16);
    }

    #[test]
    fn env_errors_name_the_variable_not_a_value() {
        let e = from_env("MB_TEST_NO_SUCH_ID", "MB_TEST_NO_SUCH_KEY")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("MB_TEST_NO_SUCH_ID"), "{e}");
    }

    /// An env source with its own variable names, so parallel tests never share one.
    fn env_source(tag: &str, identity: &str, key_hex: &str) -> CredentialSource {
        let id_var = format!("MB_TEST_{tag}_ID");
        let key_var = format!("MB_TEST_{tag}_KEY");
        std::env::set_var(&id_var, identity);
        std::env::set_var(&key_var, key_hex);
        CredentialSource::Env {
            identity: id_var,
            key: key_var,
        }
    }

    #[test]
    fn without_bootstrap_the_env_account_is_the_factory_server_account() {
        let key = "a5".repeat(16);
        let source = env_source("FACTORY_SERVER", "factory-id", &key);
        let c = DeviceCredentials::for_device(&source, "meter-a", false).unwrap();
        assert!(c.bootstrap.is_none(), "no bootstrap credential is made");
        assert_eq!(c.server.identity, "factory-id");
        assert_eq!(c.server.key.expose(), [0xa5; 16]);
        assert_eq!(c.server_origin(), ServerOrigin::Factory);
        assert_eq!(c.device_account().identity, "factory-id");
    }

    #[test]
    fn a_factory_server_account_is_never_rotated() {
        let key = "5a".repeat(16);
        let source = env_source("FACTORY_ROTATE", "factory-id", &key);
        let mut c = DeviceCredentials::for_device(&source, "meter-a", false).unwrap();
        let e = c.rotate_server().err().unwrap().to_string();
        assert!(e.contains("factory") && e.contains("factory-id"), "{e}");
        assert!(!e.contains(&key), "{e}");
        assert_eq!(c.server.key.expose(), [0x5a; 16], "the key stays");
    }

    #[test]
    fn with_bootstrap_the_env_account_is_the_bootstrap_account() {
        let key = "3c".repeat(16);
        let source = env_source("FACTORY_BS", "factory-bs-id", &key);
        let mut c = DeviceCredentials::for_device(&source, "meter-a", true).unwrap();
        let bs = c.bootstrap.as_ref().unwrap();
        assert_eq!(bs.identity, "factory-bs-id");
        assert_eq!(bs.key.expose(), [0x3c; 16]);
        assert_eq!(c.server.identity, "meter-a", "a fresh server account");
        assert_ne!(c.server.key.expose(), [0x3c; 16]);
        assert_eq!(c.server_origin(), ServerOrigin::Harness);
        assert_eq!(c.device_account().identity, "factory-bs-id");
        c.rotate_server().unwrap();
    }

    #[test]
    fn without_bootstrap_a_fresh_source_makes_only_a_server_account() {
        let mut c =
            DeviceCredentials::for_device(&CredentialSource::Fresh, "meter-a", false).unwrap();
        assert!(c.bootstrap.is_none());
        assert_eq!(c.server.identity, "meter-a");
        assert_eq!(c.server_origin(), ServerOrigin::Harness);
        c.rotate_server().unwrap();
    }

    #[test]
    fn without_bootstrap_a_secrets_file_names_one_account() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.yaml");
        std::fs::write(
            &f,
            format!("identity: factory-id\nkey: {}\n", "11".repeat(16)),
        )
        .unwrap();
        let source = CredentialSource::File { path: f.clone() };
        let c = DeviceCredentials::for_device(&source, "meter-a", false).unwrap();
        assert_eq!(c.server.identity, "factory-id");
        assert_eq!(c.server_origin(), ServerOrigin::Factory);
        std::fs::write(
            &f,
            format!(
                "identity: factory-id\nkey: {k}\nserver_identity: s\nserver_key: {k}\n",
                k = "22".repeat(16)
            ),
        )
        .unwrap();
        let e = DeviceCredentials::for_device(&source, "meter-a", false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("s.yaml") && e.contains("device.bootstrap"),
            "{e}"
        );
        assert!(!e.contains(&"22".repeat(16)), "{e}");
    }
}
