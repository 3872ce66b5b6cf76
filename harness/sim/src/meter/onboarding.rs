//! The meter's onboarding and security: which servers a client session
//! speaks to and how (LwM2M 1.1 Core §6.1, Transport §5.2.8).
//!
//! - With a Bootstrap-Server (`AT+LWM2MBS`, with its per-device PSK from
//!   `AT+LWM2MBSPSK` when it is `coaps://`), the client registers with the
//!   accounts the last Bootstrap-Finish provisioned, which NV keeps across
//!   power cuts; with none it bootstraps first (Core §6.1.5), and when
//!   registration with them keeps failing — a refused DTLS handshake, 4.03,
//!   no answer — it bootstraps again after [`BOOTSTRAP_AFTER`] failures
//!   (§6.2.1.1). The server URI of `AT+LWM2MSRV` is not used in this mode.
//!   Each such decision to bootstrap sends the Bootstrap-Request after the
//!   Client Hold Off Time of the Bootstrap-Server account (/0/0/11): 0 s
//!   from the factory ([`FACTORY_HOLD_OFF`]), then what the account held at
//!   the last Bootstrap-Finish, which NV keeps with the accounts
//!   (`bootstrap_hold_off_s`), so a power cut does not shorten the wait.
//! - Without one, the client registers with the `AT+LWM2MSRV` server as
//!   before; a `coaps://` one uses the PSK of `AT+LWM2MPSK`.
//!
//! - A smartcard whose EF LwM2M_Bootstrap holds a Server account
//!   (crate::smartcard) comes first in either mode (Core §6.1.4 step 1):
//!   its accounts replace NV's and the `AT+LWM2MSRV` server; with a
//!   Bootstrap-Server the meter still bootstraps when they keep failing.
//!
//! URCs: `+LWM2M: bootstrapped`, `+LWM2M: bootstrap failed <reason>`,
//! `+LWM2M: dtls failed <reason>`. No key is ever logged or printed: an
//! account shows its identity and the key's fingerprint.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m::bootstrap::{SecurityMode, ServerAccount};
use lwm2m::client::{BootstrapConfig, ObjectStore, RegistrationState, RetryPolicy};
use lwm2m::Path;

use super::Meter;
use crate::objects;
use crate::security::{LinkEvent, NvAccount, PskCredential};
use crate::server_uri::ServerUri;
use crate::session::SessionSettings;

/// First wait after a failed Register (doubling), short on the virtual meter.
pub const RETRY_INITIAL: Duration = Duration::from_secs(2);
/// Longest wait between Register attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// Failed Registers in a row after which the meter bootstraps again.
pub const BOOTSTRAP_AFTER: u32 = 2;
/// How long the meter waits for Bootstrap-Finish after the Bootstrap-Server's last operation.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(60);
/// Security instance of the Bootstrap-Server account (/0/0).
const BOOTSTRAP_SECURITY_INSTANCE: u16 = 0;
/// Client Hold Off Time (/0/0/11) the Bootstrap-Server account starts with:
/// none, so a meter without an account bootstraps as soon as it is started.
pub const FACTORY_HOLD_OFF: Duration = Duration::ZERO;

/// How a session reaches its servers.
#[derive(Debug, Clone)]
pub(super) struct ClientSecurity {
    /// Where Register goes until an account is selected.
    pub server: SocketAddr,
    pub bootstrap: Option<BootstrapConfig>,
    /// Accounts restored into the client's store (NV's provisioned ones, or
    /// the directly configured `coaps://` server's).
    pub accounts: Vec<ServerAccount>,
    pub retry: RetryPolicy,
}

fn resolve(uri: &str) -> Result<(SocketAddr, bool), String> {
    let parsed = ServerUri::parse(uri).map_err(|e| e.to_string())?;
    let addr = parsed.resolve().map_err(|e| format!("{uri}: {e}"))?;
    Ok((addr, parsed.secure))
}

