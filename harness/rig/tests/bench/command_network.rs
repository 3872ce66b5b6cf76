//! `CommandNetwork` against real shell commands writing what the "emulator" was told.

use std::collections::BTreeMap;
use std::time::Duration;

use rig::model::CommandNetworkSpec;
use rig::{CommandNetwork, Network, NetworkAction, ProfileSlot, RigError};

fn spec(dir: &std::path::Path) -> CommandNetworkSpec {
    let f = dir.join("barred");
    let f = f.display();
    CommandNetworkSpec {
        refuse: BTreeMap::from([("second-profile".to_string(), format!("echo 00102 > {f}"))]),
        accept_all: format!("rm -f {f}"),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn refuse_and_accept_all_run_the_rigs_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = CommandNetwork::new(spec(dir.path()));
    let refuse_second = NetworkAction::Refuse(ProfileSlot(2));
    assert!(n.supports(&refuse_second));
    assert!(n.supports(&NetworkAction::AcceptAll));
    n.apply(&refuse_second).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("barred")).unwrap(),
        "00102\n"
    );
    n.apply(&NetworkAction::AcceptAll).unwrap();
    assert!(!dir.path().join("barred").exists());
    assert!(n.describe().contains("rm -f"));
}

#[test]
fn a_profile_the_rig_gives_no_command_for_is_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = CommandNetwork::new(spec(dir.path()));
    let refuse_first = NetworkAction::Refuse(ProfileSlot(1));
    assert!(!n.supports(&refuse_first));
    let err = n.apply(&refuse_first).unwrap_err();
    assert!(err.to_string().contains("refuse first-profile"), "{err}");
}

#[test]
fn a_failing_or_hanging_command_is_an_error_naming_it() {
    let mut n = CommandNetwork::new(CommandNetworkSpec {
        refuse: BTreeMap::from([("first-profile".to_string(), "sleep 5".to_string())]),
        accept_all: "echo emulator offline >&2; exit 4".into(),
        timeout: Duration::from_millis(300),
    });
    let err = n.apply(&NetworkAction::AcceptAll).unwrap_err();
    let RigError::NetworkCommand {
        outcome, stderr, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(outcome, "exited with status 4");
    assert_eq!(stderr, "emulator offline");
    let err = n.apply(&NetworkAction::Refuse(ProfileSlot(1))).unwrap_err();
    assert!(matches!(err, RigError::NetworkTimeout { .. }), "{err:?}");
}
