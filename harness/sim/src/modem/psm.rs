//! Power saving as a cellular modem offers it: PSM (`AT+CPSMS`, 3GPP TS
//! 27.007 §7.38) and eDRX (`AT+CEDRXS`, §7.40), with the timer encodings
//! of TS 24.008 the commands carry as bit strings:
//!
//! - Requested_Periodic-TAU (T3412 extended): one octet of the GPRS Timer 3
//!   IE (24.008 §10.5.7.4a, Table 10.5.163a): bits 8–6 the unit, bits 5–1
//!   the value. Units 000 10 min, 001 1 h, 010 10 h, 011 2 s, 100 30 s,
//!   101 1 min, 110 320 h, 111 deactivated.
//! - Requested_Active-Time (T3324): one octet of the GPRS Timer 2 IE
//!   (§10.5.7.3, Table 10.5.163): units 000 2 s, 001 1 min, 010 decihours
//!   (6 min), 111 deactivated; other units "shall be interpreted as
//!   multiples of 1 minute in this version of the protocol".
//! - Requested_eDRX_value: bits 4–1 of octet 3 of the Extended DRX
//!   parameters IE (§10.5.5.32, Table 10.5.5.32), E-UTRAN: 5.12 s × n for
//!   the low codes, doubling from 1010 (327.68 s) to 1111 (10485.76 s).
//!   The table's notes make it two tables, one per <AcT-type>
//!   ([`WB_S1_EDRX_CYCLES`], [`NB_S1_EDRX_CYCLES`]): some codes hold only
//!   in WB-S1 mode (LTE-M) or only in NB-S1 mode (NB-IoT), and the network
//!   reads them otherwise in the other mode ([`granted_edrx_value`]).
//!
//! - Paging Time Window: bits 8–5 of the same octet 3 (§10.5.5.32): in
//!   WB-S1 mode (LTE-M) 1.28 s × (n + 1), in NB-S1 mode (NB-IoT)
//!   2.56 s × (n + 1). The network provides it (`AT+CEDRXRDP`, 27.007
//!   §7.41, reads it back); the virtual network grants the requested
//!   eDRX value as the mode's table reads it, and the shortest window,
//!   [`NETWORK_PTW`].
//!
//! Vectors checked against the tables as modem vendors quote them (e.g.
//! Telit: T3412 "01000111" = 70 hours, T3324 "00100100" = 4 minutes;
//! Nordic nRF91 and u-blox SARA-R4 for the unit and eDRX tables; the
//! eDRX table's per-mode notes as the nRF91 AT Commands reference quotes
//! them under +CEDRXS and +CEDRXRDP).
//!
//! PSM is what makes a queue-mode LwM2M client (Core §6.5) sleep: after
//! each exchange the device stays reachable for T3324, then its radio is
//! off (mobile-terminated data is lost) until it next sends, at the latest
//! when the periodic TAU (T3412) is due. The meter (meter/sleep.rs) acts
//! on these settings; this module only parses, encodes and answers.
//!
//! The settings are the modem's own, kept in NV (`AT+CPSMS` and
//! `AT+CEDRXS` save them as they answer OK), so a power cycle keeps them as
//! a real modem's NVM does: a meter asked to sleep keeps sleeping after a
//! power cut, and a case need not set them again.

use std::fmt;
use std::time::Duration;

use super::commands::{cme, info, quoted, Final, Form, ModemState, Response};

/// The commands this module answers.
pub const NAMES: &[&str] = &["CPSMS", "CEDRXS", "CEDRXRDP"];

/// A timer given as a 24.008 GPRS timer octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Unit 111: the timer does not run.
    Deactivated,
    Running(Duration),
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timer::Deactivated => f.write_str("deactivated"),
            Timer::Running(d) => write!(f, "{} s", d.as_secs()),
        }
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;

/// GPRS Timer 3 units by bits 8–6 (24.008 Table 10.5.163a), in seconds.
const TIMER3_UNITS: [Option<u64>; 8] = [
    Some(10 * MINUTE),
    Some(HOUR),
    Some(10 * HOUR),
    Some(2),
    Some(30),
    Some(MINUTE),
    Some(320 * HOUR),
    None,
];

/// GPRS Timer 2 units by bits 8–6 (24.008 Table 10.5.163); 011–110 are
/// read as minutes (the table's "other values").
const TIMER2_UNITS: [Option<u64>; 8] = [
    Some(2),
    Some(MINUTE),
    Some(6 * MINUTE),
    Some(MINUTE),
    Some(MINUTE),
    Some(MINUTE),
    Some(MINUTE),
    None,
];