/// The Security instance values of a PSK or NoSec account.
fn mode_and_credential(
    uri: &str,
    secure: bool,
    psk: Option<&PskCredential>,
    command: &str,
) -> Result<(SecurityMode, Vec<u8>, Vec<u8>), String> {
    if !secure {
        return Ok((SecurityMode::NoSec, Vec::new(), Vec::new()));
    }
    let psk = psk.ok_or_else(|| format!("{uri} is coaps:// but no PSK was given ({command})"))?;
    Ok((
        SecurityMode::Psk,
        psk.identity.clone().into_bytes(),
        psk.key_bytes(),
    ))
}

impl Meter {
    /// The settings a session runs with: in bootstrap mode the server URI
    /// plays no part (the accounts come from bootstrap).
    pub(super) fn session_settings(&self) -> Option<SessionSettings> {
        let s = &self.modem.settings;
        let server_uri = match (&s.bootstrap_uri, &s.server_uri) {
            (Some(_), _) => String::new(),
            (None, Some(uri)) => uri.clone(),
            // A smartcard's account is a server configured (Core §6.1.4 step 1).
            (None, None) if crate::smartcard::card_path(&self.state_dir).exists() => String::new(),
            (None, None) => return None,
        };
        Some(SessionSettings {
            server_uri,
            endpoint: s
                .endpoint
                .clone()
                .unwrap_or_else(|| self.identity.default_endpoint()),
            lifetime_s: s.lifetime_s,
            bootstrap_uri: s.bootstrap_uri.clone(),
            bootstrap_psk: s.bootstrap_psk.clone(),
            server_psk: s.server_psk.clone(),
        })
    }

