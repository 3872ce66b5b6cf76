//! The dialect's firmware download settings (fixtures/modems/
//! meterbench-virtual.yaml), kept in NV with object 5's state:
//!
//! | command | meaning |
//! |---|---|
//! | `AT+MBFWSZX=<0-6>` / `?` | Block2 size exponent for CoAP pulls (RFC 7959 §2.2: 16·2^SZX bytes), default 6 |
//! | `AT+MBFWSLOT=<bytes>` / `?` | bytes one firmware slot holds (1024–16777216), default 262144 |
//! | `AT+MBFWTMO=<s>` / `?` | give a download up as Connection Lost after this many seconds without progress (0–3600; 0: the protocol's own limits) |
//!
//! Syntax as V.250 extended commands (set, read `?`, test `=?`); a bad
//! parameter is `+CME ERROR: 50`.

use super::FirmwareSettings;
use crate::modem::commands::cme;
use crate::modem::{Final, Response};

const MIN_SLOT: u64 = 1024;
const MAX_SLOT: u64 = 16 * 1024 * 1024;
const MAX_TIMEOUT_S: u64 = 3600;

/// Answers `line` if it is one of these commands; `None` leaves the line to
/// the modem's interpreter. The second value is the new settings, to be
/// written to NV before the answer goes out.
pub fn handle(
    settings: &FirmwareSettings,
    line: &str,
    echo: bool,
) -> Option<(Response, Option<FirmwareSettings>)> {
    let trimmed = line.trim();
    let body = trimmed
        .get(..2)
        .filter(|p| p.eq_ignore_ascii_case("AT"))
        .map(|_| &trimmed[2..])?;
    let name_end = body.find(['=', '?']).unwrap_or(body.len());
    let name = body[..name_end].to_ascii_uppercase();
    let form = &body[name_end..];
    let (what, min, max) = match name.as_str() {
        "+MBFWSZX" => ("MBFWSZX", 0, 6),
        "+MBFWSLOT" => ("MBFWSLOT", MIN_SLOT, MAX_SLOT),
        "+MBFWTMO" => ("MBFWTMO", 0, MAX_TIMEOUT_S),
        _ => return None,
    };
    let current = match what {
        "MBFWSZX" => u64::from(settings.szx),
        "MBFWSLOT" => settings.slot_size,
        _ => u64::from(settings.stall_timeout_s),
    };
    let mut resp = Response {
        echo: echo.then(|| line.to_owned()),
        info: Vec::new(),
        result: Some(Final::Ok),
        actions: Vec::new(),
    };
    let mut changed = None;
    match form {
        "?" => resp.info.push(format!("+{what}: {current}")),
        "=?" => resp.info.push(format!("+{what}: ({min}-{max})")),
        set if set.starts_with('=') => {
            let value = set[1..].trim();
            match value
                .parse::<u64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
            {
                Some(v) if value.bytes().all(|b| b.is_ascii_digit()) => {
                    let mut s = settings.clone();
                    match what {
                        "MBFWSZX" => s.szx = v as u8,
                        "MBFWSLOT" => s.slot_size = v,
                        _ => s.stall_timeout_s = v as u32,
                    }
                    changed = Some(s);
                }
                _ => resp.result = Some(Final::Cme(cme::INCORRECT_PARAMETERS)),
            }
        }
        _ => resp.result = Some(Final::Cme(cme::NOT_SUPPORTED)),
    }
    Some((resp, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut FirmwareSettings, line: &str) -> Vec<String> {
        let (r, changed) = handle(s, line, false).expect("a firmware command");
        if let Some(c) = changed {
            *s = c;
        }
        r.lines()
    }

    #[test]
    fn settings_are_set_read_and_tested() {
        let mut s = FirmwareSettings::default();
        assert_eq!(run(&mut s, "AT+MBFWSZX?"), vec!["+MBFWSZX: 6", "OK"]);
        assert_eq!(run(&mut s, "AT+MBFWSZX=2"), vec!["OK"]);
        assert_eq!(s.szx, 2);
        assert_eq!(run(&mut s, "at+mbfwszx?"), vec!["+MBFWSZX: 2", "OK"]);
        assert_eq!(run(&mut s, "AT+MBFWSZX=?"), vec!["+MBFWSZX: (0-6)", "OK"]);
        assert_eq!(run(&mut s, "AT+MBFWSLOT=70000"), vec!["OK"]);
        assert_eq!(s.slot_size, 70000);
        assert_eq!(run(&mut s, "AT+MBFWTMO=5"), vec!["OK"]);
        assert_eq!(run(&mut s, "AT+MBFWTMO?"), vec!["+MBFWTMO: 5", "OK"]);
    }

    #[test]
    fn bad_values_are_cme_50_and_other_lines_pass_through() {
        let mut s = FirmwareSettings::default();
        for bad in [
            "AT+MBFWSZX=7",
            "AT+MBFWSZX=",
            "AT+MBFWSZX=-1",
            "AT+MBFWSZX=+1",
            "AT+MBFWSLOT=10",
            "AT+MBFWTMO=x",
        ] {
            assert_eq!(run(&mut s, bad), vec!["+CME ERROR: 50"], "{bad}");
        }
        assert_eq!(s, FirmwareSettings::default());
        assert_eq!(run(&mut s, "AT+MBFWSZX"), vec!["+CME ERROR: 4"]);
        assert!(handle(&s, "AT+CGMI", false).is_none());
        assert!(handle(&s, "AT+MBFWSZXX?", false).is_none());
        assert!(handle(&s, "", false).is_none());
    }
}
