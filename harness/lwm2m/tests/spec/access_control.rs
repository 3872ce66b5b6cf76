//! Access Control in the client role with two LwM2M Server accounts
//! (LwM2M 1.1 Core §7.3; object 2, Appendix E.3): what an Object-level
//! Read, Observe and Discover answer each server (§7.3.2.4), when a
//! notification is withheld (§7.3.2.5), and the Access Control entry a
//! Create makes and a Delete removes (§6.3.6 Create, §7.3.1.2.2), and the
//! composite operations: Read-Composite and Observe-Composite leave out
//! what the server may not read (best effort, §6.3.8), Write-Composite is
//! refused whole (atomic, §6.3.9). Each
//! answer is checked byte for byte; the TLV payloads follow Core §7.4.3
//! (type byte: bits 7-6 the identifier kind, 00 Object Instance, 11
//! Resource with value; bit 5 the identifier length; bits 2-0 the length).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m::bootstrap::ServerAccount;
use lwm2m::client::{Client, ClientConfig, ObjectStore};
use lwm2m::format::ContentFormat;
use lwm2m::{Path, Value};

use crate::support::registry;

/// Server 101 (the owner of every entry here) and server 102.
const OWNER: &str = "127.0.0.1:5683";
const OTHER: &str = "127.0.0.1:5684";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config() -> ClientConfig {
    ClientConfig {
        endpoint: "meter-acl".into(),
        server: addr(OWNER),
        lifetime: Duration::from_secs(86_400),
        lwm2m_version: "1.1".into(),
        binding: "U".into(),
        registry: registry(),
        preferred_format: ContentFormat::Tlv,
        seed: 7,
        bootstrap: None,
        retry: Default::default(),
    }
}

/// Two Binary App Data Container instances (object 19, multiple) with Data
/// Priority /19/x/1 = 5 and 6, and the entries a Bootstrap-Server wrote:
/// /2/0 for /19/0, owner 101, ACL[102] = 1 (Read); /2/1 for /19/1, owner
/// 101, no ACL for 102 and no default (102 has no right on it); /2/2 for
/// object 19 itself (Object Instance ID MAX_ID), ACL[102] = 16 (Create),
/// owner MAX_ID (bootstrap only).
fn two_server_client(now: Instant) -> Client {
    let mut s = ObjectStore::new(registry());
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s.set(Path::resource(19, 0, 1), Value::Integer(5));
    s.set(Path::resource(19, 1, 1), Value::Integer(6));
    for (aco, instance, acl_102, owner) in [
        (0u16, 0i64, Some(1i64), 101i64),
        (1, 1, None, 101),
        (2, 65_535, Some(16), 65_535),
    ] {
        s.set(Path::resource(2, aco, 0), Value::Integer(19));
        s.set(Path::resource(2, aco, 1), Value::Integer(instance));
        if let Some(bits) = acl_102 {
            s.set(
                Path::resource_instance(2, aco, 2, 102),
                Value::Integer(bits),
            );
        }
        s.set(Path::resource(2, aco, 3), Value::Integer(owner));
    }
    let first = ServerAccount::nosec(101, format!("coap://{OWNER}"));
    let mut second = ServerAccount::nosec(102, format!("coap://{OTHER}"));
    second.security_instance = 2;
    second.server_instance = 1;
    let mut c = Client::with_accounts(config(), s, &[first, second]);
    c.start(now);
    while c.poll_transmit().is_some() {}
    c
}

/// CON `method` on `path`, mid `mid`, token `token`, with Accept or
/// Content-Format, Observe, and a payload as given.
fn request(
    method: RequestType,
    mid: u16,
    token: u8,
    path: &str,
    observe: Option<u32>,
    accept: Option<u16>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(vec![token]);
    if let Some(o) = observe {
        p.set_observe_value(o);
    }
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    if let Some(body) = body {
        // Content-Format 11542, TLV (0x2d16).
        p.add_option(CoapOption::ContentFormat, vec![0x2d, 0x16]);
        p.payload = body.to_vec();
    }
    if let Some(a) = accept {
        // A uint option in its shortest form (RFC 7252 §3.2): 40 in one byte.
        let bytes = a.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        p.add_option(CoapOption::Accept, bytes[skip..].to_vec());
    }
    p.to_bytes().unwrap()
}

