//! The client side of the registration interface (LwM2M 1.1 Core §6.2,
//! Transport §6.2): the Register, Update and De-register messages.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::{ClientConfig, ObjectStore};
use crate::coap::options;
use crate::format::link::{encode_links, Link};
use crate::format::ContentFormat;

/// The object list a Register (or an Update after Create/Delete) carries
/// (LwM2M 1.1 Core §6.2.1): `</1/0>,</3/0>,...`, each instantiated object
/// preceded by `</N>;ver=X.Y` when its version is not 1.0. The Security
/// object (0) and the OSCORE object (21) are never listed (Core §6.2.1).
pub fn object_links(store: &ObjectStore) -> Vec<Link> {
    let mut links = Vec::new();
    let mut last_object = None;
    for inst in store.instances() {
        let Some(object) = inst
            .object_id()
            .filter(|o| !crate::server::UNLISTED_OBJECTS.contains(o))
        else {
            continue;
        };
        if last_object != Some(object) {
            last_object = Some(object);
            if let Some(def) = store.registry().object(object) {
                if def.version != "1.0" && !def.version.is_empty() {
                    links.push(Link::new(format!("/{object}")).with("ver", def.version.clone()));
                }
            }
        }
        links.push(Link::new(inst.to_string()));
    }
    links
}

fn with_object_list(p: &mut Packet, store: &ObjectStore) {
    options::set_uint(
        p,
        CoapOption::ContentFormat,
        u32::from(ContentFormat::LinkFormat.code()),
    );
    p.payload = encode_links(&object_links(store)).into_bytes();
}

/// `POST /rd?ep={name}&lt={lifetime}&lwm2m={version}&b={binding}` with the object list.
///
/// Queue mode is asked for with a `Q` in [`ClientConfig::binding`] (`"UQ"`),
/// and said as the version says it: LwM2M 1.0 keeps it in the binding
/// (`b=UQ`, 1.0 Core §5.3.1.1), later versions send the binding without it
/// and a separate `Q` parameter (1.1 Core §6.2.1, Transport Table 6.2.1-1).
pub fn register(config: &ClientConfig, store: &ObjectStore) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Post);
    options::add_strings(&mut p, CoapOption::UriPath, &["rd"]);
    let queue = config.binding.contains('Q') && config.lwm2m_version != "1.0";
    let binding = if queue {
        config.binding.replace('Q', "")
    } else {
        config.binding.clone()
    };
    let mut query = vec![
        format!("ep={}", config.endpoint),
        format!("lt={}", config.lifetime.as_secs()),
        format!("lwm2m={}", config.lwm2m_version),
        format!("b={binding}"),
    ];
    if queue {
        query.push("Q".to_owned());
    }
    options::add_strings(&mut p, CoapOption::UriQuery, &query);
    with_object_list(&mut p, store);
    p
}

fn location_segments(location: &str) -> Vec<&str> {
    location.split('/').filter(|s| !s.is_empty()).collect()
}

/// `POST {location}`, with `?lt=` when the lifetime changed and the object
/// list only when it changed since the last Register/Update (Transport
/// §6.2.2: an Update carries only the parameters that changed).
pub fn update(
    location: &str,
    store: &ObjectStore,
    objects_changed: bool,
    lifetime: Option<std::time::Duration>,
) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Post);
    options::add_strings(&mut p, CoapOption::UriPath, &location_segments(location));
    if let Some(lt) = lifetime {
        options::add_strings(
            &mut p,
            CoapOption::UriQuery,
            &[format!("lt={}", lt.as_secs())],
        );
    }
    if objects_changed {
        with_object_list(&mut p, store);
    }
    p
}

