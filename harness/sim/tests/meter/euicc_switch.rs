//! eUICC profile switches on the real meter process: over AT (the lab's way),
//! with a profile the network refuses (fallback), across a power cut, and by
//! the server through object 504 over real UDP (the device re-registers).

use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, RequestType, ResponseType};
use rig::{Debug as _, Power as _};
use sim::euicc::SECOND_PROFILE_ICCID;
use sim::{VirtualDebug, VirtualPower};

use crate::bench::{bring_up, request, spec, Port, Server, WAIT};

/// Fallback comes after the 8 s attach timeout, plus 1 s to re-attach.
const FALLBACK_WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_switch_over_at_detaches_enables_attaches_and_survives_a_power_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 31));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    let first = port.command("AT+CCID")[0].clone();
    let listed = port.command("AT+MBPROF?");
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed[0].ends_with(",\"meterbench-home\",1"), "{listed:?}");
    assert_eq!(
        listed[1],
        format!("+MBPROF: 2,\"{SECOND_PROFILE_ICCID}\",\"meterbench-roam\",0")
    );

    assert_eq!(port.command("AT+MBPROF=2"), vec!["OK"]);
    port.wait_for("+CEREG: 0");
    port.wait_for("+CEREG: 1");
    assert_eq!(
        port.wait_for("+MBSWITCH:"),
        format!("+MBSWITCH: 1,\"{SECOND_PROFILE_ICCID}\"")
    );
    assert_eq!(
        port.command("AT+CCID"),
        vec![format!("+CCID: {SECOND_PROFILE_ICCID}"), "OK".into()]
    );
    assert_eq!(port.command("AT+CEREG?"), vec!["+CEREG: 0,1", "OK"]);
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["euicc.enabled"], "2");
    assert_eq!(state["euicc.last_result"], "1");

    power.off().unwrap();
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(
        port.command("AT+CCID")[0],
        format!("+CCID: {SECOND_PROFILE_ICCID}")
    );
    assert_eq!(port.command("AT+MBPROF=1"), vec!["OK"]);
    port.wait_for("+MBSWITCH: 1");
    assert_eq!(port.command("AT+CCID")[0], first);
}

#[test]
fn a_switch_to_a_refused_profile_falls_back_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 32));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    let first = port.command("AT+CCID")[0].clone();
    assert_eq!(port.command("AT+MBNETFAIL=2,1"), vec!["OK"]);
    assert_eq!(port.command("AT+MBPROF=2"), vec!["OK"]);
    port.wait_for("+CEREG: 0");
    assert_eq!(
        port.command("AT+CEREG?"),
        vec!["+CEREG: 0,2", "OK"],
        "searching"
    );
    assert_eq!(
        port.command("AT+MBPROF=1"),
        vec!["+CME ERROR: 3"],
        "busy switching"
    );
    assert_eq!(
        port.wait_for_within("+MBSWITCH:", FALLBACK_WAIT),
        format!("+MBSWITCH: 13,\"{SECOND_PROFILE_ICCID}\"")
    );
    port.wait_for("+CEREG: 1");
    assert_eq!(port.command("AT+CCID")[0], first);
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["euicc.enabled"], "1");
    assert_eq!(state["euicc.last_result"], "13");
    assert_eq!(state["euicc.switching"], "false");
}

#[test]
fn a_power_cut_during_a_switch_ends_on_a_working_profile() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 33));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    let first = port.command("AT+CCID")[0].clone();
    port.command("AT+MBNETFAIL=2,1");
    port.command("AT+MBPROF=2");
    port.wait_for("+CEREG: 0");
    assert_eq!(
        VirtualDebug::new(dir.path()).read_state().unwrap()["euicc.switching"],
        "true"
    );
    power.off().unwrap();
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    // The interrupted switch resumes and falls back.
    assert_eq!(
        port.wait_for_within("+MBSWITCH:", FALLBACK_WAIT),
        format!("+MBSWITCH: 13,\"{SECOND_PROFILE_ICCID}\"")
    );
    port.wait_for("+CEREG: 1");
    port.command("ATE0");
    assert_eq!(port.command("AT+CCID")[0], first);
}

#[test]
fn the_server_switches_profiles_through_object_504_and_the_device_registers_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new();
    let mut power = VirtualPower::new(spec(dir.path(), 34));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    let (reg, peer) = bring_up(&mut port, &server, "s1");
    let links = String::from_utf8_lossy(&reg.payload).into_owned();
    for want in ["</19/0>", "</501/0>", "</504/0>"] {
        assert!(links.contains(want), "{want} in {links}");
    }
    assert_eq!(server.read_text(peer, "/504/0/7", 1), "0");
    assert_eq!(server.read_text(peer, "/4/0/9", 2), "1");

    let mut select = request(RequestType::Put, "/504/0/26");
    select.set_content_format(coap_lite::ContentFormat::TextPlain);
    select.payload = SECOND_PROFILE_ICCID.as_bytes().to_vec();
    let r = server.exchange(peer, select, 3);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let mut enable = request(RequestType::Post, "/504/0/5");
    enable.payload = b"2".to_vec();
    let r = server.exchange(peer, enable, 4);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));

    port.wait_for("+CEREG: 0");
    let (_, peer2) = server.accept_register(WAIT, "s2");
    assert_ne!(peer2, peer, "a new session after the re-attach");
    assert_eq!(
        server.read_text(peer2, "/504/0/22/0", 5),
        SECOND_PROFILE_ICCID
    );
    assert_eq!(server.read_text(peer2, "/504/0/7", 6), "1");
    assert_eq!(server.read_text(peer2, "/504/0/2", 7), "meterbench-roam");
    assert_eq!(server.read_text(peer2, "/4/0/9", 8), "2");
    assert_eq!(
        server.read_text(peer2, "/4/0/7/0", 9),
        "roam.meterbench.iot"
    );

    // A selected ICCID that is no profile: result 16, no switch.
    let mut select = request(RequestType::Put, "/504/0/26");
    select.set_content_format(coap_lite::ContentFormat::TextPlain);
    select.payload = b"8900000000000000000".to_vec();
    server.exchange(peer2, select, 10);
    let r = server.exchange(peer2, request(RequestType::Post, "/504/0/5"), 11);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    assert_eq!(server.read_text(peer2, "/504/0/7", 12), "16");
    let mut ignored = request(RequestType::Get, "/504/0/1");
    ignored.add_option(CoapOption::Accept, vec![0]);
    let r = server.exchange(peer2, ignored, 13);
    assert_ne!(
        r.header.code,
        MessageClass::Response(ResponseType::Content),
        "a multiple resource is not text"
    );
}
