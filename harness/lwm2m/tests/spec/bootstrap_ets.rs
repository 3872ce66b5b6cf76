//! What the ETS bootstrap tests need from both roles, byte for byte:
//!
//! - the client's Bootstrap-Request Trigger (/1/x/9, Core Appendix E.2
//!   resource 9; Core §6.1.3.4 Server Initiated Bootstrap; ETS
//!   LightweightM2M-1.1-int-5): the Execute is answered 2.04, then the client
//!   sends Bootstrap-Request `POST /bs?ep=` (Transport §6.1 Table 6.1-1);
//! - its Bootstrap-Read of an object it does not support (Core §6.1.7.2
//!   restricts the targets to /1 and /2; a single-server device has no /2):
//!   4.04, not an empty 2.05;
//! - the Bootstrap-Server's answer checks, the pass criteria of ETS
//!   LightweightM2M-1.1-int-4 ("replies show the /1 instance is gone", "the
//!   Bootstrap-Server account is not affected");
//! - what the Access Control entries a Bootstrap-Server writes (object 2,
//!   int-8) do: decide each operation, 4.01 when refused, once the client
//!   holds two Server accounts; nothing with one (Core §7.3.1).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, ContentFormat as CoapFormat, MessageClass, MessageType, Packet};
use coap_lite::{RequestType, ResponseType};
use lwm2m::bootstrap::{
    AnswerCheck, BootstrapEvent, BootstrapOp, BootstrapScript, BootstrapServer,
    BootstrapServerConfig, ServerAccount,
};
use lwm2m::client::{BootstrapConfig, Client, ClientConfig, ObjectStore, RetryPolicy};
use lwm2m::format::ContentFormat;
use lwm2m::{Path, Registry, Value};

const BS: &str = "127.0.0.1:5783";
const SERVER: &str = "127.0.0.1:5683";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(bootstrap: bool) -> ClientConfig {
    ClientConfig {
        endpoint: "meter-1".into(),
        server: addr(SERVER),
        lifetime: Duration::from_secs(300),
        lwm2m_version: "1.1".into(),
        binding: "U".into(),
        registry: Registry::core(),
        preferred_format: ContentFormat::Tlv,
        seed: 7,
        bootstrap: bootstrap.then(|| BootstrapConfig::new(addr(BS))),
        retry: RetryPolicy::default(),
    }
}

/// A client registered at SERVER with account ssid 101 (Server instance /1/0).
fn registered(bootstrap: bool, now: Instant) -> Client {
    let account = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    let mut c = Client::with_accounts(
        config(bootstrap),
        ObjectStore::new(Registry::core()),
        &[account],
    );
    c.start(now);
    let register = c.poll_transmit().expect("Register");
    assert_eq!(register.destination, addr(SERVER));
    let req = Packet::from_bytes(&register.payload).unwrap();
    let mut created = Packet::new();
    created.header.set_type(MessageType::Acknowledgement);
    created.header.code = MessageClass::Response(ResponseType::Created);
    created.header.message_id = req.header.message_id;
    created.set_token(req.get_token().to_vec());
    created.add_option(CoapOption::LocationPath, b"rd".to_vec());
    created.add_option(CoapOption::LocationPath, b"1".to_vec());
    c.handle_datagram(now, addr(SERVER), &created.to_bytes().unwrap());
    assert!(c.poll_transmit().is_none());
    c
}

/// `CON POST /1/0/9`, message id 0x1234, token 0x77, no payload, written
/// out by hand (RFC 7252 §3: 0x41 = version 1, CON, token length 1; POST
/// is 0.02; §3.1 option deltas).
const EXECUTE_TRIGGER: [u8; 11] = [
    0x41, 0x02, 0x12, 0x34, 0x77, // CON POST mid 0x1234, token 0x77
    0xb1, b'1', // Uri-Path (11) "1"
    0x01, b'0', // Uri-Path "0"
    0x01, b'9', // Uri-Path "9"
];

