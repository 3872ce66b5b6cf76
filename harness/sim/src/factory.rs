//! Factory provisioning: the LwM2M account a meter leaves the factory with,
//! so that it registers (or bootstraps) by itself at first power-on with no
//! modem dialogue at all — the device a lab receives from a vendor's line.
//!
//! The command line gives the image (`--server URI` or `--bootstrap URI`,
//! `--endpoint`, `--lifetime`, `--psk-identity`); the key comes only from the
//! environment variable [`PSK_KEY_ENV`] (hex), never from argv, where every
//! user of the machine could read it in `ps`.
//!
//! Written once, as a line station writes a provisioning partition: on the
//! first start the image goes to NV together with a stamp of what was
//! written (URIs, endpoint, lifetime, identity and the key's fingerprint —
//! never the key). Every later start with the same image keeps NV as it is,
//! so what the device learned since (a lifetime the server wrote, accounts a
//! bootstrap provisioned) survives power cuts exactly as it would on a real
//! meter. Starting with a *different* image is re-provisioning the device at
//! the factory: the LwM2M settings are replaced by the new image; the rest of
//! NV (energy register, firmware slots, values servers wrote) stays.

use crate::error::SimError;
use crate::nv::{Lwm2mSettings, NvStore, DEFAULT_LIFETIME_S};
use crate::security::PskCredential;
use crate::server_uri::ServerUri;

/// The environment variable that holds the factory account's PSK key (hex).
pub const PSK_KEY_ENV: &str = "METERBENCH_PSK_KEY";

/// The one account a factory image holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactoryAccount {
    /// An LwM2M Server account: the meter registers without bootstrap (`--server`).
    Server(String),
    /// A Bootstrap-Server account at a fixed URI (`--bootstrap`): the meter
    /// bootstraps first (LwM2M 1.1 Core §6.1.5).
    Bootstrap(String),
}

impl FactoryAccount {
    fn flag(&self) -> &'static str {
        match self {
            FactoryAccount::Server(_) => "--server",
            FactoryAccount::Bootstrap(_) => "--bootstrap",
        }
    }

    fn uri(&self) -> &str {
        match self {
            FactoryAccount::Server(u) | FactoryAccount::Bootstrap(u) => u,
        }
    }
}

/// The factory provisioning flags as given (no key: see [`PSK_KEY_ENV`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FactoryArgs {
    pub account: Option<FactoryAccount>,
    /// `--endpoint`: the Endpoint Client Name; absent: the identity's default.
    pub endpoint: Option<String>,
    /// `--lifetime`: registration lifetime in seconds; absent: [`DEFAULT_LIFETIME_S`].
    pub lifetime_s: Option<u32>,
    /// `--psk-identity`: required with a `coaps://` URI, refused with `coap://`.
    pub psk_identity: Option<String>,
}

impl FactoryArgs {
    /// Whether any factory flag was given.
    pub fn is_given(&self) -> bool {
        *self != FactoryArgs::default()
    }

