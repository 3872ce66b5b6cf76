//! Object 5 on the virtual meter process: pull over CoAP Block2 at two
//! block sizes, resume after a power cut, each Update Result of a failed
//! download, Execute refused unless Downloaded, push with Block1, a good
//! update (new version running, registers again) and a broken one (rolled
//! back). The LwM2M server is played by the test (firmware_support).

use std::time::Duration;

use coap_lite::RequestType;
use rig::Power as _;

use crate::firmware_support;
use crate::firmware_support::{files, image, request, Bench, CoapFiles, HttpFiles, Port, WAIT};

#[test]
fn pull_coap_at_two_block_sizes_then_update_runs_the_new_version() {
    let img = image("2.0", 0, 5000);
    let files_srv = CoapFiles::start(files(&[("fw/meter-2.0.bin", img.clone())]), Duration::ZERO);
    let mut b = Bench::start(71, &["AT+MBFWSZX=2"]);
    let pid = b.power.pid().unwrap();
    assert_eq!(b.server.firmware_status(), ("0".into(), "0".into()));
    assert_eq!(b.server.read_text("/5/0/7").1, "1.0");
    assert_eq!(b.server.read_text("/5/0/9").1, "2", "delivery: both");
    assert_eq!(b.server.read_text("/5/0/8/0").1, "0", "CoAP");
    assert_eq!(b.server.read_text("/5/0/8/1").1, "2", "HTTP");

    let uri = files_srv.uri("fw/meter-2.0.bin");
    assert_eq!(b.server.write_text("/5/0/1", &uri), 204);
    b.server.await_value("/5/0/3", "2", WAIT);
    assert_eq!(b.server.read_text("/5/0/5").1, "0");
    let sizes: Vec<usize> = files_srv
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(sizes.len(), img.len().div_ceil(64));
    assert!(sizes.iter().all(|s| *s == 64), "{sizes:?}");
    assert_eq!(b.debug()["firmware.slot_b_version"], "2.0");

    // An empty Package URI discards the image: Idle, result 0.
    assert_eq!(b.server.write_text("/5/0/1", ""), 204);
    b.server.await_value("/5/0/3", "0", WAIT);
    assert_eq!(b.server.read_text("/5/0/5").1, "0");
    assert_eq!(b.debug()["firmware.slot_b_version"], "");

    // Again with 1024-byte blocks.
    assert_eq!(b.port.command("AT+MBFWSZX=6"), vec!["OK"]);
    files_srv.requests.lock().unwrap().clear();
    assert_eq!(b.server.write_text("/5/0/1", &uri), 204);
    b.server.await_value("/5/0/3", "2", WAIT);
    let sizes: Vec<usize> = files_srv
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(sizes, vec![1024; 5]);

    // Update: Updating, restart (same PID), bootloader, new Register.
    let boots: u64 = b.debug()["boot_count"].parse().unwrap();
    assert_eq!(b.server.execute("/5/0/2"), 204);
    b.server.await_register(WAIT);
    assert_eq!(b.power.pid(), Some(pid), "the process restarted in place");
    assert_eq!(b.server.read_text("/3/0/3").1, "2.0");
    assert_eq!(b.server.read_text("/5/0/7").1, "2.0");
    assert_eq!(b.server.firmware_status(), ("0".into(), "1".into()));
    let d = b.debug();
    assert_eq!(d["firmware.active_slot"], "b");
    assert_eq!(d["firmware_version"], "2.0");
    assert_eq!(d["boot_count"], (boots + 1).to_string());
    // The modem port the harness holds survived the restart.
    assert_eq!(b.port.command("AT+MBFWSZX?"), vec!["+MBFWSZX: 6", "OK"]);
}