/// Everything the client sends to `to` after `datagram` from `from`.
fn exchange(c: &mut Client, now: Instant, from: &str, datagram: &[u8]) -> Vec<Vec<u8>> {
    c.handle_datagram(now, addr(from), datagram);
    std::iter::from_fn(|| c.poll_transmit())
        .map(|t| {
            assert_eq!(t.destination, addr(from));
            t.payload
        })
        .collect()
}

/// `ACK 2.05` on `mid`/`token` with Content-Format 11542 (TLV: option
/// delta 12, length 2, 0x2d16) and `tlv`.
fn tlv_content(mid: u16, token: u8, tlv: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x61,
        0x45,
        (mid >> 8) as u8,
        mid as u8,
        token,
        0xc2,
        0x2d,
        0x16,
    ];
    if !tlv.is_empty() {
        v.push(0xff);
        v.extend_from_slice(tlv);
    }
    v
}

/// Object Instance `id` holding Data Priority (resource 1) = `priority`:
/// `03 id` (instance, 3 bytes), `c1 01 priority` (resource 1, 1 byte).
fn instance(id: u8, priority: u8) -> [u8; 5] {
    [0x03, id, 0xc1, 0x01, priority]
}

#[test]
fn an_object_read_answers_with_only_the_instances_the_server_may_read() {
    // Core §7.3.2.4: "the LwM2M Client MUST retrieve all the Object
    // Instances for which the LwM2M Server has Read access right".
    let now = Instant::now();
    let mut c = two_server_client(now);
    let read = request(
        RequestType::Get,
        0x3001,
        0x31,
        "/19",
        None,
        Some(11542),
        None,
    );
    // 102 may read /19/0 only: its instance alone, not a 4.01 for the whole.
    assert_eq!(
        exchange(&mut c, now, OTHER, &read),
        vec![tlv_content(0x3001, 0x31, &instance(0, 5))]
    );
    // 101, the owner of both entries without an ACL of its own, reads both.
    assert_eq!(
        exchange(&mut c, now, OWNER, &read),
        vec![tlv_content(
            0x3001,
            0x31,
            &[instance(0, 5), instance(1, 6)].concat()
        )]
    );
    // The instance 102 may not read, asked by name: 4.01 Unauthorized (0x81)
    // with the diagnostic naming it (§7.3.2.3).
    let one = request(RequestType::Get, 0x3002, 0x32, "/19/1", None, None, None);
    let answer = exchange(&mut c, now, OTHER, &one);
    assert_eq!(answer[0][..6], [0x61, 0x81, 0x30, 0x02, 0x32, 0xff]);
    let diagnostic = String::from_utf8_lossy(&answer[0][6..]).into_owned();
    assert!(
        diagnostic.contains("server 102 has no Read right on /19/1"),
        "{diagnostic}"
    );
    // An address that is none of the accounts' has no rights at all.
    assert_eq!(
        exchange(&mut c, now, "127.0.0.1:7001", &read)[0][..2],
        [0x61, 0x81]
    );
}

#[test]
fn discover_needs_no_access_right() {
    // Core §7.3.2's table gives Discover the minimum access right "-", and
    // §7.3.2.4: "The Discover operation on Object is specific in the sense,
    // that no access right is needed". 102 discovers /19/1 too.
    let now = Instant::now();
    let mut c = two_server_client(now);
    let discover = request(RequestType::Get, 0x3101, 0x41, "/19", None, Some(40), None);
    let mut want = vec![0x61, 0x45, 0x31, 0x01, 0x41, 0xc1, 40, 0xff];
    want.extend_from_slice(b"</19>,</19/0>,</19/0/1>,</19/1>,</19/1/1>");
    assert_eq!(exchange(&mut c, now, OTHER, &discover), vec![want]);
    let one = request(
        RequestType::Get,
        0x3102,
        0x42,
        "/19/1",
        None,
        Some(40),
        None,
    );
    assert_eq!(exchange(&mut c, now, OTHER, &one)[0][..2], [0x61, 0x45]);
}

