//! Per-device credentials. There is no default or shared credential anywhere:
//! every device gets a fresh bootstrap PSK and a fresh server PSK for every run,
//! unless its rig says where a factory-provisioned bootstrap credential lives
//! (an environment variable or a secrets file — never the rig file itself).
//! Keys are printed only as fingerprints.

use std::path::{Path, PathBuf};

use dtls::{KeyError, Psk, SecretKey};
use rig::model::CredentialSource;
use serde::Deserialize;

/// Key length for fresh PSKs: 128 bits, what AES-128 uses.
const KEY_LEN: usize = 16;

pub struct DeviceCredentials {
    /// What the device uses towards the bootstrap server.
    pub bootstrap: Psk,
    /// What the bootstrap server provisions for the LwM2M server account.
    pub server: Psk,
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
}

impl DeviceCredentials {
    pub fn for_device(source: &CredentialSource, endpoint: &str) -> Result<Self, CredentialError> {
        let (bootstrap, server) = match source {
            CredentialSource::Fresh => (fresh(&format!("{endpoint}-bs"))?, None),
            CredentialSource::Env { identity, key } => (from_env(identity, key)?, None),
            CredentialSource::File { path } => from_file(path)?,
        };
        let server = match server {
            Some(s) => s,
            None => fresh(endpoint)?,
        };
        Ok(DeviceCredentials { bootstrap, server })
    }

    /// A new server credential, as a re-bootstrap provisions one; the old one
    /// must stop working (no lingering password).
    pub fn rotate_server(&mut self) -> Result<Psk, CredentialError> {
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
        let a = DeviceCredentials::for_device(&CredentialSource::Fresh, "meter-a").unwrap();
        let b = DeviceCredentials::for_device(&CredentialSource::Fresh, "meter-a").unwrap();
        assert_ne!(a.server.key.expose(), b.server.key.expose());
        assert_ne!(a.bootstrap.key.expose(), a.server.key.expose());
        assert_eq!(a.server.identity, "meter-a");
        assert_eq!(a.server.key.len(), 16);
    }

    #[test]
    fn rotation_replaces_the_server_key() {
        let mut c = DeviceCredentials::for_device(&CredentialSource::Fresh, "meter-a").unwrap();
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
}