fn decode_with(octet: u8, units: &[Option<u64>; 8]) -> Timer {
    match units[usize::from(octet >> 5)] {
        None => Timer::Deactivated,
        Some(unit) => Timer::Running(Duration::from_secs(unit * u64::from(octet & 0x1f))),
    }
}

/// T3412 extended (Requested_Periodic-TAU) from its GPRS Timer 3 octet.
pub fn decode_timer3(octet: u8) -> Timer {
    decode_with(octet, &TIMER3_UNITS)
}

/// T3324 (Requested_Active-Time) from its GPRS Timer 2 octet.
pub fn decode_timer2(octet: u8) -> Timer {
    decode_with(octet, &TIMER2_UNITS)
}

/// The octet for `duration` in the given unit table: the finest unit that
/// represents it exactly with a value of at most 31 (the table's canonical
/// codes only: for Timer 2, 000/001/010). `None` when none does.
fn encode_with(timer: Timer, units: &[Option<u64>; 8], canonical: &[u8]) -> Option<u8> {
    let secs = match timer {
        Timer::Deactivated => return Some(0b111_00000),
        Timer::Running(d) if d.subsec_nanos() == 0 => d.as_secs(),
        Timer::Running(_) => return None,
    };
    let mut best: Option<(u64, u8)> = None;
    for &code in canonical {
        let Some(unit) = units[usize::from(code)] else {
            continue;
        };
        if secs % unit == 0 && secs / unit <= 31 && best.is_none_or(|(u, _)| unit < u) {
            best = Some((unit, (code << 5) | (secs / unit) as u8));
        }
    }
    best.map(|(_, octet)| octet)
}

/// The GPRS Timer 3 octet for a T3412 value.
pub fn encode_timer3(timer: Timer) -> Option<u8> {
    encode_with(timer, &TIMER3_UNITS, &[0, 1, 2, 3, 4, 5, 6])
}

/// The GPRS Timer 2 octet for a T3324 value.
pub fn encode_timer2(timer: Timer) -> Option<u8> {
    encode_with(timer, &TIMER2_UNITS, &[0, 1, 2])
}

/// An octet as the 8-character bit string 27.007 uses (`"00100001"`).
pub fn bits8(octet: u8) -> String {
    format!("{octet:08b}")
}

/// A 27.007 bit string (quoted or not) of exactly `width` binary digits.
fn parse_bits(text: &str, width: usize) -> Option<u8> {
    let t = text.trim();
    let t = quoted(t).unwrap_or(t);
    if t.len() != width || !t.bytes().all(|b| b == b'0' || b == b'1') {
        return None;
    }
    u8::from_str_radix(t, 2).ok()
}

/// <AcT-type> 4 of `AT+CEDRXS` (27.007 §7.40): E-UTRAN, WB-S1 mode (LTE-M).
pub const ACT_WB_S1: u8 = 4;
/// <AcT-type> 5 of `AT+CEDRXS` (27.007 §7.40): E-UTRAN, NB-S1 mode (NB-IoT).
pub const ACT_NB_S1: u8 = 5;

/// E-UTRAN eDRX cycle lengths in milliseconds by 4-bit eDRX value, as
/// 24.008 Table 10.5.5.32 lists them before its notes: 0000 5.12 s, 0001
/// 10.24 s, then 20.48 s × n for 0010–1001 (n = 1..8), and from 1010
/// (327.68 s) each code doubles the last, up to 1111 (10485.76 s).
const EDRX_CYCLE_MS: [u64; 16] = [
    5_120, 10_240, 20_480, 40_960, 61_440, 81_920, 102_400, 122_880, 143_360, 163_840, 327_680,
    655_360, 1_310_720, 2_621_440, 5_242_880, 10_485_760,
];

/// The eDRX value the network works with when the device requests `value`
/// on `act` (24.008 Table 10.5.5.32, notes to the E-UTRAN eDRX cycle
/// length): `None` when the request counts as no eDRX at all.
///
/// - 0000 and 0001 (5.12 s, 10.24 s) "are applicable only in WB-S1 mode.
///   If received in NB-S1 mode it is interpreted as if the Extended DRX
///   parameters IE were not included in the message": no eDRX on NB-IoT.
/// - 0100, 0110, 0111, 1000 (61.44 s, 102.4 s, 122.88 s, 143.36 s) "are
///   applicable only in WB-S1 mode. If received in NB-S1 mode it is
///   interpreted as 0010" (20.48 s).
/// - 1110 and 1111 (5242.88 s, 10485.76 s) "are applicable only in NB-S1
///   mode. If received in WB-S1 mode it is interpreted as 1101" (2621.44 s).
pub const fn granted_edrx_value(act: u8, value: u8) -> Option<u8> {
    let value = value & 0x0f;
    match (act, value) {
        (ACT_NB_S1, 0b0000 | 0b0001) => None,
        (ACT_NB_S1, 0b0100 | 0b0110 | 0b0111 | 0b1000) => Some(0b0010),
        (ACT_WB_S1, 0b1110 | 0b1111) => Some(0b1101),
        _ => Some(value),
    }
}

