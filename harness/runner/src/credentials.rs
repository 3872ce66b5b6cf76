//! Per-device credentials. There is no default or shared credential anywhere:
//! every device gets a fresh bootstrap PSK and a fresh server PSK for every run,
//! unless its rig says where a factory-provisioned bootstrap credential lives
//! (an environment variable or a secrets file — never the rig file itself).
//! Keys are printed only as fingerprints.

use std::path::Path;

use dtls::{Psk, SecretKey};
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

impl DeviceCredentials {
    pub fn for_device(source: &CredentialSource, endpoint: &str) -> Result<Self, String> {
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
    pub fn rotate_server(&mut self) -> Result<Psk, String> {
        let next = fresh(&self.server.identity)?;
        Ok(std::mem::replace(&mut self.server, next))
    }
}

pub fn fresh(identity: &str) -> Result<Psk, String> {
    let key = SecretKey::generate(KEY_LEN).map_err(|e| format!("cannot generate a key: {e}"))?;
    Psk::new(identity, key).map_err(|e| format!("PSK identity {identity:?}: {e}"))
}

fn from_env(identity_var: &str, key_var: &str) -> Result<Psk, String> {
    let identity = std::env::var(identity_var).map_err(|_| {
        format!("environment variable {identity_var} (the PSK identity) is not set")
    })?;
    let key = std::env::var(key_var)
        .map_err(|_| format!("environment variable {key_var} (the PSK key, hex) is not set"))?;
    let key = SecretKey::from_hex(key.trim())
        .map_err(|e| format!("environment variable {key_var} does not hold a hex key: {e}"))?;
    Psk::new(identity, key).map_err(|e| format!("PSK identity from {identity_var}: {e}"))
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
fn from_file(path: &Path) -> Result<(Psk, Option<Psk>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read secrets file {}: {e}", path.display()))?;
    let file: SecretsFile = serde_saphyr::from_str(&text).map_err(|e| {
        // The snippet serde-saphyr renders could quote the key: give the position only.
        let at = e
            .location()
            .map(|l| format!("{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        format!(
            "secrets file {}:{at}: expected `identity:` and `key:` (hex)",
            path.display()
        )
    })?;
    let psk = |identity: String, key: &str, what: &str| {
        let key = SecretKey::from_hex(key.trim()).map_err(|e| {
            format!(
                "secrets file {}: `{what}` is not a hex key: {e}",
                path.display()
            )
        })?;
        Psk::new(identity, key).map_err(|e| format!("secrets file {}: {e}", path.display()))
    };
    let bootstrap = psk(file.identity, &file.key, "key")?;
    let server = match (file.server_identity, file.server_key) {
        (Some(i), Some(k)) => Some(psk(i, &k, "server_key")?),
        (None, None) => None,
        _ => {
            return Err(format!(
                "secrets file {}: server_identity and server_key go together",
                path.display()
            ))
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
        let e = from_file(&f).err().unwrap();
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
            .unwrap();
        assert!(e.contains("MB_TEST_NO_SUCH_ID"), "{e}");
    }
}
