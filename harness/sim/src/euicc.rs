//! The virtual modem's eUICC: a soldered eUICC with two operational profiles
//! (GSMA SGP.02 "eSIM for M2M"), one enabled at a time, and what it shows in
//! LwM2M object 504 (Remote SIM Provisioning, fixtures/objects/504-*.xml).
//!
//! The profiles are derived from the meter's identity (profile 1 carries the
//! identity's ICCID, so `AT+CCID` reads as before the eUICC existed); which one
//! is enabled, a switch in progress, the lab's "this profile cannot attach"
//! marks and the last RSP result live in NV ([`EuiccNv`]).

use std::collections::BTreeSet;

use lwm2m::{Path, Value};
use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// One operational profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// 19-digit ICCID with a Luhn check digit (ITU-T E.118).
    pub iccid: String,
    /// Operator (service provider) name.
    pub operator: String,
    /// Mobile country and network code of the operator (MCC 001 is the ITU test network).
    pub mcc: u16,
    pub mnc: u16,
    /// Access point name the profile attaches with (/4/0/7).
    pub apn: String,
    /// Serving cell identity once attached (/4/0/8).
    pub cell_id: i64,
}

/// ICCID of the second profile. Fixed (not derived from the seed) so that a
/// case can name it in /504/0/26 Selected ICCID; Luhn check digit valid.
pub const SECOND_PROFILE_ICCID: &str = "8949020000123456788";

/// The eUICC's two profiles for `identity`: the identity's ICCID on the home
/// operator, and [`SECOND_PROFILE_ICCID`] on a second operator.
pub fn profiles(identity: &Identity) -> Vec<Profile> {
    vec![
        Profile {
            iccid: identity.iccid.clone(),
            operator: "meterbench-home".to_owned(),
            mcc: 1,
            mnc: 1,
            apn: "meterbench.iot".to_owned(),
            cell_id: 0x01a2_d001,
        },
        Profile {
            iccid: SECOND_PROFILE_ICCID.to_owned(),
            operator: "meterbench-roam".to_owned(),
            mcc: 1,
            mnc: 2,
            apn: "roam.meterbench.iot".to_owned(),
            cell_id: 0x02b3_e002,
        },
    ]
}

/// The eUICC identifier (EID, 32 digits, GSMA SGP.29), derived from the identity.
pub fn eid(identity: &Identity) -> String {
    let digits: String = identity
        .imei
        .chars()
        .chain(identity.iccid.chars())
        .collect();
    format!("8904{:0>28}", &digits[digits.len().saturating_sub(28)..])
}

/// A profile switch that has been started (the new profile is enabled) but
/// not yet confirmed by an attach; after a power cut the meter resumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSwitch {
    /// Index of the profile being switched to.
    pub to: usize,
    /// Index of the profile to fall back to if `to` does not attach.
    pub from: usize,
}

/// What the eUICC and the lab's network settings keep across power cuts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct EuiccNv {
    /// Index of the enabled profile.
    pub enabled: usize,
    pub switching: Option<PendingSwitch>,
    /// ICCIDs the (virtual) network refuses to attach: a lab setting (`AT+MBNETFAIL`).
    pub attach_fails: BTreeSet<String>,
    /// RSP Update Result (/504/0/7) of the last operation.
    pub last_result: i64,
}

/// RSP Update State (/504/0/6) values used.
pub mod state {
    pub const IDLE: i64 = 0;
    pub const ENABLING: i64 = 5;
}

/// RSP Update Result (/504/0/7) values used. The registry names 0 initial,
/// 1 success and 2..=16 as failure reasons (memory, connection, integrity,
/// URI, protocol, enable/disable/delete failures); meterbench's virtual eUICC
/// reports these.
pub mod result {
    pub const INITIAL: i64 = 0;
    pub const SUCCESS: i64 = 1;
    /// The action is not supported (download, install, delete, reset memory: no SM-DP here).
    pub const UNSUPPORTED: i64 = 8;
    /// Enabling the profile failed: it did not attach within the timeout; the previous one is back.
    pub const ENABLE_FAILED: i64 = 13;
    /// Disabling failed (the enabled profile cannot be disabled without enabling another).
    pub const DISABLE_FAILED: i64 = 14;
    /// The Selected ICCID (/504/0/26) names no installed profile.
    pub const UNKNOWN_PROFILE: i64 = 16;
}

/// An RSP action as Execute on /504/0/5 Updates names it (comma-separated digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RspAction {
    Download,
    Install,
    Enable,
    Disable,
    Delete,
    ResetMemory,
}

/// Parses Execute arguments (LwM2M 1.1 Core §5.4.5: `digit['='value]`, comma-separated).
/// `None` or empty means enable, the one action a switch needs.
pub fn parse_rsp_actions(arguments: Option<&str>) -> Result<Vec<RspAction>, String> {
    let Some(args) = arguments.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(vec![RspAction::Enable]);
    };
    args.split(',')
        .map(|a| {
            let digit = a.split('=').next().unwrap_or("").trim();
            Ok(match digit {
                "0" => RspAction::Download,
                "1" => RspAction::Install,
                "2" => RspAction::Enable,
                "3" => RspAction::Disable,
                "4" => RspAction::Delete,
                "5" => RspAction::ResetMemory,
                other => return Err(format!("RSP action {other:?} is not one of 0..=5")),
            })
        })
        .collect()
}

/// /504/0/5 RSP Update (E).
pub fn rsp_update() -> Path {
    Path::resource(504, 0, 5)
}
/// /504/0/26 Selected ICCID for RSP operation (RW).
pub fn selected_iccid() -> Path {
    Path::resource(504, 0, 26)
}