#[test]
fn an_object_observation_notifies_only_what_the_server_may_read() {
    // §7.3.2.4 for Observe, §7.3.2.5 for each Notify.
    let now = Instant::now();
    let mut c = two_server_client(now);
    let observe = request(
        RequestType::Get,
        0x3201,
        0x51,
        "/19",
        Some(0),
        Some(11542),
        None,
    );
    let first = exchange(&mut c, now, OTHER, &observe);
    // ACK 2.05, Observe (option 6, 1 byte) = the sequence, Content-Format
    // TLV, then /19/0 alone.
    assert_eq!(first.len(), 1);
    let p = Packet::from_bytes(&first[0]).unwrap();
    assert_eq!(p.get_observe_value(), Some(Ok(2)));
    assert_eq!(p.payload, instance(0, 5));
    // A change of /19/1, which 102 may not read, is no news to it.
    c.set_value(now, Path::resource(19, 1, 1), Value::Integer(9))
        .unwrap();
    assert_eq!(c.poll_transmit().map(|t| t.payload), None);
    // A change of /19/0 is: the notification (NON 2.05, Observe 3) again
    // carries /19/0 alone.
    c.set_value(now, Path::resource(19, 0, 1), Value::Integer(7))
        .unwrap();
    let notification = c.poll_transmit().expect("a notification of /19/0");
    assert_eq!(notification.destination, addr(OTHER));
    let p = Packet::from_bytes(&notification.payload).unwrap();
    assert_eq!(p.get_observe_value(), Some(Ok(3)));
    assert_eq!(p.payload, instance(0, 7));
}