/// The WB-S1 (LTE-M, <AcT-type> 4) eDRX cycle by requested value: Table
/// 10.5.5.32 with its notes applied, so 1110 and 1111 are 2621.44 s.
pub const WB_S1_EDRX_CYCLES: [Option<u64>; 16] = cycles_in(ACT_WB_S1);

/// The NB-S1 (NB-IoT, <AcT-type> 5) eDRX cycle by requested value: Table
/// 10.5.5.32 with its notes applied, so 0000 and 0001 give no eDRX, and
/// 0100, 0110, 0111, 1000 are 20.48 s.
pub const NB_S1_EDRX_CYCLES: [Option<u64>; 16] = cycles_in(ACT_NB_S1);

/// One mode's table of cycles, in milliseconds, by requested value.
const fn cycles_in(act: u8) -> [Option<u64>; 16] {
    let mut table = [None; 16];
    let mut value: u8 = 0;
    while value < 16 {
        let granted = granted_edrx_value(act, value);
        table[value as usize] = match granted {
            Some(g) => Some(EDRX_CYCLE_MS[g as usize]),
            None => None,
        };
        value += 1;
    }
    table
}

/// The eDRX cycle a request of `value` on `act` (27.007 <AcT-type>: 4
/// WB-S1, 5 NB-S1) gives, from the mode's table; `None` when the network
/// grants no eDRX for it (NB-S1 0000 and 0001).
pub fn edrx_cycle(act: u8, value: u8) -> Option<Duration> {
    let table = if act == ACT_NB_S1 {
        &NB_S1_EDRX_CYCLES
    } else {
        &WB_S1_EDRX_CYCLES
    };
    table[usize::from(value & 0x0f)].map(Duration::from_millis)
}

/// The Paging Time Window for its 4-bit code (24.008 Table 10.5.5.32,
/// octet 3 bits 8–5) on `act` (27.007 <AcT-type>): 4 WB-S1 (LTE-M)
/// 1.28 s × (n + 1), 5 NB-S1 (NB-IoT) 2.56 s × (n + 1).
pub fn paging_time_window(act: u8, code: u8) -> Duration {
    let step_ms = if act == ACT_NB_S1 { 2_560 } else { 1_280 };
    Duration::from_millis(step_ms * (u64::from(code & 0x0f) + 1))
}

/// The Paging Time Window the virtual network grants (code 0000: 1.28 s
/// on LTE-M, 2.56 s on NB-IoT), as networks choose the window themselves.
pub const NETWORK_PTW: u8 = 0b0000;

/// The access technologies `AT+CEDRXS` accepts: 4 E-UTRAN (WB-S1, LTE-M),
/// 5 E-UTRAN (NB-S1, NB-IoT) (27.007 §7.40 <AcT-type>).
pub const EDRX_ACT_TYPES: [u8; 2] = [ACT_WB_S1, ACT_NB_S1];

/// What `AT+CPSMS` and `AT+CEDRXS` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PowerSaving {
    /// `AT+CPSMS` <mode> 1.
    pub psm: bool,
    /// Requested_Periodic-TAU octet; `None` until given (the manufacturer default applies).
    pub periodic_tau: Option<u8>,
    /// Requested_Active-Time octet.
    pub active_time: Option<u8>,
    /// eDRX on, for which AcT-type, with which value (4 bits).
    pub edrx: Option<(u8, u8)>,
    /// `AT+CEDRXS` mode 2: report changes with `+CEDRXP`.
    pub edrx_urc: bool,
}

/// The modem's defaults when a command leaves a timer out ("manufacturer
/// specific default", 27.007 §7.38): T3412 1 h, T3324 1 min — the values
/// networks commonly grant.
pub const DEFAULT_PERIODIC_TAU: u8 = 0b001_00001;
pub const DEFAULT_ACTIVE_TIME: u8 = 0b001_00001;

