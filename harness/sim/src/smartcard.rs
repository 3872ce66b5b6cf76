//! The virtual meter's smartcard: the EF LwM2M_Bootstrap file of its eUICC
//! (LwM2M 1.1 Core Appendix G.3.3, codec in [`lwm2m::bootstrap::smartcard`]),
//! the source the Bootstrap Sequence tries first (Core §6.1.4 step 1:
//! "If the LwM2M Device has Smartcard, the LwM2M Client tries to obtain
//! Bootstrap Information from the Smartcard"), before its factory
//! configuration and before a client-initiated bootstrap.
//!
//! On a real device the card's file is reached through the PKCS#15
//! application (ODF -> DODF-bootstrap -> EF LwM2M_Bootstrap, Appendix G.2);
//! here it is one file in the meter's state directory, [`CARD_FILE`], that
//! the lab side (meterbench, before power-on) writes whole, as an OTA card
//! update would. The meter reads it at every session start, so a card
//! changed or removed between sessions is seen (Core §6.1.3.2: card data
//! that changed replaces what was applied from it; a removed card's
//! accounts are no longer used).
//!
//! The file holds keys, as the real card does; nothing here logs them: an
//! account is shown by its URI, Short Server ID, identity and the key's
//! fingerprint.

use std::fs;
use std::path::{Path, PathBuf};

use lwm2m::bootstrap::smartcard::SmartcardBootstrap;
use lwm2m::bootstrap::{SecurityMode, ServerAccount};
use lwm2m::Registry;

use crate::error::SimError;

/// The card's EF LwM2M_Bootstrap, inside the meter's state directory.
pub const CARD_FILE: &str = "smartcard-lwm2m-bootstrap.bin";

/// Security modes the virtual meter takes from a card (as from a bootstrap).
pub const SUPPORTED_MODES: [SecurityMode; 3] = [
    SecurityMode::NoSec,
    SecurityMode::Psk,
    SecurityMode::Certificate,
];

/// Where the card file of the meter with `state_dir` is.
pub fn card_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CARD_FILE)
}

/// What reading the card gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardRead {
    /// No card, or a card without an EF LwM2M_Bootstrap: the sequence goes
    /// on to the factory configuration.
    Absent,
    /// The LwM2M Server accounts on the card (at least one).
    Accounts(Vec<ServerAccount>),
    /// A card file that cannot be used, and why (never a key): the
    /// sequence goes on as without one, and the meter says so.
    Unusable(String),
}

/// Writes the card file (the lab's side: meterbench before power-on),
/// whole or not at all: written beside and renamed, so a meter starting
/// meanwhile reads the old card or the new one, never half of one.
pub fn write_card(state_dir: &Path, card: &SmartcardBootstrap) -> Result<PathBuf, SimError> {
    let path = card_path(state_dir);
    let bytes = card
        .encode()
        .map_err(|e| SimError::Card(format!("{}: {e}", path.display())))?;
    let tmp = state_dir.join(format!("{CARD_FILE}.new"));
    fs::create_dir_all(state_dir).map_err(|e| SimError::io(state_dir, e))?;
    fs::write(&tmp, &bytes).map_err(|e| SimError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| SimError::io(&path, e))?;
    Ok(path)
}

/// Removes the card (a card pulled from its holder); no card is no error.
pub fn remove_card(state_dir: &Path) -> Result<(), SimError> {
    match fs::remove_file(card_path(state_dir)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SimError::io(card_path(state_dir), e)),
    }
}

/// Reads the card of the meter with `state_dir` (Appendix G.2.5: locate and
/// read the file, then process it as Bootstrap Information).
pub fn read_card(state_dir: &Path, registry: &Registry) -> CardRead {
    let path = card_path(state_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CardRead::Absent,
        Err(e) => return CardRead::Unusable(format!("{}: {e}", path.display())),
    };
    let accounts = SmartcardBootstrap::decode(&bytes)
        .and_then(|card| card.accounts(registry, &SUPPORTED_MODES));
    match accounts {
        Ok(a) if a.is_empty() => CardRead::Unusable(format!(
            "{}: no complete LwM2M Server account",
            path.display()
        )),
        Ok(a) => CardRead::Accounts(a),
        Err(e) => CardRead::Unusable(format!("{}: {e}", path.display())),
    }
}

