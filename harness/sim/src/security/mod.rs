//! Security of the virtual meter's LwM2M client: the PSK credentials,
//! certificate credentials and provisioned accounts it keeps in NV
//! ([`credential`]) and the DTLS 1.2 links (PSK or certificate mode) its
//! sessions speak to `coaps://` servers over ([`link`]).

pub mod credential;
pub mod link;

pub use credential::{CertificateNv, CredentialError, NvAccount, PskCredential};
pub use link::{DtlsLinks, LinkEvent};

use std::collections::BTreeMap;

use crate::nv::Lwm2mSettings;

/// What the virtual debug port shows of the bootstrap settings and
/// provisioned accounts (`rig::Debug::read_state` keys): URIs, identities and
/// key fingerprints — never a key, though NV holds them.
///
/// - `lwm2m.bootstrap_uri`, `lwm2m.bootstrap_psk` (`"<identity>" sha256:<fp>…`),
///   `lwm2m.server_psk`;
/// - `lwm2m.accounts` (how many) and `lwm2m.account.<ssid>`:
///   `<ssid>,"<uri>",<security mode>,"<identity>","<fingerprint>"`;
/// - `lwm2m.bootstrap_hold_off_s`: the Client Hold Off Time (/0/0/11) NV
///   keeps, empty for the factory value.
pub fn debug_state(lwm2m: &Lwm2mSettings, m: &mut BTreeMap<String, String>) {
    let show = |c: &Option<PskCredential>| c.as_ref().map(|c| c.to_string()).unwrap_or_default();
    m.insert(
        "lwm2m.bootstrap_uri".to_owned(),
        lwm2m.bootstrap_uri.clone().unwrap_or_default(),
    );
    m.insert("lwm2m.bootstrap_psk".to_owned(), show(&lwm2m.bootstrap_psk));
    m.insert("lwm2m.server_psk".to_owned(), show(&lwm2m.server_psk));
    m.insert(
        "lwm2m.accounts".to_owned(),
        lwm2m.accounts.len().to_string(),
    );
    for a in &lwm2m.accounts {
        m.insert(format!("lwm2m.account.{}", a.short_server_id), a.summary());
    }
    m.insert(
        "lwm2m.bootstrap_hold_off_s".to_owned(),
        lwm2m
            .bootstrap_hold_off_s
            .map(|s| s.to_string())
            .unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwm2m::bootstrap::ServerAccount;

    #[test]
    fn debug_state_shows_identities_and_fingerprints_never_keys() {
        let key = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
        let mut s = Lwm2mSettings {
            bootstrap_uri: Some("coaps://127.0.0.1:5784".into()),
            bootstrap_psk: Some(PskCredential::from_hex("bs-id", key).unwrap()),
            ..Lwm2mSettings::default()
        };
        let a = ServerAccount::psk(
            5,
            "coaps://127.0.0.1:5684",
            b"dev".to_vec(),
            hex::decode(key).unwrap(),
        );
        s.accounts.push(NvAccount::from_account(&a).unwrap());
        let mut m = BTreeMap::new();
        debug_state(&s, &mut m);
        assert_eq!(m["lwm2m.bootstrap_uri"], "coaps://127.0.0.1:5784");
        assert!(m["lwm2m.bootstrap_psk"].starts_with("\"bs-id\" sha256:"));
        assert_eq!(m["lwm2m.accounts"], "1");
        assert!(m["lwm2m.account.5"].starts_with("5,\"coaps://127.0.0.1:5684\",0,\"dev\","));
        assert!(m
            .values()
            .all(|v| !v.contains(key) && !v.contains("a0a1a2")));
    }
}