impl PowerSaving {
    /// T3412 in force while PSM is on.
    pub fn periodic_tau(&self) -> Timer {
        decode_timer3(self.periodic_tau.unwrap_or(DEFAULT_PERIODIC_TAU))
    }
    /// T3324 in force while PSM is on.
    pub fn active_time(&self) -> Timer {
        decode_timer2(self.active_time.unwrap_or(DEFAULT_ACTIVE_TIME))
    }
    /// The device sleeps between exchanges: PSM on with an Active Time
    /// that runs (T3324 deactivated means PSM is not entered, 24.301 §5.3.11).
    pub fn sleeps(&self) -> bool {
        self.psm && matches!(self.active_time(), Timer::Running(_))
    }
    /// The eDRX cycle in force: eDRX on, with a value the network grants
    /// on its access technology ([`edrx_cycle`]).
    pub fn edrx_cycle(&self) -> Option<Duration> {
        self.edrx.and_then(|(act, v)| edrx_cycle(act, v))
    }
    /// The eDRX cycle and the Paging Time Window at its start, if eDRX is
    /// in force. A window as long as the cycle or longer leaves no sleep.
    pub fn edrx_schedule(&self) -> Option<(Duration, Duration)> {
        let (act, v) = self.edrx?;
        let (cycle, ptw) = (edrx_cycle(act, v)?, paging_time_window(act, NETWORK_PTW));
        (ptw < cycle).then_some((cycle, ptw))
    }
}

/// `AT+CPSMS` and `AT+CEDRXS` in their set, read and test forms.
pub(super) fn extended(
    state: &mut ModemState,
    name: &str,
    form: Form<'_>,
    resp: &mut Response,
) -> Final {
    match (name, form) {
        ("CPSMS", Form::Set(args)) => saved(resp, cpsms(&mut state.power_saving, args)),
        ("CPSMS", Form::Read) => {
            let p = &state.power_saving;
            let show = |o: Option<u8>| o.map(|o| format!("\"{}\"", bits8(o))).unwrap_or_default();
            info(
                resp,
                &format!(
                    "+CPSMS: {},,,{},{}",
                    u8::from(p.psm),
                    show(p.periodic_tau),
                    show(p.active_time)
                ),
            )
        }
        ("CPSMS", Form::Test) => info(
            resp,
            "+CPSMS: (0,1),,,(\"00000000\"-\"11111111\"),(\"00000000\"-\"11111111\")",
        ),
        ("CEDRXS", Form::Set(args)) => saved(resp, cedrxs(&mut state.power_saving, args)),
        ("CEDRXS", Form::Read) => {
            // 27.007 §7.40: with eDRX off for every AcT, the read form
            // lists nothing; some modems print an AcT-type 0 line, we don't.
            if let Some((act, value)) = state.power_saving.edrx {
                resp.info.push(format!("+CEDRXS: {act},\"{value:04b}\""));
            }
            Final::Ok
        }
        ("CEDRXS", Form::Test) => info(resp, "+CEDRXS: (0-3),(4,5),(\"0000\"-\"1111\")"),
        // 27.007 §7.41: +CEDRXRDP: <AcT-type>[,<Requested_eDRX_value>
        // [,<NW-provided_eDRX_value>[,<Paging_time_window>]]]; AcT-type 0
        // when eDRX is not in use.
        // The network provides the value as it reads the request on the
        // AcT (Table 10.5.5.32's notes); one it reads as no eDRX leaves the
        // cell not using eDRX, which is AcT-type 0.
        ("CEDRXRDP", Form::Exec) => match state.power_saving.edrx {
            Some((act, value)) => match granted_edrx_value(act, value) {
                Some(granted) => info(
                    resp,
                    &format!(
                        "+CEDRXRDP: {act},\"{value:04b}\",\"{granted:04b}\",\"{NETWORK_PTW:04b}\""
                    ),
                ),
                None => info(resp, "+CEDRXRDP: 0"),
            },
            None => info(resp, "+CEDRXRDP: 0"),
        },
        _ => Final::Cme(cme::NOT_SUPPORTED),
    }
}

/// A setting accepted is saved to NV before the OK goes out.
fn saved(resp: &mut Response, result: Final) -> Final {
    if result == Final::Ok {
        resp.actions.push(super::commands::Action::SaveSettings);
    }
    result
}

