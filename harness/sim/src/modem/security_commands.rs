//! The dialect's bootstrap and credential commands, as modems with a
//! built-in LwM2M client have them (fixtures/modems/meterbench-virtual.yaml):
//!
//! - `AT+LWM2MBS="<uri>"` sets the Bootstrap-Server URI (`coap://` or
//!   `coaps://`; `""` clears it); `AT+LWM2MBS?` reads it.
//! - `AT+LWM2MBSPSK="<identity>","<key hex>"` gives the Bootstrap-Server
//!   account its per-device PSK (the factory provisioning step);
//!   `AT+LWM2MBSPSK?` answers the identity and the key's fingerprint only.
//! - `AT+LWM2MPSK="<identity>","<key hex>"` is the same for a server set
//!   directly with a `coaps://` `AT+LWM2MSRV`.
//! - `AT+LWM2MBOOT` starts a client-initiated bootstrap (Core §6.1.5) now.
//! - `AT+LWM2MACC?` lists the provisioned accounts:
//!   `+LWM2MACC: <ssid>,"<uri>",<security mode>,"<identity>","<key fingerprint>"`.
//!
//! Keys never come back out: not in answers, and not in the echo, which
//! shows `***` in place of a key ([`redact_line`]).

use std::borrow::Cow;

use super::commands::{cme, info, quoted, Action, Final, Form, ModemState, Response};
use crate::security::PskCredential;
use crate::server_uri::ServerUri;

/// The commands this module answers (upper case, without `AT+`).
pub const NAMES: &[&str] = &["LWM2MBS", "LWM2MBSPSK", "LWM2MPSK", "LWM2MBOOT", "LWM2MACC"];

/// Commands whose last parameter is a key.
const SECRET_COMMANDS: &[&str] = &["+LWM2MBSPSK=", "+LWM2MPSK="];

/// `line` with the key parameter of a credential command replaced by
/// `"***"`, for the echo and for logs; other lines unchanged.
pub fn redact_line(line: &str) -> Cow<'_, str> {
    let upper = line.to_ascii_uppercase();
    let Some(at) = SECRET_COMMANDS
        .iter()
        .filter_map(|c| upper.find(c).map(|i| i + c.len()))
        .min()
    else {
        return Cow::Borrowed(line);
    };
    // Keep a leading quoted identity (a string constant holds no quote);
    // whatever follows it may be a key.
    let args = &line[at..];
    let keep = args
        .strip_prefix('"')
        .and_then(|rest| rest.find('"'))
        .map_or(0, |end| end + 2);
    let sep = if keep == 0 { "" } else { "," };
    Cow::Owned(format!("{}{sep}\"***\"", &line[..at + keep]))
}

/// Answers one of [`NAMES`].
pub(super) fn extended(
    state: &mut ModemState,
    name: &str,
    form: Form<'_>,
    resp: &mut Response,
) -> Final {
    let s = &mut state.settings;
    match (name, form) {
        ("LWM2MBS", Form::Set(args)) => match quoted(args) {
            Some("") => {
                s.bootstrap_uri = None;
                resp.actions.push(Action::SaveSettings);
                Final::Ok
            }
            Some(uri) if ServerUri::parse(uri).is_ok() => {
                s.bootstrap_uri = Some(uri.to_owned());
                resp.actions.push(Action::SaveSettings);
                Final::Ok
            }
            _ => Final::Cme(cme::INCORRECT_PARAMETERS),
        },
        ("LWM2MBS", Form::Read) => {
            let uri = s.bootstrap_uri.clone().unwrap_or_default();
            info(resp, &format!("+LWM2MBS: \"{uri}\""))
        }
        ("LWM2MBS", Form::Test) => info(resp, "+LWM2MBS: \"coap[s]://<host>[:<port>]\""),

        ("LWM2MBSPSK" | "LWM2MPSK", Form::Set(args)) => {
            let Some(credential) = credential(args) else {
                return Final::Cme(cme::INCORRECT_PARAMETERS);
            };
            if name == "LWM2MBSPSK" {
                s.bootstrap_psk = Some(credential);
            } else {
                s.server_psk = Some(credential);
            }
            resp.actions.push(Action::SaveSettings);
            Final::Ok
        }
        ("LWM2MBSPSK" | "LWM2MPSK", Form::Read) => {
            let c = if name == "LWM2MBSPSK" {
                &s.bootstrap_psk
            } else {
                &s.server_psk
            };
            let (identity, fingerprint) = c
                .as_ref()
                .map(|c| (c.identity.clone(), c.fingerprint()))
                .unwrap_or_default();
            info(resp, &format!("+{name}: \"{identity}\",\"{fingerprint}\""))
        }
        ("LWM2MBSPSK" | "LWM2MPSK", Form::Test) => {
            info(resp, &format!("+{name}: \"<identity>\",\"<key as hex>\""))
        }

        ("LWM2MBOOT", Form::Exec) => {
            if !state.radio_on || s.bootstrap_uri.is_none() {
                return Final::Cme(cme::NOT_ALLOWED);
            }
            s.enabled = true;
            resp.actions.push(Action::SaveSettings);
            resp.actions.push(Action::Bootstrap);
            Final::Ok
        }
        ("LWM2MBOOT", Form::Test) => Final::Ok,

        ("LWM2MACC", Form::Read) => {
            for a in &s.accounts {
                resp.info.push(format!("+LWM2MACC: {}", a.summary()));
            }
            Final::Ok
        }
        ("LWM2MACC", Form::Test) => Final::Ok,

        _ => Final::Cme(cme::NOT_SUPPORTED),
    }
}

