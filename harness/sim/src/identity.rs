//! Who the virtual meter is: manufacturer, model, serial number and the
//! modem's IMEI and ICCID, all derived from the seed so that a run is
//! reproducible and two meters with different seeds differ.

use rand::{Rng, SeedableRng};

/// The manufacturer string of both the modem (`AT+CGMI`) and the device
/// object (/3/0/0).
pub const MANUFACTURER: &str = "meterbench";
/// Model of the meter (/3/0/1) and of its modem (`AT+CGMM`).
pub const MODEL: &str = "MB-VM1";
/// Modem firmware revision (`AT+CGMR`).
pub const MODEM_REVISION: &str = "MBVM_1.0.0";
/// The meter firmware version a factory-fresh NV holds (/3/0/3).
pub const FACTORY_FIRMWARE_VERSION: &str = "1.0";

/// The identity numbers of one virtual meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Meter serial number (/3/0/2).
    pub serial: String,
    /// 15-digit IMEI with a valid Luhn check digit (3GPP TS 23.003 §6.2.1).
    pub imei: String,
    /// 19-digit ICCID with a valid Luhn check digit (ITU-T E.118).
    pub iccid: String,
}

impl Identity {
    /// Derives the identity from `seed`; `serial` overrides the derived serial number.
    pub fn derive(seed: u64, serial: Option<&str>) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6d65_7465_7262_656e);
        let serial = serial
            .map(str::to_owned)
            .unwrap_or_else(|| format!("MB{:08}", rng.gen_range(0..100_000_000u32)));
        // TAC 35 (GSMA-allocated range used by many module vendors) + 12 digits, then the check digit.
        let imei_body = format!("35{:012}", rng.gen_range(0..1_000_000_000_000u64));
        let imei = with_luhn(&imei_body);
        // 89 (telecom) 44 (country) then issuer and account digits, then the check digit.
        let iccid_body = format!("8944{:014}", rng.gen_range(0..100_000_000_000_000u64));
        let iccid = with_luhn(&iccid_body);
        Identity {
            serial,
            imei,
            iccid,
        }
    }

    /// The endpoint name the client uses when none was configured (LwM2M 1.1
    /// Core §7.3.1 suggests a URN; `urn:imei:` is the common one for cellular devices).
    pub fn default_endpoint(&self) -> String {
        format!("urn:imei:{}", self.imei)
    }
}

/// Appends the Luhn check digit to a string of decimal digits.
pub(crate) fn with_luhn(body: &str) -> String {
    // The check digit will stand rightmost, so the body's rightmost digit is
    // the first one doubled.
    let check = (10 - luhn_sum(body, 0) % 10) % 10;
    format!("{body}{check}")
}

/// The Luhn sum of a string of decimal digits (ISO/IEC 7812-1 Annex B):
/// counting from the right from 0, the digits at positions of the parity of
/// `doubled` are doubled, and a doubled digit above 9 counts as its digit sum.
fn luhn_sum(digits: &str, doubled: usize) -> u32 {
    digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == doubled % 2 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full number (check digit included) is valid when its Luhn sum,
    /// doubling from the second digit from the right, is a multiple of 10.
    fn luhn_valid(digits: &str) -> bool {
        luhn_sum(digits, 1).is_multiple_of(10)
    }

    #[test]
    fn luhn_matches_the_known_imei_example() {
        // 3GPP TS 23.003 Annex B example: IMEI 35-209900-176148-1.
        assert_eq!(with_luhn("35209900176148"), "352099001761481");
        assert!(luhn_valid("352099001761481"));
        assert!(!luhn_valid("352099001761482"));
    }

    #[test]
    fn identity_is_deterministic_per_seed_and_valid() {
        let a = Identity::derive(7, None);
        assert_eq!(a, Identity::derive(7, None));
        assert_ne!(a, Identity::derive(8, None));
        assert_eq!(a.imei.len(), 15);
        assert_eq!(a.iccid.len(), 19);
        assert!(luhn_valid(&a.imei));
        assert!(luhn_valid(&a.iccid));
        assert!(a.iccid.starts_with("89"));
    }

    #[test]
    fn serial_override_is_used() {
        assert_eq!(Identity::derive(1, Some("SN-42")).serial, "SN-42");
    }
}