#[test]
fn executing_bootstrap_request_trigger_is_answered_2_04_then_the_client_bootstraps() {
    let now = Instant::now();
    let mut c = registered(true, now);
    c.handle_datagram(now, addr(SERVER), &EXECUTE_TRIGGER);
    let ack = c.poll_transmit().expect("the Execute's answer");
    assert_eq!(ack.destination, addr(SERVER));
    // ACK 2.04 Changed, same message id and token, nothing else.
    assert_eq!(ack.payload, [0x61, 0x44, 0x12, 0x34, 0x77]);
    let request = c.poll_transmit().expect("Bootstrap-Request");
    assert_eq!(request.destination, addr(BS));
    let p = Packet::from_bytes(&request.payload).unwrap();
    assert_eq!(p.header.get_type(), MessageType::Confirmable);
    assert_eq!(p.header.code, MessageClass::Request(RequestType::Post));
    // After the header and token: Uri-Path (11) "bs", Uri-Query (15)
    // "ep=meter-1" (Transport §6.1 Table 6.1-1), no payload.
    let options = &request.payload[4 + p.get_token().len()..];
    let mut expected = vec![0xb2, b'b', b's', 0x4a];
    expected.extend(b"ep=meter-1");
    assert_eq!(options, expected.as_slice());
    assert_eq!(c.state(), &lwm2m::client::RegistrationState::Bootstrapping);
}

#[test]
fn bootstrap_request_trigger_without_a_bootstrap_account_is_refused_4_00() {
    let now = Instant::now();
    let mut c = registered(false, now);
    c.handle_datagram(now, addr(SERVER), &EXECUTE_TRIGGER);
    let ack = c.poll_transmit().expect("the Execute's answer");
    // ACK 4.00 Bad Request (0x80) with a diagnostic payload after 0xff.
    assert_eq!(ack.payload[..6], [0x61, 0x80, 0x12, 0x34, 0x77, 0xff]);
    let diagnostic = String::from_utf8_lossy(&ack.payload[6..]).into_owned();
    assert!(
        diagnostic.contains("no Bootstrap-Server account"),
        "{diagnostic}"
    );
    assert!(
        c.poll_transmit().is_none(),
        "no Bootstrap-Request without an account"
    );
    assert!(matches!(
        c.state(),
        lwm2m::client::RegistrationState::Registered { .. }
    ));
}

fn bootstrap_server(script: BootstrapScript) -> BootstrapServer {
    let mut s = BootstrapServer::new(BootstrapServerConfig {
        registry: Registry::core(),
        default_format: ContentFormat::Tlv,
        seed: 5,
    });
    s.set_script("meter-1", script);
    s
}

/// Starts a session and returns the server's first request.
fn first_request(s: &mut BootstrapServer, now: Instant) -> Packet {
    let client = addr("127.0.0.1:56830");
    // CON POST /bs?ep=meter-1, mid 0x0100, token 0x0a.
    let mut request = vec![0x41, 0x02, 0x01, 0x00, 0x0a, 0xb2, b'b', b's', 0x4a];
    request.extend(b"ep=meter-1");
    s.handle_datagram(now, client, &request);
    let out: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert_eq!(
        out[0].payload,
        [0x61, 0x44, 0x01, 0x00, 0x0a],
        "2.04 Changed"
    );
    Packet::from_bytes(&out[1].payload).unwrap()
}

/// The client's piggybacked 2.05 with link-format `links`.
fn discover_answer(to: &Packet, links: &str) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.code = MessageClass::Response(ResponseType::Content);
    p.header.message_id = to.header.message_id;
    p.set_token(to.get_token().to_vec());
    p.set_content_format(CoapFormat::ApplicationLinkFormat);
    p.payload = links.as_bytes().to_vec();
    p.to_bytes().unwrap()
}

fn events(s: &mut BootstrapServer) -> Vec<BootstrapEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Core §6.1.7.3's example answer after a Bootstrap-Delete of /1: the
/// Bootstrap-Server account `</0/1>` (no ssid), the uninstantiated `</1>`.
const AFTER_DELETE: &str = r#"</>;lwm2m=1.1,</0/1>;uri="coaps://127.0.0.1:5784",</1>,</3/0>"#;
/// The same with the Server account still there.
const BEFORE_DELETE: &str = r#"</>;lwm2m=1.1,</0/0>;ssid=101;uri="coaps://127.0.0.1:5684",</0/1>;uri="coaps://127.0.0.1:5784",</1/0>;ssid=101,</3/0>"#;

fn checked_discover() -> BootstrapScript {
    BootstrapScript::new()
        .then(BootstrapOp::Discover { path: Path::ROOT })
        .checking(&[
            AnswerCheck::Omits(Path::object(1)),
            AnswerCheck::BootstrapAccount,
        ])
        .then(BootstrapOp::Finish)
}