#[test]
fn no_notification_goes_to_a_server_whose_read_right_was_taken() {
    // §7.3.2.5: "If the LwM2M Server is not authorized, the Client MUST NOT
    // send the Notify operation."
    let now = Instant::now();
    let mut c = two_server_client(now);
    let observe = request(
        RequestType::Get,
        0x3301,
        0x61,
        "/19/0/1",
        Some(0),
        None,
        None,
    );
    assert_eq!(exchange(&mut c, now, OTHER, &observe)[0][..2], [0x61, 0x45]);
    // The owner, 101, takes 102's Read right: Write /2/0/2/102 = 0 (plain
    // text, Content-Format 0).
    let mut revoke = Packet::new();
    revoke.header.set_type(MessageType::Confirmable);
    revoke.header.code = MessageClass::Request(RequestType::Put);
    revoke.header.message_id = 0x3302;
    revoke.set_token(vec![0x62]);
    for seg in ["2", "0", "2", "102"] {
        revoke.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    revoke.set_content_format(coap_lite::ContentFormat::TextPlain);
    revoke.payload = b"0".to_vec();
    assert_eq!(
        exchange(&mut c, now, OWNER, &revoke.to_bytes().unwrap()),
        vec![vec![0x61, 0x44, 0x33, 0x02, 0x62]]
    );
    c.set_value(now, Path::resource(19, 0, 1), Value::Integer(8))
        .unwrap();
    assert_eq!(
        c.poll_transmit().map(|t| t.payload),
        None,
        "no Notify without the Read right"
    );
    // 102 may not manage the entry that restricts it: only the owner may.
    let mut own = revoke.clone();
    own.header.message_id = 0x3303;
    own.payload = b"1".to_vec();
    assert_eq!(
        exchange(&mut c, now, OTHER, &own.to_bytes().unwrap())[0][..2],
        [0x61, 0x81]
    );
}

#[test]
fn a_create_makes_the_access_control_entry_of_the_new_instance_owned_by_its_creator() {
    // Core §6.3.6 Create: "If a new Object Instance is created through that
    // operation and the LwM2M Client has more than one LwM2M Server
    // Account, then the LwM2M Client creates an Access Control Object
    // Instance for the created Object Instance: Access Control Owner MUST
    // be the LwM2M Server; The LwM2M Server MUST have full access rights";
    // §7.3.1.2.2 gives its values.
    let now = Instant::now();
    let mut c = two_server_client(now);
    // 102 holds the Create right on object 19 (/2/2): POST /19 with Data
    // Priority = 4, no instance layer (`c1 01 04`): 2.01 Location /19/2.
    let create = request(
        RequestType::Post,
        0x3401,
        0x71,
        "/19",
        None,
        None,
        Some(&[0xc1, 0x01, 0x04]),
    );
    assert_eq!(
        exchange(&mut c, now, OTHER, &create),
        vec![vec![
            0x61, 0x41, 0x34, 0x01, 0x71, 0x82, b'1', b'9', 0x01, b'2'
        ]]
    );
    // The entry: the first free id, /2/3 — Object ID 19, Object Instance ID
    // 2, ACL[102] = 15 (R|W|E|D), owner 102.
    let store = c.store();
    assert_eq!(
        store.get(&Path::resource(2, 3, 0)),
        Some(&Value::Integer(19))
    );
    assert_eq!(
        store.get(&Path::resource(2, 3, 1)),
        Some(&Value::Integer(2))
    );
    assert_eq!(
        store.get(&Path::resource_instance(2, 3, 2, 102)),
        Some(&Value::Integer(15))
    );
    assert_eq!(
        store.get(&Path::resource(2, 3, 3)),
        Some(&Value::Integer(102))
    );
    // So 102 reads the new instance (in TLV, a Read of an instance answers
    // its resources, without the instance layer) and 101, with no right on
    // it, does not.
    let read = request(
        RequestType::Get,
        0x3402,
        0x72,
        "/19/2",
        None,
        Some(11542),
        None,
    );
    assert_eq!(
        exchange(&mut c, now, OTHER, &read),
        vec![tlv_content(0x3402, 0x72, &[0xc1, 0x01, 0x04])]
    );
    assert_eq!(exchange(&mut c, now, OWNER, &read)[0][..2], [0x61, 0x81]);
    // 101 holds no Create right on object 19.
    let refused = request(
        RequestType::Post,
        0x3403,
        0x73,
        "/19",
        None,
        None,
        Some(&[0xc1, 0x01, 0x04]),
    );
    assert_eq!(exchange(&mut c, now, OWNER, &refused)[0][..2], [0x61, 0x81]);
    // The owner deletes it: 2.02, and the entry goes with it (§7.3.1.2.2).
    let delete = request(RequestType::Delete, 0x3404, 0x74, "/19/2", None, None, None);
    assert_eq!(
        exchange(&mut c, now, OTHER, &delete),
        vec![vec![0x61, 0x42, 0x34, 0x04, 0x74]]
    );
    assert!(!c.store().instances().any(|p| p == Path::instance(2, 3)));
    assert!(c.store().instances().any(|p| p == Path::instance(2, 0)));
}

#[test]
fn with_one_server_account_a_create_makes_no_access_control_entry() {
    // §6.3.6: the entry is made only "when the LwM2M Client has more than
    // one LwM2M Server Account"; one server has full rights (§7.3.1).
    let now = Instant::now();
    let mut s = ObjectStore::new(registry());
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    let account = ServerAccount::nosec(101, format!("coap://{OWNER}"));
    let mut c = Client::with_accounts(config(), s, &[account]);
    c.start(now);
    while c.poll_transmit().is_some() {}
    let create = request(
        RequestType::Post,
        0x3501,
        0x75,
        "/19",
        None,
        None,
        Some(&[0xc1, 0x01, 0x04]),
    );
    assert_eq!(
        exchange(&mut c, now, OWNER, &create),
        vec![vec![
            0x61, 0x41, 0x35, 0x01, 0x75, 0x82, b'1', b'9', 0x01, b'0'
        ]]
    );
    assert!(!c.store().instances().any(|p| p.object_id() == Some(2)));
}

// The composite operations under Access Control (Core §6.3.8 Read-Composite,
// §6.3.9 Write-Composite, §6.4.3 Observe-Composite; §7.3.2). The requests
// are hand-built datagrams (RFC 7252 §3): CON with a 1-byte token (0x41),
// FETCH 0.05 or iPATCH 0.07 on `/` (RFC 8132 §2, §3; Transport §6.4), then
// Observe (option 6) if any and Content-Format 110, SenML JSON (option 12:
// one byte 0x6e), then 0xff and the SenML pack (RFC 8428 §5).

/// FETCH / (`0x05`), `observe` as given, Content-Format SenML JSON, `pack`.
fn fetch(mid: u16, token: u8, observe: Option<u8>, pack: &str) -> Vec<u8> {
    let mut v = vec![0x41, 0x05, (mid >> 8) as u8, mid as u8, token];
    match observe {
        // Observe (delta 6, length 0: the value 0), Content-Format (delta 6).
        Some(0) => v.extend_from_slice(&[0x60, 0x61, 110]),
        Some(o) => v.extend_from_slice(&[0x61, o, 0x61, 110]),
        None => v.extend_from_slice(&[0xc1, 110]),
    }
    v.push(0xff);
    v.extend_from_slice(pack.as_bytes());
    v
}

/// iPATCH / (`0x07`), Content-Format SenML JSON, `pack`.
fn ipatch(mid: u16, token: u8, pack: &str) -> Vec<u8> {
    let mut v = vec![0x41, 0x07, (mid >> 8) as u8, mid as u8, token];
    // Content-Format (delta 12, length 1), then the payload marker.
    v.extend_from_slice(&[0xc1, 110, 0xff]);
    v.extend_from_slice(pack.as_bytes());
    v
}

/// `ACK 2.05` on `mid`/`token`, Observe `observe` if any, Content-Format
/// SenML JSON, `pack`.
fn senml_content(mid: u16, token: u8, observe: Option<u8>, pack: &str) -> Vec<u8> {
    let mut v = vec![0x61, 0x45, (mid >> 8) as u8, mid as u8, token];
    match observe {
        Some(o) => v.extend_from_slice(&[0x61, o, 0x61, 110]),
        None => v.extend_from_slice(&[0xc1, 110]),
    }
    v.push(0xff);
    v.extend_from_slice(pack.as_bytes());
    v
}

/// `ACK` with `code` (0x81 4.01, 0x84 4.04) on `mid`/`token` and the
/// diagnostic payload `why` (RFC 7252 §5.5.2).
fn refusal(mid: u16, token: u8, code: u8, why: &str) -> Vec<u8> {
    let mut v = vec![0x61, code, (mid >> 8) as u8, mid as u8, token, 0xff];
    v.extend_from_slice(why.as_bytes());
    v
}

/// PUT `path` with the plain-text `value` (Content-Format 0: option 12,
/// length 0), as the owner writes an ACL instance.
fn put_text(mid: u16, token: u8, path: &str, value: &str) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Put);
    p.header.message_id = mid;
    p.set_token(vec![token]);
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    p.set_content_format(coap_lite::ContentFormat::TextPlain);
    p.payload = value.as_bytes().to_vec();
    p.to_bytes().unwrap()
}

