//! The contract between the harness and the virtual modem: the rig crate's
//! own serial AT engine, reading fixtures/modems/meterbench-virtual.yaml,
//! runs the dialect's `bring_up` against a powered virtual meter, which then
//! registers with the server the harness named.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rig::{Dialect, Modem as _, Power as _, SerialModem};
use sim::{VirtualMeterSpec, VirtualPower};

#[test]
fn dialect_bring_up_runs_clean_and_the_meter_registers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dialect = Dialect::load(&root.join("fixtures/modems/meterbench-virtual.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = VirtualMeterSpec {
        program: PathBuf::from(env!("CARGO_BIN_EXE_virtual-meter")),
        args_prefix: Vec::new(),
        state_dir: dir.path().to_owned(),
        objects_dir: root.join("fixtures/objects"),
        seed: 11,
    };
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let mut power = VirtualPower::new(spec.clone());
    power.on().unwrap();
    let mut modem = SerialModem::new(spec.pty_path(), 115_200, dialect.clone());
    modem.open().unwrap();

    let vars: BTreeMap<String, String> = [
        (
            "uri".to_owned(),
            format!("coap://{}", server.local_addr().unwrap()),
        ),
        ("endpoint".to_owned(), "contract-ep".to_owned()),
        ("lifetime".to_owned(), "120".to_owned()),
    ]
    .into();
    for name in &dialect.bring_up {
        let line = dialect.render(name, &vars).unwrap();
        let r = modem.command(&line, dialect.command_timeout).unwrap();
        assert!(r.is_ok(), "{name}: `{line}` -> {}", r.summary());
    }
    for name in [
        "manufacturer",
        "model",
        "revision",
        "imei",
        "iccid",
        "signal",
        "registration_status",
        "attention",
    ] {
        let line = dialect.render(name, &BTreeMap::new()).unwrap();
        let r = modem.command(&line, dialect.command_timeout).unwrap();
        assert!(r.is_ok(), "{name}: `{line}` -> {}", r.summary());
    }

    let mut buf = [0u8; 2048];
    let (n, _) = loop {
        match server.recv_from(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other.expect("Register arrives"),
        }
    };
    let reg = coap_lite::Packet::from_bytes(&buf[..n]).unwrap();
    let query: Vec<String> = reg
        .get_option(coap_lite::CoapOption::UriQuery)
        .map(|l| {
            l.iter()
                .map(|q| String::from_utf8_lossy(q).into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(query.contains(&"ep=contract-ep".to_owned()), "{query:?}");
    assert!(query.contains(&"lt=120".to_owned()), "{query:?}");

    modem.close();
    power.off().unwrap();
}
