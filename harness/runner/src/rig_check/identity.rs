//! Who the board on the bench says it is, and whether that is the board the
//! rig file names: a run against the wrong board would blame a device for
//! another device's behaviour.

use std::collections::BTreeMap;

use rig::model::DeviceIdentity;
use rig::Modem;

/// The identity actions ([`rig::action::ACTIONS`]) the doctor asks, in the
/// order they are shown.
pub const MODEM_IDENTITY: [&str; 5] = ["manufacturer", "model", "revision", "imei", "iccid"];

/// The debug port's keys that carry the meter's serial number.
const SERIAL_KEYS: [&str; 3] = ["serial", "serial_number", "device.serial"];

/// One identity action and its value, or why it could not be read: a row
/// of the doctor's report (data shown to the engineer), not an error that
/// stops anything.
pub type ModemAnswer = (&'static str, Result<String, String>);

/// What the board reported; a field is `None` when no part could read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenIdentity {
    pub imei: Option<String>,
    pub iccid: Option<String>,
    pub serial: Option<String>,
}

impl SeenIdentity {
    pub fn from_modem(answers: &[ModemAnswer]) -> SeenIdentity {
        let ok = |k: &str| {
            answers
                .iter()
                .find(|(a, _)| *a == k)
                .and_then(|(_, r)| r.as_ref().ok())
                .cloned()
        };
        SeenIdentity {
            imei: ok("imei"),
            iccid: ok("iccid"),
            serial: None,
        }
    }

    /// Takes the serial number from a debug port's state, when it has one.
    pub fn add_debug_state(&mut self, state: &BTreeMap<String, String>) {
        if let Some(s) = SERIAL_KEYS.iter().find_map(|k| state.get(*k)) {
            self.serial = Some(s.clone());
        }
    }
}

/// Asks the modem each identity action its dialect maps. An action the
/// dialect lacks is left out (never a made-up command); one that fails
/// carries why.
pub fn ask_modem(modem: &mut dyn Modem) -> Vec<ModemAnswer> {
    let timeout = modem.dialect().command_timeout;
    let mut answers = Vec::new();
    for action in MODEM_IDENTITY {
        if !modem.dialect().supports(action) {
            continue;
        }
        let answer = modem
            .dialect()
            .render(action, &BTreeMap::new())
            .map_err(|e| e.to_string())
            .and_then(|line| {
                let r = modem.command(&line, timeout).map_err(|e| e.to_string())?;
                if !r.is_ok() {
                    return Err(format!("{line:?} answered {}", r.summary()));
                }
                modem.dialect().value(action, &r).map_err(|e| e.to_string())
            });
        answers.push((action, answer));
    }
    answers
}

/// One identity field the board does not answer as the rig file says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityMismatch {
    #[error("expected {field} {expected}, the device says {seen}")]
    Differs {
        field: &'static str,
        expected: String,
        seen: String,
    },
    #[error("expected {field} {expected}, but {reader} of this rig did not report one")]
    Unreported {
        field: &'static str,
        expected: String,
        reader: &'static str,
    },
}

/// The board on the bench is not the one the rig file names: every field
/// that differs or that no part could read, each with both values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct IdentityError(pub Vec<IdentityMismatch>);

/// Each field the rig file gives, compared with what the board said.
/// `Ok` lists what matched; `Err` names every mismatch or unreadable field
/// with both values.
pub fn compare(
    expected: &DeviceIdentity,
    seen: &SeenIdentity,
) -> Result<Vec<String>, IdentityError> {
    let fields = [
        ("IMEI", &expected.imei, &seen.imei, "the modem"),
        ("ICCID", &expected.iccid, &seen.iccid, "the modem"),
        ("serial", &expected.serial, &seen.serial, "the debug port"),
    ];
    let mut matched = Vec::new();
    let mut wrong = Vec::new();
    for (name, want, got, reader) in fields {
        let Some(want) = want else { continue };
        match got {
            Some(got) if got.trim() == want.trim() => matched.push(format!("{name} {want}")),
            Some(got) => wrong.push(IdentityMismatch::Differs {
                field: name,
                expected: want.clone(),
                seen: got.clone(),
            }),
            None => wrong.push(IdentityMismatch::Unreported {
                field: name,
                expected: want.clone(),
                reader,
            }),
        }
    }
    if wrong.is_empty() {
        Ok(matched)
    } else {
        Err(IdentityError(wrong))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(imei: Option<&str>, serial: Option<&str>) -> DeviceIdentity {
        DeviceIdentity {
            imei: imei.map(Into::into),
            iccid: None,
            serial: serial.map(Into::into),
        }
    }

    #[test]
    fn a_wrong_imei_names_both_values() {
        let seen = SeenIdentity {
            imei: Some("490154203237518".into()),
            ..Default::default()
        };
        let e = compare(&expected(Some("356938035643809"), None), &seen).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected IMEI 356938035643809, the device says 490154203237518"
        );
    }

    #[test]
    fn matching_fields_are_listed_and_absent_ones_not_checked() {
        let seen = SeenIdentity {
            imei: Some("490154203237518".into()),
            iccid: Some("8901".into()),
            serial: None,
        };
        let ok = compare(&expected(Some("490154203237518"), None), &seen).unwrap();
        assert_eq!(ok, vec!["IMEI 490154203237518".to_string()]);
    }

    #[test]
    fn an_expected_field_no_part_reads_is_a_mismatch() {
        let e = compare(&expected(None, Some("SN1")), &SeenIdentity::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected serial SN1"), "{e}");
        assert!(e.contains("debug port"), "{e}");
    }

    #[test]
    fn every_mismatch_is_named_in_one_message() {
        let seen = SeenIdentity {
            imei: Some("1".into()),
            ..Default::default()
        };
        let e = compare(&expected(Some("2"), Some("SN1")), &seen).unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert_eq!(
            e.to_string(),
            "expected IMEI 2, the device says 1; \
             expected serial SN1, but the debug port of this rig did not report one"
        );
    }

    #[test]
    fn serial_comes_from_the_debug_state() {
        let mut seen = SeenIdentity::default();
        let state: BTreeMap<String, String> = [("serial".to_string(), "MB-7".to_string())].into();
        seen.add_debug_state(&state);
        assert_eq!(seen.serial.as_deref(), Some("MB-7"));
    }
}
