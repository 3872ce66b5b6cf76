//! The virtual modem's command interpreter: a pure function of (modem state,
//! one command line) -> (response lines, actions for the meter to carry out).
//! No IO here, so every command, error and edge is unit-tested.
//!
//! Syntax follows ITU-T V.250 §5.3–§5.4 (basic `ATE0`, extended `AT+CMD`,
//! `?` read, `=?` test, `=<args>` set); the 3GPP commands follow TS 27.007
//! (+CGMI §5.1, +CGMM §5.2, +CGMR §5.3, +CGSN §5.4, +CFUN §8.2, +CSQ §8.5,
//! +CEREG §10.1.22); final results are V.250 `OK` / `ERROR` and TS 27.007
//! §9.2 `+CME ERROR: <n>` in numeric mode. The `+LWM2M...` and `+MB...`
//! commands are this project's dialect (fixtures/modems/meterbench-virtual.yaml):
//! `+MBPROF` lists and enables eUICC profiles (as modems with an eUICC do, e.g.
//! a `+CCHO`-less profile switch command), `+MBNETFAIL` is the lab's switch to
//! make the network refuse a profile, `+MBCHAN`/`+MBBAND` the band configuration
//! (object 501), `+MBEID` the eUICC's EID.

use std::collections::BTreeSet;

use crate::band::{self, BandConfig};
use crate::euicc::{self, Profile};
use crate::identity::{Identity, MANUFACTURER, MODEL, MODEM_REVISION};
use crate::network::stat;
use crate::nv::Lwm2mSettings;
use crate::server_uri::ServerUri;

/// `+CME ERROR` codes used (3GPP TS 27.007 §9.2.1).
pub mod cme {
    /// Operation not allowed.
    pub const NOT_ALLOWED: u16 = 3;
    /// Operation not supported.
    pub const NOT_SUPPORTED: u16 = 4;
    /// Incorrect parameters.
    pub const INCORRECT_PARAMETERS: u16 = 50;
}

/// Longest endpoint name accepted by `AT+LWM2MEP`.
pub const MAX_ENDPOINT_LEN: usize = 128;

/// Received signal as `AT+CSQ` reports it (TS 27.007 §8.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csq {
    /// 0..=31, 99 unknown.
    pub rssi: u8,
    /// 0..=7, 99 unknown.
    pub ber: u8,
}

impl Csq {
    pub const UNKNOWN: Csq = Csq { rssi: 99, ber: 99 };
}

/// What the command interpreter knows and changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModemState {
    /// Command echo (`ATE`), on after every boot (V.250 §6.2.4 default 1).
    pub echo: bool,
    /// `AT+CFUN` 1 (full functionality) or 0 (minimum: radio off).
    pub radio_on: bool,
    /// LwM2M settings as held in NV.
    pub settings: Lwm2mSettings,
    pub identity: Identity,
    /// The current signal, kept up to date by the meter.
    pub signal: Csq,
    /// The eUICC's profiles (fixed) and which is enabled.
    pub profiles: Vec<Profile>,
    pub enabled_profile: usize,
    /// A profile switch is under way (a new one is refused until it ends).
    pub switching: bool,
    /// ICCIDs the network refuses (`AT+MBNETFAIL`), kept in NV.
    pub attach_fails: BTreeSet<String>,
    /// `+CEREG` stat, kept up to date by the meter's network model.
    pub cereg: u8,
    /// Band configuration, kept in NV.
    pub band: BandConfig,
    /// PSM and eDRX as `AT+CPSMS` / `AT+CEDRXS` set them (modem/psm.rs).
    pub power_saving: super::psm::PowerSaving,
}

impl ModemState {
    /// The state right after boot: echo on, radio on.
    pub fn boot(settings: Lwm2mSettings, identity: Identity) -> Self {
        ModemState {
            echo: true,
            radio_on: true,
            settings,
            profiles: euicc::profiles(&identity),
            identity,
            signal: Csq::UNKNOWN,
            enabled_profile: 0,
            switching: false,
            attach_fails: BTreeSet::new(),
            cereg: stat::REGISTERED_HOME,
            band: BandConfig::default(),
            power_saving: super::psm::PowerSaving::default(),
        }
    }
}