/// `"<identity>","<key hex>"`.
fn credential(args: &str) -> Option<PskCredential> {
    let (identity, key) = args.trim().rsplit_once(',')?;
    PskCredential::from_hex(quoted(identity)?, quoted(key)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::modem::handle_line;
    use crate::nv::Lwm2mSettings;
    use crate::security::NvAccount;
    use lwm2m::bootstrap::ServerAccount;
    use proptest::prelude::*;

    const KEY: &str = "00112233445566778899aabbccddeeff";

    fn state() -> ModemState {
        let mut s = ModemState::boot(Lwm2mSettings::default(), Identity::derive(1, Some("SN1")));
        s.echo = true;
        s
    }

    fn run(s: &mut ModemState, line: &str) -> Vec<String> {
        handle_line(s, line).lines()
    }

    #[test]
    fn bootstrap_server_is_set_read_and_cleared() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+LWM2MBS?"), vec!["+LWM2MBS: \"\"", "OK"]);
        let r = handle_line(&mut s, "AT+LWM2MBS=\"coaps://127.0.0.1:5784\"");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings]);
        assert_eq!(
            run(&mut s, "AT+LWM2MBS?"),
            vec!["+LWM2MBS: \"coaps://127.0.0.1:5784\"", "OK"]
        );
        for bad in [
            "AT+LWM2MBS=coap://h",
            "AT+LWM2MBS=\"http://h\"",
            "AT+LWM2MBS=\"coaps://\"",
        ] {
            assert_eq!(run(&mut s, bad), vec!["+CME ERROR: 50"], "{bad}");
        }
        assert_eq!(run(&mut s, "AT+LWM2MBS=\"\""), vec!["OK"]);
        assert_eq!(s.settings.bootstrap_uri, None);
    }

    #[test]
    fn psk_is_stored_and_read_back_as_identity_and_fingerprint_only() {
        let mut s = state();
        let line = format!("AT+LWM2MBSPSK=\"urn:imei:1\",\"{KEY}\"");
        let r = handle_line(&mut s, &line);
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings]);
        let echo = r.echo.unwrap();
        assert_eq!(echo, "AT+LWM2MBSPSK=\"urn:imei:1\",\"***\"");
        let c = s.settings.bootstrap_psk.clone().unwrap();
        assert_eq!(c.psk().unwrap().key.expose(), hex::decode(KEY).unwrap());
        let read = run(&mut s, "AT+LWM2MBSPSK?");
        assert_eq!(
            read,
            vec![
                format!("+LWM2MBSPSK: \"urn:imei:1\",\"{}\"", c.fingerprint()),
                "OK".into()
            ]
        );
        assert!(
            !format!("{s:?}").contains(KEY),
            "modem state Debug hides the key"
        );
        assert_eq!(
            run(&mut s, &format!("AT+LWM2MPSK=\"dev\",\"{KEY}\"")),
            vec!["OK"]
        );
        assert_eq!(s.settings.server_psk.as_ref().unwrap().identity, "dev");
        for bad in [
            "AT+LWM2MBSPSK=\"id\"".to_owned(),
            "AT+LWM2MBSPSK=\"id\",\"abc\"".to_owned(),
            "AT+LWM2MBSPSK=\"id\",\"zz\"".to_owned(),
            format!("AT+LWM2MBSPSK=\"\",\"{KEY}\""),
            format!("AT+LWM2MBSPSK=id,\"{KEY}\""),
        ] {
            assert_eq!(run(&mut s, &bad), vec!["+CME ERROR: 50"], "{bad}");
        }
        assert_eq!(
            s.settings.bootstrap_psk,
            Some(c),
            "a refused set changes nothing"
        );
    }

    #[test]
    fn redaction_hides_the_key_of_every_credential_command_form() {
        assert_eq!(
            redact_line(&format!("at+lwm2mpsk=\"a,b\",\"{KEY}\"")),
            "at+lwm2mpsk=\"a,b\",\"***\""
        );
        assert_eq!(
            redact_line(&format!("AT+LWM2MBSPSK={KEY}")),
            "AT+LWM2MBSPSK=\"***\""
        );
        assert_eq!(redact_line("AT+LWM2MBSPSK?"), "AT+LWM2MBSPSK?");
        assert_eq!(redact_line("AT+CGMI"), "AT+CGMI");
    }

    #[test]
    fn boot_needs_a_bootstrap_server_and_the_radio_and_start_accepts_one() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+LWM2MBOOT"), vec!["+CME ERROR: 3"]);
        assert_eq!(run(&mut s, "AT+LWM2MSTART"), vec!["+CME ERROR: 3"]);
        run(&mut s, "AT+LWM2MBS=\"coap://127.0.0.1:5783\"");
        let r = handle_line(&mut s, "AT+LWM2MBOOT");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings, Action::Bootstrap]);
        assert!(s.settings.enabled);
        let r = handle_line(&mut s, "AT+LWM2MSTART");
        assert_eq!(r.actions, vec![Action::SaveSettings, Action::StartClient]);
        run(&mut s, "AT+CFUN=0");
        assert_eq!(run(&mut s, "AT+LWM2MBOOT"), vec!["+CME ERROR: 3"]);
        assert_eq!(run(&mut s, "AT+LWM2MBOOT=1"), vec!["+CME ERROR: 4"]);
    }

    #[test]
    fn accounts_are_listed_without_keys_and_a_direct_server_leaves_bootstrap_mode() {
        let mut s = state();
        run(&mut s, "AT+LWM2MBS=\"coap://127.0.0.1:5783\"");
        run(&mut s, &format!("AT+LWM2MBSPSK=\"id\",\"{KEY}\""));
        let a = ServerAccount::psk(
            3,
            "coaps://127.0.0.1:5784",
            b"dev".to_vec(),
            hex::decode(KEY).unwrap(),
        );
        let nv = NvAccount::from_account(&a).unwrap();
        let fp = nv.psk.as_ref().unwrap().fingerprint();
        s.settings.accounts = vec![nv];
        assert_eq!(
            run(&mut s, "AT+LWM2MACC?"),
            vec![
                format!("+LWM2MACC: 3,\"coaps://127.0.0.1:5784\",0,\"dev\",\"{fp}\""),
                "OK".into()
            ]
        );
        assert_eq!(
            run(&mut s, "AT+LWM2MSRV=\"coap://127.0.0.1:5683\""),
            vec!["OK"]
        );
        assert_eq!(s.settings.bootstrap_uri, None);
        assert_eq!(s.settings.bootstrap_psk, None);
        assert!(s.settings.accounts.is_empty());
        assert_eq!(run(&mut s, "AT+LWM2MACC?"), vec!["OK"]);
    }

    proptest! {
        #[test]
        fn credential_commands_never_panic_nor_echo_a_key(
            id in "[g-z ,]{0,20}", key in "[0-9a-f]{8,40}", noise in "\\PC{0,20}"
        ) {
            let mut s = state();
            let line = format!("AT+LWM2MBSPSK=\"{id}\",\"{key}\"{noise}");
            let r = handle_line(&mut s, &line);
            prop_assert!(r.result.is_some());
            let echo = r.echo.unwrap();
            prop_assert!(!echo.contains(&key), "{}", echo);
            let bare = redact_line(&format!("AT+LWM2MPSK={key},{noise}")).into_owned();
            prop_assert!(!bare.contains(&key), "{}", bare);
        }
    }
}
