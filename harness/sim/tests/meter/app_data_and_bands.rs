//! Objects 19 (BinaryAppDataContainer) and 501 (LTE-MTC Band Config) on the
//! real meter process over real UDP: write and read back binary data, observe
//! the meter's reading frames, write a band configuration and see it over AT,
//! and a band Reset that waits its Reset Timeout.

use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, RequestType, ResponseType};
use rig::Power as _;
use sim::app_data::Reading;

use crate::bench;
use crate::bench::{bring_up, power_on, request, Port, Server};

#[test]
fn object_19_data_is_written_read_back_and_observed_as_the_meter_updates_it() {
    let server = Server::new();
    let (_dir, _power, mut port) = power_on(41);
    let (_, peer) = bring_up(&mut port, &server, "a");

    let mut write = request(RequestType::Put, "/19/0/0/1");
    write.set_content_format(coap_lite::ContentFormat::ApplicationOctetStream);
    write.payload = vec![0x00, 0xde, 0xad, 0xbe, 0xef];
    let r = server.exchange(peer, write, 1);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let mut read = request(RequestType::Get, "/19/0/0/1");
    read.add_option(CoapOption::Accept, vec![42]);
    let r = server.exchange(peer, read, 2);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Content));
    assert_eq!(r.payload, vec![0x00, 0xde, 0xad, 0xbe, 0xef]);

    // The meter's own frame, in instance 0.
    let mut read = request(RequestType::Get, "/19/0/0/0");
    read.add_option(CoapOption::Accept, vec![42]);
    let r = server.exchange(peer, read, 3);
    let first = Reading::decode(&r.payload).expect("a reading frame");
    assert!(first.live_wh >= first.committed_wh);

    let mut observe = request(RequestType::Get, "/19/0/0/0");
    observe.set_observe_value(0);
    observe.add_option(CoapOption::Accept, vec![42]);
    let r = server.exchange(peer, observe, 4);
    assert!(r.get_observe_value().is_some(), "observation established");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let p = server
            .notification(4, deadline)
            .unwrap_or_else(|| panic!("notifications: {frames:?}"));
        frames.push(Reading::decode(&p.payload).expect("a reading frame"));
    }
    assert!(frames[1].counter > frames[0].counter, "{frames:?}");
    assert!(frames[1].live_wh > first.live_wh, "{frames:?}");
}

#[test]
fn object_501_band_configuration_written_by_the_server_is_seen_over_at_and_kept() {
    let server = Server::new();
    let (_dir, mut power, mut port) = power_on(42);
    let (_, peer) = bring_up(&mut port, &server, "b");
    assert_eq!(port.command("AT+MBBAND?"), vec!["+MBBAND: 524420", "OK"]);
    assert_eq!(server.read_text(peer, "/501/0/1", 1), "6300");
    assert_eq!(server.read_text(peer, "/501/0/2", 2), "806.0");

    for (mid, path, value) in [(3u16, "/501/0/1", "1575"), (4, "/501/0/4/0", "1575")] {
        server.write_text(peer, path, value, mid);
    }
    assert_eq!(port.command("AT+MBBAND?"), vec!["+MBBAND: 132", "OK"]);
    assert_eq!(
        port.command("AT+MBCHAN?"),
        vec!["+MBCHAN: 1575,\"1575,1575,3625\"", "OK"]
    );
    // A channel in no supported band is refused by the model, not applied.
    let mut w = request(RequestType::Put, "/501/0/1");
    w.set_content_format(coap_lite::ContentFormat::TextPlain);
    w.payload = b"2700".to_vec();
    server.exchange(peer, w, 5);
    assert_eq!(port.command("AT+MBBAND?"), vec!["+MBBAND: 132", "OK"]);
    // The radio runs on the old channel until Reset applies the new configuration.
    assert_eq!(server.read_text(peer, "/501/0/2", 6), "806.0");
    let r = server.exchange(peer, request(RequestType::Post, "/501/0/6"), 7);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let (_, peer2) = server.accept_register(bench::WAIT, "b2");
    assert_eq!(server.read_text(peer2, "/501/0/2", 8), "1842.5");

    power.off().unwrap();
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(port.command("AT+MBBAND?"), vec!["+MBBAND: 132", "OK"]);
    // The lab restores it over AT.
    assert_eq!(
        port.command("AT+MBCHAN=6300,\"6300,1575,3625\""),
        vec!["OK"]
    );
    assert_eq!(port.command("AT+MBBAND?"), vec!["+MBBAND: 524420", "OK"]);
}

#[test]
fn object_501_reset_waits_the_reset_timeout_then_resets_the_radio() {
    // OMA registry 501.xml (LTE-MTC Band Config 1.0): resource 5 Reset
    // Timeout, RW Float s, "Time that the device will wait until reset once
    // the Reset Resource is triggered"; resource 6 Reset, "Executing this
    // resource resets the radio interface of the device".
    let server = Server::new();
    let (_dir, mut power, mut port) = power_on(43);
    let (_, peer) = bring_up(&mut port, &server, "c");
    assert_eq!(server.read_text(peer, "/501/0/5", 1), "0.0");
    server.write_text(peer, "/501/0/5", "2.5", 2);
    server.write_text(peer, "/501/0/1", "1575", 3);

    let executed = Instant::now();
    let r = server.exchange(peer, request(RequestType::Post, "/501/0/6"), 4);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    // Within the timeout the radio still runs on the old channel and the
    // session still answers.
    assert_eq!(server.read_text(peer, "/501/0/2", 5), "806.0");
    port.wait_for("+CEREG: 0");
    let waited = executed.elapsed();
    let timeout = Duration::from_millis(2500);
    assert!(waited >= timeout, "radio reset {waited:?} after Execute");
    assert!(
        waited < timeout + Duration::from_millis(900),
        "radio reset {waited:?} after Execute, timeout {timeout:?}"
    );
    let (_, peer2) = server.accept_register(bench::WAIT, "c2");
    assert_eq!(server.read_text(peer2, "/501/0/2", 6), "1842.5");
    assert_eq!(server.read_text(peer2, "/501/0/5", 7), "2.5");

    // The Reset Timeout is a setting: it survives a power cycle.
    power.off().unwrap();
    power.on().unwrap();
    let (_, peer3) = server.accept_register(bench::WAIT, "c3");
    assert_eq!(server.read_text(peer3, "/501/0/5", 8), "2.5");
}