/// The values of /504/0 for the eUICC as it is now. Resource 22 lists the
/// ICCIDs with the enabled profile as instance 0 (as the registry says).
pub fn rsp_values(
    identity: &Identity,
    profiles: &[Profile],
    nv: &EuiccNv,
    band_mask: i64,
) -> Vec<(Path, Value)> {
    let enabled = &profiles[nv.enabled.min(profiles.len() - 1)];
    let s = |v: &str| Value::String(v.to_owned());
    let mut v = vec![
        (Path::resource(504, 0, 0), Value::Integer(2)), // soldered eUICC
        (Path::resource_instance(504, 0, 1, 0), Value::Integer(1)),
        (Path::resource_instance(504, 0, 1, 1), Value::Integer(2)),
        (Path::resource(504, 0, 2), s(&enabled.operator)),
        (Path::resource(504, 0, 4), s("")),
        (
            Path::resource(504, 0, 6),
            Value::Integer(if nv.switching.is_some() {
                state::ENABLING
            } else {
                state::IDLE
            }),
        ),
        (Path::resource(504, 0, 7), Value::Integer(nv.last_result)),
        (
            Path::resource(504, 0, 8),
            s(&format!("{} profile", enabled.operator)),
        ),
        (Path::resource(504, 0, 9), s("1.0")),
        (Path::resource_instance(504, 0, 10, 0), Value::Integer(0)), // CoAP
        (Path::resource(504, 0, 11), Value::Integer(3)),             // managed outside LwM2M
        (Path::resource(504, 0, 12), Value::Integer(256 * 1024)),
        (Path::resource(504, 0, 13), Value::Integer(512 * 1024)),
        (Path::resource(504, 0, 14), Value::Integer(band_mask)),
        (Path::resource(504, 0, 20), Value::Integer(band_mask)),
        (Path::resource(504, 0, 23), s(&eid(identity))),
        (Path::resource(504, 0, 24), Value::Integer(1)), // operational
        (Path::resource(504, 0, 25), Value::Integer(1)), // GSMA eSIM for M2M
        (selected_iccid(), s(&enabled.iccid)),
        (Path::resource(504, 0, 27), s("")),
        (Path::resource(504, 0, 30), Value::Integer(0)),
        (Path::resource(504, 0, 32), Value::Opaque(Vec::new())),
    ];
    let order = std::iter::once(enabled).chain(profiles.iter().filter(|p| *p != enabled));
    for (i, p) in order.enumerate() {
        v.push((Path::resource_instance(504, 0, 22, i as u16), s(&p.iccid)));
    }
    v
}

/// Index of the profile a lab or server names: a 1-based index (`2`) or an ICCID.
pub fn find_profile(profiles: &[Profile], name: &str) -> Option<usize> {
    let name = name.trim().trim_matches('"');
    if name.len() <= 2 {
        let i: usize = name.parse().ok()?;
        return (1..=profiles.len()).contains(&i).then(|| i - 1);
    }
    profiles.iter().position(|p| p.iccid == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_distinct_profiles_with_valid_iccids_and_the_first_is_the_identitys() {
        let id = Identity::derive(4, None);
        let p = profiles(&id);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].iccid, id.iccid);
        assert_ne!(p[0].iccid, p[1].iccid);
        assert_eq!(p[1].iccid.len(), 19);
        assert_eq!(crate::identity::with_luhn(&p[1].iccid[..18]), p[1].iccid);
        assert_eq!(profiles(&id), p, "derived, so stable");
        assert_eq!(eid(&id).len(), 32);
    }

    #[test]
    fn rsp_actions_parse_per_core_execute_syntax() {
        assert_eq!(parse_rsp_actions(None).unwrap(), vec![RspAction::Enable]);
        assert_eq!(
            parse_rsp_actions(Some("2")).unwrap(),
            vec![RspAction::Enable]
        );
        assert_eq!(
            parse_rsp_actions(Some("0,1='x'")).unwrap(),
            vec![RspAction::Download, RspAction::Install]
        );
        assert!(parse_rsp_actions(Some("9")).unwrap_err().contains("\"9\""));
    }

    #[test]
    fn enabled_profile_is_iccid_instance_zero() {
        let id = Identity::derive(4, None);
        let p = profiles(&id);
        let nv = EuiccNv {
            enabled: 1,
            ..EuiccNv::default()
        };
        let v = rsp_values(&id, &p, &nv, 4);
        let get = |path: Path| v.iter().find(|(q, _)| *q == path).map(|(_, x)| x.clone());
        assert_eq!(
            get(Path::resource_instance(504, 0, 22, 0)),
            Some(Value::String(p[1].iccid.clone()))
        );
        assert_eq!(
            get(Path::resource_instance(504, 0, 22, 1)),
            Some(Value::String(p[0].iccid.clone()))
        );
        assert_eq!(
            get(Path::resource(504, 0, 2)),
            Some(Value::String("meterbench-roam".into()))
        );
    }

    #[test]
    fn profiles_are_found_by_index_or_iccid() {
        let p = profiles(&Identity::derive(1, None));
        assert_eq!(find_profile(&p, "1"), Some(0));
        assert_eq!(find_profile(&p, "2"), Some(1));
        assert_eq!(find_profile(&p, "3"), None);
        assert_eq!(find_profile(&p, "0"), None);
        assert_eq!(find_profile(&p, &format!("\"{}\"", p[1].iccid)), Some(1));
        assert_eq!(find_profile(&p, "8944000"), None);
    }
}
