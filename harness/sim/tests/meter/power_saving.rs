//! PSM and eDRX on the virtual meter's modem: the settings are kept in NV
//! across a power cycle, and with eDRX on the meter does not hear a request
//! between paging windows; the network holds it and the meter answers it
//! when the next paging window opens (TS 24.008 §10.5.5.32 values, TS
//! 23.682 §4.5.13). Loopback only; every wait is bounded.

use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, RequestType, ResponseType};
use rig::Power as _;

use crate::bench::{bring_up, power_on, request, Port, Server};

#[test]
fn psm_and_edrx_settings_survive_a_power_cycle() {
    let (_dir, mut power, mut port) = power_on(31);
    port.command("ATE0");
    assert_eq!(
        port.command(r#"AT+CPSMS=1,,,"01100101","00000001""#),
        vec!["OK"]
    );
    assert_eq!(port.command(r#"AT+CEDRXS=1,5,"0010""#), vec!["OK"]);
    power.off().unwrap();
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(
        port.command("AT+CPSMS?"),
        vec![r#"+CPSMS: 1,,,"01100101","00000001""#, "OK"]
    );
    assert_eq!(
        port.command("AT+CEDRXS?"),
        vec![r#"+CEDRXS: 5,"0010""#, "OK"]
    );
    // Turned off, it stays off after the next cycle too.
    assert_eq!(port.command("AT+CPSMS=0"), vec!["OK"]);
    power.off().unwrap();
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(
        port.command("AT+CPSMS?"),
        vec![r#"+CPSMS: 0,,,"01100101","00000001""#, "OK"]
    );
}

#[test]
fn a_request_sent_between_paging_windows_is_answered_in_the_next_window() {
    let server = Server::new();
    let (_dir, power, mut port) = power_on(32);
    port.command("ATE0");
    // LTE-M, 5.12 s cycle; the network grants a 1.28 s window.
    assert_eq!(port.command(r#"AT+CEDRXS=1,4,"0000""#), vec!["OK"]);
    assert_eq!(
        port.command("AT+CEDRXRDP"),
        vec![r#"+CEDRXRDP: 4,"0000","0000","0000""#, "OK"]
    );
    let (_, peer) = bring_up(&mut port, &server, "e");

    // Idle after the registration, past its first paging window: asleep.
    port.wait_for_within("+LWM2M: edrx sleeping", Duration::from_secs(10));
    let mut read = request(RequestType::Get, "/3/0/0");
    read.add_option(CoapOption::Accept, vec![0]);
    let resp = server.exchange(peer, read, 0x300);
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    // The answer came from the next window: the meter announced it (the URC
    // is written before the held request is handled).
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut window = false;
    while let Some(l) = port.line(deadline) {
        if l == "+LWM2M: paging window" {
            window = true;
            break;
        }
    }
    assert!(window, "no paging window announced before the answer");
    let log = std::fs::read_to_string(power.spec().device_log_path()).unwrap();
    let held = log
        .find("held by the network for the next window")
        .unwrap_or_else(|| panic!("the request was not held:\n{log}"));
    let delivered = log
        .find("held datagrams delivered in the paging window")
        .unwrap_or_else(|| panic!("nothing delivered in a window:\n{log}"));
    assert!(held < delivered, "{log}");
}
