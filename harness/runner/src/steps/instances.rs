//! Instance ids are found, not assumed (DESIGN: "a case is about the
//! device"): a case writes `/5/*/3` and the step runs on the instance of
//! object 5 the device's registration lists. LwM2M 1.1 Core §6.2.1 has the
//! client list its Object Instances in the Register's object list; a
//! device's Server object account may be /1/1 as well as /1/0, and nothing
//! obliges a vendor's Firmware Update instance to be 0.

use lwm2m::server::Registration;
use lwm2m::Path;

use crate::case::fields::{shown, CasePath, ANY_INSTANCE};
use crate::session::Session;
use crate::steps::error::{bench, StepError};

/// The first instance of `object` the registration's object list names.
pub fn registered_instance(reg: &Registration, object: u16) -> Option<u16> {
    reg.instances()
        .iter()
        .find(|p| p.object_id() == Some(object))
        .and_then(|p| p.instance_id())
        .filter(|i| *i != ANY_INSTANCE)
}

/// The path with its `*` instance replaced by the one the device
/// registered. The device registered no instance of the object: the step
/// does not apply (a skip naming it); no registration yet: a mistake of the
/// case, which must await the registration first (a bench error).
pub fn resolve(rig: &Session, path: CasePath) -> Result<Path, StepError> {
    let (Some(object), true) = (path.0.object_id(), path.has_any_instance()) else {
        return Ok(path.0);
    };
    let reg = rig.server.registration(&rig.endpoint).ok_or_else(|| {
        bench(format!(
            "{path} finds object {object}'s instance in the device's registration, and there is none yet: await registered first"
        ))
    })?;
    resolve_in(&reg, path)
}

/// [`resolve`] against a given registration.
pub fn resolve_in(reg: &Registration, path: CasePath) -> Result<Path, StepError> {
    let object = path.0.object_id().unwrap_or_default();
    let instance = registered_instance(reg, object).ok_or_else(|| {
        StepError::Skip(format!(
            "not applicable: the device registered no instance of object {object} (its object list: {}), so not {}",
            server::links_text(&reg.objects),
            shown(&Path::instance(object, ANY_INSTANCE))
        ))
    })?;
    let mut ids = path.0.ids().to_vec();
    ids[1] = instance;
    Ok(Path::from_ids(&ids).unwrap_or(path.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn registration(objects: &str) -> Registration {
        Registration {
            endpoint: "ep".into(),
            location: "/rd/1".into(),
            lifetime: Duration::from_secs(42),
            lwm2m_version: "1.1".into(),
            binding: "U".into(),
            queue_mode: false,
            sms_number: None,
            objects: lwm2m::format::parse_links(objects).unwrap().into(),
            root: String::new(),
            content_formats: Vec::new(),
            peer: "127.0.0.1:5683".parse().unwrap(),
            registered_at: Instant::now(),
            updated_at: Instant::now(),
        }
    }

    fn path(text: &str) -> CasePath {
        CasePath(crate::case::fields::path(text).unwrap())
    }

    #[test]
    fn a_star_instance_is_the_one_the_device_registered() {
        let reg = registration("</1/1>,</3/0>,</5/2>");
        assert_eq!(registered_instance(&reg, 1), Some(1));
        assert_eq!(registered_instance(&reg, 5), Some(2));
        assert_eq!(registered_instance(&reg, 4), None);
        let resolved = resolve_in(&reg, path("/5/*/3")).unwrap();
        assert_eq!(resolved.to_string(), "/5/2/3");
        let resolved = resolve_in(&reg, path("/1/*/8")).unwrap();
        assert_eq!(resolved.to_string(), "/1/1/8");
    }

    #[test]
    fn an_object_without_a_registered_instance_makes_the_step_not_applicable() {
        let reg = registration("</1/0>,</3/0>,</4>");
        match resolve_in(&reg, path("/4/*/2")) {
            Err(StepError::Skip(why)) => {
                assert!(why.contains("no instance of object 4"), "{why}");
                assert!(why.contains("/4/*"), "{why}");
            }
            other => panic!("not applicable: {other:?}"),
        }
    }
}
