//! `CommandPower` against real shell commands writing a state file.

use std::time::{Duration, Instant};

use rig::model::CommandPowerSpec;
use rig::{CommandPower, Power, RigError};

fn spec(dir: &std::path::Path, status: bool) -> CommandPowerSpec {
    let f = dir.join("state");
    let f = f.display();
    CommandPowerSpec {
        on: format!("echo on > {f}"),
        off: format!("echo off > {f}"),
        status: status.then(|| format!("grep -q on {f}")),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn on_off_and_status_run_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = CommandPower::new(spec(dir.path(), true));
    assert!(!p.is_on(), "no state file yet: status exits non-zero");
    p.on().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state")).unwrap(),
        "on\n"
    );
    assert!(p.is_on());
    p.off().unwrap();
    assert!(!p.is_on());
    assert!(p.describe().contains("echo on"));
}

#[test]
fn without_status_the_last_commanded_state_is_assumed() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = CommandPower::new(spec(dir.path(), false));
    assert!(!p.is_on());
    p.on().unwrap();
    assert!(p.is_on());
    p.off().unwrap();
    assert!(!p.is_on());
}

#[test]
fn failing_command_reports_status_and_stderr() {
    let mut p = CommandPower::new(CommandPowerSpec {
        on: "echo relay not found >&2; exit 3".into(),
        off: "true".into(),
        status: None,
        timeout: Duration::from_secs(5),
    });
    let err = p.on().unwrap_err();
    let RigError::PowerCommand {
        outcome, stderr, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(outcome, "exited with status 3");
    assert_eq!(stderr, "relay not found");
    assert!(!p.is_on(), "a failed on() does not count as on");
}

#[test]
fn hanging_command_is_killed_at_the_timeout() {
    let mut p = CommandPower::new(CommandPowerSpec {
        on: "sleep 30".into(),
        off: "true".into(),
        status: None,
        timeout: Duration::from_millis(300),
    });
    let started = Instant::now();
    let err = p.on().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, RigError::PowerTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains("sleep 30"), "{err}");
}