    /// Handles one factory flag; `Ok(false)` when `flag` is not one.
    pub(crate) fn parse_flag(
        &mut self,
        flag: &str,
        value: &mut dyn FnMut() -> Result<String, SimError>,
    ) -> Result<bool, SimError> {
        match flag {
            "--server" | "--bootstrap" => {
                let uri = value()?;
                let account = if flag == "--server" {
                    FactoryAccount::Server(uri)
                } else {
                    FactoryAccount::Bootstrap(uri)
                };
                if let Some(before) = &self.account {
                    return Err(SimError::Usage(format!(
                        "{flag} given after {}: a factory image holds one account, \
                         an LwM2M server's or a bootstrap server's",
                        before.flag()
                    )));
                }
                self.account = Some(account);
            }
            "--endpoint" => {
                let v = value()?;
                if v.is_empty() || !v.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(SimError::Usage(format!(
                        "--endpoint {v:?} must be printable ASCII without spaces"
                    )));
                }
                self.endpoint = Some(v);
            }
            "--lifetime" => {
                let v = value()?;
                let s = v.parse::<u32>().ok().filter(|s| *s >= 1).ok_or_else(|| {
                    SimError::Usage(format!(
                        "--lifetime {v:?} is not a lifetime in whole seconds (1 to {})",
                        u32::MAX
                    ))
                })?;
                self.lifetime_s = Some(s);
            }
            "--psk-identity" => {
                let v = value()?;
                if v.is_empty() || v.len() > dtls::MAX_IDENTITY_LEN || v.contains('\0') {
                    return Err(SimError::Usage(format!(
                        "--psk-identity must be 1 to {} bytes without NUL",
                        dtls::MAX_IDENTITY_LEN
                    )));
                }
                self.psk_identity = Some(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the flags together, once all are read: a URI that parses,
    /// an identity exactly when the URI is `coaps://`, and no endpoint or
    /// lifetime without an account.
    pub(crate) fn check(&self) -> Result<(), SimError> {
        let Some(account) = &self.account else {
            for (given, flag) in [
                (self.endpoint.is_some(), "--endpoint"),
                (self.lifetime_s.is_some(), "--lifetime"),
                (self.psk_identity.is_some(), "--psk-identity"),
            ] {
                if given {
                    return Err(SimError::Usage(format!(
                        "{flag} is factory provisioning and needs --server or --bootstrap"
                    )));
                }
            }
            return Ok(());
        };
        let flag = account.flag();
        let uri =
            ServerUri::parse(account.uri()).map_err(|e| SimError::Usage(format!("{flag} {e}")))?;
        match (uri.secure, &self.psk_identity) {
            (true, None) => Err(SimError::Usage(format!(
                "{flag} {:?} is coaps:// and needs --psk-identity (the key comes from {PSK_KEY_ENV})",
                account.uri()
            ))),
            (false, Some(_)) => Err(SimError::Usage(format!(
                "--psk-identity given but {flag} {:?} is coap:// (no DTLS)",
                account.uri()
            ))),
            _ => Ok(()),
        }
    }

    /// The flags back, for [`crate::MeterArgs::to_args`].
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(a) = &self.account {
            v.extend([a.flag().to_owned(), a.uri().to_owned()]);
        }
        if let Some(e) = &self.endpoint {
            v.extend(["--endpoint".to_owned(), e.clone()]);
        }
        if let Some(l) = self.lifetime_s {
            v.extend(["--lifetime".to_owned(), l.to_string()]);
        }
        if let Some(i) = &self.psk_identity {
            v.extend(["--psk-identity".to_owned(), i.clone()]);
        }
        v
    }
}

/// The LwM2M settings a factory image writes, and its stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryImage {
    settings: Lwm2mSettings,
    stamp: String,
}

/// What [`FactoryImage::install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// NV held no factory image, or another one: the image was written.
    Written,
    /// NV already holds this image: NV was kept as it is.
    Kept,
}

impl FactoryImage {
    /// The image of `args` (already [`FactoryArgs::check`]ed), with the key
    /// read from [`PSK_KEY_ENV`] by the caller (`key_hex`); `None` when no
    /// factory flag was given. Errors name the flag or the variable, never
    /// the key.
    pub fn new(args: &FactoryArgs, key_hex: Option<&str>) -> Result<Option<Self>, SimError> {
        let Some(account) = &args.account else {
            return Ok(None);
        };
        let credential = match &args.psk_identity {
            None => {
                if key_hex.is_some() {
                    tracing::info!(
                        "{PSK_KEY_ENV} is set but {} is coap://; the key is not used",
                        account.flag()
                    );
                }
                None
            }
            Some(identity) => {
                let key = key_hex.ok_or_else(|| {
                    SimError::Usage(format!(
                        "{} {:?} is coaps://: its PSK key must be in the environment \
                         variable {PSK_KEY_ENV} (hex), which is not set",
                        account.flag(),
                        account.uri()
                    ))
                })?;
                Some(
                    PskCredential::from_hex(identity, key.trim())
                        .map_err(|e| SimError::Usage(format!("{PSK_KEY_ENV}: {e}")))?,
                )
            }
        };
        let mut settings = Lwm2mSettings {
            endpoint: args.endpoint.clone(),
            lifetime_s: args.lifetime_s.unwrap_or(DEFAULT_LIFETIME_S),
            enabled: true,
            ..Lwm2mSettings::default()
        };
        match account {
            FactoryAccount::Server(uri) => {
                settings.server_uri = Some(uri.clone());
                settings.server_psk = credential.clone();
            }
            FactoryAccount::Bootstrap(uri) => {
                settings.bootstrap_uri = Some(uri.clone());
                settings.bootstrap_psk = credential.clone();
            }
        }
        let stamp = format!(
            "{} {} endpoint={} lifetime={}s psk={}",
            account.flag().trim_start_matches('-'),
            account.uri(),
            args.endpoint.as_deref().unwrap_or("(default)"),
            settings.lifetime_s,
            credential
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".to_owned()),
        );
        Ok(Some(FactoryImage { settings, stamp }))
    }

    /// What NV records of this image: safe to log (the key's fingerprint only).
    pub fn stamp(&self) -> &str {
        &self.stamp
    }

