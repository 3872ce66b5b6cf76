//! Object 0 (LwM2M Security) as the fixture defines it, checked resource by
//! resource against the OMA file for the version it claims, object 0 v1.1:
//! OMA-SUP-XML_LWM2M_Security-V1_1_1-20190617-A (`LWM2M_Security-v1_1_1.xml`,
//! urn:oma:lwm2m:oma:0:1.1, the text LwM2M 1.1.1 Core Appendix E.1 gives).
//! Every resource has no operation (only a Bootstrap-Server touches the
//! object, Core §E.1), and 13 Matching Type is an Unsigned Integer there.

use lwm2m::model::Registry;
use lwm2m::{Operations, ResourceType};

/// (id, name, type, multiple, mandatory) of each resource of the OMA file,
/// in its order.
const OMA_0_V1_1: &[(u16, &str, ResourceType, bool, bool)] = {
    use ResourceType::*;
    &[
        (0, "LWM2M Server URI", String, false, true),
        (1, "Bootstrap-Server", Boolean, false, true),
        (2, "Security Mode", Integer, false, true),
        (3, "Public Key or Identity", Opaque, false, true),
        (4, "Server Public Key", Opaque, false, true),
        (5, "Secret Key", Opaque, false, true),
        (6, "SMS Security Mode", Integer, false, false),
        (7, "SMS Binding Key Parameters", Opaque, false, false),
        (8, "SMS Binding Secret Key(s)", Opaque, false, false),
        (9, "LwM2M Server SMS Number", String, false, false),
        (10, "Short Server ID", Integer, false, false),
        (11, "Client Hold Off Time", Integer, false, false),
        (
            12,
            "Bootstrap-Server Account Timeout",
            Integer,
            false,
            false,
        ),
        (13, "Matching Type", UnsignedInteger, false, false),
        (14, "SNI", String, false, false),
        (15, "Certificate Usage", Integer, false, false),
        (16, "DTLS/TLS Ciphersuite", Integer, true, false),
        (17, "OSCORE Security Mode", Objlnk, false, false),
    ]
};

#[test]
fn the_security_object_is_object_0_version_1_1_as_oma_defines_it() {
    let registry = Registry::core();
    let object = registry.object(0).expect("object 0 is a core object");
    assert!(
        object.multiple && object.mandatory,
        "object 0: Multiple, Mandatory"
    );
    assert_eq!(
        object.resources.keys().copied().collect::<Vec<_>>(),
        OMA_0_V1_1.iter().map(|r| r.0).collect::<Vec<_>>(),
        "object 0 v1.1 has resources 0..=17, no other"
    );
    let none = Operations {
        read: false,
        write: false,
        execute: false,
    };
    for &(id, name, kind, multiple, mandatory) in OMA_0_V1_1 {
        let r = &object.resources[&id];
        // The OMA file writes "LWM2M  Server URI" with two spaces.
        assert_eq!(
            r.name.split_whitespace().collect::<Vec<_>>(),
            name.split_whitespace().collect::<Vec<_>>(),
            "/0/x/{id} name"
        );
        assert_eq!(r.kind, kind, "/0/x/{id} {name}: type");
        assert_eq!(r.operations, none, "/0/x/{id} {name}: operations");
        assert_eq!(r.multiple, multiple, "/0/x/{id} {name}: multiple");
        assert_eq!(r.mandatory, mandatory, "/0/x/{id} {name}: mandatory");
    }
}