#[test]
fn a_discover_that_still_lists_a_deleted_instance_ends_the_session_naming_it() {
    let now = Instant::now();
    let mut s = bootstrap_server(checked_discover());
    let discover = first_request(&mut s, now);
    s.handle_datagram(
        now,
        addr("127.0.0.1:56830"),
        &discover_answer(&discover, BEFORE_DELETE),
    );
    let ev = events(&mut s);
    let failed = ev
        .iter()
        .find_map(|e| match e {
            BootstrapEvent::Failed {
                op, got, reason, ..
            } => Some((op.clone(), *got, reason.clone())),
            _ => None,
        })
        .expect("the session fails");
    assert_eq!(failed.0, "Bootstrap-Discover /");
    assert_eq!(failed.1, Some(205));
    assert_eq!(
        failed.2,
        "the answer still shows /1/0, expected nothing at /1"
    );
    assert!(
        s.poll_transmit().is_none(),
        "no Finish after a failed check"
    );
}

#[test]
fn a_discover_without_the_deleted_instance_and_with_the_bootstrap_account_goes_on() {
    let now = Instant::now();
    let mut s = bootstrap_server(checked_discover());
    let discover = first_request(&mut s, now);
    s.handle_datagram(
        now,
        addr("127.0.0.1:56830"),
        &discover_answer(&discover, AFTER_DELETE),
    );
    let finish = Packet::from_bytes(&s.poll_transmit().expect("Finish").payload).unwrap();
    assert_eq!(finish.header.code, MessageClass::Request(RequestType::Post));
    assert!(events(&mut s).iter().any(|e| matches!(
        e,
        BootstrapEvent::OpCompleted {
            index: 0,
            code: 205,
            ..
        }
    )));
}

#[test]
fn a_discover_without_a_security_instance_lacking_ssid_has_lost_the_bootstrap_account() {
    let now = Instant::now();
    let script = BootstrapScript::new()
        .then(BootstrapOp::Discover { path: Path::ROOT })
        .checking(&[AnswerCheck::BootstrapAccount]);
    let mut s = bootstrap_server(script);
    let discover = first_request(&mut s, now);
    s.handle_datagram(
        now,
        addr("127.0.0.1:56830"),
        &discover_answer(
            &discover,
            r#"</>;lwm2m=1.1,</0/0>;ssid=101,</1/0>;ssid=101"#,
        ),
    );
    let reason = events(&mut s)
        .into_iter()
        .find_map(|e| match e {
            BootstrapEvent::Failed { reason, .. } => Some(reason),
            _ => None,
        })
        .expect("the session fails");
    assert_eq!(
        reason,
        "no Security instance without ssid (the Bootstrap-Server account) among /0/0, /1/0"
    );
}

#[test]
fn bootstrap_read_of_an_object_the_client_lacks_is_4_04() {
    // A single-server device without the Access Control object (2): the
    // core registry less object 2. Bootstrap-Read /2 after a
    // Bootstrap-Discover (the server sends Read only to a client that
    // announced lwm2m=1.1).
    let now = Instant::now();
    let without_acl =
        Registry::from_objects(Registry::core().objects().filter(|o| o.id != 2).cloned());
    let mut cfg = config(true);
    cfg.registry = without_acl.clone();
    let mut c = Client::new(cfg, ObjectStore::new(without_acl));
    c.start(now);
    let request = c.poll_transmit().expect("Bootstrap-Request");
    assert_eq!(request.destination, addr(BS));
    let req = Packet::from_bytes(&request.payload).unwrap();
    let mut changed = Packet::new();
    changed.header.set_type(MessageType::Acknowledgement);
    changed.header.code = MessageClass::Response(ResponseType::Changed);
    changed.header.message_id = req.header.message_id;
    changed.set_token(req.get_token().to_vec());
    c.handle_datagram(now, addr(BS), &changed.to_bytes().unwrap());
    // CON GET /2 Accept TLV (11542 = 0x2d16), mid 0x0300, token 0x0b.
    let read = [0x41, 0x01, 0x03, 0x00, 0x0b, 0xb1, b'2', 0x62, 0x2d, 0x16];
    c.handle_datagram(now, addr(BS), &read);
    let answer = c.poll_transmit().expect("the Read's answer");
    assert_eq!(answer.payload[..6], [0x61, 0x84, 0x03, 0x00, 0x0b, 0xff]);
    assert_eq!(
        String::from_utf8_lossy(&answer.payload[6..]),
        "object 2 is not supported"
    );
}