    /// Resolves the session's servers and credentials; the error says why
    /// the client cannot start (for the `registration failed` URC).
    pub(super) fn client_security(
        &self,
        settings: &SessionSettings,
    ) -> Result<ClientSecurity, String> {
        // Bootstrap Sequence step 1 (Core §6.1.4): the smartcard's accounts
        // come before the factory's and before bootstrap's.
        let card = self.card_accounts();
        if let Some(bs_uri) = &settings.bootstrap_uri {
            let (addr, secure) = resolve(bs_uri)?;
            let (mode, identity, key) = mode_and_credential(
                bs_uri,
                secure,
                settings.bootstrap_psk.as_ref(),
                "AT+LWM2MBSPSK",
            )?;
            let mut bootstrap = BootstrapConfig::new(addr);
            bootstrap.server_uri = bs_uri.clone();
            bootstrap.security_instance = BOOTSTRAP_SECURITY_INSTANCE;
            bootstrap.security_mode = mode;
            bootstrap.psk_identity = identity;
            bootstrap.psk_key = key;
            bootstrap.finish_timeout = FINISH_TIMEOUT;
            // The virtual meter also takes certificate-mode accounts
            // (Security Mode 2, Core §E.1): it connects with the written
            // certificate and key (crate::security::link).
            bootstrap.supported_modes.push(SecurityMode::Certificate);
            bootstrap.hold_off = self
                .modem
                .settings
                .bootstrap_hold_off_s
                .map_or(FACTORY_HOLD_OFF, Duration::from_secs);
            let restored = card.is_empty().then(|| self.modem.settings.accounts.iter());
            let accounts: Vec<ServerAccount> = restored
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    let account = a.to_account();
                    if account.is_none() {
                        tracing::warn!(account = ?a, "provisioned account unusable; ignored");
                    }
                    account
                })
                .collect();
            if card.is_empty() {
                for a in &self.modem.settings.accounts {
                    tracing::info!(account = %a.summary(), "provisioned account restored from NV");
                }
            }
            return Ok(ClientSecurity {
                server: addr,
                bootstrap: Some(bootstrap),
                accounts: if card.is_empty() { accounts } else { card },
                retry: RetryPolicy {
                    initial: RETRY_INITIAL,
                    max: RETRY_MAX,
                    bootstrap_after: BOOTSTRAP_AFTER,
                },
            });
        }
        if let Some(first) = card.first() {
            // No Bootstrap-Server: the card's accounts are all there is.
            let (server, _) = resolve(&first.server_uri)?;
            return Ok(ClientSecurity {
                server,
                bootstrap: None,
                accounts: card,
                retry: RetryPolicy::default(),
            });
        }
        let (server, secure) = resolve(&settings.server_uri)?;
        let mut accounts = Vec::new();
        if secure {
            let (_, identity, key) = mode_and_credential(
                &settings.server_uri,
                true,
                settings.server_psk.as_ref(),
                "AT+LWM2MPSK",
            )?;
            let mut a = ServerAccount::psk(
                objects::SHORT_SERVER_ID as u16,
                settings.server_uri.clone(),
                identity,
                key,
            );
            a.lifetime = Duration::from_secs(u64::from(settings.lifetime_s));
            a.server_instance = self.device.server_instance;
            accounts.push(a);
        }
        Ok(ClientSecurity {
            server,
            bootstrap: None,
            accounts,
            retry: RetryPolicy::default(),
        })
    }

    /// The LwM2M Server accounts on the smartcard, read now (at every
    /// session start, so a changed or removed card is seen, Core §6.1.3.2);
    /// none without a card or with one that cannot be used, which the log
    /// says (crate::smartcard).
    pub(super) fn card_accounts(&self) -> Vec<ServerAccount> {
        match crate::smartcard::read_card(&self.state_dir, &self.registry) {
            crate::smartcard::CardRead::Absent => Vec::new(),
            crate::smartcard::CardRead::Accounts(accounts) => {
                for a in &accounts {
                    tracing::info!(account = %crate::smartcard::summary(a), "account from the smartcard (bootstrap from smartcard)");
                }
                accounts
            }
            crate::smartcard::CardRead::Unusable(why) => {
                tracing::warn!(%why, "smartcard bootstrap data unusable; going on without it");
                Vec::new()
            }
        }
    }

    /// The PSK of the server account the meter registers with: the
    /// bootstrapped (or NV-restored) account of a `coaps://` server in
    /// bootstrap mode, else the `AT+LWM2MPSK` credential of a `coaps://`
    /// server URI. `coaps://` firmware downloads authenticate with it.
    pub(super) fn server_account_psk(&self) -> Option<dtls::Psk> {
        let s = &self.modem.settings;
        if s.bootstrap_uri.is_some() {
            s.accounts
                .iter()
                .filter(|a| a.server_uri.starts_with("coaps://"))
                .find_map(|a| a.psk.as_ref().and_then(|p| p.psk()))
        } else {
            s.server_uri
                .as_deref()
                .filter(|u| u.starts_with("coaps://"))
                .and(s.server_psk.as_ref())
                .and_then(|p| p.psk())
        }
    }

    /// In bootstrap mode the LwM2M Server instance comes from bootstrap (or
    /// NV), not from the factory defaults.
    pub(super) fn prepare_store(store: &mut ObjectStore, security: &ClientSecurity) {
        if security.bootstrap.is_some() {
            store.delete_instance(1, 0);
        }
    }

    /// `AT+LWM2MBOOT`: bootstrap now, in the running session if it has the
    /// current settings, else in a new one.
    pub(super) fn bootstrap_now(&mut self, now: Instant) {
        let wanted = self.session_settings();
        if let Some(s) = self
            .active
            .as_mut()
            .filter(|s| Some(&s.settings) == wanted.as_ref())
        {
            tracing::info!("bootstrap requested over AT");
            s.client().bootstrap(now);
            return;
        }
        self.retire_active(now);
        self.start_session(now);
        if let Some(s) = self.active.as_mut() {
            if *s.state() != RegistrationState::Bootstrapping {
                s.client().bootstrap(now);
            }
        }
    }

    /// Bootstrap-Finish committed these accounts: keep them in NV (before
    /// the meter registers with them) and say so.
    pub(super) fn on_bootstrapped(&mut self, accounts: Vec<ServerAccount>) {
        let kept: Vec<NvAccount> = accounts
            .iter()
            .filter_map(|a| {
                let nv = NvAccount::from_account(a);
                if nv.is_none() {
                    tracing::warn!(account = ?a, "provisioned account cannot be kept (identity not text or key unusable)");
                }
                nv
            })
            .collect();
        for a in &kept {
            tracing::info!(account = %a.summary(), "account provisioned");
        }
        self.persist_accounts(kept);
        self.persist_hold_off();
        // The new account's PSK is what coaps:// downloads use; /5/0/8
        // offers CoAPS in this session already.
        let psk = self.server_account_psk();
        self.firmware.set_download_psk(psk);
        self.urc("+LWM2M: bootstrapped");
    }

    /// A server write to the Server object (e.g. its Lifetime) changes the
    /// provisioned account: NV follows.
    pub(super) fn on_account_write(&mut self, path: Path) {
        if self.modem.settings.bootstrap_uri.is_none() || path.object_id() != Some(1) {
            return;
        }
        let Some(s) = self.active.as_mut() else {
            return;
        };
        let kept: Vec<NvAccount> = s
            .client()
            .accounts()
            .iter()
            .filter_map(NvAccount::from_account)
            .collect();
        if kept != self.modem.settings.accounts {
            self.persist_accounts(kept);
        }
    }

    fn persist_accounts(&mut self, accounts: Vec<NvAccount>) {
        self.modem.settings.accounts = accounts.clone();
        if let Err(e) = self.nv.update(|d| d.lwm2m.accounts = accounts) {
            tracing::error!(error = %e, "cannot write provisioned accounts to NV");
        }
    }

    /// Keeps the Client Hold Off Time (/0/0/11) the Bootstrap-Server
    /// account holds after Bootstrap-Finish in NV, so the next session
    /// starts its account with it (module doc). A value that is not a
    /// non-negative integer is kept as 0, the wait the client applies to it.
    fn persist_hold_off(&mut self) {
        let Some(s) = self.active.as_mut() else {
            return;
        };
        let path = Path::resource(0, BOOTSTRAP_SECURITY_INSTANCE, 11);
        let seconds = match s.client().store().get(&path) {
            Some(lwm2m::Value::Integer(v)) => u64::try_from(*v).unwrap_or(0),
            Some(lwm2m::Value::Unsigned(v)) => *v,
            _ => 0,
        };
        if self.modem.settings.bootstrap_hold_off_s == Some(seconds) {
            return;
        }
        tracing::info!(hold_off_s = seconds, "Client Hold Off Time kept in NV");
        self.modem.settings.bootstrap_hold_off_s = Some(seconds);
        if let Err(e) = self
            .nv
            .update(|d| d.lwm2m.bootstrap_hold_off_s = Some(seconds))
        {
            tracing::error!(error = %e, "cannot write the Client Hold Off Time to NV");
        }
    }

    /// URCs and log lines for what the sessions' DTLS links reported.
    pub(super) fn report_link_events(&mut self) {
        let mut events = Vec::new();
        if let Some(s) = self.active.as_mut() {
            events.extend(s.link_events());
        }
        for (s, _) in &mut self.retiring {
            s.link_events();
        }
        for e in events {
            match e {
                LinkEvent::Connected {
                    peer,
                    identity,
                    suite,
                    handshake,
                } => {
                    tracing::info!(%peer, %identity, %suite, handshake_ms = handshake.as_millis() as u64, "DTLS session established")
                }
                LinkEvent::Failed { peer, reason } => {
                    tracing::warn!(%peer, %reason, "DTLS handshake failed; no registration over it");
                    self.urc(&format!("+LWM2M: dtls failed {reason}"));
                }
                LinkEvent::Closed { peer, reason } => {
                    tracing::info!(%peer, %reason, "DTLS session closed")
                }
            }
        }
    }
}
