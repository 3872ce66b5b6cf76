//! Object 9 (Software Management) on the virtual meter process: download
//! by Package URI, install, activate, deactivate, uninstall, with the
//! Executes the state does not allow refused with 4.05.

use std::time::Duration;

use crate::firmware_support::{files, image, Bench, CoapFiles, WAIT};

#[test]
fn a_package_is_delivered_installed_activated_and_uninstalled() {
    let srv = CoapFiles::start(
        files(&[("apps/tariff-1.4.bin", image("1.4", 0, 3000))]),
        Duration::ZERO,
    );
    let mut b = Bench::start(91, &[]);
    let s = &mut b.server;
    assert_eq!(s.read_text("/9/0/7").1, "0");
    assert_eq!(s.execute("/9/0/4"), 405, "Install before delivery");
    assert_eq!(s.execute("/9/0/10"), 405, "Activate before install");
    assert_eq!(s.execute("/9/0/6"), 405, "Uninstall with nothing there");

    assert_eq!(s.write_text("/9/0/3", &srv.uri("apps/tariff-1.4.bin")), 204);
    s.await_value("/9/0/7", "3", WAIT);
    assert_eq!(s.read_text("/9/0/9").1, "3", "downloaded and verified");
    assert_eq!(s.read_text("/9/0/0").1, "tariff-1.4.bin");
    assert_eq!(s.read_text("/9/0/1").1, "1.4");

    assert_eq!(s.execute("/9/0/10"), 405, "Activate before install");
    assert_eq!(s.execute("/9/0/4"), 204);
    s.await_value("/9/0/7", "4", WAIT);
    assert_eq!(s.read_text("/9/0/9").1, "2");
    assert_eq!(s.read_text("/9/0/12").1, "0");
    assert_eq!(s.execute("/9/0/10"), 204);
    s.await_value("/9/0/12", "1", WAIT);
    assert_eq!(s.execute("/9/0/11"), 204);
    s.await_value("/9/0/12", "0", WAIT);
    assert_eq!(s.execute("/9/0/4"), 405, "Install twice");

    assert_eq!(s.execute("/9/0/6"), 204);
    s.await_value("/9/0/7", "0", WAIT);
    assert_eq!(s.read_text("/9/0/9").1, "0");
    assert_eq!(s.read_text("/9/0/1").1, "");
    assert_eq!(b.debug()["software.state"], "0");
}

#[test]
fn a_corrupt_package_goes_back_to_initial_with_result_53() {
    let mut corrupt = image("1.4", 0, 2000);
    corrupt[70] ^= 1;
    let srv = CoapFiles::start(files(&[("bad.bin", corrupt)]), Duration::ZERO);
    let mut b = Bench::start(92, &[]);
    assert_eq!(b.server.write_text("/9/0/3", &srv.uri("bad.bin")), 204);
    b.server.await_value("/9/0/9", "53", WAIT);
    assert_eq!(b.server.read_text("/9/0/7").1, "0");
    assert_eq!(b.server.write_text("/9/0/3", &srv.uri("nothing.bin")), 204);
    b.server.await_value("/9/0/9", "56", WAIT);
}
