//! The virtual meter as a process: powered by `VirtualPower`, spoken to over
//! its PTY with AT, registering over real UDP with a CoAP server the test
//! plays by hand (coap-lite). Loopback only; every wait is bounded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use rig::{Debug as _, Power as _};
use sim::{VirtualDebug, VirtualPower};

use crate::bench::{bring_up, power_on, query, recv, request, spec, Port, Server, WAIT};

fn pid_alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

#[test]
fn power_on_publishes_a_pty_that_answers_at() {
    let (_dir, mut power, mut port) = power_on(1);
    assert!(power.is_on());
    assert_eq!(port.command("AT"), vec!["OK"]);
    assert_eq!(port.command("AT+CGMI"), vec!["meterbench", "OK"]);
    assert_eq!(port.command("ATE0"), vec!["OK"]);
    assert_eq!(port.command("AT+CFUN?"), vec!["+CFUN: 1", "OK"]);
    assert_eq!(port.command("AT+CEREG?"), vec!["+CEREG: 0,1", "OK"]);
    assert_eq!(port.command("AT+NOPE"), vec!["ERROR"]);
    assert_eq!(
        port.command("AT+LWM2MSTART"),
        vec!["+CME ERROR: 3"],
        "no server configured yet"
    );
    let csq = port.command("AT+CSQ");
    assert!(csq[0].starts_with("+CSQ: ") && csq[1] == "OK", "{csq:?}");
    // The boot URC was printed before anyone opened the port and is still there to read.
    assert!(
        port.seen.iter().any(|l| l == "+SYSSTART"),
        "{:?}",
        port.seen
    );
    power.off().unwrap();
}

#[test]
fn lwm2m_start_registers_with_the_configured_server_and_autostarts_after_power_cycle() {
    let server = Server::new();
    let (dir, mut power, mut port) = power_on(2);
    port.command("ATE0");
    assert_eq!(
        port.command(&format!("AT+LWM2MSRV=\"{}\"", server.uri())),
        vec!["OK"]
    );
    assert_eq!(port.command("AT+LWM2MEP=\"meter-under-test\""), vec!["OK"]);
    assert_eq!(port.command("AT+LWM2MLT=60"), vec!["OK"]);
    assert_eq!(port.command("AT+LWM2MSTART"), vec!["OK"]);

    let (reg, peer) = server.register_within(WAIT);
    assert!(peer.ip().is_loopback());
    let q = query(&reg);
    assert!(q.contains(&"ep=meter-under-test".to_owned()), "{q:?}");
    assert!(q.contains(&"lt=60".to_owned()), "{q:?}");
    let objects = String::from_utf8_lossy(&reg.payload).into_owned();
    assert!(objects.contains("</3/0>"), "object list {objects:?}");
    server.reply(&reg, peer, ResponseType::Created, &["rd", "m1"]);
    assert_eq!(
        port.wait_for("+LWM2M: registered"),
        "+LWM2M: registered /rd/m1"
    );

    // Power cut, then power on: the client was enabled, so it registers by itself.
    power.off().unwrap();
    power.on().unwrap();
    let (reg2, _) = server.register_within(WAIT);
    assert!(query(&reg2).contains(&"ep=meter-under-test".to_owned()));
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["boot_count"], "2");
    assert_eq!(state["lwm2m.enabled"], "true");
}

#[test]
fn server_reboot_execute_is_answered_then_the_meter_reboots_and_registers_again() {
    let server = Server::new();
    let (dir, _power, mut port) = power_on(3);
    let (_, peer) = bring_up(&mut port, &server, "x");

    let mut exec = Packet::new();
    exec.header.set_type(MessageType::Confirmable);
    exec.header.message_id = 0x4242;
    exec.header.code = MessageClass::Request(RequestType::Post);
    exec.set_token(vec![1, 2, 3, 4]);
    for seg in ["3", "0", "4"] {
        exec.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    server
        .socket
        .send_to(&exec.to_bytes().unwrap(), peer)
        .unwrap();

    // The Execute's answer comes first, then (maybe a De-register, then) a new Register.
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    let mut answered = false;
    while !answered && Instant::now() < deadline {
        let (n, _) = recv(&server.socket, &mut buf).unwrap();
        let p = Packet::from_bytes(&buf[..n]).unwrap();
        if p.header.message_id == 0x4242 && matches!(p.header.code, MessageClass::Response(_)) {
            assert_eq!(p.header.code, MessageClass::Response(ResponseType::Changed));
            answered = true;
        }
    }
    assert!(answered, "Execute /3/0/4 answered 2.04");
    port.wait_for("+LWM2M: reboot");
    port.wait_for("+SYSSTART");
    let (reg2, peer2) = server.register_within(WAIT);
    server.reply(&reg2, peer2, ResponseType::Created, &["rd", "y"]);
    assert_eq!(
        port.wait_for("+LWM2M: registered"),
        "+LWM2M: registered /rd/y"
    );
    assert_eq!(
        VirtualDebug::new(dir.path()).read_state().unwrap()["boot_count"],
        "2"
    );
}

#[test]
fn power_off_kills_the_process_and_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 4));
    power.on().unwrap();
    let pid = power.pid().expect("running");
    let mut port = Port::open(&power.spec().pty_path());
    assert_eq!(port.command("AT"), vec!["OK"]);
    power.off().unwrap();
    assert!(!power.is_on());
    assert!(
        !pid_alive(pid),
        "meter process {pid} is gone (killed and reaped)"
    );
    assert!(
        std::fs::symlink_metadata(power.spec().pty_path()).is_err(),
        "PTY link removed"
    );
    // The old port is dead: nothing answers any more.
    let _ = port.write_raw(b"AT\r");
    assert_eq!(port.line(Instant::now() + Duration::from_millis(500)), None);
    power.off().unwrap(); // off twice is fine
}