    /// Writes the image to NV unless NV already holds it (see the module docs).
    pub fn install(&self, nv: &mut NvStore) -> Result<Installed, SimError> {
        if nv.data().factory.as_deref() == Some(self.stamp.as_str()) {
            tracing::info!(image = %self.stamp, "factory provisioning already in NV; NV kept");
            return Ok(Installed::Kept);
        }
        if let Some(before) = &nv.data().factory {
            tracing::info!(before = %before, image = %self.stamp, "re-provisioned: new factory image replaces the LwM2M settings");
        } else {
            tracing::info!(image = %self.stamp, "factory provisioning written to NV");
        }
        nv.update(|d| {
            d.lwm2m = self.settings.clone();
            d.factory = Some(self.stamp.clone());
        })?;
        Ok(Installed::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff";

    fn args(account: FactoryAccount, identity: Option<&str>) -> FactoryArgs {
        FactoryArgs {
            account: Some(account),
            endpoint: Some("ep-1".into()),
            lifetime_s: Some(42),
            psk_identity: identity.map(str::to_owned),
        }
    }

    #[test]
    fn a_server_image_configures_a_direct_psk_account() {
        let a = args(
            FactoryAccount::Server("coaps://127.0.0.1:5684".into()),
            Some("dev-1"),
        );
        a.check().unwrap();
        let image = FactoryImage::new(&a, Some(KEY)).unwrap().unwrap();
        let s = &image.settings;
        assert_eq!(s.server_uri.as_deref(), Some("coaps://127.0.0.1:5684"));
        assert_eq!(s.bootstrap_uri, None);
        assert_eq!(s.endpoint.as_deref(), Some("ep-1"));
        assert_eq!(s.lifetime_s, 42);
        assert!(s.enabled);
        let psk = s.server_psk.as_ref().unwrap();
        assert_eq!(psk.identity, "dev-1");
        assert_eq!(psk.key_bytes(), hex::decode(KEY).unwrap());
        assert!(image.stamp().contains("server coaps://127.0.0.1:5684"));
        assert!(!image.stamp().contains(KEY) && !image.stamp().contains("0011223"));
    }

    #[test]
    fn a_bootstrap_image_configures_the_bootstrap_account() {
        let a = args(
            FactoryAccount::Bootstrap("coap://127.0.0.1:5783".into()),
            None,
        );
        a.check().unwrap();
        let image = FactoryImage::new(&a, None).unwrap().unwrap();
        assert_eq!(
            image.settings.bootstrap_uri.as_deref(),
            Some("coap://127.0.0.1:5783")
        );
        assert_eq!(image.settings.server_uri, None);
        assert_eq!(image.settings.bootstrap_psk, None);
    }

    #[test]
    fn coaps_needs_an_identity_and_the_key_variable() {
        let mut a = args(FactoryAccount::Server("coaps://127.0.0.1".into()), None);
        let e = a.check().unwrap_err().to_string();
        assert!(
            e.contains("--server") && e.contains("--psk-identity"),
            "{e}"
        );
        a.psk_identity = Some("id".into());
        let e = FactoryImage::new(&a, None).unwrap_err().to_string();
        assert!(e.contains(PSK_KEY_ENV) && e.contains("not set"), "{e}");
        let e = FactoryImage::new(&a, Some("0011zz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(PSK_KEY_ENV) && e.contains("position 4"), "{e}");
        assert!(!e.contains("zz"), "{e}");
        let e = args(FactoryAccount::Bootstrap("coap://h".into()), Some("id"))
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("coap://"), "{e}");
    }

    #[test]
    fn installed_once_then_kept_and_replaced_by_another_image() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        let a = args(
            FactoryAccount::Server("coaps://127.0.0.1:5684".into()),
            Some("dev-1"),
        );
        let image = FactoryImage::new(&a, Some(KEY)).unwrap().unwrap();
        assert_eq!(image.install(&mut nv).unwrap(), Installed::Written);
        // What the device learns later (a server's lifetime write) survives a restart.
        nv.update(|d| d.lwm2m.lifetime_s = 99).unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        assert_eq!(image.install(&mut nv).unwrap(), Installed::Kept);
        assert_eq!(nv.data().lwm2m.lifetime_s, 99);
        let mut b = a.clone();
        b.account = Some(FactoryAccount::Server("coaps://127.0.0.1:5999".into()));
        let other = FactoryImage::new(&b, Some(KEY)).unwrap().unwrap();
        assert_eq!(other.install(&mut nv).unwrap(), Installed::Written);
        assert_eq!(nv.data().lwm2m.lifetime_s, 42);
        assert_eq!(
            nv.data().lwm2m.server_uri.as_deref(),
            Some("coaps://127.0.0.1:5999")
        );
        // A new key alone is a new image too.
        let rekeyed = FactoryImage::new(&b, Some("ff112233445566778899aabbccddeeff"))
            .unwrap()
            .unwrap();
        assert_eq!(rekeyed.install(&mut nv).unwrap(), Installed::Written);
    }
}