/// How an account from the card is shown in logs: no key, only its fingerprint.
pub fn summary(account: &ServerAccount) -> String {
    let identity = match account.security_mode {
        SecurityMode::Psk => String::from_utf8_lossy(&account.psk_identity).into_owned(),
        _ => format!("<{} bytes>", account.psk_identity.len()),
    };
    let fingerprint = if account.psk_key.is_empty() {
        "none".to_owned()
    } else {
        dtls::SecretKey::new(account.psk_key.clone())
            .map(|k| k.fingerprint())
            .unwrap_or_else(|_| "unusable".to_owned())
    };
    format!(
        "ssid {} {} ({}, identity {identity:?}, key {fingerprint}) /0/{} /1/{} lifetime {} s",
        account.short_server_id,
        account.server_uri,
        account.security_mode.name(),
        account.security_instance,
        account.server_instance,
        account.lifetime.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KEY: [u8; 16] = [0x5a; 16];

    fn account() -> ServerAccount {
        let mut a = ServerAccount::psk(7, "coaps://127.0.0.1:5684", b"card-id".to_vec(), KEY);
        a.lifetime = Duration::from_secs(25);
        a
    }

    fn card(accounts: &[ServerAccount]) -> SmartcardBootstrap {
        SmartcardBootstrap::from_accounts(accounts, &Registry::core()).unwrap()
    }

    #[test]
    fn a_written_card_is_read_back_as_its_accounts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_card(dir.path(), &Registry::core()), CardRead::Absent);
        let path = write_card(dir.path(), &card(&[account()])).unwrap();
        assert_eq!(path, card_path(dir.path()));
        assert!(!dir.path().join(format!("{CARD_FILE}.new")).exists());
        assert_eq!(
            read_card(dir.path(), &Registry::core()),
            CardRead::Accounts(vec![account()])
        );
        remove_card(dir.path()).unwrap();
        remove_card(dir.path()).unwrap();
        assert_eq!(read_card(dir.path(), &Registry::core()), CardRead::Absent);
    }

    #[test]
    fn a_changed_card_is_read_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        write_card(dir.path(), &card(&[account()])).unwrap();
        let mut other = account();
        other.psk_identity = b"another-id".to_vec();
        write_card(dir.path(), &card(std::slice::from_ref(&other))).unwrap();
        assert_eq!(
            read_card(dir.path(), &Registry::core()),
            CardRead::Accounts(vec![other])
        );
    }

    #[test]
    fn a_damaged_or_empty_card_is_unusable_and_says_why_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = card(&[account()]).encode().unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(card_path(dir.path()), &bytes).unwrap();
        let CardRead::Unusable(why) = read_card(dir.path(), &Registry::core()) else {
            panic!("a truncated card was used");
        };
        assert!(why.contains(CARD_FILE) && why.contains("byte"), "{why}");
        assert!(!why.contains("5a5a"), "{why}");
        // A card whose file holds no account (only the header).
        std::fs::write(card_path(dir.path()), [0, 0, 0, 0]).unwrap();
        let CardRead::Unusable(why) = read_card(dir.path(), &Registry::core()) else {
            panic!("an empty card was used");
        };
        assert!(why.contains("no LwM2M Server account"), "{why}");
    }

    #[test]
    fn the_summary_shows_the_identity_and_a_fingerprint_never_the_key() {
        let s = summary(&account());
        assert!(s.contains("card-id") && s.contains("ssid 7"), "{s}");
        assert!(
            !s.contains("5a5a") && !s.to_lowercase().contains("zz"),
            "{s}"
        );
    }
}
