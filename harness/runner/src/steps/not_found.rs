//! What a 4.04 Not Found means for the verdict. A case skips only what does
//! not apply: an object the device did not register, an instance it did not
//! list, a resource the object model makes optional. A resource the object
//! model (the DDF in fixtures/objects) makes Mandatory, on an object instance
//! the device registered, must be there (LwM2M 1.1 Core §5.1.1 and the
//! object's definition): its absence is the device's failure, not a skip.

use lwm2m::server::Registration;
use lwm2m::{Path, Registry};

use crate::steps::error::{device, StepError};

/// Judges a 4.04 to `request` (e.g. `Read /3/0/0`) on `path`, from the
/// object model and the device's registration (`None`: not registered now).
pub(crate) fn judge(
    registry: &Registry,
    registration: Option<&Registration>,
    path: Path,
    request: &str,
) -> StepError {
    let answered = format!("it answered 4.04 Not Found to {request}");
    let object_id = path.object_id();
    let object = object_id.and_then(|o| registry.object(o));
    let object_name = |id: u16| {
        object
            .map(|o| format!("object {id} ({})", o.name))
            .unwrap_or_else(|| format!("object {id}"))
    };
    let Some(object_id) = object_id else {
        return device(format!("an answer to {request}"), answered);
    };
    let Some(reg) = registration else {
        return StepError::Skip(format!(
            "the device does not offer {path}: it is not registered, and {answered}"
        ));
    };
    let listed = registered_paths(reg);
    let object_listed = listed.iter().any(|p| p.object_id() == Some(object_id));
    if !object_listed {
        return StepError::Skip(format!(
            "the device does not offer {} (not in its registration: {}); {answered}",
            object_name(object_id),
            server::links_text(&reg.objects)
        ));
    }
    let instance = path.instance_id().map(|i| Path::instance(object_id, i));
    let Some(instance) = instance else {
        return device(
            format!("{path}, which the device registered, to be there for {request}",),
            answered,
        );
    };
    if !listed.contains(&instance) {
        return StepError::Skip(format!(
            "the device does not offer instance {instance} of {} (its registration lists {}); {answered}",
            object_name(object_id),
            server::links_text(&reg.objects)
        ));
    }
    let Some(resource_id) = path.resource_id() else {
        return device(
            format!("{instance}, which the device registered, to be there for {request}"),
            answered,
        );
    };
    let def = object.and_then(|o| o.resource(resource_id));
    match def {
        Some(def) if def.mandatory && path.resource_instance_id().is_none() => device(
            format!(
                "{path} ({}), a Mandatory resource of {}, on instance {instance} the device registered",
                def.name,
                object_name(object_id)
            ),
            format!("{answered}: a mandatory resource is missing"),
        ),
        Some(def) if def.mandatory => StepError::Skip(format!(
            "the device has no resource instance {path} of {} ({}); {answered}",
            def.name,
            object_name(object_id)
        )),
        Some(def) => StepError::Skip(format!(
            "the device does not offer the optional resource {path} ({}) of {}; {answered}",
            def.name,
            object_name(object_id)
        )),
        None => StepError::Skip(format!(
            "the device does not offer {path}, which the object model does not define as mandatory ({} {}); {answered}",
            object_name(object_id),
            if object.is_some() { "has no such resource" } else { "has no definition here" }
        )),
    }
}

/// The object and instance paths the registration lists.
fn registered_paths(reg: &Registration) -> Vec<Path> {
    reg.objects.iter().filter_map(|l| l.path()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwm2m::format::Link;
    use std::time::{Duration, Instant};

    fn registration(objects: &[&str]) -> Registration {
        let now = Instant::now();
        Registration {
            endpoint: "meter-1".into(),
            location: "/rd/1".into(),
            lifetime: Duration::from_secs(60),
            lwm2m_version: "1.1".into(),
            binding: "U".into(),
            queue_mode: false,
            sms_number: None,
            objects: objects
                .iter()
                .map(|o| Link::new(*o))
                .collect::<Vec<_>>()
                .into(),
            root: String::new(),
            content_formats: Vec::new(),
            peer: "127.0.0.1:40000".parse().unwrap(),
            registered_at: now,
            updated_at: now,
        }
    }

    fn judged(objects: &[&str], path: &str) -> StepError {
        let reg = registration(objects);
        let path: Path = path.parse().unwrap();
        judge(&Registry::core(), Some(&reg), path, &format!("Read {path}"))
    }

    #[test]
    fn a_missing_mandatory_resource_on_a_registered_instance_fails() {
        // /3/0/0 Manufacturer is Optional in the DDF; /3/0/11 Error Code is Mandatory.
        let e = judged(&["/1/0", "/3/0"], "/3/0/11");
        let StepError::Device { expected, seen } = e else {
            panic!("{e:?}")
        };
        assert!(expected.contains("/3/0/11"), "{expected}");
        assert!(expected.contains("Mandatory"), "{expected}");
        assert!(seen.contains("4.04"), "{seen}");
    }

    #[test]
    fn a_missing_optional_resource_is_skipped_naming_it() {
        let e = judged(&["/1/0", "/3/0"], "/3/0/14");
        let StepError::Skip(reason) = e else {
            panic!("{e:?}")
        };
        assert!(reason.contains("optional resource /3/0/14"), "{reason}");
    }

    #[test]
    fn an_object_the_device_did_not_register_is_skipped() {
        let e = judged(&["/1/0", "/3/0"], "/5/0/3");
        let StepError::Skip(reason) = e else {
            panic!("{e:?}")
        };
        assert!(reason.contains("does not offer object 5"), "{reason}");
        // Unknown to the object model too: still only a skip.
        let e = judged(&["/1/0", "/3/0"], "/26241/0/1");
        assert!(matches!(e, StepError::Skip(_)), "{e:?}");
    }

    #[test]
    fn an_instance_the_device_did_not_list_is_skipped() {
        let e = judged(&["/1/0", "/3/0", "/19/0"], "/19/7/0");
        let StepError::Skip(reason) = e else {
            panic!("{e:?}")
        };
        assert!(reason.contains("instance /19/7"), "{reason}");
    }

    #[test]
    fn a_registered_instance_answering_not_found_fails() {
        let e = judged(&["/1/0", "/3/0"], "/3/0");
        assert!(matches!(e, StepError::Device { .. }), "{e:?}");
    }

    #[test]
    fn a_resource_instance_of_a_mandatory_resource_may_be_absent() {
        let e = judged(&["/1/0", "/3/0"], "/3/0/11/5");
        assert!(matches!(e, StepError::Skip(_)), "{e:?}");
    }

    #[test]
    fn an_unknown_resource_of_a_known_object_is_skipped() {
        let e = judged(&["/1/0", "/3/0"], "/3/0/999");
        assert!(matches!(e, StepError::Skip(_)), "{e:?}");
    }

    #[test]
    fn without_a_registration_nothing_is_known_to_be_offered() {
        let e = judge(
            &Registry::core(),
            None,
            "/3/0/11".parse().unwrap(),
            "Read /3/0/11",
        );
        assert!(matches!(e, StepError::Skip(_)), "{e:?}");
    }
}