/// A client with two LwM2M Server accounts, ssid 101 at SERVER and 102
/// elsewhere, and the Access Control entry a Bootstrap-Server wrote for
/// /3/0 (Core Appendix E.3): owner 102, ACL[101] = 1 (Read only).
fn two_server_client(now: Instant) -> Client {
    let mut store = ObjectStore::new(Registry::core());
    store.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    store.set(Path::resource(2, 0, 0), Value::Integer(3));
    store.set(Path::resource(2, 0, 1), Value::Integer(0));
    store.set(Path::resource_instance(2, 0, 2, 101), Value::Integer(1));
    store.set(Path::resource(2, 0, 3), Value::Integer(102));
    let first = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    let mut second = ServerAccount::nosec(102, "coap://127.0.0.1:5999");
    second.security_instance = 2;
    second.server_instance = 1;
    let mut c = Client::with_accounts(config(false), store, &[first, second]);
    c.start(now);
    while c.poll_transmit().is_some() {}
    c
}

#[test]
fn with_two_server_accounts_the_access_control_list_decides_and_4_01_refuses() {
    // Core §7.3: a client with more than one LwM2M Server account checks
    // each operation against the Access Control entry of the instance.
    let now = Instant::now();
    let mut c = two_server_client(now);
    // CON GET /3/0/0, mid 0x2001, token 0x21: ACL[101] has the Read bit.
    let read = [
        0x41, 0x01, 0x20, 0x01, 0x21, 0xb1, b'3', 0x01, b'0', 0x01, b'0',
    ];
    c.handle_datagram(now, addr(SERVER), &read);
    let answer = c.poll_transmit().expect("the Read's answer");
    assert_eq!(answer.payload[..5], [0x61, 0x45, 0x20, 0x01, 0x21]); // ACK 2.05
                                                                     // CON POST /3/0/4 (Execute Reboot), mid 0x2002, token 0x22: no Execute
                                                                     // bit for 101, and 101 is not the owner: ACK 4.01 Unauthorized (0x81).
    let execute = [
        0x41, 0x02, 0x20, 0x02, 0x22, 0xb1, b'3', 0x01, b'0', 0x01, b'4',
    ];
    c.handle_datagram(now, addr(SERVER), &execute);
    let answer = c.poll_transmit().expect("the Execute's answer");
    assert_eq!(answer.payload[..6], [0x61, 0x81, 0x20, 0x02, 0x22, 0xff]);
    assert!(
        String::from_utf8_lossy(&answer.payload[6..])
            .contains("server 101 has no Execute right on /3/0"),
        "{:?}",
        String::from_utf8_lossy(&answer.payload[6..])
    );
    // The same GET from an address that is none of the accounts': 4.01.
    let stranger: SocketAddr = "127.0.0.1:7001".parse().unwrap();
    c.handle_datagram(now, stranger, &read);
    let answer = c.poll_transmit().expect("the stranger's answer");
    assert_eq!(answer.payload[..2], [0x61, 0x81]);
}

#[test]
fn with_one_server_account_access_control_entries_are_not_enforced() {
    // Core §7.3.1: with a single LwM2M Server account, that server has full
    // access; the entry written for /3/0 (ACL[101] = Read only) is ignored.
    let now = Instant::now();
    let mut store = ObjectStore::new(Registry::core());
    store.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    store.set(Path::resource(2, 0, 0), Value::Integer(3));
    store.set(Path::resource(2, 0, 1), Value::Integer(0));
    store.set(Path::resource_instance(2, 0, 2, 101), Value::Integer(1));
    store.set(Path::resource(2, 0, 3), Value::Integer(102));
    let account = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    let mut c = Client::with_accounts(config(false), store, &[account]);
    c.start(now);
    while c.poll_transmit().is_some() {}
    let execute = [
        0x41, 0x02, 0x20, 0x02, 0x22, 0xb1, b'3', 0x01, b'0', 0x01, b'4',
    ];
    c.handle_datagram(now, addr(SERVER), &execute);
    let answer = c.poll_transmit().expect("the Execute's answer");
    assert_eq!(answer.payload, [0x61, 0x44, 0x20, 0x02, 0x22]); // ACK 2.04
}