/// `DELETE {location}`.
pub fn deregister(location: &str) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Delete);
    options::add_strings(&mut p, CoapOption::UriPath, &location_segments(location));
    p
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::coap::wire;
    use crate::model::{ObjectDef, Registry};

    fn object(id: u16, version: &str) -> ObjectDef {
        ObjectDef {
            id,
            name: format!("object {id}"),
            version: version.to_string(),
            urn: format!("urn:oma:lwm2m:oma:{id}"),
            multiple: false,
            mandatory: true,
            resources: BTreeMap::new(),
        }
    }

    #[test]
    fn register_request_is_byte_exact() {
        // LwM2M 1.1 Transport §6.2.1 Register, CoAP encoding per RFC 7252 §3.
        let registry = Registry::from_objects([object(1, "1.0"), object(3, "1.1")]);
        let mut store = ObjectStore::new(registry.clone());
        store.create_instance(1, 0);
        store.create_instance(3, 0);
        let config = ClientConfig {
            endpoint: "meter-1".into(),
            server: "127.0.0.1:5683".parse().unwrap(),
            lifetime: Duration::from_secs(60),
            lwm2m_version: "1.1".into(),
            binding: "U".into(),
            registry,
            preferred_format: ContentFormat::Tlv,
            seed: 0,
            bootstrap: None,
            retry: Default::default(),
        };
        let mut p = register(&config, &store);
        p.header.message_id = 0x1a2b;
        p.set_token(vec![0x0a, 0x0b]);
        let mut expected = vec![0x42, 0x02, 0x1a, 0x2b, 0x0a, 0x0b]; // CON POST, TKL 2
        expected.extend([0xb2, b'r', b'd']); // Uri-Path (11) "rd"
        expected.extend([0x11, 40]); // Content-Format (12) = 40
        expected.push(0x3a); // Uri-Query (15), 10 bytes
        expected.extend(b"ep=meter-1");
        expected.push(0x05);
        expected.extend(b"lt=60");
        expected.push(0x09);
        expected.extend(b"lwm2m=1.1");
        expected.push(0x03);
        expected.extend(b"b=U");
        expected.push(0xff);
        expected.extend(b"</1/0>,</3>;ver=1.1,</3/0>");
        assert_eq!(hex::encode(wire::encode(&p)), hex::encode(&expected));
        assert_eq!(
            crate::coap::summarize(&expected),
            "CON POST mid=0x1a2b tok=0a0b /rd?ep=meter-1&lt=60&lwm2m=1.1&b=U cf=40 len=26"
        );
    }

    #[test]
    fn queue_mode_is_the_q_parameter_from_1_1_and_the_binding_in_1_0() {
        // LwM2M 1.1 Transport Table 6.2.1-1: `Q` is a parameter without a
        // value; LwM2M 1.0 Core §5.3.1.1 binding `UQ`.
        let store = ObjectStore::new(Registry::default());
        let mut config = ClientConfig {
            endpoint: "m".into(),
            server: "127.0.0.1:5683".parse().unwrap(),
            lifetime: Duration::from_secs(60),
            lwm2m_version: "1.1".into(),
            binding: "UQ".into(),
            registry: Registry::default(),
            preferred_format: ContentFormat::Tlv,
            seed: 0,
            bootstrap: None,
            retry: Default::default(),
        };
        let query = |c: &ClientConfig| options::strings(&register(c, &store), CoapOption::UriQuery);
        assert_eq!(query(&config), ["ep=m", "lt=60", "lwm2m=1.1", "b=U", "Q"]);
        let mut p = register(&config, &store);
        p.header.message_id = 1;
        // The last query option: delta 0, length 1, "Q".
        let bytes = wire::encode(&p);
        let tail = &bytes[bytes.len() - 2..];
        assert_eq!(tail, [0x01, b'Q']);
        config.lwm2m_version = "1.0".into();
        assert_eq!(query(&config), ["ep=m", "lt=60", "lwm2m=1.0", "b=UQ"]);
    }

    #[test]
    fn update_and_deregister_address_the_location() {
        let store = ObjectStore::new(Registry::default());
        let u = update("/rd/5a3f", &store, false, None);
        assert_eq!(options::uri_path_string(&u), "/rd/5a3f");
        assert!(u.payload.is_empty());
        assert!(options::strings(&u, CoapOption::UriQuery).is_empty());
        // Transport §6.2.2: `POST /rd/5a3f?lt=40`, byte for byte.
        let mut u = update("/rd/5a3f", &store, false, Some(Duration::from_secs(40)));
        u.header.message_id = 0x0102;
        u.set_token(vec![0x07]);
        let mut expected = vec![0x41, 0x02, 0x01, 0x02, 0x07]; // CON POST, TKL 1
        expected.extend([0xb2, b'r', b'd']); // Uri-Path (11) "rd"
        expected.push(0x04); // Uri-Path, 4 bytes
        expected.extend(b"5a3f");
        expected.push(0x45); // Uri-Query (15), 5 bytes
        expected.extend(b"lt=40");
        assert_eq!(hex::encode(wire::encode(&u)), hex::encode(&expected));
        let d = deregister("/rd/5a3f");
        assert_eq!(wire::encode(&d)[1], 0x04);
    }
}
