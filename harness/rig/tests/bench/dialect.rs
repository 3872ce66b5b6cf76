//! The dialect file: loading, rendering templates, telling final result
//! codes and URCs apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rig::{Dialect, FinalResult, RigError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn virtual_dialect() -> Dialect {
    Dialect::find("meterbench-virtual", &fixtures()).unwrap()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn virtual_dialect_loads() {
    let d = virtual_dialect();
    assert_eq!(d.boot_urc.as_deref(), Some("+SYSSTART"));
    assert_eq!(d.boot_timeout, Duration::from_secs(10));
    assert_eq!(d.command_timeout, Duration::from_secs(5));
    assert_eq!(d.bring_up.first().map(String::as_str), Some("echo_off"));
    assert_eq!(
        d.variables("lwm2m_server").unwrap(),
        vec!["uri".to_string()]
    );
}

#[test]
fn render_fills_placeholders() {
    let d = virtual_dialect();
    assert_eq!(
        d.render("lwm2m_server", &vars(&[("uri", "coap://127.0.0.1:5683")]))
            .unwrap(),
        r#"AT+LWM2MSRV="coap://127.0.0.1:5683""#
    );
    assert_eq!(
        d.render("lwm2m_lifetime", &vars(&[("lifetime", "30")]))
            .unwrap(),
        "AT+LWM2MLT=30"
    );
    assert_eq!(d.render("attention", &BTreeMap::new()).unwrap(), "AT");
}

#[test]
fn render_names_a_missing_variable() {
    let err = virtual_dialect()
        .render("lwm2m_endpoint", &vars(&[("uri", "x")]))
        .unwrap_err();
    assert!(matches!(err, RigError::Template { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("missing variable `endpoint`"), "{text}");
    assert!(text.contains("lwm2m_endpoint"), "{text}");
}

#[test]
fn render_names_an_unknown_command() {
    let err = virtual_dialect()
        .render("warp_drive", &BTreeMap::new())
        .unwrap_err();
    let RigError::UnknownCommand { command, known, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(command, "warp_drive");
    assert!(known.contains(&"attention".to_string()));
}

#[test]
fn render_refuses_line_breaks_in_values() {
    let err = virtual_dialect()
        .render("lwm2m_endpoint", &vars(&[("endpoint", "ep\r\nAT+CFUN=0")]))
        .unwrap_err();
    assert!(err.to_string().contains("control character"), "{err}");
}

#[test]
fn final_result_codes_are_recognised() {
    let d = virtual_dialect();
    assert_eq!(d.is_final("OK"), Some(FinalResult::Ok));
    assert_eq!(d.is_final("ERROR"), Some(FinalResult::Error));
    assert_eq!(
        d.is_final("+CME ERROR: 10"),
        Some(FinalResult::CmeError(10))
    );
    assert_eq!(
        d.is_final("+CME ERROR: SIM not inserted"),
        Some(FinalResult::CmeErrorText("SIM not inserted".into()))
    );
    assert_eq!(d.is_final("OKAY"), None);
    assert_eq!(d.is_final("+CSQ: 20,99"), None);
}

#[test]
fn urcs_are_recognised_by_prefix() {
    let d = virtual_dialect();
    assert!(d.is_urc("+CEREG: 1"));
    assert!(d.is_urc("+SYSSTART"));
    assert!(!d.is_urc("+CSQ: 20,99"));
    assert!(!d.is_urc("OK"));
}

#[test]
fn missing_dialect_names_where_it_looked() {
    let err = Dialect::find("no-such-modem", &fixtures()).unwrap_err();
    assert!(err.to_string().contains("no-such-modem.yaml"), "{err}");
}

#[test]
fn bring_up_must_name_known_commands() {
    let text =
        "name: t\nfinal: { ok: [OK], error: [ERROR] }\ncommands: { a: AT }\nbring_up: [a, b]\n";
    let err = Dialect::parse(text, Path::new("t.yaml")).unwrap_err();
    assert!(err.to_string().contains("bring_up[1]: `b`"), "{err}");
}

#[test]
fn malformed_template_is_refused_at_load() {
    let text = "name: t\nfinal: { ok: [OK], error: [ERROR] }\ncommands: { a: 'AT+X={oops' }\n";
    let err = Dialect::parse(text, Path::new("t.yaml")).unwrap_err();
    assert!(err.to_string().contains("unclosed"), "{err}");
}

#[test]
fn unknown_dialect_field_gives_line_and_column() {
    let text =
        "name: t\nfinal: { ok: [OK], error: [ERROR] }\ncommands: { a: AT }\nurc_prefix: [x]\n";
    let err = Dialect::parse(text, Path::new("t.yaml")).unwrap_err();
    assert!(
        matches!(
            err,
            RigError::File {
                line: 4,
                column: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn braces_escape() {
    let text =
        "name: t\nfinal: { ok: [OK], error: [ERROR] }\ncommands: { a: 'AT+J={{\"k\":{v}}}' }\n";
    let d = Dialect::parse(text, Path::new("t.yaml")).unwrap();
    assert_eq!(
        d.render("a", &vars(&[("v", "1")])).unwrap(),
        r#"AT+J={"k":1}"#
    );
}
