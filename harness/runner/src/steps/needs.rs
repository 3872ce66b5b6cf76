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

/// What the case needs: its own `needs`, then what its steps imply.
pub fn of_case(case: &Case) -> Vec<Need> {
    let mut needs = case.needs.clone();
    for step in &case.steps {
        for need in step.kind.step().needs() {
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
        Need::Credentials if rig.credentials.is_none() => Some(format!(
            "rig {name} uses no credentials (device.security: psk)"
        )),
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
        .steps
        .iter()
        .flat_map(|s| s.kind.step().firmware_roles())
        .collect();
    roles.sort();
    roles.dedup();
    for role in roles {
        rig.firmware_role(&role).await?;
    }
    Ok(())
}
