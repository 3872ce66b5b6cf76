//! The virtual modem's command interpreter: a pure function of (modem state,
//! one command line) -> (response lines, actions for the meter to carry out).
//! No IO here, so every command, error and edge is unit-tested.
//!
//! Syntax follows ITU-T V.250 §5.3–§5.4 (basic `ATE0`, extended `AT+CMD`,
//! `?` read, `=?` test, `=<args>` set); the 3GPP commands follow TS 27.007
//! (+CGMI §5.1, +CGMM §5.2, +CGMR §5.3, +CGSN §5.4, +CFUN §8.2, +CSQ §8.5,
//! +CEREG §10.1.22); final results are V.250 `OK` / `ERROR` and TS 27.007
//! §9.2 `+CME ERROR: <n>` in numeric mode. The `+LWM2M...` commands are this
//! project's dialect (fixtures/modems/meterbench-virtual.yaml).

use crate::identity::{Identity, MANUFACTURER, MODEL, MODEM_REVISION};
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
}

impl ModemState {
    /// The state right after boot: echo on, radio on.
    pub fn boot(settings: Lwm2mSettings, identity: Identity) -> Self {
        ModemState {
            echo: true,
            radio_on: true,
            settings,
            identity,
            signal: Csq::UNKNOWN,
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
enum Form<'a> {
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
    let echo = state.echo.then(|| raw.to_owned());
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
            info(resp, &format!("+CCID: {}", state.identity.iccid))
        }
        ("CCID", Form::Test) => Final::Ok,

        ("CFUN", Form::Read) => info(resp, &format!("+CFUN: {}", u8::from(state.radio_on))),
        ("CFUN", Form::Test) => info(resp, "+CFUN: (0,1),(0)"),
        ("CFUN", Form::Set(args)) => cfun(state, args, resp),

        ("CEREG", Form::Read) => info(resp, &format!("+CEREG: 0,{}", u8::from(state.radio_on))),
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
                resp.actions.push(Action::SaveSettings);
                Final::Ok
            }
            _ => Final::Cme(cme::INCORRECT_PARAMETERS),
        },
        ("LWM2MSRV", Form::Read) => {
            let uri = state.settings.server_uri.clone().unwrap_or_default();
            info(resp, &format!("+LWM2MSRV: \"{uri}\""))
        }
        ("LWM2MSRV", Form::Test) => info(resp, "+LWM2MSRV: \"coap://<host>[:<port>]\""),

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
            if !state.radio_on || state.settings.server_uri.is_none() {
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

        // A known command in a form it does not have.
        (
            "CGMI" | "CGMM" | "CGMR" | "CGSN" | "CCID" | "CFUN" | "CEREG" | "CSQ" | "LWM2MSRV"
            | "LWM2MEP" | "LWM2MLT" | "LWM2MSTART" | "LWM2MSTOP",
            _,
        ) => Final::Cme(cme::NOT_SUPPORTED),
        _ => Final::Error,
    }
}

fn info(resp: &mut Response, line: &str) -> Final {
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

/// A V.250 string constant: `"..."` with no quote inside.
fn quoted(args: &str) -> Option<&str> {
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
            "AT+LWM2MSRV=\"coaps://127.0.0.1\"",
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
