//! Whether a case applies to this rig and device, decided before its steps
//! run: the rig parts it names or its steps imply (a `power` step needs
//! power control, a `network` step network control that can do what it
//! asks), the firmware roles it names, and, once the device is registered,
//! the objects and optional resources it needs.

use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::server::{Content, DmRequest, Registration, Response};
use server::links_text;

use crate::case::fields::{shown, ANY_INSTANCE};
use crate::case::{Case, Need};
use crate::session::{RoleError, Session};
use crate::steps::euicc;

/// What the case needs: its own `needs`, then what its steps imply,
/// including the rig's eUICC values its `{euicc:...}` placeholders name.
pub fn of_case(case: &Case) -> Vec<Need> {
    let mut needs = case.needs.clone();
    // The cleanup's steps too: a case never starts without what it needs
    // to put the device back.
    for step in case.all_steps() {
        let implied = step.kind.step().needs().into_iter().chain(
            // A placeholder may sit in any text a step carries (a written
            // value, an expected one, an AT answer): the step's debug form
            // holds every such text, so no kind has to list them.
            euicc::refs_in(&format!("{:?}", step.kind))
                .into_iter()
                .map(Need::Euicc),
        );
        for need in implied {
            if !needs.contains(&need) {
                needs.push(need);
            }
        }
    }
    needs
}

/// The first rig part among `needs` that the rig lacks, as a skip reason.
pub fn missing_part(rig: &Session, needs: &[Need]) -> Option<String> {
    let name = &rig.rig.name;
    needs.iter().find_map(|need| match need {
        Need::Modem if rig.modem.is_none() => Some(format!("rig {name} has no modem")),
        Need::Power if rig.power.is_none() => Some(format!("rig {name} has no power control")),
        Need::Debug if rig.debug.is_none() => Some(format!("rig {name} has no debug port")),
        Need::Swd if !matches!(rig.rig.debug, Some(rig::model::DebugSpec::Swd(_))) => Some(format!(
            "rig {name} needs a debug port that reaches the MCU (SWD): its `debug:` is {}",
            match rig.rig.debug {
                None => "absent",
                Some(_) => "not `kind: swd`",
            }
        )),
        Need::NetworkControl if rig.network.is_none() => Some(format!(
            "rig {name} has no network control (no `network:` part): it cannot make the network refuse a profile"
        )),
        Need::Network(action) => match &rig.network {
            None => Some(format!(
                "rig {name} has no network control (no `network:` part), for `network: {action}`"
            )),
            Some(n) if !n.supports(action) => {
                Some(format!("rig {name}'s network control cannot {action}"))
            }
            Some(_) => None,
        },
        Need::Bootstrap if rig.bootstrap.is_none() => Some(format!(
            "rig {name} does not onboard its device by bootstrap (device.bootstrap)"
        )),
        Need::Credentials => rig.credentials_fixed(),
        Need::CertificateMode if !rig.rig.device.certificate_mode => Some(format!(
            "rig {name} does not say its device takes X.509 certificate accounts \
             (device.certificate_mode: true; LwM2M Security Mode 2)"
        )),
        Need::SmartcardBootstrap if rig.rig.device.smartcard.is_none() => Some(format!(
            "rig {name} does not say its device has a smartcard holding LwM2M bootstrap \
             information (device.smartcard; Bootstrap from Smartcard, LwM2M 1.1 Core §6.1.3.2)"
        )),
        Need::ModemAction(action) => match &rig.modem {
            None => Some(format!("rig {name} has no modem, for `at: {action}`")),
            Some(m) => m.dialect().require(action).err().map(|e| e.to_string()),
        },
        Need::ModemEvent(event) => match &rig.modem {
            None => Some(format!("rig {name} has no modem, to await event {event}")),
            Some(m) if m.dialect().event(event).is_none() => Some(format!(
                "not supported by this modem: the {} dialect reports no event `{event}`",
                m.dialect().name
            )),
            Some(_) => None,
        },
        // A misspelt placeholder is not a missing part: the step that
        // carries it fails with the reason.
        Need::Euicc(reference) => match euicc::value(name, rig.rig.euicc.as_ref(), reference) {
            Err(euicc::EuiccError::Unknown(reason)) => Some(reason),
            _ => None,
        },
        _ => None,
    })
}

