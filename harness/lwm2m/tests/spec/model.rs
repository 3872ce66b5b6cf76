//! The object model loaded from the DDF fixtures (fixtures/objects/*.xml) and
//! from vendor DDF text written here, as a lab would drop in its meter's XML.

use std::path::PathBuf;

use lwm2m::model::{parse_ddf, Registry};
use lwm2m::{Operations, Path, ResourceType};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects")
}

const R: Operations = Operations {
    read: true,
    write: false,
    execute: false,
};
const W: Operations = Operations {
    read: false,
    write: true,
    execute: false,
};
const RW: Operations = Operations {
    read: true,
    write: true,
    execute: false,
};
const E: Operations = Operations {
    read: false,
    write: false,
    execute: true,
};
const NONE: Operations = Operations {
    read: false,
    write: false,
    execute: false,
};

/// (path, name, type, operations, multiple, mandatory) facts from the OMA registry.
fn check(
    reg: &Registry,
    path: &str,
    name: &str,
    kind: ResourceType,
    ops: Operations,
    multiple: bool,
    mandatory: bool,
) {
    let p: Path = path.parse().unwrap();
    let r = reg
        .resource(&p)
        .unwrap_or_else(|| panic!("{path} is not in the registry"));
    assert_eq!(r.name, name, "{path}");
    assert_eq!(r.kind, kind, "{path} type");
    assert_eq!(r.operations, ops, "{path} operations");
    assert_eq!(r.multiple, multiple, "{path} multiple");
    assert_eq!(r.mandatory, mandatory, "{path} mandatory");
}

#[test]
fn every_fixture_parses_and_load_dir_finds_them_all() {
    let reg = Registry::load_dir(&fixtures()).unwrap();
    let ids: Vec<u16> = reg.objects().map(|o| o.id).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5, 9, 16, 19, 501, 504]);
    // The compiled-in copy is the same set.
    let core = Registry::core();
    assert_eq!(core.objects().map(|o| o.id).collect::<Vec<_>>(), ids);
    for o in reg.objects() {
        assert_eq!(
            core.object(o.id),
            Some(o),
            "object {} differs from the built-in copy",
            o.id
        );
    }
}

