//! What `RigFile::check` refuses for factory-provisioned devices before any
//! bench is touched: a command power placeholder meterbench does not know,
//! and a fixed bootstrap address for a device that does not bootstrap. Each
//! error names the rig file and the field.

use std::path::Path;

use rig::{RigError, RigFile};

fn invalid(e: RigError) -> (String, String, String) {
    match e {
        RigError::Invalid {
            file,
            field,
            message,
        } => (file.display().to_string(), field, message),
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn an_unknown_power_placeholder_is_refused_at_load() {
    let e = RigFile::parse(
        "name: r\ndevice: { endpoint: e, lifetime: 60s }\n\
         power:\n  kind: command\n  on: start --uri {server_url}\n  off: stop\n",
        Path::new("typo-placeholder.yaml"),
    )
    .unwrap_err();
    let (file, field, message) = invalid(e);
    assert_eq!(file, "typo-placeholder.yaml");
    assert_eq!(field, "power.on");
    assert!(message.contains("{server_url}"), "{message}");
    assert!(
        message.contains("{server_uri}"),
        "lists the known ones: {message}"
    );
}

#[test]
fn known_placeholders_and_shell_braces_load() {
    let rig = RigFile::parse(
        "name: r\ndevice: { endpoint: e, lifetime: 60s }\n\
         power:\n  kind: command\n  on: start {endpoint} ${HOME} {{literal}}\n  \
         off: kill $(cat {state_dir}/pid)\n  status: test -e {state_dir}/pid\n",
        Path::new("ok.yaml"),
    )
    .unwrap();
    assert!(rig.power.is_some());
}

#[test]
fn a_placeholder_typo_in_status_names_that_field() {
    let e = RigFile::parse(
        "name: r\ndevice: { endpoint: e, lifetime: 60s }\n\
         power:\n  kind: command\n  on: start\n  off: stop\n  status: check {pid}\n",
        Path::new("status.yaml"),
    )
    .unwrap_err();
    let (_, field, message) = invalid(e);
    assert_eq!(field, "power.status");
    assert!(message.contains("{pid}"), "{message}");
}

#[test]
fn a_bootstrap_bind_without_bootstrap_is_refused() {
    let e = RigFile::parse(
        "name: r\ndevice: { endpoint: e, lifetime: 60s, security: psk, bootstrap: false }\n\
         server:\n  bootstrap_bind: 127.0.0.1:56830\n",
        Path::new("no-bs.yaml"),
    )
    .unwrap_err();
    let (file, field, message) = invalid(e);
    assert_eq!(file, "no-bs.yaml");
    assert_eq!(field, "server.bootstrap_bind");
    assert!(message.contains("127.0.0.1:56830"), "{message}");
    assert!(message.contains("device.bootstrap"), "{message}");
    // The same address with bootstrap is what a fixed factory URI needs.
    let rig = RigFile::parse(
        "name: r\ndevice: { endpoint: e, lifetime: 60s, security: psk, bootstrap: true }\n\
         server:\n  bootstrap_bind: 127.0.0.1:56830\n",
        Path::new("bs.yaml"),
    )
    .unwrap();
    assert_eq!(
        rig.server.bootstrap_bind,
        Some("127.0.0.1:56830".parse().unwrap())
    );
}