#[test]
fn settings_survive_a_power_cycle() {
    let (dir, mut power, mut port) = power_on(5);
    port.command("ATE0");
    assert_eq!(
        port.command("AT+LWM2MSRV=\"coap://127.0.0.1:5999\""),
        vec!["OK"]
    );
    assert_eq!(port.command("AT+LWM2MEP=\"kept\""), vec!["OK"]);
    assert_eq!(port.command("AT+LWM2MLT=77"), vec!["OK"]);
    power.off().unwrap();
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(
        port.command("AT+LWM2MSRV?"),
        vec!["+LWM2MSRV: \"coap://127.0.0.1:5999\"", "OK"]
    );
    assert_eq!(
        port.command("AT+LWM2MEP?"),
        vec!["+LWM2MEP: \"kept\"", "OK"]
    );
    assert_eq!(port.command("AT+LWM2MLT?"), vec!["+LWM2MLT: 77", "OK"]);
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["boot_count"], "2");
    assert_eq!(state["lwm2m.enabled"], "false");
    // The device log holds both boots.
    let log = std::fs::read_to_string(power.spec().device_log_path()).unwrap();
    assert_eq!(log.matches("booted").count(), 2, "{log}");
}

#[test]
fn spawn_failure_and_early_exit_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = spec(dir.path(), 6);
    bad.program = PathBuf::from("/nonexistent/virtual-meter");
    let e = VirtualPower::new(bad).on().unwrap_err().to_string();
    assert!(e.contains("/nonexistent/virtual-meter"), "{e}");

    let mut no_objects = spec(dir.path(), 6);
    no_objects.objects_dir = dir.path().join("missing-objects");
    let mut power = VirtualPower::new(no_objects);
    let e = power.on().unwrap_err().to_string();
    assert!(
        e.contains("exited at power-on") && e.contains("missing-objects"),
        "{e}"
    );
    assert!(!power.is_on());
}

#[test]
fn dropping_the_driver_kills_the_meter() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 7));
    power.on().unwrap();
    let pid = power.pid().unwrap();
    drop(power);
    assert!(!pid_alive(pid));
}

#[test]
fn a_server_write_is_kept_in_nv_across_a_power_cut() {
    let server = Server::new();
    let (dir, mut power, mut port) = power_on(8);
    let (_, peer) = bring_up(&mut port, &server, "w");

    server.write_text(peer, "/3/0/15", "Europe/Berlin", 0x100);

    // Persisted right after answering; read it the way a debugger reads flash.
    let deadline = Instant::now() + WAIT;
    loop {
        let state = VirtualDebug::new(dir.path()).read_state().unwrap();
        if state.get("written:/3/0/15").map(String::as_str) == Some("Europe/Berlin") {
            break;
        }
        assert!(Instant::now() < deadline, "write not persisted: {state:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    power.off().unwrap();
    power.on().unwrap();
    let (reg2, peer2) = server.register_within(WAIT);
    server.reply(&reg2, peer2, ResponseType::Created, &["rd", "w2"]);
    let mut read = request(RequestType::Get, "/3/0/15");
    read.add_option(CoapOption::Accept, vec![0]); // text/plain
    let resp = server.exchange(peer2, read, 0x200);
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    assert_eq!(String::from_utf8_lossy(&resp.payload), "Europe/Berlin");
}

#[test]
fn observing_current_time_gets_notifications_as_the_clock_ticks() {
    let server = Server::new();
    let (_dir, _power, mut port) = power_on(9);
    let (_, peer) = bring_up(&mut port, &server, "o");

    let mut observe = request(RequestType::Get, "/3/0/13");
    observe.set_observe_value(0);
    observe.add_option(CoapOption::Accept, vec![0]);
    let first = server.exchange(peer, observe, 0x300);
    assert_eq!(
        first.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    assert!(
        first.get_observe_value().is_some(),
        "observation established"
    );
    let t0: i64 = String::from_utf8_lossy(&first.payload).parse().unwrap();

    // A notification with a later time arrives (the clock ticks every second).
    let p = server
        .notification(0x300, Instant::now() + WAIT)
        .unwrap_or_else(|| panic!("no notification within {WAIT:?}"));
    let t: i64 = String::from_utf8_lossy(&p.payload).parse().unwrap();
    assert!(t > t0, "notified time {t} after {t0}");
}