#[test]
fn access_control_object_matches_the_registry() {
    // OMA LwM2M registry 2.xml, version 1.1 (urn:oma:lwm2m:oma:2:1.1), the
    // resources of LwM2M 1.1 Core Appendix E.3: Object ID (R, mandatory),
    // Object Instance ID (R, mandatory), ACL (RW, multiple, optional; one
    // instance per Short Server ID, 0 the default), Access Control Owner
    // (RW, mandatory). Multiple instances, optional object.
    let reg = Registry::core();
    let acl = reg.object(2).unwrap();
    assert_eq!(
        (acl.name.as_str(), acl.multiple, acl.mandatory),
        ("LwM2M Access Control", true, false)
    );
    assert_eq!(acl.version, "1.1");
    assert_eq!(acl.urn, "urn:oma:lwm2m:oma:2:1.1");
    assert_eq!(
        acl.resources.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    use ResourceType::*;
    check(&reg, "/2/0/0", "Object ID", Integer, R, false, true);
    check(
        &reg,
        "/2/0/1",
        "Object Instance ID",
        Integer,
        R,
        false,
        true,
    );
    check(&reg, "/2/0/2", "ACL", Integer, RW, true, false);
    check(
        &reg,
        "/2/0/3",
        "Access Control Owner",
        Integer,
        RW,
        false,
        true,
    );
}

#[test]
fn portfolio_object_matches_the_registry() {
    // OMA LwM2M registry 16.xml, version 1.0 (urn:oma:lwm2m:oma:16):
    // Identity (RW, multiple, mandatory, String), GetAuthData (E, optional),
    // AuthData (R, multiple, optional, String), AuthStatus (R, optional,
    // Integer, range [0-2]). Multiple instances, optional object. The LwM2M
    // 1.1 ETS Write-Composite test (int-230) writes Identity's instances.
    let reg = Registry::core();
    let p = reg.object(16).unwrap();
    assert_eq!(
        (p.name.as_str(), p.multiple, p.mandatory),
        ("Portfolio", true, false)
    );
    assert_eq!(p.version, "1.0");
    assert_eq!(p.urn, "urn:oma:lwm2m:oma:16");
    assert_eq!(
        p.resources.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    use ResourceType::*;
    check(&reg, "/16/0/0", "Identity", String, RW, true, true);
    check(&reg, "/16/0/1", "GetAuthData", None, E, false, false);
    check(&reg, "/16/0/2", "AuthData", String, R, true, false);
    check(&reg, "/16/0/3", "AuthStatus", Integer, R, false, false);
}

#[test]
fn device_object_matches_the_registry() {
    let reg = Registry::core();
    let dev = reg.object(3).unwrap();
    assert_eq!(
        (dev.name.as_str(), dev.multiple, dev.mandatory),
        ("Device", false, true)
    );
    assert_eq!(dev.version, "1.1");
    assert_eq!(dev.urn, "urn:oma:lwm2m:oma:3:1.1");
    use ResourceType::*;
    check(&reg, "/3/0/0", "Manufacturer", String, R, false, false);
    check(&reg, "/3/0/4", "Reboot", None, E, false, true);
    check(
        &reg,
        "/3/0/7",
        "Power Source Voltage",
        Integer,
        R,
        true,
        false,
    );
    check(&reg, "/3/0/11", "Error Code", Integer, R, true, true);
    check(&reg, "/3/0/13", "Current Time", Time, RW, false, false);
    check(
        &reg,
        "/3/0/16",
        "Supported Binding and Modes",
        String,
        R,
        false,
        true,
    );
    check(&reg, "/3/0/22", "ExtDevInfo", Objlnk, R, true, false);
    assert_eq!(
        reg.resource(&"/3/0/7".parse().unwrap())
            .unwrap()
            .units
            .as_deref(),
        Some("mV")
    );
    let mandatory: Vec<u16> = dev.mandatory_resources().map(|r| r.id).collect();
    assert_eq!(mandatory, vec![4, 11, 16]);
}

#[test]
fn connectivity_firmware_and_server_objects_match_the_registry() {
    let reg = Registry::core();
    use ResourceType::*;
    check(&reg, "/4/0/0", "Network Bearer", Integer, R, false, true);
    check(
        &reg,
        "/4/0/1",
        "Available Network Bearer",
        Integer,
        R,
        true,
        true,
    );
    check(
        &reg,
        "/4/0/2",
        "Radio Signal Strength",
        Integer,
        R,
        false,
        true,
    );
    check(&reg, "/4/0/4", "IP Addresses", String, R, true, true);
    check(&reg, "/4/0/7", "APN", String, R, true, false);

    // OMA registry 5.xml v1.1: resources 0-3 and 5-13 (there is no 4, and no 14).
    let fw = reg.object(5).unwrap();
    assert_eq!(
        fw.resources.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    );
    check(&reg, "/5/0/0", "Package", Opaque, W, false, true);
    check(&reg, "/5/0/1", "Package URI", String, RW, false, true);
    check(&reg, "/5/0/2", "Update", None, E, false, true);
    check(&reg, "/5/0/3", "State", Integer, R, false, true);
    check(&reg, "/5/0/5", "Update Result", Integer, R, false, true);
    check(
        &reg,
        "/5/0/13",
        "Maximum Defer Period",
        UnsignedInteger,
        RW,
        false,
        false,
    );

    check(&reg, "/1/0/0", "Short Server ID", Integer, R, false, true);
    check(&reg, "/1/0/1", "Lifetime", Integer, RW, false, true);
    check(&reg, "/1/0/7", "Binding", String, RW, false, true);
    check(
        &reg,
        "/1/0/8",
        "Registration Update Trigger",
        None,
        E,
        false,
        true,
    );
    check(
        &reg,
        "/0/0/0",
        "LWM2M Server URI",
        String,
        NONE,
        false,
        true,
    );
    check(&reg, "/0/0/5", "Secret Key", Opaque, NONE, false, true);
    assert!(reg.object(0).unwrap().multiple && reg.object(0).unwrap().mandatory);
}

#[test]
fn software_container_band_and_rsp_objects_match_the_registry() {
    let reg = Registry::core();
    use ResourceType::*;
    check(&reg, "/9/0/4", "Install", None, E, false, true);
    check(&reg, "/9/0/7", "Update State", Integer, R, false, true);
    check(&reg, "/9/0/12", "Activation State", Boolean, R, false, true);
    check(&reg, "/19/0/0", "Data", Opaque, RW, true, true);
    check(
        &reg,
        "/19/0/2",
        "Data Creation Time",
        Time,
        RW,
        false,
        false,
    );
    check(&reg, "/501/0/1", "EARFCN", Integer, RW, false, true);
    check(
        &reg,
        "/501/0/2",
        "Current Frequency (Downlink)",
        Float,
        R,
        false,
        true,
    );
    check(
        &reg,
        "/501/0/4",
        "Prioritized Channels",
        Integer,
        RW,
        true,
        true,
    );
    check(
        &reg,
        "/504/0/0",
        "Current SIM Type",
        Integer,
        R,
        false,
        true,
    );
    check(
        &reg,
        "/504/0/22",
        "Integrated Circuit Card Identifier (ICCID)",
        String,
        R,
        true,
        true,
    );
    check(
        &reg,
        "/504/0/26",
        "Selected ICCID for RSP operation",
        String,
        RW,
        false,
        false,
    );
    // The registry declares this executable with type String; the model keeps what the file says.
    check(&reg, "/504/0/5", "RSP Update", String, E, false, false);
    check(
        &reg,
        "/504/0/28",
        "RSP User Consent",
        Integer,
        W,
        false,
        false,
    );
}

const VENDOR: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<LWM2M>
	<Object ObjectType="MODefinition">
		<Name>Meter Register Snapshot</Name>
		<Description1><![CDATA[
			Vendor object for a test.
		]]></Description1>
		<ObjectID>26241</ObjectID>
		<ObjectURN>urn:oma:lwm2m:x:26241</ObjectURN>
		<MultipleInstances>Multiple</MultipleInstances>
		<Mandatory>Optional</Mandatory>
		<Resources>
			<Item ID="0">
				<Name>Active Energy Import</Name>
				<Operations>R</Operations>
				<MultipleInstances>Single</MultipleInstances>
				<Mandatory>Mandatory</Mandatory>
				<Type>Unsigned Integer</Type>
				<RangeEnumeration/>
				<Units>Wh</Units>
				<Description>Total imported energy.</Description>
			</Item>
			<Item ID="1">
				<Name>Snapshot</Name>
				<Operations>E</Operations>
				<MultipleInstances>Single</MultipleInstances>
				<Mandatory>Optional</Mandatory>
				<Type/>
			</Item>
			<Item ID="2"><Name>Tariff Names</Name><Operations>RW</Operations><MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory><Type>String</Type></Item>
		</Resources>
	</Object>
</LWM2M>
"#;

#[test]
fn a_vendor_object_is_usable_next_to_the_core_ones() {
    let vendor = parse_ddf("vendor-26241.xml", VENDOR).unwrap();
    assert_eq!(vendor.len(), 1);
    let o = &vendor[0];
    assert_eq!(
        (o.id, o.name.as_str(), o.version.as_str()),
        (26241, "Meter Register Snapshot", "1.0")
    );
    let reg = Registry::core().with(vendor);
    use ResourceType::*;
    check(
        &reg,
        "/26241/0/0",
        "Active Energy Import",
        UnsignedInteger,
        R,
        false,
        true,
    );
    check(&reg, "/26241/3/1", "Snapshot", None, E, false, false);
    check(&reg, "/26241/0/2", "Tariff Names", String, RW, true, false);
    assert!(reg.object(3).is_some(), "core objects stay");

    // A vendor record decodes typed: TLV 8-byte unsigned for resource 0.
    let payload = [0xC8, 0x00, 0x08, 0, 0, 0, 0, 0, 0x01, 0xE2, 0x40];
    let recs = lwm2m::format::decode(
        lwm2m::ContentFormat::Tlv,
        &"/26241/0".parse().unwrap(),
        &payload,
        &reg,
    )
    .unwrap();
    assert_eq!(recs[0].value, lwm2m::Value::Unsigned(123_456));
}

#[test]
fn load_dir_lets_a_later_file_override_an_object() {
    let dir = tempdir();
    std::fs::copy(fixtures().join("3-device.xml"), dir.join("3-device.xml")).unwrap();
    let patched = std::fs::read_to_string(fixtures().join("3-device.xml"))
        .unwrap()
        .replace("<Name>Device</Name>", "<Name>Vendor Device</Name>");
    std::fs::write(dir.join("zz-vendor-device.xml"), patched).unwrap();
    std::fs::write(dir.join("notes.txt"), "not xml").unwrap();
    let reg = Registry::load_dir(&dir).unwrap();
    assert_eq!(reg.len(), 1);
    assert_eq!(reg.object(3).unwrap().name, "Vendor Device");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-model-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn malformed_xml_gives_file_line_and_column() {
    let xml = "<LWM2M>\n  <Object>\n    <Name>Broken</Nme>\n  </Object>\n</LWM2M>\n";
    let e = parse_ddf("broken.xml", xml).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("broken.xml", 3), "{e}");
    assert!(e.column > 1, "{e}");
    assert!(e.to_string().starts_with("broken.xml:3:"), "{e}");
}

#[test]
fn missing_object_id_is_reported_at_the_object() {
    let xml = VENDOR.replace("<ObjectID>26241</ObjectID>", "");
    let e = parse_ddf("vendor.xml", &xml).unwrap_err();
    assert_eq!((e.line, e.column), (3, 2), "{e}");
    assert!(e.reason.contains("expected <ObjectID>"), "{e}");
}

#[test]
fn bad_values_say_what_was_expected() {
    let xml = VENDOR.replace("<ObjectID>26241</ObjectID>", "<ObjectID>65535</ObjectID>");
    let e = parse_ddf("v.xml", &xml).unwrap_err();
    assert_eq!(e.line, 8, "{e}");
    assert!(e.reason.contains("0..=65534"), "{e}");

    let xml = VENDOR.replace("<Operations>RW</Operations>", "<Operations>RX</Operations>");
    let e = parse_ddf("v.xml", &xml).unwrap_err();
    assert!(e.reason.contains("R, W, RW, E or empty"), "{e}");

    let xml = VENDOR.replacen(
        "<MultipleInstances>Single</MultipleInstances>",
        "<MultipleInstances>Many</MultipleInstances>",
        1,
    );
    let e = parse_ddf("v.xml", &xml).unwrap_err();
    assert_eq!(e.line, 16, "{e}");

    let e = parse_ddf("v.xml", "<Other/>").unwrap_err();
    assert!(e.reason.contains("<LWM2M>"), "{e}");
    let e = Registry::load_dir(std::path::Path::new("/nonexistent/dir")).unwrap_err();
    assert!(e.reason.contains("cannot read"), "{e}");
}