/// `AT+CPSMS=[<mode>[,<RAU>[,<READY>[,<TAU>[,<Active-Time>]]]]]`: RAU and
/// READY (GERAN/UTRAN) are accepted and ignored; `AT+CPSMS=` alone turns
/// PSM off and drops the requested timers (27.007 §7.38 "special form").
fn cpsms(p: &mut PowerSaving, args: &str) -> Final {
    if args.trim().is_empty() {
        *p = PowerSaving {
            edrx: p.edrx,
            edrx_urc: p.edrx_urc,
            ..PowerSaving::default()
        };
        return Final::Ok;
    }
    let fields: Vec<&str> = args.split(',').collect();
    if fields.len() > 5 {
        return Final::Cme(cme::INCORRECT_PARAMETERS);
    }
    let mode = match fields[0].trim() {
        "0" => false,
        "1" => true,
        _ => return Final::Cme(cme::INCORRECT_PARAMETERS),
    };
    let timer = |i: usize, check: fn(u8) -> bool| -> Result<Option<u8>, Final> {
        match fields.get(i).map(|f| f.trim()).filter(|f| !f.is_empty()) {
            None => Ok(None),
            Some(f) => parse_bits(f, 8)
                .filter(|o| check(*o))
                .map(Some)
                .ok_or(Final::Cme(cme::INCORRECT_PARAMETERS)),
        }
    };
    let any = |_: u8| true;
    for i in [1, 2] {
        if let Err(e) = timer(i, any) {
            return e;
        }
    }
    let (tau, active) = match (timer(3, any), timer(4, any)) {
        (Ok(t), Ok(a)) => (t, a),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    p.psm = mode;
    if tau.is_some() {
        p.periodic_tau = tau;
    }
    if active.is_some() {
        p.active_time = active;
    }
    Final::Ok
}

/// `AT+CEDRXS=[<mode>,[<AcT-type>[,<Requested_eDRX_value>]]]` (27.007
/// §7.40): mode 0 off, 1 on, 2 on with `+CEDRXP`, 3 off and forgotten.
fn cedrxs(p: &mut PowerSaving, args: &str) -> Final {
    let fields: Vec<&str> = args.split(',').map(str::trim).collect();
    if fields.len() > 3 {
        return Final::Cme(cme::INCORRECT_PARAMETERS);
    }
    let mode = fields[0];
    let act = fields
        .get(1)
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<u8>());
    let act = match act {
        None => None,
        Some(Ok(a)) if EDRX_ACT_TYPES.contains(&a) => Some(a),
        Some(_) => return Final::Cme(cme::INCORRECT_PARAMETERS),
    };
    let value = match fields.get(2).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match parse_bits(v, 4) {
            Some(v) => Some(v),
            None => return Final::Cme(cme::INCORRECT_PARAMETERS),
        },
    };
    match mode {
        // 3 also resets to the defaults, which here are "off".
        "" | "0" | "3" => {
            p.edrx = None;
            p.edrx_urc = false;
        }
        "1" | "2" => {
            let Some(act) = act else {
                return Final::Cme(cme::INCORRECT_PARAMETERS);
            };
            // Without a value the modem's default: 81.92 s ("0101").
            p.edrx = Some((act, value.unwrap_or(0b0101)));
            p.edrx_urc = mode == "2";
        }
        _ => return Final::Cme(cme::INCORRECT_PARAMETERS),
    }
    Final::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Timer {
        Timer::Running(Duration::from_secs(s))
    }

    #[test]
    fn gprs_timer_3_vectors_follow_table_10_5_163a() {
        // 24.008 Table 10.5.163a, bits 8-6 unit, 5-1 value.
        assert_eq!(decode_timer3(0b001_00001), secs(3600)); // "00100001": 1 x 1 h
        assert_eq!(decode_timer3(0b010_00111), secs(70 * 3600)); // "01000111": 70 h (Telit's example)
        assert_eq!(decode_timer3(0b000_00011), secs(30 * 60)); // 3 x 10 min
        assert_eq!(decode_timer3(0b011_00101), secs(10)); // 5 x 2 s
        assert_eq!(decode_timer3(0b100_00010), secs(60)); // 2 x 30 s
        assert_eq!(decode_timer3(0b101_01111), secs(15 * 60)); // "10101111": 15 x 1 min (Nordic's example)
        assert_eq!(decode_timer3(0b110_00001), secs(320 * 3600)); // 320 h
        assert_eq!(decode_timer3(0b111_00000), Timer::Deactivated);
        assert_eq!(decode_timer3(0), secs(0));
    }

    #[test]
    fn gprs_timer_2_vectors_follow_table_10_5_163() {
        assert_eq!(decode_timer2(0b000_00001), secs(2)); // "00000001": 1 x 2 s
        assert_eq!(decode_timer2(0b001_00100), secs(4 * 60)); // "00100100": 4 min (Telit's example)
        assert_eq!(decode_timer2(0b010_00011), secs(18 * 60)); // 3 decihours
        assert_eq!(decode_timer2(0b111_11111), Timer::Deactivated);
        // "Other values shall be interpreted as multiples of 1 minute".
        assert_eq!(decode_timer2(0b011_00010), secs(120));
    }

    #[test]
    fn encoding_picks_the_finest_unit_and_refuses_what_no_unit_holds() {
        // 1 h is 6 x 10 min ("00000110") or 1 x 1 h ("00100001"): the finer unit wins.
        assert_eq!(
            encode_timer3(secs(3600)).map(bits8).as_deref(),
            Some("00000110")
        );
        assert_eq!(encode_timer3(secs(10)), Some(0b011_00101));
        assert_eq!(encode_timer3(secs(60)), Some(0b011_11110)); // 30 x 2 s, finer than 2 x 30 s
        assert_eq!(encode_timer3(secs(70 * 3600)), Some(0b010_00111));
        assert_eq!(encode_timer3(secs(7)), None); // odd seconds: no unit
        assert_eq!(
            encode_timer2(secs(4 * 60)).map(bits8).as_deref(),
            Some("00100100")
        );
        assert_eq!(encode_timer2(secs(2)), Some(0b000_00001));
        assert_eq!(encode_timer2(Timer::Deactivated), Some(0b111_00000));
    }

    /// 24.008 Table 10.5.5.32, E-UTRAN eDRX cycle length duration, every
    /// code in WB-S1 mode (AcT-type 4): the table's values, with 1110 and
    /// 1111 (NB-S1 only) read as 1101, 2621.44 s.
    #[test]
    fn wb_s1_edrx_cycles_follow_table_10_5_5_32() {
        assert_eq!(
            WB_S1_EDRX_CYCLES,
            [
                Some(5_120),     // 0000 5,12 s
                Some(10_240),    // 0001 10,24 s
                Some(20_480),    // 0010 20,48 s
                Some(40_960),    // 0011 40,96 s
                Some(61_440),    // 0100 61,44 s
                Some(81_920),    // 0101 81,92 s
                Some(102_400),   // 0110 102,4 s
                Some(122_880),   // 0111 122,88 s
                Some(143_360),   // 1000 143,36 s
                Some(163_840),   // 1001 163,84 s
                Some(327_680),   // 1010 327,68 s
                Some(655_360),   // 1011 655,36 s
                Some(1_310_720), // 1100 1310,72 s
                Some(2_621_440), // 1101 2621,44 s
                Some(2_621_440), // 1110: NB-S1 only, read as 1101
                Some(2_621_440), // 1111: NB-S1 only, read as 1101
            ]
        );
        assert_eq!(edrx_cycle(4, 0b0000), Some(Duration::from_millis(5_120)));
        assert_eq!(
            edrx_cycle(4, 0b1111),
            Some(Duration::from_millis(2_621_440))
        );
    }

    /// The same table in NB-S1 mode (AcT-type 5): 0000 and 0001 (WB-S1
    /// only) are no eDRX request at all, 0100, 0110, 0111 and 1000 (WB-S1
    /// only) are read as 0010, 20.48 s; 1110 and 1111 hold.
    #[test]
    fn nb_s1_edrx_cycles_follow_table_10_5_5_32() {
        assert_eq!(
            NB_S1_EDRX_CYCLES,
            [
                None,             // 0000: WB-S1 only, as if no eDRX IE
                None,             // 0001: WB-S1 only, as if no eDRX IE
                Some(20_480),     // 0010 20,48 s
                Some(40_960),     // 0011 40,96 s
                Some(20_480),     // 0100: WB-S1 only, read as 0010
                Some(81_920),     // 0101 81,92 s
                Some(20_480),     // 0110: WB-S1 only, read as 0010
                Some(20_480),     // 0111: WB-S1 only, read as 0010
                Some(20_480),     // 1000: WB-S1 only, read as 0010
                Some(163_840),    // 1001 163,84 s
                Some(327_680),    // 1010 327,68 s
                Some(655_360),    // 1011 655,36 s
                Some(1_310_720),  // 1100 1310,72 s
                Some(2_621_440),  // 1101 2621,44 s
                Some(5_242_880),  // 1110 5242,88 s
                Some(10_485_760), // 1111 10485,76 s
            ]
        );
        assert_eq!(edrx_cycle(5, 0b0001), None);
        assert_eq!(
            edrx_cycle(5, 0b1111),
            Some(Duration::from_millis(10_485_760))
        );
    }

    /// AT+CEDRXRDP (27.007 §7.41) reports the value the network provides:
    /// the request as the AcT's table reads it; a request NB-S1 reads as
    /// no eDRX leaves the cell not using eDRX (AcT-type 0), and no
    /// schedule to sleep by.
    #[test]
    fn the_network_provides_the_value_as_the_modes_table_reads_it() {
        let mut s = state();
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,5,"0110""#), ["OK"]);
        assert_eq!(
            run(&mut s, "AT+CEDRXRDP"),
            [r#"+CEDRXRDP: 5,"0110","0010","0000""#, "OK"]
        );
        assert_eq!(
            s.power_saving.edrx_schedule(),
            Some((Duration::from_millis(20_480), Duration::from_millis(2_560)))
        );
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,4,"1110""#), ["OK"]);
        assert_eq!(
            run(&mut s, "AT+CEDRXRDP"),
            [r#"+CEDRXRDP: 4,"1110","1101","0000""#, "OK"]
        );
        assert_eq!(
            s.power_saving.edrx_cycle(),
            Some(Duration::from_millis(2_621_440))
        );
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,5,"0000""#), ["OK"]);
        // What was asked for is still what `AT+CEDRXS?` reads back.
        assert_eq!(run(&mut s, "AT+CEDRXS?"), [r#"+CEDRXS: 5,"0000""#, "OK"]);
        assert_eq!(run(&mut s, "AT+CEDRXRDP"), ["+CEDRXRDP: 0", "OK"]);
        assert_eq!(s.power_saving.edrx_cycle(), None);
        assert_eq!(s.power_saving.edrx_schedule(), None);
    }

    /// 24.008 Table 10.5.5.32, Paging Time Window (octet 3 bits 8–5):
    /// WB-S1 0000 1.28 s, 0011 5.12 s, 1111 20.48 s; NB-S1 0000 2.56 s,
    /// 0011 10.24 s, 1111 40.96 s.
    #[test]
    fn paging_time_windows_follow_table_10_5_5_32() {
        assert_eq!(paging_time_window(4, 0b0000), Duration::from_millis(1_280));
        assert_eq!(paging_time_window(4, 0b0011), Duration::from_millis(5_120));
        assert_eq!(paging_time_window(4, 0b1111), Duration::from_millis(20_480));
        assert_eq!(paging_time_window(5, 0b0000), Duration::from_millis(2_560));
        assert_eq!(paging_time_window(5, 0b0011), Duration::from_millis(10_240));
        assert_eq!(paging_time_window(5, 0b1111), Duration::from_millis(40_960));
    }

    /// AT+CEDRXRDP (27.007 §7.41) reports the granted value and window;
    /// the schedule the meter sleeps by is that cycle with that window.
    #[test]
    fn cedrxrdp_reports_the_granted_value_and_paging_window() {
        let mut s = state();
        assert_eq!(run(&mut s, "AT+CEDRXRDP"), ["+CEDRXRDP: 0", "OK"]);
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,4,"0000""#), ["OK"]);
        assert_eq!(
            run(&mut s, "AT+CEDRXRDP"),
            [r#"+CEDRXRDP: 4,"0000","0000","0000""#, "OK"]
        );
        assert_eq!(
            s.power_saving.edrx_schedule(),
            Some((Duration::from_millis(5_120), Duration::from_millis(1_280)))
        );
        // NB-IoT, 20.48 s cycle: a 2.56 s window.
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,5,"0010""#), ["OK"]);
        assert_eq!(
            s.power_saving.edrx_schedule(),
            Some((Duration::from_millis(20_480), Duration::from_millis(2_560)))
        );
    }

    /// A setting accepted is saved to NV before the OK; one refused is not.
    #[test]
    fn accepted_settings_are_saved_refused_ones_not() {
        use super::super::commands::Action;
        let mut s = state();
        let r = super::super::handle_line(&mut s, r#"AT+CPSMS=1,,,"01100101","00000001""#);
        assert_eq!(r.actions, vec![Action::SaveSettings]);
        let r = super::super::handle_line(&mut s, r#"AT+CEDRXS=1,4,"0000""#);
        assert_eq!(r.actions, vec![Action::SaveSettings]);
        let r = super::super::handle_line(&mut s, r#"AT+CPSMS=1,,,"011001""#);
        assert!(r.actions.is_empty());
        assert!(super::super::handle_line(&mut s, "AT+CPSMS?")
            .actions
            .is_empty());
    }

    fn state() -> ModemState {
        ModemState::boot(
            crate::nv::Lwm2mSettings::default(),
            crate::identity::Identity::derive(1, Some("SN1")),
        )
    }

    fn run(s: &mut ModemState, line: &str) -> Vec<String> {
        super::super::handle_line(s, line).lines()
    }

    #[test]
    fn cpsms_sets_the_timers_and_reads_them_back_as_27_007_prints_them() {
        // 27.007 §7.38: +CPSMS: <mode>,[<RAU>],[<READY>],[<TAU>],[<Active-Time>].
        let mut s = state();
        assert_eq!(run(&mut s, "AT+CPSMS?"), ["+CPSMS: 0,,,,", "OK"]);
        assert_eq!(run(&mut s, r#"AT+CPSMS=1,,,"01100101","00000001""#), ["OK"]);
        assert_eq!(
            run(&mut s, "AT+CPSMS?"),
            [r#"+CPSMS: 1,,,"01100101","00000001""#, "OK"]
        );
        let p = s.power_saving;
        assert_eq!(p.periodic_tau(), secs(10));
        assert_eq!(p.active_time(), secs(2));
        assert!(p.sleeps());
        // Unquoted bit strings, as some modems take them.
        assert_eq!(run(&mut s, "AT+CPSMS=1,,,00100001,00100100"), ["OK"]);
        assert_eq!(s.power_saving.periodic_tau(), secs(3600));
        // Mode 0 keeps the timers; the bare form forgets them.
        assert_eq!(run(&mut s, "AT+CPSMS=0"), ["OK"]);
        assert!(!s.power_saving.sleeps());
        assert_eq!(s.power_saving.periodic_tau, Some(0b001_00001));
        assert_eq!(run(&mut s, "AT+CPSMS="), ["OK"]);
        assert_eq!(run(&mut s, "AT+CPSMS?"), ["+CPSMS: 0,,,,", "OK"]);
    }

    #[test]
    fn cpsms_refuses_what_is_not_a_timer_octet() {
        let mut s = state();
        for bad in [
            "AT+CPSMS=2",
            r#"AT+CPSMS=1,,,"0110010","00000001""#,
            r#"AT+CPSMS=1,,,"01100102","00000001""#,
            r#"AT+CPSMS=1,,,"01100101","00000001",1"#,
        ] {
            assert_eq!(run(&mut s, bad), ["+CME ERROR: 50"], "{bad}");
        }
        assert_eq!(s.power_saving, PowerSaving::default(), "nothing changed");
    }

    #[test]
    fn active_time_deactivated_means_psm_does_not_sleep() {
        // T3324 deactivated: the UE does not enter PSM (TS 24.301 §5.3.11).
        let mut s = state();
        assert_eq!(run(&mut s, r#"AT+CPSMS=1,,,"01100101","11100000""#), ["OK"]);
        assert!(!s.power_saving.sleeps());
    }

    #[test]
    fn cedrxs_sets_reads_and_forgets_the_edrx_value() {
        // 27.007 §7.40; u-blox's example: AT+CEDRXS=1,4,"0101" -> +CEDRXS: 4,"0101".
        let mut s = state();
        assert_eq!(run(&mut s, "AT+CEDRXS?"), ["OK"]);
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,4,"0101""#), ["OK"]);
        assert_eq!(run(&mut s, "AT+CEDRXS?"), [r#"+CEDRXS: 4,"0101""#, "OK"]);
        assert_eq!(
            s.power_saving.edrx_cycle(),
            Some(Duration::from_millis(81_920))
        );
        assert_eq!(run(&mut s, r#"AT+CEDRXS=2,5,"1001""#), ["OK"]);
        assert!(s.power_saving.edrx_urc);
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,7,"0101""#), ["+CME ERROR: 50"]);
        assert_eq!(run(&mut s, r#"AT+CEDRXS=1,4,"10101""#), ["+CME ERROR: 50"]);
        assert_eq!(run(&mut s, "AT+CEDRXS=3"), ["OK"]);
        assert_eq!(run(&mut s, "AT+CEDRXS?"), ["OK"]);
        assert_eq!(s.power_saving.edrx_cycle(), None);
    }

    proptest! {
        #[test]
        fn timer_3_round_trips_through_its_octet(octet in any::<u8>()) {
            let t = decode_timer3(octet);
            let back = encode_timer3(t).expect("every decoded timer encodes");
            prop_assert_eq!(decode_timer3(back), t);
        }

        #[test]
        fn timer_2_round_trips_through_its_octet(octet in any::<u8>()) {
            let t = decode_timer2(octet);
            let back = encode_timer2(t).expect("every decoded timer encodes");
            prop_assert_eq!(decode_timer2(back), t);
        }

        #[test]
        fn bit_strings_round_trip(octet in any::<u8>()) {
            prop_assert_eq!(parse_bits(&bits8(octet), 8), Some(octet));
            prop_assert_eq!(parse_bits(&format!("\"{}\"", bits8(octet)), 8), Some(octet));
        }
    }
}