/// The first object the case needs that the registration does not list.
pub fn missing_object(reg: &Registration, case: &Case) -> Option<String> {
    case.needs.iter().find_map(|need| match need {
        Need::Resource(path) if !reg.has_object(path.object_id().unwrap_or_default()) => {
            Some(format!(
                "the device does not offer object {} (its object list: {}), so not {}",
                path.object_id().unwrap_or_default(),
                links_text(&reg.objects),
                Need::Resource(*path)
            ))
        }
        Need::Object(id) if !reg.has_object(*id) => Some(format!(
            "the device does not offer object {id} (its object list: {})",
            links_text(&reg.objects)
        )),
        _ => None,
    })
}

/// The first optional resource the case needs that the device does not
/// offer, by the Discover answer of its object instance (LwM2M 1.1 Core
/// §5.4.2 lists the resources an instance has). A Discover that fails says
/// nothing either way: the case runs and its steps decide.
pub async fn missing_resource(rig: &Session, case: &Case, log: &mut String) -> Option<String> {
    for need in &case.needs {
        let Need::Resource(path) = need else {
            continue;
        };
        // `resource/5/*/8`: the instance the device registered.
        let path = &match (path.object_id(), path.instance_id()) {
            (Some(object), Some(ANY_INSTANCE)) => {
                let Some(i) = rig.instance_of(object) else {
                    return Some(format!(
                        "the device registered no instance of object {object}, so not {}",
                        shown(path)
                    ));
                };
                lwm2m::Path::resource(object, i, path.resource_id().unwrap_or_default())
            }
            _ => *path,
        };
        let instance = path.parent();
        let answer = rig
            .server
            .request(
                &rig.endpoint,
                DmRequest::Discover { path: instance },
                Duration::from_secs(30),
            )
            .await;
        let links = match answer {
            Ok(Response {
                code: 205,
                content: Content::Links(links),
                ..
            }) => links,
            Ok(Response { code: 404, .. }) => {
                return Some(format!(
                    "the device does not offer {instance} (Discover answered 4.04), so not {path}"
                ))
            }
            other => {
                let _ = writeln!(
                    log,
                    "  Discover {instance} to check for {path} told nothing: {other:?}"
                );
                continue;
            }
        };
        let _ = writeln!(log, "  Discover {instance} -> {}", links_text(&links));
        if !links.iter().any(|l| l.path() == Some(*path)) {
            return Some(format!(
                "the device does not offer the optional resource {path} (Discover {instance}: {})",
                links_text(&links)
            ));
        }
    }
    None
}

/// Every firmware role a case names must be mapped by the rig, to an image
/// that is in the rig's store.
pub async fn check_roles(rig: &mut Session, case: &Case) -> Result<(), RoleError> {
    let mut roles: Vec<String> = case
        .all_steps()
        .flat_map(|s| s.kind.step().firmware_roles())
        .collect();
    roles.sort();
    roles.dedup();
    for role in roles {
        rig.firmware_role(&role).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{load_case, Vars};

    fn case(steps: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, format!("id: x\ntitle: t\nsteps:\n{steps}")).unwrap();
        load_case(&file, &Vars::new()).unwrap()
    }

    #[test]
    fn steps_imply_modem_actions_events_and_euicc_values() {
        let needs = of_case(&case(concat!(
            "  - at: { command: enable_second_profile }\n",
            "  - await: { event: profile_switched }\n",
            "  - write: { path: /504/0/26, value: \"{euicc:second.iccid}\" }\n",
            "  - expect: { path: /4/0/7/0, equals: \"{euicc:second.apn}\" }\n",
        )));
        for need in [
            Need::Modem,
            Need::ModemAction("enable_second_profile".into()),
            Need::ModemEvent("profile_switched".into()),
            Need::Euicc("second.iccid".into()),
            Need::Euicc("second.apn".into()),
        ] {
            assert!(needs.contains(&need), "{need} in {needs:?}");
        }
        assert_eq!(needs.iter().filter(|n| **n == Need::Modem).count(), 1);
    }
}