#[test]
fn a_broken_image_is_rolled_back_and_reported_with_result_8() {
    let img = image("2.0", 0xBD, 3000);
    let srv = CoapFiles::start(files(&[("broken.bin", img)]), Duration::ZERO);
    let mut b = Bench::start(72, &[]);
    assert_eq!(b.server.write_text("/5/0/1", &srv.uri("broken.bin")), 204);
    b.server.await_value("/5/0/3", "2", WAIT);
    assert_eq!(b.server.execute("/5/0/2"), 204);
    b.server.await_register(WAIT);
    assert_eq!(b.server.firmware_status(), ("0".into(), "8".into()));
    assert_eq!(b.server.read_text("/3/0/3").1, "1.0");
    assert_eq!(b.server.read_text("/5/0/7").1, "1.0");
    assert_eq!(b.debug()["firmware.active_slot"], "a");
}

#[test]
fn each_failed_download_reports_its_result_and_returns_to_idle() {
    let corrupt = {
        let mut i = image("2.0", 0, 3000);
        i[100] ^= 0xff;
        i
    };
    let srv = CoapFiles::start(
        files(&[
            ("corrupt.bin", corrupt),
            ("big.bin", image("2.0", 0, 10_000)),
            ("ok.bin", image("2.0", 0, 6000)),
        ]),
        Duration::ZERO,
    );
    let mut b = Bench::start(73, &["AT+MBFWSLOT=8192", "AT+MBFWTMO=2"]);
    let cases = [
        (srv.uri("missing.bin"), "7"),
        ("no scheme here".to_owned(), "7"),
        ("ftp://127.0.0.1/meter.bin".to_owned(), "9"),
        ("coaps://127.0.0.1/meter.bin".to_owned(), "9"),
        (srv.uri("corrupt.bin"), "5"),
        (srv.uri("big.bin"), "2"),
    ];
    for (uri, result) in cases {
        assert_eq!(b.server.write_text("/5/0/1", &uri), 204, "{uri}");
        b.server.await_value("/5/0/5", result, WAIT);
        assert_eq!(b.server.read_text("/5/0/3").1, "0", "{uri}");
    }
    // The file server stops answering after two blocks.
    srv.answer.store(2, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(b.server.write_text("/5/0/1", &srv.uri("ok.bin")), 204);
    b.server.await_value("/5/0/5", "4", WAIT);
    assert_eq!(b.server.read_text("/5/0/3").1, "0");
    assert_eq!(b.debug()["firmware.result"], "4");
}

#[test]
fn execute_update_and_cancel_are_refused_unless_the_state_allows_them() {
    let srv = CoapFiles::start(
        files(&[("slow.bin", image("2.0", 0, 4000))]),
        Duration::from_millis(150),
    );
    let mut b = Bench::start(74, &["AT+MBFWSZX=4"]);
    assert_eq!(b.server.execute("/5/0/2"), 405, "Update in Idle");
    assert_eq!(b.server.execute("/5/0/10"), 405, "Cancel in Idle");
    assert_eq!(b.server.write_text("/5/0/1", &srv.uri("slow.bin")), 204);
    b.server.await_value("/5/0/3", "1", WAIT);
    assert_eq!(b.server.execute("/5/0/2"), 405, "Update while Downloading");
    b.server.await_value("/5/0/3", "2", WAIT);
    assert_eq!(b.server.execute("/5/0/10"), 204, "Cancel when Downloaded");
    b.server.await_value("/5/0/3", "0", WAIT);
    assert_eq!(b.server.read_text("/5/0/5").1, "10");
    assert_eq!(b.server.execute("/5/0/2"), 405, "Update after Cancel");
}

#[test]
fn a_power_cut_mid_download_resumes_from_the_recorded_offset() {
    let img = image("2.0", 0, 40_000);
    let srv = CoapFiles::start(
        files(&[("meter.bin", img.clone())]),
        Duration::from_millis(10),
    );
    let mut b = Bench::start(75, &["AT+MBFWSZX=4"]);
    assert_eq!(b.server.write_text("/5/0/1", &srv.uri("meter.bin")), 204);
    let offset: u64 = b
        .await_debug("firmware.download_offset", WAIT, |v| {
            v.parse::<u64>().is_ok_and(|o| o >= 8192)
        })
        .parse()
        .unwrap();
    b.power.off().unwrap();
    let recorded: u64 = b.debug()["firmware.download_offset"].parse().unwrap();
    assert!(recorded >= offset && recorded < img.len() as u64);
    assert_eq!(b.debug()["firmware.state"], "1", "still Downloading in NV");
    let before = srv.requests.lock().unwrap().len();

    b.power.on().unwrap();
    b.port = Port::open(&b.power.spec().pty_path());
    b.server.await_register(WAIT);
    b.server.await_value("/5/0/3", "2", WAIT);
    let requests = srv.requests.lock().unwrap().clone();
    assert_eq!(
        requests[before].0 as u64, recorded,
        "the first GET after the cut asks for the recorded offset"
    );
    let slot = std::fs::read(b.dir.path().join("slot-b.bin")).unwrap();
    assert_eq!(slot, img);
    let refetched = requests[before..].len();
    assert!(
        refetched < img.len().div_ceil(256),
        "{refetched} blocks fetched again"
    );
}

#[test]
fn a_package_pushed_with_block1_is_downloaded_and_an_empty_one_resets() {
    let img = image("2.0", 0, 5000);
    let mut b = Bench::start(76, &[]);
    assert_eq!(b.server.push_block1("/5/0/0", &img, 6), 204);
    assert_eq!(b.server.firmware_status(), ("2".into(), "0".into()));
    assert_eq!(b.debug()["firmware.slot_b_version"], "2.0");

    let mut empty = request(RequestType::Put, "/5/0/0");
    empty.add_option(coap_lite::CoapOption::ContentFormat, vec![42]);
    assert_eq!(firmware_support::code_of(&b.server.exchange(empty)), 204);
    b.server.await_value("/5/0/3", "0", WAIT);
    assert_eq!(b.server.read_text("/5/0/5").1, "0");

    // Larger than the slot: refused with 4.13, Update Result 2.
    assert_eq!(b.port.command("AT+MBFWSLOT=4096"), vec!["OK"]);
    assert_eq!(b.server.push_block1("/5/0/0", &img, 6), 413);
    b.server.await_value("/5/0/5", "2", WAIT);
    assert_eq!(b.server.read_text("/5/0/3").1, "0");
}

/// Update Result 3 (object 5 resource 5: "Out of RAM during downloading
/// process"): the meter holds a pushed Package whole in RAM (128 KiB)
/// before it writes the slot (256 KiB), so a push past its RAM is refused
/// with 4.13 and Size1 = what RAM holds (RFC 7959 §2.9.3) after Downloading
/// began, and ends Idle with 3; pulled, the same image streams into flash.
#[test]
fn a_push_larger_than_ram_runs_the_meter_out_of_ram_but_a_pull_of_it_downloads() {
    let img = image("2.0", 0, 160 * 1024);
    let files_srv = CoapFiles::start(files(&[("fw/big.bin", img.clone())]), Duration::ZERO);
    let mut b = Bench::start(78, &[]);
    assert_eq!(b.server.push_block1("/5/0/0", &img, 6), 413);
    b.server.await_value("/5/0/5", "3", WAIT);
    assert_eq!(b.server.read_text("/5/0/3").1, "0");
    assert_eq!(b.debug()["firmware.slot_b_version"], "");

    let uri = files_srv.uri("fw/big.bin");
    assert_eq!(b.server.write_text("/5/0/1", &uri), 204);
    b.server.await_value("/5/0/3", "2", WAIT);
    assert_eq!(b.server.read_text("/5/0/5").1, "0");
    assert_eq!(b.debug()["firmware.slot_b_version"], "2.0");
}

#[test]
fn http_pull_downloads_the_image() {
    let img = image("2.0", 0, 12_000);
    let http = HttpFiles::start(files(&[("meter.bin", img.clone())]));
    let mut b = Bench::start(77, &[]);
    let uri = format!("http://{}/meter.bin", http.addr);
    assert_eq!(b.server.write_text("/5/0/1", &uri), 204);
    b.server.await_value("/5/0/3", "2", WAIT);
    assert_eq!(b.server.read_text("/5/0/1").1, uri);
    assert_eq!(std::fs::read(b.dir.path().join("slot-b.bin")).unwrap(), img);
}
