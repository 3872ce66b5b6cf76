//! Instance ids are found, not assumed (DESIGN: "a case is about the
//! device"): a case writes `/5/*/3` and the step runs on the instance of
//! object 5 the device's registration lists. LwM2M 1.1 Core §6.2.1 has the
//! client list its Object Instances in the Register's object list; a
//! device's Server object account may be /1/1 as well as /1/0, and nothing
//! obliges a vendor's Firmware Update instance to be 0.

use lwm2m::server::Registration;

use crate::case::step::{shown, ANY_INSTANCE};
use crate::case::Step;

/// The first instance of `object` the registration's object list names.
pub fn registered_instance(reg: &Registration, object: u16) -> Option<u16> {
    reg.instances()
        .iter()
        .find(|p| p.object_id() == Some(object))
        .and_then(|p| p.instance_id())
        .filter(|i| *i != ANY_INSTANCE)
}

/// Why a `*` of `object` cannot be resolved: a skip (the device registered
/// no instance of it) or a mistake of the case (it used `*` before the
/// device registered).
pub enum Unresolved {
    NotOffered(String),
    NotRegistered(String),
}

/// `step` with every `*` instance replaced by the registered one.
pub fn resolve(step: &Step, reg: Option<&Registration>) -> Result<Step, Unresolved> {
    let action = step.action.resolve_instances(&mut |object| {
        let reg = reg.ok_or_else(|| {
            Unresolved::NotRegistered(format!(
                "step `{}` finds object {object}'s instance in the device's registration, and there is none yet: await registered first",
                step.describe()
            ))
        })?;
        registered_instance(reg, object).ok_or_else(|| {
            Unresolved::NotOffered(format!(
                "the device registered no instance of object {object} (its object list: {}), so not {}",
                server::links_text(&reg.objects),
                step_path_text(step)
            ))
        })
    })?;
    Ok(Step {
        action,
        ..step.clone()
    })
}

fn step_path_text(step: &Step) -> String {
    let mut text = String::new();
    let _ = step.action.resolve_instances(&mut |object| {
        text = shown(&lwm2m::Path::instance(object, ANY_INSTANCE));
        Err::<u16, ()>(())
    });
    text
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
            objects: lwm2m::format::parse_links(objects).unwrap(),
            root: String::new(),
            content_formats: Vec::new(),
            peer: "127.0.0.1:5683".parse().unwrap(),
            registered_at: Instant::now(),
            updated_at: Instant::now(),
        }
    }

    fn step(text: &str) -> Step {
        let spec: crate::case::model::StepSpec = serde_saphyr::from_str(text).unwrap();
        Step::from_spec(spec, 7).unwrap()
    }

    #[test]
    fn a_star_instance_is_the_one_the_device_registered() {
        let reg = registration("</1/1>,</3/0>,</5/2>");
        assert_eq!(registered_instance(&reg, 1), Some(1));
        assert_eq!(registered_instance(&reg, 5), Some(2));
        assert_eq!(registered_instance(&reg, 4), None);
        let s = step("expect: { path: /5/*/3, equals: 0 }");
        assert_eq!(s.describe(), "expect /5/*/3 equals 0");
        let Ok(resolved) = resolve(&s, Some(&reg)) else {
            panic!("resolves")
        };
        assert_eq!(resolved.describe(), "expect /5/2/3 equals 0");
        let s = step("execute: /1/*/8");
        let Ok(resolved) = resolve(&s, Some(&reg)) else {
            panic!("resolves")
        };
        assert_eq!(resolved.describe(), "execute /1/1/8");
    }

    #[test]
    fn an_object_without_a_registered_instance_makes_the_step_not_applicable() {
        let reg = registration("</1/0>,</3/0>,</4>");
        let s = step("read: { path: /4/*/2 }");
        match resolve(&s, Some(&reg)) {
            Err(Unresolved::NotOffered(why)) => {
                assert!(why.contains("no instance of object 4"), "{why}");
                assert!(why.contains("/4/*"), "{why}");
            }
            _ => panic!("not applicable"),
        }
        assert!(matches!(
            resolve(&s, None),
            Err(Unresolved::NotRegistered(_))
        ));
        let concrete = step("read: { path: /3/0/0 }");
        assert!(resolve(&concrete, None).is_ok(), "nothing to resolve");
    }
}