/// What the meter must do after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `AT+CFUN=1` turned the radio on: attach (URC `+CEREG: 1`), start the client if enabled.
    RadioOn,
    /// `AT+CFUN=0` turned the radio off: detach (URC `+CEREG: 0`), the client goes silent.
    RadioOff,
    /// The LwM2M settings changed; write them to NV.
    SaveSettings,
    /// `AT+LWM2MSTART`: (re)start the client with the current settings.
    StartClient,
    /// `AT+LWM2MSTOP`: de-register and stop the client.
    StopClient,
    /// `AT+LWM2MBOOT`: client-initiated bootstrap now (starting the client if needed).
    Bootstrap,
    /// `AT+MBPROF=<n>`: switch to this profile (index from 0): detach, enable, attach.
    SwitchProfile(usize),
    /// `AT+LWM2MSEND="<path>,<path>,..."`: the client Sends those paths'
    /// values to its server (LwM2M 1.1 Core §6.4.6), as a device's own
    /// application or shell would ask it to; nothing goes out while Send is
    /// muted (/1/x/23 true or absent) or the client is not registered.
    Send(Vec<lwm2m::Path>),
}

/// The final result code of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Ok,
    Error,
    Cme(u16),
}

impl Final {
    pub fn text(self) -> String {
        match self {
            Final::Ok => "OK".into(),
            Final::Error => "ERROR".into(),
            Final::Cme(n) => format!("+CME ERROR: {n}"),
        }
    }
}

/// The modem's answer to one input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The line as received, echoed before anything else (when echo is on).
    pub echo: Option<String>,
    /// Information response lines (`+CGMI: ...` style text), without framing.
    pub info: Vec<String>,
    /// `None` when the line was not a command (no `AT` prefix) and is ignored.
    pub result: Option<Final>,
    pub actions: Vec<Action>,
}

impl Response {
    /// The bytes the modem writes: the echo then each line framed `\r\n<line>\r\n`
    /// (V.250 §5.7.1, verbose format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(e) = &self.echo {
            out.extend_from_slice(e.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for l in &self.info {
            out.extend_from_slice(&frame(l));
        }
        if let Some(f) = self.result {
            out.extend_from_slice(&frame(&f.text()));
        }
        out
    }

    /// Every output line, the final result last (for tests and logs).
    pub fn lines(&self) -> Vec<String> {
        let mut v = self.info.clone();
        v.extend(self.result.map(Final::text));
        v
    }
}

/// Frames one response or URC line as `\r\n<line>\r\n`.
pub fn frame(line: &str) -> Vec<u8> {
    format!("\r\n{line}\r\n").into_bytes()
}

/// The syntactic form of an extended command (V.250 §5.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form<'a> {
    /// `AT+CMD`
    Exec,
    /// `AT+CMD?`
    Read,
    /// `AT+CMD=?`
    Test,
    /// `AT+CMD=<args>`
    Set(&'a str),
}

/// Interprets one input line (without its terminator).
pub fn handle_line(state: &mut ModemState, raw: &str) -> Response {
    // A key typed in a credential command is not echoed back.
    let echo = state
        .echo
        .then(|| super::security_commands::redact_line(raw).into_owned());
    let mut resp = Response {
        echo,
        info: Vec::new(),
        result: None,
        actions: Vec::new(),
    };
    let Some(body) = strip_at(raw) else {
        return resp;
    };
    let body = body.trim_end();
    let result = if let Some(ext) = body.strip_prefix('+') {
        extended(state, ext, &mut resp)
    } else {
        basic(state, body, &mut resp)
    };
    resp.result = Some(result);
    resp
}

