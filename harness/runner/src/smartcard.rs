//! The device's smartcard as the rig describes it (`device.smartcard`):
//! Bootstrap from Smartcard (LwM2M 1.1 Core §6.1.3.2), whose EF
//! LwM2M_Bootstrap file (Appendix G.3.3) holds an LwM2M Server account
//! that the device tries before its factory configuration and before any
//! bootstrap (§6.1.4 step 1).
//!
//! A lab provisions a real card before the run (`provisioned_by: lab`):
//! meterbench then only has to serve the account the card names, and when
//! the rig says where the card's credential lives, its server accepts it
//! for the device's endpoint. The virtual meter's card is written by
//! meterbench when the rig session opens, before the meter is first
//! powered (`provisioned_by: meterbench`): this run's server URI (or the
//! rig's `server_uri`), the rig's lifetime and account instances, and the
//! device's server credential — or, when the rig gives the card its own
//! `credentials`, that one, which the server does not accept: how a card
//! holding the wrong account is played. Keys go only into the card file,
//! as on a real card; logs show the identity and a fingerprint.

use std::path::{Path, PathBuf};

use lwm2m::bootstrap::smartcard::{CardError, SmartcardBootstrap};
use lwm2m::bootstrap::ServerAccount;
use rig::model::{CardProvisioning, SmartcardSpec};

use crate::credentials::{CredentialError, DeviceCredentials};
use crate::session::Session;

/// Why the card described by the rig cannot be written or served.
#[derive(Debug, thiserror::Error)]
pub enum SmartcardError {
    #[error("{}: device.smartcard.credentials: {source}", rig.display())]
    Credentials {
        rig: PathBuf,
        source: CredentialError,
    },
    #[error("{}: device.smartcard: {source}", rig.display())]
    Encode { rig: PathBuf, source: CardError },
    #[error("{}: device.smartcard: {source}", rig.display())]
    Write { rig: PathBuf, source: sim::SimError },
}

/// What the card holds for `session`'s device, per the rig's description
/// `card` (the rig's own server account, with the card's overrides).
fn card_account(session: &Session, card: &SmartcardSpec) -> Result<ServerAccount, SmartcardError> {
    let mut account = session.server_account();
    account.short_server_id = card.short_server_id;
    if let Some(uri) = &card.server_uri {
        account.server_uri = uri.clone();
    }
    if let Some(source) = &card.credentials {
        let psk = card_psk(session, source)?;
        account.psk_identity = psk.identity.as_bytes().to_vec();
        account.psk_key = psk.key.expose().to_vec();
    }
    Ok(account)
}

/// The credential `source` names, read as the device's server account is.
fn card_psk(
    session: &Session,
    source: &rig::model::CredentialSource,
) -> Result<dtls::Psk, SmartcardError> {
    DeviceCredentials::for_device(source, &session.endpoint, false)
        .map(|c| c.server)
        .map_err(|source| SmartcardError::Credentials {
            rig: session.rig.source.clone(),
            source,
        })
}

/// Prepares the card for the run: writes the virtual meter's card into its
/// `state_dir`, or for a lab's card lets the server accept the credential
/// the rig says it holds. Returns the file written, if any.
pub fn provision(session: &Session, state_dir: &Path) -> Result<Option<PathBuf>, SmartcardError> {
    let Some(card) = &session.rig.device.smartcard else {
        return Ok(None);
    };
    let rig = || session.rig.source.clone();
    match card.provisioned_by {
        CardProvisioning::Lab => {
            if let Some(source) = &card.credentials {
                let psk = card_psk(session, source)?;
                tracing::info!(identity = %psk.identity, fingerprint = %psk.key.fingerprint(), "the lab's smartcard account is accepted for the device");
                session.server.set_psk(&session.endpoint, psk);
            }
            Ok(None)
        }
        CardProvisioning::Meterbench => {
            let account = card_account(session, card)?;
            let file = SmartcardBootstrap::from_accounts(
                std::slice::from_ref(&account),
                &session.registry,
            )
            .map_err(|source| SmartcardError::Encode { rig: rig(), source })?;
            let path = sim::smartcard::write_card(state_dir, &file)
                .map_err(|source| SmartcardError::Write { rig: rig(), source })?;
            tracing::info!(card = %sim::smartcard::summary(&account), file = %path.display(), "smartcard written before power-on");
            Ok(Some(path))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use lwm2m::bootstrap::SecurityMode;
    use lwm2m::Registry;
    use rig::RigFile;

    use super::*;
    use crate::session::SessionConfig;

    fn config(dir: &Path) -> SessionConfig {
        SessionConfig {
            run_id: "card".into(),
            fixtures: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
            registry: Registry::core(),
            state_root: dir.join("state"),
            // Never started: the test does not power the meter.
            meter_program: PathBuf::from("/nonexistent/virtual-meter"),
            meter_args: Vec::new(),
            seed: 1,
        }
    }

    #[tokio::test]
    async fn the_virtual_meters_card_holds_this_runs_server_and_server_psk() {
        let dir = tempfile::tempdir().unwrap();
        let rig = RigFile::parse(
            "name: card\ndevice:\n  endpoint: card-{run}\n  lifetime: 33s\n  security: psk\n  \
             bootstrap: true\n  smartcard: { provisioned_by: meterbench, short_server_id: 9 }\n\
             power: { kind: virtual }\n",
            &dir.path().join("card.yaml"),
        )
        .unwrap();
        let session = Session::open(rig, &config(dir.path())).await.unwrap();
        let state_dir = dir.path().join("state").join(session.rig.unit_name());
        let sim::smartcard::CardRead::Accounts(accounts) =
            sim::smartcard::read_card(&state_dir, &Registry::core())
        else {
            panic!("no card written into {}", state_dir.display());
        };
        assert_eq!(accounts.len(), 1);
        let a = &accounts[0];
        let c = session.credentials.as_ref().unwrap();
        assert_eq!(a.server_uri, session.server_uri());
        assert_eq!(a.short_server_id, 9);
        assert_eq!(a.lifetime.as_secs(), 33);
        assert_eq!(a.security_mode, SecurityMode::Psk);
        assert_eq!(a.psk_identity, c.server.identity.as_bytes());
        assert_eq!(a.psk_key, c.server.key.expose());
        session.close().await;
    }

    #[tokio::test]
    async fn a_card_credential_that_cannot_be_read_fails_the_session_naming_the_rig() {
        let dir = tempfile::tempdir().unwrap();
        let rig = RigFile::parse(
            "name: card\ndevice:\n  endpoint: card-{run}\n  lifetime: 33s\n  security: psk\n  \
             smartcard:\n    provisioned_by: meterbench\n    credentials: { from: env, identity: \
             MB_UNSET_CARD_ID_VAR, key: MB_UNSET_CARD_KEY_VAR }\npower: { kind: virtual }\n",
            &dir.path().join("card.yaml"),
        )
        .unwrap();
        let Err(e) = Session::open(rig, &config(dir.path())).await else {
            panic!("a card whose credential is not set was written");
        };
        let e = e.to_string();
        assert!(
            e.contains("card.yaml") && e.contains("device.smartcard.credentials"),
            "{e}"
        );
        assert!(e.contains("MB_UNSET_CARD_ID_VAR"), "{e}");
    }
}
