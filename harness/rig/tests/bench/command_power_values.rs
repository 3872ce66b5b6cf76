//! `CommandPower` with device values: placeholders substituted as shell
//! words, the PSK key only in the commands' environment, unknown or
//! valueless placeholders refused naming the rig field. Real `sh` commands.

use std::path::Path;
use std::time::Duration;

use rig::command_power::{check_placeholders, DeviceValues, SecretEnv, PSK_KEY_ENV};
use rig::model::CommandPowerSpec;
use rig::{CommandPower, Power, RigError};

const KEY: [u8; 16] = [
    0x5e, 0xc2, 0xe7, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
];

fn spec(on: &str) -> CommandPowerSpec {
    CommandPowerSpec {
        on: on.into(),
        off: "true".into(),
        status: None,
        timeout: Duration::from_secs(5),
    }
}

fn values(dir: &Path) -> DeviceValues {
    DeviceValues {
        endpoint: Some("meter 1".into()),
        lifetime: Some(Duration::from_secs(45)),
        server_uri: Some("coaps://127.0.0.1:5684".into()),
        bootstrap_uri: None,
        psk_identity: Some("it's-me".into()),
        state_dir: Some(dir.to_owned()),
        rig_dir: Some(dir.join("rigs")),
        meterbench: Some("/opt/mb/meterbench".into()),
    }
}

#[test]
fn placeholders_become_arguments_and_the_key_only_an_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let on = format!(
        "for a in {{endpoint}} {{lifetime}} {{server_uri}} {{psk_identity}} {{meterbench}} {{harness_pid}}; \
         do echo \"$a\"; done > {{state_dir}}/args; \
         if [ -n \"${{{PSK_KEY_ENV}}}\" ]; then echo key-set; fi >> {{state_dir}}/args; \
         echo \"${{#{PSK_KEY_ENV}}}\" >> {{state_dir}}/args"
    );
    let mut p = CommandPower::new(spec(&on));
    p.set_device_values(values(dir.path()), Some(SecretEnv::psk_key(&KEY)))
        .unwrap();
    p.on().unwrap();
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    let lines: Vec<&str> = args.lines().collect();
    assert_eq!(
        lines,
        [
            "meter 1",
            "45",
            "coaps://127.0.0.1:5684",
            "it's-me",
            "/opt/mb/meterbench",
            &std::process::id().to_string(),
            "key-set",
            "32", // the hex key's length: present, and not on any line above
        ]
    );
    assert!(!args.contains("5ec2e7"), "{args}");
}

#[test]
fn a_failing_command_error_quotes_the_substituted_command_but_never_the_key() {
    let mut p = CommandPower::new(spec(&format!(
        "echo starting {{endpoint}} >&2; [ -z \"${PSK_KEY_ENV}\" ]"
    )));
    p.set_device_values(values(Path::new("/tmp")), Some(SecretEnv::psk_key(&KEY)))
        .unwrap();
    let e = p.on().unwrap_err();
    let RigError::PowerCommand {
        command, stderr, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(command.contains("'meter 1'"), "{command}");
    assert_eq!(stderr, "starting meter 1");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("5ec2e7"), "{shown}");
}

#[test]
fn without_a_secret_the_variable_is_not_set() {
    let dir = tempfile::tempdir().unwrap();
    let on = format!("echo \"[${{{PSK_KEY_ENV}-unset}}]\" > {{state_dir}}/env");
    let mut p = CommandPower::new(spec(&on));
    p.set_device_values(values(dir.path()), None).unwrap();
    p.on().unwrap();
    let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    assert_eq!(env.trim(), "[unset]");
}

#[test]
fn an_unknown_placeholder_is_refused_naming_the_field() {
    let mut spec = spec("true");
    spec.status = Some("test -f {stat_dir}/pid".into());
    let e = check_placeholders(&spec, Path::new("rigs/r.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rigs/r.yaml: power.status: unknown placeholder `{stat_dir}`"),
        "{e}"
    );
    assert!(e.contains("{state_dir}"), "{e}");
    let mut p = CommandPower::new(spec);
    let e = p
        .set_device_values(DeviceValues::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("power.status: unknown placeholder `{stat_dir}`"),
        "{e}"
    );
}

#[test]
fn a_placeholder_without_a_value_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let mut p = CommandPower::new(spec(&format!(
        "touch {}; echo {{bootstrap_uri}}",
        marker.display()
    )));
    let e = p
        .set_device_values(values(dir.path()), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("power.on uses `{bootstrap_uri}`"), "{e}");
    let e = p.on().unwrap_err().to_string();
    assert!(e.contains("power.on uses `{bootstrap_uri}`"), "{e}");
    assert!(
        !marker.exists(),
        "the command must not run half-substituted"
    );
}

#[test]
fn shell_braces_and_escapes_are_left_to_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let on = "{ echo one; } > {state_dir}/out; echo a b | awk '{print $2}' >> {state_dir}/out; \
              echo '{{endpoint}}' >> {state_dir}/out; X=x; echo ${X} >> {state_dir}/out";
    check_placeholders(&spec(on), Path::new("r.yaml")).unwrap();
    let mut p = CommandPower::new(spec(on));
    p.set_device_values(values(dir.path()), None).unwrap();
    p.on().unwrap();
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert_eq!(out, "one\nb\n{endpoint}\nx\n");
}

#[test]
fn new_without_values_still_runs_commands_without_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("state");
    let mut p = CommandPower::new(CommandPowerSpec {
        on: format!("echo on > {}", f.display()),
        off: format!("echo off > {}", f.display()),
        status: Some(format!("grep -q on {}", f.display())),
        timeout: Duration::from_secs(5),
    });
    p.on().unwrap();
    assert!(p.is_on());
    p.off().unwrap();
    assert!(!p.is_on());
}