/// Finds the `AT` prefix, skipping leading noise (line garbage after a
/// reconnect, stray control bytes); `None` if the line has no `AT`.
fn strip_at(raw: &str) -> Option<&str> {
    let bytes = raw.as_bytes();
    let pos = bytes
        .windows(2)
        .position(|w| w.eq_ignore_ascii_case(b"AT"))?;
    // Only noise (non-alphanumeric) may precede the prefix: "xAT" is not a command.
    if !raw[..pos].bytes().all(|b| !b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(&raw[pos + 2..])
}

fn basic(state: &mut ModemState, body: &str, resp: &mut Response) -> Final {
    match body.to_ascii_uppercase().as_str() {
        "" => Final::Ok,
        "E" | "E0" => {
            state.echo = false;
            Final::Ok
        }
        "E1" => {
            state.echo = true;
            Final::Ok
        }
        "I" | "I0" => {
            resp.info.push(MANUFACTURER.to_owned());
            resp.info.push(MODEL.to_owned());
            resp.info.push(format!("Revision: {MODEM_REVISION}"));
            Final::Ok
        }
        _ => Final::Error,
    }
}

fn extended(state: &mut ModemState, ext: &str, resp: &mut Response) -> Final {
    let name_end = ext.find(['=', '?']).unwrap_or(ext.len());
    let name = ext[..name_end].to_ascii_uppercase();
    let form = match &ext[name_end..] {
        "" => Form::Exec,
        "?" => Form::Read,
        "=?" => Form::Test,
        rest => match rest.strip_prefix('=') {
            Some(args) => Form::Set(args),
            None => return Final::Error,
        },
    };
    match (name.as_str(), form) {
        ("CGMI", Form::Exec) => info(resp, MANUFACTURER),
        ("CGMM", Form::Exec) => info(resp, MODEL),
        ("CGMR", Form::Exec) => info(resp, MODEM_REVISION),
        ("CGSN", Form::Exec) => info(resp, &state.identity.imei),
        ("CGMI" | "CGMM" | "CGMR" | "CGSN", Form::Test) => Final::Ok,
        ("CCID", Form::Exec | Form::Read) => {
            let iccid = state
                .profiles
                .get(state.enabled_profile)
                .map_or(state.identity.iccid.as_str(), |p| p.iccid.as_str());
            info(resp, &format!("+CCID: {iccid}"))
        }
        ("CCID", Form::Test) => Final::Ok,

        ("CFUN", Form::Read) => info(resp, &format!("+CFUN: {}", u8::from(state.radio_on))),
        ("CFUN", Form::Test) => info(resp, "+CFUN: (0,1),(0)"),
        ("CFUN", Form::Set(args)) => cfun(state, args, resp),

        ("CEREG", Form::Read) => {
            let stat = if state.radio_on {
                state.cereg
            } else {
                stat::NOT_REGISTERED
            };
            info(resp, &format!("+CEREG: 0,{stat}"))
        }
        ("CEREG", Form::Test) => info(resp, "+CEREG: (0)"),

        ("CSQ", Form::Exec) => {
            let s = if state.radio_on {
                state.signal
            } else {
                Csq::UNKNOWN
            };
            info(resp, &format!("+CSQ: {},{}", s.rssi, s.ber))
        }
        ("CSQ", Form::Test) => info(resp, "+CSQ: (0-31,99),(0-7,99)"),

        ("LWM2MSRV", Form::Set(args)) => match quoted(args).map(|u| (u, ServerUri::parse(u))) {
            Some((uri, Ok(_))) => {
                state.settings.server_uri = Some(uri.to_owned());
                // A directly configured server replaces bootstrap: the
                // Bootstrap-Server, its credential and what it provisioned go.
                state.settings.bootstrap_uri = None;
                state.settings.bootstrap_psk = None;
                state.settings.accounts.clear();
                state.settings.bootstrap_hold_off_s = None;
                resp.actions.push(Action::SaveSettings);
                Final::Ok
            }
            _ => Final::Cme(cme::INCORRECT_PARAMETERS),
        },
        ("LWM2MSRV", Form::Read) => {
            let uri = state.settings.server_uri.clone().unwrap_or_default();
            info(resp, &format!("+LWM2MSRV: \"{uri}\""))
        }
        ("LWM2MSRV", Form::Test) => info(resp, "+LWM2MSRV: \"coap[s]://<host>[:<port>]\""),

        ("LWM2MEP", Form::Set(args)) => match quoted(args) {
            Some(ep) if valid_endpoint(ep) => {
                state.settings.endpoint = Some(ep.to_owned());
                resp.actions.push(Action::SaveSettings);
                Final::Ok
            }
            _ => Final::Cme(cme::INCORRECT_PARAMETERS),
        },
        ("LWM2MEP", Form::Read) => {
            let ep = state
                .settings
                .endpoint
                .clone()
                .unwrap_or_else(|| state.identity.default_endpoint());
            info(resp, &format!("+LWM2MEP: \"{ep}\""))
        }
        ("LWM2MEP", Form::Test) => info(resp, &format!("+LWM2MEP: (1-{MAX_ENDPOINT_LEN})")),

        ("LWM2MLT", Form::Set(args)) => match decimal(args) {
            Some(n) if n >= 1 && n <= u64::from(u32::MAX) => {
                state.settings.lifetime_s = n as u32;
                resp.actions.push(Action::SaveSettings);
                Final::Ok
            }
            _ => Final::Cme(cme::INCORRECT_PARAMETERS),
        },
        ("LWM2MLT", Form::Read) => info(resp, &format!("+LWM2MLT: {}", state.settings.lifetime_s)),
        ("LWM2MLT", Form::Test) => info(resp, &format!("+LWM2MLT: (1-{})", u32::MAX)),

        ("LWM2MSTART", Form::Exec) => {
            let s = &state.settings;
            if !state.radio_on || (s.server_uri.is_none() && s.bootstrap_uri.is_none()) {
                return Final::Cme(cme::NOT_ALLOWED);
            }
            state.settings.enabled = true;
            resp.actions.push(Action::SaveSettings);
            resp.actions.push(Action::StartClient);
            Final::Ok
        }
        ("LWM2MSTOP", Form::Exec) => {
            state.settings.enabled = false;
            resp.actions.push(Action::SaveSettings);
            resp.actions.push(Action::StopClient);
            Final::Ok
        }
        ("LWM2MSTART" | "LWM2MSTOP", Form::Test) => Final::Ok,
        ("LWM2MSEND", Form::Set(args)) => {
            let paths: Option<Vec<lwm2m::Path>> = quoted(args)
                .and_then(|list| list.split(',').map(|p| p.trim().parse().ok()).collect());
            match paths {
                Some(paths) if !paths.is_empty() => {
                    resp.actions.push(Action::Send(paths));
                    Final::Ok
                }
                _ => Final::Cme(cme::INCORRECT_PARAMETERS),
            }
        }
        ("LWM2MSEND", Form::Test) => Final::Ok,

        ("MBPROF", Form::Read) => {
            for (i, p) in state.profiles.iter().enumerate() {
                resp.info.push(format!(
                    "+MBPROF: {},\"{}\",\"{}\",{}",
                    i + 1,
                    p.iccid,
                    p.operator,
                    u8::from(i == state.enabled_profile)
                ));
            }
            Final::Ok
        }
        ("MBPROF", Form::Test) => info(resp, &format!("+MBPROF: (1-{})", state.profiles.len())),
        ("MBPROF", Form::Set(args)) => match decimal(args).map(|n| n as usize) {
            Some(n) if (1..=state.profiles.len()).contains(&n) => {
                if !state.radio_on || state.switching {
                    return Final::Cme(cme::NOT_ALLOWED);
                }
                resp.actions.push(Action::SwitchProfile(n - 1));
                Final::Ok
            }
            _ => Final::Cme(cme::INCORRECT_PARAMETERS),
        },

        ("MBNETFAIL", Form::Read) => {
            for p in &state.profiles {
                let refused = state.attach_fails.contains(&p.iccid);
                resp.info
                    .push(format!("+MBNETFAIL: \"{}\",{}", p.iccid, u8::from(refused)));
            }
            Final::Ok
        }
        ("MBNETFAIL", Form::Test) => info(resp, "+MBNETFAIL: (<index>|\"<iccid>\"),(0,1)"),
        ("MBNETFAIL", Form::Set(args)) => {
            let Some((who, flag)) = args.split_once(',') else {
                return Final::Cme(cme::INCORRECT_PARAMETERS);
            };
            let (Some(i), Some(flag @ 0..=1)) =
                (euicc::find_profile(&state.profiles, who), decimal(flag))
            else {
                return Final::Cme(cme::INCORRECT_PARAMETERS);
            };
            let iccid = state.profiles[i].iccid.clone();
            if flag == 1 {
                state.attach_fails.insert(iccid);
            } else {
                state.attach_fails.remove(&iccid);
            }
            resp.actions.push(Action::SaveSettings);
            Final::Ok
        }

        ("MBEID", Form::Exec | Form::Read) => {
            info(resp, &format!("+MBEID: {}", euicc::eid(&state.identity)))
        }
        ("MBEID", Form::Test) => Final::Ok,

        ("MBBAND", Form::Read) => info(resp, &format!("+MBBAND: {}", state.band.mask())),
        ("MBBAND", Form::Test) => info(resp, &format!("+MBBAND: ({})", band::supported_mask())),

        ("MBCHAN", Form::Read) => info(
            resp,
            &format!(
                "+MBCHAN: {},\"{}\"",
                state.band.earfcn,
                state.band.channels_text()
            ),
        ),
        ("MBCHAN", Form::Test) => info(resp, "+MBCHAN: (0-65535),\"<earfcn>[,<earfcn>...]\""),
        ("MBCHAN", Form::Set(args)) => match parse_channels(args) {
            Some(config) if config.validate().is_ok() => {
                state.band = config;
                resp.actions.push(Action::SaveSettings);
                Final::Ok
            }
            _ => Final::Cme(cme::INCORRECT_PARAMETERS),
        },

        (n, form) if super::security_commands::NAMES.contains(&n) => {
            super::security_commands::extended(state, n, form, resp)
        }
        (n, form) if super::psm::NAMES.contains(&n) => super::psm::extended(state, n, form, resp),

        // A known command in a form it does not have.
        (
            "CGMI" | "CGMM" | "CGMR" | "CGSN" | "CCID" | "CFUN" | "CEREG" | "CSQ" | "LWM2MSRV"
            | "LWM2MEP" | "LWM2MLT" | "LWM2MSTART" | "LWM2MSTOP" | "LWM2MSEND" | "MBPROF"
            | "MBNETFAIL" | "MBEID" | "MBBAND" | "MBCHAN",
            _,
        ) => Final::Cme(cme::NOT_SUPPORTED),
        _ => Final::Error,
    }
}

pub(super) fn info(resp: &mut Response, line: &str) -> Final {
    resp.info.push(line.to_owned());
    Final::Ok
}

/// `AT+CFUN=<fun>[,<rst>]`: fun 0 or 1, rst (reset) only 0.
fn cfun(state: &mut ModemState, args: &str, resp: &mut Response) -> Final {
    let mut parts = args.split(',');
    let fun = parts.next().and_then(decimal);
    let rst = parts.next().map(decimal);
    if parts.next().is_some() || matches!(rst, Some(None) | Some(Some(1..))) {
        return Final::Cme(cme::INCORRECT_PARAMETERS);
    }
    match fun {
        Some(0) => {
            if state.radio_on {
                state.radio_on = false;
                resp.actions.push(Action::RadioOff);
            }
            Final::Ok
        }
        Some(1) => {
            if !state.radio_on {
                state.radio_on = true;
                resp.actions.push(Action::RadioOn);
            }
            Final::Ok
        }
        _ => Final::Cme(cme::INCORRECT_PARAMETERS),
    }
}

/// `AT+MBCHAN=<earfcn>[,"<c1>,<c2>,..."]`; without a list the prioritized
/// channels are the EARFCN alone.
fn parse_channels(args: &str) -> Option<BandConfig> {
    let (earfcn, list) = match args.split_once(',') {
        Some((e, l)) => (e, Some(quoted(l)?)),
        None => (args, None),
    };
    let earfcn = u16::try_from(decimal(earfcn)?).ok()?;
    let channels = match list {
        None | Some("") => vec![earfcn],
        Some(l) => l
            .split(',')
            .map(|c| u16::try_from(decimal(c)?).ok())
            .collect::<Option<Vec<u16>>>()?,
    };
    Some(BandConfig { earfcn, channels })
}

/// A V.250 string constant: `"..."` with no quote inside.
pub(super) fn quoted(args: &str) -> Option<&str> {
    let inner = args.trim().strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then_some(inner)
}

/// A decimal numeric constant of at most 10 digits.
fn decimal(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Endpoint names: 1..=128 printable ASCII characters, no quote or space.
fn valid_endpoint(ep: &str) -> bool {
    !ep.is_empty()
        && ep.len() <= MAX_ENDPOINT_LEN
        && ep.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> ModemState {
        let mut s = ModemState::boot(Lwm2mSettings::default(), Identity::derive(1, Some("SN1")));
        s.signal = Csq { rssi: 20, ber: 0 };
        s
    }

    fn run(s: &mut ModemState, line: &str) -> Vec<String> {
        handle_line(s, line).lines()
    }

    #[test]
    fn at_answers_ok_and_echoes_by_default() {
        let mut s = state();
        let r = handle_line(&mut s, "AT");
        assert_eq!(r.echo.as_deref(), Some("AT"));
        assert_eq!(r.to_bytes(), b"AT\r\n\r\nOK\r\n");
    }

    #[test]
    fn ate0_is_echoed_itself_then_turns_echo_off() {
        let mut s = state();
        let r = handle_line(&mut s, "ATE0");
        assert_eq!(r.echo.as_deref(), Some("ATE0"));
        assert_eq!(r.lines(), vec!["OK"]);
        assert!(!s.echo);
        assert_eq!(handle_line(&mut s, "AT").to_bytes(), b"\r\nOK\r\n");
        assert_eq!(run(&mut s, "ATE1"), vec!["OK"]);
        assert!(s.echo);
    }

    #[test]
    fn commands_are_case_insensitive() {
        let mut s = state();
        assert_eq!(run(&mut s, "at+cgmi"), vec!["meterbench", "OK"]);
        assert_eq!(run(&mut s, "At"), vec!["OK"]);
    }

    #[test]
    fn identification_commands() {
        let mut s = state();
        let imei = s.identity.imei.clone();
        let iccid = s.identity.iccid.clone();
        assert_eq!(
            run(&mut s, "ATI"),
            vec![
                "meterbench",
                MODEL,
                &format!("Revision: {MODEM_REVISION}"),
                "OK"
            ]
        );
        assert_eq!(run(&mut s, "AT+CGMI"), vec![MANUFACTURER, "OK"]);
        assert_eq!(run(&mut s, "AT+CGMM"), vec![MODEL, "OK"]);
        assert_eq!(run(&mut s, "AT+CGMR"), vec![MODEM_REVISION, "OK"]);
        assert_eq!(run(&mut s, "AT+CGSN"), vec![imei.as_str(), "OK"]);
        assert_eq!(
            run(&mut s, "AT+CCID"),
            vec![format!("+CCID: {iccid}"), "OK".into()]
        );
        assert_eq!(run(&mut s, "AT+CGMI=?"), vec!["OK"]);
    }

    #[test]
    fn radio_on_off_and_registration_status() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+CFUN?"), vec!["+CFUN: 1", "OK"]);
        assert_eq!(run(&mut s, "AT+CEREG?"), vec!["+CEREG: 0,1", "OK"]);
        let r = handle_line(&mut s, "AT+CFUN=0");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::RadioOff]);
        assert_eq!(run(&mut s, "AT+CFUN?"), vec!["+CFUN: 0", "OK"]);
        assert_eq!(run(&mut s, "AT+CEREG?"), vec!["+CEREG: 0,0", "OK"]);
        assert_eq!(run(&mut s, "AT+CSQ"), vec!["+CSQ: 99,99", "OK"]);
        // Already off: OK without a second action.
        assert!(handle_line(&mut s, "AT+CFUN=0").actions.is_empty());
        let r = handle_line(&mut s, "AT+CFUN=1,0");
        assert_eq!(r.actions, vec![Action::RadioOn]);
        assert_eq!(run(&mut s, "AT+CSQ"), vec!["+CSQ: 20,0", "OK"]);
    }

    /// `AT+LWM2MSEND` takes a quoted, comma-separated list of LwM2M paths
    /// and hands it to the client; anything else is refused with CME 50.
    #[test]
    fn lwm2m_send_takes_a_list_of_paths() {
        let mut s = state();
        let r = handle_line(&mut s, "AT+LWM2MSEND=\"/1/0/1,/3/0/11\"");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(
            r.actions,
            vec![Action::Send(vec![
                lwm2m::Path::resource(1, 0, 1),
                lwm2m::Path::resource(3, 0, 11)
            ])]
        );
        for bad in [
            "AT+LWM2MSEND=\"\"",
            "AT+LWM2MSEND=\"/1/x\"",
            "AT+LWM2MSEND=/3/0",
        ] {
            let r = handle_line(&mut s, bad);
            assert_eq!(r.lines(), vec!["+CME ERROR: 50"], "{bad}");
            assert!(r.actions.is_empty(), "{bad}");
        }
    }

    #[test]
    fn cfun_refuses_bad_parameters() {
        let mut s = state();
        for bad in [
            "AT+CFUN=4",
            "AT+CFUN=",
            "AT+CFUN=x",
            "AT+CFUN=1,1",
            "AT+CFUN=1,",
            "AT+CFUN=1,0,0",
            "AT+CFUN=-1",
        ] {
            assert_eq!(run(&mut s, bad), vec!["+CME ERROR: 50"], "{bad}");
        }
        assert_eq!(run(&mut s, "AT+CFUN"), vec!["+CME ERROR: 4"]);
        assert!(s.radio_on);
    }

    #[test]
    fn lwm2m_settings_set_and_query() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+LWM2MSRV?"), vec!["+LWM2MSRV: \"\"", "OK"]);
        let r = handle_line(&mut s, "AT+LWM2MSRV=\"coap://127.0.0.1:5683\"");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings]);
        assert_eq!(
            run(&mut s, "AT+LWM2MSRV?"),
            vec!["+LWM2MSRV: \"coap://127.0.0.1:5683\"", "OK"]
        );

        let default_ep = format!("+LWM2MEP: \"{}\"", s.identity.default_endpoint());
        assert_eq!(run(&mut s, "AT+LWM2MEP?"), vec![default_ep.as_str(), "OK"]);
        assert_eq!(run(&mut s, "AT+LWM2MEP=\"meter-7\""), vec!["OK"]);
        assert_eq!(
            run(&mut s, "AT+LWM2MEP?"),
            vec!["+LWM2MEP: \"meter-7\"", "OK"]
        );

        assert_eq!(run(&mut s, "AT+LWM2MLT?"), vec!["+LWM2MLT: 300", "OK"]);
        assert_eq!(run(&mut s, "AT+LWM2MLT=60"), vec!["OK"]);
        assert_eq!(s.settings.lifetime_s, 60);
        assert_eq!(run(&mut s, "AT+LWM2MLT?"), vec!["+LWM2MLT: 60", "OK"]);
    }

    #[test]
    fn lwm2m_settings_refuse_bad_parameters() {
        let mut s = state();
        for bad in [
            "AT+LWM2MSRV=coap://127.0.0.1",
            "AT+LWM2MSRV=\"coap://\"",
            "AT+LWM2MSRV=\"coap://h:70000\"",
            "AT+LWM2MSRV=\"a\"b\"",
            "AT+LWM2MEP=\"\"",
            "AT+LWM2MEP=\"has space\"",
            "AT+LWM2MEP=noquotes",
            "AT+LWM2MLT=0",
            "AT+LWM2MLT=abc",
            "AT+LWM2MLT=4294967296",
            "AT+LWM2MLT=",
        ] {
            let r = handle_line(&mut s, bad);
            assert_eq!(r.lines(), vec!["+CME ERROR: 50"], "{bad}");
            assert!(r.actions.is_empty(), "{bad}");
        }
        let long = format!("AT+LWM2MEP=\"{}\"", "e".repeat(MAX_ENDPOINT_LEN + 1));
        assert_eq!(run(&mut s, &long), vec!["+CME ERROR: 50"]);
        assert_eq!(s.settings, Lwm2mSettings::default());
    }

    #[test]
    fn start_needs_a_server_and_the_radio() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+LWM2MSTART"), vec!["+CME ERROR: 3"]);
        run(&mut s, "AT+LWM2MSRV=\"coap://127.0.0.1:5683\"");
        run(&mut s, "AT+CFUN=0");
        assert_eq!(run(&mut s, "AT+LWM2MSTART"), vec!["+CME ERROR: 3"]);
        assert!(!s.settings.enabled);
        run(&mut s, "AT+CFUN=1");
        let r = handle_line(&mut s, "AT+LWM2MSTART");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings, Action::StartClient]);
        assert!(s.settings.enabled);
        let r = handle_line(&mut s, "AT+LWM2MSTOP");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings, Action::StopClient]);
        assert!(!s.settings.enabled);
    }

    #[test]
    fn unknown_commands_are_error_and_wrong_forms_are_not_supported() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+FOO"), vec!["ERROR"]);
        assert_eq!(run(&mut s, "ATZ9"), vec!["ERROR"]);
        assert_eq!(run(&mut s, "AT+CGMI?"), vec!["+CME ERROR: 4"]);
        assert_eq!(run(&mut s, "AT+LWM2MSTART=1"), vec!["+CME ERROR: 4"]);
        assert_eq!(run(&mut s, "AT+CSQ!"), vec!["ERROR"]);
    }

    #[test]
    fn noise_before_at_is_skipped_and_lines_without_at_are_ignored() {
        let mut s = state();
        assert_eq!(run(&mut s, "\u{0}\u{1b}AT"), vec!["OK"]);
        assert_eq!(run(&mut s, "  AT+CGMI  "), vec!["meterbench", "OK"]);
        let r = handle_line(&mut s, "hello");
        assert_eq!(r.result, None);
        assert!(r.info.is_empty());
        assert_eq!(
            r.echo.as_deref(),
            Some("hello"),
            "the echo is of what was typed"
        );
        assert_eq!(handle_line(&mut s, "xAT").result, None);
    }

    #[test]
    fn profiles_are_listed_and_ccid_follows_the_enabled_one() {
        let mut s = state();
        let p = s.profiles.clone();
        assert_eq!(
            run(&mut s, "AT+MBPROF?"),
            vec![
                format!("+MBPROF: 1,\"{}\",\"meterbench-home\",1", p[0].iccid),
                format!("+MBPROF: 2,\"{}\",\"meterbench-roam\",0", p[1].iccid),
                "OK".into()
            ]
        );
        assert_eq!(run(&mut s, "AT+MBPROF=?"), vec!["+MBPROF: (1-2)", "OK"]);
        let r = handle_line(&mut s, "AT+MBPROF=2");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SwitchProfile(1)]);
        // The meter carries the switch out; once it has, CCID reads the new profile.
        s.enabled_profile = 1;
        assert_eq!(
            run(&mut s, "AT+CCID"),
            vec![format!("+CCID: {}", p[1].iccid), "OK".into()]
        );
        for bad in ["AT+MBPROF=0", "AT+MBPROF=3", "AT+MBPROF=", "AT+MBPROF=x"] {
            assert_eq!(run(&mut s, bad), vec!["+CME ERROR: 50"], "{bad}");
        }
        s.switching = true;
        assert_eq!(run(&mut s, "AT+MBPROF=1"), vec!["+CME ERROR: 3"]);
        s.switching = false;
        run(&mut s, "AT+CFUN=0");
        assert_eq!(run(&mut s, "AT+MBPROF=1"), vec!["+CME ERROR: 3"]);
    }

    #[test]
    fn cereg_reports_the_network_models_stat() {
        let mut s = state();
        s.cereg = stat::SEARCHING;
        assert_eq!(run(&mut s, "AT+CEREG?"), vec!["+CEREG: 0,2", "OK"]);
        run(&mut s, "AT+CFUN=0");
        assert_eq!(run(&mut s, "AT+CEREG?"), vec!["+CEREG: 0,0", "OK"]);
    }

    #[test]
    fn netfail_marks_a_profile_by_index_or_iccid_and_is_saved() {
        let mut s = state();
        let p = s.profiles.clone();
        let r = handle_line(&mut s, "AT+MBNETFAIL=2,1");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings]);
        assert!(s.attach_fails.contains(&p[1].iccid));
        assert_eq!(
            run(&mut s, "AT+MBNETFAIL?"),
            vec![
                format!("+MBNETFAIL: \"{}\",0", p[0].iccid),
                format!("+MBNETFAIL: \"{}\",1", p[1].iccid),
                "OK".into()
            ]
        );
        assert_eq!(
            run(&mut s, &format!("AT+MBNETFAIL=\"{}\",0", p[1].iccid)),
            vec!["OK"]
        );
        assert!(s.attach_fails.is_empty());
        for bad in [
            "AT+MBNETFAIL=3,1",
            "AT+MBNETFAIL=1,2",
            "AT+MBNETFAIL=1",
            "AT+MBNETFAIL=\"89\",1",
        ] {
            assert_eq!(run(&mut s, bad), vec!["+CME ERROR: 50"], "{bad}");
        }
    }

    #[test]
    fn band_configuration_over_at() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+MBBAND?"), vec!["+MBBAND: 524420", "OK"]);
        assert_eq!(
            run(&mut s, "AT+MBCHAN?"),
            vec!["+MBCHAN: 6300,\"6300,1575,3625\"", "OK"]
        );
        let r = handle_line(&mut s, "AT+MBCHAN=6200,\"6200,6400\"");
        assert_eq!(r.lines(), vec!["OK"]);
        assert_eq!(r.actions, vec![Action::SaveSettings]);
        assert_eq!(run(&mut s, "AT+MBBAND?"), vec!["+MBBAND: 524288", "OK"]);
        assert_eq!(run(&mut s, "AT+MBCHAN=1575"), vec!["OK"]);
        assert_eq!(s.band.channels, vec![1575]);
        for bad in [
            "AT+MBCHAN=2700",
            "AT+MBCHAN=70000",
            "AT+MBCHAN=6300,6300",
            "AT+MBCHAN=6300,\"6300,x\"",
        ] {
            assert_eq!(run(&mut s, bad), vec!["+CME ERROR: 50"], "{bad}");
        }
        assert_eq!(run(&mut s, "AT+MBBAND=4"), vec!["+CME ERROR: 4"]);
        assert_eq!(s.band.channels, vec![1575]);
        assert!(run(&mut s, "AT+MBEID")[0].starts_with("+MBEID: 8904"));
    }

    proptest! {
        #[test]
        fn any_line_gets_at_most_one_final_result_and_never_panics(line in "\\PC{0,80}") {
            let mut s = state();
            let r = handle_line(&mut s, &line);
            let bytes = r.to_bytes();
            if r.result.is_some() {
                prop_assert!(bytes.ends_with(b"\r\n"));
            }
        }

        #[test]
        fn at_prefixed_garbage_never_panics(rest in ".{0,80}") {
            let mut s = state();
            let r = handle_line(&mut s, &format!("AT{rest}"));
            prop_assert!(r.result.is_some());
        }
    }
}
