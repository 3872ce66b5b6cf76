//! What `RigFile::check` refuses in a rig's `device.smartcard` (Bootstrap
//! from Smartcard, LwM2M 1.1 Core §6.1.3.2) before any bench is touched: a
//! lab's card that names no server or claims a per-run key, a card
//! meterbench is asked to write into a device that is not the virtual
//! meter, a reserved Short Server ID. Each error names the file and field.

use std::path::Path;

use rig::model::{CardProvisioning, CredentialSource};
use rig::{RigError, RigFile};

fn rig(card: &str, power: &str) -> Result<RigFile, RigError> {
    RigFile::parse(
        &format!(
            "name: card\ndevice:\n  endpoint: e\n  lifetime: 60s\n  smartcard: {card}\n{power}"
        ),
        Path::new("card.yaml"),
    )
}

fn field_of(e: RigError) -> (String, String) {
    match e {
        RigError::Invalid {
            file,
            field,
            message,
        } => {
            assert_eq!(file, Path::new("card.yaml"));
            (field, message)
        }
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn the_virtual_meters_card_and_a_lab_card_load() {
    let virtual_card = rig(
        "{ provisioned_by: meterbench }",
        "power: { kind: virtual }\n",
    )
    .unwrap();
    let card = virtual_card.device.smartcard.unwrap();
    assert_eq!(card.provisioned_by, CardProvisioning::Meterbench);
    assert_eq!(card.short_server_id, 1, "the default Short Server ID");
    assert_eq!(card.server_uri, None);

    let lab = rig(
        "{ provisioned_by: lab, server_uri: \"coaps://192.0.2.10:5684\", short_server_id: 7, \
         credentials: { from: env, identity: CARD_ID, key: CARD_KEY } }",
        "",
    )
    .unwrap();
    let card = lab.device.smartcard.unwrap();
    assert_eq!(card.short_server_id, 7);
    assert_eq!(
        card.credentials,
        Some(CredentialSource::Env {
            identity: "CARD_ID".into(),
            key: "CARD_KEY".into()
        })
    );
}

#[test]
fn a_lab_card_names_its_server_and_no_per_run_key() {
    let (field, message) = field_of(rig("{ provisioned_by: lab }", "").unwrap_err());
    assert_eq!(field, "device.smartcard.server_uri");
    assert!(message.contains("URI"), "{message}");
    let (field, message) = field_of(
        rig(
            "{ provisioned_by: lab, server_uri: \"coaps://192.0.2.10:5684\", credentials: { from: fresh } }",
            "",
        )
        .unwrap_err(),
    );
    assert_eq!(field, "device.smartcard.credentials");
    assert!(message.contains("fresh"), "{message}");
    let (field, _) = field_of(
        rig(
            "{ provisioned_by: lab, server_uri: \"http://192.0.2.10\" }",
            "",
        )
        .unwrap_err(),
    );
    assert_eq!(field, "device.smartcard.server_uri");
}

#[test]
fn meterbench_writes_only_the_virtual_meters_card() {
    let (field, message) = field_of(
        rig(
            "{ provisioned_by: meterbench }",
            "power:\n  kind: command\n  on: relay on\n  off: relay off\n",
        )
        .unwrap_err(),
    );
    assert_eq!(field, "device.smartcard.provisioned_by");
    assert!(message.contains("provisioned_by: lab"), "{message}");
    let (field, _) = field_of(rig("{ provisioned_by: meterbench }", "").unwrap_err());
    assert_eq!(field, "device.smartcard.provisioned_by");
}

#[test]
fn reserved_short_server_ids_are_refused() {
    for id in [0, 65535] {
        let (field, message) = field_of(
            rig(
                &format!("{{ provisioned_by: meterbench, short_server_id: {id} }}"),
                "power: { kind: virtual }\n",
            )
            .unwrap_err(),
        );
        assert_eq!(field, "device.smartcard.short_server_id");
        assert!(message.contains("1 to 65534"), "{message}");
    }
}