/// The SenML JSON the client answers with: one record per value, the base
/// name `/` on the first and each name relative to it (RFC 8428 §4.5.1).
const DATA_PRIORITY_BOTH: &str = r#"[{"bn":"/","n":"19/0/1","v":5},{"n":"19/1/1","v":6}]"#;
const DATA_PRIORITY_0: &str = r#"[{"bn":"/","n":"19/0/1","v":5}]"#;

#[test]
fn a_read_composite_leaves_out_the_paths_the_server_may_not_read() {
    // Core §6.3.8: "The Read-Composite operation is treated as non-atomic
    // and handled as best effort by the client. That is, if any of the
    // requested resources do not have a valid value to return, they will
    // not be included in the response" — so 102, without the Read right on
    // /19/1 (§7.3.2), gets 2.05 with /19/0/1 alone, not a 4.01 for the whole.
    let now = Instant::now();
    let mut c = two_server_client(now);
    let both = r#"[{"n":"/19/0/1"},{"n":"/19/1/1"}]"#;
    assert_eq!(
        exchange(&mut c, now, OTHER, &fetch(0x3601, 0x81, None, both)),
        vec![senml_content(0x3601, 0x81, None, DATA_PRIORITY_0)]
    );
    // 101, the owner of both entries, reads both.
    assert_eq!(
        exchange(&mut c, now, OWNER, &fetch(0x3602, 0x82, None, both)),
        vec![senml_content(0x3602, 0x82, None, DATA_PRIORITY_BOTH)]
    );
    // An Object in the list answers with the instances 102 may read
    // (§7.3.2.4), /19/0 alone.
    assert_eq!(
        exchange(
            &mut c,
            now,
            OTHER,
            &fetch(0x3603, 0x83, None, r#"[{"n":"/19"}]"#)
        ),
        vec![senml_content(0x3603, 0x83, None, DATA_PRIORITY_0)]
    );
    // Nothing left, and that for want of the right: the 4.01 (0x81) a Read
    // of /19/1/1 alone gets (§7.3.2), naming the path — also beside a path
    // the device lacks (/19/5/1).
    let denied = "server 102 has no Read right on /19/1/1 (Access Control, Core §7.3)";
    assert_eq!(
        exchange(
            &mut c,
            now,
            OTHER,
            &fetch(0x3604, 0x84, None, r#"[{"n":"/19/1/1"}]"#)
        ),
        vec![refusal(0x3604, 0x84, 0x81, denied)]
    );
    assert_eq!(
        exchange(
            &mut c,
            now,
            OTHER,
            &fetch(0x3605, 0x85, None, r#"[{"n":"/19/5/1"},{"n":"/19/1/1"}]"#)
        ),
        vec![refusal(0x3605, 0x85, 0x81, denied)]
    );
    // Nothing there at all stays 4.04 (0x84).
    assert_eq!(
        exchange(
            &mut c,
            now,
            OTHER,
            &fetch(0x3606, 0x86, None, r#"[{"n":"/19/5/1"}]"#)
        ),
        vec![refusal(0x3606, 0x86, 0x84, "none of /19/5/1 can be read")]
    );
    // An address that is none of the accounts' reads nothing: 4.01.
    assert_eq!(
        exchange(
            &mut c,
            now,
            "127.0.0.1:7001",
            &fetch(0x3607, 0x87, None, both)
        )[0][..2],
        [0x61, 0x81]
    );
}

#[test]
fn an_observe_composite_notifies_only_what_the_server_may_read() {
    // §6.4.3 observes like Read-Composite reads; §7.3.2.5: each Notify
    // needs the Read right, and "If the LwM2M Server is not authorized, the
    // Client MUST NOT send the Notify operation".
    let now = Instant::now();
    let mut c = two_server_client(now);
    let both = r#"[{"n":"/19/0/1"},{"n":"/19/1/1"}]"#;
    // ACK 2.05 with Observe 2 (the client's next sequence number), /19/0/1 alone.
    assert_eq!(
        exchange(&mut c, now, OTHER, &fetch(0x3701, 0x91, Some(0), both)),
        vec![senml_content(0x3701, 0x91, Some(2), DATA_PRIORITY_0)]
    );
    // A change of /19/1/1, which 102 may not read, is no news to it.
    c.set_value(now, Path::resource(19, 1, 1), Value::Integer(9))
        .unwrap();
    assert_eq!(c.poll_transmit().map(|t| t.payload), None);
    // A change of /19/0/1 is: NON 2.05 (0x51), the client's message id,
    // the observation's token, Observe 3, /19/0/1 = 7 alone.
    c.set_value(now, Path::resource(19, 0, 1), Value::Integer(7))
        .unwrap();
    let t = c.poll_transmit().expect("a notification of /19/0/1");
    assert_eq!(t.destination, addr(OTHER));
    let mut want = vec![0x51, 0x45, t.payload[2], t.payload[3], 0x91];
    want.extend_from_slice(&[0x61, 3, 0x61, 110, 0xff]);
    want.extend_from_slice(br#"[{"bn":"/","n":"19/0/1","v":7}]"#);
    assert_eq!(t.payload, want);
    // The owner, 101, takes 102's Read right on /19/0 (ACL[102] = 0):
    // then 102 may read none of what it observes, and no Notify goes out.
    assert_eq!(
        exchange(
            &mut c,
            now,
            OWNER,
            &put_text(0x3702, 0x92, "/2/0/2/102", "0")
        ),
        vec![vec![0x61, 0x44, 0x37, 0x02, 0x92]]
    );
    // Neither on the change nor an hour on, when any pmax would be due
    // (the client re-registers meanwhile: that goes to 101).
    c.set_value(now, Path::resource(19, 0, 1), Value::Integer(8))
        .unwrap();
    c.handle_timeout(now + Duration::from_secs(3_600));
    let to_other: Vec<_> = std::iter::from_fn(|| c.poll_transmit())
        .filter(|t| t.destination == addr(OTHER))
        .map(|t| t.payload)
        .collect();
    assert_eq!(
        to_other,
        Vec::<Vec<u8>>::new(),
        "no Notify without the Read right"
    );
}

#[test]
fn a_write_composite_with_one_record_the_server_may_not_write_is_refused_whole() {
    // Core §6.3.9: Write-Composite "is atomic and cannot have partial
    // success ... before processing Write-Composite, the client MUST ensure
    // that all addressed objects exist and that the Server has write access
    // to those Objects and Resources".
    let now = Instant::now();
    let mut c = two_server_client(now);
    // The owner grants 102 R|W (3) on /19/0; /19/1 stays out of its reach.
    assert_eq!(
        exchange(
            &mut c,
            now,
            OWNER,
            &put_text(0x3801, 0xa1, "/2/0/2/102", "3")
        ),
        vec![vec![0x61, 0x44, 0x38, 0x01, 0xa1]]
    );
    let both = r#"[{"bn":"/19/","n":"0/1","v":7},{"n":"1/1","v":8}]"#;
    // 4.01 (0x81) naming /19/1, and neither value written.
    assert_eq!(
        exchange(&mut c, now, OTHER, &ipatch(0x3802, 0xa2, both)),
        vec![refusal(
            0x3802,
            0xa2,
            0x81,
            "server 102 has no Write right on /19/1 (Access Control, Core §7.3)"
        )]
    );
    assert_eq!(
        c.store().get(&Path::resource(19, 0, 1)),
        Some(&Value::Integer(5))
    );
    assert_eq!(
        c.store().get(&Path::resource(19, 1, 1)),
        Some(&Value::Integer(6))
    );
    // The record 102 may write alone: 2.04 (0x44).
    assert_eq!(
        exchange(
            &mut c,
            now,
            OTHER,
            &ipatch(0x3803, 0xa3, r#"[{"n":"/19/0/1","v":7}]"#)
        ),
        vec![vec![0x61, 0x44, 0x38, 0x03, 0xa3]]
    );
    assert_eq!(
        c.store().get(&Path::resource(19, 0, 1)),
        Some(&Value::Integer(7))
    );
    // 101, the owner of both, writes both.
    assert_eq!(
        exchange(&mut c, now, OWNER, &ipatch(0x3804, 0xa4, both)),
        vec![vec![0x61, 0x44, 0x38, 0x04, 0xa4]]
    );
    assert_eq!(
        c.store().get(&Path::resource(19, 1, 1)),
        Some(&Value::Integer(8))
    );
    // 102 may not write the entry that restricts it, not even in a
    // composite: only the owner manages it (E.3 resource 3).
    assert_eq!(
        exchange(
            &mut c,
            now,
            OTHER,
            &ipatch(0x3805, 0xa5, r#"[{"n":"/2/1/2/102","v":31}]"#)
        )[0][..2],
        [0x61, 0x81]
    );
}

#[test]
fn with_one_server_account_the_composites_need_no_right() {
    // Core §7.3.1: a single server has full access rights, no check.
    let now = Instant::now();
    let mut s = ObjectStore::new(registry());
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s.set(Path::resource(19, 0, 1), Value::Integer(5));
    s.set(Path::resource(19, 1, 1), Value::Integer(6));
    let account = ServerAccount::nosec(101, format!("coap://{OWNER}"));
    let mut c = Client::with_accounts(config(), s, &[account]);
    c.start(now);
    while c.poll_transmit().is_some() {}
    let both = r#"[{"n":"/19/0/1"},{"n":"/19/1/1"}]"#;
    assert_eq!(
        exchange(&mut c, now, OWNER, &fetch(0x3901, 0xb1, None, both)),
        vec![senml_content(0x3901, 0xb1, None, DATA_PRIORITY_BOTH)]
    );
    assert_eq!(
        exchange(
            &mut c,
            now,
            OWNER,
            &ipatch(
                0x3902,
                0xb2,
                r#"[{"bn":"/19/","n":"0/1","v":7},{"n":"1/1","v":8}]"#
            )
        ),
        vec![vec![0x61, 0x44, 0x39, 0x02, 0xb2]]
    );
}
